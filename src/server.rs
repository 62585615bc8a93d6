//! `tributary server | broker | namesrv`: the long-running services, with the HTTP endpoint,
//! until SIGINT/SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_broker::Broker;
use tributary_namesrv::NameServer;
use tributary_store::MessageStore;

use crate::config::Config;

/// Which services a process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub namesrv: bool,
    pub broker: bool,
}

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

async fn shutdown_signal(token: CancellationToken) {
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
    tokio::select! {
        _ = ctrl_c => tracing::info!("shutdown requested"),
        _ = term => tracing::info!("shutdown requested"),
        () = token.cancelled() => {}
    }
    token.cancel();
}

/// The broker's address as a socket address, for STOREHOST in records.
fn store_host(broker_addr: &str) -> anyhow::Result<SocketAddr> {
    broker_addr
        .to_socket_addrs()
        .with_context(|| format!("resolve broker address {broker_addr} (broker.broker_ip)"))?
        .next()
        .with_context(|| format!("broker address {broker_addr} resolves to nothing"))
}

/// Runs the services of `roles` until a signal, then shuts them down in order: listeners,
/// then the broker (unregistering, writing offsets), then the store.
pub async fn run(mut config: Config, roles: Roles) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let mut registry = Registry::default();

    if roles.namesrv {
        let namesrv = NameServer::new(config.namesrv.clone()).context("start the NameServer")?;
        let listener = namesrv.bind().await.context("start the NameServer")?;
        let addr = listener.local_addr();
        config.namesrv.listen = addr;
        crate::metrics::register_namesrv(&mut registry, namesrv.stats());
        tasks.spawn(listener.run(shutdown.clone()));
        if roles.broker {
            // The broker registers with the NameServer next to it (and any others given).
            let own = format!("127.0.0.1:{}", addr.port());
            if !config.broker.namesrv_addr.contains(&own) {
                config.broker.namesrv_addr.insert(0, own);
            }
        }
    }

    let mut store = None;
    if roles.broker {
        anyhow::ensure!(
            !config.broker.namesrv_addr.is_empty(),
            "the broker has no NameServer to register with: give --namesrv host:port (or set NAMESRV_ADDR, or broker.namesrv_addr)"
        );
        // Bind first: with port 0 the advertised address needs the real port.
        let broker_listener = tokio::net::TcpListener::bind(config.broker.listen)
            .await
            .with_context(|| format!("bind broker on {}", config.broker.listen))?;
        config.broker.listen = broker_listener.local_addr()?;
        let mut store_config = config.store.clone();
        store_config.store_host = store_host(&config.broker.advertised_addr())?;
        let opened = tokio::task::spawn_blocking(move || MessageStore::open(store_config))
            .await?
            .context("open the message store")?;
        let opened = Arc::new(opened);
        let report = opened.recovery_report();
        if let Some(d) = &report.damage {
            tracing::error!(offset = d.offset, to = %d.quarantined_to.display(), "recovery quarantined corrupt data: {}", d.reason);
        }
        crate::metrics::register_store(&mut registry, opened.clone());
        // Reads metadata and, after a crash, the commit log's tail for delivered delayed
        // messages: on a blocking thread.
        let (broker_config, meta_dir) = (config.broker.clone(), config.data_dir.join("broker"));
        let store_for_broker = opened.clone();
        let broker = tokio::task::spawn_blocking(move || {
            Broker::open(broker_config, store_for_broker, &meta_dir)
        })
        .await?
        .context("open the broker's metadata")?;
        let bound = broker.serve_on(broker_listener);
        crate::metrics::register_broker(&mut registry, broker.clone(), bound.transport_stats());
        tasks.spawn(bound.run(shutdown.clone()));
        store = Some(opened);
    }

    let state = AppState {
        registry: Arc::new(registry),
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
        namesrv = roles.namesrv.then(|| config.namesrv.listen.to_string()),
        broker = roles.broker.then(|| config.broker.listen.to_string()),
        flush_mode = ?config.store.flush_mode,
        "tributary server ready"
    );
    let http = axum::serve(listener, app).with_graceful_shutdown(shutdown_signal(shutdown.clone()));
    let served = http.await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    if let Some(store) = store {
        tokio::task::spawn_blocking(move || store.shutdown())
            .await?
            .context("shut down the store")?;
    }
    served.context("HTTP server")?;
    Ok(())
}
