//! The client against in-process fake servers: requests a broker sends to the client
//! (NOTIFY_CONSUMER_IDS_CHANGED is answered and triggers a rebalance, anything unknown gets
//! REQUEST_CODE_NOT_SUPPORTED), and sends retried on another broker when one is busy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tributary_client::{ClientConfig, ClientInstance, Message, Producer, ProducerConfig};
use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{BrokerData, JsonBody, QueueData, TopicRouteData};
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{SendMessageRequestHeaderV2, SendMessageResponseHeader};
use tributary_remoting::{Connection, Handler, HandlerFuture, RemotingServer, TransportConfig};

/// Answers every request TOPIC_NOT_EXIST and keeps the connection it came on.
#[derive(Default)]
struct FakeNamesrv {
    conn: Mutex<Option<Arc<Connection>>>,
}

impl Handler for FakeNamesrv {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        *self.conn.lock() = Some(conn.clone());
        let answer = RemotingCommand::response_to(&request).with_code(response::TOPIC_NOT_EXIST);
        Box::pin(std::future::ready(Some(answer)))
    }
}

#[tokio::test]
async fn broker_requests_are_answered() {
    let namesrv = Arc::new(FakeNamesrv::default());
    let server = RemotingServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        namesrv.clone(),
        TransportConfig::default(),
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr").to_string();
    let stop = CancellationToken::new();
    let test = async {
        let instance = ClientInstance::start(ClientConfig::new(&addr))
            .await
            .expect("client");
        assert!(instance.client_id().starts_with("127.0.0.1@"));
        assert_eq!(instance.fetch_route("T").await.expect("route"), None);
        let conn = namesrv.conn.lock().clone().expect("the client connected");

        let mut notify = RemotingCommand::new_request(request::NOTIFY_CONSUMER_IDS_CHANGED, 0);
        notify.ext_fields.insert("consumerGroup", "g");
        let answer = conn
            .invoke(notify, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(answer.code, response::SUCCESS);

        let unknown = RemotingCommand::new_request(9_999, 0);
        let answer = conn
            .invoke(unknown, Duration::from_secs(5))
            .await
            .expect("answer");
        assert_eq!(answer.code, response::REQUEST_CODE_NOT_SUPPORTED);

        instance.shutdown().await;
        stop.cancel();
    };
    tokio::join!(server.run(stop.clone()), test);
}

/// A broker that answers sends with a fixed code and counts them.
struct FakeBroker {
    code: i32,
    sends: Mutex<Vec<String>>,
}

impl Handler for FakeBroker {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let mut answer = RemotingCommand::response_to(&request);
        if request.code == request::SEND_MESSAGE_V2 {
            let header: SendMessageRequestHeaderV2 = request.decode_header().expect("v2 header");
            self.sends.lock().push(header.n.unwrap_or_default());
            answer = answer
                .with_code(self.code)
                .with_header(&SendMessageResponseHeader {
                    msg_id: "0A0000010000000000000000000000FF".into(),
                    queue_id: header.e,
                    queue_offset: 42,
                    ..SendMessageResponseHeader::default()
                });
        }
        Box::pin(std::future::ready(Some(answer)))
    }
}

/// A NameServer that routes every topic to two brokers.
struct RoutingNamesrv {
    route: Bytes,
}

impl Handler for RoutingNamesrv {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let answer = RemotingCommand::response_to(&request).with_body(self.route.clone());
        Box::pin(std::future::ready(Some(answer)))
    }
}

#[tokio::test]
async fn a_busy_broker_is_retried_on_the_other() {
    let bind = |handler: Arc<dyn Handler>| async move {
        RemotingServer::bind(
            "127.0.0.1:0".parse().expect("addr"),
            handler,
            TransportConfig::default(),
        )
        .await
        .expect("bind")
    };
    let busy = Arc::new(FakeBroker {
        code: response::SYSTEM_BUSY,
        sends: Mutex::default(),
    });
    let fine = Arc::new(FakeBroker {
        code: response::SUCCESS,
        sends: Mutex::default(),
    });
    let busy_server = bind(busy.clone()).await;
    let fine_server = bind(fine.clone()).await;
    let broker = |name: &str, addr: String| BrokerData {
        cluster: "C".into(),
        broker_name: name.into(),
        broker_addrs: BTreeMap::from([(0, addr)]),
    };
    let queues = |name: &str| QueueData {
        broker_name: name.into(),
        read_queue_nums: 1,
        write_queue_nums: 1,
        perm: 6,
        topic_sys_flag: 0,
    };
    let route = TopicRouteData {
        order_topic_conf: None,
        queue_datas: vec![queues("a"), queues("b")],
        broker_datas: vec![
            broker("a", busy_server.local_addr().expect("addr").to_string()),
            broker("b", fine_server.local_addr().expect("addr").to_string()),
        ],
        filter_server_table: BTreeMap::new(),
    }
    .encode()
    .expect("route");
    let namesrv_server = bind(Arc::new(RoutingNamesrv { route })).await;
    let namesrv = namesrv_server.local_addr().expect("addr").to_string();
    let stop = CancellationToken::new();
    let test = async {
        let producer = Producer::start(ClientConfig::new(&namesrv), ProducerConfig::new("pg"))
            .await
            .expect("producer");
        for _ in 0..4 {
            let sent = producer
                .send(Message::new("T", "x"))
                .await
                .expect("a send lands on the broker that is not busy");
            assert_eq!(sent.queue.broker_name, "b");
            assert_eq!(sent.queue_offset, 42);
        }
        // Round robin tried the busy broker too, and never twice in a row for one send.
        assert!(!busy.sends.lock().is_empty());
        assert_eq!(fine.sends.lock().len(), 4);
        assert!(fine.sends.lock().iter().all(|name| name == "b"));
        producer.shutdown().await;
        stop.cancel();
    };
    tokio::join!(
        busy_server.run(stop.clone()),
        fine_server.run(stop.clone()),
        namesrv_server.run(stop.clone()),
        test
    );
}
