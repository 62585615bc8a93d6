//! Decoding stored records, the body of PULL_MESSAGE, QUERY_MESSAGE and VIEW_MESSAGE_BY_ID
//! answers: RocketMQ's commit log layout, concatenated, read with the store's own codec
//! ([`tributary_common::record`]).
//!
//! Bodies are slices of the response ([`Bytes::slice_ref`]), so a pulled message costs no copy of
//! its body unless it was compressed.

use std::io::Read;

use bytes::Bytes;
use tributary_common::record;
use tributary_protocol::message::{OffsetMessageId, decode_properties};
use tributary_protocol::sysflag::message as sysflag;

use crate::error::{ClientError, Result};
use crate::message::MessageExt;

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

/// Decodes the record at `position`; returns it and its size. The body CRC is not checked (the
/// broker checked it when it stored the record), and the properties are decoded leniently, as
/// Java's client does: bytes that are not UTF-8 become U+FFFD.
fn decode_at(body: &Bytes, position: usize, broker_name: &str) -> Result<(MessageExt, usize)> {
    let record = record::view_raw(&body[position..], false).map_err(|e| ClientError::Decode {
        position,
        reason: e.to_string(),
    })?;
    let mut message_body = body.slice_ref(record.body);
    let mut sys_flag = record.sys_flag;
    let topic = record.topic.to_owned();
    let properties = decode_properties(&String::from_utf8_lossy(record.properties));
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
                    queue_id = record.queue_id,
                    queue_offset = record.queue_offset,
                    reason,
                    "cannot inflate a compressed body; delivering it compressed"
                );
            }
        }
    }
    let offset_msg_id = OffsetMessageId::new(record.store_host, record.physical_offset).to_string();
    Ok((
        MessageExt {
            topic,
            flag: record.flag,
            body: message_body,
            properties,
            queue_id: record.queue_id,
            store_size: record.size as i32,
            queue_offset: record.queue_offset,
            sys_flag,
            born_timestamp: record.born_timestamp,
            born_host: record.born_host,
            store_timestamp: record.store_timestamp,
            store_host: record.store_host,
            reconsume_times: record.reconsume_times,
            prepared_transaction_offset: record.prepared_transaction_offset,
            commit_log_offset: record.physical_offset,
            body_crc: record.body_crc,
            offset_msg_id,
            broker_name: broker_name.to_owned(),
        },
        record.size,
    ))
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
    use proptest::prelude::*;
    use std::net::SocketAddr;
    use tributary_common::record::NewMessage;
    use tributary_protocol::message::{Properties, encode_properties};

    /// One record as a broker stores it, written by the store's encoder.
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
        let message = NewMessage {
            flag: 5,
            properties: encode_properties(properties),
            sys_flag,
            born_timestamp: 1_700_000_000_000,
            born_host: "10.0.0.9:40000".parse().expect("addr"),
            reconsume_times: 2,
            ..NewMessage::new(topic, queue_id, body.to_vec())
        };
        let mut bytes = record::encode(&message, &store_host, usize::MAX)
            .expect("encode")
            .bytes;
        record::patch_assigned(
            &mut bytes,
            queue_offset,
            commit_log_offset,
            1_700_000_000_001,
        );
        bytes
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
            (5, 2, record::body_crc(b"hello"))
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
