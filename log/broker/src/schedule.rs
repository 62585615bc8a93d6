//! Delayed messages: RocketMQ's 18 delay levels (property `DELAY`) and timer messages with an
//! arbitrary delivery time (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`).
//!
//! **Storage.** A delayed message is stored once, at send time, in a schedule queue instead of
//! its topic, with its topic and queue in `REAL_TOPIC` / `REAL_QID`:
//! - a delay-level message in `SCHEDULE_TOPIC_XXXX`, queue `level - 1` (as RocketMQ); it is
//!   due at its store time plus the level's delay, so every level queue is in due order;
//! - a timer message in `rmq_sys_wheel_timer`, in a *stage* queue, with its due time in
//!   `TIMER_OUT_MS`. Stage 0 waits 0 s and stage `k >= 1` waits `2^(k-1)` s from the entry's
//!   store time, so each stage queue, too, is in order of the time it must be looked at. A
//!   message with `r` ms to go is stored in the largest stage that waits at most `r`.
//!
//! **Delivery.** One thread ([`ScheduleService::run`]) follows every schedule queue from its
//! delivery cursor. An entry whose wait is over is *taken*: a level entry, or a timer entry
//! due in less than a second, goes into an in-memory heap ordered by due time and is
//! delivered (re-appended to its real topic and queue) when due; a timer entry with a second
//! or more to go is re-appended to the stage that fits what is left (at most one hop per stage,
//! 19 for 3 days; no entry waits in one queue longer than `2^17` s, half the default retention).
//! Deliveries of one round are appended in due order, so messages are delivered in due order
//! across levels and timers, at their due time (to the millisecond, plus dispatch latency).
//!
//! **Exactly once.** Every copy the service appends (delivery or hop) carries its source,
//! `__SCHED_SRC = <lane><queue>:<offset>`. `delayOffset.json` records per queue the first offset
//! not known to be copied, and a commit-log offset `scanFrom` at or below every copy of any
//! entry at or past those offsets. It is written only once the commit log is flushed past every
//! copy it counts (so a machine crash cannot lose a copy the file counts as done). At start,
//! the service reads the commit log from `scanFrom` to its end and collects the sources of the
//! copies found there: those entries were copied after the file was written and are skipped
//! when the cursor reaches them. An entry is thus copied again only if its copy did not survive
//! the crash. Sends cannot forge a source: the broker drops `__SCHED_SRC` from what clients send.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};
use tributary_protocol::message::property;
use tributary_protocol::message::{decode_properties, encode_properties};
use tributary_protocol::sysflag;
use tributary_store::record::RecordView;
use tributary_store::{Bounds, Histogram, MessageStore, NewMessage, StoreError};

use crate::BrokerConfig;

