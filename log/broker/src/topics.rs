//! Topic configurations of this broker: created explicitly (UPDATE_AND_CREATE_TOPIC) or on
//! first send from the `TBW102` template, persisted in `topics.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use parking_lot::RwLock;
use tributary_protocol::body::{DataVersion, TopicConfig, TopicConfigSerializeWrapper};
use tributary_protocol::perm;

/// The template topic clients name as `defaultTopic` when sending to an unknown topic.
pub const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Used by the Java tools to check a broker.
pub const SELF_TEST_TOPIC: &str = "SELF_TEST_TOPIC";
/// Longest topic name (RocketMQ's limit).
pub const MAX_TOPIC_LEN: usize = 127;

/// Why a topic name is refused, or `None` when it is valid: 1..=127 characters of
/// `[%|a-zA-Z0-9_-]`, as RocketMQ's `TopicValidator`.
pub fn invalid_topic_name(topic: &str) -> Option<String> {
    if topic.is_empty() {
        return Some("the topic name is empty".into());
    }
    if topic.len() > MAX_TOPIC_LEN {
        return Some(format!(
            "the topic name is {} characters long; the limit is {MAX_TOPIC_LEN}",
            topic.len()
        ));
    }
    if let Some(c) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')))
    {
        return Some(format!(
            "the topic name {topic:?} contains {c:?}; allowed are letters, digits and % | _ -"
        ));
    }
    None
}

/// All topic configurations, with the version the NameServers compare.
#[derive(Debug)]
pub struct TopicManager {
    path: PathBuf,
    state: RwLock<TopicConfigSerializeWrapper>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn topic(name: &str, queues: i32, perm: i32) -> TopicConfig {
    TopicConfig {
        topic_name: name.to_string(),
        read_queue_nums: queues,
        write_queue_nums: queues,
        perm,
        ..TopicConfig::default()
    }
}

impl TopicManager {
    /// Loads `path` (a missing file is a fresh broker) and adds the system topics.
    pub fn open(
        path: PathBuf,
        cluster_name: &str,
        broker_name: &str,
        auto_create: bool,
        default_queue_nums: i32,
    ) -> std::io::Result<Self> {
        let mut state: TopicConfigSerializeWrapper =
            crate::persist::load(&path)?.unwrap_or_default();
        let rw = perm::READ | perm::WRITE;
        let template_perm = if auto_create { rw | perm::INHERIT } else { rw };
        let system = [
            topic(AUTO_CREATE_TOPIC, default_queue_nums, template_perm),
            topic(SELF_TEST_TOPIC, 1, rw),
            topic(cluster_name, 16, rw),
            topic(broker_name, 1, rw),
            topic(&crate::reply::reply_topic(cluster_name), 1, rw),
        ];
        for t in system {
            state.topic_config_table.insert(t.topic_name.clone(), t);
        }
        state.data_version = DataVersion {
            state_version: 0,
            timestamp: now_ms(),
            counter: state.data_version.counter + 1,
        };
        Ok(Self {
            path,
            state: RwLock::new(state),
        })
    }

    /// The configuration of `topic`.
    pub fn get(&self, topic: &str) -> Option<TopicConfig> {
        self.state.read().topic_config_table.get(topic).cloned()
    }

    /// Every topic name.
    pub fn names(&self) -> Vec<String> {
        self.state
            .read()
            .topic_config_table
            .keys()
            .cloned()
            .collect()
    }

    /// A snapshot for registration and GET_ALL_TOPIC_CONFIG.
    pub fn snapshot(&self) -> TopicConfigSerializeWrapper {
        self.state.read().clone()
    }

    fn bump(state: &mut TopicConfigSerializeWrapper) {
        state.data_version.timestamp = now_ms();
        state.data_version.counter += 1;
    }

    fn persist(&self, state: &TopicConfigSerializeWrapper) -> std::io::Result<()> {
        // System topics are rebuilt at start; the file keeps them anyway, as Java's does.
        crate::persist::store(&self.path, state)
    }

