//! The broker over loopback, driven with raw remoting requests as a RocketMQ client sends
//! them, with a real NameServer beside it.
// Tests await or abort every task they spawn.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tributary_broker::BrokerConfig;
use tributary_protocol::body::{
    CheckClientRequestBody, ConsumeFromWhere, ConsumeType, ConsumerData, ConsumerListByGroup,
    HeartbeatData, JsonBody, LockBatchRequestBody, LockBatchResponseBody, MessageModel,
    MessageQueue, ResetOffsetBody, SubscriptionData, TopicRouteData,
};
use tributary_protocol::header::{
    CreateTopicRequestHeader, GetConsumerListByGroupRequestHeader, GetMaxOffsetRequestHeader,
    GetMaxOffsetResponseHeader, GetRouteInfoRequestHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    QueryMessageRequestHeader, ResetOffsetRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader, UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader,
};
use tributary_protocol::message::{BatchMessage, OffsetMessageId, encode_batch};
use tributary_protocol::{RemotingCommand, codes, sysflag};
use tributary_remoting::{Connection, Handler, HandlerFuture, RemotingClient, TransportConfig};
use tributary_store::{FlushMode, StoredMessage};

mod common;

use common::{T, TestBroker, send_header, send_request};

use codes::request as rq;
use codes::response as rs;

/// A broker with a NameServer beside it.
async fn cluster(flush: FlushMode, tweak: impl FnOnce(&mut BrokerConfig)) -> TestBroker {
    let dir = tempfile::tempdir().expect("tempdir");
    TestBroker::open_with_namesrv(dir, flush, tweak).await
}

fn props(tags: &str, keys: &str) -> String {
    format!("TAGS\u{1}{tags}\u{2}KEYS\u{1}{keys}\u{2}")
}

async fn send(
    client: &RemotingClient,
    addr: &str,
    topic: &str,
    queue_id: i32,
    body: &str,
    properties: &str,
) -> RemotingCommand {
    send_request(
        client,
        addr,
        &send_header(topic, queue_id, properties),
        body,
    )
    .await
}

fn pull_request(group: &str, topic: &str, queue_id: i32, offset: i64) -> PullMessageRequestHeader {
    PullMessageRequestHeader {
        consumer_group: group.into(),
        topic: topic.into(),
        queue_id,
        queue_offset: offset,
        max_msg_nums: 32,
        sys_flag: sysflag::pull::build(false, false, true, false),
        commit_offset: 0,
        suspend_timeout_millis: 0,
        subscription: Some("*".into()),
        sub_version: 0,
        expression_type: Some("TAG".into()),
        max_msg_bytes: None,
        request_source: None,
        proxy_forward_client_id: None,
    }
}

async fn pull(
    client: &RemotingClient,
    addr: &str,
    header: &PullMessageRequestHeader,
) -> (i32, PullMessageResponseHeader, Vec<StoredMessage>) {
    let request = RemotingCommand::new_request(rq::PULL_MESSAGE, 0).with_header(header);
    let r = client
        .invoke(addr, request, T)
        .await
        .expect("pull answered");
    let h: PullMessageResponseHeader = r.decode_header().expect("pull header on every answer");
    (r.code, h, decode_all(&r.body))
}

fn decode_all(mut body: &[u8]) -> Vec<StoredMessage> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let m = tributary_store::record::decode(body, true).expect("whole records");
        body = &body[m.total_size as usize..];
        out.push(m);
    }
    out
}

