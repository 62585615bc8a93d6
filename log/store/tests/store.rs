//! Store behaviour through the public API: appends and reads, restarts, damaged files,
//! retention and a full disk.

use bytes::Bytes;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tributary_store::record::{self, NewMessage};
use tributary_store::{
    AcceptAll, CorruptionPolicy, DiskUsage, FlushMode, GetStatus, MessageFilter, MessageStore,
    StoreConfig, StoreError,
};

const SEGMENT: u64 = 64 * 1024;

fn config(dir: &Path) -> StoreConfig {
    let mut c = StoreConfig::new(dir);
    c.commitlog_segment_bytes = SEGMENT;
    c.max_message_bytes = 16 * 1024;
    c.consume_queue_units_per_file = 64;
    c.index_slots = 101;
    c.index_entries = 500;
    c.flush_interval_ms = 20;
    c.flush_consume_queue_interval_ms = 20;
    c
}

/// SYNC flush: once `fill` returns every byte is flushed, so no flusher holds a segment while
/// a test asks retention to delete it (a holder defers deletion by design).
fn synced(dir: &Path) -> StoreConfig {
    let mut c = config(dir);
    c.flush_mode = FlushMode::Sync;
    c
}

fn msg(topic: &str, queue: i32, i: u64) -> NewMessage {
    let key = format!("key-{i}");
    let tag = if i.is_multiple_of(2) { "even" } else { "odd" };
    NewMessage::new(
        topic,
        queue,
        format!("body-{i}-{}", "x".repeat((i % 300) as usize)),
    )
    .with_properties([
        ("KEYS", key.as_str()),
        ("TAGS", tag),
        ("UNIQ_KEY", &format!("U{i:08}")),
    ])
}

fn body_of(i: u64) -> Vec<u8> {
    format!("body-{i}-{}", "x".repeat((i % 300) as usize)).into_bytes()
}

/// Appends `n` messages round-robin over 3 queues of "orders"; returns their physical offsets.
fn fill(store: &MessageStore, from: u64, n: u64) -> Vec<u64> {
    let out = (from..from + n)
        .map(|i| {
            let (r, d) = store
                .append(&msg("orders", (i % 3) as i32, i))
                .expect("append");
            d.wait().expect("durable");
            r.physical_offset
        })
        .collect();
    assert!(
        store.wait_dispatched(Duration::from_secs(10)),
        "dispatcher caught up"
    );
    out
}

/// Polls `check` every 5 ms until it holds; fails the test after 30 s.
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Appends `batch` in one call, waits until it is acknowledged, and checks that every record
/// reads back with its body. Returns the results and the acknowledged end offset.
fn append_and_read_back(
    store: &MessageStore,
    batch: &[NewMessage],
) -> (Vec<tributary_store::AppendResult>, u64) {
    let (results, durable) = store.append_batch(batch).expect("append batch");
    durable.wait().expect("durable");
    for (r, m) in results.iter().zip(batch) {
        let back = store
            .read_message(r.physical_offset)
            .expect("read")
            .expect("present");
        assert_eq!(back.body, m.body, "record at {}", r.physical_offset);
    }
    (results, durable.end_offset())
}

/// [`append_and_read_back`], returning each record's offset with its body.
fn append_and_note(store: &MessageStore, batch: &[NewMessage]) -> Vec<(u64, Bytes)> {
    let (results, _) = append_and_read_back(store, batch);
    noted(&results, batch)
}

/// Each appended record's offset with its body.
fn noted(results: &[tributary_store::AppendResult], batch: &[NewMessage]) -> Vec<(u64, Bytes)> {
    results
        .iter()
        .zip(batch)
        .map(|(r, m)| (r.physical_offset, m.body.clone()))
        .collect()
}

/// Crashes `store`, reopens it with `config`, and checks that every record of `written`
/// reads back and the consume queues hold them all.
fn crash_and_find_all(
    store: MessageStore,
    config: StoreConfig,
    written: &[(u64, Bytes)],
) -> MessageStore {
    crash(store);
    let store = MessageStore::open(config).expect("reopen after a crash");
    assert!(store.recovery_report().abnormal);
    for (off, body) in written {
        let back = store.read_message(*off).expect("read").expect("present");
        assert_eq!(&back.body, body, "record at {off}");
    }
    assert_eq!(count_all(&store), written.len());
    assert_clean(&store);
    store
}

/// Messages in queues 0..3 of "orders".
fn count_all(store: &MessageStore) -> usize {
    (0..3).map(|q| read_all(store, q).len()).sum()
}

