//! An existing RocketMQ client against the real server: the Node.js client ali-ons (4.x
//! remoting protocol) sends messages with tags and keys and consumes them with a fresh group
//! (`tests/compat/alions.js`, the team's shared check). Needs `node` and `npm` (`.ci/run`
//! installs them); ali-ons itself is installed on first run into ~/.cache/tributary-compat.

mod common;

use common::{TestServer, create_topic, require_node, run_alions};

#[test]
fn alions_sends_and_consumes_with_tags_and_keys() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    create_topic(&server, "CompatTopic", 4);
    let env = [
        ("TOPIC", "CompatTopic"),
        ("COUNT", "50"),
        ("WAIT_MS", "60000"),
    ];
    run_alions(
        &server,
        "alions.js",
        &env,
        "received all 50 messages intact",
    );
    assert!(server.terminate().success());
}
