//! The broker: RocketMQ's 4.x broker over Tributary's store, so that existing RocketMQ clients
//! produce and consume unchanged.
//!
//! [`Broker::open`] loads the broker's metadata (topics, consumer offsets) next to an open
//! [`MessageStore`]; [`Broker::serve_on`] and [`BoundBroker::run`] serve the remoting protocol,
//! register with every NameServer every 30 s, expire silent clients and write offsets, until
//! shut down.
//!
//! Request handling lives in [`processor`]: one function per request family (send, pull,
//! offsets, queries, clients, admin), each turning a request into a response or a refusal
//! with RocketMQ's response code.
//!
//! **Invariants:**
//! - A send is answered SUCCESS only after the store accepted it, and in SYNC flush mode only
//!   after an fsync covering it returned; a flush timeout answers FLUSH_DISK_TIMEOUT (the
//!   message is stored but not known durable), as RocketMQ does.
//! - A pull never returns a message past the store's dispatched offset, and a suspended pull
//!   is woken by the dispatcher, never by polling.
//! - Metadata files (`topics.json`, `consumerOffset.json`) are replaced atomically; a damaged
//!   one stops the broker with its path rather than being reset.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_protocol::body::{JsonBody, RegisterBrokerBody};
use tributary_protocol::header::{RegisterBrokerRequestHeader, UnregisterBrokerRequestHeader};
use tributary_protocol::{RemotingCommand, codes};
use tributary_remoting::{RemotingClient, RemotingServer, TransportConfig, TransportStats};
use tributary_store::MessageStore;

mod clients;
mod config;
mod filter;
mod groups;
mod offsets;
mod persist;
mod polls;
pub mod processor;
pub mod reply;
mod reset;
mod retry;
pub mod schedule;
pub mod sql92;
mod stats;
mod topics;
pub mod transaction;

pub use clients::{ClientChannel, ClientRegistry, ConsumerGroup, QueueLocks};
pub use config::BrokerConfig;
pub use filter::{FilterError, SubscriptionFilter, TagFilter};
pub use groups::GroupConfigs;
pub use offsets::OffsetManager;
pub use reply::reply_topic;
pub use retry::{DLQ_GROUP_TOPIC_PREFIX, dlq_topic, retry_topic};
pub use schedule::{ScheduleService, ScheduleStats};
pub use stats::BrokerStats;
pub use topics::{AUTO_CREATE_TOPIC, SELF_TEST_TOPIC, TopicManager, invalid_topic_name};

/// A broker: its configuration, store, metadata and clients.
pub struct Broker {
    config: BrokerConfig,
    addr: String,
    store: Arc<MessageStore>,
    topics: TopicManager,
    offsets: OffsetManager,
    clients: ClientRegistry,
    locks: QueueLocks,
    polls: polls::LongPolls,
    stats: BrokerStats,
    namesrv: RemotingClient,
    schedule: ScheduleService,
    transactions: transaction::TransactionService,
    groups: GroupConfigs,
    /// Poked when the topic set changed, to register with the NameServers at once.
    register_now: tokio::sync::Notify,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Timeout of one NameServer registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(6);

impl Broker {
    /// Opens the broker's metadata in `meta_dir` beside `store`, and hooks long polling to the
    /// store's dispatcher. The store's `store_host` should be the broker's advertised address.
    pub fn open(
        config: BrokerConfig,
        store: Arc<MessageStore>,
        meta_dir: &Path,
    ) -> std::io::Result<Arc<Self>> {
        let topics = TopicManager::open(
            meta_dir.join("topics.json"),
            &config.cluster_name,
            &config.broker_name,
            config.auto_create_topic,
            config.default_topic_queue_nums,
        )?;
        let offsets = OffsetManager::open(meta_dir.join("consumerOffset.json"))?;
        config
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let schedule = ScheduleService::open(&config, store.clone(), meta_dir)?;
        let transactions = transaction::TransactionService::open(&config, store.clone())?;
        let groups = GroupConfigs::open(meta_dir.join("subscriptionGroup.json"))?;
        let broker = Arc::new(Self {
            addr: config.advertised_addr(),
            locks: QueueLocks::new(Duration::from_millis(config.lock_expiry_ms)),
            config,
            store,
            topics,
            offsets,
            clients: ClientRegistry::default(),
            polls: polls::LongPolls::default(),
            stats: BrokerStats::default(),
            namesrv: RemotingClient::default(),
            schedule,
            transactions,
            groups,
            register_now: tokio::sync::Notify::new(),
        });
        let weak = Arc::downgrade(&broker);
        broker.store.set_arrival_listener(Arc::new(
            move |topic: &str, queue_id: i32, _max: i64| {
                if let Some(b) = weak.upgrade() {
                    b.polls.arrived(topic, queue_id);
                    b.schedule.arrived(topic);
                }
            },
        ));
        Ok(broker)
    }

