//! [`PushConsumer`]: Java's `DefaultMQPushConsumer` on tokio.
//!
//! Per assigned queue, one pull task long-polls the broker (PULL_MESSAGE with a 15 s suspend)
//! and buffers what it gets in the queue's [`ProcessQueue`], pausing while the buffer is over
//! its count, byte or span limits. Concurrent listeners get the messages in consume tasks
//! (at most `consume_concurrency` listener calls at once); orderly listeners get one queue's
//! messages one call at a time while the client holds the queue's lock on the broker.
//!
//! Offsets move only past consumed messages: the commit offset of a queue is its oldest
//! buffered message. They are committed every 5 s, when a rebalance hands a queue to another
//! consumer, and on shutdown, so a consumer that stops or crashes makes the next owner
//! consume again at most what was in flight (duplicates only across the rebalance edge).

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::FutureExt;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_protocol::body::{ConsumeType, ConsumerData, MessageModel};
use tributary_protocol::message::property;

use super::offset_store::OffsetStore;
use super::process_queue::ProcessQueue;
use super::subscription::{ExpressionType, Subscription};
use super::{
    ConsumeConcurrentlyStatus, ConsumeContext, ConsumeFrom, ConsumeOrderlyStatus, ConsumerConfig,
    Listener,
};
use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{BoxFuture, ClientInstance, ConsumerMember, PullArgs, PullStatus};
use crate::message::{MessageExt, MessageQueue, RETRY_GROUP_TOPIC_PREFIX, retry_topic};

/// Wait while a queue's buffer is full, when nothing signals space sooner.
const FLOW_CONTROL_RECHECK: Duration = Duration::from_millis(100);
/// Retry of a rebalance after a queue lock was refused.
const REBALANCE_LOCK_RETRY: Duration = Duration::from_millis(500);
/// How long a rebalance waits for an orderly queue's listener call before keeping the queue
/// for the next round.
const UNLOCK_WAIT: Duration = Duration::from_millis(500);

/// A push consumer. Cheap to clone; clones share the consumer.
#[derive(Clone)]
pub struct PushConsumer {
    inner: Arc<PushInner>,
}

impl std::fmt::Debug for PushConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConsumer")
            .field("group", &self.inner.config.group)
            .field("client_id", &self.inner.instance.client_id())
            .finish_non_exhaustive()
    }
}

struct PushInner {
    /// This consumer, for the tasks it starts.
    me: Weak<PushInner>,
    instance: ClientInstance,
    owns_instance: bool,
    config: ConsumerConfig,
    subscriptions: BTreeMap<String, Subscription>,
    listener: Listener,
    offsets: OffsetStore,
    table: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    rebalance_lock: tokio::sync::Mutex<()>,
    consume_permits: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    shut_down: AtomicBool,
}

impl PushConsumer {
    /// Starts a consumer on its own client instance (shut down with the consumer).
    pub async fn start(
        client: ClientConfig,
        config: ConsumerConfig,
        subscriptions: Vec<Subscription>,
        listener: Listener,
    ) -> Result<Self> {
        let instance = ClientInstance::start(client).await?;
        match Self::build(instance.clone(), true, config, subscriptions, listener).await {
            Ok(consumer) => Ok(consumer),
            Err(e) => {
                instance.shutdown().await;
                Err(e)
            }
        }
    }

    /// Starts a consumer on a shared client instance.
    pub async fn with_instance(
        instance: ClientInstance,
        config: ConsumerConfig,
        subscriptions: Vec<Subscription>,
        listener: Listener,
    ) -> Result<Self> {
        Self::build(instance, false, config, subscriptions, listener).await
    }

