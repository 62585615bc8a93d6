//! Offset reset headers: INVOKE_BROKER_TO_RESET_OFFSET (222, admin to broker) and
//! RESET_CONSUMER_CLIENT_OFFSET (220, broker to each online consumer of the group), both
//! Java's `ResetOffsetRequestHeader`. The new offsets travel in a
//! [`crate::body::ResetOffsetBody`].

use super::command_header;

command_header! {
    /// Request header of INVOKE_BROKER_TO_RESET_OFFSET and RESET_CONSUMER_CLIENT_OFFSET.
    pub struct ResetOffsetRequestHeader {
        /// Topic whose queues are reset.
        required topic: String = "topic",
        /// Consumer group.
        required group: String = "group",
        /// Store time (ms) to reset to: each queue resumes at its first message stored at or
        /// after it; -1 means the end of each queue.
        required timestamp: i64 = "timestamp",
        /// Reset even where the group's offset is already before the target (the
        /// Java broker otherwise only moves offsets back).
        optional is_force: bool = "isForce",
        /// 5.x: one queue only (-1 or absent: every queue).
        optional queue_id: i32 = "queueId",
        /// 5.x: with `queue_id`, the exact offset to reset to.
        optional offset: i64 = "offset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::ExtFields;
    use crate::header::CommandHeader;

    #[test]
    fn reads_java_fields() {
        let mut fields = ExtFields::new();
        for (k, v) in [
            ("topic", "T"),
            ("group", "g"),
            ("timestamp", "1700000000000"),
            ("isForce", "true"),
            ("queueId", "-1"),
        ] {
            fields.insert(k, v);
        }
        let h = ResetOffsetRequestHeader::from_ext_fields(&fields).expect("decodes");
        assert_eq!(
            h,
            ResetOffsetRequestHeader {
                topic: "T".into(),
                group: "g".into(),
                timestamp: 1_700_000_000_000,
                is_force: Some(true),
                queue_id: Some(-1),
                offset: None,
            }
        );
        assert_eq!(
            ResetOffsetRequestHeader::from_ext_fields(&h.to_ext_fields()).expect("decodes"),
            h
        );
        fields.remove("timestamp");
        assert!(ResetOffsetRequestHeader::from_ext_fields(&fields).is_err());
    }
}
