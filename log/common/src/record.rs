//! The CommitLog record: RocketMQ's exact big-endian layout.
//!
//! ```text
//! TOTALSIZE i32 | MAGICCODE i32 | BODYCRC i32 | QUEUEID i32 | FLAG i32 | QUEUEOFFSET i64
//! PHYSICALOFFSET i64 | SYSFLAG i32 | BORNTIMESTAMP i64 | BORNHOST 8/20 | STORETIMESTAMP i64
//! STOREHOST 8/20 | RECONSUMETIMES i32 | PREPARED_TXN_OFFSET i64 | BODY i32+n
//! TOPIC (V1: u8+n, V2: i16+n) | PROPERTIES i16+n
//! ```
//!
//! The encoder leaves QUEUEOFFSET, PHYSICALOFFSET and STORETIMESTAMP to be patched under the
//! store's append lock ([`patch_assigned`]), so everything else, including the body CRC, is
//! computed before the lock is taken.
//!
//! The store reads its log with [`peek`], [`view`] and [`decode`]; a client reads the records a
//! broker sends (pull, query and view answers, records concatenated) with [`view_raw`], which
//! leaves the properties as bytes for a lenient decoding, as Java's client does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;

use crate::property::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
use crate::sysflag;

/// Magic of a V1 record (1-byte topic length).
pub const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic of a V2 record (2-byte topic length).
pub const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Magic of the blank record that fills the end of a segment.
pub const BLANK_MAGIC: i32 = 0xCBD4_3194_u32 as i32;
/// Space always left at the end of a segment for the blank record.
pub const END_FILE_MIN_BLANK: usize = 8;

/// Byte position of QUEUEOFFSET.
pub const POS_QUEUE_OFFSET: usize = 20;
/// Byte position of PHYSICALOFFSET.
pub const POS_PHYSICAL_OFFSET: usize = 28;
/// Byte position of SYSFLAG.
pub const POS_SYS_FLAG: usize = 36;
/// Byte position of BORNHOST.
pub const POS_BORN_HOST: usize = 48;

/// Fixed bytes of a record whose hosts are IPv4: 91.
pub const FIXED_OVERHEAD_V1: usize = 91;

#[inline]
fn host_len(v6: bool) -> usize {
    if v6 { 20 } else { 8 }
}

/// Record length for the given variable parts.
pub fn record_len(body: usize, topic: usize, properties: usize, sys_flag: i32, v2: bool) -> usize {
    FIXED_OVERHEAD_V1 - 16
        + host_len(sys_flag & sysflag::BORNHOST_V6 != 0)
        + host_len(sys_flag & sysflag::STOREHOST_V6 != 0)
        + body
        + topic
        + properties
        + usize::from(v2)
}

/// RocketMQ's body checksum: CRC32 masked to 31 bits.
pub fn body_crc(body: &[u8]) -> i32 {
    (crc32fast::hash(body) & 0x7FFF_FFFF) as i32
}

/// Java's `String.hashCode` over UTF-16 code units: RocketMQ's tag code and index key hash.
pub fn java_string_hash(s: &str) -> i32 {
    java_hash_utf16(s.encode_utf16())
}

/// Java's `String.hashCode` over a sequence of UTF-16 code units (for hashing concatenations
/// without building them).
pub fn java_hash_utf16(units: impl Iterator<Item = u16>) -> i32 {
    units.fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// A message handed to the store for appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub topic: String,
    pub queue_id: i32,
    pub flag: i32,
    pub body: Bytes,
    /// Encoded properties (`name\x01value\x02` pairs); see [`encode_properties`].
    pub properties: String,
    /// SYSFLAG; the host bits are derived from the addresses when encoding.
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
}

impl NewMessage {
    /// A message with only topic, queue and body set; the rest defaults.
    pub fn new(topic: impl Into<String>, queue_id: i32, body: impl Into<Bytes>) -> Self {
        NewMessage {
            topic: topic.into(),
            queue_id,
            flag: 0,
            body: body.into(),
            properties: String::new(),
            sys_flag: 0,
            born_timestamp: 0,
            born_host: SocketAddr::from(([127, 0, 0, 1], 0)),
            reconsume_times: 0,
            prepared_transaction_offset: 0,
        }
    }