/// Waits for the dispatch, checks the consume queues against the log, and counts `expected`
/// messages in queues 0..3 of "orders".
fn assert_dispatched_and_counted(store: &MessageStore, expected: usize) {
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    assert_clean(store);
    assert_eq!(count_all(store), expected);
}

fn read_all(store: &MessageStore, queue: i32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = store.min_offset("orders", queue);
    loop {
        let r = store.get_messages("orders", queue, off, 32, 1 << 20, &AcceptAll);
        if r.status != GetStatus::Found {
            break;
        }
        for m in &r.messages {
            out.push(m.decode().expect("decode").body.to_vec());
        }
        off = r.next_begin_offset;
    }
    out
}

fn assert_clean(store: &MessageStore) {
    let v = store.verify().expect("verify");
    assert_eq!(v.problem_count, 0, "store inconsistent: {:?}", v.problems);
}

#[test]
fn appends_read_back_by_queue_offset_key_and_time_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let phys = fill(&store, 0, 600);
    assert!(
        store.stats().segment_rolls.load(Ordering::Relaxed) >= 3,
        "the log rolled across segments"
    );
    for q in 0..3 {
        let bodies = read_all(&store, q);
        let expected: Vec<_> = (0..600)
            .filter(|i| i % 3 == q as u64)
            .map(body_of)
            .collect();
        assert_eq!(bodies, expected, "queue {q} reads back in order");
        assert_eq!(store.max_offset("orders", q), 200);
    }
    let m = store
        .read_message(phys[123])
        .expect("read")
        .expect("present");
    assert_eq!(m.body.as_ref(), body_of(123).as_slice());
    assert_eq!((m.queue_id, m.queue_offset), (0, 41));
    let by_key = store
        .query_by_key("orders", "key-77", 10, 0, i64::MAX)
        .expect("query");
    assert_eq!(by_key.len(), 1);
    assert_eq!(by_key[0].body.as_ref(), body_of(77).as_slice());
    let by_uniq = store
        .query_by_key("orders", "U00000078", 10, 0, i64::MAX)
        .expect("query");
    assert_eq!(by_uniq.len(), 1);
    assert!(
        store
            .query_by_key("orders", "key-9999", 10, 0, i64::MAX)
            .expect("query")
            .is_empty()
    );
    assert!(
        store
            .query_by_key("other", "key-77", 10, 0, i64::MAX)
            .expect("query")
            .is_empty()
    );
    // Offsets by time: everything was stored at or after t0, nothing after now.
    assert_eq!(store.offset_by_time("orders", 1, t0 - 60_000), 0);
    assert_eq!(store.offset_by_time("orders", 1, i64::MAX), 200);
    let mid = store.message_store_time("orders", 1, 100).expect("time");
    let found = store.offset_by_time("orders", 1, mid);
    assert!(found <= 100 && store.message_store_time("orders", 1, found) == Some(mid));
    assert_clean(&store);
}