/// Topic of delay-level messages (RocketMQ's `RMQ_SYS_SCHEDULE_TOPIC`); queue = level - 1.
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Topic of timer messages (RocketMQ 5's `TIMER_TOPIC`); queue = stage.
pub const TIMER_TOPIC: &str = "rmq_sys_wheel_timer";
/// Property naming the schedule entry a copy was made from (`L<queue>:<offset>` for a delay
/// level, `T<stage>:<offset>` for a timer stage). Set only by the broker.
pub const SOURCE_PROPERTY: &str = "__SCHED_SRC";
/// The progress file in the broker's metadata folder (RocketMQ's name).
pub const PROGRESS_FILE: &str = "delayOffset.json";

/// Stage `k >= 1` waits `STAGE_UNIT_MS << (k - 1)`; a timer due sooner than one unit is held
/// in memory.
const STAGE_UNIT_MS: i64 = 1000;
/// Most levels `delay_levels` may list.
const MAX_LEVELS: usize = 256;
/// Most entries taken and not yet delivered (held in memory) at once.
const MAX_HELD: usize = 100_000;
/// Most entries taken from one queue in one round.
const MAX_TAKE_PER_QUEUE: usize = 1024;
/// Most copies appended in one round.
const MAX_ACTIONS_PER_ROUND: usize = 4096;
/// Wait before a copy that failed (disk full, store closing) is tried again, ms.
const RETRY_BACKOFF_MS: i64 = 1000;
/// Longest sleep between rounds, ms (arrivals wake the service earlier).
const IDLE_WAKE_MS: i64 = 1000;
/// With nothing delivered, the progress file is still rewritten once the commit log grew this
/// much past `scanFrom`, to keep the start-up scan short.
const SCAN_PERSIST_BYTES: u64 = 64 << 20;
/// How often an unflushed progress snapshot is looked at again, ms.
const FLUSH_POLL_MS: i64 = 20;
/// A delivery later than this after its due time is logged (at debug level: after a restart,
/// every message that fell due during the downtime is late).
const LATE_LOG_MS: u64 = 1000;
/// How long shutdown waits for the flush that lets it write the final progress.
const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(3);

/// Wall-clock time in ms (the clock of store timestamps).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Parses a delay level table (`"1s 5s 10s 30s 1m … 2h"`): numbers with a unit `ms`, `s`, `m`,
/// `h` or `d`, separated by spaces. Returns the delays in ms, level 1 first.
pub fn parse_delay_levels(text: &str) -> Result<Vec<i64>, String> {
    let mut levels = Vec::new();
    for item in text.split_whitespace() {
        let (number, unit_ms) = if let Some(n) = item.strip_suffix("ms") {
            (n, 1)
        } else if let Some(n) = item.strip_suffix('s') {
            (n, 1000)
        } else if let Some(n) = item.strip_suffix('m') {
            (n, 60_000)
        } else if let Some(n) = item.strip_suffix('h') {
            (n, 3_600_000)
        } else if let Some(n) = item.strip_suffix('d') {
            (n, 86_400_000)
        } else {
            return Err(format!("{item:?} has no unit (ms, s, m, h or d)"));
        };
        let ms = number
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .and_then(|n| n.checked_mul(unit_ms))
            .filter(|ms| *ms <= 366 * 86_400_000)
            .ok_or_else(|| format!("{item:?} is not a delay of 0 to 366 days"))?;
        levels.push(ms);
    }
    if levels.is_empty() {
        return Err("no delay level is listed".into());
    }
    if levels.len() > MAX_LEVELS {
        return Err(format!(
            "{} levels are listed; at most {MAX_LEVELS} are allowed",
            levels.len()
        ));
    }
    Ok(levels)
}

/// A schedule queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Lane {
    /// `SCHEDULE_TOPIC_XXXX` queue (level - 1).
    Level(i32),
    /// `rmq_sys_wheel_timer` queue (stage).
    Stage(i32),
}

impl Lane {
    fn topic(self) -> &'static str {
        match self {
            Lane::Level(_) => SCHEDULE_TOPIC,
            Lane::Stage(_) => TIMER_TOPIC,
        }
    }
    fn queue_id(self) -> i32 {
        match self {
            Lane::Level(q) | Lane::Stage(q) => q,
        }
    }
}

/// One schedule entry: its queue and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Source {
    lane: Lane,
    offset: i64,
}

impl Source {
    fn encode(self) -> String {
        match self.lane {
            Lane::Level(q) => format!("L{q}:{}", self.offset),
            Lane::Stage(q) => format!("T{q}:{}", self.offset),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (lane, offset) = text.split_once(':')?;
        let offset = offset.parse().ok()?;
        let lane = match lane.split_at_checked(1)? {
            ("L", q) => Lane::Level(q.parse().ok()?),
            ("T", q) => Lane::Stage(q.parse().ok()?),
            _ => return None,
        };
        Some(Source { lane, offset })
    }
}

/// `delayOffset.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgressFile {
    /// Per delay level (queue id + 1, as RocketMQ's file): the first offset not known to be
    /// delivered.
    #[serde(default)]
    offset_table: BTreeMap<i32, i64>,
    /// Per timer stage (queue id): the first offset not known to be copied.
    #[serde(default)]
    timer_offset_table: BTreeMap<i32, i64>,
    /// Commit-log offset at or below every copy of an entry at or past those offsets.
    #[serde(default)]
    scan_from: Option<u64>,
}

/// What to do with a taken entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    /// Append to its real topic and queue.
    Deliver,
    /// Append to the timer stage that fits the time left.
    Restage,
}

/// A taken entry waiting for its action.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    /// When to act, ms (the due time for a delivery).
    action_at: i64,
    due: i64,
    src: Source,
    action: Action,
    phy: u64,
    /// The commit log's end when the entry was taken: its copy, and copies of entries taken
    /// after it from the same queue, lie past this.
    taken_end: u64,
}

/// The delivery cursor of one schedule queue.
#[derive(Debug)]
struct Cursor {
    lane: Lane,
    /// First offset not taken.
    next: i64,
}

/// The service's state, owned by its thread.
#[derive(Debug, Default)]
struct State {
    cursors: Vec<Cursor>,
    held: BinaryHeap<Reverse<Held>>,
    /// Entries copied before the last start whose copy the progress file does not count, with
    /// the copy's commit-log offset.
    done: HashMap<Source, u64>,
    /// The progress last written.
    written: ProgressFile,
    /// A snapshot waiting for the commit log to be flushed up to the offset beside it.
    unflushed: Option<(ProgressFile, u64)>,
    next_persist_at: i64,
}

