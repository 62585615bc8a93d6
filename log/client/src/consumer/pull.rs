//! [`PullConsumer`]: reads queues at offsets the caller chooses (Java's
//! `DefaultMQPullConsumer`). It joins its group in heartbeats (as a `CONSUME_ACTIVELY`
//! consumer) so that the broker knows it, but never rebalances: the caller decides which
//! queues to read, and commits offsets when it wants to.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tributary_protocol::body::{ConsumeType, ConsumerData, MessageModel};

use super::ConsumeFrom;
use super::subscription::Subscription;
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{BoxFuture, ClientInstance, ConsumerMember, PullArgs, PullResult};
use crate::message::MessageQueue;

/// How long a blocking pull lets the broker wait for new messages.
const BLOCKING_SUSPEND: std::time::Duration = std::time::Duration::from_secs(15);

/// Pulls messages from queues at explicit offsets. Cheap to clone.
#[derive(Clone)]
pub struct PullConsumer {
    inner: Arc<PullInner>,
}

impl std::fmt::Debug for PullConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullConsumer")
            .field("group", &self.inner.group)
            .finish_non_exhaustive()
    }
}

struct PullInner {
    instance: ClientInstance,
    owns_instance: bool,
    group: String,
    subscriptions: Mutex<BTreeMap<String, Subscription>>,
    shut_down: AtomicBool,
}

impl ConsumerMember for PullInner {
    fn group(&self) -> &str {
        &self.group
    }

    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            group_name: self.group.clone(),
            consume_type: ConsumeType::ConsumeActively,
            message_model: MessageModel::Clustering,
            consume_from_where: ConsumeFrom::LastOffset.to_wire(),
            subscription_data_set: self
                .subscriptions
                .lock()
                .values()
                .map(Subscription::to_data)
                .collect(),
            unit_mode: false,
        }
    }

    fn topics(&self) -> Vec<String> {
        self.subscriptions.lock().keys().cloned().collect()
    }

    fn rebalance(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

impl PullConsumer {
    /// Starts a pull consumer of `group` on its own client instance.
    pub async fn start(client: ClientConfig, group: &str) -> Result<Self> {
        let instance = ClientInstance::start(client).await?;
        match Self::build(instance.clone(), group, true) {
            Ok(consumer) => Ok(consumer),
            Err(e) => {
                instance.shutdown().await;
                Err(e)
            }
        }
    }

    /// Starts a pull consumer of `group` on a shared client instance.
    pub fn with_instance(instance: ClientInstance, group: &str) -> Result<Self> {
        Self::build(instance, group, false)
    }

    fn build(instance: ClientInstance, group: &str, owns_instance: bool) -> Result<Self> {
        if group.is_empty() {
            return Err(ClientError::invalid("consumer group is empty"));
        }
        let inner = Arc::new(PullInner {
            instance: instance.clone(),
            owns_instance,
            group: group.to_owned(),
            subscriptions: Mutex::default(),
            shut_down: AtomicBool::new(false),
        });
        let member: Arc<dyn ConsumerMember> = inner.clone();
        let weak: Weak<dyn ConsumerMember> = Arc::downgrade(&member);
        instance.register_consumer(weak)?;
        Ok(Self { inner })
    }

    /// The client instance.
    pub fn instance(&self) -> &ClientInstance {
        &self.inner.instance
    }

    /// The readable queues of `topic`, sorted. Also records the topic as read by the group
    /// (it appears in heartbeats from now on).
    pub async fn fetch_subscribe_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        self.inner
            .subscriptions
            .lock()
            .entry(topic.to_owned())
            .or_insert_with(|| Subscription::tag(topic, "*"));
        let route = self
            .inner
            .instance
            .subscribe_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
            })?;
        Ok(route.subscribe_queues.clone())
    }

    /// Up to `max_nums` messages of `mq` from `offset` that match `subscription`; answers at
    /// once when there are none.
    pub async fn pull(
        &self,
        mq: &MessageQueue,
        subscription: &Subscription,
        offset: i64,
        max_nums: i32,
    ) -> Result<PullResult> {
        self.pull_inner(mq, subscription, offset, max_nums, false)
            .await
    }

    /// Like [`PullConsumer::pull`], but when there is nothing at `offset` the broker holds the
    /// request (up to 15 s) until a message arrives.
    pub async fn pull_blocking(
        &self,
        mq: &MessageQueue,
        subscription: &Subscription,
        offset: i64,
        max_nums: i32,
    ) -> Result<PullResult> {
        self.pull_inner(mq, subscription, offset, max_nums, true)
            .await
    }

    async fn pull_inner(
        &self,
        mq: &MessageQueue,
        subscription: &Subscription,
        offset: i64,
        max_nums: i32,
        block: bool,
    ) -> Result<PullResult> {
        if self.inner.shut_down.load(Ordering::Acquire) {
            return Err(ClientError::Shutdown {
                what: "pull consumer",
            });
        }
        if max_nums <= 0 {
            return Err(ClientError::invalid("max_nums must be at least 1"));
        }
        let args = PullArgs {
            group: self.inner.group.clone(),
            offset,
            max_nums,
            expression: Some(subscription.expression.clone()),
            expression_type: subscription.expression_type.name().to_owned(),
            sub_version: subscription.version,
            commit_offset: None,
            suspend: block.then_some(BLOCKING_SUSPEND),
        };
        let mut result = self.inner.instance.pull(mq, &args).await?;
        result.messages.retain(|m| subscription.matches(m));
        Ok(result)
    }

    /// The smallest offset still stored in `mq`.
    pub async fn min_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.inner.instance.min_offset(mq).await
    }

    /// The offset after the last message of `mq`.
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.inner.instance.max_offset(mq).await
    }

    /// The offset of the first message of `mq` stored at or after `timestamp_ms`.
    pub async fn search_offset(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
        self.inner.instance.search_offset(mq, timestamp_ms).await
    }

    /// The group's committed offset of `mq`, `None` when it has none.
    pub async fn committed_offset(&self, mq: &MessageQueue) -> Result<Option<i64>> {
        self.inner
            .instance
            .query_consumer_offset(mq, &self.inner.group)
            .await
    }

    /// Commits the group's offset of `mq` on the broker.
    pub async fn commit_offset(&self, mq: &MessageQueue, offset: i64) -> Result<()> {
        self.inner
            .instance
            .update_consumer_offset(mq, &self.inner.group, offset)
            .await
    }

    /// Unregisters from the brokers (and shuts its own client down).
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner
            .instance
            .unregister_consumer(&self.inner.group)
            .await;
        if self.inner.owns_instance {
            self.inner.instance.shutdown().await;
        }
    }
}
