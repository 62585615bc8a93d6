//! The Rust client against the real `tributary server`: sends of every kind, pulls and admin
//! calls; clustering consumers rebalancing as members join and leave (nothing lost,
//! duplicates only across a rebalance); orderly consumption keeping per-key order as members
//! join and leave, and retrying a message in place;
//! broadcasting with local offsets; a broker killed and restarted mid-stream with nothing
//! acknowledged lost; messages delivered again after ReconsumeLater; SQL92 subscriptions
//! filtered on the broker (bad expressions refused at start, pull and heartbeat); offsets reset
//! by time while a consumer is online, which then consumes again from there. The clustering test
//! disables periodic rebalancing, so queues move only on the broker's notifications.
//!
//! Every wait polls observable state until a deadline; nothing asserts on time.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestServer, create_topic_routed, fast_client};
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tributary_client::consumer::Listener;
use tributary_client::instance::PullArgs;
use tributary_client::{
    Admin, ConsumeConcurrentlyStatus, ConsumeFrom, ConsumeOrderlyStatus, ConsumerConfig, Message,
    MessageExt, MessageModel, MessageQueue, Producer, ProducerConfig, PullConsumer, PullStatus,
    PushConsumer, SendStatus, Subscription,
};

/// Deadline of every wait.
const DEADLINE: Duration = Duration::from_secs(60);

fn consumer_config(group: &str) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(group);
    config.consume_from = ConsumeFrom::FirstOffset;
    config.offset_persist_interval = Duration::from_millis(200);
    config.pull_delay_on_error = Duration::from_millis(100);
    config.broker_suspend_max = Duration::from_secs(2);
    config.lock_renew_interval = Duration::from_millis(500);
    config
}

/// Polls `check` until it holds or the deadline passes.
async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a server on a fresh data directory, an admin client, and a topic on the broker.
async fn start_with_topic(topic: &str, queues: i32) -> (tempfile::TempDir, TestServer, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tokio::task::spawn_blocking({
        let path = dir.path().to_owned();
        move || {
            // Short retry delays (a first retry waits level 3): ReconsumeLater comes back fast.
            let config = path.join("tributary.toml");
            std::fs::write(&config, "[broker]\ndelay_levels = \"1s 1s 200ms\"\n")
                .expect("write config");
            TestServer::start(&path, &["--config", config.to_str().expect("utf-8 path")])
        }
    })
    .await
    .expect("start");
    let admin = Admin::start(fast_client(&server.namesrv))
        .await
        .expect("admin");
    create_topic_routed(&admin, &server, topic, queues).await;
    (dir, server, admin)
}

/// What consumers saw: per message body, the consumers that got it, in order.
#[derive(Default)]
struct Seen {
    by_body: Mutex<HashMap<String, Vec<String>>>,
}

impl Seen {
    fn record(&self, consumer: &str, messages: &[MessageExt]) {
        let mut by_body = self.by_body.lock();
        for m in messages {
            by_body
                .entry(String::from_utf8_lossy(&m.body).into_owned())
                .or_default()
                .push(consumer.to_owned());
        }
    }

    fn distinct(&self) -> usize {
        self.by_body.lock().len()
    }

    /// How many deliveries `consumer` has had.
    fn consumed_by(&self, consumer: &str) -> usize {
        self.by_body
            .lock()
            .values()
            .map(|c| c.iter().filter(|c| *c == consumer).count())
            .sum()
    }

    fn contains_all(&self, bodies: &HashSet<String>) -> bool {
        let seen = self.by_body.lock();
        bodies.iter().all(|b| seen.contains_key(b))
    }
}

