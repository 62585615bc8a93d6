//! The body of INVOKE_BROKER_TO_RESET_OFFSET (222, its answer) and
//! RESET_CONSUMER_CLIENT_OFFSET (220, broker to client): Java's `ResetOffsetBody`, a
//! `Map<MessageQueue, Long>` of new offsets.
//!
//! fastjson writes a map with object keys as the objects themselves, which is not JSON:
//! `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:5}}`. Java clients read only
//! that form and the Go client splits it as text, so [`ResetOffsetBody::encode`] writes
//! exactly it (compact, fields in fastjson's alphabetical order). Decoding also accepts Gson's
//! form (`[[{queue}, 5], ...]`) and keys written as JSON strings.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use bytes::Bytes;
use serde::Deserialize;

use super::MessageQueue;
use crate::error::ProtocolError;

const NAME: &str = "ResetOffsetBody";

/// New offsets per queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResetOffsetBody {
    /// Queue to the offset its consumers resume at.
    pub offset_table: BTreeMap<MessageQueue, i64>,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(default, rename = "offsetTable")]
    offset_table: Option<serde_json::Value>,
}

fn invalid(reason: String) -> ProtocolError {
    ProtocolError::InvalidBody {
        body: NAME,
        source: <serde_json::Error as serde::de::Error>::custom(reason),
    }
}

impl ResetOffsetBody {
    /// Decodes fastjson's form (object keys), Gson's (pairs) or string keys.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let text = std::str::from_utf8(body)
            .map_err(|source| ProtocolError::BodyNotUtf8 { body: NAME, source })?;
        let text = quote_object_keys(text);
        let wire: Wire = serde_json::from_str(&text)
            .map_err(|source| ProtocolError::InvalidBody { body: NAME, source })?;
        let mut offset_table = BTreeMap::new();
        let offset = |v: &serde_json::Value| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or_else(|| invalid(format!("offset {v} is not an integer")))
        };
        let queue = |v: serde_json::Value| {
            serde_json::from_value::<MessageQueue>(v)
                .map_err(|source| ProtocolError::InvalidBody { body: NAME, source })
        };
        match wire.offset_table {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(map)) => {
                for (key, value) in map {
                    let mq: MessageQueue = serde_json::from_str(&key)
                        .map_err(|source| ProtocolError::InvalidBody { body: NAME, source })?;
                    offset_table.insert(mq, offset(&value)?);
                }
            }
            Some(serde_json::Value::Array(pairs)) => {
                for pair in pairs {
                    let serde_json::Value::Array(mut kv) = pair else {
                        return Err(invalid(format!("{pair} is not a [queue, offset] pair")));
                    };
                    if kv.len() != 2 {
                        return Err(invalid("a pair has not 2 elements".into()));
                    }
                    let value = kv.pop().unwrap_or_default();
                    let key = kv.pop().unwrap_or_default();
                    offset_table.insert(queue(key)?, offset(&value)?);
                }
            }
            Some(other) => return Err(invalid(format!("offsetTable {other} is not a map"))),
        }
        Ok(Self { offset_table })
    }

    /// Encodes in fastjson's form, which every client reads.
    pub fn encode(&self) -> Result<Bytes, ProtocolError> {
        let mut out = String::from(r#"{"offsetTable":{"#);
        for (i, (mq, offset)) in self.offset_table.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let broker = serde_json::to_string(&mq.broker_name)
                .map_err(|source| ProtocolError::BodyEncode { body: NAME, source })?;
            let topic = serde_json::to_string(&mq.topic)
                .map_err(|source| ProtocolError::BodyEncode { body: NAME, source })?;
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                r#"{{"brokerName":{broker},"queueId":{},"topic":{topic}}}:{offset}"#,
                mq.queue_id
            );
        }
        out.push_str("}}");
        Ok(Bytes::from(out))
    }
}