/// Counters of the schedule service.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    /// Delayed messages delivered to their topics.
    pub delivered: AtomicU64,
    /// Timer messages moved to a shorter stage.
    pub restaged: AtomicU64,
    /// Schedule entries dropped (unreadable, no real topic, topic deleted, too large).
    pub dropped: AtomicU64,
    /// Entries skipped at start because their copy was found in the commit log.
    pub deduplicated: AtomicU64,
    /// Messages waiting in the schedule queues or in memory, as of the last round.
    pub pending: AtomicU64,
    /// How late each delivery was: from its due time to its append to its topic.
    pub delivery_lag: LagHistogram,
}

/// Upper bounds of the [`LagHistogram`] buckets, ms. The promise is delivery within a second of
/// the due time; the buckets above it tell how late the rest were (after a restart, messages
/// that fell due while the broker was down are delivered as late as the downtime).
#[derive(Debug)]
pub struct LagMillis;

impl Bounds for LagMillis {
    const UPPER: &'static [u64] = &[
        5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
        3_600_000,
    ];
}

/// Delivery lags in ms.
pub type LagHistogram = Histogram<LagMillis>;

/// Delivers delayed and timer messages when due; see the module docs.
pub struct ScheduleService {
    store: Arc<MessageStore>,
    /// Delay of each level, ms.
    levels: Vec<i64>,
    /// Stage queues used for new timers.
    stages: i32,
    max_delay_ms: i64,
    flush_interval_ms: i64,
    path: PathBuf,
    poked: Mutex<bool>,
    wake: Condvar,
    stopped: AtomicBool,
    state: Mutex<Option<State>>,
    stats: ScheduleStats,
}

impl std::fmt::Debug for ScheduleService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScheduleService")
            .field("levels", &self.levels)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

