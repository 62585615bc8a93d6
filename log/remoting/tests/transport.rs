//! The transport against itself over loopback: request/response matching, concurrency,
//! one-way requests, server-initiated requests, and bad input on one connection.
// Tests await every task they spawn.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tributary_protocol::{FrameCodec, RemotingCommand, codes};
use tributary_remoting::{
    Connection, Handler, HandlerFuture, RemotingClient, RemotingError, RemotingServer,
    TransportConfig,
};

const ECHO: i32 = 9001;
/// Answers after the `RELEASE` request arrives: responses must be matched by opaque.
const PARKED: i32 = 9002;
const RELEASE: i32 = 9003;
const ONEWAY_COUNT: i32 = 9004;
/// Makes the server ask the client something on the same connection.
const ASK_BACK: i32 = 9005;
const TOO_BIG: i32 = 9006;

#[derive(Default)]
struct TestHandler {
    release: Arc<Notify>,
    oneways: AtomicUsize,
    oneway_seen: Notify,
}

impl Handler for TestHandler {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let response = RemotingCommand::response_to(&request);
        match request.code {
            ECHO => Box::pin(async move { Some(response.with_body(request.body)) }),
            PARKED => {
                let release = self.release.clone();
                Box::pin(async move {
                    release.notified().await;
                    Some(response.with_remark("released"))
                })
            }
            RELEASE => {
                self.release.notify_waiters();
                Box::pin(async move { Some(response) })
            }
            ONEWAY_COUNT => {
                self.oneways.fetch_add(1, Ordering::SeqCst);
                self.oneway_seen.notify_one();
                Box::pin(async { None })
            }
            ASK_BACK => {
                let conn = conn.clone();
                Box::pin(async move {
                    let question = RemotingCommand::new_request(ECHO, 0).with_body("ping?");
                    let answer = conn.invoke(question, Duration::from_secs(5)).await;
                    Some(response.with_body(answer.map(|a| a.body).unwrap_or_default()))
                })
            }
            TOO_BIG => Box::pin(async move { Some(response.with_body(vec![7u8; 2 << 20])) }),
            _ => Box::pin(async move { Some(tributary_remoting::not_supported(&request)) }),
        }
    }
}

struct EchoBack;
impl Handler for EchoBack {
    fn handle(&self, _conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        Box::pin(async move {
            let mut body = request.body.to_vec();
            body.extend_from_slice(b" pong");
            Some(RemotingCommand::response_to(&request).with_body(body))
        })
    }
}

