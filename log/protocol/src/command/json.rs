//! The JSON header, as fastjson writes and reads it for `RemotingCommand`.
//!
//! Decoding is as lenient as the Java broker: fields may be absent (Java defaults apply),
//! `extFields` values may be strings, numbers or booleans (kept in their string form), integer
//! fields may be written as strings, `language` may be a name or a number, and unknown keys are
//! ignored. Encoding always writes strings in `extFields`, which every client accepts.

use std::fmt;
use std::io::Write;

use compact_str::CompactString;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{
    ExtFields, HeaderFault, LanguageCode, MAX_EXT_FIELDS, Prefix, RemotingCommand, SerializeType,
};
use crate::error::HeaderError;

/// The header keys we read; everything else (`serializeTypeCurrentRPC`, `suspended`, …) is
/// ignored, as the frame's serialize-type byte is what counts. One pass of the parser reads it
/// all, `extFields` included.
#[derive(Deserialize)]
struct WireHeader<'a> {
    #[serde(borrow, default)]
    code: Option<&'a RawValue>,
    #[serde(borrow, default)]
    language: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<&'a RawValue>,
    #[serde(borrow, default)]
    opaque: Option<&'a RawValue>,
    #[serde(borrow, default)]
    flag: Option<&'a RawValue>,
    #[serde(borrow, default)]
    remark: Option<&'a RawValue>,
    #[serde(rename = "extFields", default)]
    ext_fields: WireExtFields,
}

/// `extFields` as read in the header's single parse. A value of a type Java would not accept
/// does not stop the parse: the error is kept here, so the fields that address a response
/// (`code`, `opaque`) are still read wherever they stand in the object.
struct WireExtFields(Result<ExtFields, HeaderError>);

impl Default for WireExtFields {
    /// An absent `extFields` is an empty map.
    fn default() -> Self {
        Self(Ok(ExtFields::new()))
    }
}

impl<'de> Deserialize<'de> for WireExtFields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ExtFieldsVisitor)
    }
}

struct ExtFieldsVisitor;

impl ExtFieldsVisitor {
    fn not_an_object() -> WireExtFields {
        WireExtFields(Err(HeaderError::FieldType {
            field: "extFields".to_owned(),
            expected: "an object",
        }))
    }
}

impl<'de> Visitor<'de> for ExtFieldsVisitor {
    type Value = WireExtFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    /// `null`: Java sees no map.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(WireExtFields::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = ExtFields::with_capacity(16);
        let mut fault = None;
        while let Some(Key(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            if fault.is_some() {
                continue;
            }
            match scalar(value) {
                // Java's map.get() sees a null value as an absent key.
                Ok(None) => {}
                Ok(Some((_, value))) => {
                    if fields.len() == MAX_EXT_FIELDS && !fields.contains_key(&key) {
                        fault = Some(HeaderError::TooManyFields {
                            limit: MAX_EXT_FIELDS,
                        });
                    } else {
                        fields.insert(key, value);
                    }
                }
                Err(expected) => {
                    fault = Some(HeaderError::FieldType {
                        field: format!("extFields.{key}"),
                        expected,
                    })
                }
            }
        }
        Ok(WireExtFields(fault.map_or(Ok(fields), Err)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Self::not_an_object())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Self::not_an_object())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Self::not_an_object())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Self::not_an_object())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Self::not_an_object())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Self::not_an_object())
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

/// What kind of JSON scalar a value was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarKind {
    /// A JSON string, unescaped.
    Text,
    /// A number or boolean, exactly as written.
    Literal,
}

/// A JSON scalar in the form fastjson would hand to a `String` field: `None` for `null` (the
/// field is treated as absent), else its kind and text. A value of another type is an error
/// saying what was expected.
fn scalar(raw: &RawValue) -> Result<Option<(ScalarKind, CompactString)>, &'static str> {
    let text = raw.get().trim();
    match text.as_bytes().first() {
        // Most strings have no escapes: take them as they are instead of running the parser.
        Some(b'"') => match text.as_bytes() {
            [b'"', inner @ .., b'"'] if !inner.iter().any(|b| *b == b'\\' || *b < 0x20) => {
                Ok(Some((
                    ScalarKind::Text,
                    CompactString::from(&text[1..text.len() - 1]),
                )))
            }
            // The raw value was already parsed as a string, so this cannot fail.
            _ => serde_json::from_str::<String>(text)
                .map(|s| Some((ScalarKind::Text, CompactString::from(s))))
                .map_err(|_| "a string"),
        },
        Some(b'n') => Ok(None),
        Some(b't' | b'f' | b'-' | b'0'..=b'9') => {
            Ok(Some((ScalarKind::Literal, CompactString::from(text))))
        }
        _ => Err("a string, number or boolean"),
    }
}

