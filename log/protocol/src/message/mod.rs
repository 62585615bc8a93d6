//! Message helpers shared by broker and clients: property names and the properties string,
//! the SEND_BATCH_MESSAGE body, and offset message ids.

mod batch;
mod id;

pub use batch::{BatchMessage, decode_batch, encode_batch};
pub use id::OffsetMessageId;
pub use tributary_common::property;
pub use tributary_common::property::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
pub use tributary_common::record::encode_properties;

use std::collections::BTreeMap;

/// Message properties by name.
pub type Properties = BTreeMap<String, String>;

/// Decodes a properties string the way Java does: properties are separated by `\x02` (the
/// last one may or may not be terminated), the name ends at the first `\x01`, and a property
/// with an empty name or an empty value is skipped. Never fails; the last duplicate wins.
pub fn decode_properties(text: &str) -> Properties {
    text.split(PROPERTY_SEPARATOR)
        .filter_map(|entry| entry.split_once(NAME_VALUE_SEPARATOR))
        .filter(|(name, value)| !name.is_empty() && !value.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn properties_decode_like_java() {
        let cases: [(&str, &[(&str, &str)]); 9] = [
            ("", &[]),
            (
                "KEYS\u{1}k1 k2\u{2}TAGS\u{1}TagA\u{2}",
                &[("KEYS", "k1 k2"), ("TAGS", "TagA")],
            ),
            (
                "KEYS\u{1}k\u{2}TAGS\u{1}TagA",
                &[("KEYS", "k"), ("TAGS", "TagA")],
            ),
            ("\u{2}\u{2}A\u{1}b\u{2}", &[("A", "b")]),
            ("A\u{1}\u{2}B\u{1}x", &[("B", "x")]),
            ("\u{1}v\u{2}", &[]),
            ("noseparator", &[]),
            ("A\u{1}b\u{1}c\u{2}", &[("A", "b\u{1}c")]),
            ("A\u{1}1\u{2}A\u{1}2\u{2}", &[("A", "2")]),
        ];
        for (text, expect) in cases {
            assert_eq!(decode_properties(text), props(expect), "{text:?}");
        }
    }

    #[test]
    fn properties_round_trip() {
        let p = props(&[("KEYS", "a b"), ("UNIQ_KEY", "0A0B"), ("WAIT", "true")]);
        let text = encode_properties(&p);
        assert_eq!(
            text,
            "KEYS\u{1}a b\u{2}UNIQ_KEY\u{1}0A0B\u{2}WAIT\u{1}true\u{2}"
        );
        assert_eq!(decode_properties(&text), p);
    }
}
