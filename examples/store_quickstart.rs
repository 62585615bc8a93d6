//! Opens a store in a temporary directory, appends messages to two queues with SYNC flush,
//! and reads them back by queue offset and by key.
//!
//! Run: `cargo run -p tributary-examples --example store_quickstart`

use std::time::Duration;

use tributary_store::{AcceptAll, FlushMode, MessageStore, NewMessage, StoreConfig};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = StoreConfig::new(dir.path());
    config.flush_mode = FlushMode::Sync;
    config.commitlog_segment_bytes = 64 << 20;
    let store = MessageStore::open(config)?;

    for i in 0..10 {
        let key = format!("order-{i}");
        let msg = NewMessage::new("shop.orders", i % 2, format!("{{\"id\":{i}}}"))
            .with_properties([("KEYS", key.as_str()), ("TAGS", "created")]);
        let (at, durable) = store.append(&msg)?;
        durable.wait()?; // returns once an fsync covering the message returned
        println!(
            "appended order {i} at offset {} (queue {}, #{})",
            at.physical_offset,
            i % 2,
            at.queue_offset
        );
    }
    store.wait_dispatched(Duration::from_secs(5));

    let pulled = store.get_messages("shop.orders", 1, 0, 32, 1 << 20, &AcceptAll);
    println!(
        "queue 1: {:?}, {} messages, next offset {}",
        pulled.status,
        pulled.messages.len(),
        pulled.next_begin_offset
    );
    for m in &pulled.messages {
        let m = m.decode()?;
        println!("  #{} {}", m.queue_offset, String::from_utf8_lossy(&m.body));
    }
    let found = store.query_by_key("shop.orders", "order-7", 10, 0, i64::MAX)?;
    println!(
        "by key order-7: {}",
        String::from_utf8_lossy(&found[0].body)
    );
    store.shutdown()?;
    Ok(())
}