    async fn build(
        instance: ClientInstance,
        owns_instance: bool,
        config: ConsumerConfig,
        subscriptions: Vec<Subscription>,
        listener: Listener,
    ) -> Result<Self> {
        if config.group.is_empty() {
            return Err(ClientError::invalid("consumer group is empty"));
        }
        if subscriptions.is_empty() {
            return Err(ClientError::invalid("a push consumer needs a subscription"));
        }
        if config.consume_batch_max_size == 0 || config.pull_batch_size <= 0 {
            return Err(ClientError::invalid("batch sizes must be at least 1"));
        }
        let mut table = BTreeMap::new();
        for sub in subscriptions {
            table.insert(sub.topic.clone(), sub);
        }
        // Java's `checkClientInBroker`: a broker that cannot evaluate an SQL92 expression says
        // why now, rather than refusing every pull later.
        for sub in table.values() {
            if sub.expression_type == ExpressionType::Sql92 {
                instance
                    .check_client_config(&config.group, &sub.to_data())
                    .await?;
            }
        }
        let clustering = config.message_model == MessageModel::Clustering;
        if clustering {
            // Messages sent back for retry come through the group's retry topic.
            let retry = retry_topic(&config.group);
            table
                .entry(retry.clone())
                .or_insert_with(|| Subscription::tag(retry, "*"));
        }
        let offsets = if clustering {
            OffsetStore::remote(instance.clone(), &config.group)
        } else {
            OffsetStore::local(&config.offset_dir(), &config.group).await?
        };
        let inner = Arc::new_cyclic(|me| PushInner {
            me: me.clone(),
            cancel: instance.cancel_token().child_token(),
            consume_permits: Arc::new(Semaphore::new(config.consume_concurrency.max(1))),
            instance: instance.clone(),
            owns_instance,
            subscriptions: table,
            listener,
            offsets,
            table: Mutex::default(),
            rebalance_lock: tokio::sync::Mutex::new(()),
            tracker: TaskTracker::new(),
            shut_down: AtomicBool::new(false),
            config,
        });
        let member: Arc<dyn ConsumerMember> = inner.clone();
        let weak: Weak<dyn ConsumerMember> = Arc::downgrade(&member);
        instance.register_consumer(weak)?;
        for topic in inner.subscriptions.keys() {
            if let Err(e) = instance.update_route(topic).await {
                tracing::debug!(topic, error = %e, "route lookup at consumer start failed");
            }
        }
        instance.send_heartbeat_to_all_brokers().await;
        inner.clone().start_maintenance();
        inner.do_rebalance().await;
        Ok(Self { inner })
    }

    /// The client instance.
    pub fn instance(&self) -> &ClientInstance {
        &self.inner.instance
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.inner.config
    }

    /// The queues this consumer reads now, sorted.
    pub fn assigned_queues(&self) -> Vec<MessageQueue> {
        self.inner.assigned()
    }

    /// Rebalances now (normally every 20 s and when a broker says the group changed).
    pub async fn rebalance(&self) {
        self.inner.do_rebalance().await;
    }

    /// Commits the offsets of every assigned queue now.
    pub async fn persist_offsets(&self) -> Result<()> {
        self.inner.persist_all().await
    }

    /// Stops pulling, waits for listener calls in progress (up to `shutdown_timeout`),
    /// commits offsets, releases queue locks and unregisters from the brokers.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        let _rebalance = inner.rebalance_lock.lock().await;
        inner.cancel.cancel();
        inner.tracker.close();
        if tokio::time::timeout(inner.config.shutdown_timeout, inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(group = %inner.config.group, "listener calls still running at shutdown; their messages will be delivered again");
        }
        if let Err(e) = inner.persist_all().await {
            tracing::warn!(group = %inner.config.group, error = %e, "commit offsets at shutdown failed");
        }
        if inner.orderly_clustering() {
            inner.unlock_all().await;
        }
        for pq in inner.table.lock().values() {
            pq.set_dropped();
        }
        inner
            .instance
            .unregister_consumer(&inner.config.group)
            .await;
        if inner.owns_instance {
            inner.instance.shutdown().await;
        }
    }
}

impl ConsumerMember for PushInner {
    fn group(&self) -> &str {
        &self.config.group
    }

