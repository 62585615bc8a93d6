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
pub use tributary_common::sysflag as message;

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
}
