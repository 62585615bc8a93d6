//! `tributary bench store`: append throughput and latency of the message store for every flush
//! mode × message size × writer count, and sequential read-back, beside this machine's
//! sequential-write limit measured in the same run.
//!
//! Writers are OS threads blocking in `Durable::wait`, or (`--driver tokio`) tasks on a small
//! tokio runtime awaiting `Durable`, which is how the broker uses the store. Each writer appends
//! `--batch` messages per call and waits for the call to be acknowledged before the next.
//!
//! Units: MB = 10^6 bytes. "Log bytes" are commit log bytes (records with their headers, what
//! reaches the disk); "body bytes" are the message bodies alone.
//!
//! SYNC latencies are also given in *fsync times*: the median time of one `fdatasync` of one
//! group commit's data — one append call from every writer (`writers × batch × record size`),
//! written as the store writes it (`pwrite` into a preallocated file, then `fdatasync`; over
//! zeros written and synced before, as the store prewrites its SYNC segments with
//! `prewrite_segments`) — measured
//! just before the run on the quiet disk. It is what one fsync serving every writer costs on this
//! disk, whatever the store's group-commit policy makes of it. It is measured again after the
//! run (`unit2µs`): when the two differ much, the disk changed speed during the run (a disk
//! shared with other work does) and the run's figures are not comparable. It also bounds what closed-loop
//! writers with one call in flight each can reach: `group bytes / fsync time` (`ceilMB/s`), the
//! throughput if every fsync covered every writer and nothing else took any time.
//!
//! The run's own fsyncs are timed too (the store's `tributary_store_flush_seconds` histogram):
//! `fsyncµs` is their mean and `fs99≤µs` the bucket bound their 99th percentile falls under. No
//! append is acknowledged before the whole fsync that covers it returned, so when the run's
//! fsyncs are slower than the unit — the writers' pages being written, the CPU shared with
//! them, the disk busier — the append latencies are bounded below by the run's fsyncs, not by
//! the unit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use hdrhistogram::Histogram;
use serde::Serialize;
use tributary::workload;
use tributary_store::{AcceptAll, AppendResult, FlushMode, MessageStore, NewMessage, StoreConfig};

use crate::cli::{BenchStoreArgs, DriverArg, FlushArg};

const TOPIC: &str = "BenchTopic";
const TAGS: [&str; 4] = ["tag-0", "tag-1", "tag-2", "tag-3"];
/// Distinct bodies each writer cycles through (generating a body per append would cost more
/// than the append itself for 4 KiB messages).
const BODIES_PER_WRITER: u64 = 256;
/// Messages per pull when reading back, and the byte limit of one pull.
const READ_BATCH: usize = 32;
const READ_MAX_BYTES: usize = 4 << 20;
/// How long the read-back waits for the dispatcher to index everything.
const DISPATCH_TIMEOUT: Duration = Duration::from_secs(300);
const PROGRESS_EVERY: Duration = Duration::from_secs(3);
const MONITOR_POLL: Duration = Duration::from_millis(20);
/// Write size of the sequential-write probe.
const PROBE_CHUNK: usize = 1 << 20;
/// Small-fsync probe: this many `fdatasync`s, each after one write of this size.
const SMALL_SYNCS: usize = 50;
const SMALL_SYNC_WRITE: usize = 4096;
/// Group-commit fsync probe (the unit of SYNC latencies): this many `fdatasync`s, each after a
/// write of one group commit's data, and at most this many bytes written in all.
const GROUP_SYNCS: usize = 40;
const GROUP_SYNC_MAX_BYTES: u64 = 64 << 20;
/// Latencies are recorded in ns, from 1 ns to 60 s, with 3 significant digits.
const LATENCY_MAX_NS: u64 = 60_000_000_000;
const LATENCY_SIGFIG: u8 = 3;
const MB: f64 = 1e6;
/// A `syncfs` between runs that takes longer than this is reported on stderr.
const SETTLE_REPORT: Duration = Duration::from_millis(500);

