//! [`NamesrvConfig`]: the `[namesrv]` section of the configuration file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::NamesrvError;

/// Configuration of a [`crate::NameServer`]. Every field has a default, so an empty
/// `[namesrv]` section (or none) gives RocketMQ's behaviour on port 9876.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NamesrvConfig {
    /// Address the NameServer listens on for brokers and clients.
    pub listen: SocketAddr,
    /// A broker whose last registration (or unchanged QUERY_DATA_VERSION) is older than this
    /// is removed with its queues. Brokers register every 30 s; RocketMQ expires them after
    /// 120 s.
    pub broker_expiry_ms: u64,
    /// How often brokers are checked for expiry (RocketMQ 5.x: every 5 s).
    pub scan_interval_ms: u64,
    /// File that keeps the KV config (PUT_KV_CONFIG and friends) across restarts, in
    /// RocketMQ's `kvConfig.json` format. Unset: the KV config lives in memory only.
    pub kv_config_path: Option<PathBuf>,
    /// Answer GET_ROUTEINFO_BY_TOPIC with `orderTopicConf` taken from the KV namespace
    /// `ORDER_TOPIC_CONFIG` (RocketMQ's `orderMessageEnable`).
    pub order_message_enable: bool,
    /// When a broker registers a new data version, drop the topics it no longer lists
    /// (RocketMQ 5.x `deleteTopicWithBrokerRegistration`). Off, as in RocketMQ: topics then
    /// leave only by DELETE_TOPIC_IN_NAMESRV or with their broker.
    pub delete_topic_with_broker_registration: bool,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9876)),
            broker_expiry_ms: 120_000,
            scan_interval_ms: 5_000,
            kv_config_path: None,
            order_message_enable: false,
            delete_topic_with_broker_registration: false,
        }
    }
}

impl NamesrvConfig {
    /// Checks the ranges of the values.
    pub fn validate(&self) -> Result<(), NamesrvError> {
        let fail = |option, value: u64, reason| {
            Err(NamesrvError::Config {
                option,
                value: value.to_string(),
                reason,
            })
        };
        if self.broker_expiry_ms == 0 {
            return fail("broker_expiry_ms", self.broker_expiry_ms, "must be > 0");
        }
        if self.scan_interval_ms == 0 {
            return fail("scan_interval_ms", self.scan_interval_ms, "must be > 0");
        }
        if self.scan_interval_ms > self.broker_expiry_ms {
            return fail(
                "scan_interval_ms",
                self.scan_interval_ms,
                "must not exceed broker_expiry_ms",
            );
        }
        Ok(())
    }

    /// [`NamesrvConfig::broker_expiry_ms`] as a duration.
    pub fn broker_expiry(&self) -> Duration {
        Duration::from_millis(self.broker_expiry_ms)
    }

    /// [`NamesrvConfig::scan_interval_ms`] as a duration.
    pub fn scan_interval(&self) -> Duration {
        Duration::from_millis(self.scan_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_rocketmq_s() {
        let config = NamesrvConfig::default();
        assert_eq!(config.listen.port(), 9876);
        assert_eq!(config.broker_expiry(), Duration::from_secs(120));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn reads_a_toml_section_with_defaults_for_what_is_left_out() {
        #[derive(Debug, Deserialize)]
        struct File {
            namesrv: NamesrvConfig,
        }
        let text = "[namesrv]\nlisten = \"127.0.0.1:19876\"\nbroker_expiry_ms = 30000\n\
                    kv_config_path = \"data/namesrv/kvConfig.json\"\n";
        let file: File = toml::from_str(text).expect("parses");
        assert_eq!(
            file.namesrv,
            NamesrvConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 19876)),
                broker_expiry_ms: 30_000,
                kv_config_path: Some(PathBuf::from("data/namesrv/kvConfig.json")),
                ..NamesrvConfig::default()
            }
        );
        let unknown = toml::from_str::<File>("[namesrv]\nbroker_expiry = 5\n");
        assert!(unknown.is_err());
    }

    #[test]
    fn bad_intervals_are_named() {
        let cases = [
            (0, 10, "broker_expiry_ms"),
            (1000, 0, "scan_interval_ms"),
            (1000, 2000, "scan_interval_ms"),
        ];
        for (expiry, scan, option) in cases {
            let config = NamesrvConfig {
                broker_expiry_ms: expiry,
                scan_interval_ms: scan,
                ..NamesrvConfig::default()
            };
            let err = config.validate();
            assert!(
                matches!(&err, Err(NamesrvError::Config { option: o, .. }) if *o == option),
                "{expiry} {scan}: {err:?}"
            );
        }
    }
}
