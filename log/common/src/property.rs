//! Message property names (`MessageConst`) and the separators of the properties string
//! (`name\x01value\x02…`), as clients send it and records store it.

/// Declares the property name constants and the list of them all.
macro_rules! properties {
    ($($name:ident = $value:literal,)*) => {
        $( #[allow(missing_docs)] pub const $name: &str = $value; )*

        /// Every property name the Java client and broker define.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

properties! {
    KEYS = "KEYS",
    TAGS = "TAGS",
    WAIT_STORE_MSG_OK = "WAIT",
    DELAY_TIME_LEVEL = "DELAY",
    RETRY_TOPIC = "RETRY_TOPIC",
    REAL_TOPIC = "REAL_TOPIC",
    REAL_QUEUE_ID = "REAL_QID",
    TRANSACTION_PREPARED = "TRAN_MSG",
    PRODUCER_GROUP = "PGROUP",
    MIN_OFFSET = "MIN_OFFSET",
    MAX_OFFSET = "MAX_OFFSET",
    BUYER_ID = "BUYER_ID",
    ORIGIN_MESSAGE_ID = "ORIGIN_MESSAGE_ID",
    TRANSFER_FLAG = "TRANSFER_FLAG",
    CORRECTION_FLAG = "CORRECTION_FLAG",
    MQ2_FLAG = "MQ2_FLAG",
    RECONSUME_TIME = "RECONSUME_TIME",
    MSG_REGION = "MSG_REGION",
    TRACE_SWITCH = "TRACE_ON",
    UNIQ_CLIENT_MESSAGE_ID_KEYIDX = "UNIQ_KEY",
    EXTEND_UNIQ_INFO = "EXTEND_UNIQ_INFO",
    MAX_RECONSUME_TIMES = "MAX_RECONSUME_TIMES",
    CONSUME_START_TIMESTAMP = "CONSUME_START_TIME",
    INNER_NUM = "INNER_NUM",
    INNER_BASE = "INNER_BASE",
    DUP_INFO = "DUP_INFO",
    CHECK_IMMUNITY_TIME_IN_SECONDS = "CHECK_IMMUNITY_TIME_IN_SECONDS",
    TRANSACTION_PREPARED_QUEUE_OFFSET = "TRAN_PREPARED_QUEUE_OFFSET",
    TRANSACTION_ID = "__transactionId__",
    TRANSACTION_CHECK_TIMES = "TRANSACTION_CHECK_TIMES",
    INSTANCE_ID = "INSTANCE_ID",
    CORRELATION_ID = "CORRELATION_ID",
    MESSAGE_REPLY_TO_CLIENT = "REPLY_TO_CLIENT",
    MESSAGE_TTL = "TTL",
    REPLY_MESSAGE_ARRIVE_TIME = "ARRIVE_TIME",
    PUSH_REPLY_TIME = "PUSH_REPLY_TIME",
    CLUSTER = "CLUSTER",
    MESSAGE_TYPE = "MSG_TYPE",
    POP_CK = "POP_CK",
    POP_CK_OFFSET = "POP_CK_OFFSET",
    FIRST_POP_TIME = "1ST_POP_TIME",
    SHARDING_KEY = "__SHARDINGKEY",
    FORWARD_QUEUE_ID = "PROPERTY_FORWARD_QUEUE_ID",
    REDIRECT = "REDIRECT",
    INNER_MULTI_DISPATCH = "INNER_MULTI_DISPATCH",
    INNER_MULTI_QUEUE_OFFSET = "INNER_MULTI_QUEUE_OFFSET",
    TRACE_CONTEXT = "TRACE_CONTEXT",
    TIMER_DELAY_SEC = "TIMER_DELAY_SEC",
    TIMER_DELIVER_MS = "TIMER_DELIVER_MS",
    BORN_HOST = "__BORNHOST",
    BORN_TIMESTAMP = "BORN_TIMESTAMP",
    TIMER_ENQUEUE_MS = "TIMER_ENQUEUE_MS",
    TIMER_DEQUEUE_MS = "TIMER_DEQUEUE_MS",
    TIMER_ROLL_TIMES = "TIMER_ROLL_TIMES",
    TIMER_OUT_MS = "TIMER_OUT_MS",
    TIMER_DEL_UNIQKEY = "TIMER_DEL_UNIQKEY",
    TIMER_DELAY_LEVEL = "TIMER_DELAY_LEVEL",
    TIMER_DELAY_MS = "TIMER_DELAY_MS",
    CRC32 = "__CRC32#",
    DLQ_ORIGIN_TOPIC = "DLQ_ORIGIN_TOPIC",
    DLQ_ORIGIN_MESSAGE_ID = "DLQ_ORIGIN_MESSAGE_ID",
}

/// Prefix of broker-internal properties that are never stored.
pub const TRANSIENT_PREFIX: &str = "__RMQ.TRANSIENT.";
/// Broker-internal: the topic's sys flag.
pub const TRANSIENT_TOPIC_CONFIG: &str = "__RMQ.TRANSIENT.TOPIC_SYS_FLAG";
/// Broker-internal: the group's sys flag.
pub const TRANSIENT_GROUP_CONFIG: &str = "__RMQ.TRANSIENT.GROUP_SYS_FLAG";
/// Separates a property name from its value.
pub const NAME_VALUE_SEPARATOR: char = '\u{1}';
/// Ends each property.
pub const PROPERTY_SEPARATOR: char = '\u{2}';
/// Separator between the keys in [`KEYS`].
pub const KEY_SEPARATOR: &str = " ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_java_strings() {
        let cases = [
            (KEYS, "KEYS"),
            (TAGS, "TAGS"),
            (WAIT_STORE_MSG_OK, "WAIT"),
            (DELAY_TIME_LEVEL, "DELAY"),
            (REAL_QUEUE_ID, "REAL_QID"),
            (TRANSACTION_PREPARED, "TRAN_MSG"),
            (PRODUCER_GROUP, "PGROUP"),
            (UNIQ_CLIENT_MESSAGE_ID_KEYIDX, "UNIQ_KEY"),
            (TRACE_SWITCH, "TRACE_ON"),
            (MESSAGE_REPLY_TO_CLIENT, "REPLY_TO_CLIENT"),
            (MESSAGE_TYPE, "MSG_TYPE"),
            (MESSAGE_TTL, "TTL"),
            (TIMER_DELIVER_MS, "TIMER_DELIVER_MS"),
        ];
        for (name, expect) in cases {
            assert_eq!(name, expect);
        }
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len(), "duplicate property names");
    }
}
