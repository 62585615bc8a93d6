//! GET_BROKER_CLUSTER_INFO (106) body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{BrokerData, JsonBody, null_as_default};

/// Brokers and clusters known to a NameServer.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    /// Broker data per broker name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub broker_addr_table: BTreeMap<String, BrokerData>,
    /// Broker names per cluster name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

impl JsonBody for ClusterInfo {
    const NAME: &'static str = "ClusterInfo";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_info_from_fastjson() {
        let json = r#"{"brokerAddrTable":{"broker-a":{"brokerAddrs":{0:"10.0.0.1:10911"},"brokerName":"broker-a","cluster":"C"}},"clusterAddrTable":{"C":["broker-a"]}}"#;
        let info = ClusterInfo::decode(json.as_bytes()).expect("decodes");
        assert_eq!(
            info.broker_addr_table["broker-a"]
                .broker_addrs
                .get(&0)
                .map(String::as_str),
            Some("10.0.0.1:10911")
        );
        assert_eq!(info.cluster_addr_table["C"], vec!["broker-a".to_owned()]);
        let again = ClusterInfo::decode(&info.encode().expect("encodes")).expect("decodes");
        assert_eq!(again, info);
    }
}
