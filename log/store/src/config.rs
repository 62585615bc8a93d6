//! Store configuration. Every limit is explicit; [`StoreConfig::validate`] rejects nonsense early.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, StoreError};

/// When an append is acknowledged relative to its bytes reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushMode {
    /// Acknowledge after the copy into the page cache; a flusher thread syncs periodically.
    Async,
    /// Acknowledge only after an fsync covering the message returned (group commit).
    Sync,
}

/// What abnormal recovery does when it finds a damaged record with valid data after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptionPolicy {
    /// Refuse to open and report the offset; nothing is changed on disk.
    Fail,
    /// Move the damaged suffix to `quarantine/` and truncate the log there.
    Quarantine,
}

/// Configuration of a [`crate::MessageStore`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Root of all store files.
    pub data_dir: PathBuf,
    /// Size of one commit log segment file.
    pub commitlog_segment_bytes: u64,
    /// Units (20 bytes each) per consume queue file.
    pub consume_queue_units_per_file: u64,
    /// Hash slots per index file.
    pub index_slots: u32,
    /// Entries per index file.
    pub index_entries: u32,
    /// Largest message record accepted (body + properties + topic + header).
    pub max_message_bytes: usize,
    /// Flush mode of the commit log.
    pub flush_mode: FlushMode,
    /// ASYNC mode: how often the flusher syncs the commit log.
    pub flush_interval_ms: u64,
    /// SYNC mode: how long an append waits for its fsync before FLUSH_DISK_TIMEOUT.
    pub sync_flush_timeout_ms: u64,
    /// SYNC mode: the longest a group commit waits, after the previous fsync returned, for the
    /// writers that fsync acknowledged to append again, so that one fsync covers them all
    /// instead of every other one. The wait ends as soon as as many appends arrived as the
    /// previous fsync woke waiting writers, so a lone writer never waits. A wait that ends at
    /// its bound before all of them came turns gathering off for a few fsyncs (the writers are
    /// too slow to come back for it to pay; see `gather.rs`). 0 turns gathering off: fsyncs run back to back while
    /// bytes are unflushed.
    pub sync_gather_max_us: u64,
    /// SYNC mode: the gathering wait is also bounded by this fraction of the recent fsync time
    /// (gathering pays only while the writers come back faster than an fsync takes). 0 turns
    /// gathering off.
    pub sync_gather_fsync_ratio: f64,
    /// How often consume queues, index files and the checkpoint are synced.
    pub flush_consume_queue_interval_ms: u64,
    /// How long the dispatcher waits, after a round that found new messages, before looking
    /// again (µs). While messages keep arriving it then builds consume queues and wakes held
    /// pulls once per interval for everything that arrived in it, instead of being woken by
    /// every append (a futex call and a context switch each). An idle dispatcher is still
    /// woken by the first append, so a quiet log adds no delay; a busy one adds up to this much
    /// to end-to-end latency. 0 dispatches after every append. At most 10,000 µs.
    pub dispatch_linger_us: u64,
    /// ASYNC mode: fault the commit log's pages in writable on the allocator thread
    /// (`MADV_POPULATE_WRITE`), a 64 MiB window ahead of the appends, so that appends never
    /// take a page fault (allocating and zeroing a page-cache page under the append lock).
    /// Costs up to the window in page cache ahead of the data. SYNC appends write through the
    /// file, not the mapping, and ignore it. While ASYNC appends of `file_write_min_bytes` or
    /// more come, the window is only read into the page cache (`POSIX_FADV_WILLNEED`), not
    /// mapped.
    pub warm_segments: bool,
    /// SYNC mode: the allocator writes zeros over each next segment (and syncs them) before the
    /// roll, so that group commits overwrite written blocks instead of writing into
    /// preallocated ones. An fsync after writing into a preallocated (unwritten) block also
    /// commits the block's conversion to the filesystem journal. Measured with 64 writers on a
    /// 2-vCPU VM: 1 KiB appends +30 % msgs/s and median latency -30 %, 4 KiB +5-12 %; but the
    /// prewrite's own IO delays some group commits (p99 +10-30 %), and every segment is
    /// written twice. Off by default; for throughput over tail latency. ASYNC ignores it.
    pub prewrite_segments: bool,
    /// ASYNC mode: an append call of at least this many bytes (a batch, say) is written through
    /// the file (`pwritev`) instead of copied into the mapping. Pages written through the file
    /// are never mapped writable, so the periodic flush need not write-protect them again (a
    /// TLB-shootdown IPI per page to every CPU running the process); a small append still costs less as a copy into a prefaulted mapping than
    /// as a system call. 0 writes every append through the file.
    pub file_write_min_bytes: usize,
    /// Address written as STOREHOST in every record (the broker's address).
    pub store_host: SocketAddr,
    /// What to do with a damaged record in the middle of the log.
    pub on_corruption: CorruptionPolicy,
    /// Retention of old data and disk-space protection.
    pub retention: RetentionConfig,
}

