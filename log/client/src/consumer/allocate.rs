//! Queue allocation strategies: which of a topic's queues a consumer of a group takes.
//!
//! Each is a pure function of the consumer's id, every queue and every consumer id; all
//! consumers of a group run the same function on the same (sorted) inputs, so together they
//! cover every queue exactly once. The results match Java's `AllocateMessageQueueAveragely`,
//! `AllocateMessageQueueAveragelyByCircle` and `AllocateMessageQueueConsistentHash`, so a
//! group may mix Java and Rust consumers.

use std::collections::BTreeMap;

use md5::{Digest, Md5};

use crate::message::{MessageQueue, message_queue_key};

/// How a group divides a topic's queues among its consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllocateStrategy {
    /// Contiguous ranges, the first `queues % consumers` consumers one queue more (`AVG`).
    #[default]
    Averagely,
    /// Queue `i` to consumer `i % consumers` (`AVG_BY_CIRCLE`).
    AveragelyByCircle,
    /// A hash ring with `virtual_nodes` points per consumer; a consumer joining or leaving
    /// moves only the queues next to its points (`CONSISTENT_HASH`, 10 virtual nodes in Java).
    ConsistentHash {
        /// Points per consumer on the ring.
        virtual_nodes: usize,
    },
}

impl AllocateStrategy {
    /// Java's consistent hash with its default of 10 virtual nodes.
    pub const CONSISTENT_HASH: Self = Self::ConsistentHash { virtual_nodes: 10 };

    /// The Java strategy name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Averagely => "AVG",
            Self::AveragelyByCircle => "AVG_BY_CIRCLE",
            Self::ConsistentHash { .. } => "CONSISTENT_HASH",
        }
    }

    /// The queues of `mq_all` that `current` takes. `mq_all` and `cid_all` must be sorted
    /// and the same for every consumer; a `current` not in `cid_all` gets nothing.
    pub fn allocate(
        &self,
        current: &str,
        mq_all: &[MessageQueue],
        cid_all: &[String],
    ) -> Vec<MessageQueue> {
        match self {
            Self::Averagely => allocate_averagely(current, mq_all, cid_all),
            Self::AveragelyByCircle => allocate_averagely_by_circle(current, mq_all, cid_all),
            Self::ConsistentHash { virtual_nodes } => {
                allocate_consistent_hash(current, mq_all, cid_all, *virtual_nodes)
            }
        }
    }
}

/// Java's `AllocateMessageQueueAveragely`.
pub fn allocate_averagely(
    current: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
) -> Vec<MessageQueue> {
    let Some(index) = cid_all.iter().position(|c| c == current) else {
        return Vec::new();
    };
    let (queues, consumers) = (mq_all.len(), cid_all.len());
    let modulo = queues % consumers;
    let average = if queues <= consumers {
        1
    } else if modulo > 0 && index < modulo {
        queues / consumers + 1
    } else {
        queues / consumers
    };
    let start = if modulo > 0 && index < modulo {
        index * average
    } else {
        index * average + modulo
    };
    let range = average.min(queues.saturating_sub(start));
    mq_all[start.min(queues)..start.min(queues) + range].to_vec()
}

/// Java's `AllocateMessageQueueAveragelyByCircle`.
pub fn allocate_averagely_by_circle(
    current: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
) -> Vec<MessageQueue> {
    let Some(index) = cid_all.iter().position(|c| c == current) else {
        return Vec::new();
    };
    mq_all
        .iter()
        .skip(index)
        .step_by(cid_all.len())
        .cloned()
        .collect()
}

/// Java's `AllocateMessageQueueConsistentHash` with its default MD5 hash: each consumer
/// gets `virtual_nodes` points `"{cid}-{i}"` on a ring of the first four MD5 bytes (as an
/// unsigned number); a queue belongs to the first point at or after the hash of its Java
/// `toString()`, wrapping around.
pub fn allocate_consistent_hash(
    current: &str,
    mq_all: &[MessageQueue],
    cid_all: &[String],
    virtual_nodes: usize,
) -> Vec<MessageQueue> {
    if !cid_all.iter().any(|c| c == current) {
        return Vec::new();
    }
    let mut ring: BTreeMap<i64, &str> = BTreeMap::new();
    for cid in cid_all {
        // Java numbers a node's points after those already on the ring for the same key.
        let existing = ring.values().filter(|c| **c == cid.as_str()).count();
        for i in 0..virtual_nodes {
            ring.insert(md5_hash(&format!("{cid}-{}", i + existing)), cid);
        }
    }
    mq_all
        .iter()
        .filter(|mq| {
            let hash = md5_hash(&message_queue_key(mq));
            let owner = ring
                .range(hash..)
                .next()
                .or_else(|| ring.iter().next())
                .map(|(_, cid)| *cid);
            owner == Some(current)
        })
        .cloned()
        .collect()
}

