//! One TCP connection: a reader task, a writer task, and the table of requests awaiting
//! their responses.

use std::collections::HashMap;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_protocol::command::FLAG_RESPONSE;
use tributary_protocol::{FrameCodec, RemotingCommand, codes};

use crate::error::RemotingError;

/// The future a [`Handler`] returns: the response, or `None` for a request that gets none.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Option<RemotingCommand>> + Send>>;

/// Serves the requests that arrive on a connection.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request. The transport sets the response's opaque and response flag, and
    /// drops the response of a one-way request. The future is dropped if the connection
    /// closes first, so a long-polling handler needs no cleanup of its own.
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture;

    /// Called once when the connection has closed, after its last request was read.
    fn on_close(&self, _conn: &Arc<Connection>) {}
}

/// A [`Handler`] for a side that serves nothing: every request is answered
/// `REQUEST_CODE_NOT_SUPPORTED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHandler;

impl Handler for NoHandler {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        Box::pin(std::future::ready(Some(not_supported(&request))))
    }
}

/// The standard answer to a request code a side does not serve.
pub fn not_supported(request: &RemotingCommand) -> RemotingCommand {
    RemotingCommand::response_to(request)
        .with_code(codes::response::REQUEST_CODE_NOT_SUPPORTED)
        .with_remark(format!("request type {} not supported", request.code))
}

/// Every limit of the transport.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Largest frame read or written, length prefix included (16 MiB, as the Java broker).
    pub max_frame_len: usize,
    /// Requests one connection may have in progress at once; at the limit the connection is
    /// not read until one finishes.
    pub max_in_flight_requests: usize,
    /// Bytes of request frames one connection may have in progress at once; same backpressure.
    pub max_in_flight_bytes: usize,
    /// Frames queued for writing on one connection before senders wait.
    pub outbound_queue: usize,
    /// Connections a server holds at once; more are closed on accept.
    pub max_connections: usize,
    /// How long a client waits for a TCP connect.
    pub connect_timeout: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame_len: tributary_protocol::DEFAULT_MAX_FRAME_LEN,
            max_in_flight_requests: 4096,
            max_in_flight_bytes: 64 << 20,
            outbound_queue: 4096,
            max_connections: 10_000,
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters of one server or client, for metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Connections open now.
    pub connections_open: AtomicI64,
    /// Connections ever opened (accepted or connected).
    pub connections_total: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// Requests received.
    pub requests_in: AtomicU64,
    /// Frames that closed their connection (bad length, unknown serialize type, ...).
    pub frame_errors: AtomicU64,
    /// Frames whose header did not decode (answered, connection kept).
    pub header_errors: AtomicU64,
    /// Bytes read.
    pub bytes_in: AtomicU64,
    /// Bytes written.
    pub bytes_out: AtomicU64,
}

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// One open connection, shared by its tasks and by whoever sends on it.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    out: mpsc::Sender<RemotingCommand>,
    pending: Mutex<HashMap<i32, oneshot::Sender<RemotingCommand>>>,
    next_opaque: AtomicI32,
    closed: CancellationToken,
}

