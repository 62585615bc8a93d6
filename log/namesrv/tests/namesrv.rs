//! The NameServer over loopback, driven by `RemotingClient` the way brokers and clients drive
//! it: registration, routes, re-registration, unregistration, expiry, connection close, KV
//! config, bad requests, and two NameServers side by side.
// Tests await every task they spawn.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tributary_namesrv::{NameServer, NamesrvConfig, NamesrvError, ORDER_TOPIC_CONFIG};
use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{
    ClusterInfo, DataVersion, JsonBody, KvTable, RegisterBrokerBody, TopicConfig,
    TopicConfigSerializeWrapper, TopicList, TopicRouteData,
};
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{
    DeleteKvConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader, GetKvConfigRequestHeader,
    GetKvConfigResponseHeader, GetKvListByNamespaceRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, PutKvConfigRequestHeader, QueryDataVersionRequestHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnregisterBrokerRequestHeader, WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
};
use tributary_remoting::RemotingClient;

const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for an expected state before failing.
const DEADLINE: Duration = Duration::from_secs(10);

/// A NameServer on a free loopback port.
struct Namesrv {
    addr: String,
    server: Arc<NameServer>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Namesrv {
    async fn start(config: NamesrvConfig) -> Self {
        let config = NamesrvConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..config
        };
        let server = NameServer::new(config).expect("valid config");
        let listener = server.bind().await.expect("binds");
        let addr = listener.local_addr().to_string();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(listener.run(shutdown.clone()));
        Self {
            addr,
            server,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("server task");
    }
}

/// A broker as the NameServer sees it: identity, topics and data version.
#[derive(Clone)]
struct Broker {
    cluster: &'static str,
    name: &'static str,
    id: i64,
    addr: &'static str,
    /// (topic, queues, perm)
    topics: Vec<(&'static str, i32, i32)>,
    version: i64,
}

impl Broker {
    fn master(cluster: &'static str, name: &'static str, addr: &'static str) -> Self {
        Self {
            cluster,
            name,
            id: 0,
            addr,
            topics: Vec::new(),
            version: 1,
        }
    }

    fn with_topic(mut self, topic: &'static str, queues: i32, perm: i32) -> Self {
        self.topics.push((topic, queues, perm));
        self
    }

    fn data_version(&self) -> DataVersion {
        DataVersion {
            state_version: 0,
            timestamp: 1_700_000_000_000,
            counter: self.version,
        }
    }

    fn register_request(&self) -> RemotingCommand {
        let topic_config_table = self
            .topics
            .iter()
            .map(|&(topic, queues, perm)| {
                let config = TopicConfig {
                    topic_name: topic.to_owned(),
                    read_queue_nums: queues,
                    write_queue_nums: queues,
                    perm,
                    ..TopicConfig::default()
                };
                (topic.to_owned(), config)
            })
            .collect();
        let body = RegisterBrokerBody {
            topic_config_serialize_wrapper: TopicConfigSerializeWrapper {
                topic_config_table,
                data_version: self.data_version(),
            },
            filter_server_list: Vec::new(),
        }
        .encode()
        .expect("encodes");
        let crc = i32::try_from(crc32fast::hash(&body) & 0x7FFF_FFFF).expect("31 bits");
        RemotingCommand::new_request(request::REGISTER_BROKER, 0)
            .with_header(&RegisterBrokerRequestHeader {
                broker_name: self.name.into(),
                broker_addr: self.addr.into(),
                cluster_name: self.cluster.into(),
                ha_server_addr: format!("{}-ha", self.addr),
                broker_id: self.id,
                compressed: Some(false),
                body_crc32: Some(crc),
                ..RegisterBrokerRequestHeader::default()
            })
            .with_body(body)
    }

    async fn register(&self, client: &RemotingClient, namesrv: &str) -> RemotingCommand {
        let answer = call(client, namesrv, self.register_request()).await;
        assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);
        answer
    }