impl ScheduleService {
    /// Loads the progress in `meta_dir` and finds, from the commit log, the entries copied
    /// since it was written. Runs before the broker serves.
    pub fn open(
        config: &BrokerConfig,
        store: Arc<MessageStore>,
        meta_dir: &Path,
    ) -> std::io::Result<Self> {
        let levels = parse_delay_levels(&config.delay_levels)
            .map_err(|e| invalid(format!("broker.delay_levels: {e}")))?;
        let max_delay_ms = i64::try_from(config.timer_max_delay_secs)
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| invalid("broker.timer_max_delay_secs is too large".into()))?;
        let service = Self {
            stages: stages_for(max_delay_ms),
            levels,
            max_delay_ms,
            flush_interval_ms: i64::try_from(config.schedule_flush_interval_ms.max(10))
                .unwrap_or(i64::MAX),
            path: meta_dir.join(PROGRESS_FILE),
            store,
            poked: Mutex::new(false),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            state: Mutex::new(None),
            stats: ScheduleStats::default(),
        };
        let state = service.recover()?;
        *service.state.lock() = Some(state);
        Ok(service)
    }

    /// The counters.
    pub fn stats(&self) -> &ScheduleStats {
        &self.stats
    }

    /// Delay of a level (1-based), ms; a level past the table is the last one.
    fn level_delay(&self, level: i32) -> i64 {
        let i = usize::try_from(level.max(1) - 1).unwrap_or(0);
        self.levels
            .get(i)
            .or(self.levels.last())
            .copied()
            .unwrap_or(0)
    }

    fn stage_for(&self, remaining_ms: i64) -> i32 {
        stage_for(remaining_ms).min(self.stages - 1)
    }

    fn recover(&self) -> std::io::Result<State> {
        let file: Option<ProgressFile> = crate::persist::load(&self.path)?;
        let existing = self.store.topics();
        let queues_of = |topic: &str| {
            existing
                .iter()
                .find(|(t, _)| t == topic)
                .and_then(|(_, qs)| qs.iter().max().map(|q| q + 1))
                .unwrap_or(0)
        };
        let level_queues = (self.levels.len() as i32).max(queues_of(SCHEDULE_TOPIC));
        let stage_queues = self.stages.max(queues_of(TIMER_TOPIC));
        let file_ref = file.as_ref();
        let mut cursors = Vec::new();
        for q in 0..level_queues {
            let next = file_ref
                .and_then(|f| f.offset_table.get(&(q + 1)).copied())
                .unwrap_or(0);
            cursors.push(Cursor {
                lane: Lane::Level(q),
                next,
            });
        }
        for k in 0..stage_queues {
            let next = file_ref
                .and_then(|f| f.timer_offset_table.get(&k).copied())
                .unwrap_or(0);
            cursors.push(Cursor {
                lane: Lane::Stage(k),
                next,
            });
        }
        let mut state = State {
            cursors,
            written: file.clone().unwrap_or_default(),
            ..State::default()
        };
        // Entries past the cursors may have been copied after the file was written.
        let behind = state
            .cursors
            .iter()
            .any(|c| self.store.max_offset(c.lane.topic(), c.lane.queue_id()) > c.next);
        if behind {
            let from = file_ref
                .and_then(|f| f.scan_from)
                .unwrap_or_else(|| self.store.commitlog_min_offset());
            self.scan_copies(&mut state, from)?;
        }
        Ok(state)
    }

    /// Reads the commit log from `from` to its end and records the sources of copies whose
    /// entries the cursors have not passed.
    fn scan_copies(&self, state: &mut State, from: u64) -> std::io::Result<()> {
        let end = self.store.commitlog_max_offset();
        let next_of: HashMap<Lane, i64> = state.cursors.iter().map(|c| (c.lane, c.next)).collect();
        let mut at = from.max(self.store.commitlog_min_offset());
        let started = std::time::Instant::now();
        let mut records = 0u64;
        while at < end {
            let found = self.store.next_record(at).map_err(|e| {
                std::io::Error::other(format!(
                    "scan for delivered delayed messages at commit log offset {at}: {e}"
                ))
            })?;
            let Some((pos, message)) = found else { break };
            records += 1;
            if let Some(src) = message.property(SOURCE_PROPERTY).and_then(Source::parse)
                && next_of
                    .get(&src.lane)
                    .is_some_and(|next| src.offset >= *next)
            {
                state.done.insert(src, pos);
            }
            at = pos + u64::try_from(message.total_size.max(1)).unwrap_or(1);
        }
        tracing::info!(
            from,
            end,
            records,
            copies = state.done.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "scanned the commit log for delayed messages delivered since the last progress"
        );
        Ok(())
    }

    /// Called for every queue that got messages: wakes the service for schedule queues.
    pub fn arrived(&self, topic: &str) {
        if topic == SCHEDULE_TOPIC || topic == TIMER_TOPIC {
            self.poke();
        }
    }

    fn poke(&self) {
        *self.poked.lock() = true;
        self.wake.notify_one();
    }

    /// Makes [`Self::run`] write its progress and return.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.poke();
    }

    // ---- sending ----

    /// Rewrites a message that asks for a delay so that it is stored in a schedule queue:
    /// `DELAY` level > 0 (a level past the table is the last one), or else a timer property
    /// with a time in the future. Drops any client-sent [`SOURCE_PROPERTY`]. `Err`: a timer
    /// that cannot be honoured (unparsable, or further away than `timer_max_delay_secs`).
    pub fn route(&self, msg: &mut NewMessage, now: i64) -> Result<(), String> {
        let p = &msg.properties;
        if !(p.contains(property::DELAY_TIME_LEVEL)
            || p.contains("TIMER_")
            || p.contains(SOURCE_PROPERTY))
        {
            return Ok(());
        }
        let mut props = decode_properties(p);
        props.remove(SOURCE_PROPERTY);
        if sysflag::message::is_consumable(msg.sys_flag) {
            let level = props
                .get(property::DELAY_TIME_LEVEL)
                .and_then(|l| l.trim().parse::<i32>().ok())
                .unwrap_or(0);
            if level > 0 {
                // A level wins over timer properties (as RocketMQ).
                for name in TIMER_REQUESTS {
                    props.remove(*name);
                }
                let level = level.min(self.levels.len() as i32);
                props.insert(property::DELAY_TIME_LEVEL.into(), level.to_string());
                props.insert(property::REAL_TOPIC.into(), msg.topic.clone());
                props.insert(property::REAL_QUEUE_ID.into(), msg.queue_id.to_string());
                msg.topic = SCHEDULE_TOPIC.into();
                msg.queue_id = level - 1;
            } else if !props.contains_key(property::TIMER_OUT_MS)
                && let Some(deliver_ms) = timer_deliver_ms(&props, now)?
                && deliver_ms > now
            {
                if deliver_ms - now > self.max_delay_ms {
                    return Err(format!(
                        "the timer is {} s away; this broker accepts at most {} s (broker.timer_max_delay_secs)",
                        (deliver_ms - now) / 1000,
                        self.max_delay_ms / 1000
                    ));
                }
                props.insert(property::TIMER_OUT_MS.into(), deliver_ms.to_string());
                props.insert(property::REAL_TOPIC.into(), msg.topic.clone());
                props.insert(property::REAL_QUEUE_ID.into(), msg.queue_id.to_string());
                msg.topic = TIMER_TOPIC.into();
                msg.queue_id = self.stage_for(deliver_ms - now);
            }
        }
        msg.properties = encode_properties(&props);
        Ok(())
    }

    // ---- delivering ----

    /// Delivers due messages until [`Self::stop`]. `topic_exists` tells whether a real topic
    /// still exists (a message whose topic was deleted is dropped).
    pub fn run(&self, topic_exists: &dyn Fn(&str) -> bool) {
        let Some(mut state) = self.state.lock().take() else {
            return;
        };
        tracing::info!(
            levels = self.levels.len(),
            stages = self.stages,
            pending_copies = state.done.len(),
            "delayed message delivery started"
        );
        loop {
            let stopping = self.stopped.load(Ordering::Acquire);
            let now = now_ms();
            let mut wake_at = now + IDLE_WAKE_MS;
            if !stopping {
                self.take(&mut state, now, &mut wake_at);
                self.act(&mut state, now, topic_exists, &mut wake_at);
                self.count_pending(&state);
            }
            self.persist(&mut state, now, stopping, &mut wake_at);
            if stopping {
                break;
            }
            self.sleep_until(wake_at);
        }
        tracing::info!("delayed message delivery stopped");
    }

    fn sleep_until(&self, wake_at: i64) {
        let mut poked = self.poked.lock();
        if !*poked && !self.stopped.load(Ordering::Acquire) {
            let ms = (wake_at - now_ms()).clamp(0, IDLE_WAKE_MS);
            if ms > 0 {
                self.wake
                    .wait_for(&mut poked, Duration::from_millis(ms as u64));
            }
        }
        *poked = false;
    }

    /// Moves entries whose wait is over from every queue into the heap.
    fn take(&self, state: &mut State, now: i64, wake_at: &mut i64) {
        let State {
            cursors,
            held,
            done,
            ..
        } = state;
        for cursor in cursors.iter_mut() {
            let (topic, queue_id) = (cursor.lane.topic(), cursor.lane.queue_id());
            let min = self.store.min_offset(topic, queue_id);
            if cursor.next < min {
                tracing::warn!(
                    topic,
                    queue_id,
                    from = cursor.next,
                    to = min,
                    "delayed messages were deleted by retention before delivery"
                );
                cursor.next = min;
                done.retain(|src, _| src.lane != cursor.lane || src.offset >= min);
            }
            let mut taken = 0;
            while taken < MAX_TAKE_PER_QUEUE {
                if held.len() >= MAX_HELD {
                    *wake_at = now;
                    return;
                }
                let Some(unit) = self.store.unit(topic, queue_id, cursor.next) else {
                    break;
                };
                let src = Source {
                    lane: cursor.lane,
                    offset: cursor.next,
                };
                let phy = u64::try_from(unit.phy_offset).unwrap_or(u64::MAX);
                let timing = match self.store.read_record(phy) {
                    Ok(Some(buf)) => match tributary_store::record::view(buf.as_bytes(), false) {
                        Ok(view) => Some(self.timing(cursor.lane, &view)),
                        Err(e) => {
                            tracing::error!(topic, queue_id, offset = cursor.next, error = %e, "unreadable delayed message dropped");
                            None
                        }
                    },
                    Ok(None) => {
                        tracing::error!(
                            topic,
                            queue_id,
                            offset = cursor.next,
                            phy,
                            "delayed message missing from the commit log; dropped"
                        );
                        None
                    }
                    Err(e) => {
                        tracing::error!(topic, queue_id, offset = cursor.next, error = %e, "unreadable delayed message dropped");
                        None
                    }
                };
                let Some((look_at, due)) = timing else {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    cursor.next += 1;
                    continue;
                };
                if look_at > now {
                    *wake_at = (*wake_at).min(look_at);
                    break;
                }
                cursor.next += 1;
                taken += 1;
                if done.remove(&src).is_some() {
                    self.stats.deduplicated.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let (action, action_at) = match cursor.lane {
                    Lane::Stage(_) if due - now >= STAGE_UNIT_MS => (Action::Restage, now),
                    _ => (Action::Deliver, due),
                };
                held.push(Reverse(Held {
                    action_at,
                    due,
                    src,
                    action,
                    phy,
                    taken_end: self.store.commitlog_max_offset(),
                }));
            }
            if taken == MAX_TAKE_PER_QUEUE {
                *wake_at = now;
            }
        }
    }

    fn count_pending(&self, state: &State) {
        let queued: i64 = state
            .cursors
            .iter()
            .map(|c| (self.store.max_offset(c.lane.topic(), c.lane.queue_id()) - c.next).max(0))
            .sum();
        let pending = u64::try_from(queued).unwrap_or(0) + state.held.len() as u64;
        self.stats.pending.store(pending, Ordering::Relaxed);
    }

    /// When to look at an entry again, and when it is due, ms.
    fn timing(&self, lane: Lane, view: &RecordView<'_>) -> (i64, i64) {
        match lane {
            Lane::Level(q) => {
                let due = view.store_timestamp + self.level_delay(q + 1);
                (due, due)
            }
            Lane::Stage(k) => {
                let look_at = view.store_timestamp + stage_delay(k);
                let due =
                    tributary_store::record::property(view.properties, property::TIMER_OUT_MS)
                        .and_then(|t| t.parse().ok())
                        .unwrap_or(look_at);
                (look_at, due)
            }
        }
    }

    /// Appends the copies whose time has come, in due order.
    fn act(
        &self,
        state: &mut State,
        now: i64,
        topic_exists: &dyn Fn(&str) -> bool,
        wake_at: &mut i64,
    ) {
        let mut acted = 0;
        while let Some(Reverse(top)) = state.held.peek() {
            if top.action_at > now {
                *wake_at = (*wake_at).min(top.action_at);
                return;
            }
            if acted == MAX_ACTIONS_PER_ROUND {
                *wake_at = now;
                return;
            }
            let Some(Reverse(entry)) = state.held.pop() else {
                return;
            };
            acted += 1;
            let message = match self.copy_of(&entry, now) {
                Ok(m) => m,
                Err(why) => {
                    tracing::error!(source = %entry.src.encode(), reason = %why, "delayed message dropped");
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if entry.action == Action::Deliver && !topic_exists(&message.topic) {
                tracing::warn!(topic = %message.topic, source = %entry.src.encode(), "the topic of a delayed message was deleted; message dropped");
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match self.store.append(&message) {
                Ok(_) => match entry.action {
                    Action::Deliver => {
                        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        let lag = u64::try_from(now_ms() - entry.due).unwrap_or(0);
                        self.stats.delivery_lag.observe(lag);
                        if lag > LATE_LOG_MS {
                            tracing::debug!(topic = %message.topic, source = %entry.src.encode(), lag_ms = lag, "delayed message delivered late");
                        }
                    }
                    Action::Restage => {
                        self.stats.restaged.fetch_add(1, Ordering::Relaxed);
                    }
                },
                Err(
                    e @ (StoreError::MessageTooLarge { .. } | StoreError::MessageIllegal { .. }),
                ) => {
                    tracing::error!(source = %entry.src.encode(), error = %e, "delayed message cannot be stored again; dropped");
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!(source = %entry.src.encode(), error = %e, "deliver delayed message; trying again in a second");
                    let retry_at = now + RETRY_BACKOFF_MS;
                    state.held.push(Reverse(Held {
                        action_at: retry_at,
                        ..entry
                    }));
                    *wake_at = (*wake_at).min(retry_at);
                    return;
                }
            }
        }
    }

    /// The message to append for a held entry.
    fn copy_of(&self, entry: &Held, now: i64) -> Result<NewMessage, String> {
        let buf = self
            .store
            .read_record(entry.phy)
            .map_err(|e| e.to_string())?
            .ok_or("the entry is gone from the commit log")?;
        let view =
            tributary_store::record::view(buf.as_bytes(), false).map_err(|e| e.to_string())?;
        let mut props = decode_properties(view.properties);
        props.insert(SOURCE_PROPERTY.into(), entry.src.encode());
        let (topic, queue_id) = match entry.action {
            Action::Deliver => {
                let topic = props
                    .get(property::REAL_TOPIC)
                    .cloned()
                    .ok_or("it has no REAL_TOPIC")?;
                let queue_id = props
                    .get(property::REAL_QUEUE_ID)
                    .and_then(|q| q.parse::<i32>().ok())
                    .ok_or("it has no valid REAL_QID")?;
                match entry.src.lane {
                    // As RocketMQ's ScheduleMessageService: REAL_TOPIC / REAL_QID stay.
                    Lane::Level(_) => {
                        props.remove(property::DELAY_TIME_LEVEL);
                        for name in TIMER_REQUESTS {
                            props.remove(*name);
                        }
                    }
                    // As RocketMQ 5's TimerMessageStore: TIMER_OUT_MS stays.
                    Lane::Stage(_) => {
                        props.remove(property::REAL_TOPIC);
                        props.remove(property::REAL_QUEUE_ID);
                    }
                }
                (topic, queue_id)
            }
            Action::Restage => (TIMER_TOPIC.to_string(), self.stage_for(entry.due - now)),
        };
        Ok(NewMessage {
            topic,
            queue_id,
            flag: view.flag,
            body: Bytes::copy_from_slice(view.body),
            properties: encode_properties(&props),
            sys_flag: view.sys_flag,
            born_timestamp: view.born_timestamp,
            born_host: view.born_host,
            reconsume_times: view.reconsume_times,
            prepared_transaction_offset: 0,
        })
    }

    // ---- progress ----

    fn snapshot(&self, state: &State) -> ProgressFile {
        let mut first_held: HashMap<Lane, i64> = HashMap::new();
        let mut scan_from = self.store.commitlog_max_offset();
        for Reverse(h) in &state.held {
            let e = first_held.entry(h.src.lane).or_insert(h.src.offset);
            *e = (*e).min(h.src.offset);
            scan_from = scan_from.min(h.taken_end);
        }
        for phy in state.done.values() {
            scan_from = scan_from.min(*phy);
        }
        let mut file = ProgressFile {
            scan_from: Some(scan_from),
            ..ProgressFile::default()
        };
        for c in &state.cursors {
            let next = first_held.get(&c.lane).copied().unwrap_or(c.next);
            match c.lane {
                Lane::Level(q) => file.offset_table.insert(q + 1, next),
                Lane::Stage(k) => file.timer_offset_table.insert(k, next),
            };
        }
        file
    }

    fn write(&self, state: &mut State, file: ProgressFile) {
        match crate::persist::store(&self.path, &file) {
            Ok(()) => state.written = file,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "write delayed message progress")
            }
        }
    }

    /// At shutdown: writes the progress once the commit log is flushed past it (the store
    /// flushes until it is shut down, after the broker). If the flush does not come, the file
    /// stays as it was and the next start finds the copies in the commit log.
    fn persist_final(&self, state: &mut State) {
        let snap = self.snapshot(state);
        if snap == state.written {
            return;
        }
        let covers = self.store.commitlog_max_offset();
        let deadline = std::time::Instant::now() + FINAL_FLUSH_WAIT;
        while self.store.commitlog_flushed_offset() < covers && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(FLUSH_POLL_MS as u64));
        }
        if self.store.commitlog_flushed_offset() >= covers {
            self.write(state, snap);
        } else {
            tracing::warn!(
                "commit log not flushed at shutdown; delayed message progress left as it was"
            );
        }
    }

    /// Writes the progress every `schedule_flush_interval_ms` when it changed, once the commit
    /// log is flushed past every copy it counts.
    fn persist(&self, state: &mut State, now: i64, stopping: bool, wake_at: &mut i64) {
        if stopping {
            self.persist_final(state);
            return;
        }
        if let Some((_, covers)) = &state.unflushed {
            if self.store.commitlog_flushed_offset() >= *covers {
                if let Some((file, _)) = state.unflushed.take() {
                    self.write(state, file);
                }
            } else {
                *wake_at = (*wake_at).min(now + FLUSH_POLL_MS);
                return;
            }
        }
        if now < state.next_persist_at {
            *wake_at = (*wake_at).min(state.next_persist_at.max(now));
            return;
        }
        state.next_persist_at = now + self.flush_interval_ms;
        let snap = self.snapshot(state);
        let moved = snap.offset_table != state.written.offset_table
            || snap.timer_offset_table != state.written.timer_offset_table
            || snap.scan_from.unwrap_or(0)
                >= state.written.scan_from.unwrap_or(0) + SCAN_PERSIST_BYTES;
        if moved {
            let covers = self.store.commitlog_max_offset();
            if self.store.commitlog_flushed_offset() >= covers {
                self.write(state, snap);
            } else {
                state.unflushed = Some((snap, covers));
                *wake_at = (*wake_at).min(now + FLUSH_POLL_MS);
            }
        }
    }
}

