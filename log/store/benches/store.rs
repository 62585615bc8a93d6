//! Micro-benchmarks of the store's hot paths: append (single and batched, ASYNC flush), record
//! encoding and parsing alone, and reading a pull of 32 messages. Each is kept short so that
//! `cargo bench -p tributary-store` finishes in about a minute on two cores.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tempfile::TempDir;
use tributary_store::{AcceptAll, FlushMode, MessageStore, NewMessage, StoreConfig, record};

const TOPIC: &str = "BenchTopic";
const QUEUES: i32 = 8;
const BODY: usize = 1024;
const BATCH: usize = 32;
/// Small segments: the append benches write a few GB in total, and rolls are part of the cost.
const SEGMENT_BYTES: u64 = 64 << 20;
/// Messages preloaded into queue 0 for the read bench.
const READ_PRELOAD: i64 = 32 * 1024;
const SAMPLES: usize = 10;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(2);

fn message(seq: u64, queue_id: i32) -> NewMessage {
    let key = format!("key-{seq}");
    let tag = format!("tag-{}", seq % 4);
    NewMessage::new(TOPIC, queue_id, vec![b'x'; BODY])
        .with_properties([("KEYS", key.as_str()), ("TAGS", tag.as_str())])
}

fn open_store() -> (TempDir, MessageStore) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let config = StoreConfig {
        commitlog_segment_bytes: SEGMENT_BYTES,
        flush_mode: FlushMode::Async,
        ..StoreConfig::new(dir.path().join("store"))
    };
    let store = MessageStore::open(config).expect("open the store");
    (dir, store)
}

fn record_len(msg: &NewMessage) -> u64 {
    let host = SocketAddr::from(([127, 0, 0, 1], 10911));
    record::encode(msg, &host, usize::MAX)
        .expect("encode")
        .bytes
        .len() as u64
}

fn append(c: &mut Criterion) {
    let (_dir, store) = open_store();
    let mut group = c.benchmark_group("append");
    group
        .sample_size(SAMPLES)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASURE);
    let one = message(0, 0);
    group.throughput(Throughput::Bytes(record_len(&one)));
    let mut seq = 0u64;
    group.bench_function("1KiB async", |b| {
        b.iter_batched(
            || {
                seq += 1;
                message(seq, (seq % QUEUES as u64) as i32)
            },
            |msg| store.append(&msg).expect("append"),
            BatchSize::SmallInput,
        )
    });
    let batch: Vec<_> = (0..BATCH as u64)
        .map(|i| message(i, (i % QUEUES as u64) as i32))
        .collect();
    group.throughput(Throughput::Bytes(batch.iter().map(record_len).sum()));
    group.bench_function("batch 32x1KiB async", |b| {
        b.iter(|| store.append_batch(black_box(&batch)).expect("append"))
    });
    group.finish();
    store.shutdown().expect("shutdown");
}

fn encode(c: &mut Criterion) {
    let host = SocketAddr::from(([127, 0, 0, 1], 10911));
    let msg = message(42, 3);
    let mut group = c.benchmark_group("record");
    group
        .sample_size(SAMPLES)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASURE)
        .throughput(Throughput::Bytes(record_len(&msg)));
    group.bench_function("encode 1KiB", |b| {
        b.iter(|| record::encode(black_box(&msg), &host, 4 << 20).expect("encode"))
    });
    // What the dispatcher does with every record it follows.
    let stored = record::encode(&msg, &host, 4 << 20).expect("encode").bytes;
    group.bench_function("view 1KiB", |b| {
        b.iter(|| record::view(black_box(&stored), false).expect("view").size)
    });
    group.finish();
}

fn read(c: &mut Criterion) {
    let (_dir, store) = open_store();
    let msgs: Vec<_> = (0..READ_PRELOAD as u64).map(|i| message(i, 0)).collect();
    for chunk in msgs.chunks(BATCH) {
        store.append_batch(chunk).expect("preload");
    }
    assert!(store.wait_dispatched(Duration::from_secs(60)), "dispatch");
    let pull_bytes = BATCH as u64 * record_len(&msgs[0]);
    let mut group = c.benchmark_group("get_messages");
    group
        .sample_size(SAMPLES)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASURE)
        .throughput(Throughput::Bytes(pull_bytes));
    let mut offset = 0i64;
    let mut sink = Vec::with_capacity(BATCH * 2 * BODY);
    group.bench_function("32x1KiB", |b| {
        b.iter(|| {
            let got = store.get_messages(TOPIC, 0, offset, BATCH, 4 << 20, &AcceptAll);
            assert_eq!(got.messages.len(), BATCH);
            offset = got.next_begin_offset % READ_PRELOAD;
            // Copy the records out, as sending them to a consumer would.
            sink.clear();
            for m in &got.messages {
                sink.extend_from_slice(m.as_bytes());
            }
            black_box(&sink);
        })
    });
    group.finish();
    store.shutdown().expect("shutdown");
}

criterion_group!(benches, append, encode, read);
criterion_main!(benches);
