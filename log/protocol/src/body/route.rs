//! GET_ROUTEINFO_BY_TOPIC (105) body: where a topic's queues live.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{JsonBody, null_as_default};

/// Route of a topic. Old NameServers (and fastjson by default) write `brokerAddrs` keys
/// unquoted; [`JsonBody::decode`] accepts both forms and [`JsonBody::encode`] quotes them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicRouteData {
    /// Order topic configuration (`brokerName:queueNums;…`), when the topic is ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_topic_conf: Option<String>,
    /// Queues per broker name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub queue_datas: Vec<QueueData>,
    /// Broker addresses per broker name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub broker_datas: Vec<BrokerData>,
    /// Filter servers per broker address (always written, as Java does; clients copy it).
    #[serde(default, deserialize_with = "null_as_default")]
    pub filter_server_table: BTreeMap<String, Vec<String>>,
}

impl JsonBody for TopicRouteData {
    const NAME: &'static str = "TopicRouteData";
}

/// The queues of a topic on one broker (name).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    /// Broker name.
    pub broker_name: String,
    /// Readable queues.
    pub read_queue_nums: i32,
    /// Writable queues.
    pub write_queue_nums: i32,
    /// Permission bits (see [`crate::perm`]).
    pub perm: i32,
    /// Topic sys flag.
    #[serde(default, deserialize_with = "null_as_default")]
    pub topic_sys_flag: i32,
}

/// The members of one broker (name): id 0 is the master.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    /// Cluster name.
    pub cluster: String,
    /// Broker name.
    pub broker_name: String,
    /// Address per broker id.
    #[serde(default, deserialize_with = "null_as_default")]
    pub broker_addrs: BTreeMap<i64, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected() -> TopicRouteData {
        TopicRouteData {
            order_topic_conf: None,
            queue_datas: vec![QueueData {
                broker_name: "broker-a".into(),
                read_queue_nums: 4,
                write_queue_nums: 4,
                perm: 6,
                topic_sys_flag: 0,
            }],
            broker_datas: vec![BrokerData {
                cluster: "DefaultCluster".into(),
                broker_name: "broker-a".into(),
                broker_addrs: BTreeMap::from([
                    (0, "10.0.0.1:10911".to_owned()),
                    (1, "10.0.0.2:10911".to_owned()),
                ]),
            }],
            filter_server_table: BTreeMap::new(),
        }
    }

    #[test]
    fn route_from_fastjson_with_unquoted_keys() {
        let json = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-a","cluster":"DefaultCluster"}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-a","perm":6,"readQueueNums":4,"topicSynFlag":0,"writeQueueNums":4}]}"#;
        let decoded = TopicRouteData::decode(json.as_bytes());
        assert_eq!(decoded.ok(), Some(expected()));
    }

    #[test]
    fn route_encodes_quoted_keys_and_round_trips() {
        let encoded = expected().encode().expect("encodes");
        let text = std::str::from_utf8(&encoded).expect("utf8");
        assert!(
            text.contains(r#""brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"}"#),
            "{text}"
        );
        assert!(text.contains(r#""filterServerTable":{}"#), "{text}");
        assert_eq!(TopicRouteData::decode(&encoded).ok(), Some(expected()));
    }
}
