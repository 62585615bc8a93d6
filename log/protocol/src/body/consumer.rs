//! GET_CONSUMER_LIST_BY_GROUP (38) response body.

use serde::{Deserialize, Serialize};

use super::{JsonBody, null_as_default};

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
}
