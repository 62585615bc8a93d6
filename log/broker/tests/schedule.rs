//! Delayed and timer messages, consumer send-back, retry and dead-letter topics, through the
//! remoting protocol against an in-process broker. Delivery is observed in the store; times
//! are checked from the records' own store timestamps (a copy is never stored before its due
//! time), never from the test's clock.
// Tests await or abort every task they spawn.
#![allow(clippy::disallowed_methods)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tributary_broker::BrokerConfig;
use tributary_broker::schedule::{PROGRESS_FILE, SCHEDULE_TOPIC, SOURCE_PROPERTY, TIMER_TOPIC};
use tributary_protocol::header::{
    ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
};
use tributary_protocol::message::{BatchMessage, OffsetMessageId, encode_batch, property};
use tributary_protocol::{RemotingCommand, codes};
use tributary_store::record::encode_properties;
use tributary_store::{AcceptAll, FlushMode, StoredMessage};

mod common;

use common::{T, TestBroker, send_header};

use codes::request as rq;
use codes::response as rs;

/// Longest a test waits for a delivery.
const DEADLINE: Duration = Duration::from_secs(30);

/// A SEND_MESSAGE header with properties `props`.
fn header(topic: &str, queue_id: i32, props: &[(&str, &str)]) -> SendMessageRequestHeader {
    send_header(topic, queue_id, &encode_properties(props.iter().copied()))
}

/// A broker without NameServer on a loopback port, over a store in `dir`.
async fn node(dir: tempfile::TempDir, config: BrokerConfig) -> TestBroker {
    TestBroker::open(dir, config, FlushMode::Async).await
}

impl TestBroker {
    async fn send(
        &self,
        topic: &str,
        queue_id: i32,
        body: &str,
        props: &[(&str, &str)],
    ) -> RemotingCommand {
        self.send_with(&header(topic, queue_id, props), body).await
    }

    async fn send_back(
        &self,
        message: &StoredMessage,
        group: &str,
        delay_level: i32,
        max: Option<i32>,
    ) -> RemotingCommand {
        let request = RemotingCommand::new_request(rq::CONSUMER_SEND_MSG_BACK, 0).with_header(
            &ConsumerSendMsgBackRequestHeader {
                offset: message.physical_offset,
                group: group.into(),
                delay_level,
                origin_msg_id: message
                    .property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                    .map(String::from),
                origin_topic: Some(message.topic.clone()),
                unit_mode: Some(false),
                max_reconsume_times: max,
            },
        );
        self.client
            .invoke(&self.addr, request, T)
            .await
            .expect("send back answered")
    }

    /// Every message of a queue, in order.
    fn messages(&self, topic: &str, queue_id: i32) -> Vec<StoredMessage> {
        let got = self
            .store
            .get_messages(topic, queue_id, 0, 10_000, usize::MAX, &AcceptAll);
        got.messages
            .iter()
            .map(|m| m.decode().expect("decode"))
            .collect()
    }

