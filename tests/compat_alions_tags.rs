//! Tag filtering through the wire with the Node.js client ali-ons
//! (`tests/compat/alions_tags.js`): a group subscribed to `TagA || TagC` receives exactly the
//! TagA and TagC messages, another subscribed to `TagB` exactly the TagB ones, and neither the
//! untagged messages stored before them (ali-ons passes those on its own re-check, so only the
//! broker's tag-hash filter keeps them out). Needs `node` and `npm` (`.ci/run` installs them);
//! ali-ons is installed on first run into ~/.cache/tributary-compat.

mod common;

use common::{TestServer, create_topic, require_node, run_alions};

#[test]
fn alions_tag_filters() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    create_topic(&server, "CompatTags", 3);
    // Untagged messages first in every queue (ali-ons cannot send one).
    let mut produce = std::process::Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["produce", "--topic", "CompatTags", "--quiet"])
        .args(["--namesrv", &server.namesrv])
        .env_remove("NAMESRV_ADDR")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("tributary produce");
    {
        use std::io::Write;
        let mut stdin = produce.stdin.take().expect("stdin");
        for i in 0..12 {
            writeln!(stdin, "untagged-{i}").expect("write");
        }
    }
    assert!(produce.wait().expect("produce").success());
    let env = [
        ("TOPIC", "CompatTags"),
        ("COUNT", "30"),
        ("WAIT_MS", "60000"),
    ];
    run_alions(&server, "alions_tags.js", &env, "ok tag filters");
    assert!(server.terminate().success());
}