#[test]
fn pull_statuses_filters_and_byte_limits() {
    struct Tag(i64);
    impl MessageFilter for Tag {
        fn matches_tags_code(&self, code: i64) -> bool {
            code == self.0
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    assert_eq!(
        store
            .get_messages("orders", 0, 0, 32, 1 << 20, &AcceptAll)
            .status,
        GetStatus::NoMatchedLogicQueue
    );
    fill(&store, 0, 30);
    let r = store.get_messages(
        "orders",
        0,
        0,
        32,
        1 << 20,
        &Tag(record::java_string_hash("even") as i64),
    );
    assert_eq!(r.status, GetStatus::Found);
    assert!(
        r.messages
            .iter()
            .all(|m| m.decode().expect("decode").property("TAGS") == Some("even"))
    );
    assert_eq!(r.messages.len(), 5);
    let none = store.get_messages("orders", 0, 0, 32, 1 << 20, &Tag(12345));
    assert_eq!(
        (none.status, none.next_begin_offset),
        (GetStatus::NoMatchedMessage, 10)
    );
    let small = store.get_messages("orders", 0, 0, 32, 200, &AcceptAll);
    assert_eq!(
        small.messages.len(),
        1,
        "at least one message, then the byte limit"
    );
    assert_eq!(
        store
            .get_messages("orders", 0, 10, 32, 1 << 20, &AcceptAll)
            .status,
        GetStatus::OffsetOverflowOne
    );
    let bad = store.get_messages("orders", 0, 50, 32, 1 << 20, &AcceptAll);
    assert_eq!(
        (bad.status, bad.next_begin_offset),
        (GetStatus::OffsetOverflowBadly, 10)
    );
    struct Key(&'static str);
    impl MessageFilter for Key {
        fn matches_tags_code(&self, _: i64) -> bool {
            true
        }
        fn filters_properties(&self) -> bool {
            true
        }
        fn matches_properties(&self, properties: &str) -> bool {
            record::property(properties, "KEYS") == Some(self.0)
        }
    }
    let by_props = store.get_messages("orders", 0, 0, 32, 1 << 20, &Key("key-6"));
    assert_eq!(by_props.status, GetStatus::Found);
    assert_eq!(by_props.messages.len(), 1);
    assert_eq!(
        by_props.messages[0].decode().expect("decode").body.as_ref(),
        body_of(6).as_slice()
    );
    let bytes = store
        .get_messages("orders", 0, 0, 1, 1 << 20, &AcceptAll)
        .messages
        .remove(0)
        .into_bytes();
    assert_eq!(
        record::decode(&bytes, true).expect("decode").body.as_ref(),
        body_of(0).as_slice()
    );
}

#[test]
fn limits_give_errors_not_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    let big = NewMessage::new("t", 0, vec![0u8; 20_000]);
    assert!(matches!(
        store.append(&big),
        Err(StoreError::MessageTooLarge { limit: 16384, .. })
    ));
    let err =
        MessageStore::open(config(dir.path())).expect_err("second open of the same directory");
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    let mut bad = config(dir.path());
    bad.retention.delete_when = "4am".into();
    assert!(matches!(
        MessageStore::open(bad),
        Err(StoreError::Config(_))
    ));
}

#[test]
fn clean_restart_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.flush_mode = FlushMode::Sync;
    let store = MessageStore::open(c.clone()).expect("open");
    fill(&store, 0, 300);
    store.shutdown().expect("shutdown");
    assert!(
        store.append(&msg("orders", 0, 0)).is_err(),
        "a shut-down store refuses appends"
    );
    drop(store);
    assert!(
        !dir.path().join("abort").exists(),
        "clean shutdown removes the abort marker"
    );
    let store = MessageStore::open(c).expect("reopen");
    let rep = store.recovery_report();
    assert!(!rep.abnormal);
    assert_eq!(
        (
            rep.records_checked,
            rep.redispatched_records,
            rep.truncated_bytes
        ),
        (0, 0, 0)
    );
    let (r, _) = store.append(&msg("orders", 0, 300)).expect("append");
    assert_eq!(r.queue_offset, 100, "queue offsets continue after restart");
    store.wait_dispatched(Duration::from_secs(10));
    assert_eq!(read_all(&store, 0).len(), 101);
    assert_clean(&store);
}

#[test]
fn sync_mode_acknowledges_only_flushed_bytes_from_many_threads() {
    // With gathering (the default) and with fsyncs back to back.
    for gather_max_us in [StoreConfig::default().sync_gather_max_us, 0] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = synced(dir.path());
        c.sync_gather_max_us = gather_max_us;
        acknowledged_only_when_flushed(c);
    }
}

fn acknowledged_only_when_flushed(c: StoreConfig) {
    let store = Arc::new(MessageStore::open(c).expect("open"));
    let acked = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (store, acked) = (store.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0..100u64 {
                    let (_, d) = store
                        .append(&msg("orders", t % 3, t as u64 * 1000 + i))
                        .expect("append");
                    let end = d.end_offset();
                    d.wait().expect("durable");
                    assert!(
                        store.commitlog_flushed_offset() >= end,
                        "acknowledged before its fsync returned"
                    );
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer");
    }
    assert_eq!(acked.load(Ordering::Relaxed), 800);
    assert!(store.stats().group_commits.load(Ordering::Relaxed) >= 1);
}

#[test]
fn sync_lone_writer_never_waits_for_a_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = synced(dir.path());
    assert!(c.sync_gather_max_us > 0, "gathering is on by default");
    let store = MessageStore::open(c).expect("open");
    for i in 0..200 {
        let (_, d) = store.append(&msg("orders", 0, i)).expect("append");
        d.wait().expect("durable");
    }
    let stats = store.stats();
    assert!(stats.flush_micros.count() >= 1);
    // Each of its appends is the one the flusher expects after the last fsync.
    assert_eq!(stats.group_commit_gathers.load(Ordering::Relaxed), 0);
}

