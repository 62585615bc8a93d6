//! The KV config: namespaced string settings kept by the NameServer for admin tools and
//! brokers (RocketMQ's `KVConfigManager`), optionally persisted to a JSON file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tributary_protocol::body::KvTable;

use crate::error::NamesrvError;

/// The namespace whose entries (topic → `brokerName:queueNums;…`) brokers receive in the
/// REGISTER_BROKER answer and clients in `orderTopicConf`.
pub const ORDER_TOPIC_CONFIG: &str = "ORDER_TOPIC_CONFIG";

type Table = BTreeMap<String, BTreeMap<String, String>>;

/// The file's layout, RocketMQ's `KVConfigSerializeWrapper`: `{"configTable":{ns:{k:v}}}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KvFile {
    #[serde(default)]
    config_table: Table,
}

/// The KV table and the file that keeps it.
#[derive(Debug)]
pub(crate) struct KvConfig {
    table: RwLock<Table>,
    path: Option<PathBuf>,
    /// Held across change + write so that the file is written in the order of the changes.
    writing: tokio::sync::Mutex<()>,
}

impl KvConfig {
    /// Loads `path` when given (a missing file is an empty table).
    pub(crate) fn open(path: Option<PathBuf>) -> Result<Self, NamesrvError> {
        let table = match &path {
            Some(path) => load(path)?,
            None => Table::new(),
        };
        Ok(Self {
            table: RwLock::new(table),
            path,
            writing: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn get(&self, namespace: &str, key: &str) -> Option<String> {
        self.table.read().get(namespace)?.get(key).cloned()
    }

    /// Every entry of `namespace`, `None` when the namespace does not exist.
    pub(crate) fn namespace(&self, namespace: &str) -> Option<KvTable> {
        self.table.read().get(namespace).map(|entries| KvTable {
            table: entries.clone(),
        })
    }

    /// Sets `key` in `namespace`, then writes the file.
    pub(crate) async fn put(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
    ) -> Result<(), NamesrvError> {
        let _writing = self.writing.lock().await;
        let previous = self
            .table
            .write()
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        tracing::info!(namespace, key, value, previous, "KV config set");
        self.persist().await
    }

    /// Removes `key` from `namespace` (an empty namespace stays, as in RocketMQ), then writes
    /// the file.
    pub(crate) async fn delete(&self, namespace: &str, key: &str) -> Result<(), NamesrvError> {
        let _writing = self.writing.lock().await;
        let removed = self
            .table
            .write()
            .get_mut(namespace)
            .and_then(|entries| entries.remove(key));
        tracing::info!(namespace, key, removed, "KV config deleted");
        self.persist().await
    }

    /// Writes the table to the file, on a blocking thread (it fsyncs). Call with `writing` held.
    async fn persist(&self) -> Result<(), NamesrvError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let file = KvFile {
            config_table: self.table.read().clone(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| NamesrvError::KvConfigIo {
            action: "encode",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || write_durably(&write_path, &text))
            .await
            .map_err(|e| NamesrvError::KvConfigIo {
                action: "write",
                path,
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

fn load(path: &Path) -> Result<Table, NamesrvError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Table::new()),
        Err(source) => {
            return Err(NamesrvError::KvConfigIo {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: KvFile =
        serde_json::from_str(&text).map_err(|source| NamesrvError::KvConfigParse {
            path: path.to_owned(),
            source,
        })?;
    tracing::info!(path = %path.display(), namespaces = file.config_table.len(), "KV config loaded");
    Ok(file.config_table)
}

/// Writes `bytes` to `path` atomically and durably: a temp file beside it, fsync, rename,
/// fsync of the directory. Creates the directory if needed.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), NamesrvError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| NamesrvError::KvConfigIo {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(io("create the directory of", path))?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("rename", path))?;
    if let Some(dir) = dir {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("fsync the directory of", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_survive_a_reopen_in_rocketmq_s_file_format() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("namesrv").join("kvConfig.json");
        let kv = KvConfig::open(Some(path.clone())).expect("opens empty");
        kv.put(ORDER_TOPIC_CONFIG, "TopicA", "broker-a:4")
            .await
            .expect("put");
        kv.put("ns", "k", "v").await.expect("put");
        kv.delete("ns", "k").await.expect("delete");
        let text = std::fs::read_to_string(&path).expect("file written");
        let json: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            json["configTable"]["ORDER_TOPIC_CONFIG"]["TopicA"],
            "broker-a:4"
        );

        let again = KvConfig::open(Some(path)).expect("reopens");
        assert_eq!(
            again.get(ORDER_TOPIC_CONFIG, "TopicA").as_deref(),
            Some("broker-a:4")
        );
        assert_eq!(again.get("ns", "k"), None);
        assert_eq!(again.namespace("ns").map(|t| t.table.len()), Some(0));
        assert!(again.namespace("absent").is_none());
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("kvConfig.json");
        std::fs::write(&path, "{not json").expect("write");
        let err = KvConfig::open(Some(path.clone())).map(|_| ());
        assert!(
            matches!(&err, Err(NamesrvError::KvConfigParse { path: p, .. }) if *p == path),
            "{err:?}"
        );
    }
}
