//! Deterministic test messages: what `tributary store append` writes and what tests check.

use tributary_store::NewMessage;

/// The body of message `seq` with `size` bytes: a header naming the sequence, then a pattern
/// derived from it, so any byte out of place is detectable.
pub fn body(seq: u64, size: usize) -> Vec<u8> {
    let mut b = format!("seq={seq:020};").into_bytes();
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while b.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(b'a' + (x % 26) as u8);
    }
    b.truncate(size.max(25));
    b
}

/// The sequence number a body names, if it is one of ours.
pub fn seq_of(body: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(body.get(4..24)?).ok()?;
    body.starts_with(b"seq=").then(|| s.parse().ok()).flatten()
}

/// Message `seq` of the generated workload.
pub fn message(topic: &str, queues: i32, seq: u64, size: usize) -> NewMessage {
    let key = format!("key-{seq}");
    let tag = format!("tag-{}", seq % 4);
    NewMessage::new(topic, (seq % queues.max(1) as u64) as i32, body(seq, size))
        .with_properties([("KEYS", key.as_str()), ("TAGS", tag.as_str())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_their_sequence_and_differ() {
        assert_eq!(seq_of(&body(42, 128)), Some(42));
        assert_eq!(body(42, 128).len(), 128);
        assert_ne!(body(1, 64), body(2, 64));
        assert_eq!(seq_of(b"garbage"), None);
    }
}