/// Refuses a batch that asks for a delay (RocketMQ refuses a batch with a delay level; a
/// delay inside a batch would otherwise be ignored silently).
pub(crate) fn refuse_delayed_batch(
    header: &tributary_protocol::header::SendMessageRequestHeader,
    batch: &[tributary_protocol::message::BatchMessage],
) -> Result<(), crate::processor::Refusal> {
    let header_props = header
        .properties
        .as_deref()
        .map(decode_properties)
        .unwrap_or_default();
    let delayed = |props: &tributary_protocol::message::Properties| {
        props
            .get(property::DELAY_TIME_LEVEL)
            .and_then(|l| l.trim().parse::<i32>().ok())
            .is_some_and(|l| l > 0)
            || TIMER_REQUESTS.iter().any(|name| props.contains_key(*name))
    };
    if delayed(&header_props) || batch.iter().any(|m| delayed(&m.properties)) {
        return Err(crate::processor::Refusal::new(
            tributary_protocol::codes::response::MESSAGE_ILLEGAL,
            "delayed and timer messages cannot be sent in a batch",
        ));
    }
    Ok(())
}

/// Timer request properties (cleared when a delay level wins or on level delivery).
const TIMER_REQUESTS: &[&str] = &[
    property::TIMER_DELIVER_MS,
    property::TIMER_DELAY_SEC,
    property::TIMER_DELAY_MS,
];