    /// Sets the properties from name/value pairs.
    pub fn with_properties<'a, I>(mut self, props: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        self.properties = encode_properties(props);
        self
    }
}

/// A record read back from the commit log, every field decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub total_size: i32,
    pub magic: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: Bytes,
    pub topic: String,
    pub properties: String,
}

impl StoredMessage {
    /// The value of property `name`, if present.
    pub fn property(&self, name: &str) -> Option<&str> {
        property(&self.properties, name)
    }
}

/// Encodes properties as `name\x01value\x02…`, each property terminated by `\x02`, as the Java
/// client writes them: from name/value pairs or a map (`&Properties`). Sized in one pass over
/// `props` and written in a second, so the string is allocated once.
pub fn encode_properties<I, K, V>(props: I) -> String
where
    I: IntoIterator<Item = (K, V)>,
    I::IntoIter: Clone,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let props = props.into_iter();
    let len = props
        .clone()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = String::with_capacity(len);
    for (k, v) in props {
        out.push_str(k.as_ref());
        out.push(NAME_VALUE_SEPARATOR);
        out.push_str(v.as_ref());
        out.push(PROPERTY_SEPARATOR);
    }
    out
}

/// Iterates over encoded properties; tolerates a missing final separator and skips empty pairs.
pub fn properties(encoded: &str) -> impl Iterator<Item = (&str, &str)> {
    encoded
        .split(PROPERTY_SEPARATOR)
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once(NAME_VALUE_SEPARATOR))
}

/// The value of one property.
pub fn property<'a>(encoded: &'a str, name: &str) -> Option<&'a str> {
    properties(encoded)
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Why a message cannot be encoded as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field does not fit the record format.
    #[error("{reason}")]
    Illegal { reason: String },
    /// The record would be longer than the caller's limit.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("bad magic code {0:#010x}")]
    BadMagic(u32),
    #[error("bad total size {0}")]
    BadSize(i32),
    #[error("field {field} has invalid length {len}")]
    BadField { field: &'static str, len: i64 },
    #[error("body CRC mismatch: stored {stored:#x}, computed {computed:#x}")]
    CrcMismatch { stored: i32, computed: i32 },
    #[error("record length {declared} disagrees with its fields ({computed})")]
    LengthMismatch { declared: i32, computed: usize },
    #[error("topic or properties are not UTF-8")]
    NotUtf8,
}

/// A message encoded into its record bytes with the store-assigned fields zero.
#[derive(Debug, Clone)]
pub struct EncodedRecord {
    pub bytes: Vec<u8>,
    pub sys_flag: i32,
}

fn put_host(out: &mut Vec<u8>, addr: &SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&i32::from(addr.port()).to_be_bytes());
}

/// Checks a message against the record format and `max_len`, and encodes it.
pub fn encode(
    msg: &NewMessage,
    store_host: &SocketAddr,
    max_len: usize,
) -> Result<EncodedRecord, EncodeError> {
    let illegal = |reason: String| EncodeError::Illegal { reason };
    let topic = msg.topic.as_bytes();
    if topic.is_empty() || topic.len() > i16::MAX as usize {
        return Err(illegal(format!(
            "topic length {} must be 1..=32767",
            topic.len()
        )));
    }
    let props = msg.properties.as_bytes();
    if props.len() > i16::MAX as usize {
        return Err(illegal(format!(
            "properties length {} exceeds 32767 bytes",
            props.len()
        )));
    }
    let v2 = topic.len() > i8::MAX as usize;
    let mut flag = msg.sys_flag & !(sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6);
    if msg.born_host.is_ipv6() {
        flag |= sysflag::BORNHOST_V6;
    }
    if store_host.is_ipv6() {
        flag |= sysflag::STOREHOST_V6;
    }
    let len = record_len(msg.body.len(), topic.len(), props.len(), flag, v2);
    if len > max_len {
        return Err(EncodeError::TooLarge {
            size: len,
            limit: max_len,
        });
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_be_bytes());
    out.extend_from_slice(&(if v2 { MAGIC_V2 } else { MAGIC_V1 }).to_be_bytes());
    out.extend_from_slice(&body_crc(&msg.body).to_be_bytes());
    out.extend_from_slice(&msg.queue_id.to_be_bytes());
    out.extend_from_slice(&msg.flag.to_be_bytes());
    out.extend_from_slice(&0i64.to_be_bytes()); // QUEUEOFFSET, patched
    out.extend_from_slice(&0i64.to_be_bytes()); // PHYSICALOFFSET, patched
    out.extend_from_slice(&flag.to_be_bytes());
    out.extend_from_slice(&msg.born_timestamp.to_be_bytes());
    put_host(&mut out, &msg.born_host);
    out.extend_from_slice(&0i64.to_be_bytes()); // STORETIMESTAMP, patched
    put_host(&mut out, store_host);
    out.extend_from_slice(&msg.reconsume_times.to_be_bytes());
    out.extend_from_slice(&msg.prepared_transaction_offset.to_be_bytes());
    out.extend_from_slice(&(msg.body.len() as i32).to_be_bytes());
    out.extend_from_slice(&msg.body);
    if v2 {
        out.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    } else {
        out.push(topic.len() as u8);
    }
    out.extend_from_slice(topic);
    out.extend_from_slice(&(props.len() as i16).to_be_bytes());
    out.extend_from_slice(props);
    debug_assert_eq!(out.len(), len);
    Ok(EncodedRecord {
        bytes: out,
        sys_flag: flag,
    })
}

