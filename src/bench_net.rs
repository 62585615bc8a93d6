//! `tributary bench produce | consume`: load through the RocketMQ remoting protocol, in the
//! spirit of RocketMQ's `Producer` / `Consumer` benchmark tools. Speaks only the protocol, so it
//! measures any RocketMQ-compatible broker given a NameServer address.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tributary_protocol::body::{BrokerData, ClusterInfo, JsonBody, QueueData, TopicRouteData};
use tributary_protocol::header::{
    CreateTopicRequestHeader, GetRouteInfoRequestHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    SendMessageRequestHeader, SendMessageRequestHeaderV2,
};
use tributary_protocol::message::{BatchMessage, encode_batch};
use tributary_protocol::{RemotingCommand, SerializeType, codes, sysflag};
use tributary_remoting::RemotingClient;

use crate::cli::{BenchConsumeArgs, BenchProduceArgs, SerializeArg};
use crate::config::parse_namesrv_list;

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .thread_name("bench-client")
        .build()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Counters and latencies of one run, read by the reporter.
struct Meter {
    started: Instant,
    /// Microseconds from `started` to the last record: the end of the active period (a
    /// consumer that drains the topic early must not count its idle tail).
    last_us: AtomicU64,
    count: AtomicU64,
    bytes: AtomicU64,
    failures: AtomicU64,
    /// (this interval, whole run), microseconds.
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Meter {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            latency: Mutex::new((histogram(), histogram())),
        }
    }

    fn record(&self, n: u64, bytes: u64, micros: u64) {
        self.count.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_us
            .fetch_max(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let mut h = self.latency.lock();
        let v = micros.max(1);
        let _ = h.0.record(v);
        let _ = h.1.record(v);
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn summary_line(
    label: &str,
    n: u64,
    bytes: u64,
    secs: f64,
    h: &Histogram<u64>,
    failures: u64,
    latency: &str,
) -> String {
    let secs = secs.max(1e-9);
    format!(
        "{label:>10}  {:>10.0} msg/s  {:>8.1} MB/s  {latency} avg {:.3} ms  p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}  failures {failures}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        h.mean() / 1000.0,
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    )
}

/// Prints a line every interval until `stop`.
async fn report(meter: Arc<Meter>, interval: Duration, stop: Arc<AtomicBool>, what: &'static str) {
    let started = Instant::now();
    let (mut last_n, mut last_b, mut last_t) = (0, 0, Instant::now());
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(interval).await;
        let n = meter.count.load(Ordering::Relaxed);
        let b = meter.bytes.load(Ordering::Relaxed);
        let now = Instant::now();
        let h = {
            let mut l = meter.latency.lock();
            std::mem::replace(&mut l.0, histogram())
        };
        let label = format!("[{:>4.0}s]", started.elapsed().as_secs_f64());
        println!(
            "{}",
            summary_line(
                &label,
                n - last_n,
                b - last_b,
                now.duration_since(last_t).as_secs_f64(),
                &h,
                meter.failures.load(Ordering::Relaxed),
                what,
            )
        );
        (last_n, last_b, last_t) = (n, b, now);
    }
}

async fn route(
    client: &RemotingClient,
    namesrvs: &[String],
    topic: &str,
) -> anyhow::Result<TopicRouteData> {
    let mut last = None;
    for ns in namesrvs {
        let request = RemotingCommand::new_request(codes::request::GET_ROUTEINFO_BY_TOPIC, 0)
            .with_header(&GetRouteInfoRequestHeader {
                topic: topic.into(),
                accept_standard_json_only: Some(true),
            });
        match client.invoke(ns, request, TIMEOUT).await {
            Ok(r) if r.code == codes::response::SUCCESS => {
                return Ok(TopicRouteData::decode(&r.body)?);
            }
            Ok(r) => {
                last = Some(anyhow::anyhow!(
                    "{ns}: code {} {}",
                    r.code,
                    r.remark.unwrap_or_default()
                ))
            }
            Err(e) => last = Some(e.into()),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no NameServer given")))
        .with_context(|| format!("route of topic {topic}"))
}

fn master(b: &BrokerData) -> Option<&String> {
    b.broker_addrs.get(&0)
}

/// (master broker address, queue id) of every queue of a route; `count` picks the read or
/// write queue count.
fn master_queues(route: &TopicRouteData, count: impl Fn(&QueueData) -> i32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for q in &route.queue_datas {
        let broker = route
            .broker_datas
            .iter()
            .find(|b| b.broker_name == q.broker_name);
        if let Some(addr) = broker.and_then(master) {
            out.extend((0..count(q)).map(|id| (addr.clone(), id)));
        }
    }
    out
}

async fn create_topic(
    client: &RemotingClient,
    namesrvs: &[String],
    topic: &str,
    queues: i32,
) -> anyhow::Result<()> {
    let mut info = None;
    for ns in namesrvs {
        let request = RemotingCommand::new_request(codes::request::GET_BROKER_CLUSTER_INFO, 0);
        if let Ok(r) = client.invoke(ns, request, TIMEOUT).await
            && r.code == codes::response::SUCCESS
        {
            info = Some(ClusterInfo::decode(&r.body)?);
            break;
        }
    }
    let info = info.context("cluster info from the NameServer")?;
    for broker in info.broker_addr_table.values() {
        let Some(addr) = master(broker) else { continue };
        let header = CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
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
                RemotingCommand::new_request(codes::request::UPDATE_AND_CREATE_TOPIC, 0)
                    .with_header(&header),
                TIMEOUT,
            )
            .await?;
        if r.code != codes::response::SUCCESS {
            bail!(
                "create topic {topic} on {addr}: code {} {}",
                r.code,
                r.remark.unwrap_or_default()
            );
        }
    }
    Ok(())
}

/// Every writable (broker address, topic, queue) of the topics.
async fn targets(
    client: &RemotingClient,
    namesrvs: &[String],
    topics: &[String],
) -> anyhow::Result<Vec<(String, String, i32)>> {
    let mut out = Vec::new();
    for topic in topics {
        // A freshly created topic reaches the NameServer with the broker's next registration.
        let deadline = Instant::now() + Duration::from_secs(10);
        let r = loop {
            match route(client, namesrvs, topic).await {
                Ok(r) => break r,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        for (addr, id) in master_queues(&r, |q| q.write_queue_nums) {
            out.push((addr, topic.clone(), id));
        }
    }
    if out.is_empty() {
        bail!("no writable queue in {topics:?}");
    }
    Ok(out)
}

fn send_request(
    topic: &str,
    queue_id: i32,
    body: &Bytes,
    batch: usize,
) -> anyhow::Result<RemotingCommand> {
    let header = SendMessageRequestHeader {
        producer_group: "bench_producer".into(),
        topic: topic.into(),
        default_topic: "TBW102".into(),
        default_topic_queue_nums: 8,
        queue_id,
        sys_flag: 0,
        born_timestamp: now_ms(),
        flag: 0,
        properties: Some("WAIT\u{1}true\u{2}".into()),
        reconsume_times: Some(0),
        unit_mode: Some(false),
        batch: Some(batch > 1),
        max_reconsume_times: None,
        broker_name: None,
    };
    let v2 = SendMessageRequestHeaderV2::from(header);
    if batch <= 1 {
        return Ok(
            RemotingCommand::new_request(codes::request::SEND_MESSAGE_V2, 0)
                .with_header(&v2)
                .with_body(body.clone()),
        );
    }
    let messages: Vec<BatchMessage> = (0..batch)
        .map(|_| BatchMessage {
            flag: 0,
            body: body.clone(),
            properties: Default::default(),
        })
        .collect();
    let mut out = BytesMut::with_capacity(batch * (body.len() + 32));
    encode_batch(&messages, &mut out)?;
    Ok(
        RemotingCommand::new_request(codes::request::SEND_BATCH_MESSAGE, 0)
            .with_header(&v2)
            .with_body(out.freeze()),
    )
}

pub fn produce(args: BenchProduceArgs) -> anyhow::Result<()> {
    runtime(args.net.runtime_threads)?.block_on(produce_async(args))
}

async fn produce_async(args: BenchProduceArgs) -> anyhow::Result<()> {
    let namesrvs = parse_namesrv_list(&args.net.namesrv);
    let client = RemotingClient::default();
    let mut topics = vec![args.net.topic.clone()];
    topics.extend((0..args.extra_topics).map(|i| format!("{}_{i}", args.net.topic)));
    if args.queues > 0 {
        for t in &topics {
            create_topic(&client, &namesrvs, t, args.queues).await?;
        }
    }
    let targets = Arc::new(targets(&client, &namesrvs, &topics).await?);
    println!(
        "bench produce: {} senders x 1 in flight, {} B bodies, batch {}, {} queues in {} topic(s), {} s, NameServer {}",
        args.threads,
        args.size,
        args.batch,
        targets.len(),
        topics.len(),
        args.net.duration,
        args.net.namesrv
    );
    let body = Bytes::from(vec![b'x'; args.size]);
    let meter = Arc::new(Meter::new());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.net.duration);
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..args.threads.max(1) {
        let (client, targets, meter, stop, body) = (
            client.clone(),
            targets.clone(),
            meter.clone(),
            stop.clone(),
            body.clone(),
        );
        let (threads, batch, size) = (args.threads.max(1), args.batch.max(1), args.size);
        let serialize = match args.serialize {
            SerializeArg::Json => SerializeType::Json,
            SerializeArg::Rocketmq => SerializeType::RocketMq,
        };
        tasks.spawn(async move {
            let mut i = id;
            while !stop.load(Ordering::Relaxed) {
                let (addr, topic, queue) = &targets[i % targets.len()];
                i += threads;
                let request = match send_request(topic, *queue, &body, batch) {
                    Ok(mut r) => {
                        r.serialize_type = serialize;
                        r
                    }
                    Err(e) => {
                        eprintln!("build request: {e}");
                        return;
                    }
                };
                let t0 = Instant::now();
                match client.invoke(addr, request, TIMEOUT).await {
                    Ok(r) if r.code == codes::response::SUCCESS => {
                        meter.record(
                            batch as u64,
                            (batch * size) as u64,
                            t0.elapsed().as_micros() as u64,
                        );
                    }
                    Ok(r) => {
                        meter.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(code = r.code, remark = ?r.remark, "send failed");
                    }
                    Err(e) => {
                        meter.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(error = %e, "send failed");
                    }
                }
            }
        });
    }
    let mut reporter = tokio::task::JoinSet::new();
    reporter.spawn(report(
        meter.clone(),
        Duration::from_secs(args.net.report_interval.max(1)),
        stop.clone(),
        "send RT",
    ));
    tokio::time::sleep_until(deadline.into()).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    reporter.abort_all();
    let total = meter.latency.lock().1.clone();
    let (n, b, f) = (
        meter.count.load(Ordering::Relaxed),
        meter.bytes.load(Ordering::Relaxed),
        meter.failures.load(Ordering::Relaxed),
    );
    println!(
        "{}",
        summary_line("total", n, b, elapsed, &total, f, "send RT")
    );
    if args.net.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": "produce", "threads": args.threads, "size": args.size, "batch": args.batch,
                "queues": targets.len(), "seconds": elapsed, "messages": n,
                "msgs_per_sec": n as f64 / elapsed, "mb_per_sec": b as f64 / elapsed / 1e6,
                "rt_avg_ms": total.mean() / 1000.0, "rt_p50_ms": ms(total.value_at_quantile(0.5)),
                "rt_p99_ms": ms(total.value_at_quantile(0.99)), "rt_p999_ms": ms(total.value_at_quantile(0.999)),
                "rt_max_ms": ms(total.max()), "failures": f,
            })
        );
    }
    client.shutdown().await;
    Ok(())
}

