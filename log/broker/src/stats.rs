//! Broker counters, read by the binary's Prometheus endpoint.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// What the broker has done since it started.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Messages stored by send requests.
    pub messages_in: AtomicU64,
    /// Body bytes stored by send requests.
    pub bytes_in: AtomicU64,
    /// Send requests refused or failed (any non-SUCCESS answer).
    pub send_failures: AtomicU64,
    /// Sends answered FLUSH_DISK_TIMEOUT.
    pub flush_timeouts: AtomicU64,
    /// Messages returned by pulls.
    pub messages_out: AtomicU64,
    /// Record bytes returned by pulls.
    pub bytes_out: AtomicU64,
    /// Pull requests answered.
    pub pulls: AtomicU64,
    /// Pulls waiting for messages now (long polling).
    pub pulls_suspended: AtomicI64,
    /// Topics created by a first send.
    pub topics_auto_created: AtomicU64,
    /// Messages consumers sent back for a retry (CONSUMER_SEND_MSG_BACK).
    pub sent_back: AtomicU64,
    /// Messages sent back that went to a dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Replies (SEND_REPLY_MESSAGE) pushed to their requester and acknowledged.
    pub replies_pushed: AtomicU64,
    /// Replies whose requester is not connected to this broker as a producer (or that name
    /// no requester): answered SYSTEM_ERROR, as the Java broker does.
    pub replies_requester_missing: AtomicU64,
    /// Replies whose push to a connected requester failed or was refused.
    pub reply_push_failures: AtomicU64,
    /// Replies stored in their topic (`store_reply_messages`).
    pub replies_stored: AtomicU64,
}

impl BrokerStats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
