//! `tributary server` end to end: starts, serves /health and /metrics, shuts down cleanly on
//! SIGTERM (checkpoint written, abort marker removed), and refuses a bad config clearly.

mod common;

use std::process::Command;

use common::{TestServer, http_get};

#[test]
fn server_serves_metrics_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(dir.path(), &[]);
    let addr = server.http;
    let (status, body) = http_get(addr, "/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, metrics) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "tributary_store_messages_appended_total",
        "tributary_store_commitlog_max_offset_bytes",
        "tributary_store_disk_used_basis_points",
        "tributary_store_flush_seconds_bucket{le=\"0.0005\"}",
        "tributary_store_flush_seconds_count",
        "tributary_broker_messages_in_total",
        "tributary_broker_connections_open",
        "tributary_namesrv_brokers_live",
        "tributary_namesrv_requests_total{code=\"REGISTER_BROKER\"}",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }
    assert_eq!(http_get(addr, "/nope").0, 404);
    let store = dir.path().join("store");
    assert!(
        store.join("abort").exists(),
        "a running store has its abort marker"
    );
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(
        !store.join("abort").exists(),
        "clean shutdown removes the abort marker"
    );
    assert!(store.join("checkpoint").exists());
}

#[test]
fn bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[store]\nflush_mode = \"sometimes\"\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .args(["server", "--config"])
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("flush_mode"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_tributary"))
        .arg("default-config")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("flush_mode = \"async\""));
}
