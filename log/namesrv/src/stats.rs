//! [`NamesrvStats`]: counters and gauges of a NameServer, read by the metrics exporter.

use std::sync::atomic::{AtomicU64, Ordering};

use tributary_protocol::codes::request;

/// The request codes counted one by one; everything else is counted as `other`.
const COUNTED: [i32; 19] = [
    request::PUT_KV_CONFIG,
    request::GET_KV_CONFIG,
    request::DELETE_KV_CONFIG,
    request::REGISTER_BROKER,
    request::UNREGISTER_BROKER,
    request::GET_ROUTEINFO_BY_TOPIC,
    request::GET_BROKER_CLUSTER_INFO,
    request::WIPE_WRITE_PERM_OF_BROKER,
    request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER,
    request::DELETE_TOPIC_IN_NAMESRV,
    request::GET_KVLIST_BY_NAMESPACE,
    request::GET_TOPICS_BY_CLUSTER,
    request::GET_SYSTEM_TOPIC_LIST_FROM_NS,
    request::QUERY_DATA_VERSION,
    request::ADD_WRITE_PERM_OF_BROKER,
    // Not served, but common enough to be worth seeing.
    request::HEART_BEAT,
    request::GET_NAMESRV_CONFIG,
    request::UPDATE_NAMESRV_CONFIG,
    request::BROKER_HEARTBEAT,
];

/// Counters (monotonic) and gauges (current values) of one NameServer. Shared with the
/// server through [`crate::NameServer::stats`]; every field is read with relaxed loads.
#[derive(Debug, Default)]
pub struct NamesrvStats {
    /// Gauge: broker addresses (masters and slaves) registered and not expired.
    pub brokers_live: AtomicU64,
    /// Gauge: broker names (master/slave groups) with at least one address.
    pub broker_names: AtomicU64,
    /// Gauge: clusters with at least one broker.
    pub clusters: AtomicU64,
    /// Gauge: topics with a route.
    pub topics: AtomicU64,
    /// REGISTER_BROKER requests that registered (first registrations and heartbeats).
    pub registrations: AtomicU64,
    /// Broker addresses removed by UNREGISTER_BROKER.
    pub unregistrations: AtomicU64,
    /// Broker addresses removed because they stopped registering.
    pub expirations: AtomicU64,
    /// Broker addresses removed because their connection closed.
    pub connection_closes: AtomicU64,
    /// Requests answered with an error code other than TOPIC_NOT_EXIST and QUERY_NOT_FOUND
    /// (bad headers or bodies, CRC mismatches, unsupported codes, KV file failures).
    pub request_errors: AtomicU64,
    requests: [AtomicU64; COUNTED.len() + 1],
}

impl NamesrvStats {
    pub(crate) fn count_request(&self, code: i32) {
        let slot = COUNTED
            .iter()
            .position(|&c| c == code)
            .unwrap_or(COUNTED.len());
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests received, per request code: `(Java code name, count)` for each counted code,
    /// then `("other", count)` for all remaining codes. Always the same names in the same
    /// order, so that an exporter can use them as label values.
    pub fn requests(&self) -> Vec<(&'static str, u64)> {
        COUNTED
            .iter()
            .map(|&code| request::name(code).unwrap_or("unknown"))
            .chain(std::iter::once("other"))
            .zip(&self.requests)
            .map(|(name, count)| (name, count.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_code_with_one_bucket_for_the_rest() {
        let stats = NamesrvStats::default();
        stats.count_request(request::REGISTER_BROKER);
        stats.count_request(request::REGISTER_BROKER);
        stats.count_request(request::SEND_MESSAGE);
        stats.count_request(-5);
        let counts = stats.requests();
        assert_eq!(counts.len(), COUNTED.len() + 1);
        let get = |name| counts.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
        assert_eq!(get("REGISTER_BROKER"), Some(2));
        assert_eq!(get("GET_ROUTEINFO_BY_TOPIC"), Some(0));
        assert_eq!(get("other"), Some(2));
        assert!(counts.iter().all(|(name, _)| *name != "unknown"));
    }
}
