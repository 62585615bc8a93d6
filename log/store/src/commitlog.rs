//! The CommitLog: every message of every topic, appended to one sequence of segments.
//!
//! Appends are serialised by one lock that covers only what must be ordered: assigning the
//! queue offset, physical offset and store timestamp, patching them into the already-encoded
//! record, and the copy into the mapping. Encoding and the body CRC happen before the lock.
//! The next segment is preallocated on the allocator thread so a roll rarely creates a file
//! under the lock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};

use crate::config::{FlushMode, StoreConfig};
use crate::durable::{Completion, Durable};
use crate::error::{Result, StoreError};
use crate::record::{self, BLANK_MAGIC, END_FILE_MIN_BLANK, EncodedRecord, sys_flag};
use crate::segment::{MappedFile, SegmentQueue};
use crate::stats::StoreStats;

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Physical offset of the record in the commit log.
    pub physical_offset: u64,
    /// Record size in bytes.
    pub size: u32,
    /// Logical offset in its consume queue (0 for transaction half and rollback records).
    pub queue_offset: i64,
    /// Store timestamp, ms since the epoch.
    pub store_timestamp: i64,
}

/// Next queue offsets per topic and queue: the only per-queue state on the append path.
pub(crate) type QueueOffsets = HashMap<Box<str>, HashMap<i32, i64>>;

struct AppendState {
    /// Set by [`CommitLog::fence`]; no append publishes bytes after it.
    closed: bool,
    current: Option<Arc<MappedFile>>,
    queue_offsets: QueueOffsets,
    last_store_timestamp: i64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Prepares the next segment off the append path.
struct Allocator {
    state: Mutex<AllocState>,
    cv: Condvar,
}

#[derive(Default)]
struct AllocState {
    /// Base offset requested and not yet taken.
    wanted: Option<u64>,
    ready: Option<Result<MappedFile>>,
    stop: bool,
}

pub(crate) struct CommitLog {
    config: Arc<StoreConfig>,
    segments: SegmentQueue,
    append: Mutex<AppendState>,
    /// One past the last published byte.
    max_offset: AtomicU64,
    /// Everything below is durable.
    flushed: AtomicU64,
    allocator: Allocator,
    flush: FlushQueue,
    /// Set when a flush failed: the store then refuses writes.
    failed: AtomicBool,
    stats: Arc<StoreStats>,
    /// Woken after every append, for the dispatcher.
    appended: (Mutex<u64>, Condvar),
}

/// Waiters of the SYNC flusher.
struct FlushQueue {
    waiters: Mutex<Vec<(u64, Arc<Completion>)>>,
    cv: Condvar,
    stop: AtomicBool,
}

impl CommitLog {
    pub(crate) fn load(config: Arc<StoreConfig>, stats: Arc<StoreStats>) -> Result<Self> {
        let segments = SegmentQueue::load(&config.commitlog_dir(), config.commitlog_segment_bytes)?;
        Ok(CommitLog {
            config,
            segments,
            append: Mutex::new(AppendState {
                closed: false,
                current: None,
                queue_offsets: HashMap::new(),
                last_store_timestamp: 0,
            }),
            max_offset: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            allocator: Allocator {
                state: Mutex::new(AllocState::default()),
                cv: Condvar::new(),
            },
            flush: FlushQueue {
                waiters: Mutex::new(Vec::new()),
                cv: Condvar::new(),
                stop: AtomicBool::new(false),
            },
            failed: AtomicBool::new(false),
            stats,
            appended: (Mutex::new(0), Condvar::new()),
        })
    }

    pub(crate) fn segments(&self) -> &SegmentQueue {
        &self.segments
    }

    /// Sets the recovered end, the flushed offset and the queue offset table.
    pub(crate) fn set_recovered(&self, end: u64, queue_offsets: QueueOffsets) {
        let current = self.segments.last().filter(|f| !f.is_full());
        for f in self.segments.files() {
            f.set_flushed(f.wrote());
            if !f.is_full() && self.config.flush_mode == FlushMode::Sync {
                f.advise_small_syncs();
            }
        }
        let mut st = self.append.lock();
        st.current = current;
        st.queue_offsets = queue_offsets;
        st.last_store_timestamp = now_ms();
        drop(st);
        self.max_offset.store(end, Ordering::Release);
        self.flushed.store(end, Ordering::Release);
        *self.appended.0.lock() = end;
    }

