//! Tag filtering through the wire with the Node.js client ali-ons
//! (`tests/compat/alions_tags.js`): a group subscribed to `TagA || TagC` receives exactly the
//! TagA and TagC messages, another subscribed to `TagB` exactly the TagB ones. Needs `node` and
//! `npm` (`.ci/run` installs them); ali-ons is installed on first run into
//! ~/.cache/tributary-compat.

mod common;

use std::process::Command;

use common::TestServer;

#[test]
fn alions_tag_filters() {
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
    let server = TestServer::start(dir.path(), &[]);
    // ali-ons does not fall back to the TBW102 template: create the topic first.
    let created = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["topic", "create", "CompatTags", "--queues", "3"])
        .args(["--broker", &server.broker, "--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .output()
        .expect("tributary topic create");
    assert!(created.status.success(), "{created:?}");
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
        out.status.success() && stdout.contains("ok tag filters"),
        "ali-ons tag filter check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(server.terminate().success());
}
