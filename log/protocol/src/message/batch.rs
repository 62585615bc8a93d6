//! The SEND_BATCH_MESSAGE body: messages concatenated in the layout of Java's
//! `MessageDecoder.encodeMessage`, big-endian:
//!
//! | field | size |
//! |---|---|
//! | total size | i32 (of this message, itself included) |
//! | magic code | i32 (clients write 0) |
//! | body CRC | i32 (clients write 0) |
//! | flag | i32 |
//! | body | i32 length + bytes |
//! | properties | i16 length + UTF-8 properties string |
//!
//! Topic, queue and sys flag come from the request header, shared by the whole batch.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{Properties, decode_properties, encode_properties};
use crate::error::ProtocolError;

/// Fixed bytes of one message: four i32 fields, the body length and the properties length.
const FIXED_LEN: usize = 4 * 5 + 2;

/// One message of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchMessage {
    /// User flag.
    pub flag: i32,
    /// Body.
    pub body: Bytes,
    /// Properties (including TAGS, KEYS, UNIQ_KEY, WAIT…).
    pub properties: Properties,
}

/// Splits a batch body into its messages. Like the Java broker, the total-size field is not
/// trusted: each message is read field by field, and every length is checked against the bytes
/// that remain. Message bodies share `body`'s memory.
pub fn decode_batch(body: &Bytes) -> Result<Vec<BatchMessage>, ProtocolError> {
    let mut rest = body.clone();
    let mut messages = Vec::new();
    while rest.has_remaining() {
        let position = body.len() - rest.len();
        let index = messages.len();
        let error = |reason: String| ProtocolError::InvalidMessageBatch {
            index,
            position,
            reason,
        };
        if rest.len() < FIXED_LEN {
            return Err(error(format!(
                "{} bytes left, a message needs at least {FIXED_LEN}",
                rest.len()
            )));
        }
        let _total_size = rest.get_i32();
        let _magic_code = rest.get_i32();
        let _body_crc = rest.get_i32();
        let flag = rest.get_i32();
        let body_len = rest.get_i32();
        let body_len = usize::try_from(body_len)
            .ok()
            .filter(|&n| n + 2 <= rest.len())
            .ok_or_else(|| {
                error(format!(
                    "body length {body_len} exceeds the {} bytes left",
                    rest.len()
                ))
            })?;
        let message_body = rest.split_to(body_len);
        let properties_len = rest.get_i16();
        let properties_len = usize::try_from(properties_len)
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| {
                error(format!(
                    "properties length {properties_len} exceeds the {} bytes left",
                    rest.len()
                ))
            })?;
        let properties_bytes = rest.split_to(properties_len);
        let properties = decode_properties(&String::from_utf8_lossy(&properties_bytes));
        messages.push(BatchMessage {
            flag,
            body: message_body,
            properties,
        });
    }
    Ok(messages)
}

/// Appends `messages` to `out` as a batch body. Fails, leaving `out` as it was, when a
/// message's properties exceed 32767 bytes or its size overflows an i32.
pub fn encode_batch(messages: &[BatchMessage], out: &mut BytesMut) -> Result<(), ProtocolError> {
    let start = out.len();
    for (index, message) in messages.iter().enumerate() {
        let properties = encode_properties(&message.properties);
        let too_large = |reason: String| ProtocolError::MessageTooLarge { index, reason };
        let total = FIXED_LEN + message.body.len() + properties.len();
        let sizes = i16::try_from(properties.len())
            .map_err(|_| {
                too_large(format!(
                    "properties take {} bytes, the limit is {}",
                    properties.len(),
                    i16::MAX
                ))
            })
            .and_then(
                |p| match (i32::try_from(message.body.len()), i32::try_from(total)) {
                    (Ok(b), Ok(t)) => Ok((p, b, t)),
                    _ => Err(too_large(format!("{total} bytes do not fit an i32 size"))),
                },
            );
        let (properties_len, body_len, total) = match sizes {
            Ok(sizes) => sizes,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        };
        out.reserve(FIXED_LEN + message.body.len() + properties.len());
        out.put_i32(total);
        out.put_i32(0);
        out.put_i32(0);
        out.put_i32(message.flag);
        out.put_i32(body_len);
        out.put_slice(&message.body);
        out.put_i16(properties_len);
        out.put_slice(properties.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::property;

    fn message(flag: i32, body: &[u8], props: &[(&str, &str)]) -> BatchMessage {
        BatchMessage {
            flag,
            body: Bytes::copy_from_slice(body),
            properties: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn batch_round_trip() {
        let messages = vec![
            message(
                0,
                b"hello",
                &[(property::TAGS, "TagA"), (property::KEYS, "k1")],
            ),
            message(7, b"", &[]),
            message(
                -1,
                "ünïcødé".as_bytes(),
                &[(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, "AB")],
            ),
        ];
        let mut out = BytesMut::new();
        encode_batch(&messages, &mut out).expect("encodes");
        let first_total = i32::from_be_bytes([out[0], out[1], out[2], out[3]]);
        assert_eq!(
            first_total as usize,
            FIXED_LEN + 5 + "KEYS\u{1}k1\u{2}TAGS\u{1}TagA\u{2}".len()
        );
        assert_eq!(decode_batch(&out.freeze()).ok(), Some(messages));
    }

    #[test]
    fn java_encoded_message_decodes() {
        // One message as Java's encodeMessage writes it: flag 3, body "ab", TAGS=t.
        let mut raw = BytesMut::new();
        raw.put_i32(22 + 2 + 7);
        raw.put_i32(0);
        raw.put_i32(0);
        raw.put_i32(3);
        raw.put_i32(2);
        raw.put_slice(b"ab");
        raw.put_i16(7);
        raw.put_slice(b"TAGS\x01t\x02");
        let decoded = decode_batch(&raw.freeze()).expect("decodes");
        assert_eq!(decoded, vec![message(3, b"ab", &[("TAGS", "t")])]);
    }

    #[test]
    fn malformed_batches_are_errors() {
        let mut good = BytesMut::new();
        encode_batch(&[message(0, b"body", &[("A", "b")])], &mut good).expect("encodes");
        let good = good.freeze();
        let mut negative_body = BytesMut::from(&good[..]);
        negative_body[16..20].copy_from_slice(&(-1i32).to_be_bytes());
        let mut huge_props = BytesMut::from(&good[..]);
        let at = 20 + 4;
        huge_props[at..at + 2].copy_from_slice(&i16::MAX.to_be_bytes());
        let cases: Vec<(&str, Bytes)> = vec![
            ("truncated fixed part", good.slice(..10)),
            ("truncated properties", good.slice(..good.len() - 1)),
            ("negative body length", negative_body.freeze()),
            ("properties past the end", huge_props.freeze()),
        ];
        for (what, bytes) in cases {
            let result = decode_batch(&bytes);
            assert!(
                matches!(
                    result,
                    Err(ProtocolError::InvalidMessageBatch { index: 0, .. })
                ),
                "{what}: {result:?}"
            );
        }
        assert_eq!(decode_batch(&Bytes::new()).ok(), Some(vec![]));
    }

    #[test]
    fn oversized_properties_are_refused() {
        let long = "x".repeat(40_000);
        let mut out = BytesMut::from(&b"keep"[..]);
        let result = encode_batch(&[message(0, b"", &[("A", long.as_str())])], &mut out);
        assert!(
            matches!(result, Err(ProtocolError::MessageTooLarge { index: 0, .. })),
            "{result:?}"
        );
        assert_eq!(&out[..], b"keep");
    }
}
