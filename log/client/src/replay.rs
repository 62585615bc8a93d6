//! Replay and message lookups for [`Admin`]: moving a consumer group's offsets on a topic to a
//! point in time (INVOKE_BROKER_TO_RESET_OFFSET, after which the broker tells the group's
//! online consumers to pull again from there), and finding stored messages by id, by key in a
//! time range, and by queue offset.
//!
//! Everything goes through requests every RocketMQ 4.x broker serves. A Java 4.x broker
//! refuses to reset a group with no member online (CONSUMER_NOT_ONLINE); the reset then falls
//! back, as `mqadmin` does, to looking up each queue's offset and committing it.

use std::collections::BTreeSet;

use tributary_protocol::RemotingCommand;
use tributary_protocol::body::ResetOffsetBody;
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{QueryMessageRequestHeader, ResetOffsetRequestHeader};
use tributary_protocol::message::OffsetMessageId;

use crate::admin::Admin;
use crate::error::{ClientError, Result};
use crate::instance::{PullArgs, PullStatus, broker_error};
use crate::message::{MessageExt, MessageQueue};
use crate::record::decode_messages;
use crate::route::MASTER_ID;

/// QUERY_MESSAGE: look the key up as a unique message id.
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// Most messages one unique-id lookup asks each broker for.
const MAX_UNIQUE_KEY_MESSAGES: i32 = 32;

/// Where to move a group's offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    /// The oldest stored message of each queue.
    First,
    /// The end of each queue: only messages sent from now on.
    Last,
    /// The first message of each queue stored at or after this time (ms since the epoch).
    Time(i64),
}

impl ResetTarget {
    /// The `timestamp` of the request: -1 is the end of each queue, 0 the start.
    fn timestamp(self) -> i64 {
        match self {
            Self::First => 0,
            Self::Last => -1,
            Self::Time(ms) => ms.max(0),
        }
    }
}

/// Where a reset put one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueReset {
    /// The queue.
    pub queue: MessageQueue,
    /// The group's offset there now.
    pub offset: i64,
}

impl Admin {
    /// Master addresses of the brokers that carry `topic`, with their names.
    async fn topic_masters(&self, topic: &str) -> Result<Vec<(String, String)>> {
        let route = self.topic_route(topic).await?;
        let mut masters: Vec<(String, String)> = route
            .broker_datas
            .iter()
            .filter_map(|b| {
                b.broker_addrs
                    .get(&MASTER_ID)
                    .map(|addr| (b.broker_name.clone(), addr.clone()))
            })
            .collect();
        masters.sort();
        Ok(masters)
    }

