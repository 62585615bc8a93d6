//! The client side: one connection per address, opened on first use and again after it closes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_protocol::RemotingCommand;

use crate::connection::{Connection, Handler, NoHandler, TransportConfig, TransportStats};
use crate::error::RemotingError;

/// Connections to brokers and NameServers, shared by every producer and consumer of a client.
/// Cloning is cheap; the connections close when the last clone is dropped or on
/// [`RemotingClient::shutdown`].
#[derive(Clone)]
pub struct RemotingClient {
    inner: Arc<Inner>,
}

struct Inner {
    conns: Mutex<HashMap<String, Arc<Connection>>>,
    /// Serialises connects to one address so that racing callers share one connection.
    connecting: tokio::sync::Mutex<()>,
    handler: Arc<dyn Handler>,
    config: TransportConfig,
    stats: Arc<TransportStats>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl std::fmt::Debug for RemotingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotingClient")
            .field(
                "connections",
                &self.inner.conns.lock().keys().collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for RemotingClient {
    fn default() -> Self {
        Self::new(TransportConfig::default(), Arc::new(NoHandler))
    }
}

impl RemotingClient {
    /// A client whose connections hand requests from the server (a broker's
    /// `NOTIFY_CONSUMER_IDS_CHANGED`, say) to `handler`.
    pub fn new(config: TransportConfig, handler: Arc<dyn Handler>) -> Self {
        Self {
            inner: Arc::new(Inner {
                conns: Mutex::new(HashMap::new()),
                connecting: tokio::sync::Mutex::new(()),
                handler,
                config,
                stats: Arc::default(),
                tracker: TaskTracker::new(),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// The client's counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        self.inner.stats.clone()
    }

    fn live(&self, addr: &str) -> Option<Arc<Connection>> {
        let conns = self.inner.conns.lock();
        conns.get(addr).filter(|c| !c.is_closed()).cloned()
    }

    /// The open connection to `addr` (`host:port`), connecting first if there is none.
    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>, RemotingError> {
        if let Some(conn) = self.live(addr) {
            return Ok(conn);
        }
        let _guard = self.inner.connecting.lock().await;
        if let Some(conn) = self.live(addr) {
            return Ok(conn);
        }
        if self.inner.cancel.is_cancelled() {
            return Err(RemotingError::Closed { addr: addr.into() });
        }
        if !addr.contains(':') {
            return Err(RemotingError::BadAddress { addr: addr.into() });
        }
        let connect = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(self.inner.config.connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(RemotingError::Connect {
                    addr: addr.into(),
                    source,
                });
            }
            Err(_) => {
                return Err(RemotingError::Connect {
                    addr: addr.into(),
                    source: std::io::ErrorKind::TimedOut.into(),
                });
            }
        };
        let conn = Connection::start(
            stream,
            self.inner.handler.clone(),
            &self.inner.config,
            self.inner.stats.clone(),
            &self.inner.tracker,
            &self.inner.cancel,
        )
        .map_err(|source| RemotingError::Connect {
            addr: addr.into(),
            source,
        })?;
        self.inner
            .conns
            .lock()
            .insert(addr.to_string(), conn.clone());
        Ok(conn)
    }

    /// Sends `request` to `addr` and waits up to `timeout` for the response.
    pub async fn invoke(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let started = tokio::time::Instant::now();
        let conn = tokio::time::timeout(timeout, self.connection(addr))
            .await
            .map_err(|_| RemotingError::Timeout {
                code: request.code,
                addr: addr.into(),
                timeout,
            })??;
        let left = timeout.saturating_sub(started.elapsed());
        conn.invoke(request, left).await
    }

    /// Sends `request` to `addr` one-way.
    pub async fn oneway(&self, addr: &str, request: RemotingCommand) -> Result<(), RemotingError> {
        self.connection(addr).await?.oneway(request).await
    }

    /// Closes the connection to `addr`, if any (after a timeout, say, to force a fresh one).
    pub fn close(&self, addr: &str) {
        if let Some(conn) = self.inner.conns.lock().remove(addr) {
            conn.close();
        }
    }

    /// Closes every connection and waits for their tasks to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.conns.lock().clear();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
