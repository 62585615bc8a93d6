//! The ROCKETMQ binary header (`RocketMQSerializable`), big-endian:
//!
//! | field | size |
//! |---|---|
//! | code | i16 |
//! | language | u8 (`LanguageCode` code) |
//! | version | i16 |
//! | opaque | i32 |
//! | flag | i32 |
//! | remark | i32 length + UTF-8 (length 0 = no remark) |
//! | extFields | i32 total length, then per entry: i16 key length + key, i32 value length + value |
//!
//! Java reads a zero-length key or value as `null`, which its header decoding treats as an
//! absent field; so do we, by skipping such entries.

use bytes::{BufMut, BytesMut};

use super::{
    ExtFields, HeaderFault, LanguageCode, MAX_EXT_FIELDS, Prefix, RemotingCommand, SerializeType,
};
use crate::error::{HeaderError, ProtocolError};

/// A bounds-checked big-endian reader over a header slice.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], HeaderError> {
        if len > self.buf.len() {
            return Err(HeaderError::Truncated { what });
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], HeaderError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, HeaderError> {
        self.array(what).map(i16::from_be_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, HeaderError> {
        self.array(what).map(i32::from_be_bytes)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HeaderError> {
        self.array::<1>(what).map(|[b]| b)
    }

    /// `len` bytes after checking the length against what is left.
    fn sized(&mut self, len: i64, what: &'static str) -> Result<&'a [u8], HeaderError> {
        let available = self.buf.len();
        match usize::try_from(len) {
            Ok(n) if n <= available => self.take(n, what),
            _ => Err(HeaderError::LengthOutOfRange {
                what,
                len,
                available,
            }),
        }
    }

    /// A length-prefixed UTF-8 string; `None` for length 0, as Java reads it.
    fn string(&mut self, len: i64, what: &'static str) -> Result<Option<&'a str>, HeaderError> {
        let bytes = self.sized(len, what)?;
        if bytes.is_empty() {
            return Ok(None);
        }
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| HeaderError::NotUtf8 { what })
    }
}

fn decode_ext_fields(region: &[u8]) -> Result<ExtFields, HeaderError> {
    let mut reader = Reader { buf: region };
    let mut fields = ExtFields::new();
    while !reader.buf.is_empty() {
        let key_len = reader.i16("extFields key length")?;
        let key = reader.string(key_len.into(), "extFields key")?;
        let value_len = reader.i32("extFields value length")?;
        let value = reader.string(value_len.into(), "extFields value")?;
        if let (Some(key), Some(value)) = (key, value) {
            if fields.len() == MAX_EXT_FIELDS && !fields.contains_key(key) {
                return Err(HeaderError::TooManyFields {
                    limit: MAX_EXT_FIELDS,
                });
            }
            fields.insert(key, value);
        }
    }
    Ok(fields)
}

/// Decodes a binary header that spans exactly `header`.
pub(super) fn decode(header: &[u8]) -> Result<RemotingCommand, HeaderFault> {
    let mut prefix = Prefix::default();
    let mut reader = Reader { buf: header };
    let mut read = || -> Result<RemotingCommand, HeaderError> {
        let code = i32::from(reader.i16("code")?);
        prefix.code = Some(code);
        let language = LanguageCode::from_code(reader.u8("language")?);
        let version = i32::from(reader.i16("version")?);
        let opaque = reader.i32("opaque")?;
        prefix.opaque = Some(opaque);
        let flag = reader.i32("flag")?;
        prefix.flag = Some(flag);
        let remark_len = reader.i32("remark length")?;
        let remark = reader
            .string(remark_len.into(), "remark")?
            .map(str::to_owned);
        let ext_len = reader.i32("extFields length")?;
        // Java skips the map when the length is not positive.
        let ext_fields = if ext_len > 0 {
            decode_ext_fields(reader.sized(ext_len.into(), "extFields")?)?
        } else {
            ExtFields::new()
        };
        if !reader.buf.is_empty() {
            return Err(HeaderError::TrailingBytes {
                count: reader.buf.len(),
            });
        }
        Ok(RemotingCommand {
            code,
            language,
            version,
            opaque,
            flag,
            remark,
            ext_fields,
            body: bytes::Bytes::new(),
            serialize_type: SerializeType::RocketMq,
        })
    };
    let result = read();
    result.map_err(|error| HeaderFault { prefix, error })
}

fn short(field: &'static str, value: i32) -> Result<i16, ProtocolError> {
    i16::try_from(value).map_err(|_| ProtocolError::FieldOutOfRange { field, value })
}

fn put_str(out: &mut BytesMut, s: &str) -> Result<(), ProtocolError> {
    let len = i32::try_from(s.len()).map_err(|_| ProtocolError::HeaderTooLarge {
        header_len: s.len(),
    })?;
    out.put_i32(len);
    out.put_slice(s.as_bytes());
    Ok(())
}

/// Appends the binary header of `cmd` to `out`.
pub(super) fn encode(cmd: &RemotingCommand, out: &mut BytesMut) -> Result<(), ProtocolError> {
    out.put_i16(short("code", cmd.code)?);
    out.put_u8(cmd.language.code());
    out.put_i16(short("version", cmd.version)?);
    out.put_i32(cmd.opaque);
    out.put_i32(cmd.flag);
    match cmd.remark.as_deref() {
        Some(remark) if !remark.is_empty() => put_str(out, remark)?,
        _ => out.put_i32(0),
    }
    let map_len_at = out.len();
    out.put_i32(0);
    for (key, value) in cmd.ext_fields.iter() {
        let key_len = i32::try_from(key.len()).unwrap_or(i32::MAX);
        out.put_i16(short("extFields key length", key_len)?);
        out.put_slice(key.as_bytes());
        put_str(out, value)?;
    }
    let map_len = out.len() - map_len_at - 4;
    let map_len = i32::try_from(map_len).map_err(|_| ProtocolError::HeaderTooLarge {
        header_len: map_len,
    })?;
    out[map_len_at..map_len_at + 4].copy_from_slice(&map_len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header laid out by hand as Java's `rocketMQProtocolEncode` writes it.
    fn java_header(remark: &[u8], entries: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&105i16.to_be_bytes());
        out.push(9);
        out.extend_from_slice(&317i16.to_be_bytes());
        out.extend_from_slice(&77i32.to_be_bytes());
        out.extend_from_slice(&2i32.to_be_bytes());
        out.extend_from_slice(&(remark.len() as i32).to_be_bytes());
        out.extend_from_slice(remark);
        let mut map = Vec::new();
        for (k, v) in entries {
            map.extend_from_slice(&(k.len() as i16).to_be_bytes());
            map.extend_from_slice(k);
            map.extend_from_slice(&(v.len() as i32).to_be_bytes());
            map.extend_from_slice(v);
        }
        out.extend_from_slice(&(map.len() as i32).to_be_bytes());
        out.extend_from_slice(&map);
        out
    }

    #[test]
    fn decodes_the_java_layout() {
        let raw = java_header(b"hi", &[(b"topic", b"T"), (b"empty", b""), (b"", b"x")]);
        let cmd = decode(&raw).expect("decodes");
        assert_eq!(
            (cmd.code, cmd.version, cmd.opaque, cmd.flag),
            (105, 317, 77, 2)
        );
        assert_eq!(cmd.language, LanguageCode::Go);
        assert_eq!(cmd.remark.as_deref(), Some("hi"));
        // Zero-length keys and values read as Java nulls: absent.
        assert_eq!(
            cmd.ext_fields.iter().collect::<Vec<_>>(),
            vec![("topic", "T")]
        );
        let no_remark = decode(&java_header(b"", &[])).expect("decodes");
        assert_eq!(no_remark.remark, None);
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let mut cmd = RemotingCommand::new_request(10, -5).with_remark("r");
        cmd.serialize_type = SerializeType::RocketMq;
        cmd.ext_fields.insert("a", "ü");
        let mut out = BytesMut::new();
        encode(&cmd, &mut out).expect("encodes");
        assert_eq!(decode(&out).ok(), Some(cmd));
    }

    #[test]
    fn malformed_headers_are_errors_with_prefix() {
        let good = java_header(b"hi", &[(b"k", b"v")]);
        let mut bad_remark = good.clone();
        bad_remark[13..17].copy_from_slice(&1000i32.to_be_bytes());
        let mut negative_remark = good.clone();
        negative_remark[13..17].copy_from_slice(&(-1i32).to_be_bytes());
        let mut bad_map = good.clone();
        bad_map[19..23].copy_from_slice(&1000i32.to_be_bytes());
        let mut negative_key = good.clone();
        negative_key[23..25].copy_from_slice(&(-2i16).to_be_bytes());
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_utf8 = good.clone();
        bad_utf8[17] = 0xFF;
        let cases: [(&str, &[u8], Option<i32>); 8] = [
            ("empty", &[], None),
            ("truncated opaque", &good[..7], None),
            ("remark past the end", &bad_remark, Some(77)),
            ("negative remark", &negative_remark, Some(77)),
            ("map past the end", &bad_map, Some(77)),
            ("negative key length", &negative_key, Some(77)),
            ("trailing bytes", &trailing, Some(77)),
            ("remark not utf-8", &bad_utf8, Some(77)),
        ];
        for (what, raw, opaque) in cases {
            match decode(raw) {
                Ok(cmd) => panic!("{what}: decoded {cmd:?}"),
                Err(fault) => assert_eq!(fault.prefix.opaque, opaque, "{what}: {fault:?}"),
            }
        }
    }

    #[test]
    fn too_many_fields_are_refused() {
        let keys: Vec<String> = (0..=MAX_EXT_FIELDS).map(|i| format!("k{i}")).collect();
        let entries: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (k.as_bytes(), &b"v"[..])).collect();
        let fault = decode(&java_header(b"", &entries))
            .map(|_| ())
            .expect_err("over the limit");
        assert!(
            matches!(fault.error, HeaderError::TooManyFields { .. }),
            "{fault:?}"
        );
        // At the limit, and with a repeated key past it, the header decodes.
        let at_limit = &entries[..MAX_EXT_FIELDS];
        assert!(decode(&java_header(b"", at_limit)).is_ok());
        let mut repeated = at_limit.to_vec();
        repeated.push(at_limit[0]);
        assert!(decode(&java_header(b"", &repeated)).is_ok());
    }

    #[test]
    fn codes_beyond_16_bits_cannot_be_encoded() {
        let mut cmd = RemotingCommand::new_request(crate::codes::request::POP_MESSAGE, 1);
        cmd.serialize_type = SerializeType::RocketMq;
        let mut out = BytesMut::new();
        let result = encode(&cmd, &mut out);
        assert!(
            matches!(
                result,
                Err(ProtocolError::FieldOutOfRange {
                    field: "code",
                    value: 200_050
                })
            ),
            "{result:?}"
        );
    }
}
