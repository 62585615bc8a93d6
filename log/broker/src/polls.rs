//! Long polling: a pull that finds nothing waits on its queue's [`Notify`], which the store's
//! dispatcher pokes when the queue gets messages.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// One [`Notify`] per queue that anyone has waited on.
#[derive(Debug, Default)]
pub struct LongPolls {
    queues: Mutex<HashMap<String, HashMap<i32, Arc<Notify>>>>,
}

impl LongPolls {
    /// The queue's notifier, created on first use.
    pub fn notifier(&self, topic: &str, queue_id: i32) -> Arc<Notify> {
        let mut queues = self.queues.lock();
        if let Some(n) = queues.get(topic).and_then(|q| q.get(&queue_id)) {
            return n.clone();
        }
        queues
            .entry(topic.to_string())
            .or_default()
            .entry(queue_id)
            .or_default()
            .clone()
    }

    /// Wakes every pull waiting on the queue. Runs on the store's dispatcher thread: cheap,
    /// and it allocates nothing.
    pub fn arrived(&self, topic: &str, queue_id: i32) {
        let queues = self.queues.lock();
        if let Some(n) = queues.get(topic).and_then(|q| q.get(&queue_id)) {
            n.notify_waiters();
        }
    }

    /// Forgets a deleted topic.
    pub fn remove_topic(&self, topic: &str) {
        if let Some(q) = self.queues.lock().remove(topic) {
            for n in q.values() {
                n.notify_waiters();
            }
        }
    }
}
