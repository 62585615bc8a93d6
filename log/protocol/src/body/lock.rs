//! LOCK_BATCH_MQ (41) and UNLOCK_BATCH_MQ (42) bodies: queue locks for orderly consumers.

use serde::{Deserialize, Serialize};

use super::{JsonBody, null_as_default};

/// One queue of a topic on a broker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageQueue {
    /// Topic.
    pub topic: String,
    /// Broker name.
    pub broker_name: String,
    /// Queue id.
    pub queue_id: i32,
}

/// LOCK_BATCH_MQ request body.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockBatchRequestBody {
    /// Consumer group.
    pub consumer_group: String,
    /// Client asking for the locks.
    pub client_id: String,
    /// 5.x: do not forward to the other replicas.
    #[serde(default, deserialize_with = "null_as_default")]
    pub only_this_broker: bool,
    /// Queues to lock.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mq_set: Vec<MessageQueue>,
}

impl JsonBody for LockBatchRequestBody {
    const NAME: &'static str = "LockBatchRequestBody";
}

/// UNLOCK_BATCH_MQ request body (same shape as the lock request).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnlockBatchRequestBody {
    /// Consumer group.
    pub consumer_group: String,
    /// Client releasing the locks.
    pub client_id: String,
    /// 5.x: do not forward to the other replicas.
    #[serde(default, deserialize_with = "null_as_default")]
    pub only_this_broker: bool,
    /// Queues to unlock.
    #[serde(default, deserialize_with = "null_as_default")]
    pub mq_set: Vec<MessageQueue>,
}

impl JsonBody for UnlockBatchRequestBody {
    const NAME: &'static str = "UnlockBatchRequestBody";
}

/// LOCK_BATCH_MQ response body: the queues now locked by the client.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockBatchResponseBody {
    /// Locked queues.
    #[serde(rename = "lockOKMQSet", default, deserialize_with = "null_as_default")]
    pub lock_ok_mq_set: Vec<MessageQueue>,
}

impl JsonBody for LockBatchResponseBody {
    const NAME: &'static str = "LockBatchResponseBody";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_bodies_round_trip_with_java_names() {
        let json = r#"{"clientId":"c@1","consumerGroup":"g","mqSet":[{"brokerName":"b","queueId":3,"topic":"T"}],"onlyThisBroker":false}"#;
        let request = LockBatchRequestBody::decode(json.as_bytes()).expect("decodes");
        assert_eq!(request.mq_set[0].queue_id, 3);
        let response = LockBatchResponseBody {
            lock_ok_mq_set: request.mq_set.clone(),
        };
        let encoded = response.encode().expect("encodes");
        assert_eq!(
            &encoded[..],
            br#"{"lockOKMQSet":[{"topic":"T","brokerName":"b","queueId":3}]}"#
        );
        let unlock = UnlockBatchRequestBody::decode(json.as_bytes()).expect("decodes");
        assert_eq!(unlock.mq_set, request.mq_set);
    }
}