#[tokio::test]
async fn send_then_pull_view_and_query_by_key() {
    let c = cluster(FlushMode::Async, |_| {}).await;
    let client = RemotingClient::default();
    let addr = c.addr.as_str();

    let mut offsets = Vec::new();
    for i in 0..5 {
        let r = send(
            &client,
            addr,
            "Orders",
            1,
            &format!("order {i}"),
            &props("TagA", &format!("k{i}")),
        )
        .await;
        assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
        let h: SendMessageResponseHeader = r.decode_header().expect("send header");
        assert_eq!((h.queue_id, h.queue_offset), (1, i));
        assert_eq!(r.ext_fields.get("MSG_REGION"), Some("DefaultRegion"));
        offsets.push(OffsetMessageId::decode(&h.msg_id).expect("offset msg id"));
    }
    // V2 short header names.
    let v2 = SendMessageRequestHeaderV2::from(send_header("Orders", 1, &props("TagB", "k5")));
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::SEND_MESSAGE_V2, 0)
                .with_header(&v2)
                .with_body("order 5"),
            T,
        )
        .await
        .expect("v2");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);

    assert!(c.store.wait_dispatched(T));
    let (code, h, messages) = pull(&client, addr, &pull_request("g", "Orders", 1, 0)).await;
    assert_eq!(code, rs::SUCCESS);
    assert_eq!((h.next_begin_offset, h.min_offset, h.max_offset), (6, 0, 6));
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into())
        .collect();
    assert_eq!(
        bodies,
        (0..6).map(|i| format!("order {i}")).collect::<Vec<_>>()
    );
    assert_eq!(messages[0].store_host.to_string(), c.addr);

    // Tags: only TagB.
    let mut tag_b = pull_request("g", "Orders", 1, 0);
    tag_b.subscription = Some("TagB || TagC".into());
    let (code, _, messages) = pull(&client, addr, &tag_b).await;
    assert_eq!(code, rs::SUCCESS);
    assert_eq!(messages.len(), 1);
    assert_eq!(&messages[0].body[..], b"order 5");

    // At the end: PULL_NOT_FOUND, with the offsets still in the header.
    let (code, h, _) = pull(&client, addr, &pull_request("g", "Orders", 1, 6)).await;
    assert_eq!(
        (code, h.max_offset, h.next_begin_offset),
        (rs::PULL_NOT_FOUND, 6, 6)
    );
    let (code, h, _) = pull(&client, addr, &pull_request("g", "Orders", 1, 600)).await;
    assert_eq!((code, h.next_begin_offset), (rs::PULL_OFFSET_MOVED, 6));

    // View by offset message id: the raw record.
    let view = ViewMessageRequestHeader {
        offset: offsets[2].commit_log_offset,
        topic: None,
    };
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::VIEW_MESSAGE_BY_ID, 0).with_header(&view),
            T,
        )
        .await
        .expect("view");
    assert_eq!(r.code, rs::SUCCESS);
    assert_eq!(&decode_all(&r.body)[0].body[..], b"order 2");

    // Query by key.
    let q = QueryMessageRequestHeader {
        topic: "Orders".into(),
        key: "k3".into(),
        max_num: 32,
        begin_timestamp: 0,
        end_timestamp: i64::MAX,
    };
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::QUERY_MESSAGE, 0).with_header(&q),
            T,
        )
        .await
        .expect("query");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let found = decode_all(&r.body);
    assert_eq!(found.len(), 1);
    assert_eq!(&found[0].body[..], b"order 3");

    // Max offset.
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::GET_MAX_OFFSET, 0).with_header(
                &GetMaxOffsetRequestHeader {
                    topic: "Orders".into(),
                    queue_id: 1,
                    committed: None,
                },
            ),
            T,
        )
        .await
        .expect("max");
    assert_eq!(
        r.decode_header::<GetMaxOffsetResponseHeader>()
            .expect("h")
            .offset,
        6
    );

    // The auto-created topic reached the NameServer.
    let mut route = None;
    for _ in 0..100 {
        let r = client
            .invoke(
                c.namesrv_addr.as_deref().expect("a NameServer"),
                RemotingCommand::new_request(rq::GET_ROUTEINFO_BY_TOPIC, 0).with_header(
                    &GetRouteInfoRequestHeader {
                        topic: "Orders".into(),
                        accept_standard_json_only: None,
                    },
                ),
                T,
            )
            .await
            .expect("route");
        if r.code == rs::SUCCESS {
            route = Some(TopicRouteData::decode(&r.body).expect("route body"));
            break;
        }
        // The broker registers right after auto-creating; wait for that round trip.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let route = route.expect("route registered");
    assert_eq!(route.queue_datas[0].write_queue_nums, 4);
    assert_eq!(route.broker_datas[0].broker_addrs.get(&0), Some(&c.addr));
    c.stop().await;
}

