//! Delayed messages and retries through the wire with the Node.js client ali-ons
//! (`tests/compat/alions_delay.js`): a message sent with `delayTimeLevel = 1` arrives no
//! earlier than the level's delay, and a message its handler asks to retry comes back through
//! the group's retry topic with reconsumeTimes 1. Needs `node` and `npm` (`.ci/run` installs
//! them); ali-ons is installed on first run into ~/.cache/tributary-compat.

mod common;

use std::process::Command;

use common::TestServer;

#[test]
fn alions_delayed_message_and_retry() {
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
    let dir = tempfile::tempdir().expect("tempdir");
    // Level 1 waits 1 s; the first retry (level 3) 2 s.
    let config = dir.path().join("tributary.toml");
    std::fs::write(&config, "[broker]\ndelay_levels = \"1s 1s 2s\"\n").expect("config");
    let config = config.to_str().expect("utf-8 path");
    let server = TestServer::start(&dir.path().join("data"), &["--config", config]);
    // ali-ons does not fall back to the TBW102 template: create the topic first.
    let created = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["topic", "create", "CompatDelay", "--queues", "2"])
        .args(["--broker", &server.broker, "--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("tributary topic create");
    assert!(created.status.success(), "{created:?}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/alions-check");
    let out = Command::new(script)
        .arg(&server.namesrv)
        .env("SCRIPT", "alions_delay.js")
        .env("TOPIC", "CompatDelay")
        .env("LEVEL", "1")
        .env("LEVEL_MS", "1000")
        .env("RETRY_MS", "2000")
        .env("WAIT_MS", "60000")
        .output()
        .expect("run alions-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ok delayed message arrived"),
        "ali-ons delay check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(server.terminate().success());
}
