//! [`Admin`]: topic and consumer-group administration over the remoting protocol, the
//! operations `mqadmin` offers and the CLI builds on.
//!
//! Queue offsets and group lag are computed from per-queue requests every broker serves
//! (GET_MIN/MAX_OFFSET, QUERY_CONSUMER_OFFSET), so they work against any RocketMQ-compatible
//! broker.

use std::collections::{BTreeMap, BTreeSet};

use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{
    ClusterInfo, ConsumerConnection, JsonBody, MessageModel, SubscriptionData,
    SubscriptionGroupConfig, SubscriptionGroupWrapper, TopicList, TopicRouteData,
};
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{
    CreateTopicRequestHeader, DeleteTopicFromNamesrvRequestHeader, DeleteTopicRequestHeader,
    GetConsumerListByGroupRequestHeader,
};
use tributary_protocol::perm;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, broker_error, with_fields};
use crate::message::{AUTO_CREATE_TOPIC_KEY, MessageExt, MessageQueue, retry_topic};
use crate::producer::validate_topic;
use crate::route::MASTER_ID;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Readable queues per broker (8).
    pub read_queue_nums: i32,
    /// Writable queues per broker (8).
    pub write_queue_nums: i32,
    /// Permission bits (read + write).
    pub perm: i32,
    /// Ordered topic.
    pub order: bool,
}

impl TopicSpec {
    /// A readable and writable topic with `queues` queues per broker.
    pub fn new(name: impl Into<String>, queues: i32) -> Self {
        Self {
            name: name.into(),
            read_queue_nums: queues,
            write_queue_nums: queues,
            perm: perm::READ | perm::WRITE,
            order: false,
        }
    }
}

/// Where to create a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicTarget {
    /// One broker, by address.
    Broker(String),
    /// Every master of a cluster.
    Cluster(String),
    /// Every master the NameServer knows.
    AllBrokers,
}

/// A queue's stored range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    /// The queue.
    pub queue: MessageQueue,
    /// Smallest offset still stored.
    pub min_offset: i64,
    /// Offset after the last message.
    pub max_offset: i64,
}

/// A consumer group's progress on one queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLag {
    /// The queue.
    pub queue: MessageQueue,
    /// Offset after the last message of the queue.
    pub broker_offset: i64,
    /// The group's committed offset, `None` when it has none.
    pub consumer_offset: Option<i64>,
    /// Messages not yet consumed: `broker_offset - consumer_offset` (all of them when the
    /// group has no offset).
    pub lag: i64,
}

/// A consumer group's progress on every queue of the topics it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupProgress {
    /// The group.
    pub group: String,
    /// Per queue, sorted.
    pub queues: Vec<QueueLag>,
}

impl GroupProgress {
    /// The lag summed over every queue.
    pub fn total_lag(&self) -> i64 {
        self.queues.iter().map(|q| q.lag).sum()
    }
}

/// One client connected to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConnectionInfo {
    /// Client id.
    pub client_id: String,
    /// Client address as the broker sees it.
    pub client_addr: String,
    /// Client language.
    pub language: String,
    /// Client version ordinal.
    pub version: i64,
}

/// The live members of a consumer group and what they subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerConnections {
    /// Connected clients.
    pub connections: Vec<ConsumerConnectionInfo>,
    /// Subscriptions by topic.
    pub subscriptions: BTreeMap<String, SubscriptionData>,
    /// Clustering or broadcasting, when the broker says.
    pub message_model: Option<MessageModel>,
    /// The consume type name (`CONSUME_PASSIVELY`, ...), as the broker wrote it.
    pub consume_type: Option<String>,
}

/// Administration of topics and consumer groups.
#[derive(Debug, Clone)]
pub struct Admin {
    instance: ClientInstance,
    owns_instance: bool,
}

impl Admin {
    /// An admin client on its own client instance.
    pub async fn start(client: ClientConfig) -> Result<Self> {
        Ok(Self {
            instance: ClientInstance::start(client).await?,
            owns_instance: true,
        })
    }