#[tokio::test]
async fn a_long_poll_is_woken_by_the_next_send() {
    let c = cluster(FlushMode::Async, |_| {}).await;
    let client = RemotingClient::default();
    let addr = c.addr.clone();
    let r = send(&client, &addr, "Waits", 0, "first", "").await;
    assert_eq!(r.code, rs::SUCCESS);
    assert!(c.store.wait_dispatched(T));

    let mut header = pull_request("g", "Waits", 0, 1);
    header.sys_flag = sysflag::pull::build(false, true, true, false);
    header.suspend_timeout_millis = 30_000;
    let parked = {
        let client = client.clone();
        let addr = addr.clone();
        tokio::spawn(async move { pull(&client, &addr, &header).await })
    };
    // Wait until the broker holds the pull, then send.
    while c.broker.stats().pulls_suspended.load(Ordering::Relaxed) == 0 {
        assert!(
            !parked.is_finished(),
            "the pull was answered instead of held"
        );
        tokio::task::yield_now().await;
    }
    let r = send(&client, &addr, "Waits", 0, "second", "").await;
    assert_eq!(r.code, rs::SUCCESS);
    let (code, h, messages) = parked.await.expect("join");
    assert_eq!(code, rs::SUCCESS);
    assert_eq!(h.next_begin_offset, 2);
    assert_eq!(&messages[0].body[..], b"second");

    // A held pull whose time runs out is answered PULL_NOT_FOUND.
    let mut header = pull_request("g", "Waits", 0, 2);
    header.sys_flag = sysflag::pull::build(false, true, true, false);
    header.suspend_timeout_millis = 50;
    let (code, h, _) = pull(&client, &addr, &header).await;
    assert_eq!((code, h.next_begin_offset), (rs::PULL_NOT_FOUND, 2));
    c.stop().await;
}

#[tokio::test]
async fn sync_flush_batches_and_bad_sends() {
    // hot_read_bytes = 0: every pull here takes the blocking-thread path of cold reads.
    let c = cluster(FlushMode::Sync, |cfg| {
        cfg.auto_create_topic = false;
        cfg.hot_read_bytes = 0;
    })
    .await;
    let client = RemotingClient::default();
    let addr = c.addr.as_str();

    // No auto-creation: unknown topics are refused until created.
    let r = send(&client, addr, "Batches", 0, "x", "").await;
    assert_eq!(r.code, rs::TOPIC_NOT_EXIST, "{:?}", r.remark);
    let create = CreateTopicRequestHeader {
        topic: "Batches".into(),
        default_topic: "TBW102".into(),
        read_queue_nums: 2,
        write_queue_nums: 2,
        perm: 6,
        topic_filter_type: "SINGLE_TAG".into(),
        topic_sys_flag: None,
        order: false,
        attributes: None,
        force: None,
    };
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::UPDATE_AND_CREATE_TOPIC, 0).with_header(&create),
            T,
        )
        .await
        .expect("create");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);

    let batch: Vec<BatchMessage> = (0..10)
        .map(|i| BatchMessage {
            flag: 0,
            body: Bytes::from(format!("batch {i}")),
            properties: [("KEYS".to_string(), format!("bk{i}"))]
                .into_iter()
                .collect(),
        })
        .collect();
    let mut body = BytesMut::new();
    encode_batch(&batch, &mut body).expect("encode batch");
    let header = SendMessageRequestHeaderV2::from(send_header("Batches", 1, ""));
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::SEND_BATCH_MESSAGE, 0)
                .with_header(&header)
                .with_body(body.freeze()),
            T,
        )
        .await
        .expect("batch");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let h: SendMessageResponseHeader = r.decode_header().expect("header");
    assert_eq!(h.msg_id.split(',').count(), 10);
    // SYNC: acknowledged means flushed.
    let last = OffsetMessageId::decode(h.msg_id.split(',').next_back().expect("ids")).expect("id");
    assert!(c.store.commitlog_flushed_offset() > last.commit_log_offset as u64);
    assert!(c.store.wait_dispatched(T));
    let (_, h, messages) = pull(&client, addr, &pull_request("g", "Batches", 1, 0)).await;
    assert_eq!(h.max_offset, 10);
    assert_eq!(messages.len(), 10);
    assert_eq!(messages[9].property("KEYS"), Some("bk9"));

    // Bad input: a queue out of range, a bad topic name, an oversize message, a missing header.
    let r = send(&client, addr, "Batches", 7, "x", "").await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    assert!(
        r.remark
            .unwrap_or_default()
            .contains("queueId[7] is illegal")
    );
    let r = send(&client, addr, "bad topic!", 0, "x", "").await;
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let huge = "x".repeat(5 << 20);
    let r = send(&client, addr, "Batches", 0, &huge, "").await;
    assert_eq!(r.code, rs::MESSAGE_ILLEGAL, "{:?}", r.remark);
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::SEND_MESSAGE, 0).with_body("no header"),
            T,
        )
        .await
        .expect("answered");
    assert_eq!(r.code, rs::SYSTEM_ERROR);
    let r = client
        .invoke(addr, RemotingCommand::new_request(99_999, 0), T)
        .await
        .expect("answered");
    assert_eq!(r.code, rs::REQUEST_CODE_NOT_SUPPORTED);
    // Nothing of the refused sends was stored.
    assert_eq!(c.store.max_offset("Batches", 0), 0);
    c.stop().await;
}