/// A top-level scalar field, with the field named in the error.
fn field(
    raw: Option<&RawValue>,
    name: &str,
) -> Result<Option<(ScalarKind, CompactString)>, HeaderError> {
    match raw {
        None => Ok(None),
        Some(raw) => scalar(raw).map_err(|expected| HeaderError::FieldType {
            field: name.to_owned(),
            expected,
        }),
    }
}

fn optional_text(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, HeaderError> {
    Ok(field(raw, name)?.map(|(_, s)| s.into()))
}

/// An `int` field: a JSON integer or a string holding one; absent or null gives 0.
fn int_field(raw: Option<&RawValue>, name: &'static str) -> Result<i32, HeaderError> {
    match field(raw, name)? {
        None => Ok(0),
        Some((_, s)) => s.trim().parse().map_err(|_| HeaderError::FieldType {
            field: name.to_owned(),
            expected: "a 32-bit integer",
        }),
    }
}

fn language_field(raw: Option<&RawValue>) -> Result<LanguageCode, HeaderError> {
    match field(raw, "language")? {
        None => Ok(LanguageCode::Java),
        Some((ScalarKind::Text, name)) => Ok(LanguageCode::from_name(&name)),
        Some((ScalarKind::Literal, number)) => Ok(match number.parse::<u8>() {
            Ok(code) => LanguageCode::from_code(code),
            Err(_) => LanguageCode::Unknown(number.into()),
        }),
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
    let wire: WireHeader<'_> = serde_json::from_slice(header)
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
        remark: optional_text(wire.remark, "remark").map_err(fault(prefix))?,
        ext_fields: wire.ext_fields.0.map_err(fault(prefix))?,
        body: bytes::Bytes::new(),
        serialize_type: SerializeType::Json,
    })
}

/// Writes `s` as a JSON string literal.
fn write_str(out: &mut impl Write, s: &str) -> std::io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            0..=0x1f => None,
            _ => continue,
        };
        out.write_all(&s.as_bytes()[start..i])?;
        match escape {
            Some(e) => out.write_all(e)?,
            // Properties carry \u0001 and \u0002 separators: no formatting machinery for them.
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.write_all(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ])?
            }
        }
        start = i + 1;
    }
    out.write_all(&s.as_bytes()[start..])?;
    out.write_all(b"\"")
}

fn write_header(cmd: &RemotingCommand, out: &mut impl Write) -> std::io::Result<()> {
    let mut number = itoa::Buffer::new();
    out.write_all(b"{\"code\":")?;
    out.write_all(number.format(cmd.code).as_bytes())?;
    out.write_all(b",\"language\":")?;
    write_str(out, cmd.language.name())?;
    out.write_all(b",\"version\":")?;
    out.write_all(number.format(cmd.version).as_bytes())?;
    out.write_all(b",\"opaque\":")?;
    out.write_all(number.format(cmd.opaque).as_bytes())?;
    out.write_all(b",\"flag\":")?;
    out.write_all(number.format(cmd.flag).as_bytes())?;
    if let Some(remark) = &cmd.remark {
        out.write_all(b",\"remark\":")?;
        write_str(out, remark)?;
    }
    out.write_all(b",\"extFields\":{")?;
    for (i, (key, value)) in cmd.ext_fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_str(out, key)?;
        out.write_all(b":")?;
        write_str(out, value)?;
    }
    out.write_all(b"},\"serializeTypeCurrentRPC\":\"JSON\"}")
}

/// Appends the JSON header of `cmd` to `out`.
pub(super) fn encode(cmd: &RemotingCommand, out: &mut bytes::buf::Writer<&mut bytes::BytesMut>) {
    // Writing into a BytesMut cannot fail: it grows as needed.
    let written = write_header(cmd, out);
    debug_assert!(written.is_ok(), "writing to BytesMut failed: {written:?}");
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
                    &[("x", "1.50"), ("y", "-1e3")],
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
        encode(&cmd, &mut bytes::BufMut::writer(&mut out));
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
