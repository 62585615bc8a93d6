//! Transactional messages end to end against the real `tributary server`: a half message is
//! invisible until its commit, a rolled-back one never appears, an "unknown" local state is
//! settled by the broker's CHECK_TRANSACTION_STATE, a transaction nobody answers is discarded
//! after the last check, a pending transaction survives a SIGKILL of the broker and is
//! committed once after the restart, and /metrics counts all of it. One test speaks the wire
//! with hand-written frames as Java's transactional producer does (one-way END_TRANSACTION,
//! the broker's CHECK_TRANSACTION_STATE read field by field).
//!
//! Every wait polls observable state until a deadline; nothing asserts on time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    TestServer, config_file, create_topic_routed, fast_client, metric, stored, wait_until,
};
use tributary_client::producer::{LocalTransactionState, TransactionListener};
use tributary_client::{Admin, Message, MessageExt, MessageQueue, Producer, ProducerConfig};

const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
const PREPARED: &str = "tributary_broker_transactions_prepared_total";
const COMMITTED: &str = "tributary_broker_transactions_committed_total";
const ROLLED_BACK: &str = "tributary_broker_transactions_rolled_back_total";
const CHECKS: &str = "tributary_broker_transaction_checks_total";
const DISCARDED: &str = "tributary_broker_transactions_discarded_total";
const PENDING: &str = "tributary_broker_transactions_pending";

fn start(data: &Path, config: &Path) -> TestServer {
    TestServer::start(data, &["--config", config.to_str().expect("utf-8 path")])
}

/// Checks every 300 ms, practically forever.
const CHECK_OFTEN: &str = "transaction_timeout_ms = 300\ntransaction_check_interval_ms = 300\ntransaction_check_max = 1000";

/// A server with `broker_section` in its configuration, an admin client, and `topic` created.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    server: TestServer,
    admin: Admin,
}

impl Fixture {
    async fn start(broker_section: &str, topic: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = config_file(dir.path(), broker_section);
        let server = start(&dir.path().join("data"), &config);
        let admin = Admin::start(fast_client(&server.namesrv))
            .await
            .expect("admin");
        create_topic(&admin, &server, topic).await;
        Self {
            dir,
            config,
            server,
            admin,
        }
    }

    /// A started producer of `group` with `config`'s other settings and a [`Local`] listener.
    async fn producer(&self, mut config: ProducerConfig, group: &str) -> (Producer, Arc<Local>) {
        group.clone_into(&mut config.group);
        let producer = Producer::start(fast_client(&self.server.namesrv), config)
            .await
            .expect("producer");
        let local = Arc::new(Local::default());
        producer.set_transaction_listener(local.clone());
        (producer, local)
    }
}

/// Creates `topic` and `TxRoute` (whose route leads to the broker, see [`system_max`]).
async fn create_topic(admin: &Admin, server: &TestServer, topic: &str) {
    for t in [topic, "TxRoute"] {
        create_topic_routed(admin, server, t, 2).await;
    }
}

/// Bodies of every message stored in `topic`, sorted.
async fn bodies(admin: &Admin, topic: &str) -> Vec<String> {
    let out = stored(admin, topic).await;
    let mut b: Vec<String> = out
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    b.sort();
    b
}

/// End offset of queue 0 of a system topic (half or op log). The system topics have no route:
/// the broker's address is learnt from the route of a user topic.
async fn system_max(admin: &Admin, topic: &str) -> i64 {
    let _ = admin.instance().update_route("TxRoute").await;
    let mq = MessageQueue {
        topic: topic.into(),
        broker_name: "broker-a".into(),
        queue_id: 0,
    };
    admin.instance().max_offset(&mq).await.unwrap_or(-1)
}

/// Executes by the body's first word; checks answer Commit once `allow_commit` is set.
#[derive(Default)]
struct Local {
    allow_commit: AtomicBool,
    checks: AtomicUsize,
}

impl TransactionListener for Local {
    fn execute_local_transaction(&self, message: &Message) -> LocalTransactionState {
        match message.body.as_ref() {
            b if b.starts_with(b"commit") => LocalTransactionState::Commit,
            b if b.starts_with(b"rollback") => LocalTransactionState::Rollback,
            _ => LocalTransactionState::Unknown,
        }
    }