    async fn unregister(&self, client: &RemotingClient, namesrv: &str) {
        let request = RemotingCommand::new_request(request::UNREGISTER_BROKER, 0).with_header(
            &UnregisterBrokerRequestHeader {
                broker_name: self.name.into(),
                broker_addr: self.addr.into(),
                cluster_name: self.cluster.into(),
                broker_id: self.id,
            },
        );
        assert_eq!(call(client, namesrv, request).await.code, response::SUCCESS);
    }
}

async fn call(client: &RemotingClient, addr: &str, request: RemotingCommand) -> RemotingCommand {
    client
        .invoke(addr, request, TIMEOUT)
        .await
        .expect("NameServer answers")
}

/// The route of `topic`, or the error code and remark.
async fn route(
    client: &RemotingClient,
    addr: &str,
    topic: &str,
) -> Result<TopicRouteData, (i32, String)> {
    let request = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_header(
        &GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        },
    );
    let answer = call(client, addr, request).await;
    if answer.code != response::SUCCESS {
        return Err((answer.code, answer.remark.unwrap_or_default()));
    }
    Ok(TopicRouteData::decode(&answer.body).expect("route decodes"))
}

/// Broker names of a route, in the order the NameServer listed them.
fn broker_names(route: &TopicRouteData) -> Vec<&str> {
    route
        .broker_datas
        .iter()
        .map(|b| b.broker_name.as_str())
        .collect()
}

async fn json<T: JsonBody>(client: &RemotingClient, addr: &str, request: RemotingCommand) -> T {
    let answer = call(client, addr, request).await;
    assert_eq!(answer.code, response::SUCCESS, "{:?}", answer.remark);
    T::decode(&answer.body).expect("body decodes")
}

async fn cluster_info(client: &RemotingClient, addr: &str) -> ClusterInfo {
    json(
        client,
        addr,
        RemotingCommand::new_request(request::GET_BROKER_CLUSTER_INFO, 0),
    )
    .await
}

