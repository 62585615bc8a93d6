//! A RocketMQ 4.x client on tokio: it speaks the remoting protocol to any RocketMQ-compatible
//! NameServer and broker (Tributary's or Apache's).
//!
//! Entry points:
//! - [`ClientInstance`]: one client id, its connections, the route cache and the shared
//!   background work (route refresh, heartbeats, rebalancing). Producers and consumers either
//!   start their own or share one.
//! - [`Producer`]: sync, async, one-way, batch and ordered sends with retries; transactions;
//!   request-reply ([`Producer::request`], [`create_reply_message`]).
//! - [`PushConsumer`]: long-polling consumption with rebalancing, flow control, offsets
//!   committed to the broker (clustering) or a local file (broadcasting), concurrent or
//!   orderly listeners.
//! - [`PullConsumer`]: explicit pulls from a queue at an offset.
//! - [`Admin`]: topics, routes, queue offsets, consumer groups and their lag; offset resets
//!   (replay) and message lookups by id, key and queue offset ([`replay`]).
//!
//! Every background task runs on a [`tokio_util::task::TaskTracker`] and stops on
//! `shutdown()`; nothing is left running after it returns.
//!
//! ```no_run
//! use tributary_client::{ClientConfig, Message, Producer, ProducerConfig};
//!
//! # async fn run() -> tributary_client::Result<()> {
//! let producer = Producer::start(ClientConfig::new("127.0.0.1:9876"), ProducerConfig::new("pg")).await?;
//! let sent = producer.send(Message::new("orders", "hello").with_tags("created")).await?;
//! println!("{} at {}:{}", sent.msg_id, sent.queue.queue_id, sent.queue_offset);
//! producer.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod config;
pub mod consumer;
pub mod error;
pub mod instance;
pub mod message;
pub mod producer;
pub mod record;
pub mod replay;
pub mod route;
pub mod uniq_id;

pub use admin::Admin;
pub use config::ClientConfig;
pub use consumer::{
    AllocateStrategy, ConsumeConcurrentlyStatus, ConsumeContext, ConsumeFrom, ConsumeOrderlyStatus,
    ConsumerConfig, MessageModel, PullConsumer, PushConsumer, Subscription,
};
pub use error::{ClientError, Result};
pub use instance::{ClientInstance, PullResult, PullStatus};
pub use message::{Message, MessageExt, MessageQueue};
pub use producer::{Producer, ProducerConfig, SendResult, SendStatus, create_reply_message};
pub use replay::{QueueReset, ResetTarget};

/// Wall-clock milliseconds since the Unix epoch (message timestamps, subscription versions).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
