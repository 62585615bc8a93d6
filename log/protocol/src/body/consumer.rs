//! GET_CONSUMER_LIST_BY_GROUP (38) response body and CHECK_CLIENT_CONFIG (46) request body.

use serde::{Deserialize, Serialize};

use super::{JsonBody, SubscriptionData, null_as_default};

/// The client ids of a consumer group's live members.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerListByGroup {
    /// Client ids.
    #[serde(default, deserialize_with = "null_as_default")]
    pub consumer_id_list: Vec<String>,
}

impl JsonBody for ConsumerListByGroup {
    const NAME: &'static str = "GetConsumerListByGroupResponseBody";
}

/// CHECK_CLIENT_CONFIG request body: a consumer asks, before it starts, whether the broker
/// can evaluate a subscription (Java's `checkClientInBroker`, for SQL92 filters). The broker
/// answers SUBSCRIPTION_PARSE_FAILED with the parse error when it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckClientRequestBody {
    /// Client id.
    #[serde(default)]
    pub client_id: String,
    /// Consumer group.
    #[serde(default)]
    pub group: String,
    /// The subscription to check.
    #[serde(default)]
    pub subscription_data: Option<SubscriptionData>,
    /// 5.x namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl JsonBody for CheckClientRequestBody {
    const NAME: &'static str = "CheckClientRequestBody";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_list_round_trip() {
        let body = ConsumerListByGroup {
            consumer_id_list: vec!["10.0.0.5@1".into(), "10.0.0.6@2".into()],
        };
        let encoded = body.encode().expect("encodes");
        assert_eq!(
            &encoded[..],
            br#"{"consumerIdList":["10.0.0.5@1","10.0.0.6@2"]}"#
        );
        assert_eq!(ConsumerListByGroup::decode(&encoded).ok(), Some(body));
        assert_eq!(
            ConsumerListByGroup::decode(b"{}").ok(),
            Some(ConsumerListByGroup::default())
        );
    }

    #[test]
    fn check_client_body_reads_java_json() {
        let java = br#"{"clientId":"10.0.0.5@1","group":"g","subscriptionData":{"classFilterMode":false,"codeSet":[],"expressionType":"SQL92","subString":"a > 5","subVersion":1,"tagsSet":[],"topic":"T"}}"#;
        let body = CheckClientRequestBody::decode(java).expect("decodes");
        let sub = body.subscription_data.as_ref().expect("subscription");
        assert_eq!(
            (
                body.group.as_str(),
                sub.expression_type.as_str(),
                sub.sub_string.as_str()
            ),
            ("g", "SQL92", "a > 5")
        );
        let again =
            CheckClientRequestBody::decode(&body.encode().expect("encodes")).expect("decodes");
        assert_eq!(again, body);
    }
}