    fn consumer_data(&self) -> ConsumerData {
        ConsumerData {
            group_name: self.config.group.clone(),
            consume_type: ConsumeType::ConsumePassively,
            message_model: self.config.message_model,
            consume_from_where: self.config.consume_from.to_wire(),
            subscription_data_set: self
                .subscriptions
                .values()
                .map(Subscription::to_data)
                .collect(),
            unit_mode: false,
        }
    }

    fn topics(&self) -> Vec<String> {
        self.subscriptions.keys().cloned().collect()
    }

    fn rebalance(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.do_rebalance())
    }

    fn reset_offsets(
        &self,
        topic: String,
        offsets: BTreeMap<MessageQueue, i64>,
    ) -> BoxFuture<'_, ()> {
        Box::pin(self.reset_queues(topic, offsets))
    }
}

impl PushInner {
    fn clustering(&self) -> bool {
        self.config.message_model == MessageModel::Clustering
    }

    fn orderly_clustering(&self) -> bool {
        self.listener.is_orderly() && self.clustering()
    }

    /// Sleeps unless the consumer stops first; `false` when it stopped.
    async fn pause(&self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.cancel.cancelled() => false,
        }
    }

    /// Commits offsets every `offset_persist_interval` and renews orderly queue locks every
    /// `lock_renew_interval`.
    fn start_maintenance(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        let cancel = self.cancel.clone();
        let persist_every = self.config.offset_persist_interval;
        let lock_every = self.config.lock_renew_interval;
        let orderly = self.orderly_clustering();
        drop(self);
        let tracker = weak.upgrade().map(|s| s.tracker.clone());
        let Some(tracker) = tracker else { return };
        tracker.spawn(async move {
            let mut persist = tokio::time::interval(persist_every);
            let mut lock = tokio::time::interval(lock_every);
            persist.tick().await;
            lock.tick().await;
            loop {
                tokio::select! {
                    _ = persist.tick() => {
                        let Some(inner) = weak.upgrade() else { break };
                        if let Err(e) = inner.persist_all().await {
                            tracing::debug!(group = %inner.config.group, error = %e, "periodic offset commit failed");
                        }
                    }
                    _ = lock.tick(), if orderly => {
                        let Some(inner) = weak.upgrade() else { break };
                        inner.lock_all().await;
                    }
                    () = cancel.cancelled() => break,
                }
            }
        });
    }

    /// The queues held and not dropped, sorted.
    fn assigned(&self) -> Vec<MessageQueue> {
        let mut queues: Vec<MessageQueue> = self
            .table
            .lock()
            .iter()
            .filter(|(_, pq)| !pq.is_dropped())
            .map(|(mq, _)| mq.clone())
            .collect();
        queues.sort();
        queues
    }

    /// The assigned queues grouped by broker and topic.
    fn assigned_by_broker(&self) -> BTreeMap<(String, String), Vec<MessageQueue>> {
        let mut by_broker: BTreeMap<(String, String), Vec<MessageQueue>> = BTreeMap::new();
        for mq in self.assigned() {
            by_broker
                .entry((mq.broker_name.clone(), mq.topic.clone()))
                .or_default()
                .push(mq);
        }
        by_broker
    }

    async fn persist_all(&self) -> Result<()> {
        self.offsets.persist_all(&self.assigned()).await
    }

    // ---- rebalance ----------------------------------------------------------------------

    async fn do_rebalance(&self) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        let _guard = self.rebalance_lock.lock().await;
        if self.cancel.is_cancelled() {
            return;
        }
        for sub in self.subscriptions.values() {
            if let Err(e) = self.rebalance_topic(sub).await
                && !sub.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX)
            {
                tracing::warn!(group = %self.config.group, topic = %sub.topic, error = %e, "rebalance failed");
            }
        }
        // Queues of topics no longer subscribed.
        let stale: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .table
            .lock()
            .iter()
            .filter(|(mq, _)| !self.subscriptions.contains_key(&mq.topic))
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in stale {
            pq.set_dropped();
            self.table.lock().remove(&mq);
        }
    }

    async fn rebalance_topic(&self, sub: &Subscription) -> Result<()> {
        let Some(route) = self.instance.subscribe_route(&sub.topic).await? else {
            return Ok(());
        };
        let mq_all = route.subscribe_queues.clone();
        if mq_all.is_empty() {
            return Ok(());
        }
        let mine = match self.config.message_model {
            MessageModel::Broadcasting => mq_all,
            MessageModel::Clustering => {
                let mut cids = self
                    .instance
                    .consumer_ids(&sub.topic, &self.config.group)
                    .await?;
                cids.sort();
                cids.dedup();
                if cids.is_empty() {
                    return Ok(());
                }
                if !cids.iter().any(|c| c == self.instance.client_id()) {
                    // The broker has not seen our heartbeat yet (it restarted, say): announce
                    // ourselves and look again rather than give every queue away meanwhile.
                    self.instance.send_heartbeat_to_all_brokers().await;
                    self.instance.rebalance_later(REBALANCE_LOCK_RETRY);
                    return Ok(());
                }
                self.config
                    .allocate_strategy
                    .allocate(self.instance.client_id(), &mq_all, &cids)
            }
        };
        self.update_process_queues(&sub.topic, &mine).await;
        Ok(())
    }

    /// Drops the queues of `topic` that are no longer ours and starts pulling the new ones.
    async fn update_process_queues(&self, topic: &str, mine: &[MessageQueue]) {
        let leaving: Vec<(MessageQueue, Arc<ProcessQueue>)> = self
            .table
            .lock()
            .iter()
            .filter(|(mq, _)| mq.topic == topic && !mine.contains(mq))
            .map(|(mq, pq)| (mq.clone(), pq.clone()))
            .collect();
        for (mq, pq) in leaving {
            if self.release_queue(&mq, &pq).await {
                self.table.lock().remove(&mq);
                tracing::debug!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, "queue released");
            }
        }
        let mut all_locked = true;
        for mq in mine {
            if self.table.lock().contains_key(mq) {
                continue;
            }
            if self.orderly_clustering() && !self.lock_one(mq).await {
                all_locked = false;
                continue;
            }
            self.offsets.remove(mq);
            let offset = match self.compute_pull_from_where(mq).await {
                Ok(offset) => offset,
                Err(e) => {
                    tracing::warn!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, error = %e, "cannot find where to start the queue");
                    continue;
                }
            };
            let pq = Arc::new(ProcessQueue::new());
            if self.orderly_clustering() {
                pq.set_locked(true);
            }
            self.table.lock().insert(mq.clone(), pq.clone());
            tracing::debug!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, offset, "queue assigned");
            self.spawn_pull(mq.clone(), pq, offset);
        }
        if !all_locked {
            self.instance.rebalance_later(REBALANCE_LOCK_RETRY);
        }
    }

    /// Drops, commits and forgets a queue we give up. An orderly consumer first waits for a
    /// listener call in progress and lets it move the offset (the queue is still ours: we hold
    /// its broker lock), then drops the queue, commits, and releases the lock, so the next
    /// owner starts right after the last message consumed here (Java drops the queue first,
    /// so the message of the call in progress is consumed again by the next owner). `false`:
    /// the call did not end in time; the queue stays ours until the next round.
    async fn release_queue(&self, mq: &MessageQueue, pq: &ProcessQueue) -> bool {
        if self.orderly_clustering() {
            let Ok(_consuming) = tokio::time::timeout(UNLOCK_WAIT, pq.consume_lock.lock()).await
            else {
                return false;
            };
            pq.set_dropped();
            self.persist_one(mq).await;
            self.offsets.remove(mq);
            pq.set_locked(false);
            if let Err(e) = self
                .instance
                .unlock_batch(&mq.broker_name, &self.config.group, vec![mq.clone()], false)
                .await
            {
                tracing::debug!(group = %self.config.group, topic = %mq.topic, queue_id = mq.queue_id, error = %e, "unlock failed; the broker lock expires by itself");
            }
            return true;
        }
        pq.set_dropped();
        self.persist_one(mq).await;
        self.offsets.remove(mq);
        true
    }

    async fn persist_one(&self, mq: &MessageQueue) {
        if let Err(e) = self.offsets.persist(mq).await {
            tracing::warn!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, error = %e, "commit offset of a released queue failed");
        }
    }

    /// Java's `computePullFromWhere`.
    async fn compute_pull_from_where(&self, mq: &MessageQueue) -> Result<i64> {
        if let Some(offset) = self.offsets.read_store(mq).await?.filter(|o| *o >= 0) {
            return Ok(offset);
        }
        let retry = mq.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX);
        match self.config.consume_from {
            ConsumeFrom::LastOffset if retry => Ok(0),
            ConsumeFrom::LastOffset => self.instance.max_offset(mq).await,
            ConsumeFrom::FirstOffset => Ok(0),
            ConsumeFrom::Timestamp(_) if retry => self.instance.max_offset(mq).await,
            ConsumeFrom::Timestamp(ts) => self.instance.search_offset(mq, ts).await,
        }
    }

    /// Moves the held queues of `topic` that `offsets` names: each queue's buffer is dropped
    /// (its messages are not delivered, and listener calls already running on them commit
    /// nothing), the new offset is committed, and a fresh pull starts there.
    async fn reset_queues(&self, topic: String, offsets: BTreeMap<MessageQueue, i64>) {
        if self.shut_down.load(Ordering::Acquire) {
            return;
        }
        let _guard = self.rebalance_lock.lock().await;
        if self.cancel.is_cancelled() {
            return;
        }
        let held: Vec<(MessageQueue, Arc<ProcessQueue>, i64)> = self
            .table
            .lock()
            .iter()
            .filter(|(mq, _)| mq.topic == topic)
            .filter_map(|(mq, pq)| offsets.get(mq).map(|o| (mq.clone(), pq.clone(), *o)))
            .collect();
        for (mq, old, offset) in held {
            self.offsets.reset(&mq, offset, || old.set_dropped());
            if self.listener.is_orderly() {
                // A listener call running on the old buffer ends before the queue's messages
                // are handed out again, so two calls never hold one queue.
                let _ = tokio::time::timeout(UNLOCK_WAIT, old.consume_lock.lock()).await;
            }
            self.persist_one(&mq).await;
            let pq = Arc::new(ProcessQueue::new());
            if self.orderly_clustering() && old.is_locked() {
                pq.set_locked(true);
            }
            self.table.lock().insert(mq.clone(), pq.clone());
            tracing::info!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, offset, "queue reset; pulling from the new offset");
            self.spawn_pull(mq, pq, offset);
        }
    }

    // ---- queue locks (orderly) ----------------------------------------------------------

    async fn lock_one(&self, mq: &MessageQueue) -> bool {
        match self
            .instance
            .lock_batch(
                &mq.broker_name,
                &mq.topic,
                &self.config.group,
                vec![mq.clone()],
            )
            .await
        {
            Ok(locked) => {
                let ok = locked.contains(mq);
                if let Some(pq) = self.table.lock().get(mq) {
                    pq.set_locked(ok);
                }
                ok
            }
            Err(e) => {
                tracing::debug!(group = %self.config.group, topic = %mq.topic, queue_id = mq.queue_id, error = %e, "lock failed");
                false
            }
        }
    }

    /// Renews the locks of the queues held. Under the rebalance lock: a renewal that read the
    /// queues before a rebalance released one would lock it again on the broker after the
    /// release, keeping it from its next owner until the lock expires.
    async fn lock_all(&self) {
        let _rebalance = tokio::select! {
            g = self.rebalance_lock.lock() => g,
            // Shutdown holds the rebalance lock while it waits for this task.
            () = self.cancel.cancelled() => return,
        };
        for ((broker, topic), mqs) in self.assigned_by_broker() {
            match self
                .instance
                .lock_batch(&broker, &topic, &self.config.group, mqs.clone())
                .await
            {
                Ok(locked) => {
                    let table = self.table.lock();
                    for mq in &mqs {
                        if let Some(pq) = table.get(mq) {
                            let ok = locked.contains(mq);
                            if !ok && pq.is_locked() {
                                tracing::warn!(group = %self.config.group, topic = %mq.topic, queue_id = mq.queue_id, "queue lock lost");
                            }
                            pq.set_locked(ok);
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(group = %self.config.group, broker, error = %e, "lock renewal failed");
                }
            }
        }
    }

    async fn unlock_all(&self) {
        for ((broker, _), mqs) in self.assigned_by_broker() {
            if let Err(e) = self
                .instance
                .unlock_batch(&broker, &self.config.group, mqs, true)
                .await
            {
                tracing::debug!(group = %self.config.group, broker, error = %e, "unlock at shutdown failed");
            }
        }
    }

    // ---- pulling ------------------------------------------------------------------------

    fn spawn_pull(&self, mq: MessageQueue, pq: Arc<ProcessQueue>, offset: i64) {
        let Some(sub) = self.subscriptions.get(&mq.topic).cloned() else {
            return;
        };
        let Some(this) = self.self_arc() else { return };
        self.tracker
            .spawn(async move { this.pull_loop(mq, pq, sub, offset).await });
    }

    /// An owning handle to this consumer, for a task.
    fn self_arc(&self) -> Option<Arc<PushInner>> {
        self.me.upgrade()
    }

    async fn pull_loop(
        self: Arc<Self>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        sub: Subscription,
        mut offset: i64,
    ) {
        let orderly = self.listener.is_orderly();
        loop {
            if pq.is_dropped() || self.cancel.is_cancelled() {
                break;
            }
            let full = pq.count() > self.config.pull_threshold_for_queue
                || pq.bytes() > self.config.pull_threshold_bytes_for_queue
                || (!orderly && pq.max_span() > self.config.consume_concurrently_max_span);
            if full {
                tokio::select! {
                    () = pq.space.notified() => {}
                    () = tokio::time::sleep(FLOW_CONTROL_RECHECK) => {}
                    () = self.cancel.cancelled() => break,
                }
                continue;
            }
            if orderly && self.clustering() && !pq.is_locked() {
                if !self.pause(self.config.pull_delay_on_error).await {
                    break;
                }
                continue;
            }
            let args = PullArgs {
                group: self.config.group.clone(),
                offset,
                max_nums: self.config.pull_batch_size,
                expression: Some(sub.expression.clone()),
                expression_type: sub.expression_type.name().to_owned(),
                sub_version: sub.version,
                // Not for orderly consumers: a pull is answered whenever messages come (long
                // polling), so the offset it carries could land on the broker after the final
                // commit of a queue this consumer gave up, and send the next owner back.
                commit_offset: if self.clustering() && !self.listener.is_orderly() {
                    self.offsets.read_memory(&mq).filter(|o| *o > 0)
                } else {
                    None
                },
                suspend: Some(self.config.broker_suspend_max),
            };
            let result = tokio::select! {
                r = self.instance.pull(&mq, &args) => r,
                () = self.cancel.cancelled() => break,
            };
            let result = match result {
                Ok(result) => result,
                Err(e) => {
                    if e.is_transport() || mq.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
                        // The broker is restarting or unreachable: retried quietly.
                        tracing::debug!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, error = %e, "pull failed");
                    } else {
                        tracing::warn!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, error = %e, "pull refused");
                    }
                    if !self.pause(self.config.pull_delay_on_error).await {
                        break;
                    }
                    continue;
                }
            };
            match result.status {
                PullStatus::Found => {
                    offset = result.next_begin_offset;
                    let messages: Vec<MessageExt> = result
                        .messages
                        .into_iter()
                        .filter(|m| sub.matches(m))
                        .collect();
                    if !messages.is_empty() && !pq.is_dropped() {
                        self.submit(&mq, &pq, messages);
                    }
                }
                PullStatus::NoNewMsg | PullStatus::NoMatchedMsg => {
                    offset = result.next_begin_offset;
                    if pq.count() == 0 {
                        self.offsets
                            .update_unless(&mq, offset, true, || pq.is_dropped());
                    }
                }
                PullStatus::OffsetIllegal => {
                    tracing::warn!(group = %self.config.group, topic = %mq.topic, broker = %mq.broker_name, queue_id = mq.queue_id, offset, next = result.next_begin_offset, "pull offset out of range; moving to the broker's");
                    pq.set_dropped();
                    self.offsets.update(&mq, result.next_begin_offset, false);
                    self.persist_one(&mq).await;
                    {
                        let mut table = self.table.lock();
                        if table.get(&mq).is_some_and(|p| Arc::ptr_eq(p, &pq)) {
                            table.remove(&mq);
                        }
                    }
                    self.instance.rebalance_now();
                    break;
                }
            }
        }
    }

    // ---- consuming ----------------------------------------------------------------------

    fn submit(&self, mq: &MessageQueue, pq: &Arc<ProcessQueue>, messages: Vec<MessageExt>) {
        match &self.listener {
            Listener::Concurrently(_) => {
                pq.put_offsets(&messages);
                let batch = self.config.consume_batch_max_size;
                let mut messages = messages.into_iter().peekable();
                while messages.peek().is_some() {
                    let chunk: Vec<MessageExt> = messages.by_ref().take(batch).collect();
                    self.spawn_consume_concurrently(mq.clone(), pq.clone(), chunk, None);
                }
            }
            Listener::Orderly(_) => {
                if pq.put_messages(messages) {
                    self.spawn_consume_orderly(mq.clone(), pq.clone());
                }
            }
        }
    }

    fn spawn_consume_concurrently(
        &self,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        messages: Vec<MessageExt>,
        delay: Option<Duration>,
    ) {
        let Some(this) = self.self_arc() else { return };
        self.tracker.spawn(async move {
            if let Some(delay) = delay
                && !this.pause(delay).await
            {
                return;
            }
            this.consume_concurrently(mq, pq, messages).await;
        });
    }

    async fn consume_concurrently(
        self: Arc<Self>,
        mq: MessageQueue,
        pq: Arc<ProcessQueue>,
        messages: Vec<MessageExt>,
    ) {
        let Listener::Concurrently(listener) = &self.listener else {
            return;
        };
        let permit = tokio::select! {
            p = self.consume_permits.clone().acquire_owned() => p,
            () = self.cancel.cancelled() => return,
        };
        let Ok(permit) = permit else { return };
        if pq.is_dropped() {
            return;
        }
        let messages: Arc<[MessageExt]> = self.reset_retry_topic(messages).into();
        let context = ConsumeContext { queue: mq.clone() };
        let status = AssertUnwindSafe(listener.consume(messages.clone(), context))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::warn!(group = %self.config.group, topic = %mq.topic, queue_id = mq.queue_id, "listener panicked; reconsuming later");
                ConsumeConcurrentlyStatus::ReconsumeLater
            });
        drop(permit);
        if pq.is_dropped() {
            // The queue went to another consumer meanwhile; it consumes these again.
            return;
        }
        let mut retry_locally = Vec::new();
        if status == ConsumeConcurrentlyStatus::ReconsumeLater {
            if self.clustering() {
                for message in messages.iter() {
                    if let Err(e) = self
                        .instance
                        .send_message_back(
                            message,
                            &self.config.group,
                            0,
                            self.config.max_reconsume_times,
                        )
                        .await
                    {
                        tracing::warn!(group = %self.config.group, msg_id = message.msg_id(), error = %e, "the broker did not take the message back; consuming it again locally");
                        retry_locally.push(message.clone());
                    }
                }
            } else {
                for message in messages.iter() {
                    tracing::warn!(group = %self.config.group, msg_id = message.msg_id(), "broadcasting consumer asked to reconsume; skipping the message");
                }
            }
        }
        let done: Vec<i64> = messages
            .iter()
            .map(|m| m.queue_offset)
            .filter(|o| !retry_locally.iter().any(|r| r.queue_offset == *o))
            .collect();
        if let Some(offset) = pq.remove(&done) {
            self.offsets
                .update_unless(&mq, offset, true, || pq.is_dropped());
        }
        if !retry_locally.is_empty() {
            for message in &mut retry_locally {
                message.reconsume_times += 1;
            }
            self.spawn_consume_concurrently(
                mq,
                pq,
                retry_locally,
                Some(self.config.local_retry_delay),
            );
        }
    }

    fn spawn_consume_orderly(&self, mq: MessageQueue, pq: Arc<ProcessQueue>) {
        let Some(this) = self.self_arc() else { return };
        self.tracker
            .spawn(async move { this.consume_orderly(mq, pq).await });
    }

    async fn consume_orderly(self: Arc<Self>, mq: MessageQueue, pq: Arc<ProcessQueue>) {
        let Listener::Orderly(listener) = &self.listener else {
            return;
        };
        loop {
            if pq.is_dropped() || self.cancel.is_cancelled() {
                pq.release_consuming();
                return;
            }
            let guard = tokio::select! {
                g = pq.consume_lock.lock() => g,
                () = self.cancel.cancelled() => { pq.release_consuming(); return; }
            };
            if pq.is_dropped() {
                pq.release_consuming();
                return;
            }
            if self.clustering() && (!pq.is_locked() || pq.lock_expired(self.config.lock_max_live))
            {
                drop(guard);
                if !self.pause(Duration::from_millis(100)).await {
                    pq.release_consuming();
                    return;
                }
                // Locked under the consume lock, after another look at `dropped`: a release
                // holds the consume lock while it drops the queue and unlocks it on the broker,
                // so a lock taken here cannot come after the release and keep the queue from
                // its next owner until the lock expires.
                let guard = tokio::select! {
                    g = pq.consume_lock.lock() => g,
                    () = self.cancel.cancelled() => { pq.release_consuming(); return; }
                };
                let locked = !pq.is_dropped() && self.lock_one(&mq).await;
                drop(guard);
                if !locked && !self.pause(self.config.pull_delay_on_error).await {
                    pq.release_consuming();
                    return;
                }
                continue;
            }
            let taken = pq.take(self.config.consume_batch_max_size);
            if taken.is_empty() {
                return;
            }
            let messages: Arc<[MessageExt]> = self.reset_retry_topic(taken).into();
            let context = ConsumeContext { queue: mq.clone() };
            let status = AssertUnwindSafe(listener.consume(messages, context))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    tracing::warn!(group = %self.config.group, topic = %mq.topic, queue_id = mq.queue_id, "orderly listener panicked; suspending the queue");
                    ConsumeOrderlyStatus::SuspendCurrentQueueAMoment
                });
            match status {
                ConsumeOrderlyStatus::Success => {
                    if let Some(offset) = pq.commit() {
                        self.offsets
                            .update_unless(&mq, offset, false, || pq.is_dropped());
                    }
                    drop(guard);
                }
                ConsumeOrderlyStatus::SuspendCurrentQueueAMoment => {
                    pq.consume_again(true);
                    drop(guard);
                    if !self.pause(self.config.suspend_current_queue).await {
                        pq.release_consuming();
                        return;
                    }
                }
            }
        }
    }

    /// Messages consumed from the group's retry topic show their original topic.
    fn reset_retry_topic(&self, mut messages: Vec<MessageExt>) -> Vec<MessageExt> {
        let retry = retry_topic(&self.config.group);
        for message in &mut messages {
            if message.topic == retry
                && let Some(original) = message.property(property::RETRY_TOPIC)
            {
                message.topic = original.to_owned();
            }
        }
        messages
    }
}
