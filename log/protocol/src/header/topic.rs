//! Topic administration headers: UPDATE_AND_CREATE_TOPIC (17), DELETE_TOPIC_IN_BROKER (215) and
//! QUERY_TOPICS_BY_CONSUMER (343).

use super::command_header;

command_header! {
    /// Request header of UPDATE_AND_CREATE_TOPIC.
    pub struct CreateTopicRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Template topic (`TBW102`).
        required default_topic: String = "defaultTopic",
        /// Readable queues.
        required read_queue_nums: i32 = "readQueueNums",
        /// Writable queues.
        required write_queue_nums: i32 = "writeQueueNums",
        /// Permission bits (see [`crate::perm`]).
        required perm: i32 = "perm",
        /// `SINGLE_TAG` or `MULTI_TAG`.
        required topic_filter_type: String = "topicFilterType",
        /// Topic sys flag.
        optional topic_sys_flag: i32 = "topicSysFlag",
        /// Ordered topic.
        required order: bool = "order",
        /// 5.x attributes, as `+key=value,…`.
        optional attributes: String = "attributes",
        /// 5.x: overwrite attributes.
        optional force: bool = "force",
    }
}

command_header! {
    /// Request header of DELETE_TOPIC_IN_BROKER.
    pub struct DeleteTopicRequestHeader {
        /// Topic.
        required topic: String = "topic",
    }
}

command_header! {
    /// Request header of QUERY_TOPICS_BY_CONSUMER. The answer carries a
    /// [`crate::body::TopicList`] body.
    pub struct QueryTopicsByConsumerRequestHeader {
        /// Consumer group.
        required group: String = "group",
    }
}
