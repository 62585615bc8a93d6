//! Accepting connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{Connection, Handler, TransportConfig, TransportStats};

/// A listening socket whose connections are served by one [`Handler`].
pub struct RemotingServer {
    listener: TcpListener,
    handler: Arc<dyn Handler>,
    config: TransportConfig,
    stats: Arc<TransportStats>,
}

impl std::fmt::Debug for RemotingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotingServer")
            .field("listener", &self.listener)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RemotingServer {
    /// Binds `addr` (port 0 picks a free port; see [`RemotingServer::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        handler: Arc<dyn Handler>,
        config: TransportConfig,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self {
            listener,
            handler,
            config,
            stats: Arc::default(),
        })
    }

    /// Serves an already bound listener (to learn a port-0 address before building the
    /// handler).
    pub fn from_listener(
        listener: TcpListener,
        handler: Arc<dyn Handler>,
        config: TransportConfig,
    ) -> Self {
        Self {
            listener,
            handler,
            config,
            stats: Arc::default(),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        self.stats.clone()
    }

    /// Accepts and serves connections until `shutdown` is cancelled, then closes every
    /// connection and returns once their tasks (and the requests in progress) have ended.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = shutdown.cancelled() => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and the like: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = shutdown.cancelled() => break,
                    }
                }
            };
            let open = self.stats.connections_open.load(Ordering::Relaxed);
            if usize::try_from(open).unwrap_or(0) >= self.config.max_connections {
                self.stats
                    .connections_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = ?stream.peer_addr().ok(), open, limit = self.config.max_connections, "connection limit reached; closing the new connection");
                continue;
            }
            match Connection::start(
                stream,
                self.handler.clone(),
                &self.config,
                self.stats.clone(),
                &tracker,
                &shutdown,
            ) {
                Ok(conn) => {
                    tracing::debug!(peer = %conn.peer(), id = conn.id(), "connection accepted")
                }
                Err(e) => tracing::debug!(error = %e, "connection lost while being set up"),
            }
        }
        tracker.close();
        tracker.wait().await;
    }
}
