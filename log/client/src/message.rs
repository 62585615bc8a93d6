//! Messages: [`Message`] to send, [`MessageExt`] as received, and [`MessageQueue`].

use std::net::SocketAddr;

use bytes::Bytes;
pub use tributary_protocol::body::MessageQueue;
use tributary_protocol::message::{Properties, property};

/// Prefix of a consumer group's retry topic (`%RETRY%<group>`).
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";
/// Prefix of a consumer group's dead-letter topic (`%DLQ%<group>`).
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// The template topic brokers auto-create topics from.
pub const AUTO_CREATE_TOPIC_KEY: &str = "TBW102";

/// The retry topic of a consumer group.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// A message to send. The body is a [`Bytes`], so sending never copies it (unless it is
/// compressed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Topic.
    pub topic: String,
    /// User flag, stored as is.
    pub flag: i32,
    /// Body.
    pub body: Bytes,
    /// Properties: tags, keys, user properties. The producer adds `UNIQ_KEY`.
    pub properties: Properties,
}

impl Message {
    /// A message with a topic and a body.
    pub fn new(topic: impl Into<String>, body: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            body: body.into(),
            ..Self::default()
        }
    }

    /// Sets the tag (`TAGS`), returning `self`.
    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.properties.insert(property::TAGS.into(), tags.into());
        self
    }

    /// Sets the keys (`KEYS`, space-separated), returning `self`.
    pub fn with_keys<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined = keys
            .into_iter()
            .map(|k| k.as_ref().to_owned())
            .collect::<Vec<_>>()
            .join(property::KEY_SEPARATOR);
        self.properties.insert(property::KEYS.into(), joined);
        self
    }

    /// Sets a user property, returning `self`.
    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Sets the delay level (`DELAY`, 1 = 1 s … 18 = 2 h), returning `self`.
    pub fn with_delay_level(mut self, level: i32) -> Self {
        self.properties
            .insert(property::DELAY_TIME_LEVEL.into(), level.to_string());
        self
    }

    /// Sets the time to deliver at, ms since the epoch (`TIMER_DELIVER_MS`, RocketMQ 5's
    /// `setDeliverTimeMs`), returning `self`. Brokers accept up to their
    /// `timer_max_delay_secs` ahead (3 days by default); a time in the past delivers at once.
    pub fn with_deliver_time_ms(mut self, epoch_ms: i64) -> Self {
        self.properties
            .insert(property::TIMER_DELIVER_MS.into(), epoch_ms.to_string());
        self
    }

    /// Sets a delay from when the broker stores the message (`TIMER_DELAY_MS`), returning
    /// `self`.
    pub fn with_delay(mut self, delay: std::time::Duration) -> Self {
        let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.properties
            .insert(property::TIMER_DELAY_MS.into(), ms.to_string());
        self
    }

    /// The tag, if set.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The keys.
    pub fn keys(&self) -> Vec<&str> {
        split_keys(self.property(property::KEYS))
    }

    /// A property.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The unique id the producer assigned (`UNIQ_KEY`), once sent.
    pub fn uniq_id(&self) -> Option<&str> {
        self.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
    }
}

fn split_keys(keys: Option<&str>) -> Vec<&str> {
    keys.map(|k| {
        k.split(property::KEY_SEPARATOR)
            .filter(|k| !k.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// A message as stored and delivered: the record fields plus the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageExt {
    /// Topic (for a message consumed from a retry topic: the original topic).
    pub topic: String,
    /// User flag.
    pub flag: i32,
    /// Body, uncompressed. Shares the memory of the response it came in unless it had to be
    /// decompressed.
    pub body: Bytes,
    /// Properties.
    pub properties: Properties,
    /// Queue id.
    pub queue_id: i32,
    /// Bytes of the stored record.
    pub store_size: i32,
    /// Logical offset in the queue.
    pub queue_offset: i64,
    /// Message sys flag (the compressed bit is cleared once the body is inflated).
    pub sys_flag: i32,
    /// Producer timestamp, ms.
    pub born_timestamp: i64,
    /// Producer address as the broker saw it.
    pub born_host: SocketAddr,
    /// Broker timestamp, ms.
    pub store_timestamp: i64,
    /// Broker store address.
    pub store_host: SocketAddr,
    /// Times this message was consumed before (retry topics).
    pub reconsume_times: i32,
    /// Offset of the prepared transaction message.
    pub prepared_transaction_offset: i64,
    /// Commit log offset.
    pub commit_log_offset: i64,
    /// Body CRC as stored.
    pub body_crc: i32,
    /// Offset message id (store host + commit log offset).
    pub offset_msg_id: String,
    /// Broker name of the queue it was pulled from (empty for messages not pulled from a
    /// queue, e.g. viewed by id).
    pub broker_name: String,
}

impl MessageExt {
    /// The message id applications see: the producer's `UNIQ_KEY` when present, else the
    /// offset message id (as Java's `MessageClientExt.getMsgId`).
    pub fn msg_id(&self) -> &str {
        self.uniq_id().unwrap_or(&self.offset_msg_id)
    }

    /// The producer's unique id (`UNIQ_KEY`).
    pub fn uniq_id(&self) -> Option<&str> {
        self.property(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
    }

    /// The tag.
    pub fn tags(&self) -> Option<&str> {
        self.property(property::TAGS)
    }

    /// The keys.
    pub fn keys(&self) -> Vec<&str> {
        split_keys(self.property(property::KEYS))
    }

    /// A property.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The queue it was pulled from.
    pub fn queue(&self) -> MessageQueue {
        MessageQueue {
            topic: self.topic.clone(),
            broker_name: self.broker_name.clone(),
            queue_id: self.queue_id,
        }
    }
}

/// Java's `String.hashCode` (over UTF-16 code units): the tag code brokers filter by, and the
/// hash that [`crate::producer::select_by_hash`] uses for sharding keys.
pub use tributary_common::record::java_string_hash;

/// Java's `MessageQueue.toString()`, the key the consistent-hash strategy hashes.
pub fn message_queue_key(mq: &MessageQueue) -> String {
    format!(
        "MessageQueue [topic={}, brokerName={}, queueId={}]",
        mq.topic, mq.broker_name, mq.queue_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_java_properties() {
        let msg = Message::new("T", &b"x"[..])
            .with_tags("TagA")
            .with_keys(["k1", "k2"])
            .with_delay_level(3)
            .with_property("a", "b");
        assert_eq!(msg.tags(), Some("TagA"));
        assert_eq!(msg.keys(), vec!["k1", "k2"]);
        assert_eq!(msg.property("KEYS"), Some("k1 k2"));
        assert_eq!(msg.property("DELAY"), Some("3"));
        assert_eq!(msg.property("a"), Some("b"));
        assert_eq!(msg.uniq_id(), None);
    }

    #[test]
    fn queue_key_is_java_to_string() {
        let mq = MessageQueue {
            topic: "T".into(),
            broker_name: "broker-a".into(),
            queue_id: 3,
        };
        assert_eq!(
            message_queue_key(&mq),
            "MessageQueue [topic=T, brokerName=broker-a, queueId=3]"
        );
    }
}
