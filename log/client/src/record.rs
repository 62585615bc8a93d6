//! Decoding stored records, the body of PULL_MESSAGE, QUERY_MESSAGE and VIEW_MESSAGE_BY_ID
//! answers: RocketMQ's commit log layout (see `log/store/src/record.rs` for the table),
//! concatenated.
//!
//! Bodies are slices of the response ([`Bytes::slice`]), so a pulled message costs no copy of
//! its body unless it was compressed.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, Bytes};
use tributary_protocol::message::{OffsetMessageId, decode_properties};
use tributary_protocol::sysflag::message as sysflag;

use crate::error::{ClientError, Result};
use crate::message::MessageExt;

/// Magic of a V1 record (1-byte topic length).
const MAGIC_V1: i32 = 0xDAA3_20A7_u32 as i32;
/// Magic of a V2 record (2-byte topic length).
const MAGIC_V2: i32 = 0xDAA3_20AB_u32 as i32;
/// Smallest possible record: IPv4 hosts, empty body, topic and properties.
const MIN_RECORD: usize = 91;
/// Largest body inflated from a compressed record (the frame limit: nothing legitimate is
/// larger).
const MAX_INFLATED: u64 = 64 << 20;

/// Decodes every record in `body`. `broker_name` is recorded in each message (the queue it
/// was pulled from).
pub fn decode_messages(body: &Bytes, broker_name: &str) -> Result<Vec<MessageExt>> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < body.len() {
        let (message, size) = decode_at(body, position, broker_name)?;
        out.push(message);
        position += size;
    }
    Ok(out)
}

/// Decodes the record at `position`; returns it and its size.
fn decode_at(body: &Bytes, position: usize, broker_name: &str) -> Result<(MessageExt, usize)> {
    let bad = |reason: String| ClientError::Decode { position, reason };
    let rest = body.slice(position..);
    if rest.len() < MIN_RECORD {
        return Err(bad(format!(
            "{} bytes left, a record needs at least {MIN_RECORD}",
            rest.len()
        )));
    }
    let mut r = rest.clone();
    let total_size = r.get_i32();
    let size = usize::try_from(total_size)
        .ok()
        .filter(|&s| (MIN_RECORD..=rest.len()).contains(&s))
        .ok_or_else(|| {
            bad(format!(
                "total size {total_size} with {} bytes left",
                rest.len()
            ))
        })?;
    let mut r = rest.slice(4..size);
    let need = |r: &Bytes, n: usize, field: &str| {
        if r.len() < n {
            Err(bad(format!("record ends inside {field}")))
        } else {
            Ok(())
        }
    };
    let magic = r.get_i32();
    if magic != MAGIC_V1 && magic != MAGIC_V2 {
        return Err(bad(format!("bad magic code {magic:#010x}")));
    }
    let body_crc = r.get_i32();
    let queue_id = r.get_i32();
    let flag = r.get_i32();
    let queue_offset = r.get_i64();
    let commit_log_offset = r.get_i64();
    let mut sys_flag = r.get_i32();
    let born_timestamp = r.get_i64();
    need(&r, 20, "born host")?;
    let born_host = read_host(&mut r, sys_flag & sysflag::BORNHOST_V6 != 0);
    need(&r, 28, "store host")?;
    let store_timestamp = r.get_i64();
    let store_host = read_host(&mut r, sys_flag & sysflag::STOREHOST_V6 != 0);
    need(&r, 16, "reconsume times")?;
    let reconsume_times = r.get_i32();
    let prepared_transaction_offset = r.get_i64();
    let body_len = r.get_i32();
    let body_len = usize::try_from(body_len)
        .ok()
        .filter(|&n| n <= r.len())
        .ok_or_else(|| bad(format!("body length {body_len} exceeds the record")))?;
    let mut message_body = r.split_to(body_len);
    let topic_len = if magic == MAGIC_V2 {
        need(&r, 2, "topic length")?;
        usize::from(r.get_u16())
    } else {
        need(&r, 1, "topic length")?;
        usize::from(r.get_u8())
    };
    need(&r, topic_len + 2, "topic")?;
    let topic = r.split_to(topic_len);
    let properties_len = usize::from(r.get_u16());
    need(&r, properties_len, "properties")?;
    let properties = r.split_to(properties_len);
    if !r.is_empty() {
        return Err(bad(format!(
            "{} bytes after the properties inside the record",
            r.len()
        )));
    }
    let topic = std::str::from_utf8(&topic)
        .map_err(|_| bad("topic is not UTF-8".into()))?
        .to_owned();
    let properties = decode_properties(&String::from_utf8_lossy(&properties));
    if sys_flag & sysflag::COMPRESSED != 0 {
        match inflate(&message_body, sys_flag) {
            Ok(inflated) => {
                message_body = inflated;
                sys_flag &= !sysflag::COMPRESSED;
            }
            Err(reason) => {
                // Deliver it as stored rather than stall the queue on one message.
                tracing::warn!(
                    topic,
                    queue_id,
                    queue_offset,
                    reason,
                    "cannot inflate a compressed body; delivering it compressed"
                );
            }
        }
    }
    let offset_msg_id = OffsetMessageId::new(store_host, commit_log_offset).to_string();
    Ok((
        MessageExt {
            topic,
            flag,
            body: message_body,
            properties,
            queue_id,
            store_size: total_size,
            queue_offset,
            sys_flag,
            born_timestamp,
            born_host,
            store_timestamp,
            store_host,
            reconsume_times,
            prepared_transaction_offset,
            commit_log_offset,
            body_crc,
            offset_msg_id,
            broker_name: broker_name.to_owned(),
        },
        size,
    ))
}

