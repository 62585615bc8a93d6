//! The harness the broker's test files share: a broker over a real store on a loopback port
//! (with a real NameServer beside it when a test needs routes), and the raw SEND_MESSAGE a
//! RocketMQ client sends.
#![allow(dead_code)] // each test binary uses a different part

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tributary_broker::{Broker, BrokerConfig};
use tributary_namesrv::{NameServer, NamesrvConfig};
use tributary_protocol::header::SendMessageRequestHeader;
use tributary_protocol::{RemotingCommand, codes};
use tributary_remoting::RemotingClient;
use tributary_store::{FlushMode, MessageStore, StoreConfig};

/// Timeout of every request a test sends.
pub const T: Duration = Duration::from_secs(10);

/// A broker serving on a loopback port over a store in `dir`, and a client for it.
pub struct TestBroker {
    pub dir: tempfile::TempDir,
    pub broker: Arc<Broker>,
    pub store: Arc<MessageStore>,
    /// The broker's address, `host:port` (also the store's STOREHOST).
    pub addr: String,
    /// The NameServer's address when [`TestBroker::open_with_namesrv`] started one.
    pub namesrv_addr: Option<String>,
    pub client: RemotingClient,
    stop: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl TestBroker {
    /// Opens the store in `dir` (small segments and index files) and serves `config` on a
    /// free loopback port; the broker's address is the store's STOREHOST.
    pub async fn open(dir: tempfile::TempDir, config: BrokerConfig, flush: FlushMode) -> Self {
        let tasks = tokio::task::JoinSet::new();
        Self::open_in(dir, config, flush, None, CancellationToken::new(), tasks).await
    }

    /// Starts a NameServer on a free loopback port, then [`TestBroker::open`] with a default
    /// configuration that registers there, changed by `tweak`.
    pub async fn open_with_namesrv(
        dir: tempfile::TempDir,
        flush: FlushMode,
        tweak: impl FnOnce(&mut BrokerConfig),
    ) -> Self {
        let stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        let namesrv = NameServer::new(NamesrvConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..NamesrvConfig::default()
        })
        .expect("namesrv");
        let listener = namesrv.bind().await.expect("bind namesrv");
        let namesrv_addr = listener.local_addr().to_string();
        tasks.spawn(listener.run(stop.clone()));
        let mut config = BrokerConfig {
            namesrv_addr: vec![namesrv_addr.clone()],
            ..BrokerConfig::default()
        };
        tweak(&mut config);
        Self::open_in(dir, config, flush, Some(namesrv_addr), stop, tasks).await
    }

    async fn open_in(
        dir: tempfile::TempDir,
        config: BrokerConfig,
        flush: FlushMode,
        namesrv_addr: Option<String>,
        stop: CancellationToken,
        mut tasks: tokio::task::JoinSet<()>,
    ) -> Self {
        // Bind first to learn the port, then open the store with it as STOREHOST.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind broker");
        let config = BrokerConfig {
            listen: listener.local_addr().expect("addr"),
            ..config
        };
        let mut store_config = StoreConfig::new(dir.path().join("store"));
        store_config.commitlog_segment_bytes = 16 << 20;
        store_config.index_slots = 1024;
        store_config.index_entries = 4096;
        store_config.flush_mode = flush;
        store_config.store_host = config.advertised_addr().parse().expect("addr");
        let store = Arc::new(MessageStore::open(store_config).expect("store"));
        let broker =
            Broker::open(config, store.clone(), &dir.path().join("broker")).expect("broker");
        let bound = broker.serve_on(listener);
        let addr = broker.addr().to_string();
        tasks.spawn(bound.run(stop.clone()));
        Self {
            dir,
            broker,
            store,
            addr,
            namesrv_addr,
            client: RemotingClient::default(),
            stop,
            tasks,
        }
    }

    /// Stops the broker (and NameServer) and shuts the store down cleanly; returns the data
    /// directory for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.client.shutdown().await;
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        let store = self.store.clone();
        drop(self.broker);
        tokio::task::spawn_blocking(move || store.shutdown())
            .await
            .expect("join")
            .expect("store shutdown");
        self.dir
    }

    /// Sends SEND_MESSAGE with `header` and `body` to this broker with its own client.
    pub async fn send_with(
        &self,
        header: &SendMessageRequestHeader,
        body: &str,
    ) -> RemotingCommand {
        send_request(&self.client, &self.addr, header, body).await
    }
}

/// A SEND_MESSAGE header as a producer of group `pg` writes it, with encoded `properties`
/// (`name\x01value\x02…`).
pub fn send_header(topic: &str, queue_id: i32, properties: &str) -> SendMessageRequestHeader {
    SendMessageRequestHeader {
        producer_group: "pg".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 4,
        queue_id,
        sys_flag: 0,
        born_timestamp: 1_700_000_000_000,
        flag: 0,
        properties: Some(properties.into()),
        reconsume_times: None,
        unit_mode: None,
        batch: None,
        max_reconsume_times: None,
        broker_name: None,
    }
}

/// Sends SEND_MESSAGE with `header` and `body` to `addr`; the broker's answer.
pub async fn send_request(
    client: &RemotingClient,
    addr: &str,
    header: &SendMessageRequestHeader,
    body: &str,
) -> RemotingCommand {
    let request = RemotingCommand::new_request(codes::request::SEND_MESSAGE, 0)
        .with_header(header)
        .with_body(Bytes::from(body.to_string()));
    client
        .invoke(addr, request, T)
        .await
        .expect("send answered")
}
