//! The RocketMQ remoting transport on tokio: every broker, NameServer and client connection is
//! one [`Connection`] — frames in, frames out, requests matched to responses by opaque.
//!
//! - [`RemotingServer`] accepts connections and hands each inbound request to a [`Handler`];
//!   requests on one connection run concurrently (a long-polling pull does not hold up the sends
//!   behind it), and responses go back in whatever order they finish.
//! - [`RemotingClient`] keeps one connection per address and offers [`RemotingClient::invoke`]
//!   (request, then await the response or a timeout) and [`RemotingClient::oneway`].
//! - Either side can send requests on a [`Connection`] it holds: the broker uses that for
//!   `NOTIFY_CONSUMER_IDS_CHANGED` and `CHECK_TRANSACTION_STATE`.
//!
//! Limits are explicit ([`TransportConfig`]): frame size, requests in flight per connection
//! (reading stops while they are all taken, which pushes back on the peer), queued outbound
//! frames, connections per server.
//!
//! A framing error (a length over the limit, an unknown serialize type) closes that one
//! connection; a frame whose header does not decode gets a `SYSTEM_ERROR` response when its code
//! and opaque could be read. Neither touches anything but the one connection.

mod client;
mod connection;
mod error;
mod server;

pub use client::RemotingClient;
pub use connection::{
    Connection, Handler, HandlerFuture, NoHandler, TransportConfig, TransportStats, not_supported,
};
pub use error::RemotingError;
pub use server::RemotingServer;