impl Connection {
    /// Starts the reader and writer tasks of `stream` on `tracker`; they end when the peer
    /// closes, on a framing error, or when `parent` is cancelled.
    pub(crate) fn start(
        stream: TcpStream,
        handler: Arc<dyn Handler>,
        config: &TransportConfig,
        stats: Arc<TransportStats>,
        tracker: &TaskTracker,
        parent: &CancellationToken,
    ) -> std::io::Result<Arc<Self>> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        let (rd, wr) = stream.into_split();
        let (out, rx) = mpsc::channel(config.outbound_queue.max(1));
        let conn = Arc::new(Self {
            id: NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed),
            peer,
            local,
            out,
            pending: Mutex::new(HashMap::new()),
            next_opaque: AtomicI32::new(1),
            closed: parent.child_token(),
        });
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        stats.connections_total.fetch_add(1, Ordering::Relaxed);
        let codec = FrameCodec::new(config.max_frame_len);
        let writer = Writer {
            conn: conn.clone(),
            wr,
            rx,
            codec,
            stats: stats.clone(),
        };
        tracker.spawn(writer.run());
        let reader = Reader {
            conn: conn.clone(),
            rd,
            handler,
            codec,
            stats,
            tracker: tracker.clone(),
            requests: Arc::new(Semaphore::new(config.max_in_flight_requests.max(1))),
            bytes: Arc::new(Semaphore::new(config.max_in_flight_bytes.max(1))),
            max_bytes: config.max_in_flight_bytes.max(1),
        };
        tracker.spawn(reader.run());
        Ok(conn)
    }

    /// A process-unique id of this connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Our end's address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the connection has closed.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// Closes the connection; requests awaiting responses fail with [`RemotingError::Closed`].
    pub fn close(&self) {
        self.closed.cancel();
    }

    fn closed_error(&self) -> RemotingError {
        RemotingError::Closed {
            addr: self.peer.to_string(),
        }
    }

    /// Queues a command for writing, waiting while the outbound queue is full.
    pub async fn send(&self, command: RemotingCommand) -> Result<(), RemotingError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.out
            .send(command)
            .await
            .map_err(|_| self.closed_error())
    }

    /// Sends `request` (its opaque is assigned here) and waits for the response.
    pub async fn invoke(
        &self,
        mut request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand, RemotingError> {
        let opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.opaque = opaque;
        request.flag &= !FLAG_RESPONSE;
        let code = request.code;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(opaque, tx);
        let exchange = async {
            self.send(request).await?;
            rx.await.map_err(|_| self.closed_error())
        };
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RemotingError::Timeout {
                code,
                addr: self.peer.to_string(),
                timeout,
            }),
        };
        if result.is_err() {
            self.pending.lock().remove(&opaque);
        }
        result
    }

    /// Sends `request` flagged one-way; no response is expected.
    pub async fn oneway(&self, mut request: RemotingCommand) -> Result<(), RemotingError> {
        request.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.mark_oneway();
        self.send(request).await
    }

    /// Sends `request` one-way if the outbound queue has room, without waiting: for
    /// best-effort notifications from places that cannot wait.
    pub fn try_oneway(&self, mut request: RemotingCommand) -> Result<(), RemotingError> {
        request.opaque = self.next_opaque.fetch_add(1, Ordering::Relaxed);
        request.mark_oneway();
        self.out.try_send(request).map_err(|_| self.closed_error())
    }

    fn complete(&self, response: RemotingCommand) {
        let waiter = self.pending.lock().remove(&response.opaque);
        match waiter {
            // The waiter may have timed out just now; then the response is dropped.
            Some(tx) => drop(tx.send(response)),
            None => tracing::debug!(
                peer = %self.peer,
                opaque = response.opaque,
                code = response.code,
                "response matches no request in flight (timed out?)"
            ),
        }
    }
}

struct Writer {
    conn: Arc<Connection>,
    wr: OwnedWriteHalf,
    rx: mpsc::Receiver<RemotingCommand>,
    codec: FrameCodec,
    stats: Arc<TransportStats>,
}

/// Bodies at least this large are written from their own buffer instead of being copied.
const ZERO_COPY_BODY: usize = 16 << 10;
/// Bytes gathered from the queue before one write.
const WRITE_BATCH: usize = 1 << 20;

impl Writer {
    async fn run(mut self) {
        let mut head = BytesMut::with_capacity(64 << 10);
        let mut chunks: Vec<Bytes> = Vec::new();
        loop {
            let first = tokio::select! {
                command = self.rx.recv() => command,
                () = self.conn.closed.cancelled() => None,
            };
            let Some(first) = first else { break };
            let mut queued = self.encode(first, &mut head, &mut chunks);
            while queued < WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(command) => queued += self.encode(command, &mut head, &mut chunks),
                    Err(_) => break,
                }
            }
            if !head.is_empty() {
                chunks.push(head.split().freeze());
            }
            if let Err(e) = write_all_chunks(&mut self.wr, &mut chunks).await {
                tracing::debug!(peer = %self.conn.peer, error = %e, "write failed; closing");
                break;
            }
            self.stats
                .bytes_out
                .fetch_add(queued as u64, Ordering::Relaxed);
        }
        self.conn.close();
        let _ = self.wr.shutdown().await;
    }

    /// Encodes one command into `head` (and `chunks`, for a large body); returns its bytes.
    fn encode(
        &self,
        mut command: RemotingCommand,
        head: &mut BytesMut,
        chunks: &mut Vec<Bytes>,
    ) -> usize {
        if let Err(e) = self.codec.encode_head(&command, head) {
            // Only a response can be too large here (requests are checked by their senders
            // alike, but a handler's answer is not): answer with the error instead.
            tracing::warn!(peer = %self.conn.peer, code = command.code, opaque = command.opaque, error = %e, "cannot encode command");
            if !command.is_response() {
                return 0;
            }
            let fallback = RemotingCommand {
                opaque: command.opaque,
                serialize_type: command.serialize_type,
                ..RemotingCommand::new_response(
                    codes::response::SYSTEM_ERROR,
                    Some(format!("response not sent: {e}")),
                )
            };
            command = fallback;
            if self.codec.encode_head(&command, head).is_err() {
                return 0;
            }
        }
        let before = head.len();
        let body = std::mem::take(&mut command.body);
        let len = body.len();
        if len >= ZERO_COPY_BODY {
            chunks.push(head.split().freeze());
            chunks.push(body);
        } else {
            head.extend_from_slice(&body);
        }
        before + len
    }
}