/// Retention and disk-space limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep commit log segments at least this long after their last write.
    pub file_reserved_hours: u64,
    /// Local hours (`"04"`, or `"03;04"`) at which expired segments are deleted.
    pub delete_when: String,
    /// Disk use ratio above which expired segments are deleted whatever the hour.
    pub disk_high_ratio: f64,
    /// Disk use ratio above which the oldest segments are deleted even if not expired.
    pub disk_force_clean_ratio: f64,
    /// Disk use ratio above which appends are refused.
    pub disk_hard_ratio: f64,
    /// How often the cleaner checks disk use and expiry.
    pub check_interval_ms: u64,
    /// A segment a reader still holds is deleted only after waiting this long.
    pub forcible_delete_interval_ms: u64,
    /// Segments deleted per cleaner round at most (bounds the IO burst).
    pub max_deletes_per_round: usize,
}

/// Upper limits of the gathering options: a group commit never waits more than 100 ms, nor
/// more than four fsync times, for writers to come.
const MAX_SYNC_GATHER_US: u64 = 100_000;
const MAX_SYNC_GATHER_FSYNC_RATIO: f64 = 4.0;

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./tributary-data/store"),
            commitlog_segment_bytes: 1 << 30,
            consume_queue_units_per_file: 300_000,
            index_slots: 5_000_000,
            index_entries: 20_000_000,
            max_message_bytes: 4 * 1024 * 1024,
            flush_mode: FlushMode::Async,
            flush_interval_ms: 500,
            sync_flush_timeout_ms: 5_000,
            sync_gather_max_us: 1000,
            sync_gather_fsync_ratio: 0.5,
            flush_consume_queue_interval_ms: 1_000,
            dispatch_linger_us: 200,
            warm_segments: true,
            prewrite_segments: false,
            file_write_min_bytes: 32 * 1024,
            store_host: SocketAddr::from(([127, 0, 0, 1], 10911)),
            on_corruption: CorruptionPolicy::Fail,
            retention: RetentionConfig::default(),
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            file_reserved_hours: 72,
            delete_when: "04".to_string(),
            disk_high_ratio: 0.75,
            disk_force_clean_ratio: 0.85,
            disk_hard_ratio: 0.90,
            check_interval_ms: 10_000,
            forcible_delete_interval_ms: 120_000,
            max_deletes_per_round: 10,
        }
    }
}

