//! Tributary's message store: RocketMQ's CommitLog + ConsumeQueue + IndexFile design and exact
//! on-disk formats, on memory-mapped segment files.
//!
//! The entry point is [`MessageStore`]: [`MessageStore::open`] recovers a data directory and
//! starts the store threads; [`MessageStore::append`] / [`MessageStore::append_batch`] write,
//! returning a [`Durable`] that completes when the bytes are on disk (SYNC flush: group commit)
//! or at once (ASYNC flush); [`MessageStore::get_messages`] reads a queue by logical offset;
//! [`MessageStore::read_message`], [`MessageStore::query_by_key`] and
//! [`MessageStore::offset_by_time`] serve lookups.
//!
//! Records are in RocketMQ's commit log layout, whose codec ([`record`], re-exported from
//! `tributary-common`) the store shares with the client, which decodes pulled messages with it.
//!
//! **Architecture invariant:** the store never touches the network and knows nothing of the
//! protocol, streams, SQL or connectors. Its API is synchronous; page faults, `msync` and
//! `fsync` happen on the caller's thread or on the store's own threads, so async callers call
//! it from a blocking-capable thread and await [`Durable`].

mod checkpoint;
mod commitlog;
mod config;
mod consume_queue;
mod durable;
mod error;
mod fsutil;
mod gather;
mod index;
mod recovery;
mod retention;
mod segment;
mod stats;
mod store;

pub use checkpoint::Checkpoint;
pub use commitlog::AppendResult;
pub use config::{CorruptionPolicy, FlushMode, RetentionConfig, StoreConfig};
pub use consume_queue::CqUnit;
pub use durable::Durable;
pub use error::{Result, StoreError};
pub use record::{NewMessage, StoredMessage};
pub use recovery::{Damage, RecoveryReport, is_store_dir};
pub use retention::{DiskUsage, RetentionReport, StatvfsDiskUsage, local_hour};
pub use stats::{Bounds, FlushMicros, Histogram, StoreStats};
pub use store::{
    AcceptAll, ArrivalListener, GetMessages, GetStatus, MessageBuf, MessageFilter, MessageStore,
};
pub use tributary_common::record;