/// Turns object keys (fastjson's form of a map keyed by an object) into JSON strings holding
/// the object's text, so that a standard parser reads the document. Arrays and string
/// contents are never touched; the input is returned borrowed when there is nothing to do.
fn quote_object_keys(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    // Innermost container: true for an object.
    let mut in_object: Vec<bool> = Vec::new();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'[' => in_object.push(false),
            b']' | b'}' => {
                in_object.pop();
            }
            c @ (b'{' | b',') => {
                if c == b'{' {
                    in_object.push(true);
                }
                if in_object.last() == Some(&true) {
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if bytes.get(j) == Some(&b'{') {
                        let end = skip_object(bytes, j);
                        let buf = out.get_or_insert_with(|| String::with_capacity(json.len() + 64));
                        buf.push_str(&json[copied..j]);
                        let key = serde_json::Value::String(json[j..end].to_owned()).to_string();
                        buf.push_str(&key);
                        copied = end;
                        i = end;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut buf) => {
            buf.push_str(&json[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// The index after the string starting at `start` (a `"`), or the end of the input.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the object starting at `start` (a `{`), or the end of the input.
fn skip_object(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i = skip_string(bytes, i);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(topic: &str, broker: &str, queue_id: i32) -> MessageQueue {
        MessageQueue {
            topic: topic.into(),
            broker_name: broker.into(),
            queue_id,
        }
    }

    fn body() -> ResetOffsetBody {
        ResetOffsetBody {
            offset_table: [(mq("T", "broker-a", 0), 5), (mq("T", "broker-a", 1), 0)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn encodes_as_fastjson_does() {
        assert_eq!(
            &body().encode().expect("encodes")[..],
            br#"{"offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5,{"brokerName":"broker-a","queueId":1,"topic":"T"}:0}}"#
        );
        assert_eq!(
            &ResetOffsetBody::default().encode().expect("encodes")[..],
            br#"{"offsetTable":{}}"#
        );
    }

    #[test]
    fn decodes_fastjson_gson_and_string_keys() {
        let forms: [&[u8]; 5] = [
            &body().encode().expect("encodes"),
            // fastjson with spaces and fields in another order.
            br#"{ "offsetTable" : { {"topic":"T","queueId":1,"brokerName":"broker-a"} : 0 ,
                 {"queueId":0,"brokerName":"broker-a","topic":"T"}:5 } }"#,
            // Gson: pairs.
            br#"{"offsetTable":[[{"brokerName":"broker-a","queueId":0,"topic":"T"},5],[{"brokerName":"broker-a","queueId":1,"topic":"T"},0]]}"#,
            // Keys as strings, offsets as strings.
            br#"{"offsetTable":{"{\"brokerName\":\"broker-a\",\"queueId\":0,\"topic\":\"T\"}":"5","{\"brokerName\":\"broker-a\",\"queueId\":1,\"topic\":\"T\"}":0}}"#,
            // Tricky characters inside strings.
            br#"{"x":"{,{","offsetTable":{{"brokerName":"broker-a","queueId":0,"topic":"T"}:5,{"brokerName":"broker-a","queueId":1,"topic":"T"}:0},"y":[{"a":1},{"b":2}]}"#,
        ];
        for form in forms {
            assert_eq!(
                ResetOffsetBody::decode(form).expect("decodes"),
                body(),
                "{}",
                String::from_utf8_lossy(form)
            );
        }
        let odd = mq("a\"b{c}", "b,{x}", 3);
        let body = ResetOffsetBody {
            offset_table: [(odd, 9)].into_iter().collect(),
        };
        assert_eq!(
            ResetOffsetBody::decode(&body.encode().expect("encodes")).expect("decodes"),
            body
        );
        assert_eq!(
            ResetOffsetBody::decode(b"{}").expect("decodes"),
            ResetOffsetBody::default()
        );
    }

    #[test]
    fn bad_bodies_are_errors() {
        for bad in [
            &b"{"[..],
            br#"{"offsetTable":5}"#,
            br#"{"offsetTable":{{"queueId":"x"}:5}}"#,
            br#"{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:"x"}}"#,
            br#"{"offsetTable":[[1]]}"#,
            b"\xff",
        ] {
            assert!(
                ResetOffsetBody::decode(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trips(entries in proptest::collection::vec(
            ("\\PC{0,8}", "\\PC{0,8}", 0i32..64, proptest::num::i64::ANY), 0..6)
        ) {
            let body = ResetOffsetBody {
                offset_table: entries
                    .into_iter()
                    .map(|(t, b, q, o)| (mq(&t, &b, q), o))
                    .collect(),
            };
            let decoded = ResetOffsetBody::decode(&body.encode().expect("encodes"));
            proptest::prop_assert_eq!(decoded.ok(), Some(body));
        }

        #[test]
        fn decoding_garbage_never_panics(text in "[{}\\[\\]\",:0-9a-z ]{0,40}") {
            let _ = ResetOffsetBody::decode(text.as_bytes());
        }
    }
}