    /// An admin client on a shared instance.
    pub fn with_instance(instance: ClientInstance) -> Self {
        Self {
            instance,
            owns_instance: false,
        }
    }

    /// The client instance.
    pub fn instance(&self) -> &ClientInstance {
        &self.instance
    }

    /// Shuts its own client instance down.
    pub async fn shutdown(&self) {
        if self.owns_instance {
            self.instance.shutdown().await;
        }
    }

    /// The brokers and clusters the NameServer knows.
    pub async fn cluster_info(&self) -> Result<ClusterInfo> {
        let request = RemotingCommand::new_request(request::GET_BROKER_CLUSTER_INFO, 0);
        let response = self.instance.invoke_namesrv(request).await?;
        let response = ok_from_namesrv(request::GET_BROKER_CLUSTER_INFO, response)?;
        Ok(ClusterInfo::decode(&response.body)?)
    }

    /// Master addresses of a target.
    async fn masters(&self, target: &TopicTarget) -> Result<Vec<String>> {
        if let TopicTarget::Broker(addr) = target {
            return Ok(vec![addr.clone()]);
        }
        let info = self.cluster_info().await?;
        let names: BTreeSet<&String> = match target {
            TopicTarget::Cluster(cluster) => info
                .cluster_addr_table
                .get(cluster)
                .ok_or_else(|| ClientError::invalid(format!("no cluster named {cluster}")))?
                .iter()
                .collect(),
            _ => info.broker_addr_table.keys().collect(),
        };
        Ok(names
            .into_iter()
            .filter_map(|name| info.broker_addr_table.get(name))
            .filter_map(|b| b.broker_addrs.get(&MASTER_ID).cloned())
            .collect())
    }

    /// Creates (or updates) a topic on the target's brokers; returns the broker addresses
    /// that took it.
    pub async fn create_topic(
        &self,
        spec: &TopicSpec,
        target: &TopicTarget,
    ) -> Result<Vec<String>> {
        validate_topic(&spec.name)?;
        if spec.read_queue_nums <= 0 || spec.write_queue_nums <= 0 {
            return Err(ClientError::invalid("queue counts must be at least 1"));
        }
        let masters = self.masters(target).await?;
        if masters.is_empty() {
            return Err(ClientError::invalid("no broker to create the topic on"));
        }
        let header = CreateTopicRequestHeader {
            topic: spec.name.clone(),
            default_topic: AUTO_CREATE_TOPIC_KEY.into(),
            read_queue_nums: spec.read_queue_nums,
            write_queue_nums: spec.write_queue_nums,
            perm: spec.perm,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: Some(0),
            order: spec.order,
            attributes: None,
            force: None,
        };
        for addr in &masters {
            let request = RemotingCommand::new_request(request::UPDATE_AND_CREATE_TOPIC, 0)
                .with_header(&header);
            self.instance.request(addr, request).await?;
        }
        Ok(masters)
    }