    /// Creates or replaces `config`; returns whether anything changed.
    pub fn upsert(&self, config: TopicConfig) -> std::io::Result<bool> {
        let mut state = self.state.write();
        if state.topic_config_table.get(&config.topic_name) == Some(&config) {
            return Ok(false);
        }
        state
            .topic_config_table
            .insert(config.topic_name.clone(), config);
        Self::bump(&mut state);
        self.persist(&state)?;
        Ok(true)
    }

    /// The topic's configuration, creating it from the template `default_topic` when it does
    /// not exist and the template allows it (perm INHERIT). `Ok(None)`: not allowed.
    pub fn get_or_create(
        &self,
        name: &str,
        default_topic: &str,
        queue_nums: i32,
    ) -> std::io::Result<Option<(TopicConfig, bool)>> {
        if let Some(t) = self.get(name) {
            return Ok(Some((t, false)));
        }
        let mut state = self.state.write();
        if let Some(t) = state.topic_config_table.get(name) {
            return Ok(Some((t.clone(), false)));
        }
        let Some(template) = state.topic_config_table.get(default_topic) else {
            return Ok(None);
        };
        if !perm::is_inherited(template.perm) {
            return Ok(None);
        }
        let queues = queue_nums.clamp(1, template.write_queue_nums.max(1));
        let created = TopicConfig {
            topic_name: name.to_string(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: template.perm & !perm::INHERIT,
            topic_filter_type: template.topic_filter_type,
            topic_sys_flag: 0,
            order: false,
            attributes: BTreeMap::new(),
        };
        state
            .topic_config_table
            .insert(name.to_string(), created.clone());
        Self::bump(&mut state);
        self.persist(&state)?;
        tracing::info!(
            topic = name,
            queues,
            template = default_topic,
            "topic auto-created"
        );
        Ok(Some((created, true)))
    }

    /// Removes `topic`; returns whether it existed.
    pub fn remove(&self, topic: &str) -> std::io::Result<bool> {
        let mut state = self.state.write();
        if state.topic_config_table.remove(topic).is_none() {
            return Ok(false);
        }
        Self::bump(&mut state);
        self.persist(&state)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_rocketmq_rules() {
        assert_eq!(invalid_topic_name("Orders_2026-11|%RETRY%g"), None);
        assert!(invalid_topic_name("").is_some());
        assert!(invalid_topic_name("a b").is_some());
        assert!(invalid_topic_name("ünï").is_some());
        assert!(invalid_topic_name(&"x".repeat(128)).is_some());
        assert_eq!(invalid_topic_name(&"x".repeat(127)), None);
    }

    #[test]
    fn auto_creation_follows_the_template_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topics.json");
        let m = TopicManager::open(path.clone(), "C", "b", true, 8).expect("open");
        let v0 = m.snapshot().data_version.counter;
        let (t, created) = m
            .get_or_create("Orders", AUTO_CREATE_TOPIC, 4)
            .expect("io")
            .expect("allowed");
        assert!(created);
        assert_eq!((t.read_queue_nums, t.write_queue_nums), (4, 4));
        assert!(!perm::is_inherited(t.perm));
        assert!(m.snapshot().data_version.counter > v0);
        // Queue counts are capped by the template's.
        let (t, _) = m
            .get_or_create("Big", AUTO_CREATE_TOPIC, 64)
            .expect("io")
            .expect("ok");
        assert_eq!(t.write_queue_nums, 8);
        // A template without INHERIT does not create.
        assert!(m.get_or_create("X", "Orders", 4).expect("io").is_none());
        drop(m);
        let m = TopicManager::open(path.clone(), "C", "b", false, 8).expect("reopen");
        assert_eq!(m.get("Orders").map(|t| t.write_queue_nums), Some(4));
        // Auto-creation off: the template loses INHERIT.
        assert!(
            m.get_or_create("Y", AUTO_CREATE_TOPIC, 4)
                .expect("io")
                .is_none()
        );
        assert!(m.remove("Orders").expect("io"));
        assert!(m.get("Orders").is_none());
    }

    #[test]
    fn a_damaged_topics_file_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topics.json");
        std::fs::write(&path, b"{\"topicConfigTable\": {").expect("write");
        let err = TopicManager::open(path, "C", "b", true, 8).expect_err("damaged");
        assert!(err.to_string().contains("topics.json"), "{err}");
    }
}
