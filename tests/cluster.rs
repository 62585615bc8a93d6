//! Cluster mode with the real binary: two `tributary namesrv` processes side by side and a
//! `tributary broker` registering with both; its topics are routed by each, and a broker
//! that shuts down leaves both.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::TestServer;
use tributary_protocol::body::{JsonBody, TopicRouteData};
use tributary_protocol::header::{CreateTopicRequestHeader, GetRouteInfoRequestHeader};
use tributary_protocol::{RemotingCommand, codes};
use tributary_remoting::RemotingClient;

const T: Duration = Duration::from_secs(10);

async fn route(client: &RemotingClient, namesrv: &str, topic: &str) -> Option<TopicRouteData> {
    let request = RemotingCommand::new_request(codes::request::GET_ROUTEINFO_BY_TOPIC, 0)
        .with_header(&GetRouteInfoRequestHeader {
            topic: topic.into(),
            accept_standard_json_only: None,
        });
    let r = client
        .invoke(namesrv, request, T)
        .await
        .expect("NameServer answers");
    (r.code == codes::response::SUCCESS).then(|| TopicRouteData::decode(&r.body).expect("route"))
}

/// Polls `check` until it holds or 30 s pass.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_broker_registers_with_every_namesrv_and_leaves_them_on_shutdown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns_a = TestServer::spawn(&[
        "namesrv",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    let ns_b = TestServer::spawn(&[
        "namesrv",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
    ]);
    assert!(!ns_a.namesrv.is_empty() && ns_a.broker.is_empty());
    let both = format!("{};{}", ns_a.namesrv, ns_b.namesrv);
    let data = dir.path().to_str().expect("UTF-8");
    let broker = TestServer::spawn(&[
        "broker",
        "--namesrv",
        &both,
        "--broker-listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
    ]);
    assert!(broker.namesrv.is_empty() && !broker.broker.is_empty());

    let client = RemotingClient::default();
    let create = CreateTopicRequestHeader {
        topic: "Clustered".into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 3,
        write_queue_nums: 3,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        topic_sys_flag: None,
        order: false,
        attributes: None,
        force: None,
    };
    let r = client
        .invoke(
            &broker.broker,
            RemotingCommand::new_request(codes::request::UPDATE_AND_CREATE_TOPIC, 0)
                .with_header(&create),
            T,
        )
        .await
        .expect("create");
    assert_eq!(r.code, codes::response::SUCCESS, "{:?}", r.remark);

    for ns in [&ns_a.namesrv, &ns_b.namesrv] {
        let r = route(&client, ns, "Clustered")
            .await
            .expect("both NameServers route the topic");
        assert_eq!(r.queue_datas[0].write_queue_nums, 3);
        assert_eq!(r.broker_datas[0].broker_addrs.get(&0), Some(&broker.broker));
    }

    // A clean shutdown unregisters from both.
    assert!(broker.terminate().success());
    for ns in [&ns_a.namesrv, &ns_b.namesrv] {
        eventually("the broker has left", async || {
            route(&client, ns, "Clustered").await.is_none()
        })
        .await;
    }
    client.shutdown().await;
    assert!(ns_a.terminate().success());
    assert!(ns_b.terminate().success());
}

#[test]
fn a_broker_without_namesrv_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args([
            "broker",
            "--broker-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--namesrv"), "{err}");
}