    /// Moves `group`'s offsets on every queue of `topic` to `target`, on every broker of the
    /// topic; online consumers of the group are told to drop what they buffered and pull from
    /// there. Returns the new offset of every queue, sorted.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        target: ResetTarget,
    ) -> Result<Vec<QueueReset>> {
        let masters = self.topic_masters(topic).await?;
        let mut out = Vec::new();
        let mut unknown_group = None;
        for (broker_name, addr) in &masters {
            let request = RemotingCommand::new_request(request::INVOKE_BROKER_TO_RESET_OFFSET, 0)
                .with_header(&ResetOffsetRequestHeader {
                    topic: topic.to_owned(),
                    group: group.to_owned(),
                    timestamp: target.timestamp(),
                    is_force: Some(true),
                    queue_id: None,
                    offset: None,
                });
            let answer = self
                .instance()
                .invoke(addr, request, self.instance().config().request_timeout)
                .await?;
            match answer.code {
                response::SUCCESS => {
                    let body = ResetOffsetBody::decode(&answer.body)?;
                    out.extend(
                        body.offset_table
                            .into_iter()
                            .map(|(queue, offset)| QueueReset { queue, offset }),
                    );
                }
                response::CONSUMER_NOT_ONLINE => {
                    out.extend(
                        self.reset_by_commits(group, topic, broker_name, target)
                            .await?,
                    );
                }
                response::SUBSCRIPTION_GROUP_NOT_EXIST => {
                    unknown_group = Some(broker_error(
                        addr,
                        request::INVOKE_BROKER_TO_RESET_OFFSET,
                        answer,
                    ));
                }
                _ => {
                    return Err(broker_error(
                        addr,
                        request::INVOKE_BROKER_TO_RESET_OFFSET,
                        answer,
                    ));
                }
            }
        }
        if out.is_empty()
            && let Some(e) = unknown_group
        {
            return Err(e);
        }
        out.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(out)
    }

    /// The 4.x fallback for an offline group: each queue's target offset, committed with
    /// UPDATE_CONSUMER_OFFSET.
    async fn reset_by_commits(
        &self,
        group: &str,
        topic: &str,
        broker_name: &str,
        target: ResetTarget,
    ) -> Result<Vec<QueueReset>> {
        let route =
            self.instance()
                .update_route(topic)
                .await?
                .ok_or_else(|| ClientError::NoRoute {
                    topic: topic.to_owned(),
                })?;
        let mut out = Vec::new();
        for mq in route
            .subscribe_queues
            .iter()
            .filter(|mq| mq.broker_name == broker_name)
        {
            let offset = match target {
                ResetTarget::First => self.instance().min_offset(mq).await?,
                ResetTarget::Last => self.instance().max_offset(mq).await?,
                ResetTarget::Time(ms) => self.instance().search_offset(mq, ms).await?,
            };
            self.instance()
                .update_consumer_offset(mq, group, offset)
                .await?;
            out.push(QueueReset {
                queue: mq.clone(),
                offset,
            });
        }
        Ok(out)
    }

    /// QUERY_MESSAGE on every broker of `topic`: answers found, sorted by store time.
    async fn query(
        &self,
        topic: &str,
        header: &QueryMessageRequestHeader,
        unique: bool,
    ) -> Result<Vec<MessageExt>> {
        let mut found = Vec::new();
        for (broker_name, addr) in self.topic_masters(topic).await? {
            let mut request =
                RemotingCommand::new_request(request::QUERY_MESSAGE, 0).with_header(header);
            if unique {
                request.ext_fields.insert(UNIQUE_KEY_QUERY, "true");
            }
            let answer = self
                .instance()
                .invoke(&addr, request, self.instance().config().request_timeout)
                .await?;
            match answer.code {
                response::SUCCESS => {
                    found.extend(decode_messages(&answer.body, &broker_name)?);
                }
                response::QUERY_NOT_FOUND => {}
                _ => return Err(broker_error(&addr, request::QUERY_MESSAGE, answer)),
            }
        }
        found.retain(|m| m.topic == topic);
        found.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
        Ok(found)
    }

    /// Messages of `topic` with `key` among their keys, stored between `begin_ms` and
    /// `end_ms` (inclusive), oldest first, at most `max`.
    pub async fn query_messages_by_key(
        &self,
        topic: &str,
        key: &str,
        begin_ms: i64,
        end_ms: i64,
        max: usize,
    ) -> Result<Vec<MessageExt>> {
        let header = QueryMessageRequestHeader {
            topic: topic.to_owned(),
            key: key.to_owned(),
            max_num: i32::try_from(max).unwrap_or(i32::MAX),
            begin_timestamp: begin_ms,
            end_timestamp: end_ms,
        };
        let mut found = self.query(topic, &header, false).await?;
        // The index is a hash index: keep exact matches only.
        found.retain(|m| m.keys().contains(&key));
        found.truncate(max);
        Ok(found)
    }

    /// Messages of `topic` whose unique id (`UNIQ_KEY`, the id producers report) is `id`:
    /// the message, and its copies in retry or dead-letter topics when `topic` is one of
    /// those. Oldest first.
    pub async fn query_message_by_unique_key(
        &self,
        topic: &str,
        id: &str,
    ) -> Result<Vec<MessageExt>> {
        let header = QueryMessageRequestHeader {
            topic: topic.to_owned(),
            key: id.to_owned(),
            max_num: MAX_UNIQUE_KEY_MESSAGES,
            begin_timestamp: 0,
            end_timestamp: i64::MAX,
        };
        let mut found = self.query(topic, &header, true).await?;
        found.retain(|m| m.uniq_id() == Some(id));
        Ok(found)
    }

    /// Finds a message by id: an offset message id (store host and commit log offset) of a
    /// broker the NameServers know is read directly; anything else is looked up as a unique
    /// id in `topic`, or in every topic when `topic` is `None`. Every stored copy is
    /// returned, oldest first (empty when none is found).
    pub async fn find_message(&self, id: &str, topic: Option<&str>) -> Result<Vec<MessageExt>> {
        if let Ok(offset_id) = OffsetMessageId::decode(id) {
            let host = offset_id.store_host.to_string();
            let info = self.cluster_info().await?;
            let known = info
                .broker_addr_table
                .values()
                .any(|b| b.broker_addrs.values().any(|a| *a == host));
            if known {
                match self.view_message(id).await {
                    Ok(m) if topic.is_none_or(|t| t == m.topic) => return Ok(vec![m]),
                    Ok(_) => {}
                    Err(ClientError::Broker { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let topics: Vec<String> = match topic {
            Some(t) => vec![t.to_owned()],
            None => self.searchable_topics().await?,
        };
        let mut found = Vec::new();
        for topic in topics {
            match self.query_message_by_unique_key(&topic, id).await {
                Ok(messages) => found.extend(messages),
                // A topic listed a moment ago may be gone.
                Err(ClientError::NoRoute { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        found.sort_by_key(|m| (m.store_timestamp, m.commit_log_offset));
        Ok(found)
    }

    /// Topics a message can be stored in: every listed topic but the per-broker and
    /// per-cluster ones RocketMQ registers, and the auto-create template.
    async fn searchable_topics(&self) -> Result<Vec<String>> {
        let info = self.cluster_info().await?;
        let mut internal: BTreeSet<String> = info.cluster_addr_table.keys().cloned().collect();
        internal.extend(info.broker_addr_table.keys().cloned());
        internal.insert(crate::message::AUTO_CREATE_TOPIC_KEY.to_owned());
        Ok(self
            .list_topics()
            .await?
            .into_iter()
            .filter(|t| !internal.contains(t))
            .collect())
    }

    /// The message at `offset` of `mq`, read with a pull (`None` when the queue holds no
    /// message there: before its first or at or after its end).
    pub async fn message_at(&self, mq: &MessageQueue, offset: i64) -> Result<Option<MessageExt>> {
        let result = self
            .instance()
            .pull(mq, &PullArgs::tools(offset, 1))
            .await?;
        Ok(match result.status {
            PullStatus::Found => result
                .messages
                .into_iter()
                .find(|m| m.queue_offset == offset),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_java_timestamps() {
        assert_eq!(ResetTarget::First.timestamp(), 0);
        assert_eq!(ResetTarget::Last.timestamp(), -1);
        assert_eq!(
            ResetTarget::Time(1_700_000_000_000).timestamp(),
            1_700_000_000_000
        );
        assert_eq!(ResetTarget::Time(-5).timestamp(), 0);
    }
}
