//! Admin bodies: GET_CONSUMER_CONNECTION_LIST (203), QUERY_TOPIC_CONSUME_BY_WHO (300) and
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    ConsumeFromWhere, ConsumeType, DataVersion, JsonBody, MessageModel, SubscriptionData,
    null_as_default,
};
use crate::command::LanguageCode;

/// One client connection of a consumer group (`Connection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConnection {
    /// Client id.
    pub client_id: String,
    /// Client address, `ip:port`.
    pub client_addr: String,
    /// Client language, as the Java enum name.
    #[serde(default)]
    pub language: String,
    /// Client version ordinal.
    #[serde(default, deserialize_with = "null_as_default")]
    pub version: i32,
}

impl ClientConnection {
    /// A connection entry with the language given as the protocol's code.
    pub fn new(
        client_id: String,
        client_addr: String,
        language: &LanguageCode,
        version: i32,
    ) -> Self {
        Self {
            client_id,
            client_addr,
            language: language.name().to_string(),
            version,
        }
    }
}

/// GET_CONSUMER_CONNECTION_LIST response body (`ConsumerConnection`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerConnection {
    /// Live clients.
    #[serde(default, deserialize_with = "null_as_default")]
    pub connection_set: Vec<ClientConnection>,
    /// Subscriptions by topic.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscription_table: BTreeMap<String, SubscriptionData>,
    /// Pull or push.
    #[serde(default)]
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    #[serde(default)]
    pub message_model: MessageModel,
    /// Where a new consumer starts.
    #[serde(default)]
    pub consume_from_where: ConsumeFromWhere,
}

impl JsonBody for ConsumerConnection {
    const NAME: &'static str = "ConsumerConnection";
}

/// QUERY_TOPIC_CONSUME_BY_WHO response body (`GroupList`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupList {
    /// Group names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group_list: Vec<String>,
}

impl JsonBody for GroupList {
    const NAME: &'static str = "GroupList";
}

/// A consumer group's configuration on a broker (`SubscriptionGroupConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SubscriptionGroupConfig {
    /// Group name.
    pub group_name: String,
    /// Whether the group may consume.
    pub consume_enable: bool,
    /// Whether a new group starts from the queue's minimum offset.
    pub consume_from_min_enable: bool,
    /// Whether broadcasting consumption is allowed.
    pub consume_broadcast_enable: bool,
    /// Queues of the group's retry topic.
    pub retry_queue_nums: i32,
    /// Retries before a message goes to the dead-letter topic.
    pub retry_max_times: i32,
    /// Broker to consume from.
    pub broker_id: i64,
    /// Broker to consume from when consumption is slow.
    pub which_broker_when_consume_slowly: i64,
    /// Whether consumers are told when the group's members change.
    pub notify_consumer_ids_changed_enable: bool,
}

impl Default for SubscriptionGroupConfig {
    fn default() -> Self {
        Self {
            group_name: String::new(),
            consume_enable: true,
            consume_from_min_enable: true,
            consume_broadcast_enable: true,
            retry_queue_nums: 1,
            retry_max_times: 16,
            broker_id: 0,
            which_broker_when_consume_slowly: 1,
            notify_consumer_ids_changed_enable: true,
        }
    }
}

impl JsonBody for SubscriptionGroupConfig {
    const NAME: &'static str = "SubscriptionGroupConfig";
}

/// GET_ALL_SUBSCRIPTIONGROUP_CONFIG response body (`SubscriptionGroupWrapper`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionGroupWrapper {
    /// Configuration per group name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscription_group_table: BTreeMap<String, SubscriptionGroupConfig>,
    /// Version.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data_version: DataVersion,
}

impl JsonBody for SubscriptionGroupWrapper {
    const NAME: &'static str = "SubscriptionGroupWrapper";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_bodies_round_trip_and_read_java_output() {
        let java = br#"{"connectionSet":[{"clientAddr":"10.0.0.5:51234","clientId":"10.0.0.5@1","language":"JAVA","version":413}],
            "consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING",
            "subscriptionTable":{"T":{"classFilterMode":false,"codeSet":[],"expressionType":"TAG","subString":"*","subVersion":1,"tagsSet":[],"topic":"T"}}}"#;
        let c = ConsumerConnection::decode(java).expect("decodes");
        assert_eq!(c.connection_set[0].client_id, "10.0.0.5@1");
        assert_eq!(c.message_model, MessageModel::Clustering);
        assert_eq!(c.subscription_table["T"].sub_string, "*");
        assert_eq!(
            ConsumerConnection::decode(&c.encode().expect("enc")).ok(),
            Some(c)
        );

        let g = GroupList {
            group_list: vec!["a".into(), "b".into()],
        };
        assert_eq!(GroupList::decode(&g.encode().expect("enc")).ok(), Some(g));

        let w = SubscriptionGroupWrapper::decode(
            br#"{"subscriptionGroupTable":{"g":{"groupName":"g","retryMaxTimes":3}},"dataVersion":{"counter":2,"timestamp":1}}"#,
        )
        .expect("decodes");
        let g = &w.subscription_group_table["g"];
        assert_eq!(
            (g.retry_max_times, g.retry_queue_nums, g.consume_enable),
            (3, 1, true)
        );
    }
}
