//! Crash test with a real child process: `tributary store append` writes in SYNC mode and
//! prints every acknowledged message; the test kills it with SIGKILL at a random moment, then
//! recovers the store and checks that every acknowledged message reads back byte-identical,
//! that every record in the log is a whole message, and that consume queues and index agree
//! with the commit log. Many rounds on the same directory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use tributary::workload;
use tributary_store::{MessageStore, StoreConfig};

const SEGMENT: u64 = 1 << 20;
const TOPIC: &str = "CrashTopic";
const QUEUES: i32 = 4;

#[derive(Debug, Clone, Copy)]
struct Ack {
    phy: u64,
    queue: i32,
    queue_offset: i64,
    size: usize,
}

fn parse_ack(line: &str, size: usize) -> Option<(u64, Ack)> {
    let mut it = line.split_whitespace();
    (it.next()? == "ack").then_some(())?;
    let seq = it.next()?.parse().ok()?;
    let phy = it.next()?.parse().ok()?;
    let queue = it.next()?.parse().ok()?;
    let queue_offset = it.next()?.parse().ok()?;
    Some((
        seq,
        Ack {
            phy,
            queue,
            queue_offset,
            size,
        },
    ))
}

/// Runs one writer process and kills it after `kill_after` acknowledgements.
fn run_and_kill(
    dir: &Path,
    start: u64,
    size: usize,
    writers: usize,
    kill_after: usize,
    acks: &mut HashMap<u64, Ack>,
) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["store", "append", "--flush", "sync", "--topic", TOPIC])
        .arg("--store-dir")
        .arg(dir)
        .args([
            "--segment-bytes",
            &SEGMENT.to_string(),
            "--queues",
            &QUEUES.to_string(),
        ])
        .args([
            "--start",
            &start.to_string(),
            "--count",
            "10000000",
            "--size",
            &size.to_string(),
        ])
        .args(["--writers", &writers.to_string()])
        .env("TRIBUTARY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tributary store append");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = 0;
    while seen < kill_after {
        let line = lines
            .next()
            .expect("writer exited early")
            .expect("read line");
        let (seq, ack) = parse_ack(&line, size).unwrap_or_else(|| panic!("bad ack line {line:?}"));
        acks.insert(seq, ack);
        seen += 1;
    }
    child.kill().expect("SIGKILL");
    // Acks already in the pipe were acknowledged before the kill: they count too.
    for line in lines {
        let Ok(line) = line else { break };
        if let Some((seq, ack)) = parse_ack(&line, size) {
            acks.insert(seq, ack);
        }
    }
    let status = child.wait().expect("wait");
    assert!(!status.success(), "the writer was killed, not finished");
}

fn verify(dir: &Path, acks: &HashMap<u64, Ack>, sizes: &HashMap<u64, usize>) {
    let mut c = StoreConfig::new(dir);
    c.commitlog_segment_bytes = SEGMENT;
    c.max_message_bytes = (SEGMENT / 2) as usize;
    let store = MessageStore::open(c).expect("recover after SIGKILL");
    assert!(
        store.recovery_report().abnormal,
        "a killed writer leaves the abort marker"
    );
    for (&seq, a) in acks {
        let m = store
            .read_message(a.phy)
            .unwrap_or_else(|e| panic!("acknowledged message {seq} at {}: {e}", a.phy))
            .unwrap_or_else(|| panic!("acknowledged message {seq} at {} is gone", a.phy));
        assert_eq!(
            m.body.as_ref(),
            workload::body(seq, a.size).as_slice(),
            "message {seq} body"
        );
        assert_eq!(m.property("KEYS"), Some(format!("key-{seq}").as_str()));
        assert_eq!(
            (m.topic.as_str(), m.queue_id, m.queue_offset),
            (TOPIC, a.queue, a.queue_offset)
        );
        let unit = store
            .unit(TOPIC, a.queue, a.queue_offset)
            .expect("consume queue unit");
        assert_eq!(
            unit.phy_offset as u64, a.phy,
            "consume queue of message {seq}"
        );
    }
    // A sample of keys through the index.
    for (&seq, a) in acks.iter().take(200) {
        let found = store
            .query_by_key(TOPIC, &format!("key-{seq}"), 4, 0, i64::MAX)
            .expect("query");
        assert!(
            found.iter().any(|m| m.physical_offset as u64 == a.phy),
            "key-{seq} not found in the index"
        );
    }
    // Every record in the log is a whole message of ours, acknowledged or not.
    let mut at = 0;
    let mut records = 0;
    while let Some((off, m)) = store.next_record(at).expect("scan") {
        let seq = workload::seq_of(&m.body)
            .unwrap_or_else(|| panic!("record at {off} is not one of ours"));
        let size = sizes.get(&(seq / 1_000_000)).copied().expect("round size");
        assert_eq!(
            m.body.as_ref(),
            workload::body(seq, size).as_slice(),
            "record at {off} is half-written"
        );
        at = off + m.total_size as u64;
        records += 1;
    }
    assert!(
        records >= acks.len(),
        "{records} records, {} acknowledged",
        acks.len()
    );
    let report = store.verify().expect("verify");
    assert_eq!(
        report.problem_count, 0,
        "consume queues/index disagree with the log: {:?}",
        report.problems
    );
    store.shutdown().expect("shutdown");
}

#[test]
fn acknowledged_messages_survive_sigkill_at_random_moments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut acks = HashMap::new();
    let mut sizes = HashMap::new();
    for round in 0..10u64 {
        let size = rng.random_range(25..6000);
        let writers = rng.random_range(1..=8);
        let kill_after = rng.random_range(1..1500);
        sizes.insert(round, size);
        run_and_kill(
            dir.path(),
            round * 1_000_000,
            size,
            writers,
            kill_after,
            &mut acks,
        );
        verify(dir.path(), &acks, &sizes);
    }
    assert!(acks.len() >= 10);
}