/// Writes every chunk, in order, with vectored writes.
async fn write_all_chunks(wr: &mut OwnedWriteHalf, chunks: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut start = 0;
    while start < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[start..]
            .iter()
            .take(64)
            .map(|c| IoSlice::new(c))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            let chunk = &mut chunks[start];
            let take = written.min(chunk.len());
            chunk.advance(take);
            written -= take;
            if chunk.is_empty() {
                start += 1;
            }
        }
        while start < chunks.len() && chunks[start].is_empty() {
            start += 1;
        }
    }
    chunks.clear();
    Ok(())
}

/// Addresses a handler's answer to its request.
fn respond(mut response: RemotingCommand, opaque: i32) -> RemotingCommand {
    response.opaque = opaque;
    response.flag |= FLAG_RESPONSE;
    response
}

struct Reader {
    conn: Arc<Connection>,
    rd: OwnedReadHalf,
    handler: Arc<dyn Handler>,
    codec: FrameCodec,
    stats: Arc<TransportStats>,
    tracker: TaskTracker,
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
}

impl Reader {
    async fn run(mut self) {
        let mut buf = BytesMut::with_capacity(64 << 10);
        'read: loop {
            loop {
                let before = buf.len();
                match self.codec.decode(&mut buf) {
                    Ok(Some(command)) => {
                        let frame_len = before - buf.len();
                        if !self.dispatch(command, frame_len).await {
                            break 'read;
                        }
                    }
                    Ok(None) => break,
                    Err(e) if e.closes_connection() => {
                        self.stats.frame_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %self.conn.peer, error = %e, "bad frame; closing the connection");
                        break 'read;
                    }
                    Err(e) => {
                        self.stats.header_errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(peer = %self.conn.peer, error = %e, "undecodable header");
                        if let Some((code, opaque)) = e.request_context() {
                            let mut response = RemotingCommand::new_response(
                                codes::response::SYSTEM_ERROR,
                                Some(format!("request code {code}: {e}")),
                            );
                            response.opaque = opaque;
                            if self.conn.send(response).await.is_err() {
                                break 'read;
                            }
                        }
                    }
                }
            }
            buf.reserve(64 << 10);
            let read = tokio::select! {
                read = self.rd.read_buf(&mut buf) => read,
                () = self.conn.closed.cancelled() => break,
            };
            match read {
                Ok(0) => break,
                Ok(n) => {
                    self.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(peer = %self.conn.peer, error = %e, "read failed");
                    break;
                }
            }
        }
        self.conn.close();
        self.conn.pending.lock().clear();
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        self.handler.on_close(&self.conn);
    }

    /// Routes one decoded frame; `false` when the connection closed meanwhile.
    async fn dispatch(&mut self, command: RemotingCommand, frame_len: usize) -> bool {
        if command.is_response() {
            self.conn.complete(command);
            return true;
        }
        self.stats.requests_in.fetch_add(1, Ordering::Relaxed);
        // Backpressure: while the connection's budget is spent, stop reading it.
        let cost = u32::try_from(frame_len.min(self.max_bytes)).unwrap_or(u32::MAX);
        let permits = tokio::select! {
            p = async {
                let r = self.requests.clone().acquire_owned().await;
                let b = self.bytes.clone().acquire_many_owned(cost).await;
                r.ok().zip(b.ok())
            } => p,
            () = self.conn.closed.cancelled() => None,
        };
        let Some(permits) = permits else { return false };
        let oneway = command.is_oneway();
        let opaque = command.opaque;
        let mut future = self.handler.handle(&self.conn, command);
        // Most requests (an ASYNC-flush send, an offset query) finish without waiting: run them
        // here, on the reader, and spawn a task only for those that must wait (a SYNC send
        // awaiting its fsync, a held pull). Polling with a no-op waker first is sound: the
        // spawned task polls again with its own.
        let polled = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        if let Poll::Ready(response) = polled {
            drop(permits);
            if let Some(response) = response.filter(|_| !oneway) {
                return self.conn.send(respond(response, opaque)).await.is_ok();
            }
            return true;
        }
        let conn = self.conn.clone();
        self.tracker.spawn(async move {
            let _permits = permits;
            let response = tokio::select! {
                r = future => r,
                () = conn.closed.cancelled() => None,
            };
            if let Some(response) = response.filter(|_| !oneway) {
                let _ = conn.send(respond(response, opaque)).await;
            }
        });
        true
    }
}