#[test]
fn sync_batches_across_segment_rolls_are_written_whole_and_survive_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(synced(dir.path())).expect("open");
    // Each batch (~60 KB) is about a segment (64 KiB): most straddle a roll, so a batch is
    // written as two vectored runs around the blank record.
    let mut acked = Vec::new();
    for b in 0..12u64 {
        let batch: Vec<NewMessage> = (0..40)
            .map(|j| {
                let i = b * 40 + j;
                let body = format!("{i}-{}", "y".repeat(1200 + (i % 300) as usize));
                NewMessage::new("orders", (i % 3) as i32, body)
            })
            .collect();
        let (results, end) = append_and_read_back(&store, &batch);
        assert!(store.commitlog_flushed_offset() >= end);
        acked.extend(results.iter().map(|r| r.physical_offset));
    }
    assert!(store.stats().segment_rolls.load(Ordering::Relaxed) >= 8);
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    assert_clean(&store);
    crash(store);
    let store = MessageStore::open(synced(dir.path())).expect("reopen after a crash");
    assert!(store.recovery_report().abnormal);
    for off in &acked {
        assert!(
            store.read_message(*off).expect("read").is_some(),
            "acknowledged record at {off} lost"
        );
    }
    let total = count_all(&store);
    assert_eq!(total, acked.len());
    assert_clean(&store);
}

/// ASYNC appends of `file_write_min_bytes` or more go through the file, smaller ones into the
/// mapping; interleaved across segment rolls, every record reads back from the mapping, the
/// queues are dense, and a clean restart and a crash after a flush keep them all.
#[test]
fn async_batches_written_through_the_file_mix_with_mapped_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = |dir: &Path| {
        let mut c = config(dir);
        c.file_write_min_bytes = 8 * 1024;
        c
    };
    let store = MessageStore::open(cfg(dir.path())).expect("open");
    let mut written = Vec::new();
    for b in 0..60u64 {
        // Batches of 1..=12 records of ~1.3 KB: the small ones are copied into the mapping,
        // the large ones written through the file.
        let batch: Vec<NewMessage> = (0..1 + b % 12)
            .map(|j| {
                let i = b * 100 + j;
                let body = format!("{i}-{}", "z".repeat(1200 + (i % 200) as usize));
                NewMessage::new("orders", (i % 3) as i32, body)
            })
            .collect();
        written.extend(append_and_note(&store, &batch));
    }
    assert!(store.stats().segment_rolls.load(Ordering::Relaxed) >= 5);
    assert_dispatched_and_counted(&store, written.len());
    store.shutdown().expect("shutdown");
    drop(store);

    let store = MessageStore::open(cfg(dir.path())).expect("reopen");
    assert!(!store.recovery_report().abnormal);
    assert_eq!(count_all(&store), written.len());
    // One more large batch, flushed, then a crash: recovery checks every record's CRC.
    let batch: Vec<NewMessage> = (0..10)
        .map(|i| NewMessage::new("orders", i % 3, format!("late-{i}-{}", "w".repeat(1500))))
        .collect();
    let (results, durable) = store.append_batch(&batch).expect("append batch");
    wait_until("the periodic flush covers the batch", || {
        store.commitlog_flushed_offset() >= durable.end_offset()
    });
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    written.extend(noted(&results, &batch));
    crash_and_find_all(store, cfg(dir.path()), &written);
}

#[test]
fn sync_appends_into_prewritten_segments_read_back_across_rolls_and_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = |dir: &Path| {
        let mut c = synced(dir);
        c.prewrite_segments = true;
        c
    };
    let store = MessageStore::open(cfg(dir.path())).expect("open");
    // The first segment is prewritten whole before anything is appended to it.
    wait_until("the first segment is prewritten", || {
        store.stats().prewritten_bytes.load(Ordering::Relaxed) >= SEGMENT
    });
    let mut written = Vec::new();
    for b in 0..80u64 {
        let batch: Vec<NewMessage> = (0..1 + b % 4)
            .map(|j| {
                let i = b * 10 + j;
                NewMessage::new(
                    "orders",
                    (i % 3) as i32,
                    format!("{i}-{}", "p".repeat(900 + (i % 300) as usize)),
                )
            })
            .collect();
        written.extend(append_and_note(&store, &batch));
    }
    assert!(store.stats().segment_rolls.load(Ordering::Relaxed) >= 3);
    assert_dispatched_and_counted(&store, written.len());
    // Every append was acknowledged after its fsync: a crash keeps them all, and recovery
    // finds the end of the log in front of the prewritten zeros.
    let store = crash_and_find_all(store, cfg(dir.path()), &written);
    let (_, end) = append_and_read_back(&store, &[NewMessage::new("orders", 0, "after the crash")]);
    assert!(end > written.last().expect("written").0);
}

