//! NameServer errors.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can stop a NameServer from starting or from keeping its KV config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamesrvError {
    /// A configuration value is out of range.
    #[error("namesrv config: {option} = {value}: {reason}")]
    Config {
        /// The option's name in the `[namesrv]` section.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The listening socket could not be bound.
    #[error("bind NameServer to {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the KV config file failed.
    #[error("{action} KV config file {}: {source}", path.display())]
    KvConfigIo {
        /// What was being done ("read", "write", "rename", ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The KV config file is not valid JSON of the expected shape.
    #[error("parse KV config file {}: {source}", path.display())]
    KvConfigParse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}