/// Counts NOTIFY_CONSUMER_IDS_CHANGED requests a client receives.
#[derive(Default, Clone)]
struct Notified(Arc<(AtomicUsize, tokio::sync::Notify)>);
impl Handler for Notified {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        if request.code == rq::NOTIFY_CONSUMER_IDS_CHANGED {
            self.0.0.fetch_add(1, Ordering::SeqCst);
            self.0.1.notify_waiters();
        }
        Box::pin(async { None })
    }
}

fn heartbeat(client_id: &str, group: &str, topic: &str) -> RemotingCommand {
    let data = HeartbeatData {
        client_id: client_id.into(),
        producer_data_set: vec![],
        consumer_data_set: vec![ConsumerData {
            group_name: group.into(),
            consume_type: ConsumeType::ConsumePassively,
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFromWhere::default(),
            subscription_data_set: vec![SubscriptionData {
                class_filter_mode: false,
                topic: topic.into(),
                sub_string: "*".into(),
                tags_set: vec![],
                code_set: vec![],
                sub_version: 1,
                expression_type: "TAG".into(),
                filter_class_source: None,
            }],
            unit_mode: false,
        }],
    };
    RemotingCommand::new_request(rq::HEART_BEAT, 0).with_body(data.encode().expect("encode"))
}

async fn consumer_ids(client: &RemotingClient, addr: &str, group: &str) -> Vec<String> {
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::GET_CONSUMER_LIST_BY_GROUP, 0).with_header(
                &GetConsumerListByGroupRequestHeader {
                    consumer_group: group.into(),
                },
            ),
            T,
        )
        .await
        .expect("list");
    if r.code != rs::SUCCESS {
        return vec![];
    }
    ConsumerListByGroup::decode(&r.body)
        .expect("body")
        .consumer_id_list
}

