//! Bits of a message's sys flag (RocketMQ's `MessageSysFlag`), carried in send headers and in
//! every stored record.

/// Body is compressed (zlib unless a compression type is set).
pub const COMPRESSED: i32 = 0x1;
/// TAGS holds several tags.
pub const MULTI_TAGS: i32 = 0x1 << 1;
/// Not a transactional message (transaction type 0).
pub const TRANSACTION_NOT_TYPE: i32 = 0;
/// Transactional half message.
pub const TRANSACTION_PREPARED: i32 = 0x1 << 2;
/// Transaction commit.
pub const TRANSACTION_COMMIT: i32 = 0x2 << 2;
/// Transaction rollback.
pub const TRANSACTION_ROLLBACK: i32 = 0x3 << 2;
/// Mask of the transaction type bits.
pub const TRANSACTION_TYPE_MASK: i32 = 0x3 << 2;
/// Born host is IPv6 (20-byte host field in the stored record).
pub const BORNHOST_V6: i32 = 0x1 << 4;
/// Store host is IPv6.
pub const STOREHOST_V6: i32 = 0x1 << 5;
/// 5.x: the body needs unwrapping.
pub const NEED_UNWRAP: i32 = 0x1 << 6;
/// 5.x: inner batch.
pub const INNER_BATCH: i32 = 0x1 << 7;
/// Compression type LZ4 (5.x).
pub const COMPRESSION_LZ4: i32 = 0x1 << 8;
/// Compression type ZSTD (5.x).
pub const COMPRESSION_ZSTD: i32 = 0x2 << 8;
/// Compression type ZLIB (5.x; also what a bare COMPRESSED flag means).
pub const COMPRESSION_ZLIB: i32 = 0x3 << 8;
/// Mask of the compression type bits.
pub const COMPRESSION_TYPE_MASK: i32 = 0x7 << 8;

/// The transaction type bits of `flag`.
#[inline]
pub fn transaction_type(flag: i32) -> i32 {
    flag & TRANSACTION_TYPE_MASK
}

/// Whether a message with this flag is one consumers see: not transactional, or a commit.
/// Only those take a queue offset and a consume-queue unit (a half message and a rollback
/// stay in the commit log only, as in RocketMQ's `CommitLog` and `ConsumeQueue` dispatch), and
/// only those are held back by a delay.
#[inline]
pub fn is_consumable(flag: i32) -> bool {
    matches!(
        transaction_type(flag),
        TRANSACTION_NOT_TYPE | TRANSACTION_COMMIT
    )
}

/// `flag` with its transaction type replaced by `kind`.
pub fn with_transaction_type(flag: i32, kind: i32) -> i32 {
    (flag & !TRANSACTION_TYPE_MASK) | (kind & TRANSACTION_TYPE_MASK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_type_replaces_only_its_bits() {
        let flag = MULTI_TAGS | TRANSACTION_PREPARED;
        let committed = with_transaction_type(flag, TRANSACTION_COMMIT);
        assert_eq!(transaction_type(committed), TRANSACTION_COMMIT);
        assert_eq!(committed & MULTI_TAGS, MULTI_TAGS);
    }

    #[test]
    fn only_plain_and_committed_messages_are_consumable() {
        let kinds = [
            (TRANSACTION_NOT_TYPE, true),
            (TRANSACTION_PREPARED, false),
            (TRANSACTION_COMMIT, true),
            (TRANSACTION_ROLLBACK, false),
        ];
        for (kind, consumable) in kinds {
            assert_eq!(is_consumable(MULTI_TAGS | kind), consumable, "{kind:#x}");
        }
    }
}
