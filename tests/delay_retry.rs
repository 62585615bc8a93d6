//! Delayed messages, retries and dead letters end to end against the real `tributary server`:
//! delayed messages delivered before a SIGKILL are not delivered again after the restart (the
//! progress file is never rewritten in that run, so the broker must find its copies in the
//! commit log), and pending ones are delivered once; messages that fall due while the broker
//! is down come in due order, once, none early; retries waiting in the schedule across a
//! SIGKILL come back once to a consumer online throughout; our client's ReconsumeLater goes through
//! the broker's retry topic with growing reconsume times into the dead-letter topic, and
//! `tributary dlq list|resend` shows it and sends it back to its topic; with
//! `filter_support_retry` retried messages meet the group's SQL92 filter of their topic.
//!
//! Every wait polls observable state until a deadline; nothing asserts on time.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestServer, config_file, create_topic_routed, fast_client, stored, wait_until};
use parking_lot::Mutex;
use tributary_client::consumer::Listener;
use tributary_client::instance::PullArgs;
use tributary_client::{
    Admin, ConsumeConcurrentlyStatus, ConsumeFrom, ConsumerConfig, Message, MessageExt, Producer,
    ProducerConfig, PushConsumer, Subscription,
};

/// Wall-clock time in ms, the clock of the broker's store timestamps (same machine).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// A counter or gauge on the server's /metrics.
fn metric(server: &TestServer, name: &str) -> u64 {
    common::metric(server, name).unwrap_or_else(|| panic!("{name} missing from /metrics")) as u64
}

fn start(data: &Path, config: &Path) -> TestServer {
    let config = config.to_str().expect("utf-8 path");
    TestServer::start(data, &["--config", config])
}

async fn stored_count(admin: &Admin, topic: &str) -> i64 {
    admin
        .topic_status(topic)
        .await
        .map(|qs| qs.iter().map(|q| q.max_offset - q.min_offset).sum())
        .unwrap_or(0)
}