#[test]
fn sync_batch_of_more_records_than_one_pwritev_takes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = synced(dir.path());
    c.commitlog_segment_bytes = 1 << 20;
    let store = MessageStore::open(c).expect("open");
    // 3000 small records land in one segment: more buffers than one pwritev call accepts.
    let batch: Vec<NewMessage> = (0..3000u64)
        .map(|i| NewMessage::new("orders", (i % 3) as i32, format!("b{i}")))
        .collect();
    let (results, durable) = store.append_batch(&batch).expect("append batch");
    durable.wait().expect("durable");
    assert_eq!(store.stats().segment_rolls.load(Ordering::Relaxed), 1);
    for (r, m) in results.iter().zip(&batch).step_by(97) {
        let back = store.read_message(r.physical_offset).expect("read");
        assert_eq!(back.expect("present").body, m.body);
    }
    assert!(store.wait_dispatched(Duration::from_secs(10)));
    assert_eq!(store.max_offset("orders", 0), 1000);
    assert_clean(&store);
}

/// Wakes the test thread when a future is woken, and counts the wake-ups.
struct ThreadWaker {
    thread: std::thread::Thread,
    wakes: AtomicU64,
}

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.thread.unpark();
    }
}

#[test]
fn sync_durables_awaited_as_futures_complete_after_their_fsync() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(synced(dir.path())).expect("open");
    let waker = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        wakes: AtomicU64::new(0),
    });
    let task_waker = Waker::from(waker.clone());
    let mut cx = Context::from_waker(&task_waker);
    // Many appends in flight at once, polled as one task polls its futures: each completes only
    // once the durable offset covers it, and pending ones are woken by the flusher.
    let mut pending: Vec<_> = (0..300u64)
        .map(|i| {
            store
                .append(&msg("orders", (i % 3) as i32, i))
                .expect("append")
                .1
        })
        .collect();
    let mut done = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !pending.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "futures never completed"
        );
        pending.retain_mut(|d| match Pin::new(&mut *d).poll(&mut cx) {
            Poll::Ready(r) => {
                r.expect("durable");
                assert!(
                    store.commitlog_flushed_offset() >= d.end_offset(),
                    "future completed before its fsync returned"
                );
                done += 1;
                false
            }
            Poll::Pending => true,
        });
        if !pending.is_empty() {
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
    assert_eq!(done, 300);
    // A future polled after completion stays complete.
    let (_, mut d) = store.append(&msg("orders", 0, 300)).expect("append");
    d.wait().expect("durable");
    assert!(matches!(
        Pin::new(&mut d).poll(&mut cx),
        Poll::Ready(Ok(()))
    ));
}

/// Finds the first record whose physical offset is >= `at`, via the public API.
fn record_at_or_after(store: &MessageStore, at: u64) -> (u64, u32) {
    let (off, m) = store.next_record(at).expect("read").expect("a record");
    (off, m.total_size as u32)
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join("commitlog").join(format!("{base:020}"))
}

/// Simulates a crash: the store's threads stop and its files stay as they are (no checkpoint
/// written at the end, the abort marker stays).
fn crash(store: MessageStore) {
    store.abandon();
}

/// Writes `n` messages, then one more, and leaves the directory as a crash during that last
/// write would: the checkpoint from before it, and the abort marker. Returns the last record's
/// offset and size; the caller damages it.
fn crashed_during_last_write(dir: &Path, n: u64) -> (u64, u32) {
    let store = MessageStore::open(config(dir)).expect("open");
    fill(&store, 0, n);
    store.shutdown().expect("shutdown");
    drop(store);
    let lagging = fs::read(dir.join("checkpoint")).expect("checkpoint");
    let store = MessageStore::open(config(dir)).expect("reopen");
    let last = fill(&store, n, 1)[0];
    let (_, size) = record_at_or_after(&store, last);
    store.shutdown().expect("shutdown");
    drop(store);
    fs::write(dir.join("checkpoint"), lagging).expect("restore checkpoint");
    fs::write(dir.join("abort"), b"").expect("abort");
    (last, size)
}

