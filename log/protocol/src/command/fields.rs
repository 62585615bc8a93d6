//! [`ExtFields`]: the `extFields` of a command, a small map of strings.
//!
//! Every request and response carries one, so it is on the hot path of every send: a send
//! header has about 14 fields, a send response about 6. Keys and most values are short (`"a"`,
//! `"queueId"`, a topic, a number), so both are [`CompactString`]s, stored inline up to 24
//! bytes: decoding or writing a typed header allocates only for long values such as message
//! properties. The entries live in a vector searched linearly, which for a few dozen short keys
//! is faster than any tree or hash; [`MAX_EXT_FIELDS`] bounds the size a peer can make us
//! search.

use std::fmt;

use compact_str::CompactString;

/// The most `extFields` entries a received header may have. RocketMQ's largest headers have
/// about 30 fields; a frame with more is refused as malformed, so a peer cannot make lookups
/// (linear in the number of fields) arbitrarily slow.
pub const MAX_EXT_FIELDS: usize = 256;

/// The `extFields` map of a command: the string form of its typed header.
///
/// Insertion-ordered, which keeps encodings deterministic; the protocol attaches no meaning to
/// the order, and equality ignores it. Inserting an existing key replaces its value, as Java's
/// `HashMap` does, so the last of duplicate keys in a received header wins.
#[derive(Clone, Default)]
pub struct ExtFields {
    entries: Vec<(CompactString, CompactString)>,
    /// Bit `b % 64` is set when some key starts with byte `b` (bit 0 also for the empty key):
    /// a key whose bit is clear is absent without a search. Keys of one header mostly differ
    /// in their first byte (V2 send headers use `a` to `n`), so writing a typed header into a
    /// fresh map and looking up its absent optional fields search nothing.
    first_bytes: u64,
}

/// The bit of [`ExtFields::first_bytes`] for `key`.
fn first_byte_bit(key: &[u8]) -> u64 {
    1 << (key.first().copied().unwrap_or(0) % 64)
}

impl ExtFields {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty map with room for `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            first_bytes: 0,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.position(key).map(|at| self.entries[at].1.as_str())
    }

    /// Where `key` is.
    fn position(&self, key: &str) -> Option<usize> {
        let key = key.as_bytes();
        if self.first_bytes & first_byte_bit(key) == 0 {
            return None;
        }
        let first = key.first();
        self.entries.iter().position(|(k, _)| {
            let k = k.as_bytes();
            k.first() == first && k == key
        })
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`, returning the value it replaces.
    pub fn insert(
        &mut self,
        key: impl Into<CompactString>,
        value: impl Into<CompactString>,
    ) -> Option<CompactString> {
        let key = key.into();
        let value = value.into();
        match self.position(&key) {
            Some(at) => Some(std::mem::replace(&mut self.entries[at].1, value)),
            None => {
                self.first_bytes |= first_byte_bit(key.as_bytes());
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<CompactString> {
        let at = self.position(key)?;
        let (_, value) = self.entries.remove(at);
        self.first_bytes = self
            .entries
            .iter()
            .fold(0, |bits, (k, _)| bits | first_byte_bit(k.as_bytes()));
        Some(value)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl PartialEq for ExtFields {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl Eq for ExtFields {}

impl fmt::Debug for ExtFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> FromIterator<(K, V)> for ExtFields {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut fields = Self::new();
        fields.extend(iter);
        fields
    }
}

impl<K: Into<CompactString>, V: Into<CompactString>> Extend<(K, V)> for ExtFields {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for ExtFields {
    type Item = (CompactString, CompactString);
    type IntoIter = std::vec::IntoIter<(CompactString, CompactString)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map() {
        let mut fields = ExtFields::new();
        assert_eq!(fields.insert("topic", "A"), None);
        assert_eq!(fields.insert("queueId", "3"), None);
        assert_eq!(fields.insert("topic", "B").as_deref(), Some("A"));
        assert_eq!((fields.len(), fields.get("topic")), (2, Some("B")));
        assert_eq!(fields.get("absent"), None);
        assert_eq!(fields.remove("queueId").as_deref(), Some("3"));
        assert!(!fields.contains_key("queueId"));
        assert_eq!(fields.iter().collect::<Vec<_>>(), [("topic", "B")]);
    }

    #[test]
    fn keys_sharing_a_first_byte_or_its_bit_are_told_apart() {
        // 'a' (97) and '!' (33) share bit 33; "" uses bit 0, as does '@' (64).
        let mut fields = ExtFields::new();
        for (k, v) in [("a", "1"), ("ab", "2"), ("!", "3"), ("", "4"), ("@", "5")] {
            assert_eq!(fields.insert(k, v), None, "{k}");
        }
        for (k, v) in [("a", "1"), ("ab", "2"), ("!", "3"), ("", "4"), ("@", "5")] {
            assert_eq!(fields.get(k), Some(v), "{k}");
        }
        assert_eq!(fields.get("b"), None);
        assert_eq!(fields.get("abc"), None);
        assert_eq!(fields.remove("a").as_deref(), Some("1"));
        assert_eq!(fields.get("ab"), Some("2"));
        assert_eq!(fields.remove("ab").as_deref(), Some("2"));
        assert_eq!((fields.get("a"), fields.get("!")), (None, Some("3")));
        assert_eq!(fields.insert("a", "6"), None);
        assert_eq!(fields.len(), 4);
    }

    #[test]
    fn equality_ignores_order() {
        let a: ExtFields = [("a", "1"), ("b", "2")].into_iter().collect();
        let b: ExtFields = [("b", "2"), ("a", "1")].into_iter().collect();
        let c: ExtFields = [("b", "2"), ("a", "9")].into_iter().collect();
        let d: ExtFields = [("b", "2")].into_iter().collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(d, a);
    }

    #[test]
    fn long_values_round_trip() {
        let long = "UNIQ_KEY\u{1}7F0000014675ECEBBFDF697521E00000\u{2}TAGS\u{1}ü\u{2}";
        let fields: ExtFields = [("i", long)].into_iter().collect();
        assert_eq!(fields.get("i"), Some(long));
    }
}