    fn check_local_transaction(&self, _message: &MessageExt) -> LocalTransactionState {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if self.allow_commit.load(Ordering::SeqCst) {
            LocalTransactionState::Commit
        } else {
            LocalTransactionState::Unknown
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rollback_and_checked_unknown() {
    let f = Fixture::start(CHECK_OFTEN, "Tx").await;
    let (server, admin) = (&f.server, &f.admin);
    let (producer, local) = f.producer(ProducerConfig::default(), "tx-pg").await;

    let r = producer
        .send_message_in_transaction(Message::new("Tx", "rollback-1"))
        .await
        .expect("send rollback");
    assert_eq!(r.state, LocalTransactionState::Rollback);
    let r = producer
        .send_message_in_transaction(Message::new("Tx", "unknown-1"))
        .await
        .expect("send unknown");
    assert_eq!(r.state, LocalTransactionState::Unknown);
    // Checked, answered Unknown: still invisible.
    wait_until("the broker checks the unknown transaction", async || {
        local.checks.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(bodies(admin, "Tx").await.is_empty());
    assert_eq!(metric(server, PENDING), Some(1.0));
    assert_eq!(metric(server, ROLLED_BACK), Some(1.0));
    assert!(metric(server, CHECKS).is_some_and(|n| n >= 1.0));
    local.allow_commit.store(true, Ordering::SeqCst);
    wait_until("a check commits the unknown transaction", async || {
        bodies(admin, "Tx").await == ["unknown-1"]
    })
    .await;
    let r = producer
        .send_message_in_transaction(Message::new("Tx", "commit-1"))
        .await
        .expect("send commit");
    assert_eq!(r.state, LocalTransactionState::Commit);
    wait_until("the committed message is visible", async || {
        bodies(admin, "Tx").await == ["commit-1", "unknown-1"]
    })
    .await;
    // Three transactions, three op records: nothing pending, the rollback never shown.
    wait_until("every transaction is resolved", async || {
        system_max(admin, OP_TOPIC).await == 3
    })
    .await;
    assert_eq!(bodies(admin, "Tx").await, ["commit-1", "unknown-1"]);
    assert_eq!(metric(server, PREPARED), Some(3.0));
    assert_eq!(metric(server, COMMITTED), Some(2.0));
    assert_eq!(metric(server, ROLLED_BACK), Some(1.0));
    assert_eq!(metric(server, PENDING), Some(0.0));
    assert_eq!(metric(server, DISCARDED), Some(0.0));
    producer.shutdown().await;
    f.admin.shutdown().await;
    f.server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_transaction_is_discarded_after_the_last_check() {
    let f = Fixture::start(
        "transaction_timeout_ms = 200\ntransaction_check_interval_ms = 200\ntransaction_check_max = 2",
        "TxGone",
    )
    .await;
    let (server, admin) = (&f.server, &f.admin);
    let (producer, _) = f.producer(ProducerConfig::default(), "gone-pg").await;
    producer
        .send_message_in_transaction(Message::new("TxGone", "unknown-gone"))
        .await
        .expect("send");
    // No live producer from here on.
    producer.shutdown().await;
    wait_until("the transaction is discarded", async || {
        system_max(admin, OP_TOPIC).await == 1
    })
    .await;
    // The half message and one copy per check (two), then nothing more.
    assert_eq!(system_max(admin, HALF_TOPIC).await, 3);
    assert!(bodies(admin, "TxGone").await.is_empty());
    assert_eq!(metric(server, DISCARDED), Some(1.0));
    assert_eq!(metric(server, CHECKS), Some(2.0));
    assert_eq!(metric(server, PENDING), Some(0.0));
    assert_eq!(metric(server, COMMITTED), Some(0.0));
    f.admin.shutdown().await;
    f.server.terminate();
}

/// The broker is SIGKILLed while one transaction is pending (checked once, answered Unknown),
/// one is committed and one rolled back. The producer stays up, as an application would, and
/// the broker restarts on the same addresses: the pending transaction is checked again (the
/// pending set is rebuilt from the half and op queues), committed once by the check, and
/// shown once; the two resolved before the kill stay as they were, also after a clean
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_transaction_survives_sigkill_and_commits_once() {
    let f = Fixture::start(CHECK_OFTEN, "TxCrash").await;
    let (producer, local) = f.producer(ProducerConfig::default(), "crash-pg").await;
    let restart = {
        let (namesrv, broker) = (f.server.namesrv.clone(), f.server.broker.clone());
        let data = f.dir.path().join("data");
        let config = f.config.to_str().expect("utf-8 path").to_string();
        move || TestServer::start_on(&data, &namesrv, &broker, &["--config", &config])
    };
    let Fixture {
        dir: _dir,
        server,
        admin,
        ..
    } = f;
    for body in ["commit-before", "rollback-before", "unknown-crash"] {
        producer
            .send_message_in_transaction(Message::new("TxCrash", body))
            .await
            .expect("send in transaction");
    }
    wait_until(
        "the unknown transaction is checked before the kill",
        async || local.checks.load(Ordering::SeqCst) >= 1,
    )
    .await;
    wait_until("the other two are resolved before the kill", async || {
        system_max(&admin, OP_TOPIC).await == 2
    })
    .await;
    assert_eq!(bodies(&admin, "TxCrash").await, ["commit-before"]);
    assert_eq!(metric(&server, PENDING), Some(1.0));

    assert!(!server.kill().success());
    let checks_at_kill = local.checks.load(Ordering::SeqCst);
    let server = tokio::task::spawn_blocking(restart.clone())
        .await
        .expect("restart");
    // Rebuilt from the logs: one pending, checked again through the producer's new
    // connection, still unknown, so still invisible.
    assert_eq!(metric(&server, PENDING), Some(1.0));
    wait_until(
        "the recovered transaction is checked after the restart",
        async || local.checks.load(Ordering::SeqCst) > checks_at_kill,
    )
    .await;
    assert_eq!(bodies(&admin, "TxCrash").await, ["commit-before"]);
    local.allow_commit.store(true, Ordering::SeqCst);
    wait_until("a check commits the recovered transaction", async || {
        system_max(&admin, OP_TOPIC).await == 3
    })
    .await;
    assert_eq!(
        bodies(&admin, "TxCrash").await,
        ["commit-before", "unknown-crash"]
    );
    assert_eq!(metric(&server, PENDING), Some(0.0));
    assert_eq!(metric(&server, COMMITTED), Some(1.0));

    // A clean restart finds nothing pending and shows each committed message once.
    producer.shutdown().await;
    assert!(server.terminate().success());
    let server = tokio::task::spawn_blocking(restart).await.expect("restart");
    assert_eq!(metric(&server, PENDING), Some(0.0));
    assert_eq!(
        bodies(&admin, "TxCrash").await,
        ["commit-before", "unknown-crash"]
    );
    assert_eq!(system_max(&admin, OP_TOPIC).await, 3);
    admin.shutdown().await;
    server.terminate();
}

/// A producer that has not sent anything knows no broker, so no broker can ask it about its
/// group's transactions; declaring its topics (Java 5's `setTopics`) makes it learn their
/// brokers and heartbeat to them at start. Here the producer that began the transaction is
/// gone and a new one of its group, which never sends, settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_declaring_its_topics_settles_its_groups_transaction() {
    let f = Fixture::start(CHECK_OFTEN, "TxLate").await;
    let (first, _) = f.producer(ProducerConfig::default(), "late-pg").await;
    first
        .send_message_in_transaction(Message::new("TxLate", "unknown-late"))
        .await
        .expect("send");
    first.shutdown().await;

    let declared = ProducerConfig {
        topics: vec!["TxLate".into()],
        ..ProducerConfig::default()
    };
    let (second, local) = f.producer(declared, "late-pg").await;
    local.allow_commit.store(true, Ordering::SeqCst);
    wait_until("the new producer commits the transaction", async || {
        bodies(&f.admin, "TxLate").await == ["unknown-late"]
    })
    .await;
    assert!(local.checks.load(Ordering::SeqCst) >= 1);
    assert_eq!(metric(&f.server, PENDING), Some(0.0));
    second.shutdown().await;
    f.admin.shutdown().await;
    f.server.terminate();
}

/// The offset in the commit log an offset message id names (its last 16 hex digits).
fn commit_log_offset(offset_msg_id: &str) -> i64 {
    let hex = &offset_msg_id[offset_msg_id.len() - 16..];
    i64::from_str_radix(hex, 16).expect("hex offset")
}

/// A producer speaking the wire as Java's `TransactionMQProducer` does, frame by frame: half
/// messages by SEND_MESSAGE_V2 with `TRAN_MSG`/`PGROUP` and the prepared flag, a heartbeat as
/// a producer of the group, a one-way END_TRANSACTION to roll one back, and for the other the
/// broker's CHECK_TRANSACTION_STATE (one-way, the half message in its body, Java's header
/// fields) answered with a one-way END_TRANSACTION from the check. The broker rolls back and
/// commits as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn java_wire_frames_half_messages_check_and_one_way_ends() {
    use common::java::{
        call, java_oneway, java_producer, props, read_frame, v2_header, write_frame,
    };

    let f = Fixture::start(CHECK_OFTEN, "JTx").await;
    let broker = f.server.broker.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let mut s = java_producer(&broker, "10.0.0.7@java-tx", "java-tx-pg");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let half = |s: &mut std::net::TcpStream, opaque: i32, body: &str, uniq: &str| {
            let properties = props(&[
                ("TRAN_MSG", "true"),
                ("PGROUP", "java-tx-pg"),
                ("UNIQ_KEY", uniq),
                ("WAIT", "true"),
            ]);
            let mut header = v2_header("java-tx-pg", "JTx", &properties);
            header["e"] = "0".into(); // queue 0
            header["f"] = "4".into(); // TRANSACTION_PREPARED_TYPE
            let r = call(s, 310, opaque, header, body.as_bytes());
            assert_eq!(r["code"], 0, "{r}");
            r["extFields"].clone()
        };
        // Rolled back by the producer at once, one-way, as Java's endTransaction does.
        let rolled = half(
            &mut s,
            2,
            "java-rollback",
            "0A00000700002A9F0000000000000001",
        );
        let offset_id = rolled["msgId"].as_str().expect("msgId").to_owned();
        write_frame(
            &mut s,
            &java_oneway(
                37,
                3,
                serde_json::json!({
                    "producerGroup": "java-tx-pg",
                    "tranStateTableOffset": rolled["queueOffset"].as_str().expect("queueOffset"),
                    "commitLogOffset": commit_log_offset(&offset_id).to_string(),
                    "commitOrRollback": "12",
                    "fromTransactionCheck": "false",
                    "msgId": "0A00000700002A9F0000000000000001",
                    "transactionId": "0A00000700002A9F0000000000000001",
                }),
            ),
            b"",
        );
        // Left unknown: the broker checks it with this connection.
        let pending = half(&mut s, 4, "java-commit", "0A00000700002A9F0000000000000002");
        let (check, body) = loop {
            let (h, body) = read_frame(&mut s);
            if h["code"] == 39 {
                break (h, body);
            }
        };
        // The answer, from the check, as Java's processTransactionState sends it.
        let ext = &check["extFields"];
        write_frame(
            &mut s,
            &java_oneway(
                37,
                5,
                serde_json::json!({
                    "topic": ext["topic"],
                    "producerGroup": "java-tx-pg",
                    "tranStateTableOffset": ext["tranStateTableOffset"],
                    "commitLogOffset": ext["commitLogOffset"],
                    "commitOrRollback": "8",
                    "fromTransactionCheck": "true",
                    "msgId": ext["msgId"],
                    "transactionId": ext["transactionId"],
                }),
            ),
            b"",
        );
        (pending, check, body, s)
    })
    .await
    .expect("java producer");
    let (pending, check, body, _connection) = checked;

    // CHECK_TRANSACTION_STATE as Java's broker sends it: one-way, the fields of
    // CheckTransactionStateRequestHeader, and the half message with its real topic and queue.
    assert_eq!(check["flag"].as_i64().map(|f| f & 2), Some(2), "{check}");
    let ext = &check["extFields"];
    assert_eq!(ext["topic"], HALF_TOPIC, "{check}");
    assert_eq!(ext["msgId"], "0A00000700002A9F0000000000000002", "{check}");
    assert_eq!(ext["transactionId"], ext["msgId"], "{check}");
    // The check names the copy of the half message it appended to count the checks (as
    // Java's putBackHalfMsgQueue): later in the log and in the half queue than the original.
    let offset_id = ext["offsetMsgId"].as_str().expect("offsetMsgId");
    assert_eq!(
        ext["commitLogOffset"],
        commit_log_offset(offset_id).to_string(),
        "{check}"
    );
    let number = |v: &serde_json::Value| v.as_str().and_then(|t| t.parse::<i64>().ok());
    let original = pending["msgId"].as_str().expect("msgId");
    assert!(
        commit_log_offset(offset_id) > commit_log_offset(original),
        "{check}"
    );
    assert!(
        number(&ext["tranStateTableOffset"]) > number(&pending["queueOffset"]),
        "{check}"
    );
    let half = tributary_client::record::decode_messages(&body.into(), "broker-a")
        .expect("the body is a message");
    assert_eq!(half.len(), 1);
    assert_eq!(half[0].topic, "JTx");
    assert_eq!(half[0].queue_id, 0);
    assert_eq!(&half[0].body[..], b"java-commit");
    assert_eq!(half[0].property("TRAN_MSG"), Some("true"));
    assert_eq!(half[0].property("PGROUP"), Some("java-tx-pg"));

    wait_until("the checked transaction is committed", async || {
        bodies(&f.admin, "JTx").await == ["java-commit"]
    })
    .await;
    wait_until("both ends are counted", async || {
        metric(&f.server, COMMITTED) == Some(1.0) && metric(&f.server, ROLLED_BACK) == Some(1.0)
    })
    .await;
    assert_eq!(metric(&f.server, PENDING), Some(0.0));
    assert_eq!(bodies(&f.admin, "JTx").await, ["java-commit"]);
    f.admin.shutdown().await;
    f.server.terminate();
}