    /// Waits until a queue holds `n` messages (fails if it holds more).
    async fn wait_count(&self, topic: &str, queue_id: i32, n: i64) -> Vec<StoredMessage> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let max = self.store.max_offset(topic, queue_id);
            assert!(
                max <= n,
                "{topic}:{queue_id} holds {max} messages; expected {n}"
            );
            if max == n {
                return self.messages(topic, queue_id);
            }
            assert!(
                Instant::now() < deadline,
                "{topic}:{queue_id} holds {max} messages after {DEADLINE:?}; expected {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn body(m: &StoredMessage) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

fn bodies(ms: &[StoredMessage]) -> Vec<String> {
    ms.iter().map(body).collect()
}

fn config(levels: &str) -> BrokerConfig {
    BrokerConfig {
        delay_levels: levels.into(),
        schedule_flush_interval_ms: 50,
        ..BrokerConfig::default()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ok(r: &RemotingCommand) -> SendMessageResponseHeader {
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    r.decode_header().expect("send header")
}

#[tokio::test]
async fn delay_levels_are_delivered_when_due_in_due_order() {
    let n = node(
        tempfile::tempdir().expect("tempdir"),
        config("300ms 600ms 900ms"),
    )
    .await;
    // Sent in reverse due order to one queue; level 4 is past the table: the last level.
    for (b, level) in [("c", "3"), ("d", "4"), ("a", "1"), ("b", "2")] {
        let h = ok(&n
            .send(
                "Delayed",
                0,
                b,
                &[
                    ("DELAY", level),
                    ("UNIQ_KEY", &format!("U-{b}")),
                    ("TAGS", "t"),
                ],
            )
            .await);
        assert_eq!(h.queue_id, 0, "the answer names the queue asked for");
    }
    // Stored in the schedule queues (queue = level - 1), not yet in the topic.
    assert!(n.store.wait_dispatched(T));
    assert_eq!(n.store.max_offset(SCHEDULE_TOPIC, 0), 1);
    assert_eq!(n.store.max_offset(SCHEDULE_TOPIC, 1), 1);
    assert_eq!(n.store.max_offset(SCHEDULE_TOPIC, 2), 2);
    let entries: Vec<StoredMessage> = (0..3).flat_map(|q| n.messages(SCHEDULE_TOPIC, q)).collect();
    for e in &entries {
        assert_eq!(e.property(property::REAL_TOPIC), Some("Delayed"));
        assert_eq!(e.property(property::REAL_QUEUE_ID), Some("0"));
    }

    let delivered = n.wait_count("Delayed", 0, 4).await;
    assert_eq!(bodies(&delivered), ["a", "b", "c", "d"]);
    for m in &delivered {
        let b = body(m);
        let entry = entries.iter().find(|e| body(e) == b).expect("entry");
        let level: i64 = entry
            .property("DELAY")
            .expect("DELAY")
            .parse()
            .expect("level");
        assert!(level <= 3, "a level past the table is stored as the last");
        let due = entry.store_timestamp + level * 300;
        assert!(
            m.store_timestamp >= due,
            "{b} delivered at {} before it was due at {due}",
            m.store_timestamp
        );
        assert_eq!(m.property("DELAY"), None);
        assert_eq!(m.property(property::REAL_TOPIC), Some("Delayed"));
        assert_eq!(m.property("UNIQ_KEY"), Some(format!("U-{b}").as_str()));
        assert_eq!(m.property("TAGS"), Some("t"));
        assert!(m.property(SOURCE_PROPERTY).is_some());
    }
    assert_eq!(
        n.broker
            .schedule()
            .stats()
            .delivered
            .load(Ordering::Relaxed),
        4
    );
    let deadline = Instant::now() + DEADLINE;
    while n.broker.schedule().stats().pending.load(Ordering::Relaxed) != 0 {
        assert!(
            Instant::now() < deadline,
            "delivered messages still count as pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = n.stop().await;
    let progress =
        std::fs::read_to_string(dir.path().join("broker").join(PROGRESS_FILE)).expect("progress");
    let progress: serde_json::Value = serde_json::from_str(&progress).expect("json");
    assert_eq!(progress["offsetTable"]["1"], 1, "{progress}");
    assert_eq!(progress["offsetTable"]["3"], 2, "{progress}");
}

#[tokio::test]
async fn pending_delays_survive_restarts_and_are_delivered_exactly_once() {
    let levels = "300ms 600ms 2s";
    let n = node(tempfile::tempdir().expect("tempdir"), config(levels)).await;
    ok(&n.send("Once", 0, "m1", &[("DELAY", "1")]).await);
    n.wait_count("Once", 0, 1).await;
    let dir = n.stop().await;
    // The progress after m1: it will be put back below to play a crash that lost later
    // progress writes.
    let progress = dir.path().join("broker").join(PROGRESS_FILE);
    let stale = std::fs::read(&progress).expect("progress after m1");

    let n = node(dir, config(levels)).await;
    ok(&n.send("Once", 0, "m2", &[("DELAY", "1")]).await);
    ok(&n.send("Once", 0, "m3", &[("DELAY", "1")]).await);
    n.wait_count("Once", 0, 3).await;
    // Pending across the restart.
    ok(&n.send("Once", 0, "m4", &[("DELAY", "3")]).await);
    ok(&n.send("Once", 0, "t1", &[("TIMER_DELAY_SEC", "2")]).await);
    let dir = n.stop().await;
    std::fs::write(&progress, stale).expect("put the stale progress back");

    let n = node(dir, config(levels)).await;
    // m2 and m3 were delivered after the stale progress was written: found in the commit log,
    // not delivered again (they are due before m4, so a duplicate would show first).
    let delivered = n.wait_count("Once", 0, 5).await;
    assert_eq!(bodies(&delivered), ["m1", "m2", "m3", "m4", "t1"]);
    assert_eq!(
        n.broker
            .schedule()
            .stats()
            .deduplicated
            .load(Ordering::Relaxed),
        2
    );
    let dir = n.stop().await;
    // And a clean restart delivers nothing again.
    let n = node(dir, config(levels)).await;
    ok(&n.send("Once", 0, "m5", &[("DELAY", "1")]).await);
    let delivered = n.wait_count("Once", 0, 6).await;
    assert_eq!(bodies(&delivered)[5], "m5");
    n.stop().await;
}

#[tokio::test]
async fn timer_messages_are_delivered_at_their_time_in_due_order() {
    let mut c = config("1s");
    c.timer_max_delay_secs = 60;
    let n = node(tempfile::tempdir().expect("tempdir"), c).await;
    let now = now_ms();
    let at = |ms: i64| (now + ms).to_string();
    ok(&n
        .send("Timed", 0, "t3", &[("TIMER_DELIVER_MS", &at(2500))])
        .await);
    ok(&n.send("Timed", 0, "t2", &[("TIMER_DELAY_SEC", "1")]).await);
    ok(&n
        .send("Timed", 0, "t1", &[("TIMER_DELIVER_MS", &at(300))])
        .await);
    ok(&n
        .send("Timed", 0, "t4", &[("TIMER_DELAY_MS", "3200")])
        .await);
    // A time in the past is a plain message.
    ok(&n
        .send("Timed", 0, "t0", &[("TIMER_DELIVER_MS", &at(-1000))])
        .await);
    // Too far away.
    let r = n
        .send("Timed", 0, "far", &[("TIMER_DELAY_SEC", "120")])
        .await;
    assert_eq!(r.code, rs::MESSAGE_ILLEGAL, "{:?}", r.remark);
    let r = n
        .send("Timed", 0, "bad", &[("TIMER_DELIVER_MS", "soon")])
        .await;
    assert_eq!(r.code, rs::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // A level wins over a timer.
    ok(&n
        .send(
            "Timed",
            1,
            "lvl",
            &[("DELAY", "1"), ("TIMER_DELAY_SEC", "50")],
        )
        .await);
    assert!(n.store.wait_dispatched(T));
    let staged: i64 = (0..4).map(|k| n.store.max_offset(TIMER_TOPIC, k)).sum();
    assert!(staged >= 4, "t1..t4 wait in the timer stages");

    let delivered = n.wait_count("Timed", 0, 5).await;
    assert_eq!(bodies(&delivered), ["t0", "t1", "t2", "t3", "t4"]);
    for m in &delivered[1..] {
        let due: i64 = m
            .property(property::TIMER_OUT_MS)
            .expect("TIMER_OUT_MS stays")
            .parse()
            .expect("ms");
        assert!(
            m.store_timestamp >= due,
            "{} delivered before its time",
            body(m)
        );
        assert_eq!(m.property(property::REAL_TOPIC), None);
        assert_eq!(m.property(property::REAL_QUEUE_ID), None);
    }
    assert!(n.broker.schedule().stats().restaged.load(Ordering::Relaxed) >= 1);
    let lvl = n.wait_count("Timed", 1, 1).await;
    assert_eq!(lvl[0].property("TIMER_DELAY_SEC"), None);
    n.stop().await;
}

/// A level table where level `3 + n` is short, for stepping through retries quickly.
const RETRY_LEVELS: &str = "10ms 10ms 100ms 150ms 200ms 250ms 300ms 350ms 400ms 10ms 10ms 10ms 10ms 10ms 10ms 10ms 10ms 10ms";

#[tokio::test]
async fn send_back_steps_through_the_retry_topic_then_the_dead_letter_topic() {
    let n = node(tempfile::tempdir().expect("tempdir"), config(RETRY_LEVELS)).await;
    let sent = ok(&n
        .send(
            "Jobs",
            0,
            "work",
            &[("UNIQ_KEY", "U1"), ("TAGS", "t"), ("KEYS", "k1")],
        )
        .await);
    assert!(n.store.wait_dispatched(T));
    let original = n.messages("Jobs", 0).remove(0);
    let id = OffsetMessageId::decode(&sent.msg_id).expect("id");
    assert_eq!(original.physical_offset, id.commit_log_offset);
    let retry = "%RETRY%g";
    let max = 3;
    let mut current = original.clone();
    let levels: Vec<i64> = RETRY_LEVELS
        .split(' ')
        .map(|l| l.trim_end_matches("ms").parse().expect("ms"))
        .collect();
    for n_retry in 0..max {
        ok_code(&n.send_back(&current, "g", 0, Some(max)).await);
        // Stored for later at level 3 + reconsume times.
        let level = 3 + n_retry;
        assert!(n.store.wait_dispatched(T));
        let entry = n
            .messages(SCHEDULE_TOPIC, level - 1)
            .pop()
            .expect("schedule entry");
        assert_eq!(entry.property("DELAY"), Some(level.to_string().as_str()));
        assert_eq!(entry.property(property::REAL_TOPIC), Some(retry));
        let copies = n.wait_count(retry, 0, i64::from(n_retry) + 1).await;
        let copy = copies.last().expect("copy").clone();
        assert_eq!(copy.reconsume_times, n_retry + 1);
        assert_eq!(copy.property(property::RETRY_TOPIC), Some("Jobs"));
        assert_eq!(
            copy.property(property::ORIGIN_MESSAGE_ID),
            Some(sent.msg_id.as_str())
        );
        assert_eq!(copy.property("UNIQ_KEY"), Some("U1"));
        assert_eq!(copy.property("KEYS"), Some("k1"));
        assert_eq!(body(&copy), "work");
        assert_eq!(copy.born_timestamp, original.born_timestamp);
        let due = entry.store_timestamp + levels[level as usize - 1];
        assert!(
            copy.store_timestamp >= due,
            "retry {n_retry} delivered early"
        );
        current = copy;
    }
    // Reconsumed `max` times: the next send-back goes to the dead-letter topic at once.
    ok_code(&n.send_back(&current, "g", 0, Some(max)).await);
    let dead = n.wait_count("%DLQ%g", 0, 1).await;
    assert_eq!(dead[0].reconsume_times, max + 1);
    assert_eq!(dead[0].property(property::RETRY_TOPIC), Some("Jobs"));
    assert_eq!(
        dead[0].property(property::ORIGIN_MESSAGE_ID),
        Some(sent.msg_id.as_str())
    );
    assert_eq!(dead[0].property("DELAY"), None);
    assert!(n.broker.topics().get("%DLQ%g").is_some());
    // A negative level sends to the dead-letter topic directly.
    ok_code(&n.send_back(&original, "g", -1, None).await);
    n.wait_count("%DLQ%g", 0, 2).await;
    assert_eq!(n.broker.stats().dead_letters.load(Ordering::Relaxed), 2);
    // Without maxReconsumeTimes the broker's default (16) applies: a retry.
    let r = n.send_back(&dead[0], "g", 0, None).await;
    ok_code(&r);
    assert!(n.store.wait_dispatched(T));
    assert_eq!(n.messages(SCHEDULE_TOPIC, 3 + max + 1 - 1).len(), 1);
    // An offset that holds no message.
    let mut bogus = original.clone();
    bogus.physical_offset = 1 << 40;
    let r = n.send_back(&bogus, "g", 0, None).await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    n.stop().await;
}

fn ok_code(r: &RemotingCommand) {
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
}

#[tokio::test]
async fn sends_to_a_retry_topic_past_the_maximum_go_to_the_dead_letter_topic() {
    let n = node(tempfile::tempdir().expect("tempdir"), config(RETRY_LEVELS)).await;
    let mut h = header("%RETRY%g2", 0, &[("DELAY", "3"), ("RETRY_TOPIC", "Jobs")]);
    h.reconsume_times = Some(17);
    ok(&n.send_with(&h, "late").await);
    let dead = n.wait_count("%DLQ%g2", 0, 1).await;
    assert_eq!(dead[0].reconsume_times, 17);
    assert_eq!(dead[0].property("DELAY"), None);
    // With the request's own maximum above its count: a delayed retry.
    h.max_reconsume_times = Some(20);
    ok(&n.send_with(&h, "again").await);
    let retried = n.wait_count("%RETRY%g2", 0, 1).await;
    assert_eq!(body(&retried[0]), "again");
    n.stop().await;
}

#[tokio::test]
async fn delayed_batches_and_sends_to_schedule_topics_are_refused() {
    let n = node(tempfile::tempdir().expect("tempdir"), config("1s")).await;
    for topic in [SCHEDULE_TOPIC, TIMER_TOPIC] {
        let r = n
            .send(
                topic,
                0,
                "x",
                &[("REAL_TOPIC", "Elsewhere"), ("REAL_QID", "0")],
            )
            .await;
        assert_eq!(r.code, rs::NO_PERMISSION, "{:?}", r.remark);
    }
    assert!(n.broker.topics().get(SCHEDULE_TOPIC).is_none());
    let batch = [BatchMessage {
        flag: 0,
        body: Bytes::from_static(b"b"),
        properties: [("DELAY".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    }];
    let mut body = BytesMut::new();
    encode_batch(&batch, &mut body).expect("encode");
    let request = RemotingCommand::new_request(rq::SEND_BATCH_MESSAGE, 0)
        .with_header(&SendMessageRequestHeaderV2::from(header("Batched", 0, &[])))
        .with_body(body.freeze());
    let r = n
        .client
        .invoke(&n.addr, request, T)
        .await
        .expect("answered");
    assert_eq!(r.code, rs::MESSAGE_ILLEGAL, "{:?}", r.remark);
    // A forged source is dropped from what a client sends.
    ok(&n.send("Plain", 0, "p", &[(SOURCE_PROPERTY, "L0:0")]).await);
    assert!(n.store.wait_dispatched(T));
    assert_eq!(n.messages("Plain", 0)[0].property(SOURCE_PROPERTY), None);
    n.stop().await;
}

#[tokio::test]
async fn a_group_configuration_sets_its_retries_and_survives_a_restart() {
    let n = node(tempfile::tempdir().expect("tempdir"), config(RETRY_LEVELS)).await;
    let update = |body: &str| {
        RemotingCommand::new_request(rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
            .with_body(Bytes::from(body.to_string()))
    };
    let r = n
        .client
        .invoke(
            &n.addr,
            update(r#"{"groupName":"g3","retryMaxTimes":1,"consumeEnable":true}"#),
            T,
        )
        .await
        .expect("answered");
    ok_code(&r);
    let r = n
        .client
        .invoke(
            &n.addr,
            update(r#"{"groupName":"bad group","retryMaxTimes":1}"#),
            T,
        )
        .await
        .expect("answered");
    assert_eq!(r.code, rs::INVALID_PARAMETER, "{:?}", r.remark);
    let dir = n.stop().await;
    let n = node(dir, config(RETRY_LEVELS)).await;
    let r = n
        .client
        .invoke(
            &n.addr,
            RemotingCommand::new_request(rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, 0),
            T,
        )
        .await
        .expect("answered");
    let all: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(
        all["subscriptionGroupTable"]["g3"]["retryMaxTimes"], 1,
        "{all}"
    );

    ok(&n.send("Jobs3", 0, "w", &[]).await);
    assert!(n.store.wait_dispatched(T));
    let original = n.messages("Jobs3", 0).remove(0);
    // Without maxReconsumeTimes in the request the group's 1 applies: one retry, then the DLQ.
    ok_code(&n.send_back(&original, "g3", 0, None).await);
    let retried = n.wait_count("%RETRY%g3", 0, 1).await;
    ok_code(&n.send_back(&retried[0], "g3", 0, None).await);
    let dead = n.wait_count("%DLQ%g3", 0, 1).await;
    assert_eq!(dead[0].reconsume_times, 2);
    // The request's maximum wins over the group's (as the Java broker).
    ok_code(&n.send_back(&retried[0], "g3", 0, Some(5)).await);
    n.wait_count("%RETRY%g3", 0, 2).await;
    n.stop().await;
}

#[tokio::test]
async fn sync_flush_delivers_and_writes_the_progress_once_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let n = TestBroker::open(dir, config("300ms"), FlushMode::Sync).await;
    for b in ["s1", "s2", "s3"] {
        ok(&n.send("SyncDelayed", 0, b, &[("DELAY", "1")]).await);
    }
    assert_eq!(
        bodies(&n.wait_count("SyncDelayed", 0, 3).await),
        ["s1", "s2", "s3"]
    );
    let dir = n.stop().await;
    let progress: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("broker").join(PROGRESS_FILE)).expect("progress"),
    )
    .expect("json");
    assert_eq!(progress["offsetTable"]["1"], 3, "{progress}");
    let n = TestBroker::open(dir, config("300ms"), FlushMode::Sync).await;
    ok(&n.send("SyncDelayed", 0, "s4", &[("DELAY", "1")]).await);
    assert_eq!(bodies(&n.wait_count("SyncDelayed", 0, 4).await)[3], "s4");
    assert_eq!(
        n.broker
            .schedule()
            .stats()
            .deduplicated
            .load(Ordering::Relaxed),
        0
    );
    n.stop().await;
}
