//! Consumers: [`PushConsumer`] (long polling, rebalancing, listeners) and [`PullConsumer`]
//! (explicit pulls), with their configuration and listener types.

mod allocate;
mod offset_store;
mod process_queue;
mod pull;
mod push;
mod subscription;

pub use allocate::{
    AllocateStrategy, allocate_averagely, allocate_averagely_by_circle, allocate_consistent_hash,
};
pub use pull::PullConsumer;
pub use push::PushConsumer;
pub use subscription::{ExpressionType, SUB_ALL, Subscription};
pub use tributary_protocol::body::MessageModel;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::message::{MessageExt, MessageQueue};

/// Where a group with no committed offset for a queue starts reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConsumeFrom {
    /// At the end: only messages sent from now on (Java's default).
    #[default]
    LastOffset,
    /// At the oldest message still stored.
    FirstOffset,
    /// At the first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl ConsumeFrom {
    /// The heartbeat form.
    pub fn to_wire(self) -> tributary_protocol::body::ConsumeFromWhere {
        use tributary_protocol::body::ConsumeFromWhere;
        match self {
            Self::LastOffset => ConsumeFromWhere::LastOffset,
            Self::FirstOffset => ConsumeFromWhere::FirstOffset,
            Self::Timestamp(_) => ConsumeFromWhere::Timestamp,
        }
    }
}

/// Consumer settings; the defaults are Java's `DefaultMQPushConsumer`'s.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Consumer group.
    pub group: String,
    /// Clustering (each message to one consumer of the group) or broadcasting (to all).
    pub message_model: MessageModel,
    /// Start position for queues the group has no offset for.
    pub consume_from: ConsumeFrom,
    /// How the group divides queues (clustering).
    pub allocate_strategy: AllocateStrategy,
    /// Messages asked for per pull (32).
    pub pull_batch_size: i32,
    /// Messages handed to one listener call (1).
    pub consume_batch_max_size: usize,
    /// Listener calls running at once, over all queues (20, Java's consume threads).
    pub consume_concurrency: usize,
    /// Messages buffered per queue before pulling pauses (1000).
    pub pull_threshold_for_queue: usize,
    /// Body bytes buffered per queue before pulling pauses (100 MiB).
    pub pull_threshold_bytes_for_queue: usize,
    /// Largest offset distance between the oldest and newest buffered message of a queue
    /// before pulling pauses, concurrent listeners only (2000).
    pub consume_concurrently_max_span: i64,
    /// How long a broker may hold a pull when nothing is there (15 s).
    pub broker_suspend_max: Duration,
    /// Pause before pulling again after an error (3 s).
    pub pull_delay_on_error: Duration,
    /// How often offsets are committed (5 s); also on rebalance and shutdown.
    pub offset_persist_interval: Duration,
    /// How often orderly consumers renew their queue locks (20 s).
    pub lock_renew_interval: Duration,
    /// How long a queue lock is trusted without renewal (30 s; brokers expire at 60 s).
    pub lock_max_live: Duration,
    /// Pause of an orderly queue after its listener asked to suspend (1 s).
    pub suspend_current_queue: Duration,
    /// Delay before a message is consumed again locally when the broker could not take it
    /// back (5 s).
    pub local_retry_delay: Duration,
    /// Redeliveries through the retry topic before the broker moves a message to the
    /// dead-letter topic (16).
    pub max_reconsume_times: i32,
    /// Folder of the broadcasting offset files (one `<group>/offsets.json` each). `None`:
    /// `$HOME/.tributary/offsets`, else `./.tributary-offsets`.
    pub local_offset_dir: Option<PathBuf>,
    /// How long shutdown waits for listener calls in progress (10 s).
    pub shutdown_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: "DEFAULT_CONSUMER".into(),
            message_model: MessageModel::Clustering,
            consume_from: ConsumeFrom::LastOffset,
            allocate_strategy: AllocateStrategy::Averagely,
            pull_batch_size: 32,
            consume_batch_max_size: 1,
            consume_concurrency: 20,
            pull_threshold_for_queue: 1000,
            pull_threshold_bytes_for_queue: 100 << 20,
            consume_concurrently_max_span: 2000,
            broker_suspend_max: Duration::from_secs(15),
            pull_delay_on_error: Duration::from_secs(3),
            offset_persist_interval: Duration::from_secs(5),
            lock_renew_interval: Duration::from_secs(20),
            lock_max_live: Duration::from_secs(30),
            suspend_current_queue: Duration::from_secs(1),
            local_retry_delay: Duration::from_secs(5),
            max_reconsume_times: 16,
            local_offset_dir: None,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl ConsumerConfig {
    /// The defaults with a group.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ..Self::default()
        }
    }

    pub(crate) fn offset_dir(&self) -> PathBuf {
        self.local_offset_dir.clone().unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(|home| PathBuf::from(home).join(".tributary").join("offsets"))
                .unwrap_or_else(|| PathBuf::from(".tributary-offsets"))
        })
    }

    /// The file a broadcasting consumer of this group keeps its offsets in.
    pub fn offset_file(&self) -> PathBuf {
        offset_store::offset_file(&self.offset_dir(), &self.group)
    }
}