#[tokio::test]
async fn consumers_join_leave_lock_and_commit_offsets_that_survive_a_restart() {
    let c = cluster(FlushMode::Async, |_| {}).await;
    let addr = c.addr.clone();
    assert_eq!(
        send(&RemotingClient::default(), &addr, "Jobs", 0, "x", "")
            .await
            .code,
        rs::SUCCESS
    );

    let seen_a = Notified::default();
    let a = RemotingClient::new(TransportConfig::default(), Arc::new(seen_a.clone()));
    let b = RemotingClient::new(TransportConfig::default(), Arc::new(Notified::default()));
    assert_eq!(
        a.invoke(&addr, heartbeat("a@1", "workers", "Jobs"), T)
            .await
            .expect("hb")
            .code,
        rs::SUCCESS
    );
    assert_eq!(consumer_ids(&a, &addr, "workers").await, vec!["a@1"]);
    // The group's retry topic exists for clustering consumers.
    assert!(c.broker.topics().get("%RETRY%workers").is_some());

    // b joins: a is told.
    let joined = seen_a.0.1.notified();
    assert_eq!(
        b.invoke(&addr, heartbeat("b@1", "workers", "Jobs"), T)
            .await
            .expect("hb")
            .code,
        rs::SUCCESS
    );
    joined.await;
    assert_eq!(consumer_ids(&a, &addr, "workers").await, vec!["a@1", "b@1"]);

    // Locks: one owner per queue.
    let mq = |q| MessageQueue {
        topic: "Jobs".into(),
        broker_name: "broker-a".into(),
        queue_id: q,
    };
    let lock = |client_id: &str, queues: Vec<MessageQueue>| {
        RemotingCommand::new_request(rq::LOCK_BATCH_MQ, 0).with_body(
            LockBatchRequestBody {
                consumer_group: "workers".into(),
                client_id: client_id.into(),
                only_this_broker: false,
                mq_set: queues,
            }
            .encode()
            .expect("encode"),
        )
    };
    let r = a
        .invoke(&addr, lock("a@1", vec![mq(0), mq(1)]), T)
        .await
        .expect("lock");
    assert_eq!(
        LockBatchResponseBody::decode(&r.body)
            .expect("body")
            .lock_ok_mq_set
            .len(),
        2
    );
    let r = b
        .invoke(&addr, lock("b@1", vec![mq(1), mq(2)]), T)
        .await
        .expect("lock");
    assert_eq!(
        LockBatchResponseBody::decode(&r.body)
            .expect("body")
            .lock_ok_mq_set,
        vec![mq(2)]
    );

    // b's connection closes: a is told again and b leaves the group.
    let left = seen_a.0.1.notified();
    b.shutdown().await;
    left.await;
    assert_eq!(consumer_ids(&a, &addr, "workers").await, vec!["a@1"]);
    assert!(seen_a.0.0.load(Ordering::SeqCst) >= 2);

    // Offsets: unknown, then committed.
    let query = RemotingCommand::new_request(rq::QUERY_CONSUMER_OFFSET, 0).with_header(
        &QueryConsumerOffsetRequestHeader {
            consumer_group: "workers".into(),
            topic: "Jobs".into(),
            queue_id: 0,
            set_zero_if_not_found: None,
        },
    );
    let r = a.invoke(&addr, query.clone(), T).await.expect("query");
    assert_eq!(r.code, rs::QUERY_NOT_FOUND);
    let update = UpdateConsumerOffsetRequestHeader {
        consumer_group: "workers".into(),
        topic: "Jobs".into(),
        queue_id: 0,
        commit_offset: 1,
    };
    let r = a
        .invoke(
            &addr,
            RemotingCommand::new_request(rq::UPDATE_CONSUMER_OFFSET, 0).with_header(&update),
            T,
        )
        .await
        .expect("update");
    assert_eq!(r.code, rs::SUCCESS);
    let r = a.invoke(&addr, query.clone(), T).await.expect("query");
    assert_eq!(
        r.decode_header::<QueryConsumerOffsetResponseHeader>()
            .expect("h")
            .offset,
        1
    );
    a.shutdown().await;

    // Restart on the same directory: offsets and topics are still there.
    let dir = c.stop().await;
    let c = TestBroker::open_with_namesrv(dir, FlushMode::Async, |_| {}).await;
    let client = RemotingClient::default();
    let r = client.invoke(&c.addr, query, T).await.expect("query");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    assert_eq!(
        r.decode_header::<QueryConsumerOffsetResponseHeader>()
            .expect("h")
            .offset,
        1
    );
    assert_eq!(
        c.broker.topics().get("Jobs").map(|t| t.write_queue_nums),
        Some(4)
    );
    assert_eq!(c.store.max_offset("Jobs", 0), 1);
    c.stop().await;
}

