//! Header of PUSH_REPLY_MESSAGE_TO_CLIENT (326): the broker hands a reply (sent with
//! SEND_REPLY_MESSAGE(_V2), 324/325) to the client that sent the request.

use super::command_header;

command_header! {
    /// Request header of PUSH_REPLY_MESSAGE_TO_CLIENT, Java's `ReplyMessageRequestHeader`:
    /// the replier's send header, plus where the reply came from and when the broker took it.
    /// The body is the reply's body as the replier sent it (compressed when `sys_flag` says so).
    pub struct ReplyMessageRequestHeader {
        /// The replier's producer group.
        required producer_group: String = "producerGroup",
        /// The reply topic (`<cluster>_REPLY_TOPIC`).
        required topic: String = "topic",
        /// The replier's template topic.
        required default_topic: String = "defaultTopic",
        /// The replier's queue count for auto-creation.
        required default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        /// Queue the replier sent to.
        required queue_id: i32 = "queueId",
        /// Message sys flag (compression).
        required sys_flag: i32 = "sysFlag",
        /// The replier's timestamp, ms.
        required born_timestamp: i64 = "bornTimestamp",
        /// User flag.
        required flag: i32 = "flag",
        /// Properties string, with `PUSH_REPLY_TIME` added by the broker.
        optional properties: String = "properties",
        /// Reconsume times of the reply.
        optional reconsume_times: i32 = "reconsumeTimes",
        /// Unit mode.
        optional unit_mode: bool = "unitMode",
        /// The replier's address as the broker saw it, `ip:port`.
        required born_host: String = "bornHost",
        /// The broker's store address, `ip:port`.
        required store_host: String = "storeHost",
        /// When the broker took the reply, ms.
        required store_timestamp: i64 = "storeTimestamp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::test_fields as fields;
    use crate::error::ProtocolError;
    use crate::header::CommandHeader;

    #[test]
    fn reads_the_java_field_names() {
        let f = fields(&[
            ("producerGroup", "replier"),
            ("topic", "DefaultCluster_REPLY_TOPIC"),
            ("defaultTopic", "TBW102"),
            ("defaultTopicQueueNums", "4"),
            ("queueId", "0"),
            ("sysFlag", "0"),
            ("bornTimestamp", "1700000000000"),
            ("flag", "0"),
            ("properties", "CORRELATION_ID\u{1}c-1\u{2}"),
            ("bornHost", "127.0.0.1:50000"),
            ("storeHost", "127.0.0.1:10911"),
            ("storeTimestamp", "1700000000001"),
        ]);
        let h = ReplyMessageRequestHeader::from_ext_fields(&f).expect("decodes");
        assert_eq!(h.topic, "DefaultCluster_REPLY_TOPIC");
        assert_eq!(h.born_host, "127.0.0.1:50000");
        assert_eq!(h.store_timestamp, 1_700_000_000_001);
        assert_eq!(h.reconsume_times, None);
        assert_eq!(h.to_ext_fields(), f);
        let mut missing = f.clone();
        missing.remove("storeHost");
        assert!(matches!(
            ReplyMessageRequestHeader::from_ext_fields(&missing),
            Err(ProtocolError::MissingField {
                field: "storeHost",
                ..
            })
        ));
    }
}