/// Polls `check` until it holds, failing after [`DEADLINE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_registered_broker_s_topics_have_routes() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let broker = Broker::master("DefaultCluster", "broker-a", "10.0.0.1:10911")
        .with_topic("TopicA", 8, 6)
        .with_topic("ReadOnly", 2, 4);
    let answer = broker.register(&client, &ns.addr).await;
    let header: RegisterBrokerResponseHeader = answer.decode_header().expect("header");
    assert_eq!(
        header,
        RegisterBrokerResponseHeader::default(),
        "a master has no master"
    );

    let request = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_header(
        &GetRouteInfoRequestHeader {
            topic: "TopicA".into(),
            accept_standard_json_only: None,
        },
    );
    let answer = call(&client, &ns.addr, request).await;
    assert_eq!(answer.code, response::SUCCESS);
    // What fastjson, Go and Node clients read: quoted broker ids, an empty filter table.
    let text = std::str::from_utf8(&answer.body).expect("utf8");
    assert!(
        text.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911"}"#),
        "{text}"
    );
    assert!(text.contains(r#""filterServerTable":{}"#), "{text}");
    assert!(text.contains(r#""readQueueNums":8"#), "{text}");

    let route = TopicRouteData::decode(&answer.body).expect("decodes");
    assert_eq!(route.queue_datas.len(), 1);
    let queues = &route.queue_datas[0];
    assert_eq!(
        (
            queues.broker_name.as_str(),
            queues.read_queue_nums,
            queues.write_queue_nums,
            queues.perm
        ),
        ("broker-a", 8, 8, 6)
    );
    assert_eq!(route.broker_datas.len(), 1);
    assert_eq!(route.broker_datas[0].cluster, "DefaultCluster");
    assert_eq!(
        route.broker_datas[0].broker_addrs,
        BTreeMap::from([(0, "10.0.0.1:10911".to_owned())])
    );

    let read_only = route_ok(&client, &ns.addr, "ReadOnly").await;
    assert_eq!(
        (
            read_only.queue_datas[0].read_queue_nums,
            read_only.queue_datas[0].perm
        ),
        (2, 4)
    );

    let stats = ns.server.stats();
    assert_eq!(stats.brokers_live.load(Ordering::Relaxed), 1);
    assert_eq!(stats.topics.load(Ordering::Relaxed), 2);
    assert_eq!(stats.registrations.load(Ordering::Relaxed), 1);
    let requests = stats.requests();
    let count = |name| requests.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
    assert_eq!(count("GET_ROUTEINFO_BY_TOPIC"), Some(2));
    ns.stop().await;
}

async fn route_ok(client: &RemotingClient, addr: &str, topic: &str) -> TopicRouteData {
    route(client, addr, topic)
        .await
        .unwrap_or_else(|e| panic!("no route for {topic}: {e:?}"))
}

#[tokio::test]
async fn brokers_of_one_cluster_and_of_two_are_listed_in_name_order() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    // Registered out of order, on purpose.
    let b = Broker::master("C1", "broker-b", "10.0.0.2:10911").with_topic("Shared", 4, 6);
    let a = Broker::master("C1", "broker-a", "10.0.0.1:10911")
        .with_topic("Shared", 8, 6)
        .with_topic("OnlyA", 1, 6);
    let c = Broker::master("C2", "broker-c", "10.0.0.3:10911")
        .with_topic("Shared", 2, 6)
        .with_topic("OnlyC", 1, 6);
    for broker in [&b, &c, &a] {
        broker.register(&client, &ns.addr).await;
    }

    let shared = route_ok(&client, &ns.addr, "Shared").await;
    assert_eq!(broker_names(&shared), ["broker-a", "broker-b", "broker-c"]);
    let queues: Vec<(&str, i32)> = shared
        .queue_datas
        .iter()
        .map(|q| (q.broker_name.as_str(), q.write_queue_nums))
        .collect();
    assert_eq!(queues, [("broker-a", 8), ("broker-b", 4), ("broker-c", 2)]);
    let clusters: Vec<&str> = shared
        .broker_datas
        .iter()
        .map(|b| b.cluster.as_str())
        .collect();
    assert_eq!(clusters, ["C1", "C1", "C2"]);
    assert_eq!(
        broker_names(&route_ok(&client, &ns.addr, "OnlyC").await),
        ["broker-c"]
    );

    let info = cluster_info(&client, &ns.addr).await;
    assert_eq!(
        info.cluster_addr_table,
        BTreeMap::from([
            (
                "C1".to_owned(),
                vec!["broker-a".to_owned(), "broker-b".to_owned()]
            ),
            ("C2".to_owned(), vec!["broker-c".to_owned()]),
        ])
    );
    assert_eq!(
        info.broker_addr_table["broker-c"]
            .broker_addrs
            .get(&0)
            .map(String::as_str),
        Some("10.0.0.3:10911")
    );

    let topics_of = |cluster: &str| {
        RemotingCommand::new_request(request::GET_TOPICS_BY_CLUSTER, 0).with_header(
            &GetTopicsByClusterRequestHeader {
                cluster: cluster.into(),
            },
        )
    };
    let c2: TopicList = json(&client, &ns.addr, topics_of("C2")).await;
    assert_eq!(
        c2.topic_list.into_iter().collect::<Vec<_>>(),
        ["OnlyC", "Shared"]
    );
    let all: TopicList = json(
        &client,
        &ns.addr,
        RemotingCommand::new_request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0),
    )
    .await;
    assert_eq!(
        all.topic_list.into_iter().collect::<Vec<_>>(),
        ["OnlyA", "OnlyC", "Shared"]
    );
    ns.stop().await;
}

#[tokio::test]
async fn a_slave_is_told_its_master_and_joins_the_route() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let master = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    let slave = Broker {
        id: 1,
        addr: "10.0.0.2:10911",
        ..master.clone()
    };
    master.register(&client, &ns.addr).await;
    let answer = slave.register(&client, &ns.addr).await;
    let header: RegisterBrokerResponseHeader = answer.decode_header().expect("header");
    assert_eq!(header.master_addr.as_deref(), Some("10.0.0.1:10911"));
    assert_eq!(header.ha_server_addr.as_deref(), Some("10.0.0.1:10911-ha"));
    let route = route_ok(&client, &ns.addr, "T").await;
    assert_eq!(
        route.broker_datas[0].broker_addrs,
        BTreeMap::from([
            (0, "10.0.0.1:10911".to_owned()),
            (1, "10.0.0.2:10911".to_owned())
        ])
    );
    ns.stop().await;
}

