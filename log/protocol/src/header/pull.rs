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
