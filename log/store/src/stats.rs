//! Counters the store keeps about itself; the binary exports them as Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Monotonic counters and gauges of one store. All fields are updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub messages_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub append_calls: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_micros_total: AtomicU64,
    pub flush_micros_max: AtomicU64,
    pub group_commits: AtomicU64,
    pub group_commit_waiters: AtomicU64,
    /// SYNC group commits that waited for more appends before their fsync (see
    /// `sync_gather_max_us`), and the time they waited in total.
    pub group_commit_gathers: AtomicU64,
    pub group_commit_gather_micros_total: AtomicU64,
    pub segment_rolls: AtomicU64,
    /// Bytes of zeros written over next segments before their roll (`prewrite_segments`).
    pub prewritten_bytes: AtomicU64,
    pub messages_dispatched: AtomicU64,
    /// Dispatch rounds that failed (each is retried; see the dispatcher).
    pub dispatch_errors: AtomicU64,
    pub messages_read: AtomicU64,
    pub bytes_read: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub writes_refused_disk_full: AtomicU64,
    /// Disk use of the data directory in basis points (1/10000), as last measured.
    pub disk_used_bp: AtomicU64,
}

impl StoreStats {
    pub(crate) fn record_append(&self, messages: u64, bytes: u64) {
        self.append_calls.fetch_add(1, Ordering::Relaxed);
        self.messages_appended
            .fetch_add(messages, Ordering::Relaxed);
        self.bytes_appended.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn record_flush(&self, took: Duration) {
        let us = took.as_micros() as u64;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.flush_micros_total.fetch_add(us, Ordering::Relaxed);
        self.flush_micros_max.fetch_max(us, Ordering::Relaxed);
    }
    pub(crate) fn record_gather(&self, waited: Duration) {
        self.group_commit_gathers.fetch_add(1, Ordering::Relaxed);
        self.group_commit_gather_micros_total
            .fetch_add(waited.as_micros() as u64, Ordering::Relaxed);
    }
    pub(crate) fn record_read(&self, messages: u64, bytes: u64) {
        self.messages_read.fetch_add(messages, Ordering::Relaxed);
        self.bytes_read.fetch_add(bytes, Ordering::Relaxed);
    }
}