/// The delivery time a timer message asks for, ms: `TIMER_DELAY_SEC`, else `TIMER_DELAY_MS`,
/// else `TIMER_DELIVER_MS` (RocketMQ's order). `Ok(None)`: no timer property.
fn timer_deliver_ms(
    props: &tributary_protocol::message::Properties,
    now: i64,
) -> Result<Option<i64>, String> {
    let parse = |name: &str| -> Result<Option<i64>, String> {
        props
            .get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("timer property {name}={v:?} is not a number"))
            })
            .transpose()
    };
    if let Some(secs) = parse(property::TIMER_DELAY_SEC)? {
        return Ok(Some(now.saturating_add(secs.saturating_mul(1000))));
    }
    if let Some(ms) = parse(property::TIMER_DELAY_MS)? {
        return Ok(Some(now.saturating_add(ms)));
    }
    parse(property::TIMER_DELIVER_MS)
}

/// Wait of stage `k`, ms.
fn stage_delay(k: i32) -> i64 {
    if k <= 0 {
        0
    } else {
        STAGE_UNIT_MS << (k - 1).min(40)
    }
}

/// The largest stage that waits at most `remaining_ms`.
fn stage_for(remaining_ms: i64) -> i32 {
    if remaining_ms < STAGE_UNIT_MS {
        return 0;
    }
    let units = remaining_ms / STAGE_UNIT_MS;
    1 + (63 - units.leading_zeros() as i32)
}

