//! Consumer offsets: kept on the broker in clustering mode, in a local JSON file in
//! broadcasting mode (every consumer reads every queue, so each keeps its own progress).
//!
//! Offsets are "next to consume": committing `n` means everything below `n` is done.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::MessageQueue;

/// Where a consumer's offsets live.
#[derive(Debug)]
pub(crate) enum Backend {
    /// On the brokers (QUERY/UPDATE_CONSUMER_OFFSET).
    Remote { instance: ClientInstance },
    /// In `path` (one JSON file per group).
    Local { path: PathBuf },
}

/// A consumer group's offsets: an in-memory table, persisted to the backend.
#[derive(Debug)]
pub(crate) struct OffsetStore {
    group: String,
    backend: Backend,
    table: Mutex<HashMap<MessageQueue, i64>>,
    /// Held by every commit (or file write) from reading the table to the backend's answer,
    /// so that commits land in the order they read the table: a periodic commit that read an
    /// older offset cannot overwrite the final commit of a queue handed to another consumer.
    persisting: tokio::sync::Mutex<()>,
}

impl OffsetStore {
    pub(crate) fn remote(instance: ClientInstance, group: &str) -> Self {
        Self {
            group: group.to_owned(),
            backend: Backend::Remote { instance },
            table: Mutex::default(),
            persisting: tokio::sync::Mutex::new(()),
        }
    }

    /// A local store in `dir/<group>/offsets.json`, loaded now.
    pub(crate) async fn local(dir: &Path, group: &str) -> Result<Self> {
        let path = offset_file(dir, group);
        let load_path = path.clone();
        let table = tokio::task::spawn_blocking(move || load_file(&load_path))
            .await
            .map_err(|e| ClientError::Io {
                action: "read offsets from",
                path: path.clone(),
                source: std::io::Error::other(e),
            })??;
        Ok(Self {
            group: group.to_owned(),
            backend: Backend::Local { path },
            table: Mutex::new(table),
            persisting: tokio::sync::Mutex::new(()),
        })
    }

    /// Sets the offset of `mq`; with `increase_only`, never moves it back.
    pub(crate) fn update(&self, mq: &MessageQueue, offset: i64, increase_only: bool) {
        self.update_unless(mq, offset, increase_only, || false);
    }

    /// [`OffsetStore::update`] unless `dropped()` holds, judged under the table lock: a
    /// reset ([`OffsetStore::reset`]) drops the queue's buffer and sets the offset under the
    /// same lock, so progress of messages it discarded never overwrites it.
    pub(crate) fn update_unless(
        &self,
        mq: &MessageQueue,
        offset: i64,
        increase_only: bool,
        dropped: impl FnOnce() -> bool,
    ) {
        let mut table = self.table.lock();
        if dropped() {
            return;
        }
        match table.get_mut(mq) {
            Some(current) if increase_only && *current >= offset => {}
            Some(current) => *current = offset,
            None => {
                table.insert(mq.clone(), offset);
            }
        }
    }

    /// Runs `drop` (which marks the queue's buffer dropped) and sets the offset of `mq`, in
    /// one step under the table lock.
    pub(crate) fn reset(&self, mq: &MessageQueue, offset: i64, drop: impl FnOnce()) {
        let mut table = self.table.lock();
        drop();
        table.insert(mq.clone(), offset);
    }

    /// The offset in memory.
    pub(crate) fn read_memory(&self, mq: &MessageQueue) -> Option<i64> {
        self.table.lock().get(mq).copied()
    }

    /// The committed offset: from the broker (remote; `None` when the group has none), or
    /// the one loaded from the file (local). A remote answer also fills the memory table.
    pub(crate) async fn read_store(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        match &self.backend {
            Backend::Local { .. } => Ok(self.read_memory(mq)),
            Backend::Remote { instance } => {
                let offset = instance.query_consumer_offset(mq, &self.group).await?;
                if let Some(offset) = offset {
                    self.update(mq, offset, false);
                }
                Ok(offset)
            }
        }
    }

    /// Forgets `mq` (remote only: it was handed to another consumer). A local store keeps
    /// everything, as Java's does.
    pub(crate) fn remove(&self, mq: &MessageQueue) {
        if matches!(self.backend, Backend::Remote { .. }) {
            self.table.lock().remove(mq);
        }
    }

