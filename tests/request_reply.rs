//! Request-reply end to end against the real `tributary server`: a requester gets its reply;
//! many concurrent requests each get their own; a request nobody answers times out, and a
//! reply arriving after that is acknowledged and dropped; a reply for a requester that is not
//! connected, or that refuses the push, is answered SYSTEM_ERROR, as the Java broker does;
//! replies are stored unless `store_reply_messages` is off; the reply topic and request-reply
//! survive a broker restart. A last test speaks the protocol with hand-written
//! JSON frames, field for field as a Java 4.x client writes and reads them, as requester and as
//! replier.
//!
//! Every wait polls observable state until a deadline; nothing asserts on time.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::java::{call, java_producer, java_request, props, read_frame, v2_header, write_frame};
use common::{TestServer, create_topic_routed, stored, wait_until};
use parking_lot::Mutex;
use tributary_client::consumer::Listener;
use tributary_client::{
    Admin, ClientConfig, ClientError, ConsumeConcurrentlyStatus, ConsumeFrom, ConsumerConfig,
    Message, MessageExt, Producer, ProducerConfig, PushConsumer, SendStatus, Subscription,
    create_reply_message,
};

const DEADLINE: Duration = Duration::from_secs(60);
const REPLY_TOPIC: &str = "DefaultCluster_REPLY_TOPIC";
const SYSTEM_ERROR: i32 = 1;

/// A client with quick route refreshes; heartbeats stay at the default 30 s, so a request
/// relies on the client heartbeating its new connections itself.
fn client(namesrv: &str) -> ClientConfig {
    let mut config = ClientConfig::new(namesrv);
    config.poll_name_server_interval = Duration::from_millis(300);
    config.rebalance_interval = Duration::from_millis(300);
    config
}

/// A responder: consumes `topic` as `group` and answers every request with `re:<body>`,
/// recording each reply send's outcome.
struct Responder {
    consumer: PushConsumer,
    producer: Producer,
    sent: Arc<Mutex<Vec<Result<SendStatus, String>>>>,
}