/// Random bytes, truncated frames, oversize lengths and undecodable headers on many
/// connections: each is answered or closed, nothing is stored, and a well-behaved client on
/// its own connection is served throughout.
#[tokio::test]
async fn garbage_on_other_connections_touches_nothing_stored() {
    use rand::{Rng, SeedableRng};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let c = cluster(FlushMode::Async, |_| {}).await;
    let client = RemotingClient::default();
    let addr = c.addr.clone();
    assert_eq!(
        send(&client, &addr, "Safe", 0, "keep me", "").await.code,
        rs::SUCCESS
    );
    assert!(c.store.wait_dispatched(T));
    let end = c.store.commitlog_max_offset();

    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for round in 0..200 {
        let mut frame: Vec<u8> = match round % 4 {
            // Pure noise.
            0 => (0..rng.random_range(1..512))
                .map(|_| rng.random())
                .collect(),
            // A plausible length and type byte, then noise.
            1 => {
                let body: Vec<u8> = (0..rng.random_range(0..256))
                    .map(|_| rng.random())
                    .collect();
                let mut f = ((body.len() + 4) as i32).to_be_bytes().to_vec();
                f.extend_from_slice(&(rng.random_range(0..64u32)).to_be_bytes());
                f.extend(body);
                f
            }
            // A JSON header of a send with wrong field types.
            2 => {
                let h = format!(
                    r#"{{"code":10,"opaque":{round},"flag":0,"extFields":{{"topic":"Safe","queueId":[{round}],"bornTimestamp":"x"}}}}"#
                );
                let mut f = ((h.len() + 4) as i32).to_be_bytes().to_vec();
                f.extend_from_slice(&(h.len() as u32).to_be_bytes());
                f.extend(h.into_bytes());
                f
            }
            // A length over the limit.
            _ => (i32::MAX - round).to_be_bytes().to_vec(),
        };
        if round % 5 == 0 {
            frame.truncate(frame.len() / 2);
        }
        let mut raw = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let _ = raw.write_all(&frame).await;
        let _ = raw.shutdown().await;
        // Read whatever comes back until the broker closes its side.
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(T, raw.read_to_end(&mut sink))
            .await
            .expect("the broker closes");
        if round % 20 == 0 {
            let r = send(&client, &addr, "Safe", 0, "still served", "").await;
            assert_eq!(r.code, rs::SUCCESS, "round {round} (FUZZ_SEED={seed})");
        }
    }
    assert!(c.store.wait_dispatched(T));
    // Only the well-behaved client's ten sends were stored after the first message.
    assert_eq!(c.store.max_offset("Safe", 0), 11, "FUZZ_SEED={seed}");
    assert!(c.store.commitlog_max_offset() > end);
    let report = c.store.verify().expect("verify");
    assert!(report.problems.is_empty(), "{report:?}");
    c.stop().await;
}

/// Keeps the RESET_CONSUMER_CLIENT_OFFSET requests a client receives.
#[derive(Default, Clone)]
struct Resets(
    Arc<(
        parking_lot::Mutex<Vec<RemotingCommand>>,
        tokio::sync::Notify,
    )>,
);
impl Handler for Resets {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        if request.code == rq::RESET_CONSUMER_CLIENT_OFFSET {
            self.0.0.lock().push(request);
            self.0.1.notify_waiters();
        }
        Box::pin(async { None })
    }
}

impl Resets {
    /// The offset table of the `n`th notice (1-based), once it arrived.
    async fn nth(&self, n: usize) -> BTreeMap<i32, i64> {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            let notified = self.0.1.notified();
            if let Some(r) = self.0.0.lock().get(n - 1) {
                let h: ResetOffsetRequestHeader = r.decode_header().expect("header");
                assert_eq!((h.topic.as_str(), h.group.as_str()), ("Reset", "rg"));
                return queue_offsets(&ResetOffsetBody::decode(&r.body).expect("body"));
            }
            assert!(
                tokio::time::timeout_at(deadline, notified).await.is_ok(),
                "no reset notice #{n}"
            );
        }
    }
}

fn queue_offsets(body: &ResetOffsetBody) -> BTreeMap<i32, i64> {
    body.offset_table
        .iter()
        .map(|(mq, o)| (mq.queue_id, *o))
        .collect()
}

