//! The one error type of the client.

use std::path::PathBuf;
use std::time::Duration;

use tributary_protocol::{ProtocolError, codes};
use tributary_remoting::RemotingError;

/// Everything a client call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No NameServer address was configured.
    #[error("no NameServer address: set ClientConfig::namesrv_addrs or NAMESRV_ADDR")]
    NoNameServer,
    /// The transport failed (connect, timeout, closed connection).
    #[error(transparent)]
    Remoting(#[from] RemotingError),
    /// A header or body could not be encoded or decoded.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A broker or NameServer answered with an error code.
    #[error("{addr} answered request {request} with code {code} ({}): {remark}", codes::response::name(*code).unwrap_or("unknown"))]
    Broker {
        /// Address of the server that answered.
        addr: String,
        /// The request code.
        request: i32,
        /// The response code.
        code: i32,
        /// The server's remark.
        remark: String,
    },
    /// The NameServers know no route for the topic (nor for the auto-create template).
    #[error("no route for topic {topic}")]
    NoRoute {
        /// The topic.
        topic: String,
    },
    /// No address is known for a broker name (it is in no route the client has seen).
    #[error("no address for broker {broker_name}")]
    BrokerNotFound {
        /// The broker name.
        broker_name: String,
    },
    /// Every attempt of a send failed; `last` is the last attempt's error.
    #[error("send to {topic} failed after {attempts} attempts on brokers {brokers:?}")]
    SendFailed {
        /// The topic.
        topic: String,
        /// Attempts made.
        attempts: usize,
        /// Broker names tried, in order.
        brokers: Vec<String>,
        /// The last attempt's error.
        #[source]
        last: Box<ClientError>,
    },
    /// The send timeout ran out before an attempt could be made.
    #[error("send to {topic} timed out after {timeout:?}")]
    SendTimeout {
        /// The topic.
        topic: String,
        /// The configured send timeout.
        timeout: Duration,
    },
    /// A request was sent, but no reply came within its timeout (Java's
    /// `RequestTimeoutException`).
    #[error(
        "request to {topic} was sent, but no reply came within {timeout:?} (correlation id {correlation_id})"
    )]
    RequestTimeout {
        /// The request's topic.
        topic: String,
        /// The request's `CORRELATION_ID`.
        correlation_id: String,
        /// The request's timeout.
        timeout: Duration,
    },
    /// A caller error: a bad topic, an empty batch, a message too large, ...
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: String,
    },
    /// A stored message in a response body could not be decoded.
    #[error("decode message at byte {position} of a response body: {reason}")]
    Decode {
        /// Byte position of the bad record.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing a local file (the broadcasting offset store) failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, as a verb.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The client, producer or consumer is shut down (or not started).
    #[error("{what} is shut down")]
    Shutdown {
        /// What.
        what: &'static str,
    },
    /// A producer or consumer group is already registered in this client instance.
    #[error("{kind} group {group} is already registered in this client instance")]
    GroupInUse {
        /// `producer` or `consumer`.
        kind: &'static str,
        /// The group.
        group: String,
    },
}

impl ClientError {
    /// The response code, when a server answered with an error.
    pub fn response_code(&self) -> Option<i32> {
        match self {
            Self::Broker { code, .. } => Some(*code),
            Self::SendFailed { last, .. } => last.response_code(),
            _ => None,
        }
    }

    /// Whether the error came from the transport (connect, timeout, closed connection).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Remoting(_))
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason: reason.into(),
        }
    }
}

/// The client's result type.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
