//! A RocketMQ-compatible NameServer: brokers register their topics here every 30 seconds, and
//! producers and consumers (Java, Go, C++, Python, Node.js clients of RocketMQ 4.x) ask it
//! where a topic's queues live.
//!
//! Entry points:
//! - [`run`] binds [`NamesrvConfig::listen`] and serves until cancelled: what
//!   `tributary namesrv` runs.
//! - [`NameServer`] is the server itself, a [`tributary_remoting::Handler`]:
//!   [`NameServer::new`], then [`NameServer::bind`] and [`NamesrvListener::run`], with
//!   [`NameServer::stats`] for metrics.
//!
//! What it serves, as RocketMQ's `DefaultRequestProcessor` and `RouteInfoManager` do:
//! REGISTER_BROKER (with the body CRC check), UNREGISTER_BROKER, GET_ROUTEINFO_BY_TOPIC
//! (TOPIC_NOT_EXIST for an unknown topic), GET_BROKER_CLUSTER_INFO,
//! GET_ALL_TOPIC_LIST_FROM_NAMESERVER, GET_TOPICS_BY_CLUSTER, GET_SYSTEM_TOPIC_LIST_FROM_NS,
//! QUERY_DATA_VERSION, DELETE_TOPIC_IN_NAMESRV, WIPE/ADD_WRITE_PERM_OF_BROKER, PUT/GET/
//! DELETE_KV_CONFIG and GET_KVLIST_BY_NAMESPACE. Every other code is answered
//! REQUEST_CODE_NOT_SUPPORTED; a request whose header or body does not decode, SYSTEM_ERROR.
//!
//! Brokers stay registered while they keep registering: one whose last registration is older
//! than [`NamesrvConfig::broker_expiry_ms`] is removed with its queues by a scan every
//! [`NamesrvConfig::scan_interval_ms`], and one whose connection closes is removed at once
//! (RocketMQ's `BrokerHousekeepingService`). Several NameServers run side by side without
//! talking to each other; brokers register with each.
//!
//! Where this departs from RocketMQ:
//! - Routes are always standard JSON (quoted map keys), for every client version.
//! - Brokers, queues and clusters are listed in name order, not hash order.
//! - The compressed REGISTER_BROKER body (`compressedRegister=true`) is refused with a
//!   SYSTEM_ERROR naming the broker setting to change.
//! - `heartbeatTimeoutMillis` of 5.x brokers is ignored: it comes with BROKER_HEARTBEAT,
//!   which is not served, so every broker gets the configured expiry.
//! - A failed write of the KV config file is answered SYSTEM_ERROR (RocketMQ logs it and
//!   answers SUCCESS); the change stays in memory.

mod config;
mod error;
mod kv;
mod route;
mod server;
mod stats;

pub use config::NamesrvConfig;
pub use error::NamesrvError;
pub use kv::ORDER_TOPIC_CONFIG;
pub use server::{NameServer, NamesrvListener};
pub use stats::NamesrvStats;

use tokio_util::sync::CancellationToken;

/// Runs a NameServer on [`NamesrvConfig::listen`] until `shutdown` is cancelled, then returns
/// once every connection has closed. Fails if the configuration is invalid, the KV config file
/// cannot be read, or the address cannot be bound.
pub async fn run(config: NamesrvConfig, shutdown: CancellationToken) -> Result<(), NamesrvError> {
    let namesrv = NameServer::new(config)?;
    let listener = namesrv.bind().await?;
    listener.run(shutdown).await;
    Ok(())
}