fn reset_request(
    group: &str,
    timestamp: i64,
    force: bool,
    queue: Option<(i32, i64)>,
) -> RemotingCommand {
    RemotingCommand::new_request(rq::INVOKE_BROKER_TO_RESET_OFFSET, 0).with_header(
        &ResetOffsetRequestHeader {
            topic: "Reset".into(),
            group: group.into(),
            timestamp,
            is_force: Some(force),
            queue_id: queue.map(|(q, _)| q),
            offset: queue.map(|(_, o)| o),
        },
    )
}

async fn committed(client: &RemotingClient, addr: &str, queue_id: i32) -> Option<i64> {
    let r = client
        .invoke(
            addr,
            RemotingCommand::new_request(rq::QUERY_CONSUMER_OFFSET, 0).with_header(
                &QueryConsumerOffsetRequestHeader {
                    consumer_group: "rg".into(),
                    topic: "Reset".into(),
                    queue_id,
                    set_zero_if_not_found: None,
                },
            ),
            T,
        )
        .await
        .expect("query");
    (r.code == rs::SUCCESS).then(|| {
        r.decode_header::<QueryConsumerOffsetResponseHeader>()
            .expect("header")
            .offset
    })
}

#[tokio::test]
async fn offset_resets_commit_and_tell_online_consumers() {
    let c = cluster(FlushMode::Async, |_| {}).await;
    let addr = c.addr.clone();
    let plain = RemotingClient::default();
    for (queue, count) in [(0, 5), (1, 3)] {
        for i in 0..count {
            let r = send(&plain, &addr, "Reset", queue, &format!("m{i}"), "").await;
            assert_eq!(r.code, rs::SUCCESS);
        }
    }
    assert!(c.store.wait_dispatched(T), "dispatched");
    let resets = Resets::default();
    let member = RemotingClient::new(TransportConfig::default(), Arc::new(resets.clone()));
    let r = member
        .invoke(&addr, heartbeat("m@1", "rg", "Reset"), T)
        .await
        .expect("hb");
    assert_eq!(r.code, rs::SUCCESS);
    for (queue, offset) in [(0, 5), (1, 3)] {
        let r = member
            .invoke(
                &addr,
                RemotingCommand::new_request(rq::UPDATE_CONSUMER_OFFSET, 0).with_header(
                    &UpdateConsumerOffsetRequestHeader {
                        consumer_group: "rg".into(),
                        topic: "Reset".into(),
                        queue_id: queue,
                        commit_offset: offset,
                    },
                ),
                T,
            )
            .await
            .expect("commit");
        assert_eq!(r.code, rs::SUCCESS);
    }

    // One queue to an exact offset (5.x): committed, answered, and told to the member.
    let r = plain
        .invoke(&addr, reset_request("rg", -1, true, Some((0, 2))), T)
        .await
        .expect("reset");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let answer = queue_offsets(&ResetOffsetBody::decode(&r.body).expect("body"));
    assert_eq!(answer, BTreeMap::from([(0, 2)]));
    assert_eq!(resets.nth(1).await, answer);
    assert_eq!(committed(&plain, &addr, 0).await, Some(2));
    assert_eq!(committed(&plain, &addr, 1).await, Some(3));

    // Without force, offsets only move back: to the end leaves them where they are.
    let r = plain
        .invoke(&addr, reset_request("rg", -1, false, None), T)
        .await
        .expect("reset");
    assert_eq!(r.code, rs::SUCCESS, "{:?}", r.remark);
    let expected = BTreeMap::from([(0, 2), (1, 3), (2, 0), (3, 0)]);
    assert_eq!(
        queue_offsets(&ResetOffsetBody::decode(&r.body).expect("body")),
        expected
    );
    assert_eq!(resets.nth(2).await, expected);
    // With force, to the start of every queue.
    let r = plain
        .invoke(&addr, reset_request("rg", 0, true, None), T)
        .await
        .expect("reset");
    assert_eq!(r.code, rs::SUCCESS);
    assert!(
        queue_offsets(&ResetOffsetBody::decode(&r.body).expect("body"))
            .values()
            .all(|o| *o == 0)
    );
    assert_eq!(committed(&plain, &addr, 0).await, Some(0));

    for (request, code) in [
        (
            reset_request("rg", -1, true, Some((0, 99))),
            rs::INVALID_PARAMETER,
        ),
        (
            reset_request("rg", -1, true, Some((9, 0))),
            rs::INVALID_PARAMETER,
        ),
        (
            reset_request("nobody", 0, true, None),
            rs::SUBSCRIPTION_GROUP_NOT_EXIST,
        ),
    ] {
        let r = plain.invoke(&addr, request, T).await.expect("answered");
        assert_eq!(r.code, code, "{:?}", r.remark);
    }
    let mut other_topic = reset_request("rg", 0, true, None);
    other_topic.ext_fields.insert("topic", "NoSuchTopic");
    let r = plain.invoke(&addr, other_topic, T).await.expect("answered");
    assert_eq!(r.code, rs::TOPIC_NOT_EXIST);
    c.stop().await;
}