/// Stage queues needed for timers up to `max_delay_ms`.
fn stages_for(max_delay_ms: i64) -> i32 {
    stage_for(max_delay_ms.max(STAGE_UNIT_MS)) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_levels_parse_like_rocketmq() {
        let levels = parse_delay_levels(&BrokerConfig::default().delay_levels).expect("default");
        assert_eq!(levels.len(), 18);
        assert_eq!(levels[0], 1000);
        assert_eq!(levels[2], 10_000);
        assert_eq!(levels[16], 3_600_000);
        assert_eq!(levels[17], 7_200_000);
        assert_eq!(
            parse_delay_levels("200ms 1s 1d").expect("ok"),
            [200, 1000, 86_400_000]
        );
        for bad in ["", "5", "1x", "-1s", "99999d"] {
            assert!(parse_delay_levels(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stages_halve_what_is_left() {
        let check =
            |remaining: i64, stage: i32| assert_eq!(stage_for(remaining), stage, "{remaining}");
        check(0, 0);
        check(999, 0);
        check(1000, 1);
        check(1999, 1);
        check(2000, 2);
        check(3999, 2);
        check(4000, 3);
        check(259_200_000, 18);
        assert_eq!(stages_for(259_200_000), 19);
        assert_eq!(stage_delay(18), 131_072_000);
        // Every stage waits at most what is left, and more than half of it.
        for remaining in [1000, 1500, 2047, 65_000, 259_199_999] {
            let d = stage_delay(stage_for(remaining));
            assert!(d <= remaining && 2 * d > remaining, "{remaining}");
        }
    }

    #[test]
    fn sources_round_trip() {
        for src in [
            Source {
                lane: Lane::Level(2),
                offset: 17,
            },
            Source {
                lane: Lane::Stage(18),
                offset: 0,
            },
        ] {
            assert_eq!(Source::parse(&src.encode()), Some(src));
        }
        for bad in ["", "L", "X1:2", "L1", "L:2", "Lx:2", "T1:y"] {
            assert_eq!(Source::parse(bad), None, "{bad:?}");
        }
    }
}
