//! Delayed messages and retries through the wire with the Node.js client ali-ons
//! (`tests/compat/alions_delay.js`): a message sent with `delayTimeLevel = 1` arrives no
//! earlier than the level's delay, and a message its handler asks to retry comes back through
//! the group's retry topic with reconsumeTimes 1. Needs `node` and `npm` (`.ci/run` installs
//! them); ali-ons is installed on first run into ~/.cache/tributary-compat.

mod common;

use common::{TestServer, create_topic, require_node, run_alions};

#[test]
fn alions_delayed_message_and_retry() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    // Level 1 waits 1 s; the first retry (level 3) 2 s.
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "[broker]\ndelay_levels = \"1s 1s 2s\"\n").expect("config");
    let config = config.to_str().expect("utf-8 path");
    let server = TestServer::start(&dir.path().join("data"), &["--config", config]);
    create_topic(&server, "CompatDelay", 2);
    let env = [
        ("TOPIC", "CompatDelay"),
        ("LEVEL", "1"),
        ("LEVEL_MS", "1000"),
        ("RETRY_MS", "2000"),
        ("WAIT_MS", "60000"),
    ];
    run_alions(
        &server,
        "alions_delay.js",
        &env,
        "ok delayed message arrived",
    );
    assert!(server.terminate().success());
}