pub fn consume(args: BenchConsumeArgs) -> anyhow::Result<()> {
    runtime(args.net.runtime_threads)?.block_on(consume_async(args))
}

/// Where a group resumes in a queue: its committed offset, else the queue's start.
async fn start_offset(
    client: &RemotingClient,
    addr: &str,
    group: &str,
    topic: &str,
    queue_id: i32,
) -> anyhow::Result<i64> {
    let request = RemotingCommand::new_request(codes::request::QUERY_CONSUMER_OFFSET, 0)
        .with_header(&QueryConsumerOffsetRequestHeader {
            consumer_group: group.into(),
            topic: topic.into(),
            queue_id,
            set_zero_if_not_found: None,
        });
    let r = client.invoke(addr, request, TIMEOUT).await?;
    Ok(match r.code {
        codes::response::SUCCESS => {
            r.decode_header::<QueryConsumerOffsetResponseHeader>()?
                .offset
        }
        _ => 0,
    })
}

struct ConsumeTask {
    client: RemotingClient,
    addr: String,
    group: String,
    topic: String,
    queue_id: i32,
    pull_batch: i32,
    meter: Arc<Meter>,
    /// End-to-end latency from the producer's born timestamp, microseconds.
    born: Arc<Mutex<Histogram<u64>>>,
    stop: Arc<AtomicBool>,
    limit: u64,
}