#[test]
fn torn_tail_is_truncated_and_everything_before_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (last, size) = crashed_during_last_write(dir.path(), 99);
    // The last record's second half never reached the file.
    let seg = last - last % SEGMENT;
    let path = segment_path(dir.path(), seg);
    let mut bytes = fs::read(&path).expect("read");
    let pos = (last - seg) as usize;
    bytes[pos + size as usize / 2..pos + size as usize].fill(0);
    fs::write(&path, &bytes).expect("write");
    let store = MessageStore::open(config(dir.path())).expect("reopen after a torn write");
    let rep = store.recovery_report().clone();
    assert!(rep.abnormal);
    assert_eq!(rep.torn_at, Some(last));
    assert!(
        rep.truncated_bytes > 0 && rep.truncated_bytes <= size as u64 / 2 + 1,
        "{rep:?}"
    );
    assert_eq!(store.commitlog_max_offset(), last);
    let total = count_all(&store);
    assert_eq!(total, 99, "every record before the torn one is kept");
    assert!(store.read_message(last).expect("read").is_none());
    // The log continues from the truncation point.
    let (r, _) = store.append(&msg("orders", 0, 1000)).expect("append");
    assert_eq!(r.physical_offset, last);
    store.wait_dispatched(Duration::from_secs(10));
    assert_clean(&store);
}

#[test]
fn segment_file_truncated_mid_record_recovers_the_intact_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (last, size) = crashed_during_last_write(dir.path(), 60);
    // Cut the file itself in the middle of the last record, as an interrupted copy would.
    let seg = last - last % SEGMENT;
    let f = OpenOptions::new()
        .write(true)
        .open(segment_path(dir.path(), seg))
        .expect("open");
    f.set_len(last - seg + size as u64 / 3).expect("truncate");
    drop(f);
    let store = MessageStore::open(config(dir.path())).expect("recover a truncated segment");
    assert_eq!(store.recovery_report().torn_at, Some(last));
    assert_eq!(count_all(&store), 60);
    assert_clean(&store);
}

#[test]
fn flipped_body_byte_in_the_middle_is_reported_never_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    let phys = fill(&store, 0, 200);
    let (victim, size) = record_at_or_after(&store, phys[150]);
    crash(store);
    // Flip one byte in the body of record 150.
    let seg = victim - victim % SEGMENT;
    let path = segment_path(dir.path(), seg);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open segment");
    let pos = victim - seg + size as u64 - 60;
    let mut b = [0u8; 1];
    use std::io::{Read, Seek, SeekFrom, Write};
    f.seek(SeekFrom::Start(pos)).expect("seek");
    f.read_exact(&mut b).expect("read");
    f.seek(SeekFrom::Start(pos)).expect("seek");
    f.write_all(&[b[0] ^ 0x5A]).expect("write");
    drop(f);
    // Default policy: refuse to open, name the offset, change nothing.
    let before = fs::read(&path).expect("read");
    let err = MessageStore::open(config(dir.path())).expect_err("corruption must be reported");
    match &err {
        StoreError::Corrupt { offset, reason, .. } => {
            assert_eq!(*offset, victim, "{err}");
            assert!(reason.contains("CRC"), "{reason}");
            assert!(reason.contains("valid records follow"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other}"),
    }
    assert_eq!(
        fs::read(&path).expect("read"),
        before,
        "a refused open changes nothing"
    );
    // Quarantine policy: opens, keeps everything before the damage, moves the rest aside.
    let mut c = config(dir.path());
    c.on_corruption = CorruptionPolicy::Quarantine;
    let store = MessageStore::open(c).expect("open with quarantine");
    let damage = store
        .recovery_report()
        .damage
        .clone()
        .expect("damage reported");
    assert_eq!(damage.offset, victim);
    assert!(damage.quarantined_to.exists());
    assert!(damage.quarantined_bytes >= size as u64);
    let total = count_all(&store);
    assert_eq!(total, 150, "records before the damage are kept");
    for i in [0u64, 75, 149] {
        let m = store
            .read_message(phys[i as usize])
            .expect("read")
            .expect("present");
        assert_eq!(m.body.as_ref(), body_of(i).as_slice());
    }
    assert_clean(&store);
}

#[test]
fn missing_checkpoint_and_stale_abort_recover_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    fill(&store, 0, 250);
    store.shutdown().expect("shutdown");
    drop(store);
    fs::remove_file(dir.path().join("checkpoint")).expect("delete checkpoint");
    let store = MessageStore::open(config(dir.path())).expect("open without checkpoint");
    let rep = store.recovery_report().clone();
    assert!(rep.abnormal && rep.checkpoint.is_none());
    assert_eq!(
        rep.records_checked, 250,
        "every record CRC-checked from the start"
    );
    assert_eq!(rep.truncated_bytes, 0);
    assert_eq!(count_all(&store), 250);
    assert_clean(&store);
    store.shutdown().expect("shutdown");
    drop(store);
    // A stale abort marker after a clean shutdown: abnormal recovery finds nothing wrong.
    fs::write(dir.path().join("abort"), b"").expect("abort");
    let store = MessageStore::open(config(dir.path())).expect("open with stale abort");
    assert!(store.recovery_report().abnormal);
    assert_eq!(store.recovery_report().truncated_bytes, 0);
    assert_eq!(count_all(&store), 250);
    assert_clean(&store);
}

