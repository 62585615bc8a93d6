//! Prometheus metrics: the store's, broker's and NameServer's counters, read at scrape time
//! through prometheus-client collectors.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tributary_broker::Broker;
use tributary_namesrv::NamesrvStats;
use tributary_remoting::TransportStats;
use tributary_store::{Bounds, Histogram, MessageStore};

/// Reads the store's counters at scrape time.
#[derive(Debug)]
struct StoreCollector(Arc<MessageStore>);

impl Collector for StoreCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let counters = [
            (
                "messages_appended",
                "Messages appended to the commit log",
                &s.messages_appended,
            ),
            (
                "appended_bytes",
                "Bytes appended to the commit log",
                &s.bytes_appended,
            ),
            (
                "append_calls",
                "Append calls (a batch is one call)",
                &s.append_calls,
            ),
            (
                "group_commits",
                "SYNC flush rounds that completed waiting appends",
                &s.group_commits,
            ),
            (
                "group_commit_waiters",
                "Appends completed by SYNC flush rounds",
                &s.group_commit_waiters,
            ),
            (
                "group_commit_gathers",
                "SYNC group commits that waited for more appends before their fsync",
                &s.group_commit_gathers,
            ),
            (
                "group_commit_gather_micros",
                "Time SYNC group commits waited for more appends, microseconds",
                &s.group_commit_gather_micros_total,
            ),
            (
                "segment_rolls",
                "Commit log segment rolls",
                &s.segment_rolls,
            ),
            (
                "prewritten_bytes",
                "Zeros written over next commit log segments before their roll (prewrite_segments)",
                &s.prewritten_bytes,
            ),
            (
                "messages_dispatched",
                "Messages dispatched to consume queues and index",
                &s.messages_dispatched,
            ),
            (
                "dispatch_errors",
                "Dispatch rounds that failed and were retried (consume queues wait meanwhile)",
                &s.dispatch_errors,
            ),
            (
                "messages_read",
                "Messages returned by queue reads",
                &s.messages_read,
            ),
            ("read_bytes", "Bytes returned by queue reads", &s.bytes_read),
            (
                "segments_deleted",
                "Commit log segments deleted by retention",
                &s.segments_deleted,
            ),
            (
                "writes_refused_disk_full",
                "Appends refused because the disk was over the hard ratio",
                &s.writes_refused_disk_full,
            ),
        ];
        for (name, help, v) in counters {
            let full = format!("tributary_store_{name}");
            counter(&mut enc, &full, help, v.load(Ordering::Relaxed))?;
        }
        let gauges = [
            (
                "commitlog_max_offset_bytes",
                "End of the commit log",
                self.0.commitlog_max_offset() as i64,
            ),
            (
                "commitlog_min_offset_bytes",
                "Start of the commit log",
                self.0.commitlog_min_offset() as i64,
            ),
            (
                "commitlog_flushed_offset_bytes",
                "Commit log offset known durable",
                self.0.commitlog_flushed_offset() as i64,
            ),
            (
                "dispatched_offset_bytes",
                "Commit log offset dispatched to consume queues",
                self.0.dispatched_offset() as i64,
            ),
            (
                "flush_micros_max",
                "Longest commit log flush, microseconds",
                s.flush_micros_max.load(Ordering::Relaxed) as i64,
            ),
            (
                "disk_used_basis_points",
                "Disk use of the data directory, 1/10000",
                s.disk_used_bp.load(Ordering::Relaxed) as i64,
            ),
        ];
        for (name, help, v) in gauges {
            gauge(&mut enc, &format!("tributary_store_{name}"), help, v)?;
        }
        histogram(
            &mut enc,
            "tributary_store_flush_seconds",
            "How long each commit log flush took (SYNC: one group commit's fdatasync)",
            &s.flush_micros,
            1e6,
        )?;
        Ok(())
    }
}

/// Adds the store's metrics (`tributary_store_*`).
pub fn register_store(r: &mut Registry, store: Arc<MessageStore>) {
    r.register_collector(Box::new(StoreCollector(store)));
}

fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    let m = enc.encode_descriptor(name, help, None, c.metric_type())?;
    c.encode(m)
}

fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = enc.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

