//! Recovery at open.
//!
//! * The safe point is `min(logics_offset, physic_flushed_offset)` from the checkpoint: consume
//!   queues and index are durable below it and it is a record boundary. Without a checkpoint it
//!   is the start of the log.
//! * From the safe point the commit log is scanned record by record to find its end. After a
//!   crash (the `abort` marker exists, or no checkpoint) every record's body CRC is checked and
//!   its stored physical offset must equal its position.
//! * A bad record past the last durable offset, with no valid record anywhere after it and no
//!   more non-zero bytes than one record, is a torn tail: it is truncated (it was never
//!   acknowledged in SYNC mode: its fsync never returned).
//! * A bad record with valid data after it, or below the durable offset, is corruption in the
//!   middle: by default the store refuses to open and names the offset; with
//!   `on_corruption = "quarantine"` the bytes from the bad record on are moved to
//!   `quarantine/` and the log continues from there. Nothing is skipped silently.
//! * Consume queue units and index entries at or past the safe point are dropped and rebuilt by
//!   dispatching the records again.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::Checkpoint;
use crate::config::{CorruptionPolicy, StoreConfig};
use crate::consume_queue::ConsumeQueue;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::record::{self, MAGIC_V1, MAGIC_V2, Peek};
use crate::segment::{MappedFile, SegmentQueue};
use crate::store::Inner;

/// Damage found in the middle of the log and moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Commit log offset of the first bad byte.
    pub offset: u64,
    pub reason: String,
    /// Where the bytes from `offset` on were moved.
    pub quarantined_to: PathBuf,
    pub quarantined_bytes: u64,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous run did not shut down cleanly (abort marker, or no usable checkpoint).
    pub abnormal: bool,
    pub checkpoint: Option<Checkpoint>,
    /// Where the scan started.
    pub checked_from: u64,
    /// Records scanned (CRC-checked when `abnormal`).
    pub records_checked: u64,
    /// The end of the log after recovery.
    pub end_offset: u64,
    /// Bytes of a torn tail that were removed.
    pub truncated_bytes: u64,
    /// Offset of the torn record, when there was one.
    pub torn_at: Option<u64>,
    pub damage: Option<Damage>,
    /// Records dispatched again into consume queues and index.
    pub redispatched_records: u64,
}

/// Loads every consume queue under `consumequeue/<topic>/<queue_id>/`.
pub(crate) fn load_queues(
    config: &StoreConfig,
) -> Result<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>> {
    let root = config.consume_queue_dir();
    fsutil::create_dir_durably(&root)?;
    let mut out: HashMap<String, HashMap<i32, Arc<ConsumeQueue>>> = HashMap::new();
    for topic in fs::read_dir(&root).map_err(StoreError::io("list directory", &root))? {
        let topic = topic.map_err(StoreError::io("list directory", &root))?;
        if !topic.path().is_dir() {
            continue;
        }
        let name = topic.file_name().to_string_lossy().into_owned();
        for q in
            fs::read_dir(topic.path()).map_err(StoreError::io("list directory", topic.path()))?
        {
            let q = q.map_err(StoreError::io("list directory", topic.path()))?;
            let Ok(queue_id) = q.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cq = ConsumeQueue::load(
                &q.path(),
                &name,
                queue_id,
                config.consume_queue_units_per_file,
            )?;
            out.entry(name.clone())
                .or_default()
                .insert(queue_id, Arc::new(cq));
        }
    }
    Ok(out)
}

enum Stop {
    /// Zero bytes: nothing written from here.
    Empty,
    /// A record that fails a check.
    Bad(String),
}

struct Scan {
    end: u64,
    records: u64,
    stop: Stop,
}

/// Walks records from `from` until the first empty or bad slot.
fn scan(segments: &SegmentQueue, from: u64, check_crc: bool) -> Scan {
    let mut off = from;
    let mut records = 0;
    loop {
        let Some(file) = segments.find(off) else {
            return Scan {
                end: off,
                records,
                stop: Stop::Empty,
            };
        };
        let pos = (off - file.base()) as usize;
        let size = file.size();
        if pos >= size {
            off = file.base() + size as u64;
            continue;
        }
        let bad = |why: String| Scan {
            end: off,
            records,
            stop: Stop::Bad(why),
        };
        match record::peek(file.raw(pos, 8), size - pos) {
            Ok(Peek::Empty) => {
                return Scan {
                    end: off,
                    records,
                    stop: Stop::Empty,
                };
            }
            Ok(Peek::Blank) => {
                let declared = i32::from_be_bytes(file.raw(pos, 4).try_into().unwrap_or([0; 4]));
                if declared as usize != size - pos {
                    return bad(format!(
                        "end-of-segment blank declares {declared} bytes, {} remain",
                        size - pos
                    ));
                }
                off = file.base() + size as u64;
            }
            Ok(Peek::Message { size: n }) => match record::view(file.raw(pos, n), check_crc) {
                Ok(info) if info.physical_offset as u64 == off => {
                    off += n as u64;
                    records += 1;
                }
                Ok(info) => {
                    return bad(format!(
                        "record claims physical offset {}",
                        info.physical_offset
                    ));
                }
                Err(e) => return bad(e.to_string()),
            },
            Err(e) => return bad(e.to_string()),
        }
    }
}