impl Responder {
    async fn start(namesrv: &str, topic: &str, group: &str) -> Self {
        let producer = Producer::start(client(namesrv), ProducerConfig::new(format!("{group}-p")))
            .await
            .expect("responder producer");
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (p, s) = (producer.clone(), sent.clone());
        let listener = Listener::concurrently(move |messages: Arc<[MessageExt]>, _ctx| {
            let (p, s) = (p.clone(), s.clone());
            async move {
                for m in messages.iter() {
                    let body = format!("re:{}", String::from_utf8_lossy(&m.body));
                    let outcome = p.reply(m, body).await;
                    s.lock()
                        .push(outcome.map(|r| r.status).map_err(|e| e.to_string()));
                }
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        });
        let mut config = ConsumerConfig::new(group);
        config.consume_from = ConsumeFrom::FirstOffset;
        config.broker_suspend_max = Duration::from_secs(2);
        let consumer = PushConsumer::start(
            client(namesrv),
            config,
            vec![Subscription::tag(topic, "*")],
            listener,
        )
        .await
        .expect("responder consumer");
        Self {
            consumer,
            producer,
            sent,
        }
    }

    async fn shutdown(self) {
        self.consumer.shutdown().await;
        self.producer.shutdown().await;
    }
}

/// A server in a fresh directory, an admin client, and `topics` created.
async fn start_server(topics: &[&str]) -> (tempfile::TempDir, TestServer, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    let admin = Admin::start(client(&server.namesrv)).await.expect("admin");
    for topic in topics {
        create_topic_routed(&admin, &server, topic, 4).await;
    }
    (dir, server, admin)
}

async fn producer(namesrv: &str, group: &str) -> Producer {
    Producer::start(client(namesrv), ProducerConfig::new(group))
        .await
        .expect("producer")
}

/// A counter on the server's /metrics.
fn counter(server: &TestServer, name: &str) -> u64 {
    common::metric(server, name).unwrap_or_else(|| panic!("{name} missing from /metrics")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_get_their_own_replies() {
    let (_dir, server, admin) = start_server(&["Svc"]).await;
    let responder = Responder::start(&server.namesrv, "Svc", "svc-responders").await;
    let requester = producer(&server.namesrv, "svc-callers").await;

    // The first request may come before the responder owns its queues; it waits long enough.
    let reply = requester
        .request(
            Message::new("Svc", "hello").with_tags("greet"),
            Duration::from_secs(30),
        )
        .await
        .expect("a reply");
    assert_eq!(&reply.body[..], b"re:hello");
    assert_eq!(reply.topic, REPLY_TOPIC);
    assert_eq!(reply.property("MSG_TYPE"), Some("reply"));
    assert_eq!(
        reply.property("REPLY_TO_CLIENT"),
        Some(requester.instance().client_id())
    );
    assert_eq!(reply.property("TTL"), Some("30000"));
    for name in ["CORRELATION_ID", "PUSH_REPLY_TIME", "ARRIVE_TIME"] {
        assert!(reply.property(name).is_some(), "{name} missing: {reply:?}");
    }

    // Many at once, each waiting for its own correlation id.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..64 {
        let call = requester.request_async(
            Message::new("Svc", format!("q{i}")),
            Duration::from_secs(30),
        );
        calls.spawn(async move { (i, call.await) });
    }
    let mut correlation_ids = std::collections::BTreeSet::new();
    while let Some(joined) = calls.join_next().await {
        let (i, reply) = joined.expect("join");
        let reply = reply.expect("a reply");
        assert_eq!(String::from_utf8_lossy(&reply.body), format!("re:q{i}"));
        correlation_ids.insert(reply.property("CORRELATION_ID").map(str::to_owned));
    }
    assert_eq!(correlation_ids.len(), 64, "one correlation id per request");
    assert_eq!(requester.instance().pending_requests(), 0);
    assert!(
        responder.sent.lock().iter().all(|r| r.is_ok()),
        "{:?}",
        responder.sent.lock()
    );

    // Replies are also stored in the reply topic (store_reply_messages defaults to on). The
    // broker counts and stores a reply after the requester acknowledged it, so this may lag.
    let mut kept = Vec::new();
    wait_until("every reply is stored and counted", async || {
        kept = stored(&admin, REPLY_TOPIC).await;
        kept.len() == 65
            && counter(&server, "tributary_broker_replies_pushed_total") == 65
            && counter(&server, "tributary_broker_replies_stored_total") == 65
    })
    .await;
    assert!(kept.iter().all(|m| m.property("MSG_TYPE") == Some("reply")));
    assert!(responder.sent.lock().iter().all(|r| r.is_ok()));

    requester.shutdown().await;
    responder.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_requests_time_out_and_late_replies_are_dropped() {
    let (_dir, server, admin) = start_server(&["Nobody"]).await;
    let requester = producer(&server.namesrv, "callers").await;
    let err = requester
        .request(
            Message::new("Nobody", "anyone?"),
            Duration::from_millis(500),
        )
        .await
        .expect_err("nobody answers");
    let ClientError::RequestTimeout {
        topic,
        correlation_id,
        timeout,
    } = &err
    else {
        panic!("expected a request timeout, got {err:?}");
    };
    assert_eq!(
        (topic.as_str(), *timeout),
        ("Nobody", Duration::from_millis(500))
    );
    assert_eq!(requester.instance().pending_requests(), 0);

    // The request was stored as an ordinary message, with what a responder needs.
    let mut requests = Vec::new();
    wait_until("the request is readable", async || {
        requests = stored(&admin, "Nobody").await;
        !requests.is_empty()
    })
    .await;
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.property("CORRELATION_ID"),
        Some(correlation_id.as_str())
    );
    assert_eq!(request.property("CLUSTER"), Some("DefaultCluster"));
    assert_eq!(request.property("TTL"), Some("500"));

    // A reply now finds the requester connected, which acknowledges and drops it.
    let late = producer(&server.namesrv, "late").await;
    let sent = late.reply(request, "too late").await.expect("pushed");
    assert_eq!(sent.status, SendStatus::SendOk);
    assert_eq!(requester.instance().pending_requests(), 0);
    assert_eq!(counter(&server, "tributary_broker_replies_pushed_total"), 1);

    // Not a request: no CLUSTER / REPLY_TO_CLIENT to answer to.
    let plain = producer(&server.namesrv, "plain").await;
    plain
        .send(Message::new("Nobody", "not a request"))
        .await
        .expect("sent");
    let mut not_request = None;
    wait_until("the plain message is stored", async || {
        not_request = stored(&admin, "Nobody")
            .await
            .into_iter()
            .find(|m| &m.body[..] == b"not a request");
        not_request.is_some()
    })
    .await;
    let not_request = not_request.expect("stored");
    assert_eq!(not_request.property("CLUSTER"), Some("DefaultCluster"));
    let err = create_reply_message(&not_request, "x").expect_err("not a request");
    assert!(err.to_string().contains("REPLY_TO_CLIENT"), "{err}");

    // A requester shut down while it waits fails at once, not at its timeout.
    let quitter = producer(&server.namesrv, "quitters").await;
    let mut waiting = tokio::task::JoinSet::new();
    waiting.spawn(quitter.request_async(Message::new("Nobody", "bye"), DEADLINE));
    wait_until("the request is stored and waits", async || {
        quitter.instance().pending_requests() == 1
            && stored(&admin, "Nobody")
                .await
                .iter()
                .any(|m| &m.body[..] == b"bye")
    })
    .await;
    quitter.shutdown().await;
    let err = waiting
        .join_next()
        .await
        .expect("one call")
        .expect("join")
        .expect_err("shut down");
    assert!(matches!(err, ClientError::Shutdown { .. }), "{err:?}");

    for p in [requester, late, plain] {
        p.shutdown().await;
    }
    admin.shutdown().await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_to_an_absent_requester_are_refused_with_system_error() {
    let (_dir, server, admin) = start_server(&["Gone"]).await;
    let requester = producer(&server.namesrv, "callers").await;
    requester
        .request(Message::new("Gone", "ping"), Duration::from_millis(300))
        .await
        .expect_err("nobody answers");
    let mut requests = Vec::new();
    wait_until("the request is readable", async || {
        requests = stored(&admin, "Gone").await;
        !requests.is_empty()
    })
    .await;
    let request = requests.remove(0);
    // The requester leaves: its connection closes.
    requester.shutdown().await;

    let replier = producer(&server.namesrv, "repliers").await;
    let err = replier
        .reply(&request, "pong")
        .await
        .expect_err("no requester");
    assert_eq!(err.response_code(), Some(SYSTEM_ERROR), "{err}");
    let text = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(
        text.contains("not found")
            && text.contains(request.property("REPLY_TO_CLIENT").unwrap_or("?")),
        "{text}"
    );
    // A requester id nobody ever had.
    let mut forged = request.clone();
    forged
        .properties
        .insert("REPLY_TO_CLIENT".into(), "10.9.9.9@nobody".into());
    let err = replier.reply(&forged, "pong").await.expect_err("unknown");
    assert_eq!(err.response_code(), Some(SYSTEM_ERROR), "{err}");
    assert!(counter(&server, "tributary_broker_replies_requester_missing_total") >= 2);
    assert_eq!(counter(&server, "tributary_broker_replies_pushed_total"), 0);

    replier.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_reply_works_again_after_a_broker_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_path_buf();
    let server = TestServer::start(&data, &[]);
    let (namesrv, broker) = (server.namesrv.clone(), server.broker.clone());
    let admin = Admin::start(client(&namesrv)).await.expect("admin");
    create_topic_routed(&admin, &server, "Svc", 4).await;
    let responder = Responder::start(&namesrv, "Svc", "svc-responders").await;
    let requester = Producer::start(client(&namesrv), ProducerConfig::new("svc-callers"))
        .await
        .expect("requester");
    let reply = requester
        .request(Message::new("Svc", "before"), Duration::from_secs(30))
        .await
        .expect("a reply before the restart");
    assert_eq!(&reply.body[..], b"re:before");

    assert!(server.terminate().success());
    let server = restart(&data, &namesrv, &broker);

    // The reply topic is back in the route.
    wait_until("the reply topic is routed again", async || {
        admin
            .topic_route(REPLY_TOPIC)
            .await
            .is_ok_and(|r| r.queue_datas.iter().any(|q| q.write_queue_nums == 1))
    })
    .await;
    // The same requester (no periodic heartbeat within the test) and responder reconnect; the
    // requester heartbeats its new connection before the request, so the reply reaches it.
    let mut answered = None;
    wait_until(
        "a request is answered after the restart",
        async || match requester
            .request(Message::new("Svc", "after"), Duration::from_secs(2))
            .await
        {
            Ok(reply) => {
                answered = Some(reply);
                true
            }
            Err(_) => false,
        },
    )
    .await;
    let reply = answered.expect("answered");
    assert_eq!(&reply.body[..], b"re:after");

    requester.shutdown().await;
    responder.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}

fn restart(data: &Path, namesrv: &str, broker: &str) -> TestServer {
    TestServer::start_on(data, namesrv, broker, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_wire_frames_request_and_reply() {
    let (_dir, server, admin) = start_server(&["Svc", "Back"]).await;

    // 1. A Java requester: a producer heartbeat, then a request, then the pushed reply.
    let responder = Responder::start(&server.namesrv, "Svc", "svc-responders").await;
    let broker = server.broker.clone();
    let requester_id = "10.1.2.3@java-requester";
    let pushed = tokio::task::spawn_blocking(move || {
        let mut s = java_producer(&broker, requester_id, "java-requesters");
        let request_props = props(&[
            ("CORRELATION_ID", "5e7a7c8e-0000-4000-8000-000000000001"),
            ("REPLY_TO_CLIENT", requester_id),
            ("TTL", "30000"),
            ("UNIQ_KEY", "0A0102030000000000000000000000AA"),
            ("WAIT", "true"),
        ]);
        let r = call(
            &mut s,
            310,
            2,
            v2_header("java-requesters", "Svc", &request_props),
            b"from java",
        );
        assert_eq!(r["code"], 0, "{r}");
        // The push: PUSH_REPLY_MESSAGE_TO_CLIENT with Java's ReplyMessageRequestHeader.
        let (h, body) = loop {
            let (h, body) = read_frame(&mut s);
            if h["code"] == 326 && h["flag"].as_i64().unwrap_or(0) & 1 == 0 {
                break (h, body);
            }
        };
        write_frame(
            &mut s,
            &serde_json::json!({
                "code": 0, "language": "JAVA", "version": 453, "opaque": h["opaque"],
                "flag": 1, "serializeTypeCurrentRPC": "JSON",
            }),
            b"",
        );
        (h, body)
    })
    .await
    .expect("java requester");
    let (h, body) = pushed;
    assert_eq!(body, b"re:from java");
    let ext = &h["extFields"];
    for field in [
        "producerGroup",
        "topic",
        "defaultTopic",
        "defaultTopicQueueNums",
        "queueId",
        "sysFlag",
        "bornTimestamp",
        "flag",
        "properties",
        "bornHost",
        "storeHost",
        "storeTimestamp",
    ] {
        assert!(ext.get(field).is_some(), "{field} missing from {h}");
    }
    assert_eq!(ext["topic"], REPLY_TOPIC);
    assert_eq!(ext["producerGroup"], "svc-responders-p");
    assert_eq!(ext["storeHost"], server.broker.as_str());
    let pushed_props = ext["properties"].as_str().expect("properties");
    for p in [
        "CORRELATION_ID\u{1}5e7a7c8e-0000-4000-8000-000000000001\u{2}",
        "MSG_TYPE\u{1}reply\u{2}",
        "TTL\u{1}30000\u{2}",
        "PUSH_REPLY_TIME\u{1}",
    ] {
        assert!(pushed_props.contains(p), "{p:?} not in {pushed_props:?}");
    }
    wait_until("the responder's reply send is answered", async || {
        !responder.sent.lock().is_empty()
    })
    .await;
    assert_eq!(*responder.sent.lock(), vec![Ok(SendStatus::SendOk)]);

    // 2. A Java replier answering our requester with SEND_REPLY_MESSAGE_V2 (and V1).
    let requester = producer(&server.namesrv, "callers").await;
    for (code, body) in [(325, "v2 reply"), (324, "v1 reply")] {
        let ask = format!("ask-{code}");
        let mut waiting = tokio::task::JoinSet::new();
        waiting.spawn(requester.request_async(Message::new("Back", ask.clone()), DEADLINE));
        let mut request = None;
        wait_until("the request is stored", async || {
            request = stored(&admin, "Back")
                .await
                .into_iter()
                .find(|m| m.body[..] == *ask.as_bytes());
            request.is_some()
        })
        .await;
        let request = request.expect("stored request");
        let reply_props = props(&[
            (
                "CORRELATION_ID",
                request.property("CORRELATION_ID").unwrap_or(""),
            ),
            ("MSG_TYPE", "reply"),
            (
                "REPLY_TO_CLIENT",
                request.property("REPLY_TO_CLIENT").unwrap_or(""),
            ),
            ("TTL", request.property("TTL").unwrap_or("")),
            ("UNIQ_KEY", "0A0102030000000000000000000000BB"),
            ("WAIT", "true"),
        ]);
        let ext = if code == 325 {
            v2_header("java-repliers", REPLY_TOPIC, &reply_props)
        } else {
            serde_json::json!({
                "producerGroup": "java-repliers", "topic": REPLY_TOPIC,
                "defaultTopic": "TBW102", "defaultTopicQueueNums": "4", "queueId": "0",
                "sysFlag": "0", "bornTimestamp": "1700000000000", "flag": "0",
                "properties": reply_props, "reconsumeTimes": "0", "unitMode": "false",
            })
        };
        let broker = server.broker.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(&broker).expect("connect broker");
            call(&mut s, code, 7, ext, body.as_bytes())
        })
        .await
        .expect("java replier");
        assert_eq!(answer["code"], 0, "{answer}");
        // Java's SendMessageResponseHeader, which Java clients require on SUCCESS.
        for field in ["msgId", "queueId", "queueOffset"] {
            assert!(answer["extFields"].get(field).is_some(), "{answer}");
        }
        let reply = waiting
            .join_next()
            .await
            .expect("one call")
            .expect("join")
            .expect("the reply");
        assert_eq!(String::from_utf8_lossy(&reply.body), body);
    }

    // 3. A reply for a requester that is not connected: SYSTEM_ERROR, as the Java broker.
    let broker = server.broker.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&broker).expect("connect broker");
        let reply_props = props(&[
            ("CORRELATION_ID", "x"),
            ("MSG_TYPE", "reply"),
            ("REPLY_TO_CLIENT", "10.9.9.9@gone"),
        ]);
        let missing = call(
            &mut s,
            325,
            1,
            v2_header("java-repliers", REPLY_TOPIC, &reply_props),
            b"x",
        );
        let no_requester = call(
            &mut s,
            325,
            2,
            v2_header(
                "java-repliers",
                REPLY_TOPIC,
                &props(&[("MSG_TYPE", "reply")]),
            ),
            b"x",
        );
        (missing, no_requester)
    })
    .await
    .expect("java replier");
    for a in [&answer.0, &answer.1] {
        assert_eq!(a["code"], SYSTEM_ERROR, "{a}");
    }
    assert!(
        answer.0["remark"]
            .as_str()
            .unwrap_or("")
            .contains("10.9.9.9@gone")
    );
    assert!(
        answer.1["remark"]
            .as_str()
            .unwrap_or("")
            .contains("REPLY_TO_CLIENT")
    );

