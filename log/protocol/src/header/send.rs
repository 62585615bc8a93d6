//! Headers of SEND_MESSAGE (10), SEND_MESSAGE_V2 (310), SEND_BATCH_MESSAGE (320),
//! SEND_REPLY_MESSAGE(_V2) (324/325) and CONSUMER_SEND_MSG_BACK (36).

use super::{CommandHeader, command_header};
use crate::codes::request;
use crate::command::RemotingCommand;
use crate::error::ProtocolError;

command_header! {
    /// Request header of SEND_MESSAGE and SEND_REPLY_MESSAGE, with full field names.
    pub struct SendMessageRequestHeader {
        /// Producer group.
        required producer_group: String = "producerGroup",
        /// Target topic.
        required topic: String = "topic",
        /// Template topic for auto-creation (`TBW102`).
        required default_topic: String = "defaultTopic",
        /// Queue count for an auto-created topic.
        required default_topic_queue_nums: i32 = "defaultTopicQueueNums",
        /// Target queue.
        required queue_id: i32 = "queueId",
        /// Message sys flag (see [`crate::sysflag::message`]).
        required sys_flag: i32 = "sysFlag",
        /// Client timestamp, ms.
        required born_timestamp: i64 = "bornTimestamp",
        /// User flag.
        required flag: i32 = "flag",
        /// Properties string (see [`crate::message::decode_properties`]).
        optional properties: String = "properties",
        /// Times consumed so far (retry topics).
        optional reconsume_times: i32 = "reconsumeTimes",
        /// Unit mode.
        optional unit_mode: bool = "unitMode",
        /// Whether the body is a batch.
        optional batch: bool = "batch",
        /// Maximum retries before the dead-letter queue.
        optional max_reconsume_times: i32 = "maxReconsumeTimes",
        /// Broker name (`bname` of 5.x `RpcRequestHeader`).
        optional broker_name: String = "bname",
    }
}

command_header! {
    /// Request header of SEND_MESSAGE_V2, SEND_BATCH_MESSAGE and SEND_REPLY_MESSAGE_V2: the
    /// same fields as [`SendMessageRequestHeader`] under one-letter names. Convert with
    /// `From`.
    pub struct SendMessageRequestHeaderV2 {
        /// producerGroup
        required a: String = "a",
        /// topic
        required b: String = "b",
        /// defaultTopic
        required c: String = "c",
        /// defaultTopicQueueNums
        required d: i32 = "d",
        /// queueId
        required e: i32 = "e",
        /// sysFlag
        required f: i32 = "f",
        /// bornTimestamp
        required g: i64 = "g",
        /// flag
        required h: i32 = "h",
        /// properties
        optional i: String = "i",
        /// reconsumeTimes
        optional j: i32 = "j",
        /// unitMode
        optional k: bool = "k",
        /// maxReconsumeTimes
        optional l: i32 = "l",
        /// batch
        optional m: bool = "m",
        /// brokerName
        optional n: String = "n",
    }
}

impl From<SendMessageRequestHeaderV2> for SendMessageRequestHeader {
    fn from(v2: SendMessageRequestHeaderV2) -> Self {
        Self {
            producer_group: v2.a,
            topic: v2.b,
            default_topic: v2.c,
            default_topic_queue_nums: v2.d,
            queue_id: v2.e,
            sys_flag: v2.f,
            born_timestamp: v2.g,
            flag: v2.h,
            properties: v2.i,
            reconsume_times: v2.j,
            unit_mode: v2.k,
            max_reconsume_times: v2.l,
            batch: v2.m,
            broker_name: v2.n,
        }
    }
}

impl From<SendMessageRequestHeader> for SendMessageRequestHeaderV2 {
    fn from(v1: SendMessageRequestHeader) -> Self {
        Self {
            a: v1.producer_group,
            b: v1.topic,
            c: v1.default_topic,
            d: v1.default_topic_queue_nums,
            e: v1.queue_id,
            f: v1.sys_flag,
            g: v1.born_timestamp,
            h: v1.flag,
            i: v1.properties,
            j: v1.reconsume_times,
            k: v1.unit_mode,
            l: v1.max_reconsume_times,
            m: v1.batch,
            n: v1.broker_name,
        }
    }
}

impl SendMessageRequestHeader {
    /// Reads the send header of any send request, choosing the short (V2) names for
    /// SEND_MESSAGE_V2, SEND_BATCH_MESSAGE and SEND_REPLY_MESSAGE_V2 as the Java broker does,
    /// and the full names otherwise.
    pub fn from_command(command: &RemotingCommand) -> Result<Self, ProtocolError> {
        match command.code {
            request::SEND_MESSAGE_V2
            | request::SEND_BATCH_MESSAGE
            | request::SEND_REPLY_MESSAGE_V2 => {
                SendMessageRequestHeaderV2::from_ext_fields(&command.ext_fields).map(Self::from)
            }
            _ => Self::from_ext_fields(&command.ext_fields),
        }
    }
}

