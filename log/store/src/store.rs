//! [`MessageStore`]: the facade over commit log, consume queues and index, and the threads
//! that keep them: allocator, flusher, dispatcher, consume-queue flusher, cleaner.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex, RwLock};
use tributary_common::{property, sysflag};

use crate::checkpoint::Checkpoint;
use crate::commitlog::{self, AppendResult, CommitLog};
use crate::config::StoreConfig;
use crate::consume_queue::{ConsumeQueue, CqUnit};
use crate::durable::Durable;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::index::IndexService;
use crate::record::{self, NewMessage, Peek, StoredMessage};
use crate::recovery::{self, RecoveryReport};
use crate::retention::{DiskUsage, StatvfsDiskUsage};
use crate::segment::MappedFile;
use crate::stats::StoreStats;

/// Called by the dispatcher with `(topic, queue_id, max_offset)` for every queue that got new
/// messages in a dispatch round. Must be cheap: it runs on the dispatcher thread.
pub type ArrivalListener = Arc<dyn Fn(&str, i32, i64) + Send + Sync>;

/// Server-side filtering of a pull.
pub trait MessageFilter {
    /// Judges a consume queue unit by its tag hash code.
    fn matches_tags_code(&self, tags_code: i64) -> bool;
    /// Whether [`Self::matches_properties`] must be asked; when false, records are not parsed.
    fn filters_properties(&self) -> bool {
        false
    }
    /// Judges the message itself by its encoded properties (SQL92 filters). Default: accept.
    fn matches_properties(&self, _properties: &str) -> bool {
        true
    }
}

/// Accepts every message.
#[derive(Debug, Clone, Copy)]
pub struct AcceptAll;
impl MessageFilter for AcceptAll {
    fn matches_tags_code(&self, _: i64) -> bool {
        true
    }
}

/// The outcome of a pull, as RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

/// One stored record, held zero-copy in its segment's mapping.
#[derive(Debug, Clone)]
pub struct MessageBuf {
    file: Arc<MappedFile>,
    pos: usize,
    len: usize,
    pub queue_offset: i64,
    pub physical_offset: u64,
    pub tags_code: i64,
}

impl MessageBuf {
    pub fn as_bytes(&self) -> &[u8] {
        self.file
            .slice(self.pos, self.len)
            .expect("published bytes stay readable while held")
    }
    /// The record bytes as `Bytes`, still without copying.
    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
    /// Decodes the record.
    pub fn decode(&self) -> Result<StoredMessage> {
        record::decode(self.as_bytes(), true).map_err(|e| StoreError::Corrupt {
            path: self.file.path().to_path_buf(),
            offset: self.physical_offset,
            reason: e.to_string(),
        })
    }
}

impl AsRef<[u8]> for MessageBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The result of [`MessageStore::get_messages`].
#[derive(Debug)]
pub struct GetMessages {
    pub status: GetStatus,
    pub messages: Vec<MessageBuf>,
    /// Where the next pull should start.
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// Total bytes of `messages`.
    pub bytes: usize,
}

/// What [`MessageStore::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub records: u64,
    pub bytes: u64,
    pub queues: u64,
    pub keys_checked: u64,
    pub end_offset: u64,
    /// Problems found (the first 100).
    pub problems: Vec<String>,
    pub problem_count: u64,
}

/// Units a single pull inspects at most when a filter rejects messages.
const MAX_FILTER_SCAN_UNITS: usize = 16_000;

/// How long the dispatcher waits before trying a record that failed to dispatch again.
const DISPATCH_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct Inner {
    pub(crate) config: Arc<StoreConfig>,
    pub(crate) commitlog: CommitLog,
    pub(crate) queues: RwLock<HashMap<String, HashMap<i32, Arc<ConsumeQueue>>>>,
    pub(crate) index: IndexService,
    pub(crate) stats: Arc<StoreStats>,
    /// Everything in the commit log below this offset is in the consume queues and index.
    pub(crate) dispatched: AtomicU64,
    dispatched_cv: (Mutex<()>, Condvar),
    last_dispatched_ts: AtomicI64,
    pub(crate) shutdown: AtomicBool,
    pub(crate) disk: Arc<dyn DiskUsage>,
    pub(crate) disk_full: AtomicBool,
    pub(crate) cleaner: Mutex<crate::retention::CleanerState>,
    listener: RwLock<Option<ArrivalListener>>,
    stop_cv: (Mutex<bool>, Condvar),
    _lock: File,
}

