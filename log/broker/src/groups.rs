//! Consumer group configurations set by administrators (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
//! RocketMQ's `mqadmin updateSubGroup`), persisted in `subscriptionGroup.json`. The broker
//! reads `retryMaxTimes` from them: the retries before a message goes to the group's
//! dead-letter topic when the consumer does not say (`maxReconsumeTimes`). Groups without a
//! stored configuration have RocketMQ's defaults, with `broker.max_reconsume_times`.

use std::path::PathBuf;

use parking_lot::RwLock;
use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{SubscriptionGroupConfig, SubscriptionGroupWrapper};
use tributary_protocol::codes::response as rs;

use crate::Broker;
use crate::processor::{Refusal, Reply};
use crate::schedule::now_ms;
use crate::topics::invalid_topic_name;

/// Stored group configurations.
#[derive(Debug)]
pub struct GroupConfigs {
    path: PathBuf,
    state: RwLock<SubscriptionGroupWrapper>,
}

impl GroupConfigs {
    /// Loads `path`; a missing file is a broker without stored configurations.
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let state = crate::persist::load(&path)?.unwrap_or_default();
        Ok(Self {
            path,
            state: RwLock::new(state),
        })
    }

    /// The stored configuration of `group`.
    pub fn get(&self, group: &str) -> Option<SubscriptionGroupConfig> {
        self.state
            .read()
            .subscription_group_table
            .get(group)
            .cloned()
    }

    /// Every stored configuration.
    pub fn all(&self) -> Vec<SubscriptionGroupConfig> {
        self.state
            .read()
            .subscription_group_table
            .values()
            .cloned()
            .collect()
    }

    /// Creates or replaces a group's configuration and writes the file.
    pub fn upsert(&self, config: SubscriptionGroupConfig) -> std::io::Result<()> {
        let mut state = self.state.write();
        state
            .subscription_group_table
            .insert(config.group_name.clone(), config);
        state.data_version.timestamp = now_ms();
        state.data_version.counter += 1;
        crate::persist::store(&self.path, &*state)
    }
}

impl Broker {
    /// A group's configuration: the stored one, else the defaults with the broker's retries.
    pub fn group_config(&self, group: &str) -> SubscriptionGroupConfig {
        self.groups
            .get(group)
            .unwrap_or_else(|| SubscriptionGroupConfig {
                group_name: group.to_string(),
                retry_max_times: self.config.max_reconsume_times,
                ..SubscriptionGroupConfig::default()
            })
    }

    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP: the body is the group's `SubscriptionGroupConfig`.
    pub(crate) async fn update_group_config(
        self: &std::sync::Arc<Self>,
        request: &RemotingCommand,
    ) -> Reply {
        let config: SubscriptionGroupConfig =
            serde_json::from_slice(&request.body).map_err(|e| {
                Refusal::new(
                    rs::INVALID_PARAMETER,
                    format!("bad SubscriptionGroupConfig body: {e}"),
                )
            })?;
        // Group names follow the topic name rules (RocketMQ's `validateGroup`).
        if let Some(why) = invalid_topic_name(&config.group_name) {
            return Err(Refusal::new(
                rs::INVALID_PARAMETER,
                why.replace("topic", "group"),
            ));
        }
        if config.retry_max_times < 0 {
            return Err(Refusal::new(
                rs::INVALID_PARAMETER,
                format!("retryMaxTimes {} is negative", config.retry_max_times),
            ));
        }
        let me = self.clone();
        let group = config.group_name.clone();
        let retry_max_times = config.retry_max_times;
        tokio::task::spawn_blocking(move || me.groups.upsert(config))
            .await
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
            .map_err(|e| {
                Refusal::new(rs::SYSTEM_ERROR, format!("save group configuration: {e}"))
            })?;
        tracing::info!(
            group,
            retry_max_times,
            "consumer group configuration updated"
        );
        Ok(RemotingCommand::response_to(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_survive_reopen_and_a_damaged_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("subscriptionGroup.json");
        let g = GroupConfigs::open(path.clone()).expect("open");
        assert!(g.get("g").is_none());
        g.upsert(SubscriptionGroupConfig {
            group_name: "g".into(),
            retry_max_times: 3,
            ..SubscriptionGroupConfig::default()
        })
        .expect("upsert");
        drop(g);
        let g = GroupConfigs::open(path.clone()).expect("reopen");
        assert_eq!(g.get("g").map(|c| c.retry_max_times), Some(3));
        assert_eq!(g.all().len(), 1);
        std::fs::write(&path, b"{").expect("damage");
        let err = GroupConfigs::open(path).expect_err("damaged");
        assert!(err.to_string().contains("subscriptionGroup.json"), "{err}");
    }
}
