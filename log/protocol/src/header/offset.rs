//! Offset headers: QUERY_CONSUMER_OFFSET (14), UPDATE_CONSUMER_OFFSET (15),
//! SEARCH_OFFSET_BY_TIMESTAMP (29), GET_MAX_OFFSET (30), GET_MIN_OFFSET (31) and
//! GET_EARLIEST_MSG_STORETIME (32).

use super::command_header;

command_header! {
    /// Request header of QUERY_CONSUMER_OFFSET. Answer QUERY_NOT_FOUND (22) when the group has
    /// no offset for the queue; clients then apply their consume-from-where policy.
    pub struct QueryConsumerOffsetRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// 5.x: answer offset 0 instead of QUERY_NOT_FOUND.
        optional set_zero_if_not_found: bool = "setZeroIfNotFound",
    }
}

command_header! {
    /// Response header of QUERY_CONSUMER_OFFSET.
    pub struct QueryConsumerOffsetResponseHeader {
        /// Committed offset.
        required offset: i64 = "offset",
    }
}

command_header! {
    /// Request header of UPDATE_CONSUMER_OFFSET (often sent one-way). The response has no
    /// header fields.
    pub struct UpdateConsumerOffsetRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// Offset to commit.
        required commit_offset: i64 = "commitOffset",
    }
}

command_header! {
    /// Request header of GET_MAX_OFFSET.
    pub struct GetMaxOffsetRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// 5.x: only count committed (dispatched) messages; default true.
        optional committed: bool = "committed",
    }
}

command_header! {
    /// Response header of GET_MAX_OFFSET.
    pub struct GetMaxOffsetResponseHeader {
        /// Offset after the last message.
        required offset: i64 = "offset",
    }
}

command_header! {
    /// Request header of GET_MIN_OFFSET.
    pub struct GetMinOffsetRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
    }
}

command_header! {
    /// Response header of GET_MIN_OFFSET.
    pub struct GetMinOffsetResponseHeader {
        /// Smallest offset still stored.
        required offset: i64 = "offset",
    }
}

command_header! {
    /// Request header of GET_EARLIEST_MSG_STORETIME.
    pub struct GetEarliestMsgStoretimeRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
    }
}

command_header! {
    /// Response header of GET_EARLIEST_MSG_STORETIME.
    pub struct GetEarliestMsgStoretimeResponseHeader {
        /// Store timestamp of the oldest message, ms.
        required timestamp: i64 = "timestamp",
    }
}

command_header! {
    /// Request header of SEARCH_OFFSET_BY_TIMESTAMP.
    pub struct SearchOffsetRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Queue.
        required queue_id: i32 = "queueId",
        /// Store timestamp to look for, ms.
        required timestamp: i64 = "timestamp",
        /// 5.x: `lower` or `upper` (Java `BoundaryType`); default lower.
        optional boundary_type: String = "boundaryType",
    }
}

command_header! {
    /// Response header of SEARCH_OFFSET_BY_TIMESTAMP.
    pub struct SearchOffsetResponseHeader {
        /// The offset found.
        required offset: i64 = "offset",
    }
}
