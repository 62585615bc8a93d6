//! The per-queue buffer of a push consumer (Java's `ProcessQueue`): what was pulled and not
//! yet consumed, the numbers flow control looks at, and the offset that is safe to commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::message::MessageExt;

/// Pulled, not yet consumed messages of one queue.
#[derive(Debug, Default)]
pub(crate) struct ProcessQueue {
    state: Mutex<State>,
    dropped: AtomicBool,
    locked: AtomicBool,
    last_lock: Mutex<Option<Instant>>,
    /// Signalled when messages leave the buffer (flow control waits on it).
    pub(crate) space: Notify,
    /// Held while an orderly listener call runs; taking it before releasing the queue lock
    /// means no call of ours is still running on a queue another consumer gets.
    pub(crate) consume_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Buffered offsets: body size, and (orderly) the message itself.
    tree: BTreeMap<i64, (usize, Option<MessageExt>)>,
    bytes: usize,
    /// Highest offset ever buffered.
    max_offset: Option<i64>,
    /// Orderly: messages handed to the listener and not yet committed.
    taken: BTreeMap<i64, (usize, MessageExt)>,
    /// Orderly: whether a consume task is running.
    consuming: bool,
}

impl ProcessQueue {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    pub(crate) fn set_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        self.space.notify_one();
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    pub(crate) fn set_locked(&self, locked: bool) {
        self.locked.store(locked, Ordering::Release);
        if locked {
            *self.last_lock.lock() = Some(Instant::now());
        }
    }

    /// Whether the lock was last confirmed longer than `max_live` ago.
    pub(crate) fn lock_expired(&self, max_live: Duration) -> bool {
        self.last_lock
            .lock()
            .is_none_or(|at| at.elapsed() > max_live)
    }

    /// Messages buffered (taken ones included).
    pub(crate) fn count(&self) -> usize {
        let state = self.state.lock();
        state.tree.len() + state.taken.len()
    }

    /// Body bytes buffered (taken ones included).
    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    /// Distance between the oldest and newest buffered offset.
    pub(crate) fn max_span(&self) -> i64 {
        let state = self.state.lock();
        match (state.tree.keys().next(), state.tree.keys().next_back()) {
            (Some(first), Some(last)) => last - first,
            _ => 0,
        }
    }

    /// Records messages handed to concurrent consume tasks.
    pub(crate) fn put_offsets(&self, messages: &[MessageExt]) {
        let mut state = self.state.lock();
        for m in messages {
            if state
                .tree
                .insert(m.queue_offset, (m.body.len(), None))
                .is_none()
            {
                state.bytes += m.body.len();
            }
            state.max_offset = Some(
                state
                    .max_offset
                    .map_or(m.queue_offset, |o| o.max(m.queue_offset)),
            );
        }
    }

    /// Buffers messages for an orderly consumer; `true` when a consume task must be started
    /// (none is running and there is something to consume).
    pub(crate) fn put_messages(&self, messages: Vec<MessageExt>) -> bool {
        let mut state = self.state.lock();
        let mut added = false;
        for m in messages {
            let offset = m.queue_offset;
            let size = m.body.len();
            if state.taken.contains_key(&offset) || state.tree.contains_key(&offset) {
                continue;
            }
            state.tree.insert(offset, (size, Some(m)));
            state.bytes += size;
            state.max_offset = Some(state.max_offset.map_or(offset, |o| o.max(offset)));
            added = true;
        }
        if added && !state.consuming {
            state.consuming = true;
            return true;
        }
        false
    }

    /// Removes consumed offsets; returns the offset now safe to commit (the oldest still
    /// buffered, or one past the newest ever buffered when nothing is left), `None` when
    /// nothing was buffered.
    pub(crate) fn remove(&self, offsets: &[i64]) -> Option<i64> {
        let result = {
            let mut state = self.state.lock();
            if state.tree.is_empty() {
                None
            } else {
                for offset in offsets {
                    if let Some((size, _)) = state.tree.remove(offset) {
                        state.bytes -= size;
                    }
                }
                state
                    .tree
                    .keys()
                    .next()
                    .copied()
                    .or(state.max_offset.map(|o| o + 1))
            }
        };
        self.space.notify_one();
        result
    }