    /// Commits the offset of one queue.
    pub(crate) async fn persist(&self, mq: &MessageQueue) -> Result<()> {
        let instance = match &self.backend {
            Backend::Local { .. } => return self.persist_all(&[]).await,
            Backend::Remote { instance } => instance,
        };
        let _persisting = self.persisting.lock().await;
        match self.read_memory(mq) {
            Some(offset) => {
                instance
                    .update_consumer_offset(mq, &self.group, offset)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Commits the offsets of `assigned` (remote; offsets of other queues are dropped from
    /// memory), or writes the whole table to the file (local).
    pub(crate) async fn persist_all(&self, assigned: &[MessageQueue]) -> Result<()> {
        let _persisting = self.persisting.lock().await;
        match &self.backend {
            Backend::Local { path } => {
                let snapshot = self.table.lock().clone();
                let path = path.clone();
                let group = self.group.clone();
                let write_path = path.clone();
                tokio::task::spawn_blocking(move || save_file(&write_path, &group, &snapshot))
                    .await
                    .map_err(|e| ClientError::Io {
                        action: "write offsets to",
                        path,
                        source: std::io::Error::other(e),
                    })?
            }
            Backend::Remote { instance } => {
                let offsets: Vec<(MessageQueue, i64)> = {
                    let mut table = self.table.lock();
                    table.retain(|mq, _| assigned.contains(mq));
                    table.iter().map(|(mq, o)| (mq.clone(), *o)).collect()
                };
                let mut first_error = None;
                for (mq, offset) in offsets {
                    if let Err(e) = instance
                        .update_consumer_offset(&mq, &self.group, offset)
                        .await
                    {
                        tracing::warn!(group = %self.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, offset, error = %e, "commit consumer offset failed");
                        first_error.get_or_insert(e);
                    }
                }
                first_error.map_or(Ok(()), Err)
            }
        }
    }
}

/// The broadcasting offset file of `group` in `dir`.
pub(crate) fn offset_file(dir: &Path, group: &str) -> PathBuf {
    dir.join(sanitize(group)).join("offsets.json")
}

/// A group name made safe as a directory name.
fn sanitize(group: &str) -> String {
    group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.%".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The file format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetFile {
    group: String,
    offsets: Vec<OffsetEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OffsetEntry {
    topic: String,
    broker_name: String,
    queue_id: i32,
    offset: i64,
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ClientError {
    let path = path.to_owned();
    move |source| ClientError::Io {
        action,
        path,
        source,
    }
}

/// Reads an offsets file; a missing file is an empty table.
fn load_file(path: &Path) -> Result<HashMap<MessageQueue, i64>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io_error("read offsets from", path)(e)),
    };
    let file: OffsetFile = serde_json::from_str(&text).map_err(|e| {
        io_error("parse offsets in", path)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    })?;
    Ok(file
        .offsets
        .into_iter()
        .map(|e| {
            (
                MessageQueue {
                    topic: e.topic,
                    broker_name: e.broker_name,
                    queue_id: e.queue_id,
                },
                e.offset,
            )
        })
        .collect())
}

/// Writes an offsets file crash-safely: a temporary file, fsync, rename, fsync the folder.
fn save_file(path: &Path, group: &str, table: &HashMap<MessageQueue, i64>) -> Result<()> {
    let mut offsets: Vec<OffsetEntry> = table
        .iter()
        .map(|(mq, offset)| OffsetEntry {
            topic: mq.topic.clone(),
            broker_name: mq.broker_name.clone(),
            queue_id: mq.queue_id,
            offset: *offset,
        })
        .collect();
    offsets.sort_by(|a, b| {
        (&a.topic, &a.broker_name, a.queue_id).cmp(&(&b.topic, &b.broker_name, b.queue_id))
    });
    let file = OffsetFile {
        group: group.to_owned(),
        offsets,
    };
    let text = serde_json::to_vec_pretty(&file)
        .map_err(|e| io_error("encode offsets for", path)(std::io::Error::other(e)))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io_error("create", &tmp))?;
        f.write_all(&text).map_err(io_error("write", &tmp))?;
        f.sync_all().map_err(io_error("sync", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_error("rename into place", path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(topic: &str, queue_id: i32) -> MessageQueue {
        MessageQueue {
            topic: topic.into(),
            broker_name: "broker-a".into(),
            queue_id,
        }
    }

    #[tokio::test]
    async fn local_offsets_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OffsetStore::local(dir.path(), "group/with:odd chars")
            .await
            .expect("opens");
        assert_eq!(store.read_store(&mq("T", 0)).await.ok(), Some(None));
        store.update(&mq("T", 0), 10, false);
        store.update(&mq("T", 0), 5, true);
        store.update(&mq("T", 1), 7, true);
        store.remove(&mq("T", 1));
        assert_eq!(store.read_memory(&mq("T", 0)), Some(10));
        store.persist_all(&[]).await.expect("persists");
        let again = OffsetStore::local(dir.path(), "group/with:odd chars")
            .await
            .expect("reopens");
        assert_eq!(again.read_store(&mq("T", 0)).await.ok(), Some(Some(10)));
        assert_eq!(again.read_store(&mq("T", 1)).await.ok(), Some(Some(7)));
        let file = dir.path().join("group_with_odd_chars").join("offsets.json");
        let text = std::fs::read_to_string(file).expect("file");
        assert!(text.contains("\"brokerName\": \"broker-a\""), "{text}");
    }

    #[tokio::test]
    async fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("g")).expect("mkdir");
        std::fs::write(dir.path().join("g").join("offsets.json"), b"{not json").expect("write");
        let err = OffsetStore::local(dir.path(), "g").await.map(|_| ());
        assert!(
            matches!(
                err,
                Err(ClientError::Io {
                    action: "parse offsets in",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn increase_only_never_moves_back() {
        let store = OffsetStore {
            group: "g".into(),
            backend: Backend::Local {
                path: PathBuf::from("unused"),
            },
            table: Mutex::default(),
            persisting: tokio::sync::Mutex::new(()),
        };
        store.update(&mq("T", 0), 3, true);
        store.update(&mq("T", 0), 2, true);
        assert_eq!(store.read_memory(&mq("T", 0)), Some(3));
        store.update(&mq("T", 0), 1, false);
        assert_eq!(store.read_memory(&mq("T", 0)), Some(1));
    }
}