#[tokio::test]
async fn a_newer_data_version_updates_topics_and_an_equal_one_does_not() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let v1 = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    v1.register(&client, &ns.addr).await;

    // Same version, other queue count: a heartbeat; the NameServer keeps what it has.
    let mut same = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 16, 6);
    same.register(&client, &ns.addr).await;
    assert_eq!(
        route_ok(&client, &ns.addr, "T").await.queue_datas[0].write_queue_nums,
        4
    );

    same.version = 2;
    let v2 = same.with_topic("U", 2, 6);
    v2.register(&client, &ns.addr).await;
    assert_eq!(
        route_ok(&client, &ns.addr, "T").await.queue_datas[0].write_queue_nums,
        16
    );
    assert_eq!(
        route_ok(&client, &ns.addr, "U").await.queue_datas[0].write_queue_nums,
        2
    );

    // QUERY_DATA_VERSION: what brokers ask before deciding to register in full.
    let query = |broker: &Broker| {
        RemotingCommand::new_request(request::QUERY_DATA_VERSION, 0)
            .with_header(&QueryDataVersionRequestHeader {
                broker_name: broker.name.into(),
                broker_addr: broker.addr.into(),
                cluster_name: broker.cluster.into(),
                broker_id: broker.id,
            })
            .with_body(broker.data_version().encode().expect("encodes"))
    };
    let answer = call(&client, &ns.addr, query(&v2)).await;
    let header: QueryDataVersionResponseHeader = answer.decode_header().expect("header");
    assert!(!header.changed);
    let answer = call(&client, &ns.addr, query(&v1)).await;
    let header: QueryDataVersionResponseHeader = answer.decode_header().expect("header");
    assert!(header.changed);
    assert_eq!(
        DataVersion::decode(&answer.body).ok(),
        Some(v2.data_version()),
        "the answer carries the version the NameServer holds"
    );
    ns.stop().await;
}

#[tokio::test]
async fn unregistering_removes_the_broker_and_its_routes() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let a = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    let b = Broker::master("C1", "broker-b", "10.0.0.2:10911").with_topic("T", 4, 6);
    a.register(&client, &ns.addr).await;
    b.register(&client, &ns.addr).await;

    a.unregister(&client, &ns.addr).await;
    assert_eq!(
        broker_names(&route_ok(&client, &ns.addr, "T").await),
        ["broker-b"]
    );
    b.unregister(&client, &ns.addr).await;
    let gone = route(&client, &ns.addr, "T").await.map(|_| ());
    assert_eq!(
        gone.map_err(|(code, _)| code),
        Err(response::TOPIC_NOT_EXIST)
    );
    let info = cluster_info(&client, &ns.addr).await;
    assert!(info.broker_addr_table.is_empty() && info.cluster_addr_table.is_empty());
    assert_eq!(ns.server.stats().unregistrations.load(Ordering::Relaxed), 2);
    assert_eq!(ns.server.stats().brokers_live.load(Ordering::Relaxed), 0);
    ns.stop().await;
}

#[tokio::test]
async fn a_broker_that_stops_registering_expires_and_one_that_keeps_on_stays() {
    let ns = Namesrv::start(NamesrvConfig {
        broker_expiry_ms: 1_000,
        scan_interval_ms: 50,
        ..NamesrvConfig::default()
    })
    .await;
    let silent = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    let alive = Broker::master("C1", "broker-b", "10.0.0.2:10911").with_topic("T", 4, 6);
    let silent_client = RemotingClient::default();
    let silent_conn = silent_client.connection(&ns.addr).await.expect("connects");
    silent.register(&silent_client, &ns.addr).await;

    // broker-b registers every 100 ms, as brokers do every 30 s.
    let stop_heartbeats = CancellationToken::new();
    let heartbeats = tokio::spawn({
        let (addr, stop) = (ns.addr.clone(), stop_heartbeats.clone());
        async move {
            let client = RemotingClient::default();
            let mut ticks = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = ticks.tick() => alive.register(&client, &addr).await,
                    () = stop.cancelled() => return,
                };
            }
        }
    });

    let reader = RemotingClient::default();
    eventually("broker-a has expired", || async {
        route(&reader, &ns.addr, "T")
            .await
            .is_ok_and(|r| broker_names(&r) == ["broker-b"])
    })
    .await;
    // The NameServer closes an expired broker's connection, as Java's does.
    eventually("broker-a's connection is closed", || async {
        silent_conn.is_closed()
    })
    .await;
    let info = cluster_info(&reader, &ns.addr).await;
    assert_eq!(
        info.broker_addr_table.keys().collect::<Vec<_>>(),
        ["broker-b"]
    );
    assert_eq!(ns.server.stats().expirations.load(Ordering::Relaxed), 1);

    // broker-b's client ends with its task: its connection closes, and broker-b goes with it
    // at once, without waiting for the expiry.
    stop_heartbeats.cancel();
    heartbeats.await.expect("heartbeat task");
    eventually("broker-b is gone with its connection", || async {
        route(&reader, &ns.addr, "T").await.is_err()
    })
    .await;
    let stats = ns.server.stats();
    assert_eq!(stats.connection_closes.load(Ordering::Relaxed), 1);
    assert_eq!(stats.expirations.load(Ordering::Relaxed), 1);
    ns.stop().await;
}

