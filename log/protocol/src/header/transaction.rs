//! Transaction headers: END_TRANSACTION (37, producer to broker) and CHECK_TRANSACTION_STATE
//! (39, broker to producer).

use super::command_header;

command_header! {
    /// Request header of END_TRANSACTION (usually one-way). `commit_or_rollback` is one of the
    /// transaction types of [`crate::sysflag::message`] (commit 8, rollback 12, not-type 0 for
    /// "unknown").
    pub struct EndTransactionRequestHeader {
        /// Topic (5.x).
        optional topic: String = "topic",
        /// Producer group.
        required producer_group: String = "producerGroup",
        /// Consume queue offset of the half message.
        required tran_state_table_offset: i64 = "tranStateTableOffset",
        /// Commit log offset of the half message.
        required commit_log_offset: i64 = "commitLogOffset",
        /// Transaction type.
        required commit_or_rollback: i32 = "commitOrRollback",
        /// Whether this answers a CHECK_TRANSACTION_STATE.
        optional from_transaction_check: bool = "fromTransactionCheck",
        /// Unique (client) message id.
        required msg_id: String = "msgId",
        /// Transaction id.
        optional transaction_id: String = "transactionId",
    }
}

command_header! {
    /// Request header of CHECK_TRANSACTION_STATE; the body is the half message record.
    pub struct CheckTransactionStateRequestHeader {
        /// Topic (5.x).
        optional topic: String = "topic",
        /// Consume queue offset of the half message.
        required tran_state_table_offset: i64 = "tranStateTableOffset",
        /// Commit log offset of the half message.
        required commit_log_offset: i64 = "commitLogOffset",
        /// Unique (client) message id.
        optional msg_id: String = "msgId",
        /// Transaction id.
        optional transaction_id: String = "transactionId",
        /// Offset message id.
        optional offset_msg_id: String = "offsetMsgId",
    }
}
