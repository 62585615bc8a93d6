//! Client configuration shared by producers, consumers and the admin API.

use std::net::IpAddr;
use std::time::Duration;

use tributary_remoting::TransportConfig;

/// Environment variable that lists NameServers (`host:port;host:port`), as in RocketMQ.
pub const NAMESRV_ADDR_ENV: &str = "NAMESRV_ADDR";

/// Configuration of a [`crate::ClientInstance`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// NameServer addresses (`host:port`). Empty: read [`NAMESRV_ADDR_ENV`] at start.
    pub namesrv_addrs: Vec<String>,
    /// Instance name, the part of the client id after `@`. `None`: the process id plus a
    /// per-process counter, so that every instance of a process has its own client id (two
    /// consumers of one group must never share an id, or rebalancing gives both the same
    /// queues).
    pub instance_name: Option<String>,
    /// The client's IP for its client id and message ids. `None`: the local address of the
    /// first NameServer connection (the address brokers see), else 127.0.0.1.
    pub client_ip: Option<IpAddr>,
    /// Timeout of ordinary requests (routes, offsets, heartbeats, admin), 3 s as in Java.
    pub request_timeout: Duration,
    /// How often routes of the topics in use are refreshed from the NameServer (30 s).
    pub poll_name_server_interval: Duration,
    /// How often every broker gets a heartbeat (30 s).
    pub heartbeat_broker_interval: Duration,
    /// How often consumers rebalance without being told to (20 s); brokers also trigger a
    /// rebalance when a group's membership changes.
    pub rebalance_interval: Duration,
    /// Transport limits.
    pub transport: TransportConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            namesrv_addrs: Vec::new(),
            instance_name: None,
            client_ip: None,
            request_timeout: Duration::from_secs(3),
            poll_name_server_interval: Duration::from_secs(30),
            heartbeat_broker_interval: Duration::from_secs(30),
            rebalance_interval: Duration::from_secs(20),
            transport: TransportConfig::default(),
        }
    }
}

impl ClientConfig {
    /// A configuration for the NameServers in `addrs` (`host:port`, `;`-separated).
    pub fn new(addrs: &str) -> Self {
        Self {
            namesrv_addrs: parse_namesrv_addrs(addrs),
            ..Self::default()
        }
    }

    /// The NameServers to use: the configured ones, else those of [`NAMESRV_ADDR_ENV`].
    pub fn resolved_namesrv_addrs(&self) -> Vec<String> {
        if !self.namesrv_addrs.is_empty() {
            return self.namesrv_addrs.clone();
        }
        std::env::var(NAMESRV_ADDR_ENV)
            .map(|v| parse_namesrv_addrs(&v))
            .unwrap_or_default()
    }
}

/// Splits a NameServer list on `;` (RocketMQ's separator; `,` is accepted too), trimming
/// blanks and dropping empty entries.
pub fn parse_namesrv_addrs(list: &str) -> Vec<String> {
    list.split([';', ','])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_lists_split_like_java() {
        let cases: [(&str, &[&str]); 5] = [
            ("", &[]),
            ("127.0.0.1:9876", &["127.0.0.1:9876"]),
            ("a:1;b:2", &["a:1", "b:2"]),
            (" a:1 ; ;b:2; ", &["a:1", "b:2"]),
            ("a:1,b:2", &["a:1", "b:2"]),
        ];
        for (input, expect) in cases {
            assert_eq!(parse_namesrv_addrs(input), expect, "{input:?}");
        }
    }

    #[test]
    fn configured_addresses_win_over_the_environment() {
        let config = ClientConfig::new("x:1");
        assert_eq!(config.resolved_namesrv_addrs(), vec!["x:1".to_owned()]);
    }
}
