//! The JSON header, as fastjson writes and reads it for `RemotingCommand`.
//!
//! Decoding is as lenient as the Java broker: fields may be absent (Java defaults apply),
//! `extFields` values may be strings, numbers or booleans (kept in their string form, numbers
//! in decimal), integer fields may be written as strings, `language` may be a name or a
//! number, and unknown keys are ignored. The whole header, `extFields` included, is read in one
//! pass of the parser, with no intermediate tree. Encoding always writes strings in
//! `extFields`, which every client accepts.

use std::fmt;

use bytes::{BufMut, BytesMut};
use compact_str::CompactString;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{
    ExtFields, HeaderFault, LanguageCode, MAX_EXT_FIELDS, Prefix, RemotingCommand, SerializeType,
};
use crate::error::HeaderError;

/// The header keys we read; everything else (`serializeTypeCurrentRPC`, `suspended`, …) is
/// ignored, as the frame's serialize-type byte is what counts.
#[derive(Deserialize)]
struct WireHeader {
    #[serde(default)]
    code: Scalar,
    #[serde(default)]
    language: Scalar,
    #[serde(default)]
    version: Scalar,
    #[serde(default)]
    opaque: Scalar,
    #[serde(default)]
    flag: Scalar,
    #[serde(default)]
    remark: Scalar,
    #[serde(rename = "extFields", default)]
    ext_fields: WireExtFields,
}

/// A JSON value in the form fastjson would hand to a `String` field. A value of a type Java
/// would not accept there (an object or array) does not stop the parse: it is kept as what
/// was expected, and reported by whoever reads the field, so the fields that address a
/// response (`code`, `opaque`) are still read wherever they stand in the object.
#[derive(Debug, Default)]
enum Scalar {
    /// Absent, or JSON `null`: the field is treated as absent.
    #[default]
    Absent,
    /// A JSON string, unescaped.
    Text(CompactString),
    /// A number or boolean in its decimal / `true` / `false` form.
    Literal(CompactString),
    /// An object or array.
    Invalid,
}

impl Scalar {
    /// The text of a string, number or boolean; `None` when absent; the error names `field`.
    fn text(self, field: impl FnOnce() -> String) -> Result<Option<CompactString>, HeaderError> {
        match self {
            Self::Absent => Ok(None),
            Self::Text(s) | Self::Literal(s) => Ok(Some(s)),
            Self::Invalid => Err(HeaderError::FieldType {
                field: field(),
                expected: "a string, number or boolean",
            }),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(CompactString::from(v)))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Text(CompactString::from(v)))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Literal(CompactString::const_new(if v {
            "true"
        } else {
            "false"
        })))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Literal(CompactString::from(
            itoa::Buffer::new().format(v),
        )))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Literal(CompactString::from(
            itoa::Buffer::new().format(v),
        )))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Literal(compact_str::format_compact!("{v}")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Absent)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Invalid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Invalid)
    }
}

/// `extFields` as read in the header's single parse; like [`Scalar`], a wrong type is kept as
/// an error instead of stopping the parse.
struct WireExtFields(Result<ExtFields, HeaderError>);

impl Default for WireExtFields {
    /// An absent `extFields` is an empty map.
    fn default() -> Self {
        Self(Ok(ExtFields::new()))
    }
}

impl<'de> Deserialize<'de> for WireExtFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match deserializer.deserialize_any(ExtFieldsVisitor)? {
            Some(fields) => Ok(fields),
            None => Ok(Self(Err(HeaderError::FieldType {
                field: "extFields".to_owned(),
                expected: "an object",
            }))),
        }
    }
}

/// Reads an object into [`WireExtFields`]; `None` for a value that is not an object.
struct ExtFieldsVisitor;