    /// Deletes a topic from the brokers that carry it and from every NameServer.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let route = self.instance.fetch_route(topic).await?;
        let masters: Vec<String> = route
            .iter()
            .flat_map(|r| r.broker_datas.iter())
            .filter_map(|b| b.broker_addrs.get(&MASTER_ID).cloned())
            .collect();
        for addr in &masters {
            let request = RemotingCommand::new_request(request::DELETE_TOPIC_IN_BROKER, 0)
                .with_header(&DeleteTopicRequestHeader {
                    topic: topic.to_owned(),
                });
            self.instance.request(addr, request).await?;
        }
        for addr in self.instance.namesrv_addrs().to_vec() {
            let request = RemotingCommand::new_request(request::DELETE_TOPIC_IN_NAMESRV, 0)
                .with_header(&DeleteTopicFromNamesrvRequestHeader {
                    topic: topic.to_owned(),
                    cluster_name: None,
                });
            self.instance.request(&addr, request).await?;
        }
        Ok(())
    }

    /// Every topic the NameServer knows, sorted.
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let request = RemotingCommand::new_request(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, 0);
        let response = self.instance.invoke_namesrv(request).await?;
        let response = ok_from_namesrv(request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER, response)?;
        Ok(TopicList::decode(&response.body)?
            .topic_list
            .into_iter()
            .collect())
    }

    /// A topic's route.
    pub async fn topic_route(&self, topic: &str) -> Result<TopicRouteData> {
        self.instance
            .fetch_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
            })
    }

    /// Every readable queue of a topic with its stored range.
    pub async fn topic_status(&self, topic: &str) -> Result<Vec<QueueStatus>> {
        let route = self
            .instance
            .update_route(topic)
            .await?
            .filter(|r| !r.from_template)
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
            })?;
        let queries = route.subscribe_queues.iter().map(|mq| async move {
            let min = self.instance.min_offset(mq).await?;
            let max = self.instance.max_offset(mq).await?;
            Ok::<_, ClientError>(QueueStatus {
                queue: mq.clone(),
                min_offset: min,
                max_offset: max,
            })
        });
        futures_util::future::join_all(queries)
            .await
            .into_iter()
            .collect()
    }

    /// Consumer groups known to the brokers (subscription group configurations), sorted.
    pub async fn consumer_groups(&self) -> Result<Vec<String>> {
        let mut groups = BTreeSet::new();
        for addr in self.masters(&TopicTarget::AllBrokers).await? {
            let request =
                RemotingCommand::new_request(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, 0);
            let response = self.instance.request(&addr, request).await?;
            let body = SubscriptionGroupWrapper::decode(&response.body)?;
            groups.extend(body.subscription_group_table.into_keys());
        }
        Ok(groups.into_iter().collect())
    }

    /// A group's configuration on each master broker of `target` (the broker's defaults where
    /// it has none stored), by broker address.
    pub async fn group_configs(
        &self,
        group: &str,
        target: &TopicTarget,
    ) -> Result<Vec<(String, SubscriptionGroupConfig)>> {
        let mut out = Vec::new();
        for addr in self.masters(target).await? {
            let request =
                RemotingCommand::new_request(request::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, 0);
            let response = self.instance.request(&addr, request).await?;
            let mut body = SubscriptionGroupWrapper::decode(&response.body)?;
            let config = body
                .subscription_group_table
                .remove(group)
                .unwrap_or_else(|| SubscriptionGroupConfig {
                    group_name: group.to_owned(),
                    ..SubscriptionGroupConfig::default()
                });
            out.push((addr, config));
        }
        Ok(out)
    }

    /// Creates or replaces a group's configuration on the master brokers of `target`
    /// (UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, `mqadmin updateSubGroup`); returns the broker
    /// addresses that took it.
    pub async fn update_group_config(
        &self,
        config: &SubscriptionGroupConfig,
        target: &TopicTarget,
    ) -> Result<Vec<String>> {
        let masters = self.masters(target).await?;
        if masters.is_empty() {
            return Err(ClientError::invalid("no broker to configure the group on"));
        }
        let body = config.encode()?;
        for addr in &masters {
            let request =
                RemotingCommand::new_request(request::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, 0)
                    .with_body(body.clone());
            self.instance.request(addr, request).await?;
        }
        Ok(masters)
    }

    /// The live members of a group, from the first broker that knows it.
    pub async fn consumer_connections(&self, group: &str) -> Result<ConsumerConnections> {
        let mut last = None;
        for addr in self.masters(&TopicTarget::AllBrokers).await? {
            let request = RemotingCommand::new_request(request::GET_CONSUMER_CONNECTION_LIST, 0)
                .with_header(&GetConsumerListByGroupRequestHeader {
                    consumer_group: group.to_owned(),
                });
            match self.instance.request(&addr, request).await {
                Ok(response) => {
                    let body = ConsumerConnection::decode(&response.body)?;
                    return Ok(ConsumerConnections {
                        connections: body
                            .connection_set
                            .into_iter()
                            .map(|c| ConsumerConnectionInfo {
                                client_id: c.client_id,
                                client_addr: c.client_addr,
                                language: c.language,
                                version: i64::from(c.version),
                            })
                            .collect(),
                        subscriptions: body.subscription_table,
                        message_model: Some(body.message_model),
                        consume_type: Some(body.consume_type.java_name().to_owned()),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(ClientError::Broker {
                code: response::CONSUMER_NOT_ONLINE,
                ..
            })
            | None => Ok(ConsumerConnections::default()),
            Some(e) => Err(e),
        }
    }

    /// The topics a group has offsets for (QUERY_TOPICS_BY_CONSUMER), or, from brokers that
    /// do not answer that, the topics its live members subscribe to.
    pub async fn group_topics(&self, group: &str) -> Result<Vec<String>> {
        let mut topics = BTreeSet::new();
        let mut answered = false;
        for addr in self.masters(&TopicTarget::AllBrokers).await? {
            let request = with_fields(
                RemotingCommand::new_request(request::QUERY_TOPICS_BY_CONSUMER, 0),
                &[("group", group)],
            );
            let response = self
                .instance
                .invoke(&addr, request, self.instance.config().request_timeout)
                .await?;
            match response.code {
                response::SUCCESS => {
                    answered = true;
                    topics.extend(TopicList::decode(&response.body)?.topic_list);
                }
                response::REQUEST_CODE_NOT_SUPPORTED => {}
                _ => {
                    return Err(broker_error(
                        &addr,
                        request::QUERY_TOPICS_BY_CONSUMER,
                        response,
                    ));
                }
            }
        }
        if !answered {
            topics.extend(
                self.consumer_connections(group)
                    .await?
                    .subscriptions
                    .into_keys(),
            );
        }
        Ok(topics.into_iter().collect())
    }

    /// A group's committed offsets and lag on every queue of the topics it reads (its retry
    /// topic included when it exists).
    pub async fn group_progress(&self, group: &str) -> Result<GroupProgress> {
        let mut topics = self.group_topics(group).await?;
        let retry = retry_topic(group);
        if !topics.contains(&retry) {
            topics.push(retry);
        }
        let mut queues = Vec::new();
        for topic in topics {
            let Some(route) = self
                .instance
                .update_route(&topic)
                .await?
                .filter(|r| !r.from_template)
            else {
                continue;
            };
            let queries = route.subscribe_queues.iter().map(|mq| async move {
                let broker_offset = self.instance.max_offset(mq).await?;
                let consumer_offset = self.instance.query_consumer_offset(mq, group).await?;
                let lag = (broker_offset - consumer_offset.unwrap_or(0)).max(0);
                Ok::<_, ClientError>(QueueLag {
                    queue: mq.clone(),
                    broker_offset,
                    consumer_offset,
                    lag,
                })
            });
            for lag in futures_util::future::join_all(queries).await {
                queues.push(lag?);
            }
        }
        queues.sort_by(|a, b| a.queue.cmp(&b.queue));
        Ok(GroupProgress {
            group: group.to_owned(),
            queues,
        })
    }

    /// A stored message by its offset message id.
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        self.instance.view_message(offset_msg_id).await
    }
}

fn ok_from_namesrv(request_code: i32, response: RemotingCommand) -> Result<RemotingCommand> {
    if response.code == response::SUCCESS {
        Ok(response)
    } else {
        Err(broker_error("namesrv", request_code, response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_sums_lag() {
        let mq = |id| MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: id,
        };
        let progress = GroupProgress {
            group: "g".into(),
            queues: vec![
                QueueLag {
                    queue: mq(0),
                    broker_offset: 10,
                    consumer_offset: Some(4),
                    lag: 6,
                },
                QueueLag {
                    queue: mq(1),
                    broker_offset: 3,
                    consumer_offset: None,
                    lag: 3,
                },
            ],
        };
        assert_eq!(progress.total_lag(), 9);
    }
}
