//! Headers of PULL_MESSAGE (11) and LITE_PULL_MESSAGE (361).

use super::command_header;

command_header! {
    /// Request header of PULL_MESSAGE. `sys_flag` carries [`crate::sysflag::pull`] bits.
    pub struct PullMessageRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// First logical offset wanted.
        required queue_offset: i64 = "queueOffset",
        /// Maximum number of messages to return.
        required max_msg_nums: i32 = "maxMsgNums",
        /// Pull sys flag bits.
        required sys_flag: i32 = "sysFlag",
        /// Consumer offset to commit along the pull (when the commit-offset bit is set).
        required commit_offset: i64 = "commitOffset",
        /// How long the broker may hold the request when nothing is there (long polling), ms.
        required suspend_timeout_millis: i64 = "suspendTimeoutMillis",
        /// Subscription expression (when the subscription bit is set).
        optional subscription: String = "subscription",
        /// Version of the subscription the client holds.
        required sub_version: i64 = "subVersion",
        /// `TAG` or `SQL92`.
        optional expression_type: String = "expressionType",
        /// Byte limit of the answer (5.x).
        optional max_msg_bytes: i32 = "maxMsgBytes",
        /// Request source (5.x proxy).
        optional request_source: i32 = "requestSource",
        /// Client id forwarded by a 5.x proxy (the Java field name is misspelt so).
        optional proxy_forward_client_id: String = "proxyFrowardClientId",
    }
}

command_header! {
    /// Response header of PULL_MESSAGE. Java and Node clients read all four required fields on
    /// SUCCESS, PULL_NOT_FOUND, PULL_RETRY_IMMEDIATELY and PULL_OFFSET_MOVED alike.
    pub struct PullMessageResponseHeader {
        /// 0 for the master, or the id of the slave to pull from next.
        required suggest_which_broker_id: i64 = "suggestWhichBrokerId",
        /// Offset to pull from next.
        required next_begin_offset: i64 = "nextBeginOffset",
        /// Smallest offset in the queue.
        required min_offset: i64 = "minOffset",
        /// Offset after the last message in the queue.
        required max_offset: i64 = "maxOffset",
        /// 5.x static topics.
        optional offset_delta: i64 = "offsetDelta",
        /// Topic sys flag (5.x).
        optional topic_sys_flag: i32 = "topicSysFlag",
        /// Group sys flag (5.x).
        optional group_sys_flag: i32 = "groupSysFlag",
        /// Why the pull was forbidden (5.x).
        optional forbidden_type: i32 = "forbiddenType",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::CommandHeader;
    use crate::{FrameCodec, ProtocolError};
    use bytes::{BufMut, BytesMut};

    #[test]
    fn pull_request_from_a_node_client_frame() {
        // ali-ons puts raw JS numbers in extFields and omits serializeTypeCurrentRPC.
        let header = br#"{"code":11,"language":"JAVA","opaque":12,"flag":0,"version":121,"extFields":{"consumerGroup":"cg","topic":"T","queueId":2,"queueOffset":0,"maxMsgNums":32,"sysFlag":3,"commitOffset":0,"suspendTimeoutMillis":2000,"subscription":"*","subVersion":1700000000000}}"#;
        let mut buf = BytesMut::new();
        buf.put_i32(4 + header.len() as i32);
        buf.put_i32(header.len() as i32);
        buf.put_slice(header);
        let cmd = FrameCodec::default()
            .decode(&mut buf)
            .expect("decodes")
            .expect("whole frame");
        let pull: PullMessageRequestHeader = cmd.decode_header().expect("header");
        assert_eq!(
            pull,
            PullMessageRequestHeader {
                consumer_group: "cg".into(),
                topic: "T".into(),
                queue_id: 2,
                queue_offset: 0,
                max_msg_nums: 32,
                sys_flag: 3,
                commit_offset: 0,
                suspend_timeout_millis: 2000,
                subscription: Some("*".into()),
                sub_version: 1_700_000_000_000,
                ..PullMessageRequestHeader::default()
            }
        );
    }

    #[test]
    fn pull_response_round_trips_and_requires_its_offsets() {
        let header = PullMessageResponseHeader {
            suggest_which_broker_id: 0,
            next_begin_offset: 10,
            min_offset: 0,
            max_offset: 10,
            ..PullMessageResponseHeader::default()
        };
        let mut fields = header.to_ext_fields();
        assert_eq!(fields.len(), 4);
        assert_eq!(
            PullMessageResponseHeader::from_ext_fields(&fields).ok(),
            Some(header)
        );
        fields.remove("maxOffset");
        let err = PullMessageResponseHeader::from_ext_fields(&fields).map(|_| ());
        assert!(
            matches!(
                err,
                Err(ProtocolError::MissingField {
                    field: "maxOffset",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
