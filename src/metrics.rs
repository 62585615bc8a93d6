//! Prometheus metrics: the store's counters exported through prometheus-client.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tributary_store::MessageStore;

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
                "flushes",
                "Commit log flushes (msync/fsync rounds)",
                &s.flushes,
            ),
            (
                "flush_micros",
                "Time spent in commit log flushes, microseconds",
                &s.flush_micros_total,
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
                "segment_rolls",
                "Commit log segment rolls",
                &s.segment_rolls,
            ),
            (
                "messages_dispatched",
                "Messages dispatched to consume queues and index",
                &s.messages_dispatched,
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
            let c = ConstCounter::new(v.load(Ordering::Relaxed));
            let full = format!("tributary_store_{name}");
            let m = enc.encode_descriptor(&full, help, None, c.metric_type())?;
            c.encode(m)?;
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
            let g = ConstGauge::new(v);
            let full = format!("tributary_store_{name}");
            let m = enc.encode_descriptor(&full, help, None, g.metric_type())?;
            g.encode(m)?;
        }
        Ok(())
    }
}

/// A registry with every metric of a server.
pub fn registry(store: Arc<MessageStore>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(StoreCollector(store)));
    r
}

/// Renders the registry in the Prometheus text format.
pub fn render(r: &Registry) -> String {
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut out, r) {
        tracing::error!(error = %e, "encoding metrics failed");
    }
    out
}