/// Whether a valid record exists anywhere after `at`: in the rest of its file (any byte
/// position whose bytes decode, CRC included, to a record that names that very position) or at
/// the start of a later file.
fn valid_data_after(segments: &SegmentQueue, at: u64) -> Option<u64> {
    let is_valid_at = |file: &MappedFile, pos: usize| {
        let base = file.base();
        match record::peek(file.raw(pos, 8), file.size() - pos) {
            Ok(Peek::Message { size }) => record::view(file.raw(pos, size), true)
                .is_ok_and(|i| i.physical_offset as u64 == base + pos as u64),
            _ => false,
        }
    };
    for file in segments.files() {
        let end = file.base() + file.size() as u64;
        if end <= at {
            continue;
        }
        let start = if file.base() > at {
            0
        } else {
            (at - file.base()) as usize + 1
        };
        if file.base() > at {
            if is_valid_at(&file, 0) {
                return Some(file.base());
            }
            continue;
        }
        let data = file.raw(0, file.size());
        let mut pos = start;
        while pos + 8 <= data.len() {
            let Some(i) = data[pos + 4..].iter().position(|&b| b == 0xDA) else {
                break;
            };
            let cand = pos + i; // the magic starts at cand + 4
            let magic = data
                .get(cand + 4..cand + 8)
                .map(|m| i32::from_be_bytes([m[0], m[1], m[2], m[3]]));
            if matches!(magic, Some(MAGIC_V1 | MAGIC_V2)) && is_valid_at(&file, cand) {
                return Some(file.base() + cand as u64);
            }
            pos = cand + 1;
        }
    }
    None
}

/// Offset one past the last non-zero byte of the file holding `at` (at least `at`).
fn data_extent(file: &MappedFile, at: usize) -> usize {
    let data = file.raw(0, file.size());
    data[at..]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(at, |p| at + p + 1)
}

/// Non-zero bytes from `at` to the end of its file: what a torn write could have left.
fn torn_extent(segments: &SegmentQueue, at: u64) -> u64 {
    segments.find(at).map_or(0, |f| {
        let pos = (at - f.base()) as usize;
        (data_extent(&f, pos) - pos) as u64
    })
}

/// Moves the bytes from `at` on aside: the rest of its file into `quarantine/<offset>.bin`,
/// later files renamed into the same directory.
fn quarantine(config: &StoreConfig, segments: &SegmentQueue, at: u64) -> Result<(PathBuf, u64)> {
    let dir = config.quarantine_dir();
    fsutil::create_dir_durably(&dir)?;
    let mut moved = 0u64;
    let target = dir.join(format!("{}.bin", fsutil::offset_file_name(at)));
    for file in segments.files() {
        let end = file.base() + file.size() as u64;
        if end <= at {
            continue;
        }
        if file.base() <= at {
            let pos = (at - file.base()) as usize;
            let extent = data_extent(&file, pos);
            let mut out = fs::File::create(&target)
                .map_err(StoreError::io("create quarantine file", &target))?;
            out.write_all(file.raw(pos, extent - pos))
                .map_err(StoreError::io("write quarantine file", &target))?;
            out.sync_all()
                .map_err(StoreError::io("fsync quarantine file", &target))?;
            moved += (extent - pos) as u64;
        } else {
            let to = dir.join(fsutil::offset_file_name(file.base()));
            fs::rename(file.path(), &to)
                .map_err(StoreError::io("move segment to quarantine", file.path()))?;
            moved += file.size() as u64;
        }
    }
    fsutil::fsync_dir(&dir)?;
    fsutil::fsync_dir(segments.dir())?;
    Ok((target, moved))
}

fn segment_path(segments: &SegmentQueue, at: u64) -> PathBuf {
    segments
        .find(at)
        .map_or_else(|| segments.dir().to_path_buf(), |f| f.path().to_path_buf())
}

