//! NameServer listing bodies: topic lists (GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206),
//! GET_TOPICS_BY_CLUSTER (224), GET_SYSTEM_TOPIC_LIST_FROM_NS (304)) and KV tables
//! (GET_KVLIST_BY_NAMESPACE (219), the REGISTER_BROKER answer).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{JsonBody, null_as_default};

/// A set of topic names (`TopicList`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicList {
    /// Topic names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub topic_list: BTreeSet<String>,
    /// A broker address, set only in the system topic list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_addr: Option<String>,
}

impl JsonBody for TopicList {
    const NAME: &'static str = "TopicList";
}

/// The keys and values of one KV config namespace (`KVTable`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KvTable {
    /// Value per key.
    #[serde(default, deserialize_with = "null_as_default")]
    pub table: BTreeMap<String, String>,
}

impl JsonBody for KvTable {
    const NAME: &'static str = "KVTable";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_list_from_java_and_back() {
        let json = r#"{"topicList":["TopicB","TopicA","TopicA"]}"#;
        let list = TopicList::decode(json.as_bytes()).expect("decodes");
        assert_eq!(
            list.topic_list
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["TopicA", "TopicB"]
        );
        assert_eq!(list.broker_addr, None);
        let encoded = list.encode().expect("encodes");
        assert_eq!(&encoded[..], br#"{"topicList":["TopicA","TopicB"]}"#);
        let system = TopicList {
            broker_addr: Some("10.0.0.1:10911".into()),
            ..list
        };
        let again = TopicList::decode(&system.encode().expect("encodes")).expect("decodes");
        assert_eq!(again, system);
        assert_eq!(TopicList::decode(b"{}").ok(), Some(TopicList::default()));
    }

    #[test]
    fn kv_table_from_java_and_back() {
        let json = r#"{"table":{"TopicA":"broker-a:8;broker-b:8"}}"#;
        let table = KvTable::decode(json.as_bytes()).expect("decodes");
        assert_eq!(table.table["TopicA"], "broker-a:8;broker-b:8");
        assert_eq!(&table.encode().expect("encodes")[..], json.as_bytes());
        assert_eq!(
            KvTable::decode(br#"{"table":null}"#).ok(),
            Some(KvTable::default())
        );
    }
}
