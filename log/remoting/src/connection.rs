//! One TCP connection: a reader task, a writer task, and the table of requests awaiting
//! their responses.
//!
//! The writer task writes what others queue: requests, pushes, and the responses of requests
//! whose handlers had to wait. The reader answers requests that complete at once (most of
//! them: an ASYNC send, an offset query) itself: it gathers their encoded responses while it
//! decodes the frames of one read, and writes them all with one system call before reading
//! again. That saves a task wake-up and a write per request; when the writer is busy writing,
//! the gathered bytes are queued to it instead, so bytes of two frames never interleave.

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
use tokio::sync::{Mutex as AsyncMutex, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
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
    out: mpsc::Sender<Outbound>,
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
        let wr = Arc::new(AsyncMutex::new(wr));
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
            wr: wr.clone(),
            rx,
            codec,
            stats: stats.clone(),
        };
        tracker.spawn(writer.run());
        let reader = Reader {
            conn: conn.clone(),
            rd,
            wr,
            answers: Gather::default(),
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
            .send(Outbound::Command(command))
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
        self.out
            .try_send(Outbound::Command(request))
            .map_err(|_| self.closed_error())
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

/// What the writer task is given to write.
#[derive(Debug)]
enum Outbound {
    /// A command to encode.
    Command(RemotingCommand),
    /// Frames the reader encoded and could not write itself because the writer was writing.
    Encoded(Vec<Bytes>),
}

/// Encoded frames waiting for one write: small ones copied together into `head`, bodies of
/// [`ZERO_COPY_BODY`] or more kept in their own buffers in `chunks`, in order.
#[derive(Default)]
struct Gather {
    head: BytesMut,
    chunks: Vec<Bytes>,
    /// Bytes gathered.
    len: usize,
}

impl Gather {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encodes one command. A response too large to encode is replaced by an error response,
    /// so that its requester hears why instead of waiting out its timeout.
    fn command(&mut self, codec: &FrameCodec, peer: SocketAddr, mut command: RemotingCommand) {
        let before = self.head.len();
        if let Err(e) = codec.encode_head(&command, &mut self.head) {
            // Requests are checked by their senders, but a handler's answer is not.
            tracing::warn!(%peer, code = command.code, opaque = command.opaque, error = %e, "cannot encode command");
            if !command.is_response() {
                return;
            }
            command = RemotingCommand {
                opaque: command.opaque,
                serialize_type: command.serialize_type,
                ..RemotingCommand::new_response(
                    codes::response::SYSTEM_ERROR,
                    Some(format!("response not sent: {e}")),
                )
            };
            if codec.encode_head(&command, &mut self.head).is_err() {
                return;
            }
        }
        self.len += self.head.len() - before;
        self.bytes(std::mem::take(&mut command.body));
    }

    /// Appends already encoded bytes.
    fn bytes(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        if bytes.len() >= ZERO_COPY_BODY {
            if !self.head.is_empty() {
                self.chunks.push(self.head.split().freeze());
            }
            self.chunks.push(bytes);
        } else {
            self.head.extend_from_slice(&bytes);
        }
    }

    /// Everything gathered, as buffers in order; leaves the gather empty.
    fn take(&mut self) -> Vec<Bytes> {
        if !self.head.is_empty() {
            self.chunks.push(self.head.split().freeze());
        }
        self.len = 0;
        std::mem::take(&mut self.chunks)
    }

    /// Writes everything gathered and empties the gather; returns the bytes written.
    async fn write(&mut self, wr: &mut OwnedWriteHalf) -> std::io::Result<usize> {
        let len = self.len;
        if self.chunks.is_empty() {
            // The common case: only small frames, in one buffer that is reused.
            wr.write_all(&self.head).await?;
            self.head.clear();
            self.len = 0;
        } else {
            let mut chunks = self.take();
            write_all_chunks(wr, &mut chunks).await?;
        }
        Ok(len)
    }
}

struct Writer {
    conn: Arc<Connection>,
    wr: Arc<AsyncMutex<OwnedWriteHalf>>,
    rx: mpsc::Receiver<Outbound>,
    codec: FrameCodec,
    stats: Arc<TransportStats>,
}

/// Bodies at least this large are written from their own buffer instead of being copied.
const ZERO_COPY_BODY: usize = 16 << 10;
/// Bytes gathered before one write.
const WRITE_BATCH: usize = 1 << 20;

impl Writer {
    async fn run(mut self) {
        let mut gather = Gather {
            head: BytesMut::with_capacity(64 << 10),
            ..Gather::default()
        };
        loop {
            let first = tokio::select! {
                outbound = self.rx.recv() => outbound,
                () = self.conn.closed.cancelled() => None,
            };
            let Some(first) = first else { break };
            self.add(&mut gather, first);
            // Whoever queued `first` was likely woken together with others that will queue
            // too: a client's senders, woken by the responses of one read. Tokio runs a task
            // it just woke before the others (the LIFO slot), so without this the writer
            // would write each of them on its own. Yielding once lets them queue first, and
            // one write carries them all.
            tokio::task::yield_now().await;
            while gather.len < WRITE_BATCH {
                match self.rx.try_recv() {
                    Ok(outbound) => self.add(&mut gather, outbound),
                    Err(_) => break,
                }
            }
            if gather.is_empty() {
                continue;
            }
            let written = gather.write(&mut *self.wr.lock().await).await;
            match written {
                Ok(n) => {
                    self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(peer = %self.conn.peer, error = %e, "write failed; closing");
                    break;
                }
            }
        }
        self.conn.close();
        let _ = self.wr.lock().await.shutdown().await;
    }

    fn add(&self, gather: &mut Gather, outbound: Outbound) {
        match outbound {
            Outbound::Command(command) => gather.command(&self.codec, self.conn.peer, command),
            Outbound::Encoded(chunks) => chunks.into_iter().for_each(|c| gather.bytes(c)),
        }
    }
}

/// Writes every chunk, in order, with vectored writes.
async fn write_all_chunks(wr: &mut OwnedWriteHalf, chunks: &mut Vec<Bytes>) -> std::io::Result<()> {
    let mut start = 0;
    while start < chunks.len() {
        let mut slices = [IoSlice::new(&[]); 64];
        let n = (chunks.len() - start).min(slices.len());
        for (slice, chunk) in slices.iter_mut().zip(&chunks[start..start + n]) {
            *slice = IoSlice::new(chunk);
        }
        let mut written = wr.write_vectored(&slices[..n]).await?;
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

/// What a request in progress holds of its connection's budget: one request, and its bytes.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

struct Reader {
    conn: Arc<Connection>,
    rd: OwnedReadHalf,
    wr: Arc<AsyncMutex<OwnedWriteHalf>>,
    /// Responses of requests answered on the reader, written before the next read.
    answers: Gather,
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
            if !self.answers.is_empty() && !self.write_answers().await {
                break;
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

    /// Writes the gathered responses, or queues them to the writer if it is writing now (it
    /// would be, still, when the try fails: its lock is held only across a write). `false`
    /// when the connection closed.
    async fn write_answers(&mut self) -> bool {
        let written = match self.wr.try_lock() {
            Ok(mut wr) => self.answers.write(&mut wr).await,
            Err(_) => {
                let chunks = self.answers.take();
                return self.conn.out.send(Outbound::Encoded(chunks)).await.is_ok();
            }
        };
        match written {
            Ok(n) => {
                self.stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::debug!(peer = %self.conn.peer, error = %e, "write failed; closing");
                self.conn.close();
                false
            }
        }
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
        let permits = match (
            self.requests.clone().try_acquire_owned(),
            self.bytes.clone().try_acquire_many_owned(cost),
        ) {
            (Ok(requests), Ok(bytes)) => Some((requests, bytes)),
            _ => self.wait_for_permits(cost).await,
        };
        let Some(permits) = permits else { return false };
        self.serve(command, permits).await
    }

    /// Waits until the connection's budget has room for a request of `cost` bytes, writing
    /// the gathered responses first (their requests' permits are already back, but their
    /// requesters should not wait for ours). `None` when the connection closed.
    async fn wait_for_permits(&mut self, cost: u32) -> Option<Permits> {
        if !self.answers.is_empty() && !self.write_answers().await {
            return None;
        }
        tokio::select! {
            p = async {
                let r = self.requests.clone().acquire_owned().await;
                let b = self.bytes.clone().acquire_many_owned(cost).await;
                r.ok().zip(b.ok())
            } => p,
            () = self.conn.closed.cancelled() => None,
        }
    }

    /// Handles one request frame (its permits taken); `false` when the connection closed.
    async fn serve(&mut self, command: RemotingCommand, permits: Permits) -> bool {
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
                let response = respond(response, opaque);
                self.answers.command(&self.codec, self.conn.peer, response);
                if self.answers.len >= WRITE_BATCH {
                    return self.write_answers().await;
                }
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