impl ConsumeTask {
    async fn run(self) -> anyhow::Result<()> {
        let mut offset = start_offset(
            &self.client,
            &self.addr,
            &self.group,
            &self.topic,
            self.queue_id,
        )
        .await?;
        while !self.stop.load(Ordering::Relaxed) {
            let header = PullMessageRequestHeader {
                consumer_group: self.group.clone(),
                topic: self.topic.clone(),
                queue_id: self.queue_id,
                queue_offset: offset,
                max_msg_nums: self.pull_batch,
                sys_flag: sysflag::pull::build(true, true, true, false),
                commit_offset: offset,
                suspend_timeout_millis: 1000,
                subscription: Some("*".into()),
                sub_version: 0,
                expression_type: Some("TAG".into()),
                max_msg_bytes: None,
                request_source: None,
                proxy_forward_client_id: None,
            };
            let request =
                RemotingCommand::new_request(codes::request::PULL_MESSAGE, 0).with_header(&header);
            let t0 = Instant::now();
            let r = match self.client.invoke(&self.addr, request, TIMEOUT).await {
                Ok(r) => r,
                Err(e) => {
                    self.meter.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "pull failed");
                    continue;
                }
            };
            let h: PullMessageResponseHeader = r.decode_header()?;
            offset = h.next_begin_offset;
            if r.code != codes::response::SUCCESS {
                continue;
            }
            let now = now_ms();
            let (mut n, mut bytes, mut body) = (0u64, 0u64, &r.body[..]);
            let mut born = Vec::new();
            let mut store_lag = 0u64;
            while !body.is_empty() {
                let m = tributary_store::record::view(body, false)
                    .context("decode a pulled message")?;
                body = &body[m.size..];
                n += 1;
                bytes += m.body.len() as u64;
                born.push(((now - m.born_timestamp).max(0) as u64) * 1000);
                store_lag = store_lag.max(((now - m.store_timestamp).max(0) as u64) * 1000);
            }
            let _ = t0;
            self.meter.record(n, bytes, store_lag);
            {
                let mut h = self.born.lock();
                for v in born {
                    let _ = h.record(v.max(1));
                }
            }
            if self.limit > 0 && self.meter.count.load(Ordering::Relaxed) >= self.limit {
                self.stop.store(true, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}

async fn consume_async(args: BenchConsumeArgs) -> anyhow::Result<()> {
    let namesrvs = parse_namesrv_list(&args.net.namesrv);
    let client = RemotingClient::default();
    let route = route(&client, &namesrvs, &args.net.topic).await?;
    let born = Arc::new(Mutex::new(histogram()));
    let meter = Arc::new(Meter::new());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    let mut queues = 0;
    for (addr, queue_id) in master_queues(&route, |q| q.read_queue_nums) {
        queues += 1;
        let task = ConsumeTask {
            client: client.clone(),
            addr,
            group: args.group.clone(),
            topic: args.net.topic.clone(),
            queue_id,
            pull_batch: args.pull_batch,
            meter: meter.clone(),
            born: born.clone(),
            stop: stop.clone(),
            limit: args.messages,
        };
        tasks.spawn(task.run());
    }
    println!(
        "bench consume: topic {} ({queues} queues), group {}, pulls of {}, {} s, NameServer {}",
        args.net.topic, args.group, args.pull_batch, args.net.duration, args.net.namesrv
    );
    let started = Instant::now();
    let mut reporter = tokio::task::JoinSet::new();
    reporter.spawn(report(
        meter.clone(),
        Duration::from_secs(args.net.report_interval.max(1)),
        stop.clone(),
        "e2e (store)",
    ));
    let stopper = stop.clone();
    let limit = tokio::time::sleep(Duration::from_secs(args.net.duration));
    tokio::pin!(limit);
    loop {
        tokio::select! {
            () = &mut limit => break,
            joined = tasks.join_next() => match joined {
                Some(Ok(Err(e))) => { stopper.store(true, Ordering::Relaxed); return Err(e); }
                Some(_) => {}
                None => break,
            },
        }
    }
    stopper.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    reporter.abort_all();
    // Rates over the active period: from the start to the last message received.
    let _ = started;
    let elapsed = (meter.last_us.load(Ordering::Relaxed) as f64 / 1e6).max(1e-3);
    let store_h = meter.latency.lock().1.clone();
    let born_h = born.lock().clone();
    let (n, b, f) = (
        meter.count.load(Ordering::Relaxed),
        meter.bytes.load(Ordering::Relaxed),
        meter.failures.load(Ordering::Relaxed),
    );
    println!(
        "{}",
        summary_line("total", n, b, elapsed, &store_h, f, "e2e (store)")
    );
    println!(
        "{}",
        summary_line("", n, b, elapsed, &born_h, f, "e2e (born) ")
    );
    if args.net.json {
        println!(
            "{}",
            serde_json::json!({
                "mode": "consume", "queues": queues, "seconds": elapsed, "messages": n,
                "msgs_per_sec": n as f64 / elapsed, "mb_per_sec": b as f64 / elapsed / 1e6,
                "e2e_born_p50_ms": ms(born_h.value_at_quantile(0.5)), "e2e_born_p99_ms": ms(born_h.value_at_quantile(0.99)),
                "failures": f,
            })
        );
    }
    client.shutdown().await;
    Ok(())
}