fn recording_listener(name: &str, seen: &Arc<Seen>) -> Listener {
    let (name, seen) = (name.to_owned(), seen.clone());
    Listener::concurrently(move |messages: Arc<[MessageExt]>, _ctx| {
        seen.record(&name, &messages);
        async { ConsumeConcurrentlyStatus::ConsumeSuccess }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_pulls_and_admin() {
    let (_dir, server, admin) = start_with_topic("Orders", 4).await;
    assert!(
        admin
            .list_topics()
            .await
            .expect("topics")
            .contains(&"Orders".to_owned())
    );

    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("pg"))
        .await
        .expect("producer");
    let mut sent = BTreeMap::new();
    for i in 0..20 {
        let result = producer
            .send(
                Message::new("Orders", format!("sync-{i}"))
                    .with_tags(if i % 2 == 0 { "even" } else { "odd" })
                    .with_keys([format!("key-{i}")]),
            )
            .await
            .expect("send");
        assert_eq!(result.status, SendStatus::SendOk);
        assert_eq!(result.msg_id.len(), 32);
        sent.insert(format!("sync-{i}"), result);
    }
    // Many async sends in flight at once.
    let mut in_flight = JoinSet::new();
    for i in 0..100 {
        let send = producer.send_async(Message::new("Orders", format!("async-{i}")));
        in_flight.spawn(async move { (i, send.await) });
    }
    while let Some(done) = in_flight.join_next().await {
        let (i, result) = done.expect("send task");
        sent.insert(format!("async-{i}"), result.expect("async send"));
    }
    for i in 0..10 {
        producer
            .send_oneway(Message::new("Orders", format!("oneway-{i}")))
            .await
            .expect("oneway");
    }
    let batch = producer
        .send_batch(
            (0..10)
                .map(|i| Message::new("Orders", format!("batch-{i}")).with_tags("batch"))
                .collect(),
        )
        .await
        .expect("batch");
    assert_eq!(batch.msg_id.split(',').count(), 10);
    // A large body is compressed on the wire and inflated on the way out.
    let big = "x".repeat(64 * 1024);
    producer
        .send(Message::new("Orders", big.clone()))
        .await
        .expect("big send");
    // Ordered sends of one key land in one queue.
    let mut ordered_queues = BTreeSet::new();
    for i in 0..5 {
        let r = producer
            .send_orderly(Message::new("Orders", format!("ordered-{i}")), "customer-7")
            .await
            .expect("orderly send");
        ordered_queues.insert(r.queue.queue_id);
    }
    assert_eq!(ordered_queues.len(), 1);
    let expected_total = 20 + 100 + 10 + 10 + 1 + 5;

    // Read everything back with a pull consumer.
    let puller = PullConsumer::start(fast_client(&server.namesrv), "pull-group")
        .await
        .expect("pull consumer");
    let queues = puller
        .fetch_subscribe_queues("Orders")
        .await
        .expect("queues");
    assert_eq!(queues.len(), 4);
    let all = Subscription::tag("Orders", "*");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let pulled = loop {
        let mut pulled: Vec<MessageExt> = Vec::new();
        for mq in &queues {
            let mut offset = puller.min_offset(mq).await.expect("min offset");
            loop {
                let r = puller.pull(mq, &all, offset, 32).await.expect("pull");
                if r.status != PullStatus::Found {
                    break;
                }
                offset = r.next_begin_offset;
                pulled.extend(r.messages);
            }
        }
        // One-way sends are stored without an answer: poll until they are there.
        if pulled.len() == expected_total {
            break pulled;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pulled {} of {expected_total}",
            pulled.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let bodies: HashMap<String, &MessageExt> = pulled
        .iter()
        .map(|m| (String::from_utf8_lossy(&m.body).into_owned(), m))
        .collect();
    for (body, result) in &sent {
        let message = bodies
            .get(body)
            .expect("every acknowledged message is stored");
        assert_eq!(message.msg_id(), result.msg_id);
        assert_eq!(message.offset_msg_id, result.offset_msg_id);
        assert_eq!(message.queue_offset, result.queue_offset);
    }
    assert_eq!(bodies["sync-3"].tags(), Some("odd"));
    assert_eq!(bodies["sync-3"].keys(), vec!["key-3"]);
    assert!(bodies.contains_key(&big));

    // Tag filtering: only "even" messages, rechecked exactly by the client.
    let even = Subscription::tag("Orders", "even");
    let mut evens = 0;
    for mq in &queues {
        let r = puller.pull(mq, &even, 0, 200).await.expect("pull");
        assert!(r.messages.iter().all(|m| m.tags() == Some("even")));
        evens += r.messages.len();
    }
    assert_eq!(evens, 10);

    // Offsets: max, search by time, committed.
    let mq = &queues[0];
    let max = puller.max_offset(mq).await.expect("max offset");
    assert_eq!(puller.search_offset(mq, 0).await.expect("search"), 0);
    assert_eq!(puller.committed_offset(mq).await.expect("committed"), None);
    puller.commit_offset(mq, max).await.expect("commit");
    assert_eq!(
        puller.committed_offset(mq).await.expect("committed"),
        Some(max)
    );

    // Admin: queue ranges, a message by id, group progress, connections.
    let status = admin.topic_status("Orders").await.expect("status");
    let stored: i64 = status.iter().map(|q| q.max_offset - q.min_offset).sum();
    assert_eq!(stored, expected_total as i64);
    let viewed = admin
        .view_message(&sent["sync-5"].offset_msg_id)
        .await
        .expect("view");
    assert_eq!(&viewed.body[..], b"sync-5");
    common::wait_until("the pull group shows its progress", || async {
        let Ok(progress) = admin.group_progress("pull-group").await else {
            return false;
        };
        progress
            .queues
            .iter()
            .any(|q| &q.queue == mq && q.consumer_offset == Some(max) && q.lag == 0)
    })
    .await;
    // The pull consumer's heartbeat makes it a live member of its group.
    common::wait_until("the pull group has its member online", || async {
        admin
            .consumer_connections("pull-group")
            .await
            .is_ok_and(|c| {
                c.connections.len() == 1
                    && c.connections[0].client_id == puller.instance().client_id()
                    && c.subscriptions.contains_key("Orders")
            })
    })
    .await;
    assert!(
        admin
            .consumer_groups()
            .await
            .expect("groups")
            .contains(&"pull-group".to_owned())
    );

    // Auto-creation through the template topic.
    let auto = producer
        .send(Message::new("AutoCreated", "first"))
        .await
        .expect("send to a new topic");
    assert_eq!(auto.status, SendStatus::SendOk);
    common::wait_until("the auto-created topic is routed", || async {
        admin.topic_route("AutoCreated").await.is_ok()
    })
    .await;

    admin.delete_topic("AutoCreated").await.expect("delete");
    common::wait_until("the deleted topic is gone", || async {
        admin.topic_route("AutoCreated").await.is_err()
    })
    .await;

    puller.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// Sends messages `"{prefix}-{i}"`, each retried until acknowledged, until `stop` is set
/// and at least `min` were acknowledged; records the acknowledged bodies in `acked`. Running
/// until told to stop keeps messages flowing through every phase of a test, however fast the
/// machine.
async fn produce(
    producer: Producer,
    prefix: String,
    min: usize,
    acked: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut i = 0;
    while i < min || !stop.load(Ordering::Acquire) {
        let body = format!("{prefix}-{i}");
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match producer.send(Message::new("Rebalance", body.clone())).await {
                Ok(_) => break,
                Err(e) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "send kept failing: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        acked.lock().insert(body);
        i += 1;
    }
}

/// Checks that the consumers' queue sets of `topic` are disjoint, not empty, and cover
/// every queue.
fn partitioned(consumers: &[&PushConsumer], topic: &str, queues: usize) -> bool {
    let sets: Vec<Vec<MessageQueue>> = consumers
        .iter()
        .map(|c| {
            c.assigned_queues()
                .into_iter()
                .filter(|q| q.topic == topic)
                .collect()
        })
        .collect();
    let union: BTreeSet<&MessageQueue> = sets.iter().flatten().collect();
    let total: usize = sets.iter().map(Vec::len).sum();
    sets.iter().all(|s| !s.is_empty()) && union.len() == queues && total == queues
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clustering_consumers_rebalance_as_members_join_and_leave() {
    let (_dir, server, admin) = start_with_topic("Rebalance", 8).await;

    let seen = Arc::new(Seen::default());
    let subscribe = || vec![Subscription::tag("Rebalance", "*")];
    let start_consumer = |name: &'static str| {
        let (seen, namesrv) = (seen.clone(), server.namesrv.clone());
        // No periodic rebalancing: only the broker's NOTIFY_CONSUMER_IDS_CHANGED moves queues.
        let mut config = fast_client(&namesrv);
        config.rebalance_interval = Duration::from_secs(3600);
        async move {
            PushConsumer::start(
                config,
                consumer_config("rebalance-group"),
                subscribe(),
                recording_listener(name, &seen),
            )
            .await
            .expect("consumer")
        }
    };
    let a = start_consumer("a").await;

    // The producers run through every phase below and stop only after the last one.
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = JoinSet::new();
    let mut handles = Vec::new();
    for p in 0..3 {
        let producer = Producer::start(
            fast_client(&server.namesrv),
            ProducerConfig::new(format!("rebalance-producer-{p}")),
        )
        .await
        .expect("producer");
        handles.push(producer.clone());
        producers.spawn(produce(
            producer,
            format!("p{p}"),
            300,
            acked.clone(),
            stop.clone(),
        ));
    }

    wait_until("the first consumer has consumed some", || {
        seen.distinct() > 300
    })
    .await;
    let b = start_consumer("b").await;
    let c = start_consumer("c").await;
    wait_until("three consumers share the queues", || {
        partitioned(&[&a, &b, &c], "Rebalance", 8)
    })
    .await;
    wait_until("the two new members have consumed", || {
        seen.consumed_by("b") > 50 && seen.consumed_by("c") > 50
    })
    .await;
    b.shutdown().await;
    wait_until("two consumers share the queues", || {
        partitioned(&[&a, &c], "Rebalance", 8)
    })
    .await;
    let after_leave = seen.consumed_by("a") + seen.consumed_by("c");
    wait_until("the remaining two consume the leaver's queues", || {
        seen.consumed_by("a") + seen.consumed_by("c") > after_leave + 300
    })
    .await;

    stop.store(true, Ordering::Release);
    while let Some(done) = producers.join_next().await {
        done.expect("producer task");
    }
    let acked = acked.lock().clone();
    assert!(acked.len() >= 900, "{} acknowledged", acked.len());
    wait_until("every acknowledged message is consumed", || {
        seen.contains_all(&acked)
    })
    .await;

    // Duplicates only across a rebalance: a message seen twice was seen by two consumers.
    let by_body = seen.by_body.lock().clone();
    let mut duplicates = 0;
    for (body, consumers) in &by_body {
        if consumers.len() > 1 {
            duplicates += 1;
            let distinct: BTreeSet<&String> = consumers.iter().collect();
            assert!(
                distinct.len() > 1,
                "{body} consumed {} times by {consumers:?} alone",
                consumers.len()
            );
        }
    }
    eprintln!(
        "{} messages, {duplicates} consumed twice across rebalances",
        by_body.len()
    );

    // Offsets were committed: the group's lag drains to zero.
    common::wait_until("the group's lag is zero", || async {
        admin
            .group_progress("rebalance-group")
            .await
            .is_ok_and(|p| {
                p.queues.iter().any(|q| q.queue.topic == "Rebalance") && p.total_lag() == 0
            })
    })
    .await;

    a.shutdown().await;
    c.shutdown().await;
    for producer in handles {
        producer.shutdown().await;
    }
    admin.shutdown().await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_consumers_keep_per_key_order() {
    let (_dir, server, admin) = start_with_topic("Ordered", 8).await;

    // Per key, the sequence numbers in the order they were consumed (over all consumers).
    let order: Arc<Mutex<BTreeMap<String, Vec<u32>>>> = Arc::default();
    let start_consumer = || {
        let (order, namesrv) = (order.clone(), server.namesrv.clone());
        async move {
            let listener = Listener::orderly(move |messages: Arc<[MessageExt]>, _ctx| {
                let mut order = order.lock();
                for m in messages.iter() {
                    let text = String::from_utf8_lossy(&m.body).into_owned();
                    if let Some((key, seq)) = text.split_once(':') {
                        order
                            .entry(key.to_owned())
                            .or_default()
                            .push(seq.parse().expect("seq"));
                    }
                }
                async { ConsumeOrderlyStatus::Success }
            });
            PushConsumer::start(
                fast_client(&namesrv),
                consumer_config("orderly-group"),
                vec![Subscription::tag("Ordered", "*")],
                listener,
            )
            .await
            .expect("orderly consumer")
        }
    };
    let a = start_consumer().await;
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("ordered-pg"),
    )
    .await
    .expect("producer");
    const KEYS: u32 = 16;
    const PER_KEY: u32 = 100;
    let mut b = None;
    let mut c = None;
    for seq in 0..PER_KEY {
        if seq == PER_KEY / 3 {
            // A second consumer joins mid-stream: queues move from the first to it.
            let joined = start_consumer().await;
            wait_until("both orderly consumers hold queues", || {
                partitioned(&[&a, &joined], "Ordered", 8)
            })
            .await;
            b = Some(joined);
        }
        if seq == 2 * PER_KEY / 3
            && let Some(b) = &b
        {
            // A third joins, then the first leaves: its queues move to the other two, which
            // must go on from where it stopped.
            let joined = start_consumer().await;
            wait_until("three orderly consumers hold queues", || {
                partitioned(&[&a, b, &joined], "Ordered", 8)
            })
            .await;
            a.shutdown().await;
            wait_until("the two left hold every queue", || {
                partitioned(&[b, &joined], "Ordered", 8)
            })
            .await;
            c = Some(joined);
        }
        for key in 0..KEYS {
            producer
                .send_orderly(
                    Message::new("Ordered", format!("key{key}:{seq}")),
                    &format!("key{key}"),
                )
                .await
                .expect("orderly send");
        }
    }
    wait_until("every key is consumed to its end", || {
        let order = order.lock();
        order.len() == KEYS as usize
            && order
                .values()
                .all(|seqs| seqs.iter().collect::<BTreeSet<_>>().len() == PER_KEY as usize)
    })
    .await;
    for (key, seqs) in order.lock().iter() {
        // Strictly: a member giving a queue up commits what it consumed before it unlocks,
        // so the next owner neither goes back nor repeats.
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{key} consumed out of order or twice: {seqs:?}"
        );
    }
    for consumer in [b, c].into_iter().flatten() {
        consumer.shutdown().await;
    }
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// An orderly listener that asks to suspend its queue gets the same message again, in place
/// (reconsume times counting up), and nothing behind it in that queue meanwhile; nothing goes
/// through the broker's retry topic, and the other queues go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderly_consumers_retry_in_place() {
    let (_dir, server, admin) = start_with_topic("InPlace", 4).await;
    // Every delivery, in order: (body, reconsume times).
    let log: Arc<Mutex<Vec<(String, i32)>>> = Arc::default();
    let listener = {
        let log = log.clone();
        Listener::orderly(move |messages: Arc<[MessageExt]>, _ctx| {
            let mut log = log.lock();
            let mut suspend = false;
            for m in messages.iter() {
                let body = String::from_utf8_lossy(&m.body).into_owned();
                // k0:3 fails three times before it succeeds.
                let failures = log.iter().filter(|(b, _)| *b == body).count();
                suspend |= body == "k0:3" && failures < 3;
                log.push((body, m.reconsume_times));
            }
            async move {
                if suspend {
                    ConsumeOrderlyStatus::SuspendCurrentQueueAMoment
                } else {
                    ConsumeOrderlyStatus::Success
                }
            }
        })
    };
    let mut config = consumer_config("in-place-group");
    config.consume_batch_max_size = 1;
    config.suspend_current_queue = Duration::from_millis(200);
    let consumer = PushConsumer::start(
        fast_client(&server.namesrv),
        config,
        vec![Subscription::tag("InPlace", "*")],
        listener,
    )
    .await
    .expect("orderly consumer");
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("in-place-pg"),
    )
    .await
    .expect("producer");
    // k0 and k1 go to different queues.
    let mut queues = BTreeSet::new();
    for seq in 0..8 {
        for key in ["k0", "k1"] {
            let r = producer
                .send_orderly(Message::new("InPlace", format!("{key}:{seq}")), key)
                .await
                .expect("orderly send");
            queues.insert((key, r.queue.queue_id));
        }
    }
    assert_eq!(queues.len(), 2, "{queues:?}");
    wait_until("both keys are consumed to their end", || {
        let log = log.lock();
        ["k0:7", "k1:7"]
            .iter()
            .all(|b| log.iter().any(|(l, _)| l == b))
    })
    .await;
    let log = log.lock().clone();
    let k0: Vec<(String, i32)> = log
        .iter()
        .filter(|(b, _)| b.starts_with("k0:"))
        .cloned()
        .collect();
    let expected: Vec<(String, i32)> = (0..8)
        .flat_map(|seq| {
            let times = if seq == 3 { 0..4 } else { 0..1 };
            times.map(move |t| (format!("k0:{seq}"), t))
        })
        .collect();
    assert_eq!(k0, expected, "k0 retried out of place");
    let k1: Vec<&str> = log
        .iter()
        .filter(|(b, _)| b.starts_with("k1:"))
        .map(|(b, _)| b.as_str())
        .collect();
    assert_eq!(k1, (0..8).map(|s| format!("k1:{s}")).collect::<Vec<_>>());
    assert_eq!(
        common::metric(&server, "tributary_broker_sent_back_total"),
        Some(0.0),
        "an orderly retry went through the broker"
    );
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasting_consumers_each_get_everything_and_resume_from_local_offsets() {
    let (_dir, server, admin) = start_with_topic("Broadcast", 4).await;
    let offsets = tempfile::tempdir().expect("offset dirs");
    let start = |name: &'static str, seen: Arc<Seen>| {
        let namesrv = server.namesrv.clone();
        let mut config = consumer_config("broadcast-group");
        config.message_model = MessageModel::Broadcasting;
        config.local_offset_dir = Some(offsets.path().join(name));
        async move {
            PushConsumer::start(
                fast_client(&namesrv),
                config,
                vec![Subscription::tag("Broadcast", "*")],
                recording_listener(name, &seen),
            )
            .await
            .expect("broadcast consumer")
        }
    };
    let (seen_one, seen_two) = (Arc::new(Seen::default()), Arc::new(Seen::default()));
    let one = start("one", seen_one.clone()).await;
    let two = start("two", seen_two.clone()).await;
    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("bc-pg"))
        .await
        .expect("producer");
    let mut first: HashSet<String> = HashSet::new();
    for i in 0..200 {
        let body = format!("first-{i}");
        producer
            .send(Message::new("Broadcast", body.clone()))
            .await
            .expect("send");
        first.insert(body);
    }
    wait_until("both consumers got every message", || {
        seen_one.contains_all(&first) && seen_two.contains_all(&first)
    })
    .await;
    assert_eq!(one.assigned_queues().len(), 4);
    assert_eq!(two.assigned_queues().len(), 4);

    // Restart one: it resumes from its offset file, not from the first offset again.
    one.shutdown().await;
    let seen_again = Arc::new(Seen::default());
    let one = start("one", seen_again.clone()).await;
    let mut second: HashSet<String> = HashSet::new();
    for i in 0..50 {
        let body = format!("second-{i}");
        producer
            .send(Message::new("Broadcast", body.clone()))
            .await
            .expect("send");
        second.insert(body);
    }
    wait_until("the restarted consumer got the new messages", || {
        seen_again.contains_all(&second)
    })
    .await;
    let replayed = seen_again
        .by_body
        .lock()
        .keys()
        .filter(|b| first.contains(*b))
        .count();
    assert_eq!(replayed, 0, "the restarted consumer replayed old messages");
    one.shutdown().await;
    two.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// A free loopback port (bound and released; the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_mid_stream_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let namesrv = format!("127.0.0.1:{}", free_port());
    let broker = format!("127.0.0.1:{}", free_port());
    // Small segments: the restart recovers a whole one.
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "[store]\ncommitlog_segment_bytes = 8388608\n").expect("config");
    let start = {
        let (path, namesrv, broker) = (dir.path().to_owned(), namesrv.clone(), broker.clone());
        let config = config.to_str().expect("utf-8 path").to_owned();
        move || TestServer::start_on(&path, &namesrv, &broker, &["--config", &config])
    };
    let server = tokio::task::spawn_blocking(start.clone())
        .await
        .expect("start");

    let seen = Arc::new(Seen::default());
    let consumer = PushConsumer::start(
        fast_client(&namesrv),
        consumer_config("restart-group"),
        vec![Subscription::tag("Rebalance", "*")],
        recording_listener("only", &seen),
    )
    .await
    .expect("consumer");
    let producer = Producer::start(fast_client(&namesrv), ProducerConfig::new("restart-pg"))
        .await
        .expect("producer");
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = JoinSet::new();
    producers.spawn(produce(
        producer.clone(),
        "r".into(),
        0,
        acked.clone(),
        stop.clone(),
    ));

    wait_until("500 are acknowledged", || acked.lock().len() > 500).await;
    let killed = tokio::task::spawn_blocking(move || server.kill())
        .await
        .expect("kill");
    assert!(!killed.success());
    let before_restart = acked.lock().len();
    let server = tokio::task::spawn_blocking(start).await.expect("restart");
    wait_until("500 more are acknowledged by the restarted broker", || {
        acked.lock().len() > before_restart + 500
    })
    .await;

    stop.store(true, Ordering::Release);
    while let Some(done) = producers.join_next().await {
        done.expect("producer task");
    }
    let acked = acked.lock().clone();
    wait_until("every acknowledged message is consumed", || {
        seen.contains_all(&acked)
    })
    .await;

    consumer.shutdown().await;
    producer.shutdown().await;
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconsume_later_delivers_again() {
    let (_dir, server, admin) = start_with_topic("Retry", 2).await;
    // Per body, the reconsume counts it was delivered with.
    let deliveries: Arc<Mutex<BTreeMap<String, Vec<i32>>>> = Arc::default();
    let listener = {
        let deliveries = deliveries.clone();
        Listener::concurrently(move |messages: Arc<[MessageExt]>, _ctx| {
            let mut deliveries = deliveries.lock();
            let mut first_time = false;
            for m in messages.iter() {
                let body = String::from_utf8_lossy(&m.body).into_owned();
                first_time |= m.reconsume_times == 0;
                deliveries.entry(body).or_default().push(m.reconsume_times);
            }
            async move {
                if first_time {
                    ConsumeConcurrentlyStatus::ReconsumeLater
                } else {
                    ConsumeConcurrentlyStatus::ConsumeSuccess
                }
            }
        })
    };
    let mut config = consumer_config("retry-group");
    config.local_retry_delay = Duration::from_millis(100);
    let consumer = PushConsumer::start(
        fast_client(&server.namesrv),
        config,
        vec![Subscription::tag("Retry", "*")],
        listener,
    )
    .await
    .expect("consumer");
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("retry-pg"),
    )
    .await
    .expect("producer");
    for i in 0..20 {
        producer
            .send(Message::new("Retry", format!("retry-{i}")))
            .await
            .expect("send");
    }
    wait_until("every message came back after ReconsumeLater", || {
        let deliveries = deliveries.lock();
        deliveries.len() == 20 && deliveries.values().all(|d| d.iter().any(|&t| t >= 1))
    })
    .await;
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// The condition of the SQL92 test, `a > 30 AND b = 'x'`, in Rust: `a` must read as an int.
/// Tag subscriptions: the broker passes a message when its tag's hash (kept in the consume
/// queue) is one of the subscription's, so `Aa` lets `BB` through (Java's hash is the same);
/// the client then compares the tags themselves and hands its listener only `Aa`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_filtered_by_hash_on_the_broker_and_exactly_in_the_client() {
    let (_dir, server, admin) = start_with_topic("Hashed", 1).await;
    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("hash-pg"))
        .await
        .expect("producer");
    for (tag, body) in [
        ("Aa", "aa-1"),
        ("BB", "bb-1"),
        ("Cc", "cc-1"),
        ("Aa", "aa-2"),
    ] {
        producer
            .send(Message::new("Hashed", body).with_tags(tag))
            .await
            .expect("send");
    }
    common::wait_until("the four are in the queue", || async {
        admin
            .topic_status("Hashed")
            .await
            .is_ok_and(|q| q[0].max_offset == 4)
    })
    .await;
    let queue = admin.topic_status("Hashed").await.expect("status")[0]
        .queue
        .clone();
    let pulled = admin
        .instance()
        .pull(
            &queue,
            &PullArgs {
                group: "hash-group".into(),
                offset: 0,
                max_nums: 32,
                expression: Some("Aa".into()),
                expression_type: "TAG".into(),
                sub_version: 0,
                commit_offset: None,
                suspend: None,
            },
        )
        .await
        .expect("pull");
    let bodies: Vec<String> = pulled
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        ["aa-1", "bb-1", "aa-2"],
        "the broker filters by hash"
    );

    let seen = Arc::new(Seen::default());
    let consumer = PushConsumer::start(
        fast_client(&server.namesrv),
        consumer_config("hash-group"),
        vec![Subscription::tag("Hashed", "Aa")],
        recording_listener("only", &seen),
    )
    .await
    .expect("consumer");
    // Once the last one is consumed, every earlier message of the queue was pulled.
    producer
        .send(Message::new("Hashed", "aa-last").with_tags("Aa"))
        .await
        .expect("send");
    wait_until("the last Aa message is consumed", || {
        seen.by_body.lock().contains_key("aa-last")
    })
    .await;
    let mut got: Vec<String> = seen.by_body.lock().keys().cloned().collect();
    got.sort();
    assert_eq!(got, ["aa-1", "aa-2", "aa-last"]);
    consumer.shutdown().await;
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

fn sql_expected(a: Option<&str>, b: &str) -> bool {
    a.and_then(|a| a.parse::<i32>().ok())
        .is_some_and(|a| a > 30)
        && b == "x"
}

/// Sends the SQL92 test's messages: `b` alternates `x`/`y`, `a` is the index except every
/// fifth (absent) and every seventh (not a number). Returns the bodies the filter keeps.
async fn send_sql_messages(producer: &Producer, topic: &str) -> BTreeSet<String> {
    let mut expected = BTreeSet::new();
    for i in 0..60 {
        let body = format!("sql-{i}");
        let b = if i % 2 == 0 { "x" } else { "y" };
        let a = match i {
            i if i % 5 == 0 => None,
            i if i % 7 == 0 => Some("not-a-number".to_owned()),
            i => Some(i.to_string()),
        };
        let mut message = Message::new(topic, body.clone()).with_property("b", b);
        if let Some(a) = &a {
            message = message.with_property("a", a.clone());
        }
        producer.send(message).await.expect("send");
        if sql_expected(a.as_deref(), b) {
            expected.insert(body);
        }
    }
    expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql92_subscriptions_are_filtered_by_the_broker() {
    use tributary_protocol::body::{ConsumerData, HeartbeatData, JsonBody};
    use tributary_protocol::codes::{request, response};

    const FILTER: &str = "a > 30 AND b = 'x'";
    let (_dir, server, admin) = start_with_topic("Sql92", 2).await;
    let producer = Producer::start(fast_client(&server.namesrv), ProducerConfig::new("sql-pg"))
        .await
        .expect("producer");
    let expected = send_sql_messages(&producer, "Sql92").await;
    assert!(expected.len() > 5, "the test keeps some messages");

    // What the broker answers: only matching messages ever leave it.
    common::wait_until("the messages are dispatched to their queues", || async {
        admin
            .topic_status("Sql92")
            .await
            .is_ok_and(|q| q.iter().map(|s| s.max_offset).sum::<i64>() == 60)
    })
    .await;
    let mut pulled = BTreeSet::new();
    for status in admin.topic_status("Sql92").await.expect("queues") {
        let mut offset = 0;
        while offset < status.max_offset {
            let args = PullArgs {
                group: "sql-raw".into(),
                offset,
                max_nums: 8,
                expression: Some(FILTER.into()),
                expression_type: "SQL92".into(),
                sub_version: 0,
                commit_offset: None,
                suspend: None,
            };
            let result = admin
                .instance()
                .pull(&status.queue, &args)
                .await
                .expect("pull");
            assert!(
                result.next_begin_offset > offset || result.status == PullStatus::NoNewMsg,
                "pulls advance"
            );
            for m in &result.messages {
                assert!(
                    sql_expected(m.property("a"), m.property("b").unwrap_or("")),
                    "the broker let {:?} through",
                    m.properties
                );
                pulled.insert(String::from_utf8_lossy(&m.body).into_owned());
            }
            offset = result.next_begin_offset;
        }
    }
    assert_eq!(pulled, expected);

    // A push consumer with the filter gets exactly those.
    let seen = Arc::new(Seen::default());
    let consumer = PushConsumer::start(
        fast_client(&server.namesrv),
        consumer_config("sql-group"),
        vec![Subscription::sql92("Sql92", FILTER)],
        recording_listener("sql", &seen),
    )
    .await
    .expect("consumer");
    let expected_set: HashSet<String> = expected.iter().cloned().collect();
    wait_until("the consumer got every matching message", || {
        seen.contains_all(&expected_set)
    })
    .await;
    assert!(
        seen.by_body.lock().keys().all(|b| expected_set.contains(b)),
        "only matching messages are delivered"
    );
    consumer.shutdown().await;

    // A bad expression is refused when the consumer starts, with the parse error.
    let bad = PushConsumer::start(
        fast_client(&server.namesrv),
        consumer_config("sql-bad"),
        vec![Subscription::sql92("Sql92", "a > 'x'")],
        recording_listener("bad", &seen),
    )
    .await
    .expect_err("a bad expression is refused");
    assert_eq!(
        bad.response_code(),
        Some(response::SUBSCRIPTION_PARSE_FAILED),
        "{bad}"
    );
    assert!(
        bad.to_string()
            .contains("invalid SQL92 expression \"a > 'x'\""),
        "{bad}"
    );
    // ... by a pull that carries it ...
    let queue = MessageQueue {
        topic: "Sql92".into(),
        broker_name: "broker-a".into(),
        queue_id: 0,
    };
    let args = PullArgs {
        group: "sql-raw".into(),
        offset: 0,
        max_nums: 8,
        expression: Some("a >".into()),
        expression_type: "SQL92".into(),
        sub_version: 0,
        commit_offset: None,
        suspend: None,
    };
    let err = admin
        .instance()
        .pull(&queue, &args)
        .await
        .expect_err("refused");
    assert_eq!(
        err.response_code(),
        Some(response::SUBSCRIPTION_PARSE_FAILED)
    );
    // ... and by a heartbeat that registers it.
    let heartbeat = HeartbeatData {
        client_id: "127.0.0.1@sql-test".into(),
        producer_data_set: Vec::new(),
        consumer_data_set: vec![ConsumerData {
            group_name: "sql-hb".into(),
            subscription_data_set: vec![
                Subscription::sql92("Sql92", "a BETWEEN 5 AND 1").to_data(),
            ],
            ..ConsumerData::default()
        }],
    };
    let answer = admin
        .instance()
        .invoke(
            &server.broker,
            tributary_protocol::RemotingCommand::new_request(request::HEART_BEAT, 0)
                .with_body(heartbeat.encode().expect("encode")),
            Duration::from_secs(5),
        )
        .await
        .expect("heartbeat answered");
    assert_eq!(answer.code, response::SUBSCRIPTION_PARSE_FAILED);
    assert!(
        answer.remark.as_deref().is_some_and(|r| r
            .contains("consumer group sql-hb cannot subscribe to topic Sql92")
            && r.contains("must be less than or equal")),
        "{:?}",
        answer.remark
    );
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}

/// The machine's clock, ms since the epoch (the broker's store times come from it).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How often each body was delivered.
fn delivery_counts(seen: &Seen) -> HashMap<String, usize> {
    seen.by_body
        .lock()
        .iter()
        .map(|(b, consumers)| (b.clone(), consumers.len()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_by_time_makes_an_online_consumer_consume_again() {
    use tributary_client::ResetTarget;

    let (_dir, server, admin) = start_with_topic("Replay", 2).await;
    let producer = Producer::start(
        fast_client(&server.namesrv),
        ProducerConfig::new("replay-pg"),
    )
    .await
    .expect("producer");
    for i in 0..10 {
        producer
            .send(Message::new("Replay", format!("early-{i}")))
            .await
            .expect("send");
    }
    // The broker stamped the early messages before it acknowledged them, on this machine's
    // clock; every later message is stored after this millisecond.
    let split = wall_ms() + 1;
    while wall_ms() <= split {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for i in 0..10 {
        producer
            .send(Message::new("Replay", format!("late-{i}")))
            .await
            .expect("send");
    }

    let seen = Arc::new(Seen::default());
    let consumer = PushConsumer::start(
        fast_client(&server.namesrv),
        consumer_config("replay-group"),
        vec![Subscription::tag("Replay", "*")],
        recording_listener("replay", &seen),
    )
    .await
    .expect("consumer");
    wait_until("everything was consumed once", || seen.distinct() == 20).await;
    common::wait_until("the group committed past everything", || async {
        admin
            .group_progress("replay-group")
            .await
            .is_ok_and(|p| p.total_lag() == 0 && p.queues.iter().any(|q| q.queue.topic == "Replay"))
    })
    .await;

    // While the consumer is online: back to the split time. Only the late messages come again.
    let reset = admin
        .reset_offsets("replay-group", "Replay", ResetTarget::Time(split))
        .await
        .expect("reset");
    assert_eq!(reset.len(), 2, "{reset:?}");
    wait_until("the late messages were consumed again", || {
        let counts = delivery_counts(&seen);
        (0..10).all(|i| counts.get(&format!("late-{i}")) == Some(&2))
    })
    .await;
    let counts = delivery_counts(&seen);
    assert!(
        (0..10).all(|i| counts.get(&format!("early-{i}")) == Some(&1)),
        "messages before the reset time are not delivered again: {counts:?}"
    );

    // Back to the first message: everything again, and the group's offsets end at the end.
    admin
        .reset_offsets("replay-group", "Replay", ResetTarget::First)
        .await
        .expect("reset to first");
    wait_until("everything was consumed again", || {
        let counts = delivery_counts(&seen);
        (0..10).all(|i| {
            counts.get(&format!("early-{i}")) == Some(&2)
                && counts.get(&format!("late-{i}")) == Some(&3)
        })
    })
    .await;
    common::wait_until("the group committed past everything again", || async {
        admin
            .group_progress("replay-group")
            .await
            .is_ok_and(|p| p.total_lag() == 0)
    })
    .await;
    consumer.shutdown().await;

    // Offline: to the end; the next member starts there.
    let reset = admin
        .reset_offsets("replay-group", "Replay", ResetTarget::Last)
        .await
        .expect("reset to last");
    let ends: BTreeMap<i32, i64> = admin
        .topic_status("Replay")
        .await
        .expect("queues")
        .into_iter()
        .map(|s| (s.queue.queue_id, s.max_offset))
        .collect();
    let reset_to: BTreeMap<i32, i64> = reset.iter().map(|r| (r.queue.queue_id, r.offset)).collect();
    assert_eq!(reset_to, ends);
    producer.shutdown().await;
    admin.shutdown().await;
    assert!(server.terminate().success());
}