/// A RocketMQ-format message store over one data directory.
pub struct MessageStore {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    recovery: RecoveryReport,
    closed: AtomicBool,
}

impl std::fmt::Debug for MessageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageStore")
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl MessageStore {
    /// Opens the store in `config.data_dir`, recovering from whatever state it was left in.
    pub fn open(config: StoreConfig) -> Result<Self> {
        Self::open_with(config, Arc::new(StatvfsDiskUsage))
    }

    /// Opens with a custom disk-usage probe (tests simulate a full disk with it).
    pub fn open_with(config: StoreConfig, disk: Arc<dyn DiskUsage>) -> Result<Self> {
        config.validate()?;
        fsutil::create_dir_durably(&config.data_dir)?;
        let lock_path = config.data_dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(StoreError::io("open lock file", &lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
            |_| StoreError::Locked {
                path: config.data_dir.clone(),
            },
        )?;
        let config = Arc::new(config);
        let stats = Arc::new(StoreStats::default());
        let commitlog = CommitLog::load(config.clone(), stats.clone())?;
        let index = IndexService::load(
            &config.index_dir(),
            config.index_slots,
            config.index_entries,
        )?;
        let queues = recovery::load_queues(&config)?;
        let inner = Arc::new(Inner {
            config: config.clone(),
            commitlog,
            queues: RwLock::new(queues),
            index,
            stats,
            dispatched: AtomicU64::new(0),
            dispatched_cv: (Mutex::new(()), Condvar::new()),
            last_dispatched_ts: AtomicI64::new(0),
            shutdown: AtomicBool::new(false),
            disk,
            disk_full: AtomicBool::new(false),
            cleaner: Mutex::new(Default::default()),
            listener: RwLock::new(None),
            stop_cv: (Mutex::new(false), Condvar::new()),
            _lock: lock,
        });
        let recovery = recovery::recover(&inner)?;
        // From here on a crash must be noticed at the next start.
        let abort = config.abort_path();
        File::create(&abort).map_err(StoreError::io("create abort marker", &abort))?;
        fsutil::fsync_dir(&config.data_dir)?;
        inner.commitlog.preallocate_next();
        let mut threads = Vec::new();
        let i = inner.clone();
        threads.push(commitlog::spawn("store-alloc", move || {
            i.commitlog.run_allocator()
        })?);
        let i = inner.clone();
        threads.push(commitlog::spawn("store-flush", move || {
            i.commitlog.run_flusher()
        })?);
        let i = inner.clone();
        threads.push(commitlog::spawn("store-dispatch", move || {
            i.run_dispatcher()
        })?);
        let i = inner.clone();
        threads.push(commitlog::spawn("store-cq-flush", move || {
            i.run_cq_flusher()
        })?);
        let i = inner.clone();
        threads.push(commitlog::spawn("store-clean", move || i.run_cleaner())?);
        tracing::info!(
            data_dir = %config.data_dir.display(),
            abnormal = recovery.abnormal,
            end_offset = recovery.end_offset,
            redispatched = recovery.redispatched_records,
            "store open"
        );
        Ok(MessageStore {
            inner,
            threads: Mutex::new(threads),
            recovery,
            closed: AtomicBool::new(false),
        })
    }

    /// What recovery found and did when the store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.recovery
    }
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// Appends one message. The returned [`Durable`] completes when it is on disk (SYNC mode)
    /// or at once (ASYNC mode).
    pub fn append(&self, msg: &NewMessage) -> Result<(AppendResult, Durable)> {
        let (mut r, d) = self.append_batch(std::slice::from_ref(msg))?;
        Ok((r.remove(0), d))
    }

    /// Appends messages as one contiguous run (consecutive queue offsets per queue).
    pub fn append_batch(&self, msgs: &[NewMessage]) -> Result<(Vec<AppendResult>, Durable)> {
        self.inner.check_writable()?;
        let host = self.inner.config.store_host;
        let max = self.inner.config.max_message_bytes;
        let mut encoded = msgs
            .iter()
            .map(|m| Ok((record::encode(m, &host, max)?, m.topic.as_str(), m.queue_id)))
            .collect::<Result<Vec<_>>>()?;
        self.inner.commitlog.append(&mut encoded)
    }

    /// Appends and, in SYNC mode, waits until durable or FLUSH_DISK_TIMEOUT.
    pub fn put_message(&self, msg: &NewMessage) -> Result<AppendResult> {
        let (r, durable) = self.append(msg)?;
        durable.wait()?;
        Ok(r)
    }

    /// Up to `max_count` messages (and about `max_bytes`; at least one) of a queue from `offset`.
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn MessageFilter,
    ) -> GetMessages {
        let mut out = GetMessages {
            status: GetStatus::NoMatchedLogicQueue,
            messages: Vec::new(),
            next_begin_offset: 0,
            min_offset: 0,
            max_offset: 0,
            bytes: 0,
        };
        let Some(cq) = self.inner.queue(topic, queue_id) else {
            return out;
        };
        let (min, max) = (cq.min_offset(), cq.max_logical());
        out.min_offset = min;
        out.max_offset = max;
        if max == 0 {
            out.status = GetStatus::NoMessageInQueue;
        } else if offset < min {
            out.status = GetStatus::OffsetTooSmall;
            out.next_begin_offset = min;
        } else if offset == max {
            out.status = GetStatus::OffsetOverflowOne;
            out.next_begin_offset = offset;
        } else if offset > max {
            out.status = GetStatus::OffsetOverflowBadly;
            out.next_begin_offset = max;
        } else {
            self.read_queue(&cq, offset, max_count.max(1), max_bytes, filter, &mut out);
        }
        out
    }

    fn read_queue(
        &self,
        cq: &ConsumeQueue,
        offset: i64,
        max_count: usize,
        max_bytes: usize,
        filter: &dyn MessageFilter,
        out: &mut GetMessages,
    ) {
        let mut next = offset;
        let mut scanned = 0;
        let mut removed = false;
        let cl_min = self.inner.commitlog.min_offset();
        'outer: while out.messages.len() < max_count
            && scanned < MAX_FILTER_SCAN_UNITS.max(max_count)
        {
            let units = cq.units(
                next,
                (max_count - out.messages.len()).clamp(32, MAX_FILTER_SCAN_UNITS),
            );
            if units.is_empty() {
                break;
            }
            for (logical, unit) in units {
                if out.messages.len() >= max_count {
                    break 'outer;
                }
                if !out.messages.is_empty() && out.bytes + unit.size as usize > max_bytes {
                    break 'outer;
                }
                next = logical + 1;
                scanned += 1;
                if (unit.phy_offset as u64) < cl_min {
                    removed = true;
                    continue;
                }
                if !filter.matches_tags_code(unit.tags_code) {
                    continue;
                }
                let Some((file, pos)) = self
                    .inner
                    .commitlog
                    .slice(unit.phy_offset as u64, unit.size as usize)
                else {
                    removed = true;
                    continue;
                };
                let buf = MessageBuf {
                    file,
                    pos,
                    len: unit.size as usize,
                    queue_offset: logical,
                    physical_offset: unit.phy_offset as u64,
                    tags_code: unit.tags_code,
                };
                if filter.filters_properties()
                    && let Ok(info) = record::view(buf.as_bytes(), false)
                    && !filter.matches_properties(info.properties)
                {
                    continue;
                }
                out.bytes += buf.len;
                out.messages.push(buf);
            }
        }
        out.next_begin_offset = next;
        out.status = if !out.messages.is_empty() {
            GetStatus::Found
        } else if removed {
            GetStatus::MessageWasRemoving
        } else {
            GetStatus::NoMatchedMessage
        };
        self.inner
            .stats
            .record_read(out.messages.len() as u64, out.bytes as u64);
    }

    /// The record at `physical_offset`, CRC-checked.
    pub fn read_message(&self, physical_offset: u64) -> Result<Option<StoredMessage>> {
        match self.read_record(physical_offset)? {
            Some(buf) => buf.decode().map(Some),
            None => Ok(None),
        }
    }

    /// The record at `physical_offset` as stored, zero-copy and CRC-checked (for answers that
    /// carry raw records, such as VIEW_MESSAGE_BY_ID).
    pub fn read_record(&self, physical_offset: u64) -> Result<Option<MessageBuf>> {
        let cl = &self.inner.commitlog;
        let Some(file) = cl.segments().find(physical_offset) else {
            return Ok(None);
        };
        let pos = (physical_offset - file.base()) as usize;
        let corrupt = |reason: String| StoreError::Corrupt {
            path: file.path().to_path_buf(),
            offset: physical_offset,
            reason,
        };
        let Some(head) = file.slice(pos, 8) else {
            return Ok(None);
        };
        match record::peek(head, file.size() - pos) {
            Ok(Peek::Message { size }) => {
                let Some(bytes) = file.slice(pos, size) else {
                    return Ok(None);
                };
                let view = record::view(bytes, true).map_err(|e| corrupt(e.to_string()))?;
                let queue_offset = view.queue_offset;
                let tags_code = record::property(view.properties, property::TAGS)
                    .map_or(0, |t| i64::from(record::java_string_hash(t)));
                Ok(Some(MessageBuf {
                    file: file.clone(),
                    pos,
                    len: size,
                    queue_offset,
                    physical_offset,
                    tags_code,
                }))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(corrupt(e.to_string())),
        }
    }

    /// The record at `offset`, or the first record of the next segment when `offset` is at the
    /// end-of-segment blank. Returns the record with its own offset; `None` past the end.
    pub fn next_record(&self, offset: u64) -> Result<Option<(u64, StoredMessage)>> {
        let mut at = offset.max(self.commitlog_min_offset());
        let end = self.commitlog_max_offset();
        while at < end {
            let Some(file) = self.inner.commitlog.segments().find(at) else {
                return Ok(None);
            };
            let pos = (at - file.base()) as usize;
            let Some(head) = file.slice(pos, 8.min(file.size() - pos)) else {
                return Ok(None);
            };
            match record::peek(head, file.size() - pos) {
                Ok(Peek::Message { .. }) => return Ok(self.read_message(at)?.map(|m| (at, m))),
                Ok(_) => at = file.base() + file.size() as u64,
                Err(e) => {
                    return Err(StoreError::Corrupt {
                        path: file.path().to_path_buf(),
                        offset: at,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Ok(None)
    }

    /// Checks every record from the start of the log: CRC, its consume queue unit, its index
    /// entries; and that every queue has no units past the log. Reads everything: an admin and
    /// test tool, not for the hot path.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let problem = |r: &mut VerifyReport, p: String| {
            if r.problems.len() < 100 {
                r.problems.push(p);
            }
            r.problem_count += 1;
        };
        let mut at = self.commitlog_min_offset();
        let mut next_offsets: HashMap<(String, i32), i64> = HashMap::new();
        loop {
            let (off, m) = match self.next_record(at) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    problem(&mut report, e.to_string());
                    break;
                }
            };
            report.records += 1;
            report.bytes += m.total_size as u64;
            at = off + m.total_size as u64;
            if sysflag::is_consumable(m.sys_flag) {
                match self.unit(&m.topic, m.queue_id, m.queue_offset) {
                    Some(u) if u.phy_offset as u64 == off && u.size == m.total_size => {}
                    Some(u) => problem(
                        &mut report,
                        format!(
                            "{}/{} offset {}: unit points at {} ({} B), record is at {off} ({} B)",
                            m.topic, m.queue_id, m.queue_offset, u.phy_offset, u.size, m.total_size
                        ),
                    ),
                    None if m.queue_offset < self.min_offset(&m.topic, m.queue_id) => {}
                    None => problem(
                        &mut report,
                        format!(
                            "{}/{} offset {}: no consume queue unit for the record at {off}",
                            m.topic, m.queue_id, m.queue_offset
                        ),
                    ),
                }
                next_offsets.insert((m.topic.clone(), m.queue_id), m.queue_offset + 1);
            }
            let keys = m
                .property(property::KEYS)
                .map(|k| {
                    k.split(property::KEY_SEPARATOR)
                        .filter(|k| !k.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for key in keys
                .iter()
                .map(String::as_str)
                .chain(m.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX))
            {
                report.keys_checked += 1;
                let found = self.inner.index.query(
                    &m.topic,
                    key,
                    usize::MAX,
                    m.store_timestamp - 1000,
                    m.store_timestamp + 1000,
                );
                if !found.contains(&off) {
                    problem(
                        &mut report,
                        format!("key {key:?} of the record at {off} is not in the index"),
                    );
                }
            }
        }
        for (topic, ids) in self.topics() {
            for id in ids {
                let max = self.max_offset(&topic, id);
                let expected = next_offsets
                    .get(&(topic.clone(), id))
                    .copied()
                    .unwrap_or(self.min_offset(&topic, id));
                if max != expected {
                    problem(
                        &mut report,
                        format!("{topic}/{id}: consume queue ends at {max}, the log at {expected}"),
                    );
                }
                report.queues += 1;
            }
        }
        report.end_offset = at.max(self.commitlog_min_offset());
        Ok(report)
    }

    /// Messages of `topic` with `key` (in KEYS or as unique key) stored within `begin..=end` ms.
    pub fn query_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<StoredMessage>> {
        self.query_records_by_key(topic, key, max, begin, end)?
            .iter()
            .map(MessageBuf::decode)
            .collect()
    }

    /// [`MessageStore::query_by_key`], returning the records as stored (zero-copy).
    pub fn query_records_by_key(
        &self,
        topic: &str,
        key: &str,
        max: usize,
        begin: i64,
        end: i64,
    ) -> Result<Vec<MessageBuf>> {
        let mut out = Vec::new();
        for phy in self.inner.index.query(topic, key, max, begin, end) {
            let Some(buf) = self.read_record(phy)? else {
                continue;
            };
            let Ok(m) = record::view(buf.as_bytes(), false) else {
                continue;
            };
            let matches = m.topic == topic
                && (record::property(m.properties, property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
                    == Some(key)
                    || record::property(m.properties, property::KEYS)
                        .is_some_and(|ks| ks.split(property::KEY_SEPARATOR).any(|k| k == key)));
            if matches {
                out.push(buf);
            }
        }
        Ok(out)
    }

    /// The first offset of the queue whose message was stored at or after `timestamp_ms`
    /// (max offset when none was).
    pub fn offset_by_time(&self, topic: &str, queue_id: i32, timestamp_ms: i64) -> i64 {
        let Some(cq) = self.inner.queue(topic, queue_id) else {
            return 0;
        };
        let (mut lo, mut hi) = (cq.min_offset(), cq.max_logical());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.store_time_of(&cq, mid) {
                Some(ts) if ts < timestamp_ms => lo = mid + 1,
                Some(_) => hi = mid,
                // A hole (removed data or a blank unit) counts as older.
                None => lo = mid + 1,
            }
        }
        lo
    }

    fn store_time_of(&self, cq: &ConsumeQueue, logical: i64) -> Option<i64> {
        let u = cq.get(logical)?;
        let (file, pos) = self
            .inner
            .commitlog
            .slice(u.phy_offset as u64, u.size as usize)?;
        record::store_timestamp(file.slice(pos, u.size as usize)?)
    }

    /// Store time of the message at `offset` in the queue.
    pub fn message_store_time(&self, topic: &str, queue_id: i32, offset: i64) -> Option<i64> {
        let cq = self.inner.queue(topic, queue_id)?;
        self.store_time_of(&cq, offset)
    }

    /// First offset present in a queue (0 when the queue does not exist).
    pub fn min_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.inner
            .queue(topic, queue_id)
            .map_or(0, |q| q.min_offset())
    }
    /// One past the last offset dispatched to a queue (0 when the queue does not exist).
    pub fn max_offset(&self, topic: &str, queue_id: i32) -> i64 {
        self.inner
            .queue(topic, queue_id)
            .map_or(0, |q| q.max_logical())
    }
    /// Consume queue unit at a queue offset.
    pub fn unit(&self, topic: &str, queue_id: i32, offset: i64) -> Option<CqUnit> {
        self.inner.queue(topic, queue_id)?.get(offset)
    }
    pub fn commitlog_min_offset(&self) -> u64 {
        self.inner.commitlog.min_offset()
    }
    pub fn commitlog_max_offset(&self) -> u64 {
        self.inner.commitlog.max_offset()
    }
    pub fn commitlog_flushed_offset(&self) -> u64 {
        self.inner.commitlog.flushed_offset()
    }
    pub fn dispatched_offset(&self) -> u64 {
        self.inner.dispatched.load(Ordering::Acquire)
    }

    /// Blocks until everything appended before the call is in consume queues and index, or
    /// `timeout` passes. Returns whether it caught up.
    pub fn wait_dispatched(&self, timeout: Duration) -> bool {
        let target = self.commitlog_max_offset();
        let deadline = std::time::Instant::now() + timeout;
        let (m, cv) = &self.inner.dispatched_cv;
        let mut g = m.lock();
        while self.dispatched_offset() < target {
            if cv.wait_until(&mut g, deadline).timed_out() {
                return self.dispatched_offset() >= target;
            }
        }
        true
    }

    /// Every topic with its queue ids.
    pub fn topics(&self) -> Vec<(String, Vec<i32>)> {
        let mut out: Vec<_> = self
            .inner
            .queues
            .read()
            .iter()
            .map(|(t, qs)| {
                let mut ids: Vec<i32> = qs.keys().copied().collect();
                ids.sort_unstable();
                (t.clone(), ids)
            })
            .collect();
        out.sort();
        out
    }

    /// Removes a topic's consume queues. Its records stay in the commit log until retention.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        let removed = self.inner.queues.write().remove(topic);
        if let Some(qs) = removed {
            for q in qs.values() {
                q.destroy()?;
            }
        }
        let _ = std::fs::remove_dir(self.inner.config.consume_queue_dir().join(topic));
        Ok(())
    }

    /// Registers the callback the dispatcher calls when queues get new messages.
    pub fn set_arrival_listener(&self, listener: ArrivalListener) {
        *self.inner.listener.write() = Some(listener);
    }

    /// Runs one retention round now, as if the local hour were `hour`.
    pub fn run_retention(
        &self,
        now_ms: i64,
        hour: u8,
    ) -> Result<crate::retention::RetentionReport> {
        self.inner.retention_round(now_ms, hour)
    }

    /// Flushes everything, writes the checkpoint, removes the abort marker, stops the threads.
    pub fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let inner = &self.inner;
        inner.shutdown.store(true, Ordering::Release);
        // Fence in-flight appends: after this no append can publish more bytes.
        inner.commitlog.fence();
        let caught_up = self.wait_dispatched(Duration::from_secs(60));
        self.stop_threads();
        let end = inner.commitlog.flush()?;
        inner.flush_queues()?;
        if caught_up {
            let ts = inner.last_dispatched_ts.load(Ordering::Acquire);
            Checkpoint {
                physic_timestamp: ts,
                logics_timestamp: ts,
                index_timestamp: ts,
                physic_flushed_offset: end,
                logics_offset: inner.dispatched.load(Ordering::Acquire),
            }
            .write(&inner.config.checkpoint_path())?;
            let abort = inner.config.abort_path();
            std::fs::remove_file(&abort).map_err(StoreError::io("remove abort marker", &abort))?;
            fsutil::fsync_dir(&inner.config.data_dir)?;
        } else {
            tracing::error!(
                "dispatcher did not catch up at shutdown; the next start recovers abnormally"
            );
        }
        tracing::info!(end_offset = end, "store shut down");
        Ok(())
    }
}

