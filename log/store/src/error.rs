//! Errors of the store. Each variant carries the context a person needs to act on it.

use std::io;
use std::path::PathBuf;

use tributary_common::record::EncodeError;

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The message is larger than `max_message_bytes`.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes (max_message_bytes)")]
    MessageTooLarge { size: usize, limit: usize },
    /// A field of the message does not fit the record format.
    #[error("message rejected: {reason}")]
    MessageIllegal { reason: String },
    /// Disk use passed the hard ratio; writes are refused until retention frees space.
    #[error(
        "disk full: {used_percent:.1}% of {path} is used, writes are refused above {limit_percent:.1}% (retention.disk_hard_ratio)"
    )]
    DiskFull {
        path: PathBuf,
        used_percent: f64,
        limit_percent: f64,
    },
    /// The message was appended but no fsync covering it returned in time (RocketMQ FLUSH_DISK_TIMEOUT).
    #[error(
        "flush to disk timed out after {waited_ms} ms; the message was appended at offset {offset} but is not known durable"
    )]
    FlushTimeout { offset: u64, waited_ms: u64 },
    /// Flushing to disk failed; the store refuses further writes.
    #[error("flush to disk failed: {reason}")]
    FlushFailed { reason: String },
    /// Bytes on disk are not a valid record where one was expected.
    #[error("corrupt data in {path} at commit log offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The on-disk layout contradicts the configuration or itself.
    #[error("invalid store layout in {path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    /// Another process holds the data directory.
    #[error("data directory {path} is locked by another process")]
    Locked { path: PathBuf },
    /// The configuration is invalid.
    #[error("invalid store config: {0}")]
    Config(String),
    /// The store is shutting down or has shut down.
    #[error("the store is shut down")]
    ShutDown,
    /// A file was to be added to a log that was deleted (a consume queue of a deleted topic).
    #[error("{path} was deleted")]
    Deleted { path: PathBuf },
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io { op, path, source }
    }
}

/// The store encodes with `max_message_bytes` as the limit, so a record too large is a message
/// too large.
impl From<EncodeError> for StoreError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::TooLarge { size, limit } => StoreError::MessageTooLarge { size, limit },
            EncodeError::Illegal { reason } => StoreError::MessageIllegal { reason },
            other => StoreError::MessageIllegal {
                reason: other.to_string(),
            },
        }
    }
}