pub(crate) fn recover(inner: &Inner) -> Result<RecoveryReport> {
    let config = &inner.config;
    let segments = inner.commitlog.segments();
    let checkpoint = Checkpoint::read(&config.checkpoint_path())?;
    let abort = config.abort_path().exists();
    let fresh = segments.is_empty() && checkpoint.is_none() && !abort;
    let abnormal = !fresh && (abort || checkpoint.is_none());
    let first = segments.min_offset();
    let start = checkpoint.map_or(first, |cp| {
        cp.logics_offset.min(cp.physic_flushed_offset).max(first)
    });
    let mut report = RecoveryReport {
        abnormal,
        checkpoint,
        checked_from: start,
        ..Default::default()
    };
    if abnormal {
        tracing::warn!(
            abort_marker = abort,
            checkpoint = checkpoint.is_some(),
            from = start,
            "previous run did not shut down cleanly; checking the commit log"
        );
    }

    let scanned = scan(segments, start, abnormal);
    report.records_checked = scanned.records;
    let mut end = scanned.end;
    let durable = checkpoint.map_or(0, |cp| cp.physic_flushed_offset);
    let stop_reason = match scanned.stop {
        Stop::Empty => None,
        Stop::Bad(why) => Some(why),
    };
    let after = if stop_reason.is_some() || abnormal {
        valid_data_after(segments, end)
    } else {
        None
    };
    match (stop_reason, after) {
        (None, None) => {}
        (Some(why), None)
            if end >= durable && torn_extent(segments, end) <= config.max_message_bytes as u64 =>
        {
            report.truncated_bytes = torn_extent(segments, end);
            report.torn_at = Some(end);
            tracing::warn!(offset = end, bytes = report.truncated_bytes, reason = %why, "truncating torn tail of the commit log");
        }
        (why, valid_after) => {
            let why = why.unwrap_or_else(|| "zero bytes where a record was expected".to_string());
            let what = match valid_after {
                Some(v) => format!("{why}; valid records follow at offset {v}"),
                None if end < durable => format!("{why}; below the durable offset {durable}"),
                None => format!(
                    "{why}; {} bytes of damaged data follow, more than one record could leave torn",
                    torn_extent(segments, end)
                ),
            };
            match config.on_corruption {
                CorruptionPolicy::Fail => {
                    return Err(StoreError::Corrupt {
                        path: segment_path(segments, end),
                        offset: end,
                        reason: format!(
                            "{what}. Nothing was changed; to open anyway, set on_corruption = \"quarantine\" to move the data from this offset on to {}",
                            config.quarantine_dir().display()
                        ),
                    });
                }
                CorruptionPolicy::Quarantine => {
                    let (to, bytes) = quarantine(config, segments, end)?;
                    tracing::error!(offset = end, bytes, to = %to.display(), reason = %what, "corrupt commit log data moved to quarantine");
                    report.damage = Some(Damage {
                        offset: end,
                        reason: what,
                        quarantined_to: to,
                        quarantined_bytes: bytes,
                    });
                }
            }
        }
    }
    if end < first {
        end = first;
    }
    for f in segments.files() {
        if f.base() + f.size() as u64 <= end {
            f.set_wrote(f.size());
        }
    }
    segments.truncate(end)?;
    report.end_offset = end;

    let cut = start.min(end);
    let queues = inner.all_queues();
    for q in &queues {
        q.recover(cut)?;
    }
    inner.index.truncate(cut)?;
    let mut touched = Vec::new();
    let before = inner.stats.messages_dispatched.load(Ordering::Relaxed);
    let mut reached = cut;
    inner.dispatch_range(&mut reached, end, &mut touched)?;
    if reached != end {
        return Err(StoreError::Corrupt {
            path: segment_path(segments, reached),
            offset: reached,
            reason: format!("replay stopped at {reached}, short of the recovered end {end}"),
        });
    }
    report.redispatched_records = inner.stats.messages_dispatched.load(Ordering::Relaxed) - before;
    inner.dispatched.store(end, Ordering::Release);
    let mut table: crate::commitlog::QueueOffsets = HashMap::new();
    for (topic, qs) in inner.queues.read().iter() {
        let t = table.entry(topic.as_str().into()).or_default();
        for (&id, q) in qs {
            t.insert(id, q.max_logical());
        }
    }
    inner.commitlog.set_recovered(end, table);
    Ok(report)
}

/// True when `path` looks like a store data directory.
pub fn is_store_dir(path: &Path) -> bool {
    path.join("commitlog").is_dir()
}