impl MessageStore {
    /// Stops the store's threads and releases its directory without the clean shutdown: the
    /// consume queues are not flushed, no checkpoint is written and the abort marker stays, so
    /// the next open recovers as after a crash. This is what a killed process leaves behind
    /// (the bytes it wrote are in the page cache either way), for crash tests that run in one
    /// process: a store merely leaked keeps its threads writing into the directory.
    #[doc(hidden)]
    pub fn abandon(self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.inner.shutdown.store(true, Ordering::Release);
            self.inner.commitlog.fence();
            self.stop_threads();
        }
    }

    /// Stops and joins every store thread.
    fn stop_threads(&self) {
        let inner = &self.inner;
        *inner.stop_cv.0.lock() = true;
        inner.stop_cv.1.notify_all();
        inner.commitlog.stop_threads();
        inner.commitlog.wake_waiters();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store shutdown failed");
        }
    }
}

impl Inner {
    /// A snapshot of every consume queue.
    pub(crate) fn all_queues(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read()
            .values()
            .flat_map(|qs| qs.values().cloned())
            .collect()
    }

    /// Waits `interval` or until shutdown; true when the thread should stop.
    fn wait_or_stop(&self, interval: Duration) -> bool {
        let mut stop = self.stop_cv.0.lock();
        if !*stop {
            self.stop_cv.1.wait_for(&mut stop, interval);
        }
        *stop
    }