/// A histogram in seconds from one whose unit is `1 / per_second` s (ms: 1000, µs: 1e6).
fn histogram<B: Bounds>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    h: &Histogram<B>,
    per_second: f64,
) -> Result<(), std::fmt::Error> {
    let buckets: Vec<(f64, u64)> = h
        .buckets()
        .into_iter()
        .map(|(upper, n)| (upper.map_or(f64::MAX, |u| u as f64 / per_second), n))
        .collect();
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(h.sum() as f64 / per_second, h.count(), &buckets, None)
}

/// Reads the broker's and its transport's counters at scrape time.
#[derive(Debug)]
struct BrokerCollector {
    broker: Arc<Broker>,
    transport: Arc<TransportStats>,
}

impl Collector for BrokerCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.broker.stats();
        let d = self.broker.schedule().stats();
        let t = self.broker.transactions().stats();
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let counters = [
            (
                "messages_in",
                "Messages stored by send requests",
                load(&s.messages_in),
            ),
            (
                "bytes_in",
                "Body bytes stored by send requests",
                load(&s.bytes_in),
            ),
            (
                "send_failures",
                "Send requests refused or failed",
                load(&s.send_failures),
            ),
            (
                "flush_timeouts",
                "Sends answered FLUSH_DISK_TIMEOUT",
                load(&s.flush_timeouts),
            ),
            (
                "messages_out",
                "Messages returned by pulls",
                load(&s.messages_out),
            ),
            (
                "bytes_out",
                "Record bytes returned by pulls",
                load(&s.bytes_out),
            ),
            ("pulls", "Pull requests answered", load(&s.pulls)),
            (
                "topics_auto_created",
                "Topics created by a first send",
                load(&s.topics_auto_created),
            ),
            (
                "sent_back",
                "Messages consumers sent back for a retry",
                load(&s.sent_back),
            ),
            (
                "dead_letters",
                "Messages sent back that went to a dead-letter topic",
                load(&s.dead_letters),
            ),
            (
                "replies_pushed",
                "Replies (SEND_REPLY_MESSAGE) pushed to their requester and acknowledged",
                load(&s.replies_pushed),
            ),
            (
                "replies_requester_missing",
                "Replies whose requester is not connected to this broker (answered SYSTEM_ERROR)",
                load(&s.replies_requester_missing),
            ),
            (
                "reply_push_failures",
                "Replies whose push to a connected requester failed or was refused",
                load(&s.reply_push_failures),
            ),
            (
                "replies_stored",
                "Replies stored in their topic (broker.store_reply_messages)",
                load(&s.replies_stored),
            ),
            (
                "delayed_delivered",
                "Delayed and timer messages delivered to their topics",
                load(&d.delivered),
            ),
            (
                "timers_restaged",
                "Timer messages moved to a shorter stage",
                load(&d.restaged),
            ),
            (
                "delayed_dropped",
                "Delayed messages dropped (unreadable, or their topic was deleted)",
                load(&d.dropped),
            ),
            (
                "transactions_prepared",
                "Half messages stored (transactions begun)",
                load(&t.prepared),
            ),
            (
                "transactions_committed",
                "Transactions committed (by the producer or after a check)",
                load(&t.committed),
            ),
            (
                "transactions_rolled_back",
                "Transactions rolled back (by the producer or after a check)",
                load(&t.rolled_back),
            ),
            (
                "transaction_checks",
                "Transaction checks made (CHECK_TRANSACTION_STATE rounds)",
                load(&t.checks),
            ),
            (
                "transaction_checks_without_producer",
                "Transaction checks that found no live producer of the group",
                load(&t.checks_without_producer),
            ),
            (
                "transactions_discarded",
                "Transactions discarded after their last unanswered check",
                load(&t.discarded),
            ),
        ];
        for (name, help, v) in counters {
            counter(&mut enc, &format!("tributary_broker_{name}"), help, v)?;
        }
        gauge(
            &mut enc,
            "tributary_broker_pulls_suspended",
            "Pulls waiting for messages (long polling)",
            s.pulls_suspended.load(Ordering::Relaxed),
        )?;
        gauge(
            &mut enc,
            "tributary_broker_delayed_pending",
            "Delayed and timer messages not yet delivered",
            i64::try_from(d.pending.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
        )?;
        histogram(
            &mut enc,
            "tributary_broker_delayed_delivery_lag_seconds",
            "How late delayed, timer and retried messages were delivered after their due time",
            &d.delivery_lag,
            1e3,
        )?;
        gauge(
            &mut enc,
            "tributary_broker_transactions_pending",
            "Transactions neither committed, rolled back nor discarded",
            i64::try_from(self.broker.transactions().pending_count()).unwrap_or(i64::MAX),
        )?;
        gauge(
            &mut enc,
            "tributary_broker_topics",
            "Topics configured on the broker",
            self.broker.topics().names().len() as i64,
        )?;
        gauge(
            &mut enc,
            "tributary_broker_consumer_groups_online",
            "Consumer groups with a live client",
            self.broker.clients().consumer_groups().len() as i64,
        )?;
        transport(&mut enc, "tributary_broker", &self.transport)
    }
}

