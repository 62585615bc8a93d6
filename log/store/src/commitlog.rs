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
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Condvar, Mutex};
use tributary_common::sysflag;

use crate::config::{FlushMode, StoreConfig};
use crate::durable::{Durable, DurableOffset, Woken};
use crate::error::{Result, StoreError};
use crate::gather::{Gather, Next};
use crate::record::{self, BLANK_MAGIC, END_FILE_MIN_BLANK, EncodedRecord};
use crate::segment::{MappedFile, Prefault, SegmentQueue};
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

/// SYNC records of one append call bound for one segment, written with one `pwritev`.
struct Run<'r> {
    file: Arc<MappedFile>,
    parts: Vec<&'r [u8]>,
    len: usize,
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
    /// An append is waiting for the requested segment: stop warming it.
    hurry: AtomicBool,
    /// A prefault of the active segment is requested or running (see `keep_prefaulted`).
    prefaulting: AtomicBool,
}

#[derive(Default)]
struct AllocState {
    /// Base offset requested and not yet taken.
    wanted: Option<u64>,
    ready: Option<Result<MappedFile>>,
    /// The appends came within half a window of the prefaulted part of the active segment.
    prefault: bool,
    stop: bool,
}

/// With `warm_segments` (ASYNC), pages are faulted in this far ahead of the appends; the
/// allocator extends the window when the appends are half way through it. Bounds the memory
/// warmed ahead (dirty zero pages) whatever the segment size.
const PREFAULT_WINDOW: usize = 64 << 20;

pub(crate) struct CommitLog {
    config: Arc<StoreConfig>,
    segments: SegmentQueue,
    append: Mutex<AppendState>,
    /// One past the last published byte.
    max_offset: AtomicU64,
    /// Append calls published so far, counted just before `max_offset` is stored: a flusher
    /// that sees an append's bytes counts it. The SYNC flusher counts the appends that arrive
    /// after an fsync woke its waiters.
    appends: AtomicU64,
    /// SYNC: an append that brings `appends` to this wakes the flusher (when it sleeps). Zero
    /// while it sleeps for want of unflushed bytes (any append wakes it); the count it gathers
    /// for while it waits for the writers of a group commit (see [`Gather`]).
    flusher_wake_at: AtomicU64,
    /// Everything below is durable, and the SYNC appends waiting for that to pass their end.
    /// Once a flush failed it records why, and the store refuses writes.
    durable: Arc<DurableOffset>,
    allocator: Allocator,
    /// Where the flusher sleeps: SYNC, while there is nothing to flush; ASYNC, between flushes.
    flusher: Sleeper,
    stop: AtomicBool,
    stats: Arc<StoreStats>,
    /// Where the dispatcher sleeps when it has caught up.
    dispatcher: Sleeper,
    /// ASYNC: whether the last append call copied into the mapping (rather than writing
    /// through the file): how the allocator gets pages ready ahead (see `prefault_how`).
    mapped_appends: AtomicBool,
}

/// Where a store thread sleeps while there is nothing to do. `idle` is set (under `lock`) while
/// it sleeps; whoever gives it work reads `idle` without the lock and takes the lock to notify
/// only when it is set. Both sides order their store and load with SeqCst (Dekker): the worker
/// sets `idle` and then checks for work, the producer publishes work and then reads `idle`, so
/// at least one of them sees the other.
#[derive(Default)]
struct Sleeper {
    lock: Mutex<()>,
    cv: Condvar,
    idle: AtomicBool,
}

impl Sleeper {
    /// Sleeps up to `timeout` unless `has_work` (checked after `idle` is set) says otherwise.
    fn sleep(&self, timeout: Duration, has_work: impl Fn() -> bool) {
        let mut g = self.lock.lock();
        self.idle.store(true, Ordering::SeqCst);
        if !has_work() {
            self.cv.wait_for(&mut g, timeout);
        }
        self.idle.store(false, Ordering::SeqCst);
    }

