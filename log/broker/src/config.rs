//! Broker configuration: the `[broker]` section of the config file.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Everything the broker can be told. Every limit is here, with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address the remoting server listens on.
    pub listen: SocketAddr,
    /// Host (IP or name) clients are told to connect to; with the listen port it forms the
    /// broker address registered with the NameServers and written as STOREHOST in records.
    pub broker_ip: String,
    /// Broker name; brokers of one name form a master/slave set.
    pub broker_name: String,
    /// Cluster the broker registers under.
    pub cluster_name: String,
    /// 0 for a master.
    pub broker_id: i64,
    /// NameServer addresses (`host:port`); empty means the NameServer of this process
    /// (`tributary server`) or `NAMESRV_ADDR`.
    pub namesrv_addr: Vec<String>,
    /// How often the broker re-registers with every NameServer, ms.
    pub register_interval_ms: u64,
    /// Create a topic on its first send (from the `TBW102` template) when it does not exist.
    pub auto_create_topic: bool,
    /// Queues of an auto-created topic (the template's queue count caps it).
    pub default_topic_queue_nums: i32,
    /// Longest a pull may be held waiting for messages (long polling), ms; a client's
    /// `suspendTimeoutMillis` above this is capped.
    pub long_polling_max_ms: u64,
    /// Most messages one pull returns.
    pub max_pull_messages: usize,
    /// Most bytes one pull returns (at least one message is returned).
    pub max_pull_bytes: usize,
    /// Pulls of messages more than this many bytes behind the end of the commit log read on a
    /// blocking thread (their pages may have left memory); nearer ones read in place.
    pub hot_read_bytes: u64,
    /// A client silent for this long is dropped from its groups, ms (clients heartbeat every 30 s).
    pub client_expiry_ms: u64,
    /// A queue lock not renewed for this long expires, ms (orderly consumers renew every 20 s).
    pub lock_expiry_ms: u64,
    /// How often consumer offsets are written to disk, ms.
    pub offset_flush_interval_ms: u64,
    /// Connections the broker accepts at once.
    pub max_connections: usize,
    /// Requests one connection may have in progress at once.
    pub max_in_flight_requests: usize,
    /// Delay of each level of the `DELAY` property, level 1 first (RocketMQ's
    /// `messageDelayLevel`): numbers with a unit `ms`, `s`, `m`, `h` or `d`, separated by
    /// spaces. A level above the last is the last.
    pub delay_levels: String,
    /// Longest delay a timer message (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`)
    /// may ask for, s (RocketMQ's `timerMaxDelaySec`).
    pub timer_max_delay_secs: u64,
    /// How often the delivery progress of delayed messages is written to `delayOffset.json`, ms.
    pub schedule_flush_interval_ms: u64,
    /// Redeliveries through `%RETRY%<group>` before a message goes to `%DLQ%<group>`, for a
    /// group without its own `retryMaxTimes` when the consumer does not say
    /// (`maxReconsumeTimes`).
    pub max_reconsume_times: i32,
    /// A half message not resolved this long after it was stored is checked
    /// (CHECK_TRANSACTION_STATE), ms (RocketMQ's `transactionTimeOut`).
    pub transaction_timeout_ms: u64,
    /// Interval between two checks of a transaction, ms (`transactionCheckInterval`).
    pub transaction_check_interval_ms: u64,
    /// Checks of a transaction before it is discarded (`transactionCheckMax`).
    pub transaction_check_max: u32,
    /// Judge messages pulled from a retry topic by an SQL92 subscription with the group's
    /// SQL92 filter of their original topic (RocketMQ's `filterSupportRetry`).
    pub filter_support_retry: bool,
    /// Also store each reply (SEND_REPLY_MESSAGE) in its topic after pushing it to the
    /// requester (RocketMQ's `storeReplyMessageEnable`).
    pub store_reply_messages: bool,
    /// Longest wait for a requester to acknowledge a reply pushed to it
    /// (PUSH_REPLY_MESSAGE_TO_CLIENT), ms.
    pub reply_push_timeout_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 10911)),
            broker_ip: "127.0.0.1".into(),
            broker_name: "broker-a".into(),
            cluster_name: "DefaultCluster".into(),
            broker_id: 0,
            namesrv_addr: Vec::new(),
            register_interval_ms: 30_000,
            auto_create_topic: true,
            default_topic_queue_nums: 8,
            long_polling_max_ms: 30_000,
            max_pull_messages: 1024,
            max_pull_bytes: 4 << 20,
            hot_read_bytes: 2 << 30,
            client_expiry_ms: 120_000,
            lock_expiry_ms: 60_000,
            offset_flush_interval_ms: 5_000,
            max_connections: 10_000,
            max_in_flight_requests: 4096,
            delay_levels: "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h".into(),
            timer_max_delay_secs: 3 * 24 * 3600,
            schedule_flush_interval_ms: 1000,
            max_reconsume_times: 16,
            transaction_timeout_ms: 6_000,
            transaction_check_interval_ms: 60_000,
            transaction_check_max: 15,
            filter_support_retry: false,
            store_reply_messages: true,
            reply_push_timeout_ms: 3_000,
        }
    }
}

impl BrokerConfig {
    /// The address clients and NameServers know this broker by: `broker_ip:listen port`.
    pub fn advertised_addr(&self) -> String {
        format!("{}:{}", self.broker_ip, self.listen.port())
    }

    /// Checks the values serde cannot; the error names the option.
    pub fn validate(&self) -> Result<(), String> {
        crate::schedule::parse_delay_levels(&self.delay_levels)
            .map_err(|e| format!("broker.delay_levels: {e}"))?;
        if self.timer_max_delay_secs == 0 || self.timer_max_delay_secs > 366 * 24 * 3600 {
            return Err(format!(
                "broker.timer_max_delay_secs: {} is out of range 1..=31622400 (one year)",
                self.timer_max_delay_secs
            ));
        }
        if !(1..=600_000).contains(&self.reply_push_timeout_ms) {
            return Err(format!(
                "broker.reply_push_timeout_ms: {} is out of range 1..=600000",
                self.reply_push_timeout_ms
            ));
        }
        if !(0..=10_000).contains(&self.max_reconsume_times) {
            return Err(format!(
                "broker.max_reconsume_times: {} is out of range 0..=10000",
                self.max_reconsume_times
            ));
        }
        Ok(())
    }
}
