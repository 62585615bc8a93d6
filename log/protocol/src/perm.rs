//! Topic and broker permission bits (`PermName`).

/// Ordered (priority) topic.
pub const PRIORITY: i32 = 0x1 << 3;
/// Readable.
pub const READ: i32 = 0x1 << 2;
/// Writable.
pub const WRITE: i32 = 0x1 << 1;
/// Inherited from the template topic.
pub const INHERIT: i32 = 0x1;

/// Whether `perm` allows reading.
pub fn is_readable(perm: i32) -> bool {
    perm & READ == READ
}

/// Whether `perm` allows writing.
pub fn is_writeable(perm: i32) -> bool {
    perm & WRITE == WRITE
}

/// Whether `perm` is inherited.
pub fn is_inherited(perm: i32) -> bool {
    perm & INHERIT == INHERIT
}

/// The Java display form: `R`, `W`, `X` or `-` for read, write and inherit.
pub fn to_display(perm: i32) -> String {
    [(READ, 'R'), (WRITE, 'W'), (INHERIT, 'X')]
        .iter()
        .map(|&(bit, c)| if perm & bit == bit { c } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_and_display() {
        let rw = READ | WRITE;
        assert_eq!(rw, 6);
        assert!(is_readable(rw) && is_writeable(rw) && !is_inherited(rw));
        assert_eq!(to_display(rw), "RW-");
        assert_eq!(to_display(INHERIT), "--X");
    }
}