#[test]
fn damaged_consume_queue_and_index_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    fill(&store, 0, 120);
    store.shutdown().expect("shutdown");
    drop(store);
    // Lose the consume queues and index entirely, and the checkpoint with them.
    fs::remove_dir_all(dir.path().join("consumequeue")).expect("rm cq");
    fs::remove_dir_all(dir.path().join("index")).expect("rm index");
    fs::remove_file(dir.path().join("checkpoint")).expect("rm checkpoint");
    let store = MessageStore::open(config(dir.path())).expect("reopen");
    assert_eq!(store.recovery_report().redispatched_records, 120);
    assert_eq!(
        store
            .query_by_key("orders", "key-5", 10, 0, i64::MAX)
            .expect("query")
            .len(),
        1
    );
    assert_clean(&store);
}

#[test]
fn garbage_segment_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::create_dir_all(dir.path().join("commitlog")).expect("mkdir");
    fs::write(segment_path(dir.path(), 0), vec![0xAB; SEGMENT as usize]).expect("write");
    let err = MessageStore::open(config(dir.path())).expect_err("garbage is not a log");
    assert!(
        matches!(err, StoreError::Corrupt { offset: 0, .. }),
        "{err}"
    );
    fs::write(segment_path(dir.path(), 0), vec![0u8; 100]).expect("write");
    fs::write(
        segment_path(dir.path(), SEGMENT),
        vec![0xAB; SEGMENT as usize],
    )
    .expect("write");
    let err = MessageStore::open(config(dir.path())).expect_err("a short segment before data");
    assert!(matches!(err, StoreError::Layout { .. }), "{err}");
}

/// A disk whose use the test sets.
#[derive(Debug, Default)]
struct FakeDisk(AtomicU64);
impl FakeDisk {
    fn set(&self, ratio: f64) {
        self.0.store((ratio * 1e6) as u64, Ordering::Relaxed);
    }
}
impl DiskUsage for FakeDisk {
    fn used_ratio(&self, _: &Path) -> std::io::Result<f64> {
        Ok(self.0.load(Ordering::Relaxed) as f64 / 1e6)
    }
}

fn age_segments(dir: &Path, keep_newest: usize, hours: u64) {
    let mut files: Vec<_> = fs::read_dir(dir.join("commitlog"))
        .expect("ls")
        .map(|e| e.expect("e").path())
        .collect();
    files.sort();
    let old = SystemTime::now() - Duration::from_secs(hours * 3600);
    for p in &files[..files.len().saturating_sub(keep_newest)] {
        OpenOptions::new()
            .write(true)
            .open(p)
            .expect("open")
            .set_modified(old)
            .expect("set mtime");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

#[test]
fn retention_deletes_expired_segments_at_the_configured_hour_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FakeDisk::default());
    disk.set(0.3);
    let store = MessageStore::open_with(synced(dir.path()), disk.clone()).expect("open");
    fill(&store, 0, 1500);
    let segments = fs::read_dir(dir.path().join("commitlog"))
        .expect("ls")
        .count();
    assert!(segments >= 5);
    age_segments(dir.path(), 2, 80);
    let r = store.run_retention(now_ms(), 5).expect("retention");
    assert_eq!(
        r.segments_deleted, 0,
        "not the delete hour and the disk is not filling"
    );
    let r = store.run_retention(now_ms(), 4).expect("retention");
    assert!(r.segments_deleted >= 2, "{r:?}");
    let min = store.commitlog_min_offset();
    assert!(min > 0);
    // Queues moved their start past the deleted data; reads there say so.
    let q0_min = store.min_offset("orders", 0);
    assert!(q0_min > 0);
    let r = store.get_messages("orders", 0, 0, 32, 1 << 20, &AcceptAll);
    assert_eq!(
        (r.status, r.next_begin_offset),
        (GetStatus::OffsetTooSmall, q0_min)
    );
    let tail = read_all(&store, 0);
    assert_eq!(tail.len() as i64, 500 - q0_min);
    assert_eq!(tail.last().expect("tail"), &body_of(1497));
    assert_clean(&store);
}

