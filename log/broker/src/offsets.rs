//! Consumer offsets (clustering consumers commit them here), kept in memory and written to
//! `consumerOffset.json` every few seconds and on shutdown.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The file form: `"topic@group" -> queue id -> next offset to consume`, as RocketMQ's
/// `consumerOffset.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    offset_table: BTreeMap<String, BTreeMap<i32, i64>>,
}

/// Committed offsets by group, topic and queue.
#[derive(Debug)]
pub struct OffsetManager {
    path: PathBuf,
    /// `topic@group` -> queue -> offset.
    table: RwLock<HashMap<String, BTreeMap<i32, i64>>>,
    dirty: AtomicBool,
}

/// Group and topic names cannot contain `@` (see [`crate::topics::invalid_topic_name`]), so
/// the key splits unambiguously.
fn key(topic: &str, group: &str) -> String {
    format!("{topic}@{group}")
}

impl OffsetManager {
    /// Loads `path`; a missing file means no offsets yet.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let file: OffsetFile = crate::persist::load(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            table: RwLock::new(file.offset_table.into_iter().collect()),
            dirty: AtomicBool::new(false),
        })
    }

    /// The committed offset, if the group ever committed one for this queue.
    pub fn get(&self, group: &str, topic: &str, queue_id: i32) -> Option<i64> {
        self.table
            .read()
            .get(&key(topic, group))
            .and_then(|q| q.get(&queue_id).copied())
    }

    /// Records `offset` as the group's next offset to consume in the queue.
    pub fn commit(&self, group: &str, topic: &str, queue_id: i32, offset: i64) {
        let k = key(topic, group);
        let mut table = self.table.write();
        let queues = table.entry(k).or_default();
        if queues.insert(queue_id, offset) != Some(offset) {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Every queue offset of a group on a topic.
    pub fn queues(&self, group: &str, topic: &str) -> BTreeMap<i32, i64> {
        self.table
            .read()
            .get(&key(topic, group))
            .cloned()
            .unwrap_or_default()
    }

    /// Every (group, topic) pair that has offsets.
    pub fn groups(&self) -> Vec<(String, String)> {
        let table = self.table.read();
        let mut out: Vec<(String, String)> = table
            .keys()
            .filter_map(|k| k.rsplit_once('@'))
            .map(|(topic, group)| (group.to_string(), topic.to_string()))
            .collect();
        out.sort();
        out
    }

    /// Topics the group has offsets on.
    pub fn topics_of(&self, group: &str) -> Vec<String> {
        self.groups()
            .into_iter()
            .filter(|(g, _)| g == group)
            .map(|(_, t)| t)
            .collect()
    }

    /// Drops every offset of `topic` (the topic was deleted).
    pub fn remove_topic(&self, topic: &str) {
        let prefix = format!("{topic}@");
        let mut table = self.table.write();
        let before = table.len();
        table.retain(|k, _| !k.starts_with(&prefix));
        if table.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Drops a group's offsets on `topic` (or on every topic).
    pub fn remove_group(&self, group: &str, topic: Option<&str>) {
        let mut table = self.table.write();
        table.retain(|k, _| match k.rsplit_once('@') {
            Some((t, g)) => !(g == group && topic.is_none_or(|want| want == t)),
            None => true,
        });
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the file if anything changed since the last write.
    pub fn flush(&self) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let file = OffsetFile {
            offset_table: self
                .table
                .read()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        crate::persist::store(&self.path, &file).inspect_err(|_| {
            // Try again next time.
            self.dirty.store(true, Ordering::Release);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_a_flush_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("consumerOffset.json");
        let m = OffsetManager::open(path.clone()).expect("open");
        assert_eq!(m.get("g", "T", 0), None);
        m.commit("g", "T", 0, 42);
        m.commit("g", "T", 3, 7);
        m.commit("h", "U", 0, 1);
        m.flush().expect("flush");
        let m = OffsetManager::open(path).expect("reopen");
        assert_eq!(m.get("g", "T", 0), Some(42));
        assert_eq!(m.get("g", "T", 3), Some(7));
        assert_eq!(m.topics_of("g"), vec!["T".to_string()]);
        m.remove_topic("U");
        assert_eq!(m.get("h", "U", 0), None);
        m.remove_group("g", None);
        assert_eq!(m.get("g", "T", 0), None);
    }
}