    requester.shutdown().await;
    responder.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_push_and_replies_not_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "[broker]\nstore_reply_messages = false\n").expect("config");
    let server = TestServer::start(
        &dir.path().join("data"),
        &["--config", config.to_str().expect("utf-8 path")],
    );
    let admin = Admin::start(client(&server.namesrv)).await.expect("admin");
    create_topic_routed(&admin, &server, "Svc", 4).await;

    // A requester that refuses the push: the replier gets SYSTEM_ERROR, as from Java.
    let broker = server.broker.clone();
    let refusing = tokio::task::spawn_blocking(move || {
        let mut s = java_producer(&broker, "10.1.2.3@refuses", "java-requesters");
        let reply_props = props(&[
            ("CORRELATION_ID", "c-1"),
            ("MSG_TYPE", "reply"),
            ("REPLY_TO_CLIENT", "10.1.2.3@refuses"),
        ]);
        let mut replier = TcpStream::connect(&broker).expect("connect broker");
        write_frame(
            &mut replier,
            &java_request(
                325,
                9,
                v2_header("java-repliers", REPLY_TOPIC, &reply_props),
            ),
            b"x",
        );
        let (push, _) = loop {
            let (h, body) = read_frame(&mut s);
            if h["code"] == 326 {
                break (h, body);
            }
        };
        write_frame(
            &mut s,
            &serde_json::json!({
                "code": 1, "remark": "not now", "language": "JAVA", "version": 453,
                "opaque": push["opaque"], "flag": 1, "serializeTypeCurrentRPC": "JSON",
            }),
            b"",
        );
        read_frame(&mut replier).0
    })
    .await
    .expect("java requester");
    assert_eq!(refusing["code"], SYSTEM_ERROR, "{refusing}");
    assert!(
        refusing["remark"]
            .as_str()
            .is_some_and(|r| r.contains("10.1.2.3@refuses") && r.contains("not now")),
        "{refusing}"
    );
    assert_eq!(
        counter(&server, "tributary_broker_reply_push_failures_total"),
        1
    );

    // With store_reply_messages off, replies reach the requester and are not stored.
    let responder = Responder::start(&server.namesrv, "Svc", "svc-responders").await;
    let requester = producer(&server.namesrv, "callers").await;
    let reply = requester
        .request(Message::new("Svc", "hello"), Duration::from_secs(30))
        .await
        .expect("a reply");
    assert_eq!(&reply.body[..], b"re:hello");
    wait_until("the push is counted", async || {
        counter(&server, "tributary_broker_replies_pushed_total") == 1
    })
    .await;
    assert_eq!(counter(&server, "tributary_broker_replies_stored_total"), 0);
    assert!(stored(&admin, REPLY_TOPIC).await.is_empty());

    requester.shutdown().await;
    responder.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}