#[test]
fn retention_never_deletes_a_segment_a_reader_holds_until_forced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FakeDisk::default());
    disk.set(0.3);
    let mut c = synced(dir.path());
    c.retention.forcible_delete_interval_ms = 60_000;
    let store = MessageStore::open_with(c, disk).expect("open");
    fill(&store, 0, 600);
    age_segments(dir.path(), 1, 100);
    let held = store
        .get_messages("orders", 0, 0, 1, 1 << 20, &AcceptAll)
        .messages
        .remove(0);
    let now = now_ms();
    let r = store.run_retention(now, 4).expect("retention");
    assert!(r.deferred_in_use && r.segments_deleted == 0, "{r:?}");
    assert_eq!(
        held.decode().expect("still readable").body.as_ref(),
        body_of(0).as_slice()
    );
    let r = store.run_retention(now + 61_000, 4).expect("retention");
    assert!(
        r.segments_deleted >= 1,
        "deleted after the forcible interval: {r:?}"
    );
    assert_eq!(
        held.decode()
            .expect("the mapping outlives the file")
            .body
            .as_ref(),
        body_of(0).as_slice()
    );
    drop(held);
}

#[test]
fn full_disk_refuses_writes_and_forces_cleaning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = Arc::new(FakeDisk::default());
    disk.set(0.5);
    let store = MessageStore::open_with(synced(dir.path()), disk.clone()).expect("open");
    fill(&store, 0, 600);
    // Young segments, disk past the hard limit: writes refused with a clear error, and the
    // oldest segments deleted even though they have not expired.
    disk.set(0.95);
    let r = store.run_retention(now_ms(), 12).expect("retention");
    assert!(r.writes_refused);
    assert!(r.segments_deleted >= 1, "forced cleaning: {r:?}");
    let err = store
        .append(&msg("orders", 0, 9999))
        .expect_err("disk full");
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err}");
    assert!(err.to_string().contains("disk_hard_ratio"), "{err}");
    // Acknowledged data that remain are untouched; reads still work.
    assert!(!read_all(&store, 1).is_empty());
    disk.set(0.6);
    let r = store.run_retention(now_ms(), 12).expect("retention");
    assert!(!r.writes_refused);
    store
        .append(&msg("orders", 0, 10_000))
        .expect("writes accepted again");
    store.wait_dispatched(Duration::from_secs(10));
    assert_clean(&store);
}

/// A record that cannot be dispatched (its consume queue cannot be created) holds the queues
/// behind it, nothing is skipped, and dispatching resumes by itself once the cause is gone.
#[test]
fn a_failed_dispatch_is_retried_and_skips_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MessageStore::open(config(dir.path())).expect("open");
    fill(&store, 0, 3);
    // A file where the topic's consume queue directory must go.
    let blocker = dir.path().join("consumequeue").join("blocked");
    fs::write(&blocker, b"in the way").expect("blocker");
    let (blocked, d) = store
        .append(&NewMessage::new("blocked", 0, "waits"))
        .expect("append");
    d.wait().expect("durable");
    let (behind, d) = store.append(&msg("orders", 0, 3)).expect("append");
    d.wait().expect("durable");

    wait_until("the failure is reported and retried", || {
        store.stats().dispatch_errors.load(Ordering::Relaxed) >= 2
    });
    assert_eq!(
        store.dispatched_offset(),
        blocked.physical_offset,
        "dispatching stops at the record that fails, and goes no further"
    );
    assert_eq!(
        store.max_offset("orders", 0),
        1,
        "nothing behind it is dispatched"
    );

    fs::remove_file(&blocker).expect("remove blocker");
    assert!(
        store.wait_dispatched(Duration::from_secs(30)),
        "dispatch resumed"
    );
    let r = store.get_messages("blocked", 0, 0, 8, 1 << 20, &AcceptAll);
    assert_eq!(r.status, GetStatus::Found);
    assert_eq!(r.messages.len(), 1);
    assert_eq!(store.max_offset("orders", 0), 2);
    assert!(behind.physical_offset > blocked.physical_offset);
    assert_eq!(read_all(&store, 0), vec![body_of(0), body_of(3)]);
    store.shutdown().expect("shutdown");
}