#[tokio::test]
async fn a_closed_connection_removes_the_broker_registered_on_it() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let broker_client = RemotingClient::default();
    let broker = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    broker.register(&broker_client, &ns.addr).await;
    let reader = RemotingClient::default();
    route_ok(&reader, &ns.addr, "T").await;

    broker_client.shutdown().await;
    eventually("the broker is gone with its connection", || async {
        route(&reader, &ns.addr, "T").await.is_err()
    })
    .await;
    assert_eq!(
        cluster_info(&reader, &ns.addr).await,
        ClusterInfo::default()
    );
    let stats = ns.server.stats();
    assert_eq!(stats.connection_closes.load(Ordering::Relaxed), 1);
    assert_eq!(stats.expirations.load(Ordering::Relaxed), 0);

    ns.stop().await;
}

#[tokio::test]
async fn unknown_topics_codes_and_bad_requests_get_error_codes() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();

    let (code, remark) = route(&client, &ns.addr, "NoSuchTopic")
        .await
        .map(|_| ())
        .expect_err("unknown topic");
    assert_eq!(code, response::TOPIC_NOT_EXIST);
    assert!(remark.contains("NoSuchTopic"), "{remark}");

    let answer = call(&client, &ns.addr, RemotingCommand::new_request(9999, 0)).await;
    assert_eq!(answer.code, response::REQUEST_CODE_NOT_SUPPORTED);
    let answer = call(
        &client,
        &ns.addr,
        RemotingCommand::new_request(request::SEND_MESSAGE, 0),
    )
    .await;
    assert_eq!(answer.code, response::REQUEST_CODE_NOT_SUPPORTED);

    let broker = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    // A REGISTER_BROKER request with some header fields set (`Some`) or removed (`None`).
    let register_with = |edits: &[(&str, Option<&str>)]| {
        let mut request = broker.register_request();
        for &(key, value) in edits {
            match value {
                Some(value) => request.ext_fields.insert(key, value),
                None => request.ext_fields.remove(key),
            };
        }
        request
    };
    let truncated_body = &b"{\"topicConfigSerializeWrapper\":"[..];
    let cases = [
        (
            "no brokerName",
            register_with(&[("brokerName", None)]),
            "brokerName",
        ),
        (
            "brokerId is not a number",
            register_with(&[("brokerId", Some("zero"))]),
            "brokerId",
        ),
        (
            "route request without a topic",
            RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC, 0),
            "topic",
        ),
        (
            "truncated JSON body",
            register_with(&[("bodyCrc32", None)]).with_body(truncated_body),
            "RegisterBrokerBody",
        ),
        (
            "wrong body CRC",
            register_with(&[("bodyCrc32", Some("12345"))]),
            "crc32 not match",
        ),
        (
            "compressed body",
            register_with(&[("bodyCrc32", None), ("compressed", Some("true"))]),
            "compressedRegister",
        ),
    ];
    let bad_requests = cases.len() as u64;
    for (what, request, remark) in cases {
        let answer = call(&client, &ns.addr, request).await;
        assert_eq!(answer.code, response::SYSTEM_ERROR, "{what}");
        assert!(
            answer.remark.as_deref().is_some_and(|r| r.contains(remark)),
            "{what}: {:?}",
            answer.remark
        );
    }

    // Nothing above registered anything, and the connection still serves.
    assert!(route(&client, &ns.addr, "T").await.is_err());
    broker.register(&client, &ns.addr).await;
    route_ok(&client, &ns.addr, "T").await;
    let errors = ns.server.stats().request_errors.load(Ordering::Relaxed);
    assert_eq!(
        errors,
        bad_requests + 2,
        "the bad requests and the two unsupported codes"
    );
    ns.stop().await;
}

