//! HEART_BEAT (34) body: the producer and consumer groups a client belongs to.

use serde::{Deserialize, Serialize};

use super::{JsonBody, java_enum, null_as_default};

java_enum! {
    /// How a consumer gets messages (`ConsumeType`).
    #[derive(Default)]
    pub enum ConsumeType {
        /// Pull consumer. Aliases: Java's `PULL` label, old Go clients' `pull`.
        ConsumeActively = (0, "CONSUME_ACTIVELY", "PULL"),
        /// Push consumer (long-polling pull under the hood).
        #[default]
        ConsumePassively = (1, "CONSUME_PASSIVELY", "PUSH"),
        /// 5.x pop consumer.
        ConsumePop = (2, "CONSUME_POP", "POP"),
    }
}

java_enum! {
    /// How a group shares messages (`MessageModel`).
    #[derive(Default)]
    pub enum MessageModel {
        /// Every consumer gets every message; offsets are kept by the client.
        Broadcasting = (0, "BROADCASTING"),
        /// Each message goes to one consumer of the group; offsets are kept by the broker.
        #[default]
        Clustering = (1, "CLUSTERING"),
    }
}

java_enum! {
    /// Where a group with no committed offset starts (`ConsumeFromWhere`). Ordinals are
    /// Java's; note that the Go client's own integer constants differ (it sends names).
    #[derive(Default)]
    pub enum ConsumeFromWhere {
        /// From the end of the queue.
        #[default]
        LastOffset = (0, "CONSUME_FROM_LAST_OFFSET"),
        /// Deprecated in Java.
        LastOffsetAndFromMinWhenBootFirst = (1, "CONSUME_FROM_LAST_OFFSET_AND_FROM_MIN_WHEN_BOOT_FIRST"),
        /// Deprecated in Java.
        MinOffset = (2, "CONSUME_FROM_MIN_OFFSET"),
        /// Deprecated in Java.
        MaxOffset = (3, "CONSUME_FROM_MAX_OFFSET"),
        /// From the start of the queue.
        FirstOffset = (4, "CONSUME_FROM_FIRST_OFFSET"),
        /// From the consumer's configured timestamp.
        Timestamp = (5, "CONSUME_FROM_TIMESTAMP"),
    }
}

/// Heartbeat body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatData {
    /// Client id (`ip@instance`).
    #[serde(rename = "clientID", alias = "clientId")]
    pub client_id: String,
    /// Producer groups.
    #[serde(default, deserialize_with = "null_as_default")]
    pub producer_data_set: Vec<ProducerData>,
    /// Consumer groups.
    #[serde(default, deserialize_with = "null_as_default")]
    pub consumer_data_set: Vec<ConsumerData>,
}

impl JsonBody for HeartbeatData {
    const NAME: &'static str = "HeartbeatData";
}

/// A producer group of a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerData {
    /// Producer group.
    pub group_name: String,
}

/// A consumer group of a heartbeat. Absent enums take the Java push-consumer defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerData {
    /// Consumer group.
    pub group_name: String,
    /// Pull or push.
    #[serde(default)]
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    #[serde(default)]
    pub message_model: MessageModel,
    /// Start position for a new group.
    #[serde(default)]
    pub consume_from_where: ConsumeFromWhere,
    /// Subscriptions.
    #[serde(default, deserialize_with = "null_as_default")]
    pub subscription_data_set: Vec<SubscriptionData>,
    /// Unit mode.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unit_mode: bool,
}

/// One subscription of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionData {
    /// Class filter mode (filter server, removed in 5.x).
    #[serde(default, deserialize_with = "null_as_default")]
    pub class_filter_mode: bool,
    /// Topic.
    pub topic: String,
    /// The expression: `*`, `tagA || tagB`, or an SQL92 filter.
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_string: String,
    /// Tags of a TAG expression.
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags_set: Vec<String>,
    /// Java `String.hashCode()` of each tag, matched against the consume queue's tag hash.
    #[serde(default, deserialize_with = "null_as_default")]
    pub code_set: Vec<i64>,
    /// Version (client timestamp when created, ms).
    #[serde(default, deserialize_with = "null_as_default")]
    pub sub_version: i64,
    /// `TAG` (the default) or `SQL92`.
    #[serde(default = "tag_expression", deserialize_with = "expression_type")]
    pub expression_type: String,
    /// Filter class source (filter server, removed in 5.x).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_class_source: Option<String>,
}

fn tag_expression() -> String {
    "TAG".to_owned()
}