    /// The address clients know this broker by.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<MessageStore> {
        &self.store
    }

    /// Topic configurations.
    pub fn topics(&self) -> &TopicManager {
        &self.topics
    }

    /// Consumer offsets.
    pub fn offsets(&self) -> &OffsetManager {
        &self.offsets
    }

    /// Online clients.
    pub fn clients(&self) -> &ClientRegistry {
        &self.clients
    }

    /// Request counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Delayed message delivery.
    pub fn schedule(&self) -> &ScheduleService {
        &self.schedule
    }

    fn transport_config(&self) -> TransportConfig {
        TransportConfig {
            max_connections: self.config.max_connections,
            max_in_flight_requests: self.config.max_in_flight_requests,
            ..TransportConfig::default()
        }
    }

    /// Serves on a listener the caller bound. Bind before [`Broker::open`] and put the bound
    /// address into `listen`, so that port 0 works and the advertised address is the real one.
    pub fn serve_on(self: &Arc<Self>, listener: tokio::net::TcpListener) -> BoundBroker {
        let server = RemotingServer::from_listener(
            listener,
            Arc::new(processor::BrokerHandler(self.clone())),
            self.transport_config(),
        );
        BoundBroker {
            broker: self.clone(),
            server,
        }
    }

    fn register_header(&self) -> RegisterBrokerRequestHeader {
        RegisterBrokerRequestHeader {
            broker_name: self.config.broker_name.clone(),
            broker_addr: self.addr.clone(),
            cluster_name: self.config.cluster_name.clone(),
            ha_server_addr: String::new(),
            broker_id: self.config.broker_id,
            heartbeat_timeout_millis: None,
            enable_acting_master: None,
            compressed: Some(false),
            body_crc32: None,
        }
    }

    /// Registers with every NameServer at once; returns how many accepted.
    pub async fn register_all(&self) -> usize {
        self.register(None).await
    }