async fn start(config: TransportConfig) -> (SocketAddr, Arc<TestHandler>, CancellationToken) {
    let handler = Arc::new(TestHandler::default());
    let server = RemotingServer::bind(
        "127.0.0.1:0".parse().expect("addr"),
        handler.clone(),
        config,
    )
    .await
    .expect("bind");
    let addr = server.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let token = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(server.run(token));
    });
    (addr, handler, stop)
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn many_concurrent_requests_each_get_their_own_response() {
    let (addr, _, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::default();
    let addr = addr.to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let addr = addr.clone();
        tasks.spawn(async move {
            let body = format!("message {i}").repeat(i % 50 + 1);
            let request = RemotingCommand::new_request(ECHO, 0).with_body(body.clone());
            let response = client.invoke(&addr, request, T).await.expect("response");
            assert_eq!(response.body, Bytes::from(body));
            assert!(response.is_response());
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("task");
    }
    // A body larger than the zero-copy threshold round-trips too.
    let big = vec![42u8; 3 << 20];
    let r = client
        .invoke(
            &addr,
            RemotingCommand::new_request(ECHO, 0).with_body(big.clone()),
            T,
        )
        .await
        .expect("big echo");
    assert_eq!(r.body.len(), big.len());
    assert!(r.body.iter().all(|b| *b == 42));
    stop.cancel();
}

#[tokio::test]
async fn a_parked_request_does_not_hold_up_later_ones() {
    let (addr, _, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::default();
    let addr = addr.to_string();
    let parked = {
        let client = client.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            client
                .invoke(&addr, RemotingCommand::new_request(PARKED, 0), T)
                .await
        })
    };
    // Same connection: the echo completes while PARKED waits.
    let echo = client
        .invoke(
            &addr,
            RemotingCommand::new_request(ECHO, 0).with_body("x"),
            T,
        )
        .await
        .expect("echo");
    assert_eq!(echo.body, Bytes::from_static(b"x"));
    assert!(!parked.is_finished());
    // RELEASE may arrive before PARKED has started waiting: retry until it is answered.
    loop {
        client
            .invoke(&addr, RemotingCommand::new_request(RELEASE, 0), T)
            .await
            .expect("release");
        if parked.is_finished() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let parked = parked.await.expect("join").expect("parked response");
    assert_eq!(parked.remark.as_deref(), Some("released"));
    stop.cancel();
}

#[tokio::test]
async fn oneway_requests_get_no_response_and_unknown_codes_are_refused() {
    let (addr, handler, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::default();
    let addr = addr.to_string();
    for _ in 0..3 {
        client
            .oneway(&addr, RemotingCommand::new_request(ONEWAY_COUNT, 0))
            .await
            .expect("oneway");
    }
    while handler.oneways.load(Ordering::SeqCst) < 3 {
        handler.oneway_seen.notified().await;
    }
    let r = client
        .invoke(&addr, RemotingCommand::new_request(12345, 0), T)
        .await
        .expect("answer");
    assert_eq!(r.code, codes::response::REQUEST_CODE_NOT_SUPPORTED);
    // A request without the oneway flag that the handler does not answer times out cleanly.
    let err = client
        .invoke(
            &addr,
            RemotingCommand::new_request(ONEWAY_COUNT, 0),
            Duration::from_millis(200),
        )
        .await
        .expect_err("no answer");
    assert!(matches!(err, RemotingError::Timeout { .. }), "{err}");
    // The connection still works after the timeout.
    client
        .invoke(&addr, RemotingCommand::new_request(ECHO, 0), T)
        .await
        .expect("echo");
    stop.cancel();
}

#[tokio::test]
async fn the_server_can_ask_the_client_on_the_same_connection() {
    let (addr, _, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::new(TransportConfig::default(), Arc::new(EchoBack));
    let r = client
        .invoke(
            &addr.to_string(),
            RemotingCommand::new_request(ASK_BACK, 0),
            T,
        )
        .await
        .expect("answer");
    assert_eq!(r.body, Bytes::from_static(b"ping? pong"));
    stop.cancel();
}

#[tokio::test]
async fn an_oversize_response_becomes_a_system_error() {
    let config = TransportConfig {
        max_frame_len: 1 << 20,
        ..TransportConfig::default()
    };
    let (addr, _, stop) = start(config).await;
    let client = RemotingClient::default();
    let r = client
        .invoke(
            &addr.to_string(),
            RemotingCommand::new_request(TOO_BIG, 0),
            T,
        )
        .await
        .expect("answer");
    assert_eq!(r.code, codes::response::SYSTEM_ERROR);
    assert!(r.remark.unwrap_or_default().contains("exceeds the limit"));
    stop.cancel();
}

async fn read_frame(stream: &mut TcpStream) -> Option<RemotingCommand> {
    let codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    loop {
        if let Some(cmd) = codec.decode(&mut buf).expect("server frames are valid") {
            return Some(cmd);
        }
        if stream.read_buf(&mut buf).await.ok()? == 0 {
            return None;
        }
    }
}

#[tokio::test]
async fn bad_frames_close_only_their_connection() {
    let (addr, _, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::default();
    let addr_s = addr.to_string();
    client
        .invoke(&addr_s, RemotingCommand::new_request(ECHO, 0), T)
        .await
        .expect("healthy");

    // 1. A header with a field of the wrong type, whose code and opaque can be read:
    //    SYSTEM_ERROR.
    let mut raw = TcpStream::connect(addr).await.expect("connect");
    let header = br#"{"code":9001,"opaque":77,"flag":0,"extFields":{"a":[1,2]}}"#;
    let mut frame = BytesMut::new();
    frame.put_i32(4 + header.len() as i32);
    frame.put_u32(header.len() as u32);
    frame.put_slice(header);
    raw.write_all(&frame).await.expect("write");
    let answer = read_frame(&mut raw).await.expect("an answer, not a close");
    assert_eq!(
        (answer.code, answer.opaque),
        (codes::response::SYSTEM_ERROR, 77)
    );
    // The connection stays usable.
    let mut ok = BytesMut::new();
    FrameCodec::default()
        .encode(
            &RemotingCommand::new_request(ECHO, 78).with_body("after"),
            &mut ok,
        )
        .expect("encode");
    raw.write_all(&ok).await.expect("write");
    let echo = read_frame(&mut raw).await.expect("echo");
    assert_eq!((echo.opaque, echo.body), (78, Bytes::from_static(b"after")));

    // 2. A length over the 16 MiB limit: the connection is closed.
    raw.write_all(&(64_i32 << 20).to_be_bytes())
        .await
        .expect("write");
    assert!(read_frame(&mut raw).await.is_none(), "closed");

    // 3. Random garbage on other connections.
    for seed in 0..20u8 {
        let mut raw = TcpStream::connect(addr).await.expect("connect");
        let junk: Vec<u8> = (0..200)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect();
        let _ = raw.write_all(&junk).await;
        let _ = raw.shutdown().await;
        while read_frame(&mut raw).await.is_some() {}
    }

    // The well-behaved client is still served on its own connection.
    let r = client
        .invoke(
            &addr_s,
            RemotingCommand::new_request(ECHO, 0).with_body("still here"),
            T,
        )
        .await
        .expect("still served");
    assert_eq!(r.body, Bytes::from_static(b"still here"));
    stop.cancel();
}

#[tokio::test]
async fn a_closed_server_fails_requests_instead_of_hanging() {
    let (addr, _, stop) = start(TransportConfig::default()).await;
    let client = RemotingClient::default();
    let addr = addr.to_string();
    client
        .invoke(&addr, RemotingCommand::new_request(ECHO, 0), T)
        .await
        .expect("up");
    let parked = {
        let client = client.clone();
        let addr = addr.clone();
        tokio::spawn(async move {
            client
                .invoke(&addr, RemotingCommand::new_request(PARKED, 0), T)
                .await
        })
    };
    tokio::task::yield_now().await;
    stop.cancel();
    let err = parked.await.expect("join").expect_err("server went away");
    assert!(
        matches!(
            err,
            RemotingError::Closed { .. } | RemotingError::Timeout { .. }
        ),
        "{err}"
    );
    let err = client
        .invoke(
            &addr,
            RemotingCommand::new_request(ECHO, 0),
            Duration::from_secs(2),
        )
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(
            err,
            RemotingError::Connect { .. } | RemotingError::Closed { .. }
        ),
        "{err}"
    );
}