#[tokio::test]
async fn sql92_pulls_return_only_matching_messages() {
    let c = cluster(FlushMode::Async, |_| {}).await;
    let addr = c.addr.clone();
    let client = RemotingClient::default();
    for i in 0..10 {
        let props = format!("n\u{1}{i}\u{2}");
        let r = send(&client, &addr, "Sql", 0, &format!("m{i}"), &props).await;
        assert_eq!(r.code, rs::SUCCESS);
    }
    assert!(c.store.wait_dispatched(T), "dispatched");
    let mut header = pull_request("sg", "Sql", 0, 0);
    header.subscription = Some("n >= 7 OR n = 2".into());
    header.expression_type = Some("SQL92".into());
    let (code, h, messages) = pull(&client, &addr, &header).await;
    assert_eq!(code, rs::SUCCESS);
    let bodies: Vec<&[u8]> = messages.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [&b"m2"[..], b"m7", b"m8", b"m9"]);
    assert_eq!(h.next_begin_offset, 10);
    // Nothing matches: the pull moves on without a message.
    header.subscription = Some("n > 100".into());
    let (code, h, messages) = pull(&client, &addr, &header).await;
    assert_eq!(code, rs::PULL_RETRY_IMMEDIATELY);
    assert!(messages.is_empty());
    assert_eq!(h.next_begin_offset, 10);
    // A bad expression, and the subscription check a consumer makes before it starts.
    header.subscription = Some("n >".into());
    let r = client
        .invoke(
            &addr,
            RemotingCommand::new_request(rq::PULL_MESSAGE, 0).with_header(&header),
            T,
        )
        .await
        .expect("pull answered");
    assert_eq!(r.code, rs::SUBSCRIPTION_PARSE_FAILED);
    assert!(
        r.remark
            .as_deref()
            .is_some_and(|m| m.starts_with("invalid SQL92 expression \"n >\"")),
        "{:?}",
        r.remark
    );
    for (expression, expression_type, code) in [
        ("n > 1", "SQL92", rs::SUCCESS),
        ("n >", "SQL92", rs::SUBSCRIPTION_PARSE_FAILED),
        ("TagA || TagB", "TAG", rs::SUCCESS),
    ] {
        let body = CheckClientRequestBody {
            client_id: "c@1".into(),
            group: "sg".into(),
            subscription_data: Some(SubscriptionData {
                class_filter_mode: false,
                topic: "Sql".into(),
                sub_string: expression.into(),
                tags_set: vec![],
                code_set: vec![],
                sub_version: 1,
                expression_type: expression_type.into(),
                filter_class_source: None,
            }),
            namespace: None,
        };
        let r = client
            .invoke(
                &addr,
                RemotingCommand::new_request(rq::CHECK_CLIENT_CONFIG, 0)
                    .with_body(body.encode().expect("encode")),
                T,
            )
            .await
            .expect("answered");
        assert_eq!(r.code, code, "{expression}: {:?}", r.remark);
    }
    c.stop().await;
}