fn bodies(messages: &[MessageExt]) -> Vec<String> {
    let mut b: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    b.sort();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_messages_are_delivered_exactly_once_across_a_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The progress file is written at start and then not for an hour: after the SIGKILL the
    // broker knows what it delivered only from the commit log.
    let config = config_file(
        dir.path(),
        "delay_levels = \"300ms 1s 5s\"\nschedule_flush_interval_ms = 3600000",
    );
    let data = dir.path().join("data");
    let server = start(&data, &config);
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    create_topic_routed(&admin, &server, "Later", 4).await;
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("later-pg"),
    )
    .await
    .expect("producer");
    let mut expected = Vec::new();
    for i in 0..20 {
        let body = format!("soon-{i:02}");
        producer
            .send(Message::new("Later", body.clone()).with_delay_level(1))
            .await
            .expect("send");
        expected.push(body);
    }
    for i in 0..10 {
        let body = format!("later-{i:02}");
        producer
            .send(Message::new("Later", body.clone()).with_delay_level(3))
            .await
            .expect("send");
        expected.push(body);
    }
    // Timers, pending across the kill too.
    let sent_ms = now_ms();
    for i in 0..5 {
        let body = format!("timer-{i:02}");
        let message = if i % 2 == 0 {
            Message::new("Later", body.clone()).with_delay(Duration::from_secs(5))
        } else {
            Message::new("Later", body.clone()).with_deliver_time_ms(sent_ms + 5500)
        };
        producer.send(message).await.expect("send");
        expected.push(body);
    }
    wait_until("the short delays are delivered", async || {
        stored_count(&admin, "Later").await >= 20
    })
    .await;
    producer.shutdown().await;
    admin.shutdown().await;
    let killed_ms = now_ms();
    assert!(!server.kill().success());
    // The progress on disk predates the deliveries: only the commit log tells.
    let progress: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("broker").join("delayOffset.json")).expect("progress file"),
    )
    .expect("progress json");
    assert_eq!(progress["offsetTable"]["1"], 0, "{progress}");

    let server = start(&data, &config);
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    wait_until("every delayed message is delivered", async || {
        stored_count(&admin, "Later").await >= 35
    })
    .await;
    // A marker behind them in the first level's queue: anything delivered again would be
    // stored before it.
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("later-pg"),
    )
    .await
    .expect("producer");
    producer
        .send(Message::new("Later", "zz-marker").with_delay_level(1))
        .await
        .expect("send marker");
    wait_until("the marker is delivered", async || {
        stored(&admin, "Later")
            .await
            .iter()
            .any(|m| &m.body[..] == b"zz-marker")
    })
    .await;
    expected.push("zz-marker".into());
    expected.sort();
    let delivered = stored(&admin, "Later").await;
    assert_eq!(bodies(&delivered), expected);
    // The long delays and the timers were pending at the kill: delivered by the new process.
    for m in delivered.iter().filter(|m| !m.body.starts_with(b"soon-")) {
        assert!(
            m.store_timestamp >= killed_ms,
            "{:?} was delivered before the kill; the test needs it pending",
            m.body
        );
    }
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// Delay levels and timers that fall due while the broker is down (SIGKILL) are delivered by
/// the next process in due order, each once, none before its due time, and again none after a
/// clean restart; the lag of each delivery is on /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_due_during_a_crash_are_delivered_in_due_order_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(dir.path(), "delay_levels = \"3s 5s 7s\"");
    let data = dir.path().join("data");
    let server = start(&data, &config);
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    create_topic_routed(&admin, &server, "Due", 1).await;
    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("due-pg"))
        .await
        .expect("producer");
    // Sent out of due order; each due at least 3 s after its send (nothing may be delivered
    // before the kill), and `t-last` after the restart unless the restart is slow.
    let level_ms = [3000, 5000, 7000];
    let t0 = now_ms();
    let sends = [
        Message::new("Due", "level-3").with_delay_level(3),
        Message::new("Due", "t-6000").with_deliver_time_ms(t0 + 6000),
        Message::new("Due", "level-2").with_delay_level(2),
        Message::new("Due", "t-4000a").with_deliver_time_ms(t0 + 4000),
        Message::new("Due", "t-in-3500").with_delay(Duration::from_millis(3500)),
        Message::new("Due", "level-1").with_delay_level(1),
        Message::new("Due", "t-4000b").with_deliver_time_ms(t0 + 4000),
        Message::new("Due", "t-last").with_deliver_time_ms(t0 + 13_000),
    ];
    // The due time of each level message: its schedule entry's store time plus its delay.
    let mut level_due: BTreeMap<String, i64> = BTreeMap::new();
    for message in sends {
        let body = String::from_utf8_lossy(&message.body).into_owned();
        let level = message
            .property("DELAY")
            .map(|l| l.parse::<usize>().expect("level"));
        let sent = producer.send(message).await.expect("send");
        if let Some(level) = level {
            let entry = admin
                .view_message(&sent.offset_msg_id)
                .await
                .expect("entry");
            assert_eq!(entry.topic, "SCHEDULE_TOPIC_XXXX");
            level_due.insert(body, entry.store_timestamp + level_ms[level - 1]);
        }
    }
    assert_eq!(stored_count(&admin, "Due").await, 0, "delivered too soon");
    producer.shutdown().await;
    admin.shutdown().await;
    let killed_ms = now_ms();
    assert!(!server.kill().success());
    // Down until all but `t-last` are due.
    let all_due = level_due
        .values()
        .copied()
        .max()
        .unwrap_or(t0)
        .max(t0 + 5000);
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(all_due + 100 - now_ms()).unwrap_or(0),
    ))
    .await;

    let server = start(&data, &config);
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    wait_until("every message is delivered", async || {
        stored_count(&admin, "Due").await >= 8
    })
    .await;
    let delivered = stored(&admin, "Due").await;
    let dues: Vec<(String, i64)> = delivered
        .iter()
        .map(|m| {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            let due = match level_due.get(&body) {
                Some(due) => *due,
                None => m
                    .property("TIMER_OUT_MS")
                    .and_then(|t| t.parse().ok())
                    .expect("a timer copy keeps TIMER_OUT_MS"),
            };
            assert!(
                m.store_timestamp >= due,
                "{body} delivered before its due time {due}"
            );
            assert!(
                m.store_timestamp >= killed_ms,
                "{body} delivered before the kill"
            );
            (body, due)
        })
        .collect();
    assert_eq!(delivered.len(), 8, "{dues:?}");
    assert!(
        dues.windows(2).all(|w| w[0].1 <= w[1].1),
        "not in due order: {dues:?}"
    );
    let mut names: Vec<&str> = dues.iter().map(|(b, _)| b.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "level-1",
            "level-2",
            "level-3",
            "t-4000a",
            "t-4000b",
            "t-6000",
            "t-in-3500",
            "t-last"
        ]
    );
    assert_eq!(
        metric(
            &server,
            "tributary_broker_delayed_delivery_lag_seconds_count"
        ),
        8
    );
    admin.shutdown().await;
    assert!(server.terminate().success());

    // A clean restart delivers nothing again: a marker sent after it comes ninth.
    let server = start(&data, &config);
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("due-pg"))
        .await
        .expect("producer");
    wait_until("the broker registers the topic again", async || {
        admin
            .topic_route("Due")
            .await
            .is_ok_and(|r| !r.queue_datas.is_empty())
    })
    .await;
    producer
        .send(Message::new("Due", "marker").with_delay(Duration::from_millis(300)))
        .await
        .expect("send marker");
    wait_until("the marker is delivered", async || {
        stored_count(&admin, "Due").await >= 9
    })
    .await;
    let delivered = stored(&admin, "Due").await;
    assert_eq!(delivered.len(), 9);
    assert_eq!(&delivered[8].body[..], b"marker");
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// Messages sent back for a retry wait in the schedule for `%RETRY%<group>`; a SIGKILL while
/// they wait loses none and duplicates none: the consumer, online throughout, gets each once
/// more (reconsume times 1, under its own topic), and the retry topic holds one copy of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_pending_across_a_sigkill_are_redelivered_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The first retry (level 3) waits 4 s: long enough to kill the broker meanwhile.
    let mut levels = vec!["100ms"; 18];
    levels[2] = "4s";
    let config = config_file(
        dir.path(),
        &format!("delay_levels = \"{}\"", levels.join(" ")),
    );
    let data = dir.path().join("data");
    let server = start(&data, &config);
    let (namesrv, broker) = (server.namesrv.clone(), server.broker.clone());
    let admin = Admin::start(fast_client(&namesrv)).await.expect("admin");
    create_topic_routed(&admin, &server, "Flaky", 2).await;

    // Each message fails its first delivery and succeeds after.
    let deliveries: Deliveries = Arc::default();
    let listener = recording_listener(&deliveries, |_, earlier| earlier.is_empty());
    let mut consumer_config = ConsumerConfig::new("patient");
    consumer_config.consume_from = ConsumeFrom::FirstOffset;
    consumer_config.consume_batch_max_size = 1;
    consumer_config.local_retry_delay = Duration::from_secs(600);
    let consumer = PushConsumer::start(
        fast_client(&namesrv),
        consumer_config,
        vec![Subscription::tag("Flaky", "*")],
        listener,
    )
    .await
    .expect("consumer");
    let producer = Producer::start(fast_client(&namesrv), ProducerConfig::new("flaky-pg"))
        .await
        .expect("producer");
    let mut sent = BTreeMap::new();
    for i in 0..10 {
        let body = format!("job-{i}");
        let r = producer
            .send(Message::new("Flaky", body.clone()))
            .await
            .expect("send");
        sent.insert(body, r);
    }
    wait_until(
        "every message was sent back and waits in the schedule",
        async || {
            metric(&server, "tributary_broker_sent_back_total") == 10
                && metric(&server, "tributary_broker_delayed_pending") == 10
        },
    )
    .await;
    let killed_ms = now_ms();
    assert!(!server.kill().success());
    let server = TestServer::start_on(
        &data,
        &namesrv,
        &broker,
        &["--config", config.to_str().expect("utf-8 path")],
    );

    wait_until("every message is consumed again", async || {
        let d = deliveries.lock();
        d.len() == 10 && d.values().all(|d| d.len() >= 2)
    })
    .await;
    let retry_topic = "%RETRY%patient";
    let copies = stored(&admin, retry_topic).await;
    assert_eq!(copies.len(), 10, "{:?}", bodies(&copies));
    for copy in &copies {
        let body = String::from_utf8_lossy(&copy.body).into_owned();
        let original = &sent[&body];
        assert!(
            copy.store_timestamp >= killed_ms,
            "{body} was retried before the kill"
        );
        assert_eq!(copy.reconsume_times, 1);
        assert_eq!(copy.property("RETRY_TOPIC"), Some("Flaky"));
        assert_eq!(copy.property("UNIQ_KEY"), Some(original.msg_id.as_str()));
        assert_eq!(
            copy.property("ORIGIN_MESSAGE_ID"),
            Some(original.offset_msg_id.as_str())
        );
    }
    let flaky = "Flaky".to_string();
    for (body, seen) in deliveries.lock().iter() {
        assert_eq!(seen, &[(0, flaky.clone()), (1, flaky.clone())], "{body}");
    }
    // A later retry through the same schedule queue: a duplicate of any earlier one would
    // be delivered before it.
    producer
        .send(Message::new("Flaky", "job-last"))
        .await
        .expect("send");
    wait_until("the last one is consumed again", async || {
        deliveries
            .lock()
            .get("job-last")
            .is_some_and(|d| d.len() == 2)
    })
    .await;
    assert_eq!(stored(&admin, retry_topic).await.len(), 11);
    assert_eq!(deliveries.lock().values().map(Vec::len).sum::<usize>(), 22);
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// `tributary <args> --namesrv <ns>`.
fn cli(namesrv: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .args(["--namesrv", namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run tributary")
}

fn cli_ok(namesrv: &str, args: &[&str]) -> String {
    let out = cli(namesrv, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tributary {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn dlq_json(namesrv: &str, group: &str) -> serde_json::Value {
    let text = cli_ok(namesrv, &["dlq", "list", "--group", group, "--json"]);
    serde_json::from_str(&text).expect("dlq list --json")
}

/// `dlq resend --msg-id id` for `group`, which must re-send exactly one letter.
fn resend_one(namesrv: &str, group: &str, id: &str, extra: &[&str]) {
    let mut args = vec!["dlq", "resend", "--group", group, "--msg-id", id];
    args.extend_from_slice(extra);
    let out = cli_ok(namesrv, &args);
    let expected = format!("Re-sent 1 dead letter of group {group}");
    assert!(out.contains(&expected), "{out}");
}

/// Per body, the (reconsume times, topic) of each delivery.
type Deliveries = Arc<Mutex<BTreeMap<String, Vec<(i32, String)>>>>;

/// A concurrent listener that records every delivery in `deliveries` and asks for a retry of
/// a batch when `fail(body, earlier deliveries of it)` holds for one of its messages.
fn recording_listener(
    deliveries: &Deliveries,
    fail: impl Fn(&str, &[(i32, String)]) -> bool + Send + Sync + 'static,
) -> Listener {
    let deliveries = deliveries.clone();
    Listener::concurrently(move |messages: Arc<[MessageExt]>, _ctx| {
        let mut d = deliveries.lock();
        let mut retry = false;
        for m in messages.iter() {
            let body = String::from_utf8_lossy(&m.body).into_owned();
            let earlier = d.entry(body.clone()).or_default();
            retry |= fail(&body, earlier);
            earlier.push((m.reconsume_times, m.topic.clone()));
        }
        async move {
            if retry {
                ConsumeConcurrentlyStatus::ReconsumeLater
            } else {
                ConsumeConcurrentlyStatus::ConsumeSuccess
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconsume_later_goes_through_the_retry_topic_to_the_dlq_and_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let levels = vec!["100ms"; 18].join(" ");
    let config = config_file(dir.path(), &format!("delay_levels = \"{levels}\""));
    let server = start(&dir.path().join("data"), &config);
    let ns = server.namesrv.clone();
    let admin = Admin::start(fast_client(&ns)).await.expect("admin");
    create_topic_routed(&admin, &server, "Work", 2).await;

    let deliveries: Deliveries = Arc::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let listener = {
        let fixed = fixed.clone();
        recording_listener(&deliveries, move |body, _| {
            body.starts_with("bad") && !fixed.load(Ordering::SeqCst)
        })
    };
    let mut config = ConsumerConfig::new("workers");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.max_reconsume_times = 2;
    // Long enough that a local retry (the fallback when the broker refuses) would not pass.
    config.local_retry_delay = Duration::from_secs(600);
    let consumer = PushConsumer::start(
        fast_client(&ns),
        config,
        vec![Subscription::tag("Work", "*")],
        listener,
    )
    .await
    .expect("consumer");
    let producer = Producer::start(fast_client(&ns), ProducerConfig::new("work-pg"))
        .await
        .expect("producer");
    producer
        .send(Message::new("Work", "good-1"))
        .await
        .expect("send");
    let bad = producer
        .send(
            Message::new("Work", "bad-1")
                .with_tags("T1")
                .with_keys(["k-bad"]),
        )
        .await
        .expect("send");

    // Delivered with reconsume times 0, 1, 2 under its own topic; then a dead letter.
    wait_until("the failing message is a dead letter", async || {
        dlq_json(&ns, "workers")["messages"]
            .as_array()
            .is_some_and(|m| m.len() == 1)
    })
    .await;
    let seen = deliveries.lock().get("bad-1").cloned().unwrap_or_default();
    let work = "Work".to_string();
    assert_eq!(
        seen,
        [(0, work.clone()), (1, work.clone()), (2, work.clone())]
    );
    assert_eq!(deliveries.lock().get("good-1").map(Vec::len), Some(1));
    let listed = dlq_json(&ns, "workers");
    let dead = &listed["messages"][0];
    assert_eq!(dead["topic"], "Work", "{listed}");
    assert_eq!(dead["reconsume_times"], 3, "{listed}");
    assert_eq!(dead["body"], "bad-1", "{listed}");
    assert_eq!(dead["tags"], "T1", "{listed}");
    assert_eq!(dead["msg_id"], bad.msg_id.as_str(), "{listed}");
    assert_eq!(
        dead["origin_msg_id"],
        bad.offset_msg_id.as_str(),
        "{listed}"
    );
    let table = cli_ok(&ns, &["dlq", "list", "--group", "workers"]);
    assert!(
        table.contains("bad-1")
            && table.contains("Work")
            && table.contains("1 dead letter in %DLQ%workers"),
        "{table}"
    );

    // Fixed: send it back to its topic, where it is consumed as a new message.
    fixed.store(true, Ordering::SeqCst);
    resend_one(&ns, "workers", &bad.msg_id, &[]);
    wait_until("the re-sent message is consumed", async || {
        deliveries.lock().get("bad-1").is_some_and(|d| d.len() == 4)
    })
    .await;
    assert_eq!(deliveries.lock()["bad-1"][3], (0, work.clone()));
    let resent = stored(&admin, "Work").await;
    let again = resent
        .iter()
        .filter(|m| &m.body[..] == b"bad-1")
        .nth(1)
        .expect("re-sent copy");
    assert_eq!(again.tags(), Some("T1"));
    assert_eq!(again.keys(), ["k-bad"]);
    assert_eq!(again.property("RETRY_TOPIC"), None);

    // Re-sent letters are known from the log: a second `--all` skips this one, `--again`
    // sends it once more, and a copy that dies again is a new letter, re-sent by `--all`.
    wait_until("dlq list shows the letter as re-sent", async || {
        dlq_json(&ns, "workers")["messages"][0]["resent"].is_string()
    })
    .await;
    let resend_all = || {
        let text = cli_ok(
            &ns,
            &["dlq", "resend", "--group", "workers", "--all", "--json"],
        );
        serde_json::from_str::<serde_json::Value>(&text).expect("dlq resend --json")
    };
    let report = resend_all();
    assert_eq!(
        report["resent"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        report["skipped"][0]["msg_id"],
        bad.msg_id.as_str(),
        "{report}"
    );
    let text = cli_ok(&ns, &["dlq", "resend", "--group", "workers", "--all"]);
    assert!(
        text.contains("Re-sent 0 dead letters of group workers.")
            && text.contains("Skipped 1 dead letter re-sent before: ")
            && text.contains("--again sends it once more."),
        "{text}"
    );
    fixed.store(false, Ordering::SeqCst);
    resend_one(&ns, "workers", &bad.msg_id, &["--again"]);
    wait_until("the copy dies again", async || {
        dlq_json(&ns, "workers")["messages"]
            .as_array()
            .is_some_and(|m| m.len() == 2)
    })
    .await;
    let listed = dlq_json(&ns, "workers");
    assert!(listed["messages"][0]["resent"].is_string(), "{listed}");
    assert!(listed["messages"][1]["resent"].is_null(), "{listed}");
    fixed.store(true, Ordering::SeqCst);
    let report = resend_all();
    assert_eq!(
        report["resent"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    assert_eq!(
        report["skipped"].as_array().map(Vec::len),
        Some(1),
        "{report}"
    );
    wait_until("the new letter's copy is consumed", async || {
        deliveries
            .lock()
            .get("bad-1")
            .is_some_and(|d| d.last() == Some(&(0, work.clone())) && d.len() == 8)
    })
    .await;

    // Unknown ids fail; a group without dead letters has none.
    let out = cli(
        &ns,
        &["dlq", "resend", "--group", "workers", "--msg-id", "NOPE"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let none = cli_ok(&ns, &["dlq", "list", "--group", "nobody"]);
    assert!(none.contains("Group nobody has no dead letters."), "{none}");

    // The group's own maximum, for consumers that send none.
    let set = cli_ok(
        &ns,
        &[
            "group",
            "config",
            "workers",
            "--retry-max-times",
            "3",
            "--json",
        ],
    );
    let set: serde_json::Value = serde_json::from_str(&set).expect("group config --json");
    assert_eq!(set[0]["retry_max_times"], 3, "{set}");
    let shown = cli_ok(&ns, &["group", "config", "workers"]);
    assert!(shown.contains("RETRY MAX TIMES"), "{shown}");

    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_sends_delayed_and_timer_messages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config_file(
        dir.path(),
        "delay_levels = \"300ms 1s\"\ntimer_max_delay_secs = 60",
    );
    let server = start(&dir.path().join("data"), &config);
    let ns = server.namesrv.clone();
    let admin = Admin::start(fast_client(&ns)).await.expect("admin");
    create_topic_routed(&admin, &server, "Soon", 1).await;
    let produce = |args: &[&str], line: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["produce", "--topic", "Soon", "--quiet"])
            .args(args)
            .args(["--namesrv", &ns])
            .env_remove("NAMESRV_ADDR")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // A refused command exits before reading its input.
        let _ = stdin.write_all(line.as_bytes());
        drop(stdin);
        child.wait_with_output().expect("wait")
    };
    let out = produce(&["--delay-level", "2"], "by-level\n");
    assert!(out.status.success(), "{out:?}");
    let out = produce(&["--delay", "500ms"], "by-timer\n");
    assert!(out.status.success(), "{out:?}");
    let out = produce(&["--delay", "1s", "--batch", "2"], "x\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = produce(&["--delay", "soon"], "x\n");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // Past the broker's maximum (timer_max_delay_secs): refused, through the CLI and the
    // client, with the broker's reason.
    let out = produce(&["--delay", "2m"], "too-far\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("MESSAGE_ILLEGAL") && stderr.contains("timer_max_delay_secs"),
        "{stderr}"
    );
    let producer = Producer::start(fast_client(&ns), ProducerConfig::new("soon-pg"))
        .await
        .expect("producer");
    let refused = producer
        .send(Message::new("Soon", "too-far").with_deliver_time_ms(now_ms() + 120_000))
        .await
        .expect_err("a timer past the maximum is refused");
    let why = format!("{:#}", anyhow::Error::from(refused));
    assert!(why.contains("timer_max_delay_secs"), "{why}");
    producer.shutdown().await;
    wait_until("both are delivered", async || {
        stored_count(&admin, "Soon").await >= 2
    })
    .await;
    let messages = stored(&admin, "Soon").await;
    assert_eq!(bodies(&messages), ["by-level", "by-timer"]);
    for m in &messages {
        // Delivered copies: a level keeps REAL_TOPIC, a timer TIMER_OUT_MS.
        let via_schedule =
            m.property("REAL_TOPIC").is_some() || m.property("TIMER_OUT_MS").is_some();
        assert!(via_schedule, "{:?}", m.properties);
    }
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// What group `picky` (SQL92 `a > 6` on topic `Sq`, SQL92 `TRUE` on its retry topic) gets
/// from its retry topic after `six` (a=6), `none` (no a) and `seven` (a=7) were sent back,
/// on a broker with `filter_support_retry` as given: the bodies of a raw pull with the
/// retry subscription, and of the push consumer's redeliveries once its offset passed them.
async fn retried_with(filter_support_retry: bool) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let levels = vec!["100ms"; 18].join(" ");
    let config = config_file(
        dir.path(),
        &format!("delay_levels = \"{levels}\"\nfilter_support_retry = {filter_support_retry}"),
    );
    let server = start(&dir.path().join("data"), &config);
    let ns = server.namesrv.clone();
    let admin = Admin::start(fast_client(&ns)).await.expect("admin");
    create_topic_routed(&admin, &server, "Sq", 1).await;
    let producer = Producer::start(fast_client(&ns), ProducerConfig::new("sq-pg"))
        .await
        .expect("producer");
    for (body, a) in [("six", Some("6")), ("none", None), ("seven", Some("7"))] {
        let mut m = Message::new("Sq", body);
        if let Some(a) = a {
            m = m.with_property("a", a);
        }
        producer.send(m).await.expect("send");
    }
    // The group's filter changed after these were consumed and sent back (a > 5 then, say).
    let retry_topic = "%RETRY%picky";
    let retried: Deliveries = Arc::default();
    let listener = {
        let retried = retried.clone();
        Listener::concurrently(move |messages: Arc<[MessageExt]>, _ctx| {
            for m in messages.iter().filter(|m| m.reconsume_times > 0) {
                let body = String::from_utf8_lossy(&m.body).into_owned();
                retried
                    .lock()
                    .entry(body)
                    .or_default()
                    .push((m.reconsume_times, m.topic.clone()));
            }
            async { ConsumeConcurrentlyStatus::ConsumeSuccess }
        })
    };
    let mut config = ConsumerConfig::new("picky");
    config.consume_from = ConsumeFrom::FirstOffset;
    config.offset_persist_interval = Duration::from_millis(200);
    let consumer = PushConsumer::start(
        fast_client(&ns),
        config,
        vec![
            Subscription::sql92("Sq", "a > 6"),
            Subscription::sql92(retry_topic, "TRUE"),
        ],
        listener,
    )
    .await
    .expect("consumer");
    wait_until("the three are stored", async || {
        stored_count(&admin, "Sq").await == 3
    })
    .await;
    for m in stored(&admin, "Sq").await {
        admin
            .instance()
            .send_message_back(&m, "picky", 1, 16)
            .await
            .expect("send back");
    }
    wait_until("the three are in the retry topic", async || {
        stored_count(&admin, retry_topic).await == 3
    })
    .await;
    let queue = admin.topic_status(retry_topic).await.expect("status")[0]
        .queue
        .clone();
    let pulled = admin
        .instance()
        .pull(
            &queue,
            &PullArgs {
                group: "picky".into(),
                offset: 0,
                max_nums: 32,
                expression: Some("TRUE".into()),
                expression_type: "SQL92".into(),
                sub_version: 0,
                commit_offset: None,
                suspend: None,
            },
        )
        .await
        .expect("pull");
    assert_eq!(pulled.next_begin_offset, 3);
    let pulled: Vec<String> = pulled
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    wait_until("the consumer's offset passes the retries", async || {
        admin
            .instance()
            .query_consumer_offset(&queue, "picky")
            .await
            .is_ok_and(|o| o == Some(3))
    })
    .await;
    let pushed = retried.lock().keys().cloned().collect();
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
    (pulled, pushed)
}

/// RocketMQ's `filterSupportRetry`: off, an SQL92 subscription to a retry topic is judged by
/// its own expression (`TRUE`: everything comes back); on, each retried message must meet the
/// group's SQL92 filter of the topic it came from (only `seven` has a > 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_support_retry_applies_the_original_topics_filter_to_retries() {
    let (pulled, pushed) = retried_with(false).await;
    assert_eq!(pulled, ["six", "none", "seven"]);
    assert_eq!(pushed, ["none", "seven", "six"]);
    let (pulled, pushed) = retried_with(true).await;
    assert_eq!(pulled, ["seven"]);
    assert_eq!(pushed, ["seven"]);
}