/// Runs the whole benchmark and prints its results on stdout (progress on stderr).
pub fn store(args: BenchStoreArgs) -> Result<()> {
    validate(&args)?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("create {}", args.dir.display()))?;
    let disk = probe_disk(&args.dir, args.disk_probe_bytes)?;
    print_disk(&disk, args.json)?;
    if !args.json {
        print_header();
    }
    let default_gather = [StoreConfig::default().sync_gather_max_us];
    for &flush in &args.flush {
        // Gathering is a SYNC option: ASYNC runs once.
        let gathers = match (flush, args.sync_gather_max_us.as_slice()) {
            (FlushArg::Sync, g) if !g.is_empty() => g,
            _ => &default_gather[..],
        };
        for &size in &args.sizes {
            for &driver in &args.driver {
                for &batch in &args.batch {
                    for (&writers, &sync_gather_max_us) in cartesian(&args.writers, gathers) {
                        let plan = RunPlan {
                            flush,
                            size,
                            writers,
                            driver,
                            runtime_threads: usize::from(args.runtime_threads),
                            batch,
                            bytes: args.bytes,
                            max: Duration::from_secs(args.max_seconds),
                            queues: args.queues,
                            segment_bytes: args.segment_bytes,
                            warm_segments: args.warm_segments,
                            prewrite_segments: args.prewrite_segments,
                            cold_read: args.cold_read,
                            sync_gather_max_us,
                            sync_gather_fsync_ratio: args.sync_gather_fsync_ratio,
                        };
                        settle(&args.dir)?;
                        let fsync_unit = match flush {
                            FlushArg::Sync => Some(group_fsync(&args.dir, &plan)?),
                            FlushArg::Async => None,
                        };
                        let mut result = run(&args.dir, &plan)?;
                        if let Some(unit) = fsync_unit {
                            // Again after the run: a disk shared with other work can change
                            // speed from one second to the next, and this shows it.
                            let after = group_fsync(&args.dir, &plan)?;
                            result.set_fsync_unit(unit, after);
                        }
                        result.disk_pct = 100.0 * result.mb_s / disk.write_mb_s;
                        print_run(&result, args.json)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Every pair of `a` and `b`, `b` varying fastest.
fn cartesian<'a, A, B>(a: &'a [A], b: &'a [B]) -> impl Iterator<Item = (&'a A, &'a B)> {
    a.iter().flat_map(move |x| b.iter().map(move |y| (x, y)))
}

/// Lets the disk finish the previous run's work (writeback, and the discards of its deleted
/// files) so that it is not charged to the next run: `syncfs` on the benchmark's filesystem.
fn settle(dir: &Path) -> Result<()> {
    let started = Instant::now();
    let fs = File::open(dir).with_context(|| format!("open {}", dir.display()))?;
    rustix::fs::syncfs(&fs).with_context(|| format!("syncfs {}", dir.display()))?;
    let took = started.elapsed();
    if took > SETTLE_REPORT {
        eprintln!("  (settling the disk took {:.1} s)", took.as_secs_f64());
    }
    Ok(())
}

fn validate(args: &BenchStoreArgs) -> Result<()> {
    ensure!(
        args.sizes.iter().all(|&s| (25..=1 << 20).contains(&s)),
        "--sizes must each be between 25 bytes and 1 MiB"
    );
    ensure!(
        args.writers.iter().all(|&w| (1..=1024).contains(&w)),
        "--writers must each be between 1 and 1024"
    );
    ensure!(!args.flush.is_empty(), "--flush needs at least one mode");
    ensure!(
        !args.driver.is_empty(),
        "--driver needs at least one driver"
    );
    ensure!(
        !args.batch.is_empty() && args.batch.iter().all(|&b| (1..=10_000).contains(&b)),
        "--batch must each be between 1 and 10000"
    );
    ensure!(args.bytes >= 1 << 20, "--bytes must be at least 1 MiB");
    ensure!(args.max_seconds >= 1, "--max-seconds must be at least 1");
    ensure!(
        args.disk_probe_bytes >= PROBE_CHUNK as u64,
        "--disk-probe-bytes must be at least 1 MiB"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Disk limit

/// What the disk under `--dir` does on its own, without the store.
#[derive(Debug, Serialize)]
struct DiskLimit {
    kind: &'static str,
    probe_bytes: u64,
    /// Sequential writes of 1 MiB chunks followed by one fsync, end to end.
    write_mb_s: f64,
    /// Median `fdatasync` after a 4 KiB write that extends the file (needs a journal commit).
    fdatasync_append_us: f64,
    /// Median `fdatasync` after a 4 KiB overwrite of already allocated, synced blocks.
    fdatasync_overwrite_us: f64,
}

fn probe_disk(dir: &Path, bytes: u64) -> Result<DiskLimit> {
    let tmp = tempfile::Builder::new()
        .prefix("tributary-disk-probe-")
        .tempdir_in(dir)
        .with_context(|| format!("create a temporary directory in {}", dir.display()))?;
    eprintln!(
        "measuring the disk: {} MB sequential write + fsync, then {SMALL_SYNCS} small fdatasyncs",
        bytes / 1_000_000
    );
    let write_mb_s = sequential_write(&tmp.path().join("sequential"), bytes)?;
    let fdatasync_append_us = small_syncs(&tmp.path().join("append"), false)?;
    let fdatasync_overwrite_us = small_syncs(&tmp.path().join("overwrite"), true)?;
    tmp.close().context("remove the disk probe files")?;
    Ok(DiskLimit {
        kind: "disk",
        probe_bytes: bytes,
        write_mb_s,
        fdatasync_append_us,
        fdatasync_overwrite_us,
    })
}

/// Writes `bytes` in 1 MiB chunks and fsyncs; returns MB/s over the whole.
fn sequential_write(path: &Path, bytes: u64) -> Result<f64> {
    let chunk: Vec<u8> = (0..PROBE_CHUNK).map(|i| (i % 251) as u8).collect();
    let mut file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let started = Instant::now();
    let mut written = 0u64;
    while written < bytes {
        file.write_all(&chunk)
            .with_context(|| format!("write {}", path.display()))?;
        written += PROBE_CHUNK as u64;
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    Ok(written as f64 / MB / started.elapsed().as_secs_f64())
}

/// Median µs of one `fdatasync` after a 4 KiB write, either extending the file or overwriting
/// blocks that were allocated and synced before.
fn small_syncs(path: &Path, overwrite: bool) -> Result<f64> {
    let file = OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let block = [0x5au8; SMALL_SYNC_WRITE];
    if overwrite {
        for i in 0..SMALL_SYNCS {
            write_block(&file, path, i, &block)?;
        }
        file.sync_all()
            .with_context(|| format!("fsync {}", path.display()))?;
    }
    let mut took = Vec::with_capacity(SMALL_SYNCS);
    for i in 0..SMALL_SYNCS {
        write_block(&file, path, i, &block)?;
        let started = Instant::now();
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    took.sort_by(f64::total_cmp);
    Ok(took[took.len() / 2])
}

/// One group commit's data: one append call from every writer of `plan`, in log bytes.
fn group_bytes(plan: &RunPlan) -> Result<u64> {
    let bodies = body_ring(0, plan.size);
    let sample = bench_message(0, plan.queues, &bodies, &mut String::new());
    let config = StoreConfig::default();
    let record = tributary_store::record::encode(&sample, &config.store_host, usize::MAX)
        .context("encode a benchmark message")?;
    Ok((plan.writers * plan.batch * record.bytes.len()) as u64)
}

/// The fsync time of `plan` (the unit of its SYNC latencies, see the module docs): the median
/// of `fdatasync`s each after a `pwrite` of one group commit's data, written one after another
/// into a preallocated file as the store writes its segments: prewritten with zeros when the
/// store prewrites them (`prewrite_segments`).
fn group_fsync(dir: &Path, plan: &RunPlan) -> Result<FsyncUnit> {
    let bytes = group_bytes(plan)?;
    let rounds = (GROUP_SYNC_MAX_BYTES / bytes).clamp(3, GROUP_SYNCS as u64);
    let tmp = tempfile::Builder::new()
        .prefix("tributary-fsync-probe-")
        .tempdir_in(dir)
        .with_context(|| format!("create a temporary directory in {}", dir.display()))?;
    let path = tmp.path().join("group");
    let file = File::create_new(&path).with_context(|| format!("create {}", path.display()))?;
    rustix::fs::fallocate(
        &file,
        rustix::fs::FallocateFlags::empty(),
        0,
        bytes * rounds,
    )
    .with_context(|| format!("preallocate {}", path.display()))?;
    if store_config(dir, plan).prewrite_segments {
        // One page per write, as the store prewrites (see `MappedFile::prewrite`).
        let zeros = [0u8; 4096];
        for at in (0..bytes * rounds).step_by(zeros.len()) {
            let len = zeros.len().min((bytes * rounds - at) as usize);
            file.write_all_at(&zeros[..len], at)
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    file.sync_all()
        .with_context(|| format!("fsync {}", path.display()))?;
    let data: Vec<u8> = (0..bytes).map(|i| (i % 253) as u8).collect();
    let mut took = Vec::with_capacity(rounds as usize);
    for round in 0..rounds {
        file.write_all_at(&data, round * bytes)
            .with_context(|| format!("write {}", path.display()))?;
        let started = Instant::now();
        file.sync_data()
            .with_context(|| format!("fdatasync {}", path.display()))?;
        took.push(started.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    tmp.close().context("remove the fsync probe file")?;
    took.sort_by(f64::total_cmp);
    Ok(FsyncUnit {
        bytes,
        us: took[took.len() / 2],
    })
}

/// One group commit's fsync on this disk (see [`group_fsync`]).
#[derive(Debug, Clone, Copy)]
struct FsyncUnit {
    bytes: u64,
    us: f64,
}

fn write_block(file: &File, path: &Path, i: usize, block: &[u8]) -> Result<()> {
    file.write_all_at(block, (i * block.len()) as u64)
        .with_context(|| format!("write {}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// One run

#[derive(Debug, Clone, Copy)]
struct RunPlan {
    flush: FlushArg,
    size: usize,
    writers: usize,
    driver: DriverArg,
    runtime_threads: usize,
    /// Messages per append call.
    batch: usize,
    bytes: u64,
    max: Duration,
    queues: i32,
    segment_bytes: u64,
    warm_segments: Option<bool>,
    prewrite_segments: Option<bool>,
    cold_read: bool,
    sync_gather_max_us: u64,
    sync_gather_fsync_ratio: Option<f64>,
}

impl RunPlan {
    fn label(&self) -> String {
        format!(
            "{} {}B x{} {} batch {} gather {} µs",
            mode_name(self.flush),
            self.size,
            self.writers,
            driver_name(self.driver),
            self.batch,
            self.sync_gather_max_us
        )
    }
}

fn driver_name(driver: DriverArg) -> &'static str {
    match driver {
        DriverArg::Threads => "threads",
        DriverArg::Tokio => "tokio",
    }
}

fn mode_name(flush: FlushArg) -> &'static str {
    match flush {
        FlushArg::Async => "async",
        FlushArg::Sync => "sync",
    }
}

/// The outcome of one run.
#[derive(Debug, Serialize)]
struct RunResult {
    kind: &'static str,
    mode: &'static str,
    size: usize,
    writers: usize,
    driver: &'static str,
    /// Messages per append call; latencies are per call.
    batch: usize,
    messages: u64,
    log_bytes: u64,
    body_bytes: u64,
    seconds: f64,
    msgs_per_s: f64,
    /// Commit log MB/s.
    mb_s: f64,
    body_mb_s: f64,
    /// `mb_s` as a percentage of the disk's sequential-write limit (set by the caller).
    disk_pct: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    read_mb_s: f64,
    /// Commit log syncs the store made, their mean duration, append calls per sync, and
    /// waiters woken per group commit.
    fsyncs: u64,
    fsync_mean_us: f64,
    /// The bucket bound of the store's flush-time histogram that holds the 99th percentile of
    /// the run's own syncs (a bucket's upper bound, so at most one bucket too high; `None`
    /// without syncs or above the last bound). An append waits for at least the whole fsync
    /// that covers it, so the append p99 cannot be much below this.
    fsync_p99_at_most_us: Option<u64>,
    appends_per_fsync: f64,
    appends_per_group_commit: f64,
    /// Time the store took to shut down (final flush included).
    shutdown_ms: f64,
    /// CPU time of the whole process (writers and store threads) per message written: what
    /// bounds the run on a machine with few cores.
    cpu_us_per_msg: f64,
    /// SYNC: the store's `sync_gather_max_us`, the group commits that waited for more appends
    /// and their mean wait.
    sync_gather_max_us: u64,
    gathers: u64,
    gather_mean_us: f64,
    /// SYNC: one group commit's data (one call per writer) and its fsync time on this disk, the
    /// unit of `p50_fsyncs` and `p99_fsyncs` (see the module docs); zero for ASYNC.
    group_bytes: u64,
    fsync_unit_us: f64,
    /// The same fsync measured again after the run.
    fsync_unit_after_us: f64,
    p50_fsyncs: f64,
    p99_fsyncs: f64,
    /// SYNC: `group_bytes / fsync_unit_us` in MB/s, the most these writers can reach here.
    ceiling_mb_s: f64,
}

impl RunResult {
    fn set_fsync_unit(&mut self, unit: FsyncUnit, after: FsyncUnit) {
        self.group_bytes = unit.bytes;
        self.fsync_unit_us = unit.us;
        self.fsync_unit_after_us = after.us;
        self.p50_fsyncs = self.p50_us / unit.us;
        self.p99_fsyncs = self.p99_us / unit.us;
        self.ceiling_mb_s = unit.bytes as f64 / unit.us;
    }
}

/// Counters the writers share.
struct Shared {
    log_bytes: AtomicU64,
    stop: AtomicBool,
}

/// What one writer did.
struct WriterOutcome {
    latency_ns: Histogram<u64>,
    messages: u64,
    body_bytes: u64,
}

fn run(dir: &Path, plan: &RunPlan) -> Result<RunResult> {
    let tmp = tempfile::Builder::new()
        .prefix("tributary-bench-store-")
        .tempdir_in(dir)
        .with_context(|| format!("create a temporary directory in {}", dir.display()))?;
    let config = store_config(tmp.path(), plan);
    let store = Arc::new(MessageStore::open(config.clone()).context("open the benchmark store")?);
    let (written, elapsed) = write_phase(&store, plan)?;
    let seconds = elapsed.seconds;
    let store = Arc::try_unwrap(store)
        .map_err(|_| anyhow!("a writer still holds the store after the write phase"))?;
    let stats = store.stats();
    let fsyncs = stats.flush_micros.count();
    let fsync_total_us = stats.flush_micros.sum();
    let fsync_p99_at_most_us = stats.flush_micros.quantile_bound(0.99);
    let group_commits = stats.group_commits.load(Ordering::Relaxed);
    let group_waiters = stats.group_commit_waiters.load(Ordering::Relaxed);
    let append_calls = stats.append_calls.load(Ordering::Relaxed);
    let gathers = stats.group_commit_gathers.load(Ordering::Relaxed);
    let gather_total_us = stats
        .group_commit_gather_micros_total
        .load(Ordering::Relaxed);
    let log_bytes = stats.bytes_appended.load(Ordering::Relaxed);
    let messages = written.messages;
    let (store, read_mb_s) = read_phase(store, config, plan, messages)?;
    let shutdown_started = Instant::now();
    store.shutdown().context("shut the benchmark store down")?;
    let shutdown_ms = shutdown_started.elapsed().as_secs_f64() * 1e3;
    drop(store);
    tmp.close().context("remove the benchmark store")?;
    let us = |q: f64| written.latency_ns.value_at_quantile(q) as f64 / 1e3;
    Ok(RunResult {
        kind: "run",
        mode: mode_name(plan.flush),
        size: plan.size,
        writers: plan.writers,
        driver: driver_name(plan.driver),
        batch: plan.batch,
        messages,
        log_bytes,
        body_bytes: written.body_bytes,
        seconds,
        msgs_per_s: messages as f64 / seconds,
        mb_s: log_bytes as f64 / MB / seconds,
        body_mb_s: written.body_bytes as f64 / MB / seconds,
        disk_pct: 0.0,
        p50_us: us(0.5),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: written.latency_ns.max() as f64 / 1e3,
        read_mb_s,
        fsyncs,
        fsync_mean_us: ratio(fsync_total_us, fsyncs),
        fsync_p99_at_most_us,
        appends_per_fsync: if plan.flush == FlushArg::Sync {
            ratio(append_calls, fsyncs)
        } else {
            0.0
        },
        appends_per_group_commit: ratio(group_waiters, group_commits),
        shutdown_ms,
        cpu_us_per_msg: elapsed.cpu_seconds * 1e6 / messages.max(1) as f64,
        sync_gather_max_us: if plan.flush == FlushArg::Sync {
            plan.sync_gather_max_us
        } else {
            0
        },
        gathers,
        gather_mean_us: ratio(gather_total_us, gathers),
        group_bytes: 0,
        fsync_unit_us: 0.0,
        fsync_unit_after_us: 0.0,
        p50_fsyncs: 0.0,
        p99_fsyncs: 0.0,
        ceiling_mb_s: 0.0,
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn store_config(dir: &Path, plan: &RunPlan) -> StoreConfig {
    let mut config = StoreConfig {
        commitlog_segment_bytes: plan.segment_bytes,
        flush_mode: match plan.flush {
            FlushArg::Async => FlushMode::Async,
            FlushArg::Sync => FlushMode::Sync,
        },
        ..StoreConfig::new(dir.join("store"))
    };
    if let Some(warm) = plan.warm_segments {
        config.warm_segments = warm;
    }
    if let Some(prewrite) = plan.prewrite_segments {
        config.prewrite_segments = prewrite;
    }
    config.sync_gather_max_us = plan.sync_gather_max_us;
    if let Some(ratio) = plan.sync_gather_fsync_ratio {
        config.sync_gather_fsync_ratio = ratio;
    }
    config
}

// ---------------------------------------------------------------------------------------------
// Write phase

/// Runs the writers until `plan.bytes` or `plan.max`; returns their merged outcome and the
/// seconds from the start to the last acknowledgement.
fn write_phase(store: &Arc<MessageStore>, plan: &RunPlan) -> Result<(WriterOutcome, Elapsed)> {
    let shared = Arc::new(Shared {
        log_bytes: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let cpu_started = process_cpu_seconds();
    let started = Instant::now();
    let outcomes = match plan.driver {
        DriverArg::Threads => thread_writers(store, plan, &shared, started),
        DriverArg::Tokio => task_writers(store, plan, &shared, started),
    };
    if outcomes.is_err() {
        shared.stop.store(true, Ordering::Release);
    }
    let elapsed = Elapsed {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: process_cpu_seconds() - cpu_started,
    };
    Ok((merge(outcomes?)?, elapsed))
}

/// Wall-clock and CPU time of a phase.
struct Elapsed {
    seconds: f64,
    /// CPU time of the whole process (writers and store threads), user and system.
    cpu_seconds: f64,
}

fn process_cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// One OS thread per writer, each blocking in `Durable::wait`.
fn thread_writers(
    store: &Arc<MessageStore>,
    plan: &RunPlan,
    shared: &Arc<Shared>,
    started: Instant,
) -> Result<Vec<WriterOutcome>> {
    std::thread::scope(|s| -> Result<Vec<WriterOutcome>> {
        let mut handles = Vec::with_capacity(plan.writers);
        for id in 0..plan.writers {
            let writer = Writer::new(*plan, shared.clone(), id as u64, started)?;
            let spawned = std::thread::Builder::new()
                .name(format!("bench-writer-{id}"))
                .spawn_scoped(s, move || {
                    let outcome = thread_writer(store, writer);
                    if outcome.is_err() {
                        shared.stop.store(true, Ordering::Release);
                    }
                    outcome
                })
                .context("spawn a writer thread");
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.stop.store(true, Ordering::Release);
                    return Err(e);
                }
            }
        }
        monitor(plan, shared, started, || {
            handles.iter().all(|h| h.is_finished())
        });
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a writer thread panicked"))?)
            .collect()
    })
}

fn thread_writer(store: &MessageStore, mut w: Writer) -> Result<WriterOutcome> {
    while w.running() {
        let t0 = Instant::now();
        let (appended, durable) = store.append_batch(w.next_batch()).context("append")?;
        durable
            .wait()
            .context("wait for the append to be durable")?;
        w.acknowledged(t0, &appended);
    }
    Ok(w.outcome)
}

/// One task per writer on a tokio runtime of `plan.runtime_threads` workers, each awaiting
/// `Durable`. Appends are called on the workers, as a broker's request handler would.
fn task_writers(
    store: &Arc<MessageStore>,
    plan: &RunPlan,
    shared: &Arc<Shared>,
    started: Instant,
) -> Result<Vec<WriterOutcome>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.runtime_threads)
        .thread_name("bench-runtime")
        .build()
        .context("build the writers' tokio runtime")?;
    let mut tasks = tokio::task::JoinSet::new();
    for id in 0..plan.writers {
        let writer = Writer::new(*plan, shared.clone(), id as u64, started)?;
        let store = store.clone();
        let shared = shared.clone();
        tasks.spawn_on(
            async move {
                let outcome = task_writer(&store, writer).await;
                if outcome.is_err() {
                    shared.stop.store(true, Ordering::Release);
                }
                outcome
            },
            runtime.handle(),
        );
    }
    std::thread::scope(|s| {
        let joined = s.spawn(|| {
            runtime.block_on(async {
                let mut outcomes = Vec::with_capacity(plan.writers);
                while let Some(joined) = tasks.join_next().await {
                    outcomes.push(joined.map_err(|e| anyhow!("a writer task failed: {e}"))??);
                }
                Ok(outcomes)
            })
        });
        monitor(plan, shared, started, || joined.is_finished());
        joined
            .join()
            .map_err(|_| anyhow!("the writers' runtime thread panicked"))?
    })
}

async fn task_writer(store: &MessageStore, mut w: Writer) -> Result<WriterOutcome> {
    while w.running() {
        let t0 = Instant::now();
        let (appended, durable) = store.append_batch(w.next_batch()).context("append")?;
        durable.await.context("wait for the append to be durable")?;
        w.acknowledged(t0, &appended);
        // ASYNC appends are done at once: let the other writers on this worker run.
        tokio::task::consume_budget().await;
    }
    Ok(w.outcome)
}

/// One writer's messages and measurements: appends `plan.batch` messages per call, each call
/// acknowledged (durable in SYNC mode) before the next, until the run's byte budget or time
/// limit is reached.
struct Writer {
    plan: RunPlan,
    shared: Arc<Shared>,
    bodies: Vec<NewMessage>,
    batch: Vec<NewMessage>,
    key: String,
    seq: u64,
    deadline: Instant,
    outcome: WriterOutcome,
}

impl Writer {
    fn new(plan: RunPlan, shared: Arc<Shared>, id: u64, started: Instant) -> Result<Self> {
        Ok(Writer {
            bodies: body_ring(id, plan.size),
            batch: Vec::with_capacity(plan.batch),
            key: String::new(),
            seq: id,
            deadline: started + plan.max,
            outcome: WriterOutcome {
                latency_ns: new_histogram()?,
                messages: 0,
                body_bytes: 0,
            },
            plan,
            shared,
        })
    }

    fn running(&self) -> bool {
        !self.shared.stop.load(Ordering::Acquire)
    }

    /// The messages of the next append call.
    fn next_batch(&mut self) -> &[NewMessage] {
        self.batch.clear();
        for _ in 0..self.plan.batch {
            let msg = bench_message(self.seq, self.plan.queues, &self.bodies, &mut self.key);
            self.batch.push(msg);
            self.seq += self.plan.writers as u64;
        }
        &self.batch
    }

    /// Records an acknowledged call that started at `t0`; stops the run when it is complete.
    fn acknowledged(&mut self, t0: Instant, appended: &[AppendResult]) {
        let t1 = Instant::now();
        let o = &mut self.outcome;
        o.latency_ns
            .saturating_record(t1.duration_since(t0).as_nanos() as u64);
        o.messages += self.batch.len() as u64;
        o.body_bytes += self.batch.iter().map(|m| m.body.len() as u64).sum::<u64>();
        let size: u64 = appended.iter().map(|a| u64::from(a.size)).sum();
        let total = self.shared.log_bytes.fetch_add(size, Ordering::Relaxed) + size;
        if total >= self.plan.bytes || t1 >= self.deadline {
            self.shared.stop.store(true, Ordering::Release);
        }
    }
}

/// The messages whose bodies a writer cycles through: `workload::message`s of sequence numbers
/// of its own.
fn body_ring(id: u64, size: usize) -> Vec<NewMessage> {
    (0..BODIES_PER_WRITER)
        .map(|i| workload::message(TOPIC, 1, id * BODIES_PER_WRITER + i, size))
        .collect()
}

/// Message `seq`: as `workload::message` (queue `seq % queues`, unique KEYS, one of four TAGS)
/// but with a body from the writer's ring.
fn bench_message(seq: u64, queues: i32, bodies: &[NewMessage], key: &mut String) -> NewMessage {
    use std::fmt::Write as _;
    key.clear();
    let _ = write!(key, "key-{seq}");
    let body = bodies[(seq / 8) as usize % bodies.len()].body.clone();
    NewMessage::new(TOPIC, (seq % queues as u64) as i32, body)
        .with_properties([("KEYS", key.as_str()), ("TAGS", TAGS[(seq % 4) as usize])])
}

fn new_histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, LATENCY_MAX_NS, LATENCY_SIGFIG)
        .map_err(|e| anyhow!("create a latency histogram: {e:?}"))
}

fn merge(outcomes: Vec<WriterOutcome>) -> Result<WriterOutcome> {
    let mut all = WriterOutcome {
        latency_ns: new_histogram()?,
        messages: 0,
        body_bytes: 0,
    };
    for o in outcomes {
        all.latency_ns
            .add(&o.latency_ns)
            .map_err(|e| anyhow!("merge latency histograms: {e:?}"))?;
        all.messages += o.messages;
        all.body_bytes += o.body_bytes;
    }
    Ok(all)
}

/// Waits until `finished`, printing progress on stderr every few seconds.
fn monitor(plan: &RunPlan, shared: &Shared, started: Instant, finished: impl Fn() -> bool) {
    let mut next_report = started + PROGRESS_EVERY;
    while !finished() {
        std::thread::sleep(MONITOR_POLL);
        let now = Instant::now();
        if now >= next_report {
            let secs = now.duration_since(started).as_secs_f64();
            let bytes = shared.log_bytes.load(Ordering::Relaxed) as f64;
            eprintln!(
                "  [{}] {secs:.0}s: {:.0} MB appended, {:.1} MB/s",
                plan.label(),
                bytes / MB,
                bytes / MB / secs
            );
            next_report = now + PROGRESS_EVERY;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Read phase

/// Reads every queue from offset 0 with pulls of 32 messages; returns the store (reopened when
/// `plan.cold_read`) and the read MB/s of log bytes.
fn read_phase(
    store: MessageStore,
    config: StoreConfig,
    plan: &RunPlan,
    expected: u64,
) -> Result<(MessageStore, f64)> {
    if !store.wait_dispatched(DISPATCH_TIMEOUT) {
        bail!(
            "the dispatcher did not index everything within {} s",
            DISPATCH_TIMEOUT.as_secs()
        );
    }
    let store = if plan.cold_read {
        reopen_cold(store, config)?
    } else {
        store
    };
    let started = Instant::now();
    let mut sink = Vec::with_capacity(READ_MAX_BYTES);
    let (mut messages, mut bytes) = (0u64, 0u64);
    for queue in 0..plan.queues {
        let (m, b) = read_queue(&store, queue, &mut sink)?;
        messages += m;
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        messages == expected,
        "read back {messages} messages, {expected} were appended"
    );
    Ok((store, bytes as f64 / MB / seconds))
}

/// Reads one queue to its end; every message is copied into `sink` as a send would copy it.
fn read_queue(store: &MessageStore, queue: i32, sink: &mut Vec<u8>) -> Result<(u64, u64)> {
    let end = store.max_offset(TOPIC, queue);
    let (mut offset, mut messages, mut bytes) = (0i64, 0u64, 0u64);
    while offset < end {
        let got = store.get_messages(TOPIC, queue, offset, READ_BATCH, READ_MAX_BYTES, &AcceptAll);
        if got.messages.is_empty() {
            bail!(
                "queue {queue}: no messages at offset {offset} of {end} ({:?})",
                got.status
            );
        }
        sink.clear();
        for m in &got.messages {
            sink.extend_from_slice(m.as_bytes());
        }
        std::hint::black_box(&sink);
        messages += got.messages.len() as u64;
        bytes += got.bytes as u64;
        offset = got.next_begin_offset;
    }
    Ok((messages, bytes))
}

/// Shuts the store down, evicts its commit log from the page cache and opens it again.
fn reopen_cold(store: MessageStore, config: StoreConfig) -> Result<MessageStore> {
    store
        .shutdown()
        .context("shut the store down before a cold read")?;
    drop(store);
    let dir = config.data_dir.join("commitlog");
    for entry in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("list {}", dir.display()))?
            .path();
        evict(&path)?;
    }
    MessageStore::open(config).context("reopen the store for a cold read")
}

fn evict(path: &Path) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
        .with_context(|| format!("evict {} from the page cache", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Output

fn print_disk(disk: &DiskLimit, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(disk)?);
    } else {
        println!(
            "disk: sequential write {:.0} MB/s ({} MB in 1 MiB chunks + fsync); \
             fdatasync after a 4 KiB write: {:.0} µs extending the file, {:.0} µs overwriting",
            disk.write_mb_s,
            disk.probe_bytes / 1_000_000,
            disk.fdatasync_append_us,
            disk.fdatasync_overwrite_us
        );
    }
    Ok(())
}

fn print_header() {
    println!(
        "{:<5} {:>6} {:>7} {:>7} {:>5} {:>6} {:>10} {:>8} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>7}",
        "mode",
        "size",
        "writers",
        "driver",
        "batch",
        "gather",
        "msgs/s",
        "MB/s",
        "%disk",
        "p50µs",
        "p99µs",
        "p999µs",
        "maxµs",
        "readMB/s",
        "fsyncs",
        "fsyncµs",
        "fs99≤µs",
        "app/fsync",
        "gatherµs",
        "unitµs",
        "unit2µs",
        "p50/u",
        "p99/u",
        "ceilMB/s",
        "cpuµs/m"
    );
}

fn print_run(r: &RunResult, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!(
            "{:<5} {:>6} {:>7} {:>7} {:>5} {:>6} {:>10.0} {:>8.1} {:>5.0}% {:>8.1} {:>8.1} {:>8.1} {:>9.0} {:>9.0} {:>7} {:>8.0} {:>8} {:>8.1} {:>8.0} {:>8.0} {:>8.0} {:>6.2} {:>6.2} {:>8.0} {:>7.1}",
            r.mode,
            r.size,
            r.writers,
            r.driver,
            r.batch,
            r.sync_gather_max_us,
            r.msgs_per_s,
            r.mb_s,
            r.disk_pct,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.max_us,
            r.read_mb_s,
            r.fsyncs,
            r.fsync_mean_us,
            r.fsync_p99_at_most_us
                .map_or_else(|| "-".to_string(), |us| us.to_string()),
            r.appends_per_fsync,
            r.gather_mean_us,
            r.fsync_unit_us,
            r.fsync_unit_after_us,
            r.p50_fsyncs,
            r.p99_fsyncs,
            r.ceiling_mb_s,
            r.cpu_us_per_msg
        );
    }
    Ok(())
}
