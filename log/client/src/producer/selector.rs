//! Queue selection for sends.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::message::{Message, MessageQueue, java_string_hash};

/// Chooses the queue of a send (Java's `MessageQueueSelector`): an index into `queues`, or
/// `None` to refuse the send. Sends through a selector are not retried on another queue, so
/// per-key order holds.
pub trait MessageQueueSelector: Send + Sync {
    /// The index of the queue for `message`.
    fn select(&self, queues: &[MessageQueue], message: &Message) -> Option<usize>;
}

impl<F> MessageQueueSelector for F
where
    F: Fn(&[MessageQueue], &Message) -> Option<usize> + Send + Sync,
{
    fn select(&self, queues: &[MessageQueue], message: &Message) -> Option<usize> {
        self(queues, message)
    }
}

/// Selects by the Java hash of a sharding key, as Java's `SelectMessageQueueByHash` does for a
/// `String` argument: every message of one key goes to one queue while the queue count stays
/// the same.
#[derive(Debug, Clone)]
pub struct SelectByHash {
    key: String,
}

impl SelectByHash {
    /// A selector for `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into() }
    }
}

impl MessageQueueSelector for SelectByHash {
    fn select(&self, queues: &[MessageQueue], _message: &Message) -> Option<usize> {
        select_by_hash(&self.key, queues.len())
    }
}

/// The queue index Java's `SelectMessageQueueByHash` picks for a string key among `count`
/// queues: `abs(key.hashCode() % count)`.
pub fn select_by_hash(key: &str, count: usize) -> Option<usize> {
    let count = i64::try_from(count).ok().filter(|&c| c > 0)?;
    let index = (i64::from(java_string_hash(key)) % count).abs();
    usize::try_from(index).ok()
}

/// Round-robin choice among a topic's writable queues, avoiding the broker of the previous
/// failed attempt when another is available (Java's `TopicPublishInfo.selectOneMessageQueue`).
pub fn select_round_robin<'a>(
    queues: &'a [MessageQueue],
    counter: &AtomicUsize,
    avoid_broker: Option<&str>,
) -> Option<&'a MessageQueue> {
    if queues.is_empty() {
        return None;
    }
    if let Some(avoid) = avoid_broker {
        for _ in 0..queues.len() {
            let index = counter.fetch_add(1, Ordering::Relaxed) % queues.len();
            if queues[index].broker_name != avoid {
                return Some(&queues[index]);
            }
        }
    }
    let index = counter.fetch_add(1, Ordering::Relaxed) % queues.len();
    Some(&queues[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(spec: &[(&str, i32)]) -> Vec<MessageQueue> {
        spec.iter()
            .flat_map(|(b, n)| {
                (0..*n).map(|i| MessageQueue {
                    topic: "T".into(),
                    broker_name: (*b).into(),
                    queue_id: i,
                })
            })
            .collect()
    }

    #[test]
    fn hash_selection_matches_java() {
        // "hello".hashCode() = 99162322 = 7 * 14166046.
        assert_eq!(select_by_hash("hello", 7), Some(0));
        assert_eq!(select_by_hash("hello", 3), Some(1));
        // "polygenelubricants".hashCode() = Integer.MIN_VALUE: Java's % then abs.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(select_by_hash("polygenelubricants", 3), Some(2));
        // Any negative remainder is made positive.
        let h = java_string_hash("order-17");
        let expect = (i64::from(h) % 8).unsigned_abs() as usize;
        assert_eq!(select_by_hash("order-17", 8), Some(expect));
        assert_eq!(select_by_hash("x", 0), None);
    }

    #[test]
    fn round_robin_cycles_and_avoids_a_failed_broker() {
        let qs = queues(&[("a", 2), ("b", 2)]);
        let counter = AtomicUsize::new(0);
        let picked: Vec<String> = (0..4)
            .filter_map(|_| select_round_robin(&qs, &counter, None))
            .map(|q| format!("{}{}", q.broker_name, q.queue_id))
            .collect();
        assert_eq!(picked, ["a0", "a1", "b0", "b1"]);
        for _ in 0..8 {
            let q = select_round_robin(&qs, &counter, Some("a")).expect("a queue");
            assert_eq!(q.broker_name, "b");
        }
        // Only the avoided broker left: use it anyway.
        let only_a = queues(&[("a", 2)]);
        assert!(select_round_robin(&only_a, &counter, Some("a")).is_some());
        assert!(select_round_robin(&[], &counter, None).is_none());
    }

    #[test]
    fn closures_are_selectors() {
        let qs = queues(&[("a", 3)]);
        let last = |qs: &[MessageQueue], _: &Message| qs.len().checked_sub(1);
        assert_eq!(last.select(&qs, &Message::new("T", "x")), Some(2));
        let by_key = SelectByHash::new("hello");
        assert_eq!(by_key.select(&qs, &Message::new("T", "x")), Some(1));
    }
}