/// Java's `ConsistentHashRouter.MD5Hash`: the first four digest bytes, big-endian, as a
/// non-negative long.
fn md5_hash(key: &str) -> i64 {
    let digest = Md5::digest(key.as_bytes());
    i64::from(u32::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3],
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn queues(brokers: &[&str], per_broker: i32) -> Vec<MessageQueue> {
        let mut all: Vec<MessageQueue> = brokers
            .iter()
            .flat_map(|b| {
                (0..per_broker).map(|q| MessageQueue {
                    topic: "T".into(),
                    broker_name: (*b).into(),
                    queue_id: q,
                })
            })
            .collect();
        all.sort();
        all
    }

    fn cids(n: usize) -> Vec<String> {
        let mut all: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}@{i}")).collect();
        all.sort();
        all
    }

    fn ids(mqs: &[MessageQueue]) -> Vec<(String, i32)> {
        mqs.iter()
            .map(|m| (m.broker_name.clone(), m.queue_id))
            .collect()
    }

    #[test]
    fn averagely_matches_java_examples() {
        // 8 queues, 3 consumers: 3, 3, 2 contiguous.
        let mqs = queues(&["a"], 8);
        let cids = cids(3);
        let got: Vec<Vec<i32>> = cids
            .iter()
            .map(|c| {
                allocate_averagely(c, &mqs, &cids)
                    .iter()
                    .map(|m| m.queue_id)
                    .collect()
            })
            .collect();
        assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7]]);
        // More consumers than queues: the last ones get nothing.
        let cids5 = self::cids(5);
        let few = queues(&["a"], 3);
        let got: Vec<usize> = cids5
            .iter()
            .map(|c| allocate_averagely(c, &few, &cids5).len())
            .collect();
        assert_eq!(got, vec![1, 1, 1, 0, 0]);
        assert!(allocate_averagely("stranger", &mqs, &cids).is_empty());
    }

    #[test]
    fn by_circle_matches_java_examples() {
        let mqs = queues(&["a", "b"], 2);
        let cids = cids(3);
        let got: Vec<Vec<(String, i32)>> = cids
            .iter()
            .map(|c| ids(&allocate_averagely_by_circle(c, &mqs, &cids)))
            .collect();
        assert_eq!(
            got,
            vec![
                vec![("a".into(), 0), ("b".into(), 1)],
                vec![("a".into(), 1)],
                vec![("b".into(), 0)],
            ]
        );
    }

    #[test]
    fn md5_hash_matches_java() {
        // MD5("a") = 0cc175b9...; Java's MD5Hash packs the first 4 bytes unsigned.
        assert_eq!(md5_hash("a"), 0x0cc1_75b9);
        // MD5("") = d41d8cd9...: the high bit set stays positive.
        assert_eq!(md5_hash(""), 0xd41d_8cd9);
    }

    #[test]
    fn strategies_have_java_names() {
        assert_eq!(AllocateStrategy::Averagely.name(), "AVG");
        assert_eq!(AllocateStrategy::AveragelyByCircle.name(), "AVG_BY_CIRCLE");
        assert_eq!(AllocateStrategy::CONSISTENT_HASH.name(), "CONSISTENT_HASH");
    }

    fn strategies() -> [AllocateStrategy; 3] {
        [
            AllocateStrategy::Averagely,
            AllocateStrategy::AveragelyByCircle,
            AllocateStrategy::CONSISTENT_HASH,
        ]
    }

    proptest! {
        /// Every queue goes to exactly one consumer, whatever the strategy.
        #[test]
        fn allocations_partition_the_queues(brokers in 1usize..4, per_broker in 0i32..20, consumers in 1usize..12) {
            let names: Vec<String> = (0..brokers).map(|b| format!("broker-{b}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let mqs = queues(&refs, per_broker);
            let cids = cids(consumers);
            for strategy in strategies() {
                let mut seen = BTreeSet::new();
                let mut total = 0;
                for cid in &cids {
                    let mine = strategy.allocate(cid, &mqs, &cids);
                    total += mine.len();
                    seen.extend(mine);
                }
                prop_assert_eq!(total, mqs.len(), "{:?}", strategy);
                prop_assert_eq!(seen.len(), mqs.len(), "{:?}", strategy);
            }
        }

        /// The averaging strategies give every consumer within one queue of every other.
        #[test]
        fn averaging_strategies_are_balanced(queue_count in 0i32..64, consumers in 1usize..16) {
            let mqs = queues(&["a"], queue_count);
            let cids = cids(consumers);
            for strategy in [AllocateStrategy::Averagely, AllocateStrategy::AveragelyByCircle] {
                let sizes: Vec<usize> = cids.iter().map(|c| strategy.allocate(c, &mqs, &cids).len()).collect();
                let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
                prop_assert!(max.unwrap_or(0) - min.unwrap_or(0) <= 1, "{:?} {:?}", strategy, sizes);
            }
        }

        /// With consistent hashing, a consumer joining takes queues only from others; no
        /// queue moves between two consumers that stay.
        #[test]
        fn consistent_hash_moves_only_to_the_newcomer(queue_count in 1i32..64, consumers in 1usize..10) {
            let mqs = queues(&["a", "b"], queue_count);
            let before = cids(consumers);
            let newcomer = "192.168.1.1@new".to_owned();
            let mut after = before.clone();
            after.push(newcomer.clone());
            after.sort();
            let strategy = AllocateStrategy::CONSISTENT_HASH;
            for cid in &before {
                let old: BTreeSet<MessageQueue> = strategy.allocate(cid, &mqs, &before).into_iter().collect();
                let new: BTreeSet<MessageQueue> = strategy.allocate(cid, &mqs, &after).into_iter().collect();
                prop_assert!(new.is_subset(&old), "{} gained queues", cid);
            }
        }
    }
}