    /// Orderly: takes up to `n` messages in offset order; when none is left, marks the
    /// consume task finished (the next put starts a new one).
    pub(crate) fn take(&self, n: usize) -> Vec<MessageExt> {
        let mut state = self.state.lock();
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let Some((offset, (size, message))) = state.tree.pop_first() else {
                break;
            };
            let Some(message) = message else { continue };
            state.taken.insert(offset, (size, message.clone()));
            out.push(message);
        }
        if out.is_empty() {
            state.consuming = false;
        }
        out
    }

    /// Orderly: the taken messages are done; returns the offset to commit.
    pub(crate) fn commit(&self) -> Option<i64> {
        let result = {
            let mut state = self.state.lock();
            let next = state.taken.keys().next_back().map(|o| o + 1);
            let freed: usize = state.taken.values().map(|(size, _)| size).sum();
            state.bytes -= freed;
            state.taken.clear();
            next
        };
        self.space.notify_one();
        result
    }

    /// Orderly: the taken messages go back to the buffer, to be consumed again first.
    pub(crate) fn consume_again(&self, bump_reconsume_times: bool) {
        let mut state = self.state.lock();
        let taken = std::mem::take(&mut state.taken);
        for (offset, (size, mut message)) in taken {
            if bump_reconsume_times {
                message.reconsume_times += 1;
            }
            state.tree.insert(offset, (size, Some(message)));
        }
    }

    /// Orderly: the consume task stops without draining the buffer (queue dropped or lock
    /// lost); a later put or claim starts another.
    pub(crate) fn release_consuming(&self) {
        self.state.lock().consuming = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    pub(crate) fn message(offset: i64, body: &str) -> MessageExt {
        MessageExt {
            topic: "T".into(),
            flag: 0,
            body: Bytes::copy_from_slice(body.as_bytes()),
            properties: Default::default(),
            queue_id: 0,
            store_size: 0,
            queue_offset: offset,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: "127.0.0.1:1".parse().expect("addr"),
            store_timestamp: 0,
            store_host: "127.0.0.1:2".parse().expect("addr"),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            commit_log_offset: offset * 100,
            body_crc: 0,
            offset_msg_id: String::new(),
            broker_name: "b".into(),
        }
    }

    #[test]
    fn commit_offset_is_the_oldest_unconsumed() {
        let pq = ProcessQueue::new();
        assert_eq!(pq.remove(&[1]), None);
        let msgs: Vec<MessageExt> = (10..15).map(|o| message(o, "xx")).collect();
        pq.put_offsets(&msgs);
        assert_eq!((pq.count(), pq.bytes(), pq.max_span()), (5, 10, 4));
        // Consumed out of order: the commit offset stays at the oldest still running.
        assert_eq!(pq.remove(&[11, 12]), Some(10));
        assert_eq!(pq.remove(&[10]), Some(13));
        assert_eq!(pq.remove(&[13, 14]), Some(15));
        assert_eq!((pq.count(), pq.bytes()), (0, 0));
        // Nothing buffered: nothing to say.
        assert_eq!(pq.remove(&[14]), None);
    }

    #[test]
    fn orderly_take_commit_and_consume_again() {
        let pq = ProcessQueue::new();
        assert!(pq.put_messages((0..3).map(|o| message(o, "a")).collect()));
        // A task is running: the next put does not ask for another.
        assert!(!pq.put_messages(vec![message(3, "a")]));
        let first = pq.take(2);
        assert_eq!(
            first.iter().map(|m| m.queue_offset).collect::<Vec<_>>(),
            [0, 1]
        );
        pq.consume_again(true);
        let again = pq.take(1);
        assert_eq!((again[0].queue_offset, again[0].reconsume_times), (0, 1));
        assert_eq!(pq.commit(), Some(1));
        let rest = pq.take(10);
        assert_eq!(rest.len(), 3);
        assert_eq!(pq.commit(), Some(4));
        assert!(pq.take(1).is_empty());
        // The task ended: the next put starts one again.
        assert!(pq.put_messages(vec![message(4, "a")]));
        assert_eq!(pq.count(), 1);
    }

    #[test]
    fn duplicates_are_ignored() {
        let pq = ProcessQueue::new();
        pq.put_offsets(&[message(1, "abc"), message(1, "abc")]);
        assert_eq!((pq.count(), pq.bytes()), (1, 3));
        assert!(pq.put_messages(vec![message(5, "x")]));
        let _ = pq.take(1);
        assert!(!pq.put_messages(vec![message(5, "x")]));
    }

    #[test]
    fn locks_expire() {
        let pq = ProcessQueue::new();
        assert!(pq.lock_expired(Duration::from_secs(30)));
        pq.set_locked(true);
        assert!(pq.is_locked() && !pq.lock_expired(Duration::from_secs(3600)));
        pq.set_locked(false);
        assert!(!pq.is_locked());
    }
}
