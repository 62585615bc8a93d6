//! An existing RocketMQ client against the real server: the Node.js client ali-ons (4.x
//! remoting protocol) sends messages with tags and keys and consumes them with a fresh group
//! (`tests/compat/alions.js`, the team's shared check), and subscribes with a tag filter that
//! the broker applies (`tests/compat/alions_tags.js`). Needs `node` and `npm` (`.ci/run`
//! installs them); ali-ons itself is installed on first run into ~/.cache/tributary-compat.

mod common;

use std::process::Command;
use std::time::Duration;

use common::TestServer;
use tributary_protocol::header::CreateTopicRequestHeader;
use tributary_protocol::{RemotingCommand, codes};
use tributary_remoting::RemotingClient;

/// Creates `topic` on the broker as `mqadmin updateTopic` would (ali-ons does not fall back to
/// the TBW102 template).
fn create_topic(broker: &str, topic: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let header = CreateTopicRequestHeader {
            topic: topic.into(),
            default_topic: "TBW102".into(),
            read_queue_nums: 4,
            write_queue_nums: 4,
            perm: 6,
            topic_filter_type: "SINGLE_TAG".into(),
            topic_sys_flag: None,
            order: false,
            attributes: None,
            force: None,
        };
        let request = RemotingCommand::new_request(codes::request::UPDATE_AND_CREATE_TOPIC, 0)
            .with_header(&header);
        let client = RemotingClient::default();
        let r = client
            .invoke(broker, request, Duration::from_secs(10))
            .await
            .expect("create topic");
        assert_eq!(r.code, codes::response::SUCCESS, "{:?}", r.remark);
        client.shutdown().await;
    });
}

fn require_node() {
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

#[test]
fn alions_sends_and_consumes_with_tags_and_keys() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    create_topic(&server.broker, "CompatTopic");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/alions-check");
    let out = Command::new(script)
        .arg(&server.namesrv)
        .env("TOPIC", "CompatTopic")
        .env("COUNT", "50")
        .env("WAIT_MS", "60000")
        .output()
        .expect("run alions-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("received all 50 messages intact"),
        "ali-ons check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(server.terminate().success());
}

#[test]
fn alions_tag_subscription_is_filtered_by_the_broker() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    create_topic(&server.broker, "CompatTags");
    // Untagged messages first in every queue (ali-ons itself cannot send one).
    let mut produce = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["produce", "--topic", "CompatTags", "--quiet"])
        .args(["--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tributary produce");
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().expect("stdin");
        for i in 0..20 {
            writeln!(stdin, "untagged-{i}").expect("write");
        }
    }
    assert!(produce.wait().expect("produce").success());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/alions-check");
    let out = Command::new(script)
        .arg(&server.namesrv)
        .env("SCRIPT", "alions_tags.js")
        .env("TOPIC", "CompatTags")
        .env("COUNT", "30")
        .env("WAIT_MS", "60000")
        .output()
        .expect("run alions-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ok received all"),
        "ali-ons tag check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(server.terminate().success());
}
