//! Counters the store keeps about itself; the binary exports them as Prometheus metrics.
//! [`Histogram`] is also what the broker counts its delivery lags in.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Monotonic counters and gauges of one store. All fields are updated with relaxed atomics.
#[derive(Debug, Default)]
pub struct StoreStats {
    pub messages_appended: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub append_calls: AtomicU64,
    /// How long each commit log flush (`fdatasync` / `msync` round) took, µs.
    pub flush_micros: Histogram<FlushMicros>,
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
        self.flush_micros.observe(us);
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

/// The upper bounds (inclusive, ascending) of a [`Histogram`]'s buckets, in its unit.
pub trait Bounds {
    const UPPER: &'static [u64];
}

/// Upper bounds of the flush-time buckets, µs: an fsync of a group commit takes 50 µs to a few
/// ms on an SSD; the buckets above tell how long the stalls of a busy or failing disk were.
#[derive(Debug)]
pub struct FlushMicros;

impl Bounds for FlushMicros {
    const UPPER: &'static [u64] = &[
        25, 50, 75, 100, 125, 150, 200, 250, 300, 400, 500, 750, 1_000, 1_500, 2_000, 5_000,
        10_000, 25_000, 100_000, 1_000_000, 10_000_000,
    ];
}

/// A histogram with the fixed buckets of `B` and one above them, kept in atomics so that
/// the thread that observes never waits for a reader (a Prometheus scrape, a benchmark).
#[derive(Debug)]
pub struct Histogram<B: Bounds> {
    /// Per bucket (not cumulative), the last one without an upper bound.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
    bounds: PhantomData<B>,
}

impl<B: Bounds> Default for Histogram<B> {
    fn default() -> Self {
        Histogram {
            buckets: (0..=B::UPPER.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
            bounds: PhantomData,
        }
    }
}

impl<B: Bounds> Histogram<B> {
    /// Counts one observation of `value`.
    pub fn observe(&self, value: u64) {
        let bucket = B::UPPER.partition_point(|&upper| upper < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations counted.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observed values.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// Per bucket (not cumulative), its upper bound (`None` for the last) and its count.
    pub fn buckets(&self) -> Vec<(Option<u64>, u64)> {
        B::UPPER
            .iter()
            .map(|&upper| Some(upper))
            .chain(std::iter::once(None))
            .zip(&*self.buckets)
            .map(|(upper, n)| (upper, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// The upper bound of the bucket that holds the `q` quantile (0 < q ≤ 1): at least that
    /// share of the observations were at most this. `None` when nothing was observed or the
    /// quantile is above the last bound.
    pub fn quantile_bound(&self, q: f64) -> Option<u64> {
        let buckets = self.buckets();
        let total: u64 = buckets.iter().map(|(_, n)| n).sum();
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (upper, n) in buckets {
            seen += n;
            if seen >= rank {
                return upper;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Small;
    impl Bounds for Small {
        const UPPER: &'static [u64] = &[5, 10, 1_000];
    }

    #[test]
    fn histogram_counts_each_value_in_its_bucket() {
        let h = Histogram::<Small>::default();
        assert_eq!(h.quantile_bound(0.5), None, "empty");
        for v in [0, 5, 6, 10, 11, 1_000, 1_001, u64::MAX / 4] {
            h.observe(v);
        }
        assert_eq!(h.count(), 8);
        assert_eq!(h.sum(), 5 + 6 + 10 + 11 + 1_000 + 1_001 + u64::MAX / 4);
        assert_eq!(
            h.buckets(),
            vec![(Some(5), 2), (Some(10), 2), (Some(1_000), 2), (None, 2)],
            "bounds are inclusive"
        );
        assert_eq!(h.quantile_bound(0.25), Some(5));
        assert_eq!(h.quantile_bound(0.26), Some(10));
        assert_eq!(h.quantile_bound(0.75), Some(1_000));
        assert_eq!(h.quantile_bound(0.99), None, "above the last bound");
    }
}