    pub(crate) fn queue(&self, topic: &str, queue_id: i32) -> Option<Arc<ConsumeQueue>> {
        self.queues.read().get(topic)?.get(&queue_id).cloned()
    }

    fn queue_or_create(&self, topic: &str, queue_id: i32) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.queue(topic, queue_id) {
            return Ok(q);
        }
        let mut queues = self.queues.write();
        if let Some(q) = queues.get(topic).and_then(|qs| qs.get(&queue_id)) {
            return Ok(q.clone());
        }
        let dir = self
            .config
            .consume_queue_dir()
            .join(topic)
            .join(queue_id.to_string());
        let q = Arc::new(ConsumeQueue::load(
            &dir,
            topic,
            queue_id,
            self.config.consume_queue_units_per_file,
        )?);
        queues
            .entry(topic.to_string())
            .or_default()
            .insert(queue_id, q.clone());
        Ok(q)
    }

    fn check_writable(&self) -> Result<()> {
        if self.shutdown.load(Ordering::Acquire) {
            return Err(StoreError::ShutDown);
        }
        if self.disk_full.load(Ordering::Acquire) {
            self.stats
                .writes_refused_disk_full
                .fetch_add(1, Ordering::Relaxed);
            let used = self.stats.disk_used_bp.load(Ordering::Relaxed) as f64 / 100.0;
            return Err(StoreError::DiskFull {
                path: self.config.data_dir.clone(),
                used_percent: used,
                limit_percent: self.config.retention.disk_hard_ratio * 100.0,
            });
        }
        Ok(())
    }

    /// Builds consume queue and index entries for the records in `*from..end`, advancing
    /// `*from` past each record done, so that after an error it tells how far it got. Stops
    /// early at a record not yet complete.
    pub(crate) fn dispatch_range(
        &self,
        from: &mut u64,
        end: u64,
        touched: &mut Vec<(String, i32, i64)>,
    ) -> Result<()> {
        while *from < end {
            let at = *from;
            let Some(file) = self.commitlog.segments().find(at) else {
                break;
            };
            let pos = (at - file.base()) as usize;
            let corrupt = |reason: String| StoreError::Corrupt {
                path: file.path().to_path_buf(),
                offset: at,
                reason,
            };
            let Some(head) = file.slice(pos, 8.min(file.size() - pos)) else {
                break;
            };
            match record::peek(head, file.size() - pos).map_err(|e| corrupt(e.to_string()))? {
                Peek::Blank | Peek::Empty if file.is_full() => {
                    *from = file.base() + file.size() as u64;
                }
                Peek::Blank | Peek::Empty => break,
                Peek::Message { size } => {
                    let Some(bytes) = file.slice(pos, size) else {
                        break;
                    };
                    let info = record::view(bytes, false).map_err(|e| corrupt(e.to_string()))?;
                    self.dispatch_one(&info, at, touched)?;
                    *from += size as u64;
                }
            }
        }
        Ok(())
    }

    fn dispatch_one(
        &self,
        info: &record::RecordView<'_>,
        phy: u64,
        touched: &mut Vec<(String, i32, i64)>,
    ) -> Result<()> {
        if sysflag::is_consumable(info.sys_flag) {
            let tags_code = record::property(info.properties, property::TAGS)
                .map_or(0, |t| record::java_string_hash(t) as i64);
            let q = self.queue_or_create(info.topic, info.queue_id)?;
            q.put(
                info.queue_offset,
                CqUnit {
                    phy_offset: phy as i64,
                    size: info.size as i32,
                    tags_code,
                },
            )?;
            match touched
                .iter_mut()
                .find(|(t, q, _)| *q == info.queue_id && t == info.topic)
            {
                Some(entry) => entry.2 = info.queue_offset + 1,
                None => {
                    touched.push((info.topic.to_string(), info.queue_id, info.queue_offset + 1))
                }
            }
        }
        if let Some(keys) = record::property(info.properties, property::KEYS) {
            for key in keys
                .split(property::KEY_SEPARATOR)
                .filter(|k| !k.is_empty())
            {
                self.index.put(info.topic, key, phy, info.store_timestamp)?;
            }
        }
        if let Some(uniq) =
            record::property(info.properties, property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        {
            self.index
                .put(info.topic, uniq, phy, info.store_timestamp)?;
        }
        self.last_dispatched_ts
            .store(info.store_timestamp, Ordering::Release);
        self.stats
            .messages_dispatched
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn run_dispatcher(&self) {
        let linger = Duration::from_micros(self.config.dispatch_linger_us);
        let mut touched = Vec::new();
        // The offset where dispatching last failed, while it keeps failing there.
        let mut failing_at = None;
        loop {
            let from = self.dispatched.load(Ordering::Acquire);
            let end = self.commitlog.max_offset();
            if from < end {
                let mut to = from;
                let result = self.dispatch_range(&mut to, end, &mut touched);
                if to > from {
                    self.dispatched.store(to, Ordering::Release);
                    let _g = self.dispatched_cv.0.lock();
                    self.dispatched_cv.1.notify_all();
                }
                match result {
                    Ok(()) => {
                        if failing_at.take().is_some() {
                            tracing::info!(offset = to, "dispatch resumed");
                        }
                    }
                    // Nothing is skipped: the record that failed is tried again until it
                    // goes in (a full disk freed, say), and the queues behind it wait.
                    Err(e) => {
                        if failing_at != Some(to) {
                            tracing::error!(error = %e, offset = to, "dispatch failed; consume queues wait at this record, retrying every second");
                            failing_at = Some(to);
                        }
                        self.stats.dispatch_errors.fetch_add(1, Ordering::Relaxed);
                        if self.wait_or_stop(DISPATCH_RETRY) {
                            return;
                        }
                        continue;
                    }
                }
                if !touched.is_empty() {
                    let listener = self.listener.read().clone();
                    if let Some(l) = listener {
                        for (t, q, max) in &touched {
                            l(t, *q, *max);
                        }
                    }
                    touched.clear();
                }
                // Busy: let the appends of the next interval pile up and take them in one
                // round, rather than sleep and be woken by each of them.
                if !linger.is_zero() && !*self.stop_cv.0.lock() {
                    std::thread::sleep(linger);
                }
                continue;
            }
            if *self.stop_cv.0.lock() {
                return;
            }
            self.commitlog
                .wait_for_data(end, Duration::from_millis(100));
        }
    }

    pub(crate) fn flush_queues(&self) -> Result<()> {
        let queues = self.all_queues();
        for q in queues {
            q.flush()?;
        }
        self.index.flush()
    }

    /// Syncs consume queues and index, then records the progress in the checkpoint.
    fn run_cq_flusher(&self) {
        let interval = Duration::from_millis(self.config.flush_consume_queue_interval_ms);
        let mut last_written = None;
        loop {
            if self.wait_or_stop(interval) {
                return;
            }
            let logics = self.dispatched.load(Ordering::Acquire);
            let ts = self.last_dispatched_ts.load(Ordering::Acquire);
            if let Err(e) = self.flush_queues() {
                tracing::error!(error = %e, "flushing consume queues failed");
                continue;
            }
            let cp = Checkpoint {
                physic_timestamp: ts,
                logics_timestamp: ts,
                index_timestamp: ts,
                physic_flushed_offset: self.commitlog.flushed_offset(),
                logics_offset: logics,
            };
            if last_written != Some(cp) {
                match cp.write(&self.config.checkpoint_path()) {
                    Ok(()) => last_written = Some(cp),
                    Err(e) => tracing::error!(error = %e, "writing the checkpoint failed"),
                }
            }
        }
    }

    fn run_cleaner(&self) {
        let interval = Duration::from_millis(self.config.retention.check_interval_ms);
        loop {
            if self.wait_or_stop(interval) {
                return;
            }
            let hour = crate::retention::local_hour();
            if let Err(e) = self.retention_round(commitlog::now_ms(), hour) {
                tracing::warn!(error = %e, "retention round failed");
            }
        }
    }
}
