//! Bit flags carried in `sysFlag` fields.

/// Bits of [`crate::header::PullMessageRequestHeader::sys_flag`] (`PullSysFlag`).
pub mod pull {
    /// The request carries a consumer offset to commit (`commitOffset`).
    pub const COMMIT_OFFSET: i32 = 0x1;
    /// The broker may hold the request (long polling) for `suspendTimeoutMillis`.
    pub const SUSPEND: i32 = 0x1 << 1;
    /// The request carries its subscription expression; otherwise the broker uses the one
    /// registered by heartbeat.
    pub const SUBSCRIPTION: i32 = 0x1 << 2;
    /// Class filter mode (filter server, removed in 5.x).
    pub const CLASS_FILTER: i32 = 0x1 << 3;
    /// Lite pull consumer.
    pub const LITE_PULL: i32 = 0x1 << 4;

    /// Builds a pull sys flag.
    pub fn build(
        commit_offset: bool,
        suspend: bool,
        subscription: bool,
        class_filter: bool,
    ) -> i32 {
        let mut flag = 0;
        for (set, bit) in [
            (commit_offset, COMMIT_OFFSET),
            (suspend, SUSPEND),
            (subscription, SUBSCRIPTION),
            (class_filter, CLASS_FILTER),
        ] {
            if set {
                flag |= bit;
            }
        }
        flag
    }

    /// Whether `bit` is set in `flag`.
    pub fn has(flag: i32, bit: i32) -> bool {
        flag & bit == bit
    }

    /// `flag` without the commit-offset bit (the broker clears it when it will not commit,
    /// e.g. on a slave).
    pub fn clear_commit_offset(flag: i32) -> i32 {
        flag & !COMMIT_OFFSET
    }
}

/// Bits of a message's sys flag (`MessageSysFlag`), in send headers and stored records.
pub mod message {
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
    pub fn transaction_type(flag: i32) -> i32 {
        flag & TRANSACTION_TYPE_MASK
    }

    /// `flag` with its transaction type replaced by `kind`.
    pub fn with_transaction_type(flag: i32, kind: i32) -> i32 {
        (flag & !TRANSACTION_TYPE_MASK) | (kind & TRANSACTION_TYPE_MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_flags_compose() {
        let flag = pull::build(true, true, false, false);
        assert_eq!(flag, 0b11);
        assert!(pull::has(flag, pull::SUSPEND));
        assert!(!pull::has(flag, pull::SUBSCRIPTION));
        assert_eq!(pull::clear_commit_offset(flag), pull::SUSPEND);
    }

    #[test]
    fn transaction_type_replaces_only_its_bits() {
        let flag = message::MULTI_TAGS | message::TRANSACTION_PREPARED;
        let committed = message::with_transaction_type(flag, message::TRANSACTION_COMMIT);
        assert_eq!(
            message::transaction_type(committed),
            message::TRANSACTION_COMMIT
        );
        assert_eq!(committed & message::MULTI_TAGS, message::MULTI_TAGS);
    }
}