    /// Registers with every NameServer, sending every topic, or only `only` (RocketMQ's
    /// incremental registration after a topic change: the NameServer merges it, and the
    /// body stays small however many topics the broker has).
    pub async fn register(&self, only: Option<&str>) -> usize {
        let mut wrapper = self.topics.snapshot();
        if let Some(topic) = only {
            wrapper.topic_config_table.retain(|name, _| name == topic);
        }
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: wrapper,
            filter_server_list: Vec::new(),
        };
        let body = match body.encode() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "encode broker registration");
                return 0;
            }
        };
        let mut header = self.register_header();
        header.body_crc32 = Some(crc32(&body));
        let mut calls = tokio::task::JoinSet::new();
        for addr in &self.config.namesrv_addr {
            let request = RemotingCommand::new_request(codes::request::REGISTER_BROKER, 0)
                .with_header(&header)
                .with_body(body.clone());
            let client = self.namesrv.clone();
            let addr = addr.clone();
            calls.spawn(async move {
                let r = client.invoke(&addr, request, REGISTER_TIMEOUT).await;
                (addr, r)
            });
        }
        let mut ok = 0;
        while let Some(joined) = calls.join_next().await {
            let Ok((addr, result)) = joined else { continue };
            match result {
                Ok(r) if r.code == codes::response::SUCCESS => {
                    ok += 1;
                    tracing::debug!(namesrv = %addr, "registered with NameServer");
                }
                Ok(r) => {
                    tracing::warn!(namesrv = %addr, code = r.code, remark = ?r.remark, "NameServer refused the registration");
                }
                Err(e) => tracing::warn!(namesrv = %addr, error = %e, "register with NameServer"),
            }
        }
        ok
    }

    async fn unregister_all(&self) {
        let header = UnregisterBrokerRequestHeader {
            broker_name: self.config.broker_name.clone(),
            broker_addr: self.addr.clone(),
            cluster_name: self.config.cluster_name.clone(),
            broker_id: self.config.broker_id,
        };
        for addr in &self.config.namesrv_addr {
            let request = RemotingCommand::new_request(codes::request::UNREGISTER_BROKER, 0)
                .with_header(&header);
            if let Err(e) = self.namesrv.invoke(addr, request, REGISTER_TIMEOUT).await {
                tracing::warn!(namesrv = %addr, error = %e, "unregister from NameServer");
            }
        }
    }

    /// Asks the registration task to register now (after a topic change).
    pub(crate) fn topics_changed(&self) {
        self.register_now.notify_one();
    }

    async fn registration_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.config.register_interval_ms.max(100));
        loop {
            self.register_all().await;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.register_now.notified() => {}
                () = shutdown.cancelled() => break,
            }
        }
        self.unregister_all().await;
        self.namesrv.shutdown().await;
    }

    async fn housekeeping_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let every = Duration::from_millis(self.config.offset_flush_interval_ms.max(100));
        let expiry = Duration::from_millis(self.config.client_expiry_ms);
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => break,
            }
            for (group, conns) in self.clients.remove_channels(None, Some(expiry)) {
                processor::notify_ids_changed(&group, &conns);
            }
            self.flush_offsets().await;
        }
        self.flush_offsets().await;
    }

    async fn flush_offsets(self: &Arc<Self>) {
        let me = self.clone();
        match tokio::task::spawn_blocking(move || me.offsets.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "write consumer offsets"),
            Err(e) => tracing::error!(error = %e, "write consumer offsets"),
        }
    }

    /// Called when a connection closes: its clients leave their groups, and the rest of each
    /// group is told to rebalance.
    fn connection_closed(&self, conn_id: u64) {
        for (group, conns) in self.clients.remove_channels(Some(conn_id), None) {
            processor::notify_ids_changed(&group, &conns);
        }
    }
}

/// A broker whose listener is bound; [`BoundBroker::run`] serves it.
#[derive(Debug)]
pub struct BoundBroker {
    broker: Arc<Broker>,
    server: RemotingServer,
}

impl BoundBroker {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.server.local_addr()
    }

    /// The transport counters.
    pub fn transport_stats(&self) -> Arc<TransportStats> {
        self.server.stats()
    }

    /// Serves until `shutdown` is cancelled; then unregisters from the NameServers, writes
    /// the consumer offsets, and returns. The store is the caller's to shut down.
    pub async fn run(self, shutdown: CancellationToken) {
        let broker = self.broker;
        let tracker = TaskTracker::new();
        tracker.spawn(broker.clone().registration_loop(shutdown.clone()));
        tracker.spawn(broker.clone().housekeeping_loop(shutdown.clone()));
        let b = broker.clone();
        tracker.spawn_blocking(move || b.schedule.run(&|topic| b.topics.get(topic).is_some()));
        let b = broker.clone();
        let stop = shutdown.clone();
        tracker.spawn(async move {
            stop.cancelled().await;
            b.schedule.stop();
            b.transactions.stop();
        });
        let b = broker.clone();
        tracker.spawn_blocking(move || b.transactions.run(&|group| b.clients.producers_of(group)));
        tracing::info!(
            addr = %broker.addr,
            listen = %broker.config.listen,
            cluster = %broker.config.cluster_name,
            name = %broker.config.broker_name,
            namesrv = ?broker.config.namesrv_addr,
            "broker serving"
        );
        self.server.run(shutdown).await;
        tracker.close();
        tracker.wait().await;
        tracing::info!(addr = %broker.addr, "broker stopped");
    }
}

/// CRC32 as Java's `UtilAll.crc32` (the NameServer checks it against `bodyCrc32`).
fn crc32(bytes: &[u8]) -> i32 {
    let mut h = crc32fast::Hasher::new();
    h.update(bytes);
    (h.finalize() & 0x7FFF_FFFF) as i32
}
