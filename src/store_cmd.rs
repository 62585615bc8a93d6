//! `tributary store verify|dump|append`: tools over a store data directory.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use tributary_store::{FlushMode, MessageStore, StoreConfig};

use crate::cli::{FlushArg, StoreCommand, StoreDirArgs};
use tributary::workload;

fn open(dir: &StoreDirArgs, flush: FlushMode) -> anyhow::Result<MessageStore> {
    let mut c = StoreConfig::new(&dir.store_dir);
    c.commitlog_segment_bytes = dir.segment_bytes;
    // Small segments (tests, experiments) cap the record size at half a segment.
    c.max_message_bytes = c.max_message_bytes.min((dir.segment_bytes / 2) as usize);
    c.flush_mode = flush;
    MessageStore::open(c).with_context(|| format!("open store {}", dir.store_dir.display()))
}

pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Verify { dir, json } => verify(&dir, json),
        StoreCommand::Dump { dir, from, count } => dump(&dir, from, count),
        StoreCommand::Append {
            dir,
            topic,
            queues,
            start,
            count,
            size,
            writers,
            flush,
        } => append(&dir, &topic, queues, start, count, size, writers, flush),
    }
}

fn verify(dir: &StoreDirArgs, json: bool) -> anyhow::Result<()> {
    if !tributary_store::is_store_dir(&dir.store_dir) {
        bail!(
            "{} is not a store directory (no commitlog/ inside)",
            dir.store_dir.display()
        );
    }
    let store = open(dir, FlushMode::Async)?;
    let rec = store.recovery_report().clone();
    let v = store.verify()?;
    store.shutdown()?;
    if json {
        let out = serde_json::json!({
            "recovery": {
                "abnormal": rec.abnormal,
                "checked_from": rec.checked_from,
                "records_checked": rec.records_checked,
                "end_offset": rec.end_offset,
                "truncated_bytes": rec.truncated_bytes,
                "torn_at": rec.torn_at,
                "redispatched_records": rec.redispatched_records,
                "damage": rec.damage.as_ref().map(|d| serde_json::json!({
                    "offset": d.offset, "reason": d.reason,
                    "quarantined_to": d.quarantined_to, "quarantined_bytes": d.quarantined_bytes,
                })),
            },
            "records": v.records, "bytes": v.bytes, "queues": v.queues, "keys_checked": v.keys_checked,
            "end_offset": v.end_offset, "problem_count": v.problem_count, "problems": v.problems,
        });
        println!("{out}");
    } else {
        println!(
            "recovery: {} (checked {} records from offset {}), end offset {}",
            if rec.abnormal {
                "after a crash"
            } else {
                "after a clean shutdown"
            },
            rec.records_checked,
            rec.checked_from,
            rec.end_offset
        );
        if let Some(t) = rec.torn_at {
            println!("  torn tail at {t}: {} bytes removed", rec.truncated_bytes);
        }
        if let Some(d) = &rec.damage {
            println!(
                "  damage at {}: {} ({} bytes moved to {})",
                d.offset,
                d.reason,
                d.quarantined_bytes,
                d.quarantined_to.display()
            );
        }
        println!(
            "verified {} records ({} bytes), {} queues, {} keys: {} problems",
            v.records, v.bytes, v.queues, v.keys_checked, v.problem_count
        );
        for p in &v.problems {
            println!("  {p}");
        }
    }
    if v.problem_count > 0 {
        bail!("{} problems found", v.problem_count);
    }
    Ok(())
}

fn dump(dir: &StoreDirArgs, from: u64, count: usize) -> anyhow::Result<()> {
    let store = open(dir, FlushMode::Async)?;
    let mut at = from;
    for _ in 0..count {
        let Some((off, m)) = store.next_record(at)? else {
            break;
        };
        let preview: String = String::from_utf8_lossy(&m.body[..m.body.len().min(64)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        let props: Vec<String> = tributary_store::record::properties(&m.properties)
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "{off:>12} {:>6}B {}/{} #{} stored={} props=[{}] body={preview:?}",
            m.total_size,
            m.topic,
            m.queue_id,
            m.queue_offset,
            m.store_timestamp,
            props.join(",")
        );
        at = off + m.total_size as u64;
    }
    store.shutdown()?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn append(
    dir: &StoreDirArgs,
    topic: &str,
    queues: i32,
    start: u64,
    count: u64,
    size: usize,
    writers: usize,
    flush: FlushArg,
) -> anyhow::Result<()> {
    if size < 25 {
        bail!("--size must be at least 25 bytes (the body names its sequence number)");
    }
    let flush = match flush {
        FlushArg::Async => FlushMode::Async,
        FlushArg::Sync => FlushMode::Sync,
    };
    let store = Arc::new(open(dir, flush)?);
    let next = Arc::new(AtomicU64::new(start));
    let end = start + count;
    let handles: Vec<_> = (0..writers.max(1))
        .map(|_| {
            let (store, next, topic) = (store.clone(), next.clone(), topic.to_string());
            std::thread::spawn(move || -> anyhow::Result<()> {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= end {
                        return Ok(());
                    }
                    let (r, durable) =
                        store.append(&workload::message(&topic, queues, seq, size))?;
                    durable.wait()?;
                    let mut out = std::io::stdout().lock();
                    writeln!(
                        out,
                        "ack {seq} {} {} {}",
                        r.physical_offset,
                        seq % queues.max(1) as u64,
                        r.queue_offset
                    )?;
                    out.flush()?;
                }
            })
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    }
    store.shutdown()?;
    Ok(())
}