/// Byte position of STORETIMESTAMP for a record with this sys flag.
#[inline]
pub fn store_timestamp_pos(flag: i32) -> usize {
    POS_BORN_HOST + host_len(flag & sysflag::BORNHOST_V6 != 0)
}

/// Writes the store-assigned fields into an encoded record.
#[inline]
pub fn patch_assigned(
    record: &mut [u8],
    queue_offset: i64,
    physical_offset: i64,
    store_timestamp: i64,
) {
    let flag = i32::from_be_bytes([
        record[POS_SYS_FLAG],
        record[POS_SYS_FLAG + 1],
        record[POS_SYS_FLAG + 2],
        record[POS_SYS_FLAG + 3],
    ]);
    record[POS_QUEUE_OFFSET..POS_QUEUE_OFFSET + 8].copy_from_slice(&queue_offset.to_be_bytes());
    record[POS_PHYSICAL_OFFSET..POS_PHYSICAL_OFFSET + 8]
        .copy_from_slice(&physical_offset.to_be_bytes());
    let ts = store_timestamp_pos(flag);
    record[ts..ts + 8].copy_from_slice(&store_timestamp.to_be_bytes());
}

/// A bounds-checked big-endian reader over record bytes.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(RecordError::Truncated {
                needed: self.pos.saturating_add(n),
                available: self.buf.len(),
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        let b = self.take(8)?;
        Ok(i64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn host(&mut self, v6: bool) -> Result<SocketAddr, RecordError> {
        let ip = if v6 {
            let b = self.take(16)?;
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            let b = self.take(4)?;
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        };
        // Truncated, not checked: a port out of range is only in a damaged record, and the
        // check would cost the dispatcher's parse of every record.
        let port = self.i32()? as u16;
        Ok(SocketAddr::new(ip, port))
    }
    fn len_prefixed(&mut self, len: i64, field: &'static str) -> Result<&'a [u8], RecordError> {
        if len < 0 {
            return Err(RecordError::BadField { field, len });
        }
        self.take(len as usize)
            .map_err(|_| RecordError::BadField { field, len })
    }
}

/// What a peek at the start of a slot in the log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A message record of this many bytes.
    Message { size: usize },
    /// The blank filler at the end of a segment.
    Blank,
    /// Zero bytes: nothing was ever written here.
    Empty,
}

/// Reads TOTALSIZE and MAGICCODE and judges them; `remaining` bounds the size.
pub fn peek(buf: &[u8], remaining: usize) -> Result<Peek, RecordError> {
    if buf.len() < 8 {
        if buf.iter().all(|&b| b == 0) {
            return Ok(Peek::Empty);
        }
        return Err(RecordError::Truncated {
            needed: 8,
            available: buf.len(),
        });
    }
    let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let magic = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    match magic {
        MAGIC_V1 | MAGIC_V2 => {
            if size < FIXED_OVERHEAD_V1 as i32 || size as usize > remaining {
                return Err(RecordError::BadSize(size));
            }
            Ok(Peek::Message {
                size: size as usize,
            })
        }
        BLANK_MAGIC => Ok(Peek::Blank),
        0 if size == 0 => Ok(Peek::Empty),
        other => Err(RecordError::BadMagic(other as u32)),
    }
}