fn transport(
    enc: &mut DescriptorEncoder<'_>,
    prefix: &str,
    t: &TransportStats,
) -> Result<(), std::fmt::Error> {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    gauge(
        enc,
        &format!("{prefix}_connections_open"),
        "Open remoting connections",
        t.connections_open.load(Ordering::Relaxed),
    )?;
    let counters = [
        (
            "connections",
            "Remoting connections accepted",
            load(&t.connections_total),
        ),
        (
            "connections_refused",
            "Connections closed at the connection limit",
            load(&t.connections_refused),
        ),
        (
            "requests",
            "Remoting requests received",
            load(&t.requests_in),
        ),
        (
            "frame_errors",
            "Frames that closed their connection",
            load(&t.frame_errors),
        ),
        (
            "header_errors",
            "Frames whose header did not decode",
            load(&t.header_errors),
        ),
        (
            "net_bytes_in",
            "Bytes read from remoting connections",
            load(&t.bytes_in),
        ),
        (
            "net_bytes_out",
            "Bytes written to remoting connections",
            load(&t.bytes_out),
        ),
    ];
    for (name, help, v) in counters {
        counter(enc, &format!("{prefix}_{name}"), help, v)?;
    }
    Ok(())
}

/// Adds the broker's metrics (`tributary_broker_*`).
pub fn register_broker(r: &mut Registry, broker: Arc<Broker>, transport: Arc<TransportStats>) {
    r.register_collector(Box::new(BrokerCollector { broker, transport }));
}

/// Reads the NameServer's counters at scrape time.
#[derive(Debug)]
struct NamesrvCollector(Arc<NamesrvStats>);

impl Collector for NamesrvCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let gauges = [
            (
                "brokers_live",
                "Broker addresses registered and not expired",
                load(&s.brokers_live),
            ),
            (
                "broker_names",
                "Broker names with at least one address",
                load(&s.broker_names),
            ),
            (
                "clusters",
                "Clusters with at least one broker",
                load(&s.clusters),
            ),
            ("topics", "Topics with a route", load(&s.topics)),
        ];
        for (name, help, v) in gauges {
            gauge(
                &mut enc,
                &format!("tributary_namesrv_{name}"),
                help,
                v as i64,
            )?;
        }
        let counters = [
            (
                "registrations",
                "Broker registrations",
                load(&s.registrations),
            ),
            (
                "unregistrations",
                "Brokers unregistered",
                load(&s.unregistrations),
            ),
            (
                "expirations",
                "Brokers expired for not registering",
                load(&s.expirations),
            ),
            (
                "connection_closes",
                "Brokers removed when their connection closed",
                load(&s.connection_closes),
            ),
            (
                "request_errors",
                "Requests answered with an error",
                load(&s.request_errors),
            ),
        ];
        for (name, help, v) in counters {
            counter(&mut enc, &format!("tributary_namesrv_{name}"), help, v)?;
        }
        let family = Family::<Vec<(String, String)>, Counter>::default();
        for (code, n) in s.requests() {
            family
                .get_or_create(&vec![("code".to_string(), code.to_string())])
                .inc_by(n);
        }
        let m = enc.encode_descriptor(
            "tributary_namesrv_requests",
            "Requests received, by request code",
            None,
            family.metric_type(),
        )?;
        family.encode(m)
    }
}

/// Adds the NameServer's metrics (`tributary_namesrv_*`).
pub fn register_namesrv(r: &mut Registry, stats: Arc<NamesrvStats>) {
    r.register_collector(Box::new(NamesrvCollector(stats)));
}

/// Renders the registry in the Prometheus text format.
pub fn render(r: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, r) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}