    /// One past the last published byte.
    pub(crate) fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }
    pub(crate) fn min_offset(&self) -> u64 {
        self.segments.min_offset()
    }
    pub(crate) fn flushed_offset(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Appends encoded records as one ordered run. Returns where each landed and a handle that
    /// completes when all of them are durable.
    pub(crate) fn append(
        &self,
        records: &mut [(EncodedRecord, &str, i32)],
    ) -> Result<(Vec<AppendResult>, Durable)> {
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::FlushFailed {
                reason: "an earlier flush failed; the store is read-only".into(),
            });
        }
        let mut results = Vec::with_capacity(records.len());
        let mut st = self.append.lock();
        if st.closed {
            return Err(StoreError::ShutDown);
        }
        let now = now_ms().max(st.last_store_timestamp);
        st.last_store_timestamp = now;
        let mut end = 0;
        for (rec, topic, queue_id) in records.iter_mut() {
            let len = rec.bytes.len();
            let file = self.writable(&mut st, len)?;
            let pos = file.wrote();
            let phy = file.base() + pos as u64;
            let txn = sys_flag::transaction_type(rec.sys_flag);
            let counts = txn != sys_flag::TRANSACTION_PREPARED_TYPE
                && txn != sys_flag::TRANSACTION_ROLLBACK_TYPE;
            let queue_offset = if counts {
                let offsets = &mut st.queue_offsets;
                if !offsets.contains_key(*topic) {
                    offsets.insert((*topic).into(), HashMap::new());
                }
                let next = offsets
                    .get_mut(*topic)
                    .expect("inserted above")
                    .entry(*queue_id)
                    .or_insert(0);
                *next += 1;
                *next - 1
            } else {
                0
            };
            record::patch_assigned(&mut rec.bytes, queue_offset, phy as i64, now);
            file.append(&rec.bytes);
            end = phy + len as u64;
            results.push(AppendResult {
                physical_offset: phy,
                size: len as u32,
                queue_offset,
                store_timestamp: now,
            });
        }
        self.max_offset.store(end, Ordering::Release);
        drop(st);
        self.stats.record_append(
            records.len() as u64,
            records.iter().map(|r| r.0.bytes.len() as u64).sum(),
        );
        self.notify_appended(end);
        let durable = match self.config.flush_mode {
            FlushMode::Async => Durable::done(end),
            FlushMode::Sync => {
                let c = Arc::new(Completion::default());
                if self.flushed_offset() >= end {
                    c.complete(Ok(()));
                } else {
                    self.flush.waiters.lock().push((end, c.clone()));
                    self.flush.cv.notify_one();
                }
                Durable::pending(end, c, self.config.sync_flush_timeout())
            }
        };
        Ok((results, durable))
    }

    /// The segment to write `len` bytes into, rolling to the next one when they do not fit.
    fn writable(&self, st: &mut AppendState, len: usize) -> Result<Arc<MappedFile>> {
        if let Some(cur) = &st.current {
            if cur.remaining() >= len + END_FILE_MIN_BLANK {
                return Ok(cur.clone());
            }
            // Fill the rest with the blank record: [remaining:i32][BLANK_MAGIC].
            let remaining = cur.remaining();
            let mut blank = [0u8; END_FILE_MIN_BLANK];
            blank[..4].copy_from_slice(&(remaining as i32).to_be_bytes());
            blank[4..].copy_from_slice(&BLANK_MAGIC.to_be_bytes());
            cur.write_at(cur.wrote(), &blank);
            cur.set_wrote(cur.size());
            cur.advise_sequential_reads();
        }
        let base = match &st.current {
            Some(cur) => cur.base() + cur.size() as u64,
            None => self
                .segments
                .last()
                .map_or(0, |l| l.base() + l.size() as u64),
        };
        let file = Arc::new(self.take_segment(base)?);
        if self.config.flush_mode == FlushMode::Sync {
            file.advise_small_syncs();
        }
        self.segments.push(file.clone());
        self.stats.segment_rolls.fetch_add(1, Ordering::Relaxed);
        self.request_segment(base + self.config.commitlog_segment_bytes);
        st.current = Some(file.clone());
        Ok(file)
    }

    fn request_segment(&self, base: u64) {
        let mut a = self.allocator.state.lock();
        if a.wanted != Some(base) {
            a.wanted = Some(base);
            a.ready = None;
            self.allocator.cv.notify_all();
        }
    }

    fn take_segment(&self, base: u64) -> Result<MappedFile> {
        let mut a = self.allocator.state.lock();
        if a.wanted == Some(base) {
            while a.ready.is_none() && !a.stop {
                self.allocator.cv.wait(&mut a);
            }
            if let Some(ready) = a.ready.take() {
                a.wanted = None;
                return ready;
            }
        }
        drop(a);
        MappedFile::create(
            &self.segments.path_for(base),
            base,
            self.config.commitlog_segment_bytes as usize,
        )
    }

    /// Allocator thread body: creates (and optionally warms) the requested next segment.
    pub(crate) fn run_allocator(&self) {
        let mut a = self.allocator.state.lock();
        loop {
            if a.stop {
                return;
            }
            match (a.wanted, a.ready.is_some()) {
                (Some(base), false) => {
                    drop(a);
                    let path = self.segments.path_for(base);
                    let made = MappedFile::create(
                        &path,
                        base,
                        self.config.commitlog_segment_bytes as usize,
                    );
                    if let Ok(f) = &made
                        && self.config.warm_segments
                    {
                        f.warm();
                    }
                    if let Err(e) = &made {
                        tracing::warn!(error = %e, base, "preallocating the next segment failed; the roll will retry");
                    }
                    a = self.allocator.state.lock();
                    if a.wanted == Some(base) && !a.stop {
                        a.ready = Some(made);
                    } else if let Ok(f) = made {
                        let _ = f.delete();
                    }
                    self.allocator.cv.notify_all();
                }
                _ => self.allocator.cv.wait(&mut a),
            }
        }
    }

    /// Starts preallocating the segment after the current one.
    pub(crate) fn preallocate_next(&self) {
        let next = self
            .segments
            .last()
            .map_or(0, |l| l.base() + l.size() as u64);
        self.request_segment(next);
    }

    /// Syncs everything appended so far. Returns the new durable offset.
    pub(crate) fn flush(&self) -> Result<u64> {
        let target = self.max_offset();
        let started = std::time::Instant::now();
        let mut from = self.flushed_offset();
        while from < target {
            let Some(file) = self.segments.find(from) else {
                break;
            };
            file.flush().map_err(|e| StoreError::FlushFailed {
                reason: format!("{}: {e}", file.path().display()),
            })?;
            let next = file.base() + file.size() as u64;
            from = if file.is_full() { next } else { target };
        }
        self.flushed.fetch_max(target, Ordering::AcqRel);
        self.stats.record_flush(started.elapsed());
        Ok(target)
    }

    fn flush_or_fail(&self) -> Result<u64, String> {
        self.flush().map_err(|e| {
            if !self.failed.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "commit log flush failed; refusing further writes");
            }
            e.to_string()
        })
    }

    /// Flusher thread body. SYNC: group commit, one fsync for every waiter present when it
    /// starts. ASYNC: a sync every `flush_interval_ms`.
    pub(crate) fn run_flusher(&self) {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        loop {
            let stop = self.flush.stop.load(Ordering::Acquire);
            let batch = {
                let mut w = self.flush.waiters.lock();
                if w.is_empty() && !stop {
                    let wait = match self.config.flush_mode {
                        FlushMode::Sync => Duration::from_millis(10).min(interval),
                        FlushMode::Async => interval,
                    };
                    self.flush.cv.wait_for(&mut w, wait);
                }
                std::mem::take(&mut *w)
            };
            let result = if batch.is_empty() && self.flushed_offset() >= self.max_offset() {
                Ok(self.flushed_offset())
            } else {
                self.flush_or_fail()
            };
            if !batch.is_empty() {
                self.stats.group_commits.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .group_commit_waiters
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            for (end, c) in batch {
                c.complete(match &result {
                    Ok(flushed) if *flushed >= end => Ok(()),
                    Ok(flushed) => Err(format!("flushed to {flushed}, short of {end}")),
                    Err(e) => Err(e.clone()),
                });
            }
            if stop && self.flush.waiters.lock().is_empty() {
                return;
            }
        }
    }

    /// Refuses further appends; returns once no append is in flight.
    pub(crate) fn fence(&self) {
        self.append.lock().closed = true;
    }

    pub(crate) fn stop_threads(&self) {
        self.flush.stop.store(true, Ordering::Release);
        self.flush.cv.notify_all();
        let mut a = self.allocator.state.lock();
        a.stop = true;
        if let Some(Ok(f)) = a.ready.take() {
            // An unused preallocated segment past the end would confuse the next recovery.
            let _ = f.delete();
        }
        self.allocator.cv.notify_all();
    }

    fn notify_appended(&self, end: u64) {
        let (m, cv) = &self.appended;
        *m.lock() = end;
        cv.notify_all();
    }

    /// Blocks until data past `offset` is appended or `timeout` passes. For the dispatcher.
    pub(crate) fn wait_for_data(&self, offset: u64, timeout: Duration) {
        let (m, cv) = &self.appended;
        let mut g = m.lock();
        if *g <= offset {
            cv.wait_for(&mut g, timeout);
        }
    }

    pub(crate) fn wake_waiters(&self) {
        self.appended.1.notify_all();
    }

    /// The published bytes of the record at `offset` with `size`, held by their segment.
    pub(crate) fn slice(&self, offset: u64, size: usize) -> Option<(Arc<MappedFile>, usize)> {
        let file = self.segments.find(offset)?;
        let pos = (offset - file.base()) as usize;
        file.slice(pos, size)?;
        Some((file, pos))
    }
}

/// Spawns a named store thread.
pub(crate) fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .map_err(|e| StoreError::Io {
            op: "spawn thread",
            path: name.into(),
            source: e,
        })
}