fn read_host(r: &mut Bytes, v6: bool) -> SocketAddr {
    let ip = if v6 {
        let mut octets = [0u8; 16];
        r.copy_to_slice(&mut octets);
        IpAddr::V6(Ipv6Addr::from(octets))
    } else {
        IpAddr::V4(Ipv4Addr::from(r.get_u32()))
    };
    let port = r.get_i32();
    SocketAddr::new(ip, u16::try_from(port).unwrap_or(0))
}

/// Inflates a compressed body: zlib, the Java default and the meaning of a bare compressed
/// flag. LZ4 and ZSTD (5.x compression types) are not supported.
pub(crate) fn inflate(body: &[u8], sys_flag: i32) -> Result<Bytes, &'static str> {
    match sys_flag & sysflag::COMPRESSION_TYPE_MASK {
        0 | sysflag::COMPRESSION_ZLIB => {}
        sysflag::COMPRESSION_LZ4 => return Err("LZ4 compression is not supported"),
        sysflag::COMPRESSION_ZSTD => return Err("ZSTD compression is not supported"),
        _ => return Err("unknown compression type"),
    }
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::ZlibDecoder::new(body)
        .take(MAX_INFLATED)
        .read_to_end(&mut out)
        .map_err(|_| "bad zlib stream")?;
    Ok(Bytes::from(out))
}