fn expression_type<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(tag_expression))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_accept_names_ordinals_and_aliases() {
        let cases = [
            (
                r#""CONSUME_PASSIVELY""#,
                Some(ConsumeType::ConsumePassively),
            ),
            ("1", Some(ConsumeType::ConsumePassively)),
            (r#""push""#, Some(ConsumeType::ConsumePassively)),
            (r#""PULL""#, Some(ConsumeType::ConsumeActively)),
            ("0", Some(ConsumeType::ConsumeActively)),
            ("9", None),
            ("-1", None),
            (r#""SOMETIMES""#, None),
        ];
        for (json, expect) in cases {
            assert_eq!(
                serde_json::from_str::<ConsumeType>(json).ok(),
                expect,
                "{json}"
            );
        }
        assert_eq!(
            serde_json::from_str::<ConsumeFromWhere>("4").ok(),
            Some(ConsumeFromWhere::FirstOffset)
        );
        assert_eq!(
            serde_json::to_string(&ConsumeFromWhere::Timestamp)
                .ok()
                .as_deref(),
            Some(r#""CONSUME_FROM_TIMESTAMP""#)
        );
    }

    fn check(json: &str, expect: &HeartbeatData) {
        let decoded = HeartbeatData::decode(json.as_bytes());
        assert_eq!(decoded.as_ref().ok(), Some(expect), "{json}: {decoded:?}");
        let encoded = expect.encode().expect("encodes");
        assert_eq!(HeartbeatData::decode(&encoded).ok().as_ref(), Some(expect));
    }

    #[test]
    fn heartbeat_from_java_with_names() {
        let json = r#"{"clientID":"10.0.0.5@1234","consumerDataSet":[{"consumeFromWhere":"CONSUME_FROM_FIRST_OFFSET","consumeType":"CONSUME_PASSIVELY","groupName":"cg","messageModel":"CLUSTERING","subscriptionDataSet":[{"classFilterMode":false,"codeSet":[2598919,-1],"expressionType":"TAG","subString":"TagA || TagB","subVersion":1700000000000,"tagsSet":["TagA","TagB"],"topic":"T"}],"unitMode":false}],"heartbeatFingerprint":0,"producerDataSet":[{"groupName":"CLIENT_INNER_PRODUCER"}],"withoutSub":false}"#;
        let expect = HeartbeatData {
            client_id: "10.0.0.5@1234".into(),
            producer_data_set: vec![ProducerData {
                group_name: "CLIENT_INNER_PRODUCER".into(),
            }],
            consumer_data_set: vec![ConsumerData {
                group_name: "cg".into(),
                consume_type: ConsumeType::ConsumePassively,
                message_model: MessageModel::Clustering,
                consume_from_where: ConsumeFromWhere::FirstOffset,
                subscription_data_set: vec![SubscriptionData {
                    class_filter_mode: false,
                    topic: "T".into(),
                    sub_string: "TagA || TagB".into(),
                    tags_set: vec!["TagA".into(), "TagB".into()],
                    code_set: vec![2_598_919, -1],
                    sub_version: 1_700_000_000_000,
                    expression_type: "TAG".into(),
                    filter_class_source: None,
                }],
                unit_mode: false,
            }],
        };
        check(json, &expect);
    }

    #[test]
    fn heartbeat_with_ordinals_and_missing_sets() {
        let json = r#"{"clientID":"c1","consumerDataSet":[{"groupName":"g","consumeType":1,"messageModel":0,"consumeFromWhere":5,"subscriptionDataSet":[{"topic":"T","subString":"*","tagsSet":null,"expressionType":null}]}]}"#;
        let expect = HeartbeatData {
            client_id: "c1".into(),
            producer_data_set: vec![],
            consumer_data_set: vec![ConsumerData {
                group_name: "g".into(),
                consume_type: ConsumeType::ConsumePassively,
                message_model: MessageModel::Broadcasting,
                consume_from_where: ConsumeFromWhere::Timestamp,
                subscription_data_set: vec![SubscriptionData {
                    class_filter_mode: false,
                    topic: "T".into(),
                    sub_string: "*".into(),
                    tags_set: vec![],
                    code_set: vec![],
                    sub_version: 0,
                    expression_type: "TAG".into(),
                    filter_class_source: None,
                }],
                unit_mode: false,
            }],
        };
        check(json, &expect);
    }

    #[test]
    fn heartbeat_with_bad_enum_is_a_body_error() {
        let json =
            r#"{"clientID":"c","consumerDataSet":[{"groupName":"g","consumeType":"SOMETIMES"}]}"#;
        let err = HeartbeatData::decode(json.as_bytes()).map(|_| ());
        assert!(
            matches!(
                err,
                Err(crate::ProtocolError::InvalidBody {
                    body: "HeartbeatData",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