/// What a concurrent listener says about the messages it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeConcurrentlyStatus {
    /// Done; the offset may move past them.
    ConsumeSuccess,
    /// Deliver them again later. In clustering mode they go back to the broker
    /// (CONSUMER_SEND_MSG_BACK), which redelivers them through the group's retry topic
    /// `%RETRY%<group>` after stepped delays (10 s, 30 s, 1 m, … 2 h), under their original
    /// topic with `reconsume_times` one higher, and moves them to the dead-letter topic
    /// `%DLQ%<group>` after `max_reconsume_times` retries. Only when the broker cannot take a
    /// message back is it consumed again locally after `local_retry_delay`. Broadcasting
    /// consumers do not retry (as Java): the messages are logged and skipped.
    ReconsumeLater,
}

/// What an orderly listener says about the messages it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeOrderlyStatus {
    /// Done; the queue moves on.
    Success,
    /// Pause the queue for `suspend_current_queue` and deliver the same messages again (the
    /// queue's order is kept: nothing after them is delivered first).
    SuspendCurrentQueueAMoment,
}

/// Where the messages of a listener call come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeContext {
    /// The queue.
    pub queue: MessageQueue,
}

/// A boxed listener future.
pub type ListenerFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Consumes messages of any queue, many calls at once (Java's `MessageListenerConcurrently`).
/// Runs on the tokio runtime: move blocking work to `spawn_blocking`. A panic counts as
/// [`ConsumeConcurrentlyStatus::ReconsumeLater`].
pub trait ConcurrentListener: Send + Sync + 'static {
    /// Consumes `messages` (at most `consume_batch_max_size`).
    fn consume(
        &self,
        messages: Arc<[MessageExt]>,
        context: ConsumeContext,
    ) -> ListenerFuture<ConsumeConcurrentlyStatus>;
}

impl<F, Fut> ConcurrentListener for F
where
    F: Fn(Arc<[MessageExt]>, ConsumeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeConcurrentlyStatus> + Send + 'static,
{
    fn consume(
        &self,
        messages: Arc<[MessageExt]>,
        context: ConsumeContext,
    ) -> ListenerFuture<ConsumeConcurrentlyStatus> {
        Box::pin(self(messages, context))
    }
}

/// Consumes each queue one call at a time, in queue order, while this client holds the
/// queue's lock on the broker (Java's `MessageListenerOrderly`). A panic counts as
/// [`ConsumeOrderlyStatus::SuspendCurrentQueueAMoment`].
pub trait OrderlyListener: Send + Sync + 'static {
    /// Consumes `messages` of one queue.
    fn consume(
        &self,
        messages: Arc<[MessageExt]>,
        context: ConsumeContext,
    ) -> ListenerFuture<ConsumeOrderlyStatus>;
}

impl<F, Fut> OrderlyListener for F
where
    F: Fn(Arc<[MessageExt]>, ConsumeContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ConsumeOrderlyStatus> + Send + 'static,
{
    fn consume(
        &self,
        messages: Arc<[MessageExt]>,
        context: ConsumeContext,
    ) -> ListenerFuture<ConsumeOrderlyStatus> {
        Box::pin(self(messages, context))
    }
}

/// The listener of a [`PushConsumer`].
#[derive(Clone)]
pub enum Listener {
    /// Concurrent consumption.
    Concurrently(Arc<dyn ConcurrentListener>),
    /// Orderly consumption with queue locks.
    Orderly(Arc<dyn OrderlyListener>),
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Concurrently(_) => "Listener::Concurrently",
            Self::Orderly(_) => "Listener::Orderly",
        })
    }
}

impl Listener {
    /// A concurrent listener.
    pub fn concurrently(listener: impl ConcurrentListener) -> Self {
        Self::Concurrently(Arc::new(listener))
    }

    /// An orderly listener.
    pub fn orderly(listener: impl OrderlyListener) -> Self {
        Self::Orderly(Arc::new(listener))
    }

    pub(crate) fn is_orderly(&self) -> bool {
        matches!(self, Self::Orderly(_))
    }
}
