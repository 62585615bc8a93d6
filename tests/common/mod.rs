//! Starting and stopping the real `tributary server` for end-to-end tests.
#![allow(dead_code)] // each test binary uses a different part

pub mod java;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running `tributary server` on free loopback ports.
pub struct TestServer {
    child: Child,
    drain: Option<std::thread::JoinHandle<()>>,
    /// HTTP endpoint (/metrics, /health).
    pub http: SocketAddr,
    /// NameServer address, `host:port`.
    pub namesrv: String,
    /// Broker address, `host:port`.
    pub broker: String,
}

impl TestServer {
    /// Starts the server on `data_dir` with `extra` arguments and waits for its ready line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_on(data_dir, "127.0.0.1:0", "127.0.0.1:0", extra)
    }

    /// Like [`TestServer::start`] with given NameServer and broker listen addresses (a
    /// restart on the same data directory keeps its addresses so that clients reconnect).
    pub fn start_on(data_dir: &Path, namesrv: &str, broker: &str, extra: &[&str]) -> Self {
        let data_dir = data_dir.to_str().expect("UTF-8 path");
        let mut args = vec![
            "server",
            "--http-listen",
            "127.0.0.1:0",
            "--namesrv-listen",
            namesrv,
            "--broker-listen",
            broker,
            "--data-dir",
            data_dir,
        ];
        args.extend_from_slice(extra);
        Self::spawn(&args)
    }

    /// Runs `tributary --log-format json <args>` (`server`, `broker` or `namesrv`) and waits
    /// for its ready line. Addresses of roles the process does not run are empty.
    pub fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .args(["--log-format", "json"])
            .args(args)
            .env_remove("NAMESRV_ADDR")
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tributary");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let ready = loop {
            let line = lines
                .next()
                .expect("server exited before it was ready")
                .expect("read");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                // Not a log line: the process failed to start and prints why (with causes).
                let rest: Vec<String> = lines.map_while(Result::ok).collect();
                panic!("tributary failed to start:\n{line}\n{}", rest.join("\n"));
            };
            if v["fields"]["message"] == "tributary server ready" {
                break v;
            }
        };
        let field = |name: &str| {
            ready["fields"][name]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        // Keep draining the log so the server never blocks on a full pipe; its warnings and
        // errors go to the test's output, which the runner shows when the test fails.
        let drain = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let level = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v["level"].as_str().map(str::to_owned));
                if matches!(level.as_deref(), Some("WARN" | "ERROR") | None) {
                    eprintln!("tributary: {line}");
                }
            }
        });
        Self {
            child,
            drain: Some(drain),
            http: field("http").parse().expect("http address"),
            namesrv: field("namesrv"),
            broker: field("broker"),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(mut self) -> ExitStatus {
        self.signal("-TERM");
        self.wait()
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill(mut self) -> ExitStatus {
        self.signal("-KILL");
        self.wait()
    }

    fn wait(&mut self) -> ExitStatus {
        let status = self.child.wait().expect("wait");
        if let Some(d) = self.drain.take() {
            d.join().expect("drain");
        }
        status
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.drain.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A client that refreshes routes, heartbeats and rebalances every 300 ms, so tests wait less.
pub fn fast_client(namesrv: &str) -> tributary_client::ClientConfig {
    let mut config = tributary_client::ClientConfig::new(namesrv);
    config.poll_name_server_interval = std::time::Duration::from_millis(300);
    config.heartbeat_broker_interval = std::time::Duration::from_millis(300);
    config.rebalance_interval = std::time::Duration::from_millis(300);
    config
}

/// Writes `tributary.toml` into `dir` with `broker_section` and small commit-log segments (a
/// restart recovers a whole segment: 1 GiB ones take seconds in a debug build); its path.
pub fn config_file(dir: &Path, broker_section: &str) -> PathBuf {
    let path = dir.join("tributary.toml");
    let text = format!("[store]\ncommitlog_segment_bytes = 8388608\n[broker]\n{broker_section}\n");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Fails the test unless `node` and `npm` are installed (the compatibility tests run the
/// Node.js RocketMQ client ali-ons; `.ci/run` installs them).
pub fn require_node() {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "{tool} is needed for this test (apt-get install nodejs npm; .ci/run does)"
        );
    }
}

/// Creates `topic` with `queues` queues on the server's broker with the CLI (ali-ons does not
/// fall back to the TBW102 template).
pub fn create_topic(server: &TestServer, topic: &str, queues: u32) {
    let created = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["topic", "create", topic, "--queues", &queues.to_string()])
        .args(["--broker", &server.broker, "--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("tributary topic create");
    assert!(created.status.success(), "{created:?}");
}

/// Runs the ali-ons check script `script` (in `tests/compat/`) against the server with the
/// given environment, and asserts that it succeeded and printed `verdict`.
pub fn run_alions(server: &TestServer, script: &str, env: &[(&str, &str)], verdict: &str) {
    let check = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/alions-check");
    let out = Command::new(check)
        .arg(&server.namesrv)
        .env("SCRIPT", script)
        .envs(env.iter().copied())
        .output()
        .expect("run alions-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(verdict),
        "ali-ons check {script} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// Every message stored in `topic`, queue by queue in offset order, read with plain pulls
/// (no group offsets are touched).
pub async fn stored(
    admin: &tributary_client::Admin,
    topic: &str,
) -> Vec<tributary_client::MessageExt> {
    use tributary_client::PullStatus;
    use tributary_client::instance::PullArgs;

    let mut out = Vec::new();
    for status in admin.topic_status(topic).await.expect("topic status") {
        let mut offset = status.min_offset;
        while offset < status.max_offset {
            let r = admin
                .instance()
                .pull(&status.queue, &PullArgs::tools(offset, 32))
                .await
                .expect("pull");
            if r.status != PullStatus::Found {
                break;
            }
            offset = r.next_begin_offset;
            out.extend(r.messages);
        }
    }
    out
}

/// `GET path` on an HTTP address: the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of one unlabelled sample on the server's /metrics (`None` when absent).
pub fn metric(server: &TestServer, name: &str) -> Option<f64> {
    let (status, body) = http_get(server.http, "/metrics");
    assert_eq!(status, 200, "/metrics answered {status}");
    body.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// How long [`wait_until`] waits.
pub const WAIT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Polls `check` every 50 ms until it holds; fails the test after [`WAIT_DEADLINE`].
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Creates `topic` with `queues` queues on the server's broker and waits until the
/// NameServer routes it.
pub async fn create_topic_routed(
    admin: &tributary_client::Admin,
    server: &TestServer,
    topic: &str,
    queues: i32,
) {
    use tributary_client::admin::{TopicSpec, TopicTarget};
    let target = TopicTarget::Broker(server.broker.clone());
    wait_until("the topic is created and routed", async || {
        admin
            .create_topic(&TopicSpec::new(topic, queues), &target)
            .await
            .is_ok()
            && admin
                .topic_route(topic)
                .await
                .is_ok_and(|r| !r.queue_datas.is_empty())
    })
    .await;
}