/// Every field of a record, borrowed from the bytes it was read from. The properties are a
/// `str` ([`view`]) or, for lenient readers, the bytes as stored ([`view_raw`]).
#[derive(Debug, PartialEq, Eq)]
pub struct RecordView<'a, P: ?Sized = str> {
    pub size: usize,
    pub magic: i32,
    pub body_crc: i32,
    pub queue_id: i32,
    pub flag: i32,
    pub queue_offset: i64,
    pub physical_offset: i64,
    pub sys_flag: i32,
    pub born_timestamp: i64,
    pub born_host: SocketAddr,
    pub store_timestamp: i64,
    pub store_host: SocketAddr,
    pub reconsume_times: i32,
    pub prepared_transaction_offset: i64,
    pub body: &'a [u8],
    pub topic: &'a str,
    pub properties: &'a P,
}

// Every field is `Copy`; derived `Clone` and `Copy` would wrongly require `P: Clone`.
impl<P: ?Sized> Clone for RecordView<'_, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: ?Sized> Copy for RecordView<'_, P> {}

/// Parses the record at the start of `buf` without copying, checking the body CRC when asked.
/// Bytes after the record are ignored.
pub fn view(buf: &[u8], check_crc: bool) -> Result<RecordView<'_>, RecordError> {
    parse(buf, check_crc, |p| {
        std::str::from_utf8(p).map_err(|_| RecordError::NotUtf8)
    })
}

/// [`view`], but the properties are left as stored, not checked to be UTF-8.
pub fn view_raw(buf: &[u8], check_crc: bool) -> Result<RecordView<'_, [u8]>, RecordError> {
    parse(buf, check_crc, Ok)
}

/// The parser of [`view`] and [`view_raw`]; `properties` turns the stored properties into
/// the view's. Inlined into each, so that the view is built once, in place.
#[inline(always)]
fn parse<'a, P: ?Sized>(
    buf: &'a [u8],
    check_crc: bool,
    properties: impl FnOnce(&'a [u8]) -> Result<&'a P, RecordError>,
) -> Result<RecordView<'a, P>, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    let total_size = r.i32()?;
    let magic = r.i32()?;
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(RecordError::BadMagic(magic as u32));
    }
    if total_size < FIXED_OVERHEAD_V1 as i32 || total_size as usize > buf.len() {
        return Err(RecordError::BadSize(total_size));
    }
    let body_crc_stored = r.i32()?;
    let queue_id = r.i32()?;
    let flag = r.i32()?;
    let queue_offset = r.i64()?;
    let physical_offset = r.i64()?;
    let sys_flag = r.i32()?;
    let born_timestamp = r.i64()?;
    let born_host = r.host(sys_flag & sysflag::BORNHOST_V6 != 0)?;
    let store_timestamp = r.i64()?;
    let store_host = r.host(sys_flag & sysflag::STOREHOST_V6 != 0)?;
    let reconsume_times = r.i32()?;
    let prepared_transaction_offset = r.i64()?;
    let body_len = r.i32()?;
    let body = r.len_prefixed(body_len as i64, "body")?;
    if check_crc {
        let computed = body_crc(body);
        if computed != body_crc_stored {
            return Err(RecordError::CrcMismatch {
                stored: body_crc_stored,
                computed,
            });
        }
    }
    let topic_len = if magic == MAGIC_V2 {
        r.i16()? as i64
    } else {
        r.take(1)?[0] as i64
    };
    let topic = r.len_prefixed(topic_len, "topic")?;
    let props_len = r.i16()? as i64;
    let props = r.len_prefixed(props_len, "properties")?;
    if r.pos != total_size as usize {
        return Err(RecordError::LengthMismatch {
            declared: total_size,
            computed: r.pos,
        });
    }
    Ok(RecordView {
        size: total_size as usize,
        magic,
        body_crc: body_crc_stored,
        queue_id,
        flag,
        queue_offset,
        physical_offset,
        sys_flag,
        born_timestamp,
        born_host,
        store_timestamp,
        store_host,
        reconsume_times,
        prepared_transaction_offset,
        body,
        topic: std::str::from_utf8(topic).map_err(|_| RecordError::NotUtf8)?,
        properties: properties(props)?,
    })
}