command_header! {
    /// Response header of the send requests. Java clients require `msgId`, `queueId` and
    /// `queueOffset` on every SUCCESS / FLUSH_*_TIMEOUT / SLAVE_NOT_AVAILABLE response.
    pub struct SendMessageResponseHeader {
        /// Offset message id (store host + commit log offset), see [`crate::message::OffsetMessageId`].
        required msg_id: String = "msgId",
        /// Queue the message went to.
        required queue_id: i32 = "queueId",
        /// Logical offset in that queue (of the first message, for a batch).
        required queue_offset: i64 = "queueOffset",
        /// Transaction id, for transactional half messages.
        optional transaction_id: String = "transactionId",
        /// Unique ids of a batch, comma-separated (5.x).
        optional batch_uniq_id: String = "batchUniqId",
        /// Recall handle (5.x).
        optional recall_handle: String = "recallHandle",
    }
}

command_header! {
    /// Request header of CONSUMER_SEND_MSG_BACK (36): a consumer returns a message for retry.
    pub struct ConsumerSendMsgBackRequestHeader {
        /// Commit log offset of the message.
        required offset: i64 = "offset",
        /// Consumer group.
        required group: String = "group",
        /// Delay level for the retry; 0 lets the broker choose, negative sends to the DLQ.
        required delay_level: i32 = "delayLevel",
        /// Message id of the original message.
        optional origin_msg_id: String = "originMsgId",
        /// Original topic.
        optional origin_topic: String = "originTopic",
        /// Unit mode.
        optional unit_mode: bool = "unitMode",
        /// Maximum retries before the dead-letter queue.
        optional max_reconsume_times: i32 = "maxReconsumeTimes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::test_fields as fields;

    /// Each short name of the Java class, with the full name it stands for.
    const V2_NAMES: [(&str, &str); 14] = [
        ("a", "producerGroup"),
        ("b", "topic"),
        ("c", "defaultTopic"),
        ("d", "defaultTopicQueueNums"),
        ("e", "queueId"),
        ("f", "sysFlag"),
        ("g", "bornTimestamp"),
        ("h", "flag"),
        ("i", "properties"),
        ("j", "reconsumeTimes"),
        ("k", "unitMode"),
        ("l", "maxReconsumeTimes"),
        ("m", "batch"),
        ("n", "bname"),
    ];

    #[test]
    fn v2_letters_map_to_full_names() {
        let values = [
            "pg",
            "TopicA",
            "TBW102",
            "4",
            "3",
            "0",
            "1700000000000",
            "0",
            "KEYS\u{1}k\u{2}",
            "2",
            "true",
            "16",
            "false",
            "broker-a",
        ];
        let short = fields(
            &V2_NAMES
                .iter()
                .zip(values)
                .map(|((s, _), v)| (*s, v))
                .collect::<Vec<_>>(),
        );
        let long = fields(
            &V2_NAMES
                .iter()
                .zip(values)
                .map(|((_, l), v)| (*l, v))
                .collect::<Vec<_>>(),
        );
        let via_v2 = SendMessageRequestHeader::from(
            SendMessageRequestHeaderV2::from_ext_fields(&short).expect("v2 decodes"),
        );
        let direct = SendMessageRequestHeader::from_ext_fields(&long).expect("v1 decodes");
        assert_eq!(via_v2, direct);
        assert_eq!(direct.to_ext_fields(), long);
        assert_eq!(
            SendMessageRequestHeaderV2::from(direct).to_ext_fields(),
            short
        );
    }

    #[test]
    fn from_command_picks_the_naming_by_code() {
        let short = fields(&[
            ("a", "pg"),
            ("b", "T"),
            ("c", "TBW102"),
            ("d", "4"),
            ("e", "1"),
            ("f", "0"),
            ("g", "5"),
            ("h", "0"),
        ]);
        for code in [
            request::SEND_MESSAGE_V2,
            request::SEND_BATCH_MESSAGE,
            request::SEND_REPLY_MESSAGE_V2,
        ] {
            let mut cmd = RemotingCommand::new_request(code, 1);
            cmd.ext_fields = short.clone();
            let header = SendMessageRequestHeader::from_command(&cmd).expect("decodes");
            assert_eq!(
                (header.topic.as_str(), header.queue_id),
                ("T", 1),
                "code {code}"
            );
        }
        let mut v1 = RemotingCommand::new_request(request::SEND_MESSAGE, 1);
        v1.ext_fields = short;
        let err = SendMessageRequestHeader::from_command(&v1).map(|_| ());
        assert!(
            matches!(
                err,
                Err(ProtocolError::MissingField {
                    field: "producerGroup",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