impl<'de> Visitor<'de> for ExtFieldsVisitor {
    type Value = Option<WireExtFields>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    /// `null`: Java sees no map.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Some(WireExtFields::default()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = ExtFields::with_capacity(16);
        let mut fault = None;
        while let Some(Key(key)) = map.next_key()? {
            let value: Scalar = map.next_value()?;
            if fault.is_some() {
                continue;
            }
            match value.text(|| format!("extFields.{key}")) {
                // Java's map.get() sees a null value as an absent key.
                Ok(None) => {}
                Ok(Some(value)) => {
                    if fields.len() == MAX_EXT_FIELDS && !fields.contains_key(&key) {
                        fault = Some(HeaderError::TooManyFields {
                            limit: MAX_EXT_FIELDS,
                        });
                    } else {
                        fields.insert(key, value);
                    }
                }
                Err(e) => fault = Some(e),
            }
        }
        Ok(Some(WireExtFields(fault.map_or(Ok(fields), Err))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An `extFields` key, kept inline when short (they all are).
struct Key(CompactString);

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(Key(CompactString::from(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// An `int` field: a JSON integer or a string holding one; absent or null gives 0.
fn int_field(value: Scalar, name: &'static str) -> Result<i32, HeaderError> {
    match value.text(|| name.to_owned())? {
        None => Ok(0),
        Some(s) => s.trim().parse().map_err(|_| HeaderError::FieldType {
            field: name.to_owned(),
            expected: "a 32-bit integer",
        }),
    }
}

fn language_field(value: Scalar) -> Result<LanguageCode, HeaderError> {
    match value {
        Scalar::Absent => Ok(LanguageCode::Java),
        Scalar::Text(name) => Ok(LanguageCode::from_name(&name)),
        Scalar::Literal(number) => Ok(match number.parse::<u8>() {
            Ok(code) => LanguageCode::from_code(code),
            Err(_) => LanguageCode::Unknown(number.into()),
        }),
        invalid @ Scalar::Invalid => {
            invalid.text(|| "language".to_owned())?;
            Ok(LanguageCode::Java)
        }
    }
}

/// Decodes a JSON header. The body and serialize type are left at their defaults.
pub(super) fn decode(header: &[u8]) -> Result<RemotingCommand, HeaderFault> {
    let mut prefix = Prefix::default();
    let fault = |prefix: Prefix| move |error: HeaderError| HeaderFault { prefix, error };
    // serde would also read a struct from a JSON array; fastjson would not.
    if header.trim_ascii_start().first() != Some(&b'{') {
        return Err(fault(prefix)(HeaderError::FieldType {
            field: "header".to_owned(),
            expected: "a JSON object",
        }));
    }
    let wire: WireHeader = serde_json::from_slice(header)
        .map_err(HeaderError::from)
        .map_err(fault(prefix))?;
    // Read the fields that address a response first, so a later failure can still report them.
    let code = int_field(wire.code, "code").map_err(fault(prefix))?;
    prefix.code = Some(code);
    let opaque = int_field(wire.opaque, "opaque").map_err(fault(prefix))?;
    prefix.opaque = Some(opaque);
    let flag = int_field(wire.flag, "flag").map_err(fault(prefix))?;
    prefix.flag = Some(flag);
    Ok(RemotingCommand {
        code,
        opaque,
        flag,
        language: language_field(wire.language).map_err(fault(prefix))?,
        version: int_field(wire.version, "version").map_err(fault(prefix))?,
        remark: wire
            .remark
            .text(|| "remark".to_owned())
            .map_err(fault(prefix))?
            .map(String::from),
        ext_fields: wire.ext_fields.0.map_err(fault(prefix))?,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Which bytes a JSON string cannot hold as they are: `"`, `\` and the control characters.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a JSON string literal.
fn put_str(out: &mut BytesMut, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.put_u8(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            // Properties carry \u0001 and \u0002 separators.
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.put_u8(b'"');
}

/// Appends the JSON header of `cmd` to `out`.
pub(super) fn encode(cmd: &RemotingCommand, out: &mut BytesMut) {
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"code\":");
    out.extend_from_slice(number.format(cmd.code).as_bytes());
    out.extend_from_slice(b",\"language\":");
    put_str(out, cmd.language.name());
    out.extend_from_slice(b",\"version\":");
    out.extend_from_slice(number.format(cmd.version).as_bytes());
    out.extend_from_slice(b",\"opaque\":");
    out.extend_from_slice(number.format(cmd.opaque).as_bytes());
    out.extend_from_slice(b",\"flag\":");
    out.extend_from_slice(number.format(cmd.flag).as_bytes());
    if let Some(remark) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        put_str(out, remark);
    }
    out.extend_from_slice(b",\"extFields\":{");
    for (i, (key, value)) in cmd.ext_fields.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        put_str(out, key);
        out.put_u8(b':');
        put_str(out, value);
    }
    out.extend_from_slice(b"},\"serializeTypeCurrentRPC\":\"JSON\"}");
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::test_fields as fields;

    fn command(
        code: i32,
        language: LanguageCode,
        version: i32,
        opaque: i32,
        remark: Option<&str>,
        ext: &[(&str, &str)],
    ) -> RemotingCommand {
        RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag: 0,
            remark: remark.map(str::to_owned),
            ext_fields: fields(ext),
            body: bytes::Bytes::new(),
            serialize_type: SerializeType::Json,
        }
    }

    fn check(json: &str, expect: &RemotingCommand) {
        match decode(json.as_bytes()) {
            Ok(cmd) => assert_eq!(&cmd, expect, "{json}"),
            Err(fault) => panic!("{json}: {fault:?}"),
        }
    }

    #[test]
    fn java_client_header() {
        check(
            r#"{"code":310,"extFields":{"a":"pg","b":"T","e":"1"},"flag":0,"language":"JAVA","opaque":5,"serializeTypeCurrentRPC":"JSON","version":399}"#,
            &command(
                310,
                LanguageCode::Java,
                399,
                5,
                None,
                &[("a", "pg"), ("b", "T"), ("e", "1")],
            ),
        );
    }

    #[test]
    fn node_client_header_with_numbers_and_booleans() {
        // ali-ons: no serializeTypeCurrentRPC, raw JS values in extFields.
        check(
            r#"{"code":310,"language":"JAVA","opaque":3,"flag":0,"version":121,"extFields":{"a":"pg","e":1,"g":1700000000000,"k":false,"m":true,"i":"TAGS\u0001TagA\u0002"}}"#,
            &command(
                310,
                LanguageCode::Java,
                121,
                3,
                None,
                &[
                    ("a", "pg"),
                    ("e", "1"),
                    ("g", "1700000000000"),
                    ("k", "false"),
                    ("m", "true"),
                    ("i", "TAGS\u{1}TagA\u{2}"),
                ],
            ),
        );
    }

    #[test]
    fn go_client_header_with_empty_remark() {
        check(
            r#"{"code":11,"language":"GO","version":317,"opaque":9,"flag":0,"remark":"","extFields":{"consumerGroup":"g","queueOffset":"0"}}"#,
            &command(
                11,
                LanguageCode::Go,
                317,
                9,
                Some(""),
                &[("consumerGroup", "g"), ("queueOffset", "0")],
            ),
        );
    }

    #[test]
    fn lenient_scalars_and_missing_fields() {
        let cases = [
            (
                r#"{"code":34}"#,
                command(34, LanguageCode::Java, 0, 0, None, &[]),
            ),
            (
                r#"{"code":"10","opaque":" 4 ","language":9,"extFields":null,"remark":null}"#,
                command(10, LanguageCode::Go, 0, 4, None, &[]),
            ),
            (
                r#"{"code":10,"language":"NODE","extFields":{"x":1.50,"y":-1e3,"z":null},"whatever":[1,{"a":2}]}"#,
                command(
                    10,
                    LanguageCode::Unknown("NODE".into()),
                    0,
                    0,
                    None,
                    &[("x", "1.5"), ("y", "-1000")],
                ),
            ),
            (
                r#"{"code":10,"language":200,"remark":42}"#,
                command(
                    10,
                    LanguageCode::Unknown("200".into()),
                    0,
                    0,
                    Some("42"),
                    &[],
                ),
            ),
            (
                r#" { "code" : 10 , "extFields" : { "k\"ey" : "v\\al" } } "#,
                command(10, LanguageCode::Java, 0, 0, None, &[("k\"ey", "v\\al")]),
            ),
        ];
        for (json, expect) in cases {
            check(json, &expect);
        }
    }

    #[test]
    fn bad_headers_report_what_could_be_read() {
        // (json, code, opaque) readable before the failure.
        let cases: [(&str, Option<i32>, Option<i32>); 10] = [
            ("", None, None),
            ("not json", None, None),
            ("[1,2]", None, None),
            (r#"{"code":10,"opaque":5"#, None, None),
            (r#"{"code":"ten","opaque":5}"#, None, None),
            (
                r#"{"code":10,"opaque":5,"extFields":[1]}"#,
                Some(10),
                Some(5),
            ),
            (
                r#"{"code":10,"opaque":5,"extFields":{"k":{"nested":1}}}"#,
                Some(10),
                Some(5),
            ),
            (
                r#"{"code":10,"opaque":5,"version":2147483648}"#,
                Some(10),
                Some(5),
            ),
            // A bad extFields value before the addressing fields still lets them be read.
            (
                r#"{"extFields":{"k":[1],"j":"v"},"code":10,"opaque":5}"#,
                Some(10),
                Some(5),
            ),
            (
                r#"{"extFields":"x","code":10,"opaque":5}"#,
                Some(10),
                Some(5),
            ),
        ];
        for (json, code, opaque) in cases {
            match decode(json.as_bytes()) {
                Ok(cmd) => panic!("{json} decoded to {cmd:?}"),
                Err(fault) => {
                    assert_eq!(
                        (fault.prefix.code, fault.prefix.opaque),
                        (code, opaque),
                        "{json}"
                    );
                }
            }
        }
    }

    #[test]
    fn duplicate_keys_last_wins_and_the_field_count_is_bounded() {
        check(
            r#"{"code":10,"extFields":{"k":"1","j":"2","k":"3"}}"#,
            &command(
                10,
                LanguageCode::Java,
                0,
                0,
                None,
                &[("k", "3"), ("j", "2")],
            ),
        );
        let entries = |n: usize| {
            (0..n)
                .map(|i| format!("\"k{i}\":\"v\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let at_limit = format!(
            r#"{{"code":10,"extFields":{{{}}}}}"#,
            entries(MAX_EXT_FIELDS)
        );
        assert_eq!(
            decode(at_limit.as_bytes()).map(|c| c.ext_fields.len()).ok(),
            Some(MAX_EXT_FIELDS)
        );
        let over = format!(
            r#"{{"code":10,"opaque":4,"extFields":{{{}}}}}"#,
            entries(MAX_EXT_FIELDS + 1)
        );
        match decode(over.as_bytes()) {
            Ok(cmd) => panic!("decoded {} fields", cmd.ext_fields.len()),
            Err(fault) => {
                assert!(matches!(fault.error, HeaderError::TooManyFields { .. }));
                assert_eq!(fault.prefix.opaque, Some(4));
            }
        }
    }

    #[test]
    fn encodes_java_compatible_json() {
        let mut cmd = command(
            0,
            LanguageCode::Rust,
            0,
            7,
            Some("line\n\"quoted\"\u{1}"),
            &[("queueOffset", "12"), ("msgId", "AB")],
        );
        cmd.flag = 1;
        let mut out = bytes::BytesMut::new();
        encode(&cmd, &mut out);
        let text = std::str::from_utf8(&out).expect("utf8");
        assert_eq!(
            text,
            r#"{"code":0,"language":"RUST","version":0,"opaque":7,"flag":1,"remark":"line\n\"quoted\"\u0001","extFields":{"queueOffset":"12","msgId":"AB"},"serializeTypeCurrentRPC":"JSON"}"#
        );
        // Standard JSON, and it decodes back to the same command.
        assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
        check(text, &cmd);
    }
}