/// Compresses a body with zlib at `level` (0–9), as the Java producer does for bodies over
/// its threshold.
pub fn deflate(body: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(
        Vec::with_capacity(body.len() / 2 + 16),
        flate2::Compression::new(level.min(9)),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use proptest::prelude::*;
    use tributary_protocol::message::{Properties, encode_properties};

    /// One record as a broker stores it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record(
        topic: &str,
        queue_id: i32,
        queue_offset: i64,
        commit_log_offset: i64,
        body: &[u8],
        properties: &Properties,
        sys_flag: i32,
        store_host: SocketAddr,
    ) -> Vec<u8> {
        let props = encode_properties(properties);
        let v6 = store_host.is_ipv6();
        let sys_flag = if v6 {
            sys_flag | sysflag::STOREHOST_V6
        } else {
            sys_flag
        };
        let v2 = topic.len() > 127;
        let host = if v6 { 20 } else { 8 };
        let size = 91 - 8 + host + body.len() + topic.len() + props.len() + usize::from(v2);
        let mut out = BytesMut::with_capacity(size);
        out.put_i32(size as i32);
        out.put_i32(if v2 { MAGIC_V2 } else { MAGIC_V1 });
        out.put_i32(7);
        out.put_i32(queue_id);
        out.put_i32(5);
        out.put_i64(queue_offset);
        out.put_i64(commit_log_offset);
        out.put_i32(sys_flag);
        out.put_i64(1_700_000_000_000);
        out.put_slice(&[10, 0, 0, 9]);
        out.put_i32(40_000);
        out.put_i64(1_700_000_000_001);
        match store_host.ip() {
            IpAddr::V4(ip) => out.put_slice(&ip.octets()),
            IpAddr::V6(ip) => out.put_slice(&ip.octets()),
        }
        out.put_i32(i32::from(store_host.port()));
        out.put_i32(2);
        out.put_i64(0);
        out.put_i32(body.len() as i32);
        out.put_slice(body);
        if v2 {
            out.put_u16(topic.len() as u16);
        } else {
            out.put_u8(topic.len() as u8);
        }
        out.put_slice(topic.as_bytes());
        out.put_u16(props.len() as u16);
        out.put_slice(props.as_bytes());
        assert_eq!(out.len(), size);
        out.to_vec()
    }

    fn props(pairs: &[(&str, &str)]) -> Properties {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn host() -> SocketAddr {
        "192.168.0.7:10911".parse().expect("addr")
    }

    #[test]
    fn decodes_concatenated_records_zero_copy() {
        let mut body = record(
            "T",
            1,
            10,
            4096,
            b"hello",
            &props(&[("TAGS", "a"), ("UNIQ_KEY", "U1")]),
            0,
            host(),
        );
        body.extend(record(
            "T",
            1,
            11,
            5000,
            b"world",
            &props(&[]),
            0,
            "[::1]:10911".parse().expect("addr"),
        ));
        let body = Bytes::from(body);
        let messages = decode_messages(&body, "broker-a").expect("decodes");
        assert_eq!(messages.len(), 2);
        let first = &messages[0];
        assert_eq!(
            (first.topic.as_str(), first.queue_id, first.queue_offset),
            ("T", 1, 10)
        );
        assert_eq!(&first.body[..], b"hello");
        assert_eq!(first.tags(), Some("a"));
        assert_eq!(first.msg_id(), "U1");
        assert_eq!(first.offset_msg_id, "C0A8000700002A9F0000000000001000");
        assert_eq!(
            (first.flag, first.reconsume_times, first.body_crc),
            (5, 2, 7)
        );
        assert_eq!(first.born_host, "10.0.0.9:40000".parse().expect("addr"));
        assert_eq!(first.broker_name, "broker-a");
        // The body shares the response's memory.
        let base = body.as_ptr() as usize;
        let at = first.body.as_ptr() as usize;
        assert!(at > base && at < base + body.len());
        let second = &messages[1];
        assert_eq!(second.msg_id(), second.offset_msg_id);
        assert_eq!(second.offset_msg_id.len(), 56);
        assert_eq!(&second.body[..], b"world");
    }

    #[test]
    fn inflates_zlib_bodies() {
        let plain = b"compress me ".repeat(100);
        let packed = deflate(&plain, 5);
        let body = Bytes::from(record(
            "T",
            0,
            0,
            0,
            &packed,
            &props(&[]),
            sysflag::COMPRESSED,
            host(),
        ));
        let messages = decode_messages(&body, "b").expect("decodes");
        assert_eq!(&messages[0].body[..], &plain[..]);
        assert_eq!(messages[0].sys_flag & sysflag::COMPRESSED, 0);
    }

    #[test]
    fn long_topics_use_v2_records() {
        let topic = "t".repeat(300);
        let body = Bytes::from(record(&topic, 0, 0, 0, b"x", &props(&[]), 0, host()));
        let messages = decode_messages(&body, "b").expect("decodes");
        assert_eq!(messages[0].topic, topic);
    }

    #[test]
    fn damaged_bodies_are_errors() {
        let good = record("T", 0, 0, 0, b"abc", &props(&[("A", "b")]), 0, host());
        for cut in 1..good.len() {
            let result = decode_messages(&Bytes::copy_from_slice(&good[..cut]), "b");
            assert!(result.is_err(), "cut at {cut}");
        }
        let mut bad_magic = good.clone();
        bad_magic[4] ^= 0xFF;
        assert!(decode_messages(&Bytes::from(bad_magic), "b").is_err());
        assert_eq!(decode_messages(&Bytes::new(), "b").ok(), Some(vec![]));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_messages(&Bytes::from(bytes), "b");
        }

        #[test]
        fn records_round_trip(
            topic in "[a-zA-Z0-9_%-]{1,200}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            queue_offset in any::<i64>(),
            commit_log_offset in any::<i64>(),
        ) {
            let bytes = Bytes::from(record(&topic, 3, queue_offset, commit_log_offset, &body, &props(&[("K", "v")]), 0, host()));
            let messages = decode_messages(&bytes, "b").expect("decodes");
            prop_assert_eq!(messages.len(), 1);
            prop_assert_eq!(&messages[0].topic, &topic);
            prop_assert_eq!(&messages[0].body[..], &body[..]);
            prop_assert_eq!(messages[0].queue_offset, queue_offset);
            prop_assert_eq!(messages[0].commit_log_offset, commit_log_offset);
            prop_assert_eq!(messages[0].property("K"), Some("v"));
        }
    }
}
