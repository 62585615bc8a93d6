//! Transport errors.

use std::time::Duration;

use tributary_protocol::ProtocolError;

/// What can go wrong sending a request and waiting for its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemotingError {
    /// Connecting to `addr` failed or took longer than the connect timeout.
    #[error("connect to {addr}: {source}")]
    Connect {
        /// The address as given.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The address is not `host:port`.
    #[error("bad address {addr:?}: expected host:port")]
    BadAddress {
        /// The address as given.
        addr: String,
    },
    /// No response arrived in time. The request may still have been executed.
    #[error("request code {code} to {addr} timed out after {timeout:?}")]
    Timeout {
        /// Request code.
        code: i32,
        /// Peer address.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection closed before the response arrived (or before the request was sent).
    #[error("connection to {addr} closed")]
    Closed {
        /// Peer address.
        addr: String,
    },
    /// The command could not be encoded (for example it is over the frame limit).
    #[error("encode request: {0}")]
    Encode(#[from] ProtocolError),
}
