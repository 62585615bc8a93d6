//! End-to-end tests of the client commands (`topic`, `produce`, `consume`, `group`): the real
//! `tributary server` and the real binary, as a person or a script runs them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestServer, metric};
use serde_json::Value;

/// How long a condition may take to become true before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A server whose broker has registered with its NameServer (the template topic `TBW102`
/// is routed), so that topics can be created on it.
fn start() -> (tempfile::TempDir, TestServer) {
    start_with("")
}

/// Store settings of every test server: small commit-log segments, so that a restart after
/// a kill recovers quickly (a debug build takes seconds over a 1 GiB segment).
const STORE_CONFIG: &str = "[store]\ncommitlog_segment_bytes = 8388608\n";

/// [`start`] with `config` (after [`STORE_CONFIG`]) as the server's configuration file,
/// `tributary.toml` in the returned folder.
fn start_with(config: &str) -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tributary.toml");
    std::fs::write(&path, format!("{STORE_CONFIG}{config}")).expect("write config");
    let server = TestServer::start(
        dir.path(),
        &["--config", path.to_str().expect("utf-8 path")],
    );
    wait_for("the broker to register", || {
        topics(&server).iter().any(|t| t == "TBW102").then_some(())
    });
    (dir, server)
}

/// `tributary <args> --namesrv <server>` with `stdin` as input.
fn run_with(server: &TestServer, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .args(["--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tributary");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for tributary")
}

fn run(server: &TestServer, args: &[&str]) -> Output {
    run_with(server, args, b"")
}

/// Stdout of a command that must succeed.
fn ok(args: &[&str], output: Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tributary {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    stdout
}

/// Stderr of a command that must fail with exit code 1 or 2 (clap usage errors).
fn fails(args: &[&str], output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        matches!(output.status.code(), Some(1 | 2)),
        "tributary {args:?} should fail, got {}:\nstdout:\n{}\nstderr:\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        !stderr.contains("panicked"),
        "tributary {args:?} panicked:\n{stderr}"
    );
    stderr
}

/// Stdout of `tributary <args>`, which must succeed.
fn stdout_of(server: &TestServer, args: &[&str]) -> String {
    ok(args, run(server, args))
}

/// Stdout of `tributary <args>` with `stdin` as input, which must succeed.
fn stdout_of_with(server: &TestServer, args: &[&str], stdin: &str) -> String {
    ok(args, run_with(server, args, stdin.as_bytes()))
}

fn assert_contains(text: &str, expected: &[&str]) {
    for expect in expected {
        assert!(text.contains(expect), "{expect:?} missing from\n{text}");
    }
}

fn json(server: &TestServer, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let stdout = ok(&all, run(server, &all));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{all:?}: not JSON ({e}):\n{stdout}"))
}

/// Each line of `consume --json` as an object.
fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Polls `check` until it returns `Some`, failing after [`DEADLINE`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn topics(server: &TestServer) -> Vec<String> {
    json(server, &["topic", "list"])["topics"]
        .as_array()
        .expect("topics array")
        .iter()
        .map(|t| t.as_str().expect("topic name").to_owned())
        .collect()
}

fn create_topic(server: &TestServer, topic: &str, queues: &str) {
    let args = ["topic", "create", topic, "--queues", queues];
    stdout_of(server, &args);
    wait_for("the NameServer to list the topic", || {
        topics(server).iter().any(|t| t == topic).then_some(())
    });
}

fn produce(server: &TestServer, args: &[&str], input: &str) -> Value {
    let mut all = vec!["produce"];
    all.extend_from_slice(args);
    all.push("--json");
    let stdout = ok(&all, run_with(server, &all, input.as_bytes()));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn consume(server: &TestServer, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["consume"];
    all.extend_from_slice(args);
    all.push("--json");
    json_lines(&stdout_of(server, &all))
}

fn str_field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string in {value}"))
}

/// The summed lag of a group on one topic's queues (its retry topic left out).
fn topic_lag(server: &TestServer, group: &str, topic: &str) -> i64 {
    json(server, &["group", "describe", group])["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter(|q| q["topic"] == topic)
        .map(|q| q["lag"].as_i64().expect("lag"))
        .sum()
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let (_dir, server) = start();
    let args = [
        "topic",
        "create",
        "orders",
        "--read-queues",
        "4",
        "--write-queues",
        "3",
        "--json",
    ];
    let created: Value = serde_json::from_str(&stdout_of(&server, &args)).expect("JSON");
    assert_eq!(created["topic"], "orders");
    assert_eq!(created["read_queues"], 4);
    assert_eq!(created["write_queues"], 3);
    assert_eq!(created["perm"], "rw");
    assert_eq!(created["brokers"], serde_json::json!([server.broker]));
    wait_for("orders in the topic list", || {
        topics(&server).iter().any(|t| t == "orders").then_some(())
    });

    // The human list is a table with a header.
    let list = stdout_of(&server, &["topic", "list"]);
    assert_eq!(list.lines().next(), Some("TOPIC"));
    assert!(list.lines().any(|l| l == "orders"), "{list}");

    let described = json(&server, &["topic", "describe", "orders"]);
    let brokers = described["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1);
    assert_eq!(brokers[0]["read_queues"], 4);
    assert_eq!(brokers[0]["write_queues"], 3);
    assert_eq!(brokers[0]["perm"], "rw");
    assert_eq!(brokers[0]["addresses"]["0"], server.broker.as_str());
    let queues = described["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 4);
    for q in queues {
        assert_eq!(q["max_offset"], 0, "{q}");
        assert!(q["last_update"].is_null(), "{q}");
    }

    // Messages show in the offsets and the last update times.
    let sent = produce(&server, &["--topic", "orders"], "a\nb\nc\n");
    assert_eq!(sent["sent"], 3);
    let described = wait_for("three messages in the queues", || {
        let d = json(&server, &["topic", "describe", "orders"]);
        let total: i64 = d["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .map(|q| q["max_offset"].as_i64().expect("max_offset"))
            .sum();
        (total == 3).then_some(d)
    });
    for q in described["queues"].as_array().expect("queues") {
        let stored = q["max_offset"].as_i64().expect("max") > 0;
        assert_eq!(q["last_update"].is_string(), stored, "{q}");
        assert_eq!(q["last_update_ms"].is_i64(), stored, "{q}");
    }
    let human = stdout_of(&server, &["topic", "describe", "orders"]);
    assert_contains(
        &human,
        &[
            "Topic orders",
            "Route:",
            "Queues:",
            "LAST UPDATE",
            &server.broker,
        ],
    );

    // Permissions and order are passed on.
    let args = [
        "topic", "create", "audit", "--queues", "2", "--perm", "r", "--order", "--json",
    ];
    let created: Value = serde_json::from_str(&stdout_of(&server, &args)).expect("JSON");
    assert_eq!(created["perm"], "r");
    assert_eq!(created["order"], true);
    let audit = wait_for("audit to be routed", || {
        let args = ["topic", "describe", "audit", "--json"];
        let out = run(&server, &args);
        out.status
            .success()
            .then(|| serde_json::from_str::<Value>(&String::from_utf8_lossy(&out.stdout)))
            .and_then(Result::ok)
    });
    assert_eq!(audit["brokers"][0]["perm"], "r");

    let args = ["topic", "delete", "orders", "--json"];
    let deleted: Value = serde_json::from_str(&stdout_of(&server, &args)).expect("JSON");
    assert_eq!(deleted["topic"], "orders");
    assert_eq!(deleted["namesrvs"], serde_json::json!([server.namesrv]));
    wait_for("orders to leave the topic list", || {
        (!topics(&server).iter().any(|t| t == "orders")).then_some(())
    });
    let err = fails(
        &["topic", "describe", "orders"],
        run(&server, &["topic", "describe", "orders"]),
    );
    assert!(err.contains("topic orders does not exist"), "{err}");
}

#[test]
fn produced_lines_are_consumed_back_with_tags_and_keys() {
    let (_dir, server) = start();
    create_topic(&server, "lines", "4");
    let input = "first line\nsecond line\n\nthird line\nfourth line\nfifth line\n";
    let sent = produce(
        &server,
        &["--topic", "lines", "--tag", "TagA", "--key", "order-1"],
        input,
    );
    assert_eq!(sent["sent"], 5);
    assert_eq!(sent["requests"], 5);
    assert_eq!(sent["skipped_empty_lines"], 1);
    let messages = sent["messages"].as_array().expect("messages");
    let lines: Vec<i64> = messages
        .iter()
        .map(|m| m["line"].as_i64().expect("line"))
        .collect();
    assert_eq!(lines, [1, 2, 4, 5, 6]);
    let sent_ids: BTreeSet<&str> = messages.iter().map(|m| str_field(m, "msg_id")).collect();
    assert_eq!(sent_ids.len(), 5);

    let got = consume(
        &server,
        &[
            "--topic",
            "lines",
            "--group",
            "readers",
            "--from",
            "first",
            "--max-messages",
            "5",
        ],
    );
    assert_eq!(got.len(), 5);
    let bodies: BTreeSet<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    let expect: BTreeSet<&str> = input.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(bodies, expect);
    let got_ids: BTreeSet<&str> = got.iter().map(|m| str_field(m, "msg_id")).collect();
    assert_eq!(got_ids, sent_ids);
    for m in &got {
        assert_eq!(m["topic"], "lines");
        assert_eq!(m["tags"], "TagA");
        assert_eq!(m["keys"], serde_json::json!(["order-1"]));
    }

    // Keys from the lines, in batches, and the human output of both commands.
    let args = [
        "produce",
        "--topic",
        "lines",
        "--key-from-line",
        "--batch",
        "2",
    ];
    let out = ok(
        &args,
        run_with(&server, &args, b"k1\tbody one\nk2\tbody two\nno key here\n"),
    );
    assert!(out.starts_with("  LINE  MSG ID"), "{out}");
    assert!(
        out.contains("Sent 3 messages to lines in 2 requests."),
        "{out}"
    );
    let args = [
        "consume",
        "--topic",
        "lines",
        "--group",
        "readers",
        "--max-messages",
        "3",
    ];
    // The group resumes after the five messages it consumed: only the new three come.
    let human = stdout_of(&server, &args);
    let rows: Vec<&str> = human.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{human}");
    assert!(human.starts_with("QUEUE"), "{human}");
    for (key, body) in [("k1", "body one"), ("k2", "body two"), ("-", "no key here")] {
        assert!(
            rows.iter()
                .any(|r| r.ends_with(body) && r.contains(&format!("  {key}  "))),
            "no row with key {key} and body {body} in\n{human}"
        );
    }
}

#[test]
fn max_messages_leaves_the_rest_for_the_group() {
    let (_dir, server) = start();
    create_topic(&server, "jobs", "3");
    let all: BTreeSet<String> = (1..=7).map(|i| format!("job-{i}")).collect();
    let input: String = all.iter().map(|j| format!("{j}\n")).collect();
    produce(&server, &["--topic", "jobs", "--batch", "3"], &input);
    let args = ["--topic", "jobs", "--group", "g", "--from", "first"];
    let first = consume(&server, &[&args[..], &["--max-messages", "4"]].concat());
    assert_eq!(first.len(), 4);
    // Exactly the printed messages are committed: the other three are the group's lag...
    assert_eq!(topic_lag(&server, "g", "jobs"), 3);
    // ...and come next, each once.
    let rest = consume(&server, &[&args[..], &["--max-messages", "3"]].concat());
    let mut seen: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|m| str_field(m, "body"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, all.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(topic_lag(&server, "g", "jobs"), 0);
}

#[test]
fn consume_starts_at_a_time() {
    let (_dir, server) = start();
    create_topic(&server, "timed", "2");
    produce(&server, &["--topic", "timed"], "before\n");
    let before = consume(
        &server,
        &[
            "--topic",
            "timed",
            "--group",
            "peek",
            "--from",
            "first",
            "--max-messages",
            "1",
        ],
    );
    let stored = before[0]["store_timestamp"].as_i64().expect("store time");
    // The next message is stored strictly later than the first.
    wait_for("the clock to pass the first message", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        (now > u128::try_from(stored + 1).expect("positive")).then_some(())
    });
    produce(&server, &["--topic", "timed"], "after\n");
    let from = before[0]["store_time"].as_str().expect("store time");
    let since = chrono_after(from);
    let got = consume(
        &server,
        &[
            "--topic",
            "timed",
            "--group",
            "since",
            "--from",
            &since,
            "--max-messages",
            "1",
        ],
    );
    assert_eq!(str_field(&got[0], "body"), "after");
    // A relative time an hour back reaches both.
    let got = consume(
        &server,
        &[
            "--topic",
            "timed",
            "--group",
            "hour",
            "--from",
            "-1h",
            "--max-messages",
            "2",
        ],
    );
    let bodies: BTreeSet<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    assert_eq!(bodies, BTreeSet::from(["before", "after"]));
}

/// An RFC 3339 time one millisecond after `time` (`YYYY-MM-DDTHH:MM:SS.mmmZ`).
fn chrono_after(time: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339");
    (t + chrono::Duration::milliseconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn tag_filters_deliver_only_matching_messages() {
    let (_dir, server) = start();
    create_topic(&server, "tagged", "2");
    for (tag, lines) in [
        ("TagA", "a1\na2\na3\n"),
        ("TagB", "b1\nb2\nb3\n"),
        ("TagC", "c1\nc2\n"),
    ] {
        produce(&server, &["--topic", "tagged", "--tag", tag], lines);
    }
    let got = consume(
        &server,
        &[
            "--topic",
            "tagged",
            "--group",
            "ac",
            "--from",
            "first",
            "--tags",
            "TagA || TagC",
            "--idle-timeout",
            "3",
        ],
    );
    let bodies: BTreeSet<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    assert_eq!(bodies, BTreeSet::from(["a1", "a2", "a3", "c1", "c2"]));
    assert_eq!(got.len(), 5, "duplicates in {got:?}");
    for m in &got {
        assert!(m["tags"] == "TagA" || m["tags"] == "TagC", "{m}");
    }
}

/// A `tributary consume --json` process whose printed bodies are collected as they come.
struct Member {
    child: std::process::Child,
    printed: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// `None` once the process was interrupted and waited for.
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Member {
    /// A test that fails before [`Member::interrupt`] leaves no process behind.
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Member {
    fn start(server: &TestServer, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
            .arg("consume")
            .args(args)
            .args(["--json", "--namesrv", &server.namesrv])
            .env_remove("NAMESRV_ADDR")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn consume");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let printed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = {
            let printed = printed.clone();
            std::thread::spawn(move || {
                for line in stdout.lines() {
                    let m: Value = serde_json::from_str(&line.expect("read")).expect("JSON");
                    let body = str_field(&m, "body").to_owned();
                    printed.lock().expect("lock").push(body);
                }
            })
        };
        Self {
            child,
            printed,
            reader: Some(reader),
        }
    }

    /// The bodies printed so far, in order.
    fn printed(&self) -> Vec<String> {
        self.printed.lock().expect("lock").clone()
    }

    /// Ctrl-C; waits for a clean exit and returns every body printed.
    fn interrupt(mut self) -> Vec<String> {
        let interrupted = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(interrupted.success());
        assert!(self.child.wait().expect("wait for consume").success());
        if let Some(reader) = self.reader.take() {
            reader.join().expect("reader");
        }
        std::mem::take(&mut *self.printed.lock().expect("lock"))
    }
}

/// Java's `String.hashCode`, written out here so the test does not trust the client's.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[test]
fn ordered_lines_go_to_their_keys_queue_and_are_consumed_in_order() {
    let (_dir, server) = start();
    create_topic(&server, "fifo", "4");
    let keys = [
        "order-1", "order-2", "order-3", "order-4", "order-5", "order-6",
    ];
    let mut input = String::new();
    for seq in 0..10 {
        for key in keys {
            input.push_str(&format!("{key}\t{key}:{seq}\n"));
        }
    }
    let report = produce(
        &server,
        &["--topic", "fifo", "--ordered", "--key-from-line"],
        &input,
    );
    let sent = report["messages"].as_array().expect("messages");
    assert_eq!(sent.len(), 60, "{report}");
    // Each line went to the queue Java's SelectMessageQueueByHash picks for its key.
    for (i, m) in sent.iter().enumerate() {
        let key = keys[i % keys.len()];
        let queue = (java_hash(key) % 4).abs();
        assert_eq!(m["queue_id"].as_i64(), Some(i64::from(queue)), "{key}: {m}");
    }
    // Two members of one group share the queues (a queue moves from one to the other as the
    // second joins): each prints each key's messages in line order, and between them every
    // message once. They run until everything is printed, then are interrupted.
    let args = [
        "--topic",
        "fifo",
        "--group",
        "fifo-readers",
        "--from",
        "first",
    ];
    let members = [Member::start(&server, &args), Member::start(&server, &args)];
    wait_for("the members to print every message", || {
        let count: usize = members.iter().map(|m| m.printed().len()).sum();
        (count >= 60).then_some(())
    });
    let mut all: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for member in members {
        let mut by_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for body in member.interrupt() {
            let (key, seq) = body.split_once(':').expect("key:seq");
            by_key
                .entry(key.to_owned())
                .or_default()
                .push(seq.parse().expect("seq"));
        }
        for (key, seqs) in by_key {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
            all.entry(key).or_default().extend(seqs);
        }
    }
    for key in keys {
        let mut seqs = all[key].clone();
        seqs.sort_unstable();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "{key}: each once");
    }
    // A line without a key cannot be placed.
    let args = ["produce", "--topic", "fifo", "--ordered", "--key-from-line"];
    let err = fails(
        &args,
        run_with(&server, &args, b"order-1\tfine\nno key here\n"),
    );
    assert_contains(&err, &["line 2 has no key"]);
    // Refused before reading stdin: run with none, so no write meets a closed pipe.
    let args = ["produce", "--topic", "fifo", "--ordered"];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["--ordered", "--key"]);
}

#[test]
fn broadcast_consumers_each_get_every_message_and_resume_from_their_file() {
    let (dir, server) = start();
    create_topic(&server, "news", "2");
    let lines: String = (0..10).map(|i| format!("news-{i}\n")).collect();
    produce(&server, &["--topic", "news"], &lines);
    let offsets = dir.path().join("offsets");
    let member = |name: &str| {
        let dir = offsets.join(name);
        let dir = dir.to_str().expect("utf-8 path").to_owned();
        let args = [
            "consume",
            "--topic",
            "news",
            "--group",
            "newsroom",
            "--broadcast",
            "--offset-dir",
            &dir,
            "--from",
            "first",
            "--idle-timeout",
            "2",
            "--json",
        ];
        let out = ok(&args, run(&server, &args));
        json_lines(&out)
            .iter()
            .map(|m| str_field(m, "body").to_owned())
            .collect::<BTreeSet<_>>()
    };
    let all: BTreeSet<String> = (0..10).map(|i| format!("news-{i}")).collect();
    // The same group twice: clustering would leave the second nothing.
    assert_eq!(member("one"), all);
    assert_eq!(member("two"), all);
    assert!(
        offsets
            .join("one")
            .join("newsroom")
            .join("offsets.json")
            .is_file()
    );
    // Each resumes from its own file.
    produce(&server, &["--topic", "news"], "late-1\nlate-2\n");
    let late: BTreeSet<String> = ["late-1".to_owned(), "late-2".to_owned()].into();
    assert_eq!(member("one"), late);
    // The group committed nothing on the broker: a clustering member starts from the first.
    let got = consume(
        &server,
        &[
            "--topic",
            "news",
            "--group",
            "newsroom",
            "--from",
            "first",
            "--idle-timeout",
            "2",
        ],
    );
    assert_eq!(got.len(), 12, "{got:?}");
    let args = [
        "consume",
        "--topic",
        "news",
        "--group",
        "g",
        "--offset-dir",
        "x",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["--broadcast"]);
}

#[test]
fn group_describe_shows_lag_and_online_clients() {
    let (_dir, server) = start();
    create_topic(&server, "work", "4");
    produce(&server, &["--topic", "work"], "1\n2\n3\n4\n");
    let got = consume(
        &server,
        &[
            "--topic",
            "work",
            "--group",
            "workers",
            "--from",
            "first",
            "--max-messages",
            "4",
        ],
    );
    assert_eq!(got.len(), 4);

    let described = json(&server, &["group", "describe", "workers"]);
    assert_eq!(described["group"], "workers");
    assert_eq!(described["clients"], serde_json::json!([]));
    let queues: Vec<&Value> = described["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter(|q| q["topic"] == "work")
        .collect();
    assert_eq!(queues.len(), 4);
    for q in &queues {
        assert_eq!(q["lag"], 0, "{q}");
        if q["broker_offset"].as_i64().expect("broker offset") > 0 {
            assert_eq!(q["consumer_offset"], q["broker_offset"], "{q}");
        }
    }
    assert_eq!(topic_lag(&server, "workers", "work"), 0);

    produce(&server, &["--topic", "work"], "5\n6\n7\n");
    wait_for("a lag of 3", || {
        (topic_lag(&server, "workers", "work") == 3).then_some(())
    });
    let human = stdout_of(&server, &["group", "describe", "workers"]);
    assert_contains(
        &human,
        &[
            "Group workers",
            "Total lag: 3",
            "CONSUMER OFFSET",
            "Online clients: 0",
        ],
    );
    let listed = json(&server, &["group", "list"]);
    let workers = listed["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["group"] == "workers")
        .unwrap_or_else(|| panic!("workers missing from {listed}"))
        .clone();
    assert_eq!(workers["total_lag"], 3);
    assert_eq!(workers["clients"], 0);

    // A consumer running in the background is an online client; Ctrl-C stops it cleanly and
    // its offsets are committed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["consume", "--topic", "work", "--group", "workers", "--json"])
        .args(["--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn consume");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut bodies = BTreeSet::new();
    let mut line = String::new();
    while bodies.len() < 3 {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "consume ended early"
        );
        let m: Value = serde_json::from_str(&line).expect("JSON line");
        bodies.insert(str_field(&m, "body").to_owned());
    }
    assert_eq!(bodies, BTreeSet::from(["5".into(), "6".into(), "7".into()]));
    let online = wait_for("the consumer to be online", || {
        let d = json(&server, &["group", "describe", "workers"]);
        let clients = d["clients"].as_array().expect("clients").clone();
        (!clients.is_empty()).then_some(d)
    });
    assert_eq!(online["message_model"], "CLUSTERING");
    assert!(
        online["subscriptions"]
            .as_array()
            .expect("subscriptions")
            .iter()
            .any(|s| s["topic"] == "work" && s["expression"] == "*"),
        "{online}"
    );
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(interrupted.success());
    let status = child.wait().expect("wait for consume");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("read stderr");
    assert!(status.success(), "consume exited with {status}: {stderr}");
    assert!(stderr.contains("Consumed 3 messages"), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(topic_lag(&server, "workers", "work"), 0);
}

#[test]
fn bad_input_fails_with_a_message() {
    let (_dir, server) = start();
    create_topic(&server, "known", "1");
    let cases: [(&[&str], &str); 9] = [
        (&["topic", "describe", "nope"], "topic nope does not exist"),
        (&["topic", "delete", "nope"], "topic nope does not exist"),
        (
            &["consume", "--topic", "nope", "--group", "g"],
            "topic nope does not exist",
        ),
        (
            &[
                "consume",
                "--topic",
                "known",
                "--group",
                "g",
                "--from",
                "yesterday",
            ],
            "invalid --from \"yesterday\"",
        ),
        (
            &[
                "consume", "--topic", "known", "--group", "g", "--from", "-5x",
            ],
            "invalid --from \"-5x\"",
        ),
        (
            &["group", "describe", "nobody"],
            "consumer group nobody is not known",
        ),
        (&["produce", "--topic", "bad topic"], "contains ' '"),
        (
            &[
                "produce",
                "--topic",
                "known",
                "--key",
                "k",
                "--key-from-line",
            ],
            "cannot be used with",
        ),
        (&["topic", "create", "t", "--queues", "0"], "--queues"),
    ];
    for (args, expect) in cases {
        let err = fails(args, run(&server, args));
        assert!(
            err.contains(expect),
            "{args:?}: {expect:?} missing from\n{err}"
        );
    }
    // The broker's refusal comes through with its remark, and nothing is reported as sent.
    let args = [
        "topic",
        "create",
        "read-only",
        "--queues",
        "1",
        "--perm",
        "r",
    ];
    stdout_of(&server, &args);
    wait_for("read-only to be routed", || {
        topics(&server)
            .iter()
            .any(|t| t == "read-only")
            .then_some(())
    });
    let args = ["produce", "--topic", "read-only", "--json"];
    let out = run_with(&server, &args, b"refused\n");
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["sent"], 0);
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("line 1")),
        "{report}"
    );
    let err = fails(&args, out);
    assert!(err.contains("NO_PERMISSION"), "{err}");
    assert!(
        err.contains("the topic[read-only] sending message is forbidden"),
        "{err}"
    );
    // Nothing listens on port 1: the address is in the error.
    let args = ["topic", "list", "--namesrv", "127.0.0.1:1"];
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(args)
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("run");
    let err = fails(&args, out);
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn namesrv_addr_comes_from_the_environment() {
    let (_dir, server) = start();
    create_topic(&server, "env-topic", "1");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["topic", "list", "--json"])
        .env("NAMESRV_ADDR", format!("127.0.0.1:1;{}", server.namesrv))
        .output()
        .expect("run");
    let stdout = ok(&["topic", "list"], out);
    let listed: Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(
        listed["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .any(|t| t == "env-topic"),
        "{listed}"
    );
}

/// `consume --json` of a group from where it stands (a new group from the first message),
/// until `idle` seconds without a message.
fn consume_rest(server: &TestServer, topic: &str, group: &str, idle: &str) -> Vec<String> {
    let args = [
        "--topic",
        topic,
        "--group",
        group,
        "--from",
        "first",
        "--idle-timeout",
        idle,
    ];
    consume(server, &args)
        .iter()
        .map(|m| str_field(m, "body").to_owned())
        .collect()
}

/// The group's committed offsets on `topic`, by queue id (`None`: no offset).
fn committed(server: &TestServer, group: &str, topic: &str) -> BTreeMap<i64, Option<i64>> {
    json(server, &["group", "describe", group])["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter(|q| q["topic"] == topic)
        .map(|q| {
            (
                q["queue_id"].as_i64().expect("queue"),
                q["consumer_offset"].as_i64(),
            )
        })
        .collect()
}

/// `group reset` while a `consume` member of the group is online: the broker tells it, and it
/// prints the topic again from the new offsets without being restarted.
#[test]
fn group_reset_makes_an_online_consumer_print_again() {
    let (_dir, server) = start();
    create_topic(&server, "live", "1");
    produce(&server, &["--topic", "live"], "one\ntwo\nthree\n");
    let member = Member::start(
        &server,
        &["--topic", "live", "--group", "watchers", "--from", "first"],
    );
    wait_for("the member prints the three", || {
        (member.printed().len() == 3).then_some(())
    });
    let reset = wait_for("the reset to reach the online member", || {
        let reset = json(
            &server,
            &[
                "group", "reset", "--group", "watchers", "--topic", "live", "--to", "first",
            ],
        );
        (reset["online_clients"] == 1).then_some(reset)
    });
    assert_eq!(reset["queues"][0]["offset"], 0, "{reset}");
    wait_for("the member prints them again", || {
        (member.printed().len() >= 6).then_some(())
    });
    assert_eq!(
        member.interrupt(),
        ["one", "two", "three", "one", "two", "three"]
    );
}

#[test]
fn group_reset_replays_from_a_time_and_survives_a_restart() {
    let (dir, server) = start();
    create_topic(&server, "replay", "2");
    produce(&server, &["--topic", "replay"], "a1\na2\na3\n");
    // Every later message is stored after `split` (the broker stamps messages before it
    // acknowledges them, on this machine's clock).
    let split = chrono::Utc::now() + chrono::Duration::milliseconds(1);
    wait_for("the clock to pass the split time", || {
        (chrono::Utc::now() > split).then_some(())
    });
    produce(&server, &["--topic", "replay"], "b1\nb2\n");
    let all = consume_rest(&server, "replay", "g", "3");
    assert_eq!(all.len(), 5, "{all:?}");
    let ends = committed(&server, "g", "replay");

    let split = split.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let reset = json(
        &server,
        &[
            "group", "reset", "--group", "g", "--topic", "replay", "--to", &split,
        ],
    );
    assert_eq!(
        reset["queues"].as_array().expect("queues").len(),
        2,
        "{reset}"
    );
    assert_eq!(reset["online_clients"], 0);
    let again: BTreeSet<String> = consume_rest(&server, "replay", "g", "3")
        .into_iter()
        .collect();
    assert_eq!(again, BTreeSet::from(["b1".to_owned(), "b2".to_owned()]));

    let text = stdout_of(
        &server,
        &[
            "group", "reset", "--group", "g", "--topic", "replay", "--to", "first",
        ],
    );
    assert_contains(
        &text,
        &[
            "Reset group g on topic replay to the oldest stored message of each queue.",
            "BROKER    QUEUE  OFFSET",
            "No member of group g is online",
        ],
    );
    // The reset is on disk at once: a broker killed right after it still has it.
    let server = {
        assert!(!server.kill().success());
        let config = dir.path().join("tributary.toml");
        let server = TestServer::start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
        wait_for("the broker to register again", || {
            topics(&server).iter().any(|t| t == "replay").then_some(())
        });
        server
    };
    let offsets = committed(&server, "g", "replay");
    assert!(offsets.values().all(|o| *o == Some(0)), "{offsets:?}");
    let replayed: BTreeSet<String> = consume_rest(&server, "replay", "g", "3")
        .into_iter()
        .collect();
    assert_eq!(replayed.len(), 5, "{replayed:?}");
    assert_eq!(committed(&server, "g", "replay"), ends);

    let text = stdout_of(
        &server,
        &[
            "group", "reset", "--group", "g", "--topic", "replay", "--to", "-1h",
        ],
    );
    assert_contains(
        &text,
        &["the first message of each queue stored at or after it"],
    );
    let args = [
        "group", "reset", "--group", "g", "--topic", "replay", "--to", "last",
    ];
    stdout_of(&server, &args);
    assert_eq!(committed(&server, "g", "replay"), ends);

    let args = [
        "group", "reset", "--group", "nobody", "--topic", "replay", "--to", "first",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["consumer group nobody is unknown to this broker"]);
    let args = [
        "group",
        "reset",
        "--group",
        "g",
        "--topic",
        "replay",
        "--to",
        "yesterday",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["invalid --to \"yesterday\""]);
    let args = [
        "group", "reset", "--group", "g", "--topic", "nothing", "--to", "first",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["topic nothing does not exist"]);
}

#[test]
fn messages_are_shown_queried_and_read_by_offset() {
    let (_dir, server) = start();
    create_topic(&server, "lookup", "1");
    let sent = produce(
        &server,
        &[
            "--topic",
            "lookup",
            "--tag",
            "t1",
            "--key-from-line",
            "--property",
            "color=red",
        ],
        "k1\tfirst\nk2\tsecond\nk1\tthird\n",
    );
    let messages = sent["messages"].as_array().expect("messages");
    let msg_id = str_field(&messages[0], "msg_id");
    let offset_msg_id = str_field(&messages[0], "offset_msg_id");

    let text = wait_for("the message to be indexed", || {
        let args = ["message", "show", msg_id];
        let output = run(&server, &args);
        output.status.success().then(|| ok(&args, output))
    });
    assert_contains(
        &text,
        &[
            &format!("Message         {msg_id}"),
            "Topic           lookup",
            "Queue           broker-a:0, offset 0",
            &format!("Offset msg id   {offset_msg_id}"),
            "Tags            t1",
            "Keys            k1",
            "Properties",
            "color     red",
            "Body (5 bytes)\nfirst\n",
        ],
    );
    for args in [
        vec!["message", "show", offset_msg_id],
        vec!["message", "show", msg_id, "--topic", "lookup"],
    ] {
        let found = json(&server, &args);
        let found = found["messages"].as_array().expect("messages");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(str_field(&found[0], "body"), "first");
        assert_eq!(found[0]["properties"]["color"], "red");
        assert_eq!(str_field(&found[0], "offset_msg_id"), offset_msg_id);
    }

    let query = json(
        &server,
        &["message", "query", "--topic", "lookup", "--key", "k1"],
    );
    let bodies: Vec<&str> = query["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| str_field(m, "body"))
        .collect();
    assert_eq!(bodies, ["first", "third"]);
    let text = stdout_of(
        &server,
        &[
            "message", "query", "--topic", "lookup", "--key", "k2", "--begin", "-1h",
        ],
    );
    assert_contains(&text, &["second", "1 message of topic lookup with key k2"]);
    let text = stdout_of(
        &server,
        &[
            "message", "query", "--topic", "lookup", "--key", "k1", "--end", "-1h",
        ],
    );
    assert_contains(
        &text,
        &["No message of topic lookup with key k1 stored between"],
    );

    let got = json(
        &server,
        &[
            "message", "get", "--topic", "lookup", "--queue", "0", "--offset", "1",
        ],
    );
    assert_eq!(str_field(&got, "body"), "second");
    assert_eq!(got["queue_offset"], 1);
    let args = [
        "message", "get", "--topic", "lookup", "--queue", "0", "--offset", "9",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(
        &err,
        &["queue broker-a:0 of topic lookup has no message at offset 9: it holds offsets 0 to 2"],
    );
    let args = [
        "message", "get", "--topic", "lookup", "--queue", "3", "--offset", "0",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["--queue must be below 1"]);
    let args = ["message", "show", "0123456789ABCDEF0123456789ABCDEF"];
    let err = fails(&args, run(&server, &args));
    assert_contains(
        &err,
        &["no message with id 0123456789ABCDEF0123456789ABCDEF in any topic"],
    );
}

#[test]
fn sql92_filters_select_by_property() {
    let (_dir, server) = start();
    create_topic(&server, "props", "2");
    for (i, region) in ["eu", "us", "eu", "asia", "us", "eu"].iter().enumerate() {
        let amount = format!("amount={}", i * 10);
        let region = format!("region={region}");
        let args = [
            "--topic",
            "props",
            "--property",
            &amount,
            "--property",
            &region,
        ];
        produce(&server, &args, &format!("order-{i}\n"));
    }
    produce(&server, &["--topic", "props"], "no-properties\n");
    let got = consume(
        &server,
        &[
            "--topic",
            "props",
            "--group",
            "big-eu",
            "--from",
            "first",
            "--sql",
            "amount >= 20 AND region IN ('eu', 'asia')",
            "--idle-timeout",
            "3",
        ],
    );
    let bodies: BTreeSet<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    assert_eq!(bodies, BTreeSet::from(["order-2", "order-3", "order-5"]));
    let got = consume(
        &server,
        &[
            "--topic",
            "props",
            "--group",
            "untagged",
            "--from",
            "first",
            "--sql",
            "region IS NULL",
            "--idle-timeout",
            "3",
        ],
    );
    let bodies: Vec<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    assert_eq!(bodies, ["no-properties"]);

    let args = [
        "consume", "--topic", "props", "--group", "bad", "--sql", "amount >",
    ];
    let err = fails(&args, run(&server, &args));
    assert_contains(
        &err,
        &[
            "SUBSCRIPTION_PARSE_FAILED",
            "invalid SQL92 expression \"amount >\"",
        ],
    );
    let args = ["produce", "--topic", "props", "--property", "KEYS=x"];
    let err = fails(&args, run(&server, &args));
    assert_contains(&err, &["--property KEYS is reserved"]);
}

/// Each message its own transaction: committed ones are consumed, rolled-back ones never;
/// `unknown` with --check-answer waits for the broker's checks and answers them (a commit is
/// then consumed, a rollback not); `unknown` alone exits and the broker discards the message
/// after its last check.
#[test]
fn transactions_are_committed_rolled_back_or_left_to_the_checks() {
    let (_dir, server) = start_with(
        "[broker]\ntransaction_timeout_ms = 300\ntransaction_check_interval_ms = 300\ntransaction_check_max = 4\n",
    );
    create_topic(&server, "tx", "2");
    let committed = produce(
        &server,
        &["--topic", "tx", "--transaction", "commit"],
        "c1\nc2\n",
    );
    for m in committed["messages"].as_array().expect("messages") {
        assert_eq!(m["transaction"], "committed", "{m}");
        assert!(m.get("queue_offset").is_none(), "{m}");
    }
    produce(
        &server,
        &["--topic", "tx", "--transaction", "rollback"],
        "r1\n",
    );

    let args = [
        "produce",
        "--topic",
        "tx",
        "--transaction",
        "unknown",
        "--check-answer",
        "commit",
    ];
    let out = run_with(&server, &args, b"u1\nu2\n");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = ok(&args, out);
    assert_contains(
        &stdout,
        &[
            "TRANSACTION",
            "pending",
            "2 left pending, then committed when the broker checked (2 answers confirmed)",
        ],
    );
    assert_contains(
        &stderr,
        &[
            "Waiting up to 120 s for the broker to check 2 pending transactions (answering commit)",
            "Line 1 (message ",
            "Line 2 (message ",
            "committed at the broker's check",
        ],
    );
    let rolled = produce(
        &server,
        &[
            "--topic",
            "tx",
            "--transaction",
            "unknown",
            "--check-answer",
            "rollback",
        ],
        "u3\n",
    );
    assert_eq!(rolled["checks_answered"], 1);

    let left = stdout_of_with(
        &server,
        &["produce", "--topic", "tx", "--transaction", "unknown"],
        "gone\n",
    );
    assert_contains(
        &left,
        &[
            "its transaction left pending: the broker checks it with a live producer of group tributary-cli-producer and discards it after its last check",
        ],
    );
    wait_for("the broker to discard the unanswered transaction", || {
        (metric(&server, "tributary_broker_transactions_discarded_total") == Some(1.0))
            .then_some(())
    });
    assert_eq!(
        metric(&server, "tributary_broker_transactions_pending"),
        Some(0.0)
    );
    let got = consume(
        &server,
        &[
            "--topic",
            "tx",
            "--group",
            "tx-reader",
            "--from",
            "first",
            "--idle-timeout",
            "3",
        ],
    );
    let mut bodies: Vec<&str> = got.iter().map(|m| str_field(m, "body")).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, ["c1", "c2", "u1", "u2"]);

    for (args, expected) in [
        (
            &[
                "produce",
                "--topic",
                "tx",
                "--transaction",
                "commit",
                "--check-answer",
                "commit",
            ][..],
            "--check-answer answers the broker's checks of pending transactions: it needs --transaction unknown",
        ),
        (
            &[
                "produce",
                "--topic",
                "tx",
                "--transaction",
                "commit",
                "--batch",
                "2",
            ][..],
            "transactional messages cannot be sent in batches",
        ),
        (
            &[
                "produce",
                "--topic",
                "tx",
                "--transaction",
                "commit",
                "--delay",
                "1s",
            ][..],
            "cannot be used with",
        ),
    ] {
        let err = fails(args, run(&server, args));
        assert_contains(&err, &[expected]);
    }
}

/// `produce --check-answer` gives up after --check-timeout when the broker does not check
/// in time (here it would check after its default 6 s), names what is left and fails.
#[test]
fn check_answer_times_out_with_the_pending_messages_named() {
    let (_dir, server) = start();
    create_topic(&server, "tx-slow", "1");
    let args = [
        "produce",
        "--topic",
        "tx-slow",
        "--transaction",
        "unknown",
        "--check-answer",
        "commit",
        "--check-timeout",
        "1",
    ];
    let err = fails(&args, run_with(&server, &args, b"late\n"));
    assert_contains(
        &err,
        &[
            "the broker did not check 1 of 1 transactions within 1 s: line 1 (",
            "they stay pending, checked again with producer group tributary-cli-producer",
        ],
    );
}

/// `tributary reply <args>` in the background, once it says it is answering.
fn spawn_replier(server: &TestServer, args: &[&str]) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("reply")
        .args(args)
        .args(["--namesrv", &server.namesrv, "--json"])
        .env_remove("NAMESRV_ADDR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn reply");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("Answering requests"), "{line}");
    // Keep reading stderr so the replier never blocks on it; its summary is checked by
    // the caller through stdout.
    std::thread::spawn(move || for _ in stderr.lines() {});
    child
}

#[test]
fn requests_are_answered_by_a_replier_command() {
    let (_dir, server) = start();
    create_topic(&server, "svc", "2");
    create_topic(&server, "echo", "1");
    let script = r#"body=$(cat); printf '%s' "$body" | tr a-z A-Z; [ "$body" != fail ]"#;
    let mut upper = spawn_replier(
        &server,
        &[
            "--topic",
            "svc",
            "--group",
            "svc-up",
            "--from",
            "first",
            "--exec",
            script,
            "--max-messages",
            "3",
        ],
    );
    let args = ["request", "--topic", "svc", "--timeout", "20s"];
    let out = ok(&args, run_with(&server, &args, b"hello\n\nworld\n"));
    assert_eq!(out, "HELLO\nWORLD\n");
    // The command failed on the replier's side: the reply is printed, then the request fails.
    let failed = run_with(&server, &args, b"fail\n");
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "FAIL\n");
    let err = fails(&args, failed);
    assert!(err.contains("exited with status 1"), "{err}");

    let status = upper.wait().expect("wait for reply");
    assert!(status.success(), "reply exited with {status}");
    let mut handled = String::new();
    std::io::Read::read_to_string(&mut upper.stdout.take().expect("stdout"), &mut handled)
        .expect("read stdout");
    let handled = json_lines(&handled);
    assert_eq!(handled.len(), 3, "{handled:?}");
    let codes: BTreeSet<i64> = handled
        .iter()
        .map(|h| {
            assert_eq!(h["outcome"], "replied", "{h}");
            assert!(h["correlation_id"].as_str().is_some_and(|c| c.len() == 36));
            h["exit_code"].as_i64().expect("exit code")
        })
        .collect();
    assert_eq!(codes, BTreeSet::from([0, 1]));

    // Without --exec the request is echoed; --json prints the whole reply.
    let mut echo = spawn_replier(
        &server,
        &[
            "--topic",
            "echo",
            "--group",
            "echoes",
            "--from",
            "first",
            "--max-messages",
            "1",
        ],
    );
    let args = ["request", "--topic", "echo", "--timeout", "20s", "--json"];
    let replies = json_lines(&ok(&args, run_with(&server, &args, b"same\n")));
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["line"], 1);
    let reply = &replies[0]["reply"];
    assert_eq!(str_field(reply, "body"), "same");
    assert_eq!(str_field(reply, "topic"), "DefaultCluster_REPLY_TOPIC");
    assert_eq!(reply["properties"]["MSG_TYPE"], "reply");
    assert!(echo.wait().expect("wait for reply").success());

    // Nobody answers: a timeout error naming the line.
    let args = ["request", "--topic", "echo", "--timeout", "300ms"];
    let err = fails(&args, run_with(&server, &args, b"anyone?\n"));
    assert!(
        err.contains("line 1") && err.contains("no reply came within 300ms"),
        "{err}"
    );
    for (args, expected) in [
        (
            &["request", "--topic", "echo", "--timeout", "0s"][..],
            "more than zero",
        ),
        (
            &["request", "--topic", "echo", "--property", "TTL=5"][..],
            "reserved",
        ),
        (
            &["reply", "--topic", "echo", "--group", "g", "--exec", " "][..],
            "--exec must not be empty",
        ),
        (
            &["reply", "--topic", "nope", "--group", "g"][..],
            "topic nope does not exist",
        ),
    ] {
        let err = fails(args, run(&server, args));
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}
