//! `tributary server`: the store plus the HTTP endpoint, until SIGINT/SIGTERM.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tributary_store::MessageStore;

use crate::config::Config;

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::render(&s.registry),
    )
}

async fn health() -> &'static str {
    "ok\n"
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown requested");
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
        .await?
        .context("open the message store")?;
    let store = Arc::new(store);
    let report = store.recovery_report();
    if let Some(d) = &report.damage {
        tracing::error!(offset = d.offset, to = %d.quarantined_to.display(), "recovery quarantined corrupt data: {}", d.reason);
    }
    let state = AppState {
        registry: Arc::new(crate::metrics::registry(store.clone())),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("bind HTTP listener on {}", config.http.listen))?;
    tracing::info!(
        data_dir = %config.data_dir.display(),
        http = %listener.local_addr()?,
        flush_mode = ?config.store.flush_mode,
        "tributary server ready"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tokio::task::spawn_blocking(move || store.shutdown())
        .await?
        .context("shut down the store")?;
    Ok(())
}
