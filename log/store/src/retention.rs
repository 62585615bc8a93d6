//! Retention and disk-space protection.
//!
//! Each round measures disk use. Past `disk_hard_ratio` appends are refused with
//! [`crate::StoreError::DiskFull`] until space is freed. At a `delete_when` hour, or whenever
//! use passes `disk_high_ratio`, commit log segments older than `file_reserved_hours` are
//! deleted oldest first; past `disk_force_clean_ratio` the oldest are deleted even if young.
//! The active segment and data not yet dispatched are never deleted, and a segment a reader
//! holds is deleted only after `forcible_delete_interval_ms` (its mapping stays valid for that
//! reader even then). Consume queue and index files that point only at deleted data follow.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::store::Inner;

/// Measures how full the disk holding the data directory is.
pub trait DiskUsage: Send + Sync {
    /// Used fraction 0.0..=1.0 of the filesystem holding `path`.
    fn used_ratio(&self, path: &Path) -> std::io::Result<f64>;
}

/// [`DiskUsage`] by `statvfs`, counted as `df` does: used / (used + available to users).
#[derive(Debug, Clone, Copy, Default)]
pub struct StatvfsDiskUsage;

impl DiskUsage for StatvfsDiskUsage {
    fn used_ratio(&self, path: &Path) -> std::io::Result<f64> {
        let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
        let used = s.f_blocks.saturating_sub(s.f_bfree) as f64;
        let avail = s.f_bavail as f64;
        Ok(if used + avail == 0.0 {
            0.0
        } else {
            used / (used + avail)
        })
    }
}

/// The local hour of the day.
pub fn local_hour() -> u8 {
    use chrono::Timelike;
    chrono::Local::now().hour() as u8
}

#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// A segment found in use by a reader: its base and when that was first seen.
    in_use_since: Option<(u64, i64)>,
}

/// What one retention round did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionReport {
    pub disk_used_ratio: f64,
    pub writes_refused: bool,
    pub segments_deleted: usize,
    pub consume_queue_files_deleted: usize,
    pub index_files_deleted: usize,
    /// A deletion was put off because a reader holds the segment.
    pub deferred_in_use: bool,
}

impl Inner {
    pub(crate) fn retention_round(&self, now_ms: i64, hour: u8) -> Result<RetentionReport> {
        let r = &self.config.retention;
        let dir = &self.config.data_dir;
        let mut report = RetentionReport::default();
        let measure = |report: &mut RetentionReport| {
            let ratio = match self.disk.used_ratio(dir) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot measure disk use");
                    0.0
                }
            };
            report.disk_used_ratio = ratio;
            self.stats
                .disk_used_bp
                .store((ratio * 10_000.0) as u64, Ordering::Relaxed);
            ratio
        };
        let ratio = measure(&mut report);
        let full = ratio >= r.disk_hard_ratio;
        if full != self.disk_full.swap(full, Ordering::AcqRel) {
            if full {
                tracing::error!(
                    used = ratio,
                    limit = r.disk_hard_ratio,
                    "disk nearly full: refusing writes"
                );
            } else {
                tracing::info!(
                    used = ratio,
                    "disk use below the hard limit again: accepting writes"
                );
            }
        }
        let at_hour = self.config.delete_hours()?.contains(&hour);
        let mut force = ratio >= r.disk_force_clean_ratio;
        if !(at_hour || ratio >= r.disk_high_ratio) {
            report.writes_refused = full;
            return Ok(report);
        }
        let reserve_ms = r.file_reserved_hours as i64 * 3_600_000;
        let dispatched = self.dispatched.load(Ordering::Acquire);
        let segments = self.commitlog.segments();
        let files = segments.files();
        let mut cleaner = self.cleaner.lock();
        for f in files.iter().take(files.len().saturating_sub(1)) {
            if report.segments_deleted >= r.max_deletes_per_round {
                break;
            }
            let expired = f.modified_ms().is_some_and(|m| now_ms - m >= reserve_ms);
            if !(expired || force) || f.base() + f.size() as u64 > dispatched {
                break;
            }
            // `files` and the queue each hold one reference; more means a reader has it.
            if Arc::strong_count(f) > 2 {
                let since = match cleaner.in_use_since {
                    Some((base, since)) if base == f.base() => since,
                    _ => {
                        cleaner.in_use_since = Some((f.base(), now_ms));
                        now_ms
                    }
                };
                if now_ms - since < r.forcible_delete_interval_ms as i64 {
                    report.deferred_in_use = true;
                    break;
                }
                tracing::warn!(segment = %f.path().display(), "deleting a segment a reader still holds after the forcible interval");
            }
            let Some(f) = segments.pop_first(f.base()) else {
                break;
            };
            f.delete()?;
            cleaner.in_use_since = None;
            report.segments_deleted += 1;
            self.stats.segments_deleted.fetch_add(1, Ordering::Relaxed);
            tracing::info!(segment = %f.path().display(), expired, "deleted commit log segment");
            if force && measure(&mut report) < r.disk_force_clean_ratio {
                force = false;
            }
        }
        drop(cleaner);
        if report.segments_deleted > 0 {
            let min = self.commitlog.min_offset();
            let queues = self.all_queues();
            for q in queues {
                report.consume_queue_files_deleted += q.delete_expired(min)?;
            }
            report.index_files_deleted = self.index.delete_expired(min)?;
            let ratio = measure(&mut report);
            let full = ratio >= r.disk_hard_ratio;
            self.disk_full.store(full, Ordering::Release);
        }
        report.writes_refused = self.disk_full.load(Ordering::Acquire);
        Ok(report)
    }
}