impl StoreConfig {
    /// A configuration rooted at `data_dir` with every other option at its default.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            ..StoreConfig::default()
        }
    }

    /// Checks every option; the error names the option and the accepted range.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(StoreError::Config(msg));
        if !(4096..=(1 << 40)).contains(&self.commitlog_segment_bytes) {
            return fail(format!(
                "commitlog_segment_bytes = {} must be between 4096 and 2^40",
                self.commitlog_segment_bytes
            ));
        }
        if self.max_message_bytes < 128
            || self.max_message_bytes as u64 + 8 > self.commitlog_segment_bytes
        {
            return fail(format!(
                "max_message_bytes = {} must be at least 128 and fit a segment of {} bytes",
                self.max_message_bytes, self.commitlog_segment_bytes
            ));
        }
        if self.max_message_bytes > i32::MAX as usize {
            return fail("max_message_bytes must fit in an i32".into());
        }
        if !(1..=50_000_000).contains(&self.consume_queue_units_per_file) {
            return fail("consume_queue_units_per_file must be between 1 and 50,000,000".into());
        }
        if self.index_slots == 0 || self.index_entries < 2 || self.index_entries > 100_000_000 {
            return fail(
                "index_slots must be > 0 and index_entries between 2 and 100,000,000".into(),
            );
        }
        if self.flush_interval_ms == 0 || self.flush_consume_queue_interval_ms == 0 {
            return fail("flush intervals must be > 0 ms".into());
        }
        if self.dispatch_linger_us > 10_000 {
            return fail(format!(
                "dispatch_linger_us = {} must be at most 10000",
                self.dispatch_linger_us
            ));
        }
        if self.sync_flush_timeout_ms == 0 {
            return fail("sync_flush_timeout_ms must be > 0".into());
        }
        if self.sync_gather_max_us > MAX_SYNC_GATHER_US
            || self.sync_gather_max_us >= self.sync_flush_timeout_ms.saturating_mul(1000)
        {
            return fail(format!(
                "sync_gather_max_us = {} must be at most {MAX_SYNC_GATHER_US} and below sync_flush_timeout_ms",
                self.sync_gather_max_us
            ));
        }
        if !(0.0..=MAX_SYNC_GATHER_FSYNC_RATIO).contains(&self.sync_gather_fsync_ratio) {
            return fail(format!(
                "sync_gather_fsync_ratio = {} must be between 0 and {MAX_SYNC_GATHER_FSYNC_RATIO}",
                self.sync_gather_fsync_ratio
            ));
        }
        let r = &self.retention;
        for (name, v) in [
            ("disk_high_ratio", r.disk_high_ratio),
            ("disk_force_clean_ratio", r.disk_force_clean_ratio),
            ("disk_hard_ratio", r.disk_hard_ratio),
        ] {
            if !(0.1..=1.0).contains(&v) {
                return fail(format!(
                    "retention.{name} = {v} must be between 0.1 and 1.0"
                ));
            }
        }
        if !(r.disk_high_ratio <= r.disk_force_clean_ratio
            && r.disk_force_clean_ratio <= r.disk_hard_ratio)
        {
            return fail("retention ratios must satisfy disk_high_ratio <= disk_force_clean_ratio <= disk_hard_ratio".into());
        }
        self.delete_hours()?;
        if r.check_interval_ms == 0 || r.max_deletes_per_round == 0 {
            return fail(
                "retention.check_interval_ms and retention.max_deletes_per_round must be > 0"
                    .into(),
            );
        }
        Ok(())
    }

    /// The hours of `retention.delete_when`, each 0..=23.
    pub fn delete_hours(&self) -> Result<Vec<u8>> {
        self.retention
            .delete_when
            .split(';')
            .filter(|s| !s.trim().is_empty())
            .map(|s| match s.trim().parse::<u8>() {
                Ok(h) if h < 24 => Ok(h),
                _ => Err(StoreError::Config(format!(
                    "retention.delete_when = {:?}: expected hours 00..23 separated by ';'",
                    self.retention.delete_when
                ))),
            })
            .collect()
    }

    pub(crate) fn sync_flush_timeout(&self) -> Duration {
        Duration::from_millis(self.sync_flush_timeout_ms)
    }

    pub(crate) fn commitlog_dir(&self) -> PathBuf {
        self.data_dir.join("commitlog")
    }
    pub(crate) fn consume_queue_dir(&self) -> PathBuf {
        self.data_dir.join("consumequeue")
    }
    pub(crate) fn index_dir(&self) -> PathBuf {
        self.data_dir.join("index")
    }
    pub(crate) fn checkpoint_path(&self) -> PathBuf {
        self.data_dir.join("checkpoint")
    }
    pub(crate) fn abort_path(&self) -> PathBuf {
        self.data_dir.join("abort")
    }
    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.data_dir.join("quarantine")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_rocketmq() {
        let c = StoreConfig::default();
        c.validate().expect("defaults validate");
        assert_eq!(c.commitlog_segment_bytes, 1 << 30);
        assert_eq!(c.consume_queue_units_per_file, 300_000);
        assert_eq!(c.delete_hours().expect("hours"), vec![4]);
    }

    #[test]
    fn bad_values_are_rejected_with_the_option_named() {
        let check = |f: fn(&mut StoreConfig), needle: &str| {
            let mut c = StoreConfig::default();
            f(&mut c);
            let err = c.validate().expect_err("must be rejected").to_string();
            assert!(err.contains(needle), "{err} should mention {needle}");
        };
        check(
            |c| c.commitlog_segment_bytes = 10,
            "commitlog_segment_bytes",
        );
        check(|c| c.max_message_bytes = 1 << 31, "max_message_bytes");
        check(|c| c.retention.delete_when = "25".into(), "delete_when");
        check(|c| c.retention.disk_hard_ratio = 0.5, "ratios");
        check(|c| c.flush_interval_ms = 0, "flush intervals");
        check(|c| c.sync_gather_max_us = 100_001, "sync_gather_max_us");
        check(
            |c| {
                c.sync_flush_timeout_ms = 1;
                c.sync_gather_max_us = 1000;
            },
            "sync_gather_max_us",
        );
        check(
            |c| c.sync_gather_fsync_ratio = -0.1,
            "sync_gather_fsync_ratio",
        );
        check(
            |c| c.sync_gather_fsync_ratio = f64::NAN,
            "sync_gather_fsync_ratio",
        );
    }
}