    /// Called after publishing work (with a SeqCst store).
    fn wake(&self) {
        if self.idle.load(Ordering::SeqCst) {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Wakes the sleeper whether or not it looks idle (shutdown).
    fn wake_always(&self) {
        let _g = self.lock.lock();
        self.cv.notify_all();
    }
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
            appends: AtomicU64::new(0),
            flusher_wake_at: AtomicU64::new(0),
            durable: Arc::new(DurableOffset::default()),
            allocator: Allocator {
                state: Mutex::new(AllocState::default()),
                cv: Condvar::new(),
                hurry: AtomicBool::new(false),
                prefaulting: AtomicBool::new(false),
            },
            flusher: Sleeper::default(),
            stop: AtomicBool::new(false),
            stats,
            dispatcher: Sleeper::default(),
            mapped_appends: AtomicBool::new(true),
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
        self.durable.set_recovered(end);
    }

    /// One past the last published byte.
    pub(crate) fn max_offset(&self) -> u64 {
        self.max_offset.load(Ordering::Acquire)
    }
    pub(crate) fn min_offset(&self) -> u64 {
        self.segments.min_offset()
    }
    pub(crate) fn flushed_offset(&self) -> u64 {
        self.durable.get()
    }

    fn refuse_if_failed(&self) -> Result<()> {
        match self.durable.failure() {
            Some(reason) => Err(StoreError::FlushFailed {
                reason: format!("an earlier flush failed ({reason}); the store is read-only"),
            }),
            None => Ok(()),
        }
    }

    /// Appends encoded records as one ordered run. Returns where each landed and a handle that
    /// completes when all of them are durable.
    pub(crate) fn append(
        &self,
        records: &mut [(EncodedRecord, &str, i32)],
    ) -> Result<(Vec<AppendResult>, Durable)> {
        self.refuse_if_failed()?;
        let mut results = Vec::with_capacity(records.len());
        let mut st = self.append.lock();
        if st.closed {
            return Err(StoreError::ShutDown);
        }
        // One past the last published byte of this call.
        let mut end = 0;
        let outcome = self.append_locked(&mut st, records, &mut results, &mut end);
        let mut appends = 0;
        if end > 0 {
            // Counted before it is published: a flusher that sees the bytes sees the count.
            appends = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
            // Published even if a later record of the call failed (as a failed roll can).
            // SeqCst: the flusher and dispatcher may sleep unless they see it (see `Sleeper`).
            self.max_offset.store(end, Ordering::SeqCst);
        }
        drop(st);
        if end > 0 {
            self.wake_after_append(appends);
        }
        outcome?;
        self.stats.record_append(
            records.len() as u64,
            records.iter().map(|r| r.0.bytes.len() as u64).sum(),
        );
        let durable = match self.config.flush_mode {
            FlushMode::Sync => {
                Durable::pending(end, self.durable.clone(), self.config.sync_flush_timeout())
            }
            FlushMode::Async => Durable::done(end),
        };
        Ok((results, durable))
    }

    /// `appends`: the append count this call published. SeqCst loads after the SeqCst stores of
    /// the call's publication: a flusher that set its wake-up count and went idle before reading
    /// the count is seen here (see `Sleeper`).
    fn wake_after_append(&self, appends: u64) {
        match self.config.flush_mode {
            FlushMode::Sync => {
                if appends >= self.flusher_wake_at.load(Ordering::SeqCst) {
                    self.flusher.wake();
                }
            }
            FlushMode::Async => self.dispatcher.wake(),
        }
    }

    /// The body of [`Self::append`], under the append lock. `end` follows what is published.
    ///
    /// ASYNC copies each record into the mapping, unless the call has `file_write_min_bytes` or
    /// more. SYNC, and those, write the records with one `pwritev` per segment they land in
    /// (see [`MappedFile::append_via_file`]).
    fn append_locked<'r>(
        &self,
        st: &mut AppendState,
        records: &'r mut [(EncodedRecord, &str, i32)],
        results: &mut Vec<AppendResult>,
        end: &mut u64,
    ) -> Result<()> {
        let through_file = self.config.flush_mode == FlushMode::Sync || {
            let bytes: usize = records.iter().map(|(rec, ..)| rec.bytes.len()).sum();
            let large = bytes >= self.config.file_write_min_bytes;
            self.mapped_appends.store(!large, Ordering::Relaxed);
            large
        };
        let now = now_ms().max(st.last_store_timestamp);
        st.last_store_timestamp = now;
        let mut run: Option<Run<'r>> = None;
        for (rec, topic, queue_id) in records.iter_mut() {
            let len = rec.bytes.len();
            // A pending run is written before a roll: the blank record goes after it.
            if let Some(r) = &run
                && r.file.remaining() < r.len + len + END_FILE_MIN_BLANK
                && let Some(r) = run.take()
            {
                self.write_run(r, end)?;
            }
            let file = self.writable(st, len)?;
            debug_assert!(run.as_ref().is_none_or(|r| Arc::ptr_eq(&r.file, &file)));
            let pos = file.wrote() + run.as_ref().map_or(0, |r| r.len);
            let phy = file.base() + pos as u64;
            let queue_offset = if sysflag::is_consumable(rec.sys_flag) {
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
            results.push(AppendResult {
                physical_offset: phy,
                size: len as u32,
                queue_offset,
                store_timestamp: now,
            });
            if through_file {
                let rec: &'r EncodedRecord = rec;
                let r = run.get_or_insert_with(|| Run {
                    file,
                    parts: Vec::new(),
                    len: 0,
                });
                r.parts.push(&rec.bytes);
                r.len += len;
            } else {
                file.append(&rec.bytes);
                *end = phy + len as u64;
                if self.config.warm_segments {
                    self.keep_prefaulted(&file, pos + len);
                }
            }
        }
        match run {
            Some(r) => self.write_run(r, end),
            None => Ok(()),
        }
    }

    /// Writes and publishes a SYNC run. A failed write makes the store read-only: the run's
    /// queue offsets are taken, and the bytes may be half in the page cache.
    fn write_run(&self, run: Run<'_>, end: &mut u64) -> Result<()> {
        match run.file.append_via_file(&run.parts) {
            Ok(pos) => {
                *end = run.file.base() + (pos + run.len) as u64;
                if self.config.flush_mode == FlushMode::Async && self.config.warm_segments {
                    self.keep_prefaulted(&run.file, pos + run.len);
                }
                Ok(())
            }
            Err(e) => Err(self.fail(StoreError::Io {
                op: "write segment",
                path: run.file.path().to_path_buf(),
                source: e,
            })),
        }
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
            match self.config.flush_mode {
                FlushMode::Sync => {
                    if let Err(e) = cur.write_via_file_at(cur.wrote(), &[&blank]) {
                        return Err(self.fail(StoreError::Io {
                            op: "write segment",
                            path: cur.path().to_path_buf(),
                            source: e,
                        }));
                    }
                }
                FlushMode::Async => cur.write_at(cur.wrote(), &blank),
            }
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
            // Cut the warm-up short: an unwarmed segment now beats a warm one later.
            self.allocator.hurry.store(true, Ordering::Release);
            while a.ready.is_none() && !a.stop {
                self.allocator.cv.wait(&mut a);
            }
            self.allocator.hurry.store(false, Ordering::Release);
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
            if a.prefault {
                a.prefault = false;
                drop(a);
                if let Some(f) = self.segments.last() {
                    f.prefault_to(
                        f.wrote() + PREFAULT_WINDOW,
                        false,
                        self.prefault_how(),
                        || self.hurry(),
                    );
                }
                self.allocator.prefaulting.store(false, Ordering::Release);
                a = self.allocator.state.lock();
                continue;
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
                    if let Ok(f) = &made {
                        self.warm(f);
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

    /// Prepares a fresh segment before appends use it. ASYNC (`warm_segments`): faults in its
    /// first window, so that appends into it find their pages ready. SYNC appends write through
    /// the file, not the mapping (prefaulting would only map the pages writable and make every
    /// group commit write-protect them again); with `prewrite_segments` the whole segment is
    /// written with zeros instead (see [`MappedFile::prewrite`]).
    fn warm(&self, f: &MappedFile) {
        let started = std::time::Instant::now();
        match self.config.flush_mode {
            FlushMode::Sync if self.config.prewrite_segments => match f.prewrite(|| self.hurry()) {
                Ok(bytes) => {
                    self.stats
                        .prewritten_bytes
                        .fetch_add(bytes as u64, Ordering::Relaxed);
                    tracing::debug!(path = %f.path().display(), bytes, took_ms = started.elapsed().as_millis() as u64, "prewrote the next segment");
                }
                Err(e) => {
                    tracing::warn!(path = %f.path().display(), error = %e, "prewriting the next segment failed; group commits into it will commit its blocks' conversion as they go")
                }
            },
            FlushMode::Sync => {}
            FlushMode::Async if self.config.warm_segments => {
                f.prefault_to(PREFAULT_WINDOW, true, self.prefault_how(), || self.hurry());
                tracing::debug!(path = %f.path().display(), took_ms = started.elapsed().as_millis() as u64, "warmed the next segment");
            }
            FlushMode::Async => {}
        }
    }

    /// How to get pages ready ahead of the appends: mapped writable for copies into the
    /// mapping; only into the page cache for writes through the file, so that they are never
    /// mapped writable (see `file_write_min_bytes`).
    fn prefault_how(&self) -> Prefault {
        if self.mapped_appends.load(Ordering::Relaxed) {
            Prefault::Mapped
        } else {
            Prefault::PageCache
        }
    }

    /// Whether warming should stop: a roll waits for the segment, or the store stops.
    fn hurry(&self) -> bool {
        self.allocator.hurry.load(Ordering::Acquire) || self.allocator.state.lock().stop
    }

    /// After an ASYNC append to `file` ending at `pos`: asks the allocator to extend the
    /// prefaulted window when the appends are half way through it.
    fn keep_prefaulted(&self, file: &MappedFile, pos: usize) {
        let prefaulted = file.prefaulted();
        if prefaulted < file.size()
            && pos + PREFAULT_WINDOW / 2 > prefaulted
            && !self.allocator.prefaulting.swap(true, Ordering::AcqRel)
        {
            self.allocator.state.lock().prefault = true;
            self.allocator.cv.notify_all();
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

    /// Syncs everything appended so far, publishes the new durable offset and wakes the appends
    /// it covers. Returns the new durable offset. After a failed flush nothing is synced again:
    /// Linux may have dropped the dirty pages, so a later fsync proves nothing.
    pub(crate) fn flush(&self) -> Result<u64> {
        self.flush_waking(&mut Woken::default()).map(|f| f.offset)
    }

    fn flush_waking(&self, woken: &mut Woken) -> Result<Flushed> {
        self.refuse_if_failed()?;
        let target = self.max_offset();
        let started = Instant::now();
        let mut from = self.flushed_offset();
        while from < target {
            let Some(file) = self.segments.find(from) else {
                break;
            };
            if let Err(e) = file.flush() {
                return Err(self.fail(StoreError::FlushFailed {
                    reason: format!("{}: {e}", file.path().display()),
                }));
            }
            let next = file.base() + file.size() as u64;
            from = if file.is_full() { next } else { target };
        }
        let took = started.elapsed();
        self.stats.record_flush(took);
        // Before anyone learns of the new offset: every append by a writer it completes is
        // counted after this.
        let appends_at_wake = self.appends.load(Ordering::SeqCst);
        let woke = self.durable.advance(target, woken);
        self.dispatcher.wake();
        if woke > 0 {
            self.stats.group_commits.fetch_add(1, Ordering::Relaxed);
            self.stats
                .group_commit_waiters
                .fetch_add(woke as u64, Ordering::Relaxed);
        }
        Ok(Flushed {
            offset: target,
            took,
            appends_at_wake,
            woke,
        })
    }

    /// A write or flush failed: refuse further writes and fail every waiting append.
    fn fail(&self, e: StoreError) -> StoreError {
        if self.durable.failure().is_none() {
            tracing::error!(error = %e, "commit log write or flush failed; refusing further writes");
        }
        self.durable.fail(e.to_string());
        e
    }

    /// Flusher thread body. SYNC: group commit (see [`Self::run_sync_flusher`]). ASYNC: a sync
    /// every `flush_interval_ms`.
    pub(crate) fn run_flusher(&self) {
        if self.config.flush_mode == FlushMode::Sync {
            return self.run_sync_flusher();
        }
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        let mut woken = Woken::default();
        loop {
            let stop = self.stop.load(Ordering::Acquire);
            if !stop {
                self.flusher
                    .sleep(interval, || self.stop.load(Ordering::Acquire));
            }
            if self.has_unflushed() {
                // A failure is logged and recorded by `fail`; waiters get it from there.
                let _ = self.flush_waking(&mut woken);
            }
            if stop && !self.has_unflushed() {
                return;
            }
        }
    }

    /// SYNC group commit. While there are no unflushed bytes the flusher sleeps until an append
    /// wakes it. Otherwise [`Gather`] decides whether to fsync now or to wait, briefly, for the
    /// writers the previous fsync acknowledged to append again; each fsync covers everything
    /// appended before it started.
    fn run_sync_flusher(&self) {
        // The timeout only bounds a missed wake-up; SYNC appends wake the flusher.
        let idle_timeout = Duration::from_millis(self.config.flush_interval_ms);
        let mut gather = Gather::new(
            Duration::from_micros(self.config.sync_gather_max_us),
            self.config.sync_gather_fsync_ratio,
        );
        if !gather.is_off() {
            // Gathering sleeps for tens of microseconds; the default 50 µs of timer slack
            // would stretch them by up to half.
            let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(
                GATHER_TIMER_SLACK_NS,
            ));
        }
        let mut woken = Woken::default();
        // When the last fsync returned and woke its waiters, and the append count before it
        // woke them: every append of a writer it woke is counted after.
        let mut returned = Instant::now();
        let mut at_wake = self.appends.load(Ordering::SeqCst);
        // When the wait of the group commit being gathered began.
        let mut gathering: Option<Instant> = None;
        loop {
            let stop = self.stop.load(Ordering::Acquire);
            if !self.has_unflushed() {
                if stop {
                    return;
                }
                self.flusher_wake_at.store(0, Ordering::SeqCst);
                self.flusher.sleep(idle_timeout, || {
                    self.has_unflushed() || self.stop.load(Ordering::Acquire)
                });
                continue;
            }
            if !stop {
                let arrived = self.appends.load(Ordering::SeqCst) - at_wake;
                if let Next::Gather { appends, timeout } = gather.next(arrived, returned.elapsed())
                {
                    let wake_at = at_wake + appends;
                    gathering.get_or_insert_with(Instant::now);
                    self.flusher_wake_at.store(wake_at, Ordering::SeqCst);
                    self.flusher.sleep(timeout, || {
                        self.appends.load(Ordering::SeqCst) >= wake_at
                            || self.stop.load(Ordering::Acquire)
                    });
                    continue;
                }
            }
            if let Some(began) = gathering.take() {
                self.stats.record_gather(began.elapsed());
            }
            // A failure is logged and recorded by `fail`; waiters get it from there.
            if let Ok(flushed) = self.flush_waking(&mut woken) {
                gather.fsync_done(flushed.woke as u64, flushed.took);
                at_wake = flushed.appends_at_wake;
            }
            returned = Instant::now();
        }
    }

    /// Bytes are published and not yet durable, and no flush failed (after one nothing is
    /// flushed again).
    fn has_unflushed(&self) -> bool {
        self.flushed_offset() < self.max_offset.load(Ordering::SeqCst)
            && self.durable.failure().is_none()
    }

    /// Refuses further appends; returns once no append is in flight.
    pub(crate) fn fence(&self) {
        self.append.lock().closed = true;
    }

    pub(crate) fn stop_threads(&self) {
        self.stop.store(true, Ordering::Release);
        self.flusher.wake_always();
        let mut a = self.allocator.state.lock();
        a.stop = true;
        if let Some(Ok(f)) = a.ready.take() {
            // An unused preallocated segment past the end would confuse the next recovery.
            let _ = f.delete();
        }
        self.allocator.cv.notify_all();
    }

    /// Blocks until data past `offset` is appended or `timeout` passes. For the dispatcher.
    ///
    /// ASYNC appends wake it when it sleeps. In SYNC mode the flusher wakes it after each fsync
    /// instead, once per group commit rather than once per append (a wake-up is a futex call
    /// and a context switch): consumers see a SYNC message about when its writer is
    /// acknowledged.
    pub(crate) fn wait_for_data(&self, offset: u64, timeout: Duration) {
        self.dispatcher
            .sleep(timeout, || self.max_offset.load(Ordering::SeqCst) > offset);
    }

    pub(crate) fn wake_waiters(&self) {
        self.dispatcher.wake_always();
    }

    /// The published bytes of the record at `offset` with `size`, held by their segment.
    pub(crate) fn slice(&self, offset: u64, size: usize) -> Option<(Arc<MappedFile>, usize)> {
        let file = self.segments.find(offset)?;
        let pos = (offset - file.base()) as usize;
        file.slice(pos, size)?;
        Some((file, pos))
    }
}

/// What one flush did.
struct Flushed {
    /// The new durable offset.
    offset: u64,
    /// How long the syncs took.
    took: Duration,
    /// The append count just before the new offset was published and its waiters woken.
    appends_at_wake: u64,
    /// Waiting appends it completed (threads unparked, tasks woken).
    woke: usize,
}

/// Timer slack of the SYNC flusher thread while it gathers (see `run_sync_flusher`).
const GATHER_TIMER_SLACK_NS: u64 = 1_000;

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
