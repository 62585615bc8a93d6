//! Topic configuration bodies: GET_ALL_TOPIC_CONFIG (21) and REGISTER_BROKER (103).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{JsonBody, java_enum, null_as_default};
use crate::error::ProtocolError;

java_enum! {
    /// Tag filtering of a topic (`TopicFilterType`).
    #[derive(Default)]
    pub enum TopicFilterType {
        /// One tag per message.
        #[default]
        SingleTag = (0, "SINGLE_TAG"),
        /// Several tags per message.
        MultiTag = (1, "MULTI_TAG"),
    }
}

/// Configuration of one topic on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfig {
    /// Topic.
    pub topic_name: String,
    /// Readable queues.
    pub read_queue_nums: i32,
    /// Writable queues.
    pub write_queue_nums: i32,
    /// Permission bits (see [`crate::perm`]).
    pub perm: i32,
    /// Tag filtering.
    #[serde(default)]
    pub topic_filter_type: TopicFilterType,
    /// Topic sys flag.
    #[serde(default, deserialize_with = "null_as_default")]
    pub topic_sys_flag: i32,
    /// Ordered topic.
    #[serde(default, deserialize_with = "null_as_default")]
    pub order: bool,
    /// 5.x attributes.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub attributes: BTreeMap<String, String>,
}

/// Version of a broker's topic configuration, compared by the NameServer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataVersion {
    /// 5.x state version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub state_version: i64,
    /// When the version was created, ms.
    #[serde(default, deserialize_with = "null_as_default")]
    pub timestamp: i64,
    /// Bumped on every change.
    #[serde(default, deserialize_with = "null_as_default")]
    pub counter: i64,
}

impl JsonBody for DataVersion {
    const NAME: &'static str = "DataVersion";
}

/// All topic configurations of a broker with their version (GET_ALL_TOPIC_CONFIG body).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopicConfigSerializeWrapper {
    /// Configuration per topic name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub topic_config_table: BTreeMap<String, TopicConfig>,
    /// Version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data_version: DataVersion,
}

impl JsonBody for TopicConfigSerializeWrapper {
    const NAME: &'static str = "TopicConfigSerializeWrapper";
}

/// REGISTER_BROKER request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterBrokerBody {
    /// The broker's topics.
    #[serde(default, deserialize_with = "null_as_default")]
    pub topic_config_serialize_wrapper: TopicConfigSerializeWrapper,
    /// Filter server addresses.
    #[serde(default, deserialize_with = "null_as_default")]
    pub filter_server_list: Vec<String>,
}

impl JsonBody for RegisterBrokerBody {
    const NAME: &'static str = "RegisterBrokerBody";
}

impl RegisterBrokerBody {
    /// Decodes the body of a REGISTER_BROKER request whose header says `compressed`.
    ///
    /// Uncompressed bodies are JSON. Java brokers with `compressedRegister=true` send a
    /// zlib-deflated binary layout instead (data version JSON, then per topic a
    /// space-separated `TopicConfig.encode()` string, then the filter server list, each
    /// length-prefixed); that form is refused with [`ProtocolError::UnsupportedBody`].
    pub fn decode_request(body: &[u8], compressed: bool) -> Result<Self, ProtocolError> {
        if compressed {
            return Err(ProtocolError::UnsupportedBody {
                body: Self::NAME,
                reason: "the compressed (deflated binary) form is not supported; \
                         set compressedRegister=false on the broker",
            });
        }
        Self::decode(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_body_from_java_json() {
        let json = r#"{"filterServerList":[],"topicConfigSerializeWrapper":{"dataVersion":{"counter":3,"stateVersion":0,"timestamp":1700000000000},"topicConfigTable":{"TopicA":{"order":false,"perm":6,"readQueueNums":8,"topicFilterType":"SINGLE_TAG","topicName":"TopicA","topicSysFlag":0,"writeQueueNums":8}}}}"#;
        let body = RegisterBrokerBody::decode_request(json.as_bytes(), false).expect("decodes");
        let wrapper = &body.topic_config_serialize_wrapper;
        assert_eq!(wrapper.data_version.counter, 3);
        let topic = &wrapper.topic_config_table["TopicA"];
        assert_eq!((topic.read_queue_nums, topic.perm), (8, 6));
        assert_eq!(topic.topic_filter_type, TopicFilterType::SingleTag);
        let again = RegisterBrokerBody::decode(&body.encode().expect("encodes")).expect("decodes");
        assert_eq!(again, body);
    }

    #[test]
    fn data_version_alone_as_a_body() {
        let json = r#"{"counter":7,"timestamp":1700000000000}"#;
        let version = DataVersion::decode(json.as_bytes()).expect("decodes");
        assert_eq!(
            (version.counter, version.timestamp, version.state_version),
            (7, 1_700_000_000_000, 0)
        );
        let again = DataVersion::decode(&version.encode().expect("encodes")).expect("decodes");
        assert_eq!(again, version);
    }

    #[test]
    fn compressed_register_body_is_refused_clearly() {
        let err = RegisterBrokerBody::decode_request(b"\x78\x9c", true).map(|_| ());
        assert!(
            matches!(
                err,
                Err(ProtocolError::UnsupportedBody {
                    body: "RegisterBrokerBody",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
