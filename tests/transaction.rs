//! Transactional messages end to end against the real `tributary server`: a half message is
//! invisible until its commit, a rolled-back one never appears, an "unknown" local state is
//! settled by the broker's CHECK_TRANSACTION_STATE, and a transaction nobody answers is
//! discarded after the last check.
//!
//! Every wait polls observable state until a deadline; nothing asserts on time.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestServer, stored};
use tributary_client::admin::{TopicSpec, TopicTarget};
use tributary_client::producer::{LocalTransactionState, TransactionListener};
use tributary_client::{
    Admin, ClientConfig, Message, MessageExt, MessageQueue, Producer, ProducerConfig,
};

const DEADLINE: Duration = Duration::from_secs(60);
const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";

fn client(namesrv: &str) -> ClientConfig {
    let mut config = ClientConfig::new(namesrv);
    config.poll_name_server_interval = Duration::from_millis(300);
    config.heartbeat_broker_interval = Duration::from_millis(300);
    config
}

fn config_file(dir: &Path, broker_section: &str) -> PathBuf {
    let path = dir.join("tributary.toml");
    std::fs::write(&path, format!("[broker]\n{broker_section}\n")).expect("write config");
    path
}

fn start(data: &Path, config: &Path) -> TestServer {
    TestServer::start(data, &["--config", config.to_str().expect("utf-8 path")])
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_topic(admin: &Admin, server: &TestServer, topic: &str) {
    let target = TopicTarget::Broker(server.broker.clone());
    for t in [topic, "TxRoute"] {
        create_one(admin, &target, t).await;
    }
}

async fn create_one(admin: &Admin, target: &TopicTarget, topic: &str) {
    wait_until("the topic is created and routed", async || {
        admin
            .create_topic(&TopicSpec::new(topic, 2), target)
            .await
            .is_ok()
            && admin
                .topic_route(topic)
                .await
                .is_ok_and(|r| !r.queue_datas.is_empty())
    })
    .await;
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
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(
        dir.path(),
        "transaction_timeout_ms = 300\ntransaction_check_interval_ms = 300\ntransaction_check_max = 1000",
    );
    let server = start(&dir.path().join("data"), &config);
    let admin = Admin::start(client(&server.namesrv)).await.expect("admin");
    create_topic(&admin, &server, "Tx").await;
    let producer = Producer::start(client(&server.namesrv), ProducerConfig::new("tx-pg"))
        .await
        .expect("producer");
    let local = Arc::new(Local::default());
    producer.set_transaction_listener(local.clone());

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
    assert!(bodies(&admin, "Tx").await.is_empty());
    local.allow_commit.store(true, Ordering::SeqCst);
    wait_until("a check commits the unknown transaction", async || {
        bodies(&admin, "Tx").await == ["unknown-1"]
    })
    .await;
    let r = producer
        .send_message_in_transaction(Message::new("Tx", "commit-1"))
        .await
        .expect("send commit");
    assert_eq!(r.state, LocalTransactionState::Commit);
    wait_until("the committed message is visible", async || {
        bodies(&admin, "Tx").await == ["commit-1", "unknown-1"]
    })
    .await;
    // Three transactions, three op records: nothing pending, the rollback never shown.
    wait_until("every transaction is resolved", async || {
        system_max(&admin, OP_TOPIC).await == 3
    })
    .await;
    assert_eq!(bodies(&admin, "Tx").await, ["commit-1", "unknown-1"]);
    producer.shutdown().await;
    admin.shutdown().await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_transaction_is_discarded_after_the_last_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(
        dir.path(),
        "transaction_timeout_ms = 200\ntransaction_check_interval_ms = 200\ntransaction_check_max = 2",
    );
    let server = start(&dir.path().join("data"), &config);
    let admin = Admin::start(client(&server.namesrv)).await.expect("admin");
    create_topic(&admin, &server, "TxGone").await;
    let producer = Producer::start(client(&server.namesrv), ProducerConfig::new("gone-pg"))
        .await
        .expect("producer");
    producer.set_transaction_listener(Arc::new(Local::default()));
    producer
        .send_message_in_transaction(Message::new("TxGone", "unknown-gone"))
        .await
        .expect("send");
    // No live producer from here on.
    producer.shutdown().await;
    wait_until("the transaction is discarded", async || {
        system_max(&admin, OP_TOPIC).await == 1
    })
    .await;
    // The half message and one copy per check (two), then nothing more.
    assert_eq!(system_max(&admin, HALF_TOPIC).await, 3);
    assert!(bodies(&admin, "TxGone").await.is_empty());
    admin.shutdown().await;
    server.terminate();
}