#[tokio::test]
async fn kv_config_round_trips_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = NamesrvConfig {
        kv_config_path: Some(dir.path().join("namesrv").join("kvConfig.json")),
        order_message_enable: true,
        ..NamesrvConfig::default()
    };
    let ns = Namesrv::start(config.clone()).await;
    let client = RemotingClient::default();
    let put = |namespace: &str, key: &str, value: &str| {
        RemotingCommand::new_request(request::PUT_KV_CONFIG, 0).with_header(
            &PutKvConfigRequestHeader {
                namespace: namespace.into(),
                key: key.into(),
                value: value.into(),
            },
        )
    };
    let get = |namespace: &str, key: &str| {
        RemotingCommand::new_request(request::GET_KV_CONFIG, 0).with_header(
            &GetKvConfigRequestHeader {
                namespace: namespace.into(),
                key: key.into(),
            },
        )
    };
    let value_of = |answer: RemotingCommand| {
        (answer.code == response::SUCCESS).then(|| {
            answer
                .decode_header::<GetKvConfigResponseHeader>()
                .expect("header")
                .value
        })
    };

    for request in [
        put("ns", "k1", "v1"),
        put("ns", "k2", "v2"),
        put("ns", "k1", "v1b"),
    ] {
        assert_eq!(
            call(&client, &ns.addr, request).await.code,
            response::SUCCESS
        );
    }
    assert_eq!(
        value_of(call(&client, &ns.addr, get("ns", "k1")).await),
        Some(Some("v1b".into()))
    );
    let missing = call(&client, &ns.addr, get("ns", "nope")).await;
    assert_eq!(missing.code, response::QUERY_NOT_FOUND);

    let list = |namespace: &str| {
        RemotingCommand::new_request(request::GET_KVLIST_BY_NAMESPACE, 0).with_header(
            &GetKvListByNamespaceRequestHeader {
                namespace: namespace.into(),
            },
        )
    };
    let table: KvTable = json(&client, &ns.addr, list("ns")).await;
    assert_eq!(
        table.table,
        BTreeMap::from([("k1".into(), "v1b".into()), ("k2".into(), "v2".into())])
    );
    assert_eq!(
        call(&client, &ns.addr, list("absent")).await.code,
        response::QUERY_NOT_FOUND
    );

    let delete = RemotingCommand::new_request(request::DELETE_KV_CONFIG, 0).with_header(
        &DeleteKvConfigRequestHeader {
            namespace: "ns".into(),
            key: "k2".into(),
        },
    );
    assert_eq!(
        call(&client, &ns.addr, delete).await.code,
        response::SUCCESS
    );
    assert_eq!(
        call(&client, &ns.addr, get("ns", "k2")).await.code,
        response::QUERY_NOT_FOUND
    );
    let no_key = RemotingCommand::new_request(request::PUT_KV_CONFIG, 0);
    assert_eq!(
        call(&client, &ns.addr, no_key).await.code,
        response::SYSTEM_ERROR
    );

    // Order topic config: brokers get the namespace when they register, clients the entry of
    // their topic in the route.
    let order = put(ORDER_TOPIC_CONFIG, "Ordered", "broker-a:4");
    assert_eq!(call(&client, &ns.addr, order).await.code, response::SUCCESS);
    let broker = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("Ordered", 4, 6);
    let answer = broker.register(&client, &ns.addr).await;
    let table = KvTable::decode(&answer.body).expect("KV table in the answer");
    assert_eq!(table.table["Ordered"], "broker-a:4");
    let route = route_ok(&client, &ns.addr, "Ordered").await;
    assert_eq!(route.order_topic_conf.as_deref(), Some("broker-a:4"));
    ns.stop().await;

    let again = Namesrv::start(config).await;
    let client = RemotingClient::default();
    assert_eq!(
        value_of(call(&client, &again.addr, get("ns", "k1")).await),
        Some(Some("v1b".into()))
    );
    assert_eq!(
        call(&client, &again.addr, get("ns", "k2")).await.code,
        response::QUERY_NOT_FOUND
    );
    again.stop().await;
}