/// Decodes one whole record into an owned message; checks the CRC when `check_crc`.
pub fn decode(buf: &[u8], check_crc: bool) -> Result<StoredMessage, RecordError> {
    let v = view(buf, check_crc)?;
    Ok(StoredMessage {
        total_size: v.size as i32,
        magic: v.magic,
        body_crc: v.body_crc,
        queue_id: v.queue_id,
        flag: v.flag,
        queue_offset: v.queue_offset,
        physical_offset: v.physical_offset,
        sys_flag: v.sys_flag,
        born_timestamp: v.born_timestamp,
        born_host: v.born_host,
        store_timestamp: v.store_timestamp,
        store_host: v.store_host,
        reconsume_times: v.reconsume_times,
        prepared_transaction_offset: v.prepared_transaction_offset,
        body: Bytes::copy_from_slice(v.body),
        topic: v.topic.to_owned(),
        properties: v.properties.to_owned(),
    })
}

/// Reads STORETIMESTAMP of the record at the start of `buf`.
pub fn store_timestamp(buf: &[u8]) -> Option<i64> {
    let flag = i32::from_be_bytes(buf.get(POS_SYS_FLAG..POS_SYS_FLAG + 4)?.try_into().ok()?);
    let pos = store_timestamp_pos(flag);
    Some(i64::from_be_bytes(buf.get(pos..pos + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(born: SocketAddr) -> NewMessage {
        NewMessage {
            topic: "orders".into(),
            queue_id: 3,
            flag: 7,
            body: Bytes::from_static(b"hello world"),
            properties: encode_properties([("TAGS", "TagA"), ("KEYS", "k1 k2"), ("名前", "値✓")]),
            sys_flag: sysflag::MULTI_TAGS,
            born_timestamp: 1_700_000_000_123,
            born_host: born,
            reconsume_times: 2,
            prepared_transaction_offset: 99,
        }
    }

    fn roundtrip(msg: &NewMessage, store_host: SocketAddr) -> StoredMessage {
        let mut enc = encode(msg, &store_host, 1 << 20).expect("encode");
        patch_assigned(&mut enc.bytes, 42, 4096, 1_700_000_000_999);
        assert_eq!(
            peek(&enc.bytes, enc.bytes.len()),
            Ok(Peek::Message {
                size: enc.bytes.len()
            })
        );
        let info = view(&enc.bytes, true).expect("view");
        assert_eq!((info.queue_offset, info.physical_offset), (42, 4096));
        assert_eq!(store_timestamp(&enc.bytes), Some(1_700_000_000_999));
        decode(&enc.bytes, true).expect("decode")
    }

    fn check_fields(msg: &NewMessage, store_host: SocketAddr, expected_flag: i32) {
        let got = roundtrip(msg, store_host);
        assert_eq!(got.topic, msg.topic);
        assert_eq!(got.queue_id, msg.queue_id);
        assert_eq!(got.flag, msg.flag);
        assert_eq!(got.body, msg.body);
        assert_eq!(got.properties, msg.properties);
        assert_eq!(got.sys_flag, expected_flag);
        assert_eq!(got.born_timestamp, msg.born_timestamp);
        assert_eq!(got.born_host, msg.born_host);
        assert_eq!(got.store_host, store_host);
        assert_eq!(got.reconsume_times, msg.reconsume_times);
        assert_eq!(
            got.prepared_transaction_offset,
            msg.prepared_transaction_offset
        );
        assert_eq!(
            (got.queue_offset, got.physical_offset, got.store_timestamp),
            (42, 4096, 1_700_000_000_999)
        );
        assert_eq!(got.body_crc, body_crc(&msg.body));
    }

    #[test]
    fn ipv4_record_has_rocketmq_layout() {
        let msg = sample("10.0.0.1:5555".parse().expect("addr"));
        let store: SocketAddr = "192.168.1.2:10911".parse().expect("addr");
        let enc = encode(&msg, &store, 1 << 20).expect("encode");
        let props = msg.properties.len();
        assert_eq!(enc.bytes.len(), 91 + 11 + 6 + props);
        assert_eq!(&enc.bytes[4..8], &MAGIC_V1.to_be_bytes());
        assert_eq!(&enc.bytes[48..52], &[10, 0, 0, 1]);
        assert_eq!(&enc.bytes[52..56], &5555i32.to_be_bytes());
        assert_eq!(store_timestamp_pos(enc.sys_flag), 56);
        check_fields(&msg, store, sysflag::MULTI_TAGS);
    }

    #[test]
    fn ipv6_hosts_set_flags_and_shift_fields() {
        let msg = sample("[2001:db8::1]:7000".parse().expect("addr"));
        let store: SocketAddr = "[::1]:10911".parse().expect("addr");
        let enc = encode(&msg, &store, 1 << 20).expect("encode");
        assert_eq!(enc.bytes.len(), 91 + 24 + 11 + 6 + msg.properties.len());
        assert_eq!(store_timestamp_pos(enc.sys_flag), 68);
        check_fields(
            &msg,
            store,
            sysflag::MULTI_TAGS | sysflag::BORNHOST_V6 | sysflag::STOREHOST_V6,
        );
        // Only the born host in IPv6.
        check_fields(
            &msg,
            "1.2.3.4:1".parse().expect("addr"),
            sysflag::MULTI_TAGS | sysflag::BORNHOST_V6,
        );
    }

    #[test]
    fn long_topics_use_v2_magic() {
        let mut msg = sample("1.1.1.1:1".parse().expect("addr"));
        msg.topic = "t".repeat(300);
        let enc = encode(&msg, &"2.2.2.2:2".parse().expect("addr"), 1 << 20).expect("encode");
        assert_eq!(&enc.bytes[4..8], &MAGIC_V2.to_be_bytes());
        let got = roundtrip(&msg, "2.2.2.2:2".parse().expect("addr"));
        assert_eq!(got.topic.len(), 300);
    }

    #[test]
    fn limits_are_enforced() {
        let mut msg = sample("1.1.1.1:1".parse().expect("addr"));
        msg.body = Bytes::from(vec![0u8; 2000]);
        let host = "2.2.2.2:2".parse().expect("addr");
        assert!(matches!(
            encode(&msg, &host, 1000),
            Err(EncodeError::TooLarge { .. })
        ));
        msg.topic = String::new();
        assert!(matches!(
            encode(&msg, &host, 1 << 20),
            Err(EncodeError::Illegal { .. })
        ));
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let msg = sample("1.1.1.1:1".parse().expect("addr"));
        let mut enc = encode(&msg, &"2.2.2.2:2".parse().expect("addr"), 1 << 20).expect("encode");
        let body_pos = enc.bytes.len() - msg.properties.len() - 2 - 7 - 11;
        enc.bytes[body_pos] ^= 0xFF;
        assert!(matches!(
            decode(&enc.bytes, true),
            Err(RecordError::CrcMismatch { .. })
        ));
        assert!(decode(&enc.bytes, false).is_ok());
        for cut in 0..enc.bytes.len() {
            assert!(decode(&enc.bytes[..cut], true).is_err());
        }
        assert_eq!(peek(&[0; 16], 16), Ok(Peek::Empty));
        assert_eq!(
            peek(&[0, 0, 0, 8, 0xCB, 0xD4, 0x31, 0x94], 8),
            Ok(Peek::Blank)
        );
        assert!(peek(&[0, 0, 0, 8, 1, 2, 3, 4], 8).is_err());
    }

    #[test]
    fn raw_view_leaves_properties_unchecked() {
        let mut msg = sample("1.1.1.1:1".parse().expect("addr"));
        msg.properties = "A\u{1}b\u{2}".into();
        let mut bytes = encode(&msg, &"2.2.2.2:2".parse().expect("addr"), 1 << 20)
            .expect("encode")
            .bytes;
        let len = bytes.len();
        // Not UTF-8: the second byte of the properties.
        bytes[len - 3] = 0xFF;
        assert_eq!(view(&bytes, true), Err(RecordError::NotUtf8));
        let raw = view_raw(&bytes, true).expect("raw view");
        assert_eq!(raw.properties, b"A\xFFb\x02");
        assert_eq!((raw.topic, raw.body), ("orders", &b"hello world"[..]));
    }

    #[test]
    fn out_of_range_ports_are_truncated_not_refused() {
        let msg = sample("1.1.1.1:1".parse().expect("addr"));
        let mut bytes = encode(&msg, &"2.2.2.2:2".parse().expect("addr"), 1 << 20)
            .expect("encode")
            .bytes;
        bytes[POS_BORN_HOST + 4..POS_BORN_HOST + 8].copy_from_slice(&0x0001_0050i32.to_be_bytes());
        let got = view(&bytes, true).expect("view");
        assert_eq!(got.born_host, "1.1.1.1:80".parse().expect("addr"));
    }

    #[test]
    fn java_hash_matches_known_values() {
        // Values of java.lang.String#hashCode.
        for (s, h) in [
            ("", 0),
            ("a", 97),
            ("TagA", 2_598_919),
            ("hello", 99_162_322),
            ("é", 233),
            ("😀", 1_772_899),
        ] {
            assert_eq!(java_string_hash(s), h, "{s}");
        }
    }

    #[test]
    fn properties_parse_leniently() {
        let enc = encode_properties([("a", "1"), ("b", "x\u{3}y")]);
        assert_eq!(
            properties(&enc).collect::<Vec<_>>(),
            vec![("a", "1"), ("b", "x\u{3}y")]
        );
        assert_eq!(property("a\u{1}1", "a"), Some("1"));
        assert_eq!(property("\u{2}\u{2}junk\u{2}a\u{1}2", "a"), Some("2"));
        assert_eq!(property("", "a"), None);
    }

    fn arb_host() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| SocketAddr::from((ip, p))),
        ]
    }

    proptest! {
        #[test]
        fn random_batches_roundtrip(
            msgs in proptest::collection::vec((
                "[a-zA-Z0-9_%-]{1,200}",
                any::<i32>(), any::<i32>(),
                proptest::collection::vec(any::<u8>(), 0..2048),
                proptest::collection::vec(("[^\u{1}\u{2}]{1,12}", "[^\u{1}\u{2}]{0,24}"), 0..6),
                arb_host(), arb_host(), any::<i64>(), any::<i32>(), any::<i64>(),
            ), 1..20)
        ) {
            let mut log = Vec::new();
            let mut expected = Vec::new();
            for (i, (topic, qid, flag, body, props, born, store, ts, rc, pto)) in msgs.into_iter().enumerate() {
                let msg = NewMessage {
                    topic, queue_id: qid, flag, body: Bytes::from(body),
                    properties: encode_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                    sys_flag: 0, born_timestamp: ts, born_host: born, reconsume_times: rc,
                    prepared_transaction_offset: pto,
                };
                let mut enc = encode(&msg, &store, 1 << 20).expect("encode");
                patch_assigned(&mut enc.bytes, i as i64, log.len() as i64, ts.wrapping_add(1));
                log.extend_from_slice(&enc.bytes);
                expected.push((msg, store));
            }
            let mut pos = 0;
            for (i, (msg, store)) in expected.iter().enumerate() {
                let Peek::Message { size } = peek(&log[pos..], log.len() - pos).expect("peek") else {
                    panic!("expected a message");
                };
                let got = decode(&log[pos..pos + size], true).expect("decode");
                prop_assert_eq!(&got.topic, &msg.topic);
                prop_assert_eq!(&got.body, &msg.body);
                prop_assert_eq!(&got.properties, &msg.properties);
                prop_assert_eq!(got.born_host, msg.born_host);
                prop_assert_eq!(got.store_host, *store);
                prop_assert_eq!(got.queue_offset, i as i64);
                prop_assert_eq!(got.physical_offset, pos as i64);
                prop_assert_eq!(got.store_timestamp, msg.born_timestamp.wrapping_add(1));
                pos += size;
            }
            prop_assert_eq!(pos, log.len());
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = peek(&bytes, bytes.len());
            let _ = decode(&bytes, true);
            let _ = view(&bytes, true);
            let _ = view_raw(&bytes, false);
            let _ = store_timestamp(&bytes);
        }
    }
}
