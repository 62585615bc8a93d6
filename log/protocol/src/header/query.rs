//! Headers of QUERY_MESSAGE (12) and VIEW_MESSAGE_BY_ID (33).

use super::command_header;

command_header! {
    /// Request header of QUERY_MESSAGE: messages of `topic` whose key (or unique key) is `key`,
    /// stored between the two timestamps.
    pub struct QueryMessageRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Message key, or unique message id.
        required key: String = "key",
        /// Maximum number of messages.
        required max_num: i32 = "maxNum",
        /// Lower store-time bound, ms.
        required begin_timestamp: i64 = "beginTimestamp",
        /// Upper store-time bound, ms.
        required end_timestamp: i64 = "endTimestamp",
    }
}

command_header! {
    /// Response header of QUERY_MESSAGE. The body is the matching stored records, concatenated.
    pub struct QueryMessageResponseHeader {
        /// Time of the last index update, ms.
        required index_last_update_timestamp: i64 = "indexLastUpdateTimestamp",
        /// Commit log offset of the last indexed record.
        required index_last_update_phyoffset: i64 = "indexLastUpdatePhyoffset",
    }
}

command_header! {
    /// Request header of VIEW_MESSAGE_BY_ID: the stored record at a commit log offset (decoded
    /// from an offset message id). The body of the answer is that record.
    pub struct ViewMessageRequestHeader {
        /// Commit log offset.
        required offset: i64 = "offset",
        /// Topic (5.x).
        optional topic: String = "topic",
    }
}