#[tokio::test]
async fn two_nameservers_side_by_side_serve_independently() {
    let one = Namesrv::start(NamesrvConfig::default()).await;
    let two = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let a = Broker::master("C1", "broker-a", "10.0.0.1:10911").with_topic("T", 4, 6);
    let b = Broker::master("C1", "broker-b", "10.0.0.2:10911").with_topic("T", 8, 6);

    a.register(&client, &one.addr).await;
    assert!(
        route(&client, &two.addr, "T").await.is_err(),
        "two knows nothing yet"
    );
    // The broker registers with each NameServer; each holds its own table.
    a.register(&client, &two.addr).await;
    b.register(&client, &two.addr).await;
    assert_eq!(
        broker_names(&route_ok(&client, &one.addr, "T").await),
        ["broker-a"]
    );
    assert_eq!(
        broker_names(&route_ok(&client, &two.addr, "T").await),
        ["broker-a", "broker-b"]
    );

    a.unregister(&client, &one.addr).await;
    assert!(route(&client, &one.addr, "T").await.is_err());
    assert_eq!(
        broker_names(&route_ok(&client, &two.addr, "T").await),
        ["broker-a", "broker-b"]
    );
    one.stop().await;
    assert_eq!(route_ok(&client, &two.addr, "T").await.queue_datas.len(), 2);
    two.stop().await;
}

#[tokio::test]
async fn topics_can_be_deleted_and_brokers_made_read_only() {
    let ns = Namesrv::start(NamesrvConfig::default()).await;
    let client = RemotingClient::default();
    let a = Broker::master("C1", "broker-a", "10.0.0.1:10911")
        .with_topic("T", 4, 6)
        .with_topic("U", 4, 6);
    let c = Broker::master("C2", "broker-c", "10.0.0.3:10911").with_topic("T", 4, 6);
    a.register(&client, &ns.addr).await;
    c.register(&client, &ns.addr).await;

    let wipe = RemotingCommand::new_request(request::WIPE_WRITE_PERM_OF_BROKER, 0).with_header(
        &WipeWritePermOfBrokerRequestHeader {
            broker_name: "broker-a".into(),
        },
    );
    let answer = call(&client, &ns.addr, wipe).await;
    let header: WipeWritePermOfBrokerResponseHeader = answer.decode_header().expect("header");
    assert_eq!(header.wipe_topic_count, 2);
    let perms: Vec<(String, i32)> = route_ok(&client, &ns.addr, "T")
        .await
        .queue_datas
        .into_iter()
        .map(|q| (q.broker_name, q.perm))
        .collect();
    assert_eq!(perms, [("broker-a".into(), 4), ("broker-c".into(), 6)]);

    let delete = |topic: &str, cluster: Option<&str>| {
        RemotingCommand::new_request(request::DELETE_TOPIC_IN_NAMESRV, 0).with_header(
            &DeleteTopicFromNamesrvRequestHeader {
                topic: topic.into(),
                cluster_name: cluster.map(Into::into),
            },
        )
    };
    assert_eq!(
        call(&client, &ns.addr, delete("T", Some("C1"))).await.code,
        response::SUCCESS
    );
    assert_eq!(
        broker_names(&route_ok(&client, &ns.addr, "T").await),
        ["broker-c"]
    );
    assert_eq!(
        call(&client, &ns.addr, delete("U", None)).await.code,
        response::SUCCESS
    );
    assert!(route(&client, &ns.addr, "U").await.is_err());
    assert_eq!(ns.server.stats().topics.load(Ordering::Relaxed), 1);
    ns.stop().await;
}

#[tokio::test]
async fn run_reports_bad_config_and_busy_ports_and_stops_when_cancelled() {
    let invalid = NamesrvConfig {
        scan_interval_ms: 0,
        ..NamesrvConfig::default()
    };
    let err = tributary_namesrv::run(invalid, CancellationToken::new()).await;
    assert!(matches!(err, Err(NamesrvError::Config { .. })), "{err:?}");

    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let busy = NamesrvConfig {
        listen: taken.local_addr().expect("addr"),
        ..NamesrvConfig::default()
    };
    let err = tributary_namesrv::run(busy, CancellationToken::new()).await;
    assert!(matches!(err, Err(NamesrvError::Bind { .. })), "{err:?}");

    let shutdown = CancellationToken::new();
    let free = NamesrvConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        ..NamesrvConfig::default()
    };
    let running = tokio::spawn(tributary_namesrv::run(free, shutdown.clone()));
    shutdown.cancel();
    let result = tokio::time::timeout(TIMEOUT, running).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
