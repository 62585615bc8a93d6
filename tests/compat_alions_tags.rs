//! Tag filtering through the wire with the Node.js client ali-ons
//! (`tests/compat/alions_tags.js`): a group subscribed to `TagA || TagC` receives exactly the
//! TagA and TagC messages, another subscribed to `TagB` exactly the TagB ones. Needs `node` and
//! `npm` (`.ci/run` installs them); ali-ons is installed on first run into
//! ~/.cache/tributary-compat.

mod common;

use common::{TestServer, create_topic, require_node, run_alions};

#[test]
fn alions_tag_filters() {
    require_node();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    create_topic(&server, "CompatTags", 3);
    let env = [
        ("TOPIC", "CompatTags"),
        ("COUNT", "30"),
        ("WAIT_MS", "60000"),
    ];
    run_alions(&server, "alions_tags.js", &env, "ok tag filters");
    assert!(server.terminate().success());
}
