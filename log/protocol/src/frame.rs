//! [`FrameCodec`]: splits a byte stream into [`RemotingCommand`]s and back.
//!
//! A frame, big-endian:
//!
//! ```text
//! [length: i32 = 4 + header_len + body_len][serialize_type: u8 | header_len: u24][header][body]
//! ```
//!
//! The codec does no IO: feed it whatever bytes arrived and call
//! [`FrameCodec::decode`] until it returns `Ok(None)`.

use bytes::{Buf, BufMut, BytesMut};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::ProtocolError;

/// Default limit on a frame, length prefix included: 16 MiB, as Netty's frame decoder in the
/// Java broker (`com.rocketmq.remoting.frameMaxLength`).
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Largest header the 24-bit header-length field can describe.
pub const MAX_HEADER_LEN: usize = 0x00FF_FFFF;

/// Bytes before the header: the length prefix and the header-length word.
const PREFIX_LEN: usize = 8;

/// Encodes and decodes frames, enforcing a frame size limit both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    max_frame_len: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec that rejects frames larger than `max_frame_len` bytes, length prefix included.
    /// Values below 8 (the smallest possible frame) are raised to 8.
    pub fn new(max_frame_len: usize) -> Self {
        Self {
            max_frame_len: max_frame_len.max(PREFIX_LEN),
        }
    }

    /// The frame size limit, length prefix included.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Decodes one command from the front of `buf`.
    ///
    /// Returns `Ok(None)` and consumes nothing while the frame is incomplete (it never allocates
    /// for the length a peer claims; the caller's reads grow `buf`). Returns
    /// `Ok(Some(_))` after consuming exactly one frame. On an error for which
    /// [`ProtocolError::closes_connection`] is `false`, the bad frame has been consumed and the
    /// stream is still in sync; on the others the connection must be closed.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RemotingCommand>, ProtocolError> {
        let Some(raw) = buf.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) else {
            return Ok(None);
        };
        if raw < 4 {
            return Err(ProtocolError::FrameTooShort { length: raw });
        }
        let length = raw.unsigned_abs() as usize;
        let frame_len = 4 + length;
        if frame_len > self.max_frame_len {
            return Err(ProtocolError::FrameTooLarge {
                frame_len: frame_len as u64,
                max_frame_len: self.max_frame_len,
            });
        }
        if buf.len() < frame_len {
            return Ok(None);
        }

        let mut frame = buf.split_to(frame_len).freeze();
        frame.advance(4);
        let word = frame.get_u32();
        let header_len = (word & 0x00FF_FFFF) as usize;
        let available = length - 4;
        if header_len > available {
            return Err(ProtocolError::HeaderLengthOutOfRange {
                header_len,
                available,
            });
        }
        let type_code = (word >> 24) as u8;
        let serialize_type = SerializeType::from_code(type_code)
            .ok_or(ProtocolError::UnknownSerializeType { code: type_code })?;
        let mut command =
            RemotingCommand::decode_header_bytes(serialize_type, &frame[..header_len])?;
        frame.advance(header_len);
        command.body = frame;
        Ok(Some(command))
    }

    /// Appends `command` as one frame to `out`, its header serialized as
    /// [`RemotingCommand::serialize_type`] says. On error `out` is left as it was.
    pub fn encode(
        &self,
        command: &RemotingCommand,
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        self.encode_head(command, out)?;
        out.put_slice(&command.body);
        Ok(())
    }

    /// Appends everything of `command`'s frame but the body: the length prefix (which counts
    /// the body), the header-length word and the header. The caller writes `command.body`
    /// right after, which lets a writer send a large body from its own buffer (vectored IO)
    /// instead of copying it. On error `out` is left as it was.
    pub fn encode_head(
        &self,
        command: &RemotingCommand,
        out: &mut BytesMut,
    ) -> Result<(), ProtocolError> {
        let start = out.len();
        out.reserve(PREFIX_LEN + 256);
        out.put_u64(0);
        let result = command.encode_header(out).and_then(|()| {
            let header_len = out.len() - start - PREFIX_LEN;
            if header_len > MAX_HEADER_LEN {
                return Err(ProtocolError::HeaderTooLarge { header_len });
            }
            let frame_len = PREFIX_LEN + header_len + command.body.len();
            if frame_len > self.max_frame_len {
                return Err(ProtocolError::FrameTooLarge {
                    frame_len: frame_len as u64,
                    max_frame_len: self.max_frame_len,
                });
            }
            // Both fit: frame_len <= max_frame_len, which callers keep far below i32::MAX;
            // checked anyway so an absurd limit cannot corrupt the prefix.
            let length =
                i32::try_from(frame_len - 4).map_err(|_| ProtocolError::FrameTooLarge {
                    frame_len: frame_len as u64,
                    max_frame_len: self.max_frame_len,
                })?;
            let word = (u32::from(command.serialize_type.code()) << 24) | header_len as u32;
            out[start..start + 4].copy_from_slice(&length.to_be_bytes());
            out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
            Ok(())
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::command::{ExtFields, LanguageCode};

    fn sample(serialize_type: SerializeType) -> RemotingCommand {
        let mut cmd = RemotingCommand::new_request(crate::codes::request::SEND_MESSAGE_V2, 42)
            .with_remark("remark")
            .with_body(Bytes::from_static(b"body bytes"));
        cmd.ext_fields.insert("a", "group");
        cmd.ext_fields.insert("e", "3");
        cmd.serialize_type = serialize_type;
        cmd
    }

    fn encoded(cmd: &RemotingCommand) -> BytesMut {
        let mut out = BytesMut::new();
        FrameCodec::default()
            .encode(cmd, &mut out)
            .expect("encodes");
        out
    }

    /// A frame with a hand-made header-length word and header.
    fn raw_frame(word: u32, header: &[u8], body: &[u8]) -> BytesMut {
        let mut out = BytesMut::new();
        out.put_i32((4 + header.len() + body.len()) as i32);
        out.put_u32(word);
        out.put_slice(header);
        out.put_slice(body);
        out
    }

    #[test]
    fn frames_round_trip_in_both_serializations() {
        for serialize_type in [SerializeType::Json, SerializeType::RocketMq] {
            let cmd = sample(serialize_type);
            let mut wire = encoded(&cmd);
            assert_eq!(wire[4], serialize_type.code(), "type byte");
            let total = i32::from_be_bytes([wire[0], wire[1], wire[2], wire[3]]) as usize;
            assert_eq!(total + 4, wire.len());
            assert_eq!(
                FrameCodec::default().decode(&mut wire).ok(),
                Some(Some(cmd))
            );
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn byte_by_byte_feed_yields_each_frame_once() {
        let first = sample(SerializeType::Json);
        let second = sample(SerializeType::RocketMq).with_code(11);
        let mut stream = encoded(&first);
        stream.extend_from_slice(&encoded(&second));
        let codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in stream.iter() {
            buf.put_u8(*byte);
            while let Some(cmd) = codec.decode(&mut buf).expect("valid stream") {
                got.push(cmd);
            }
        }
        assert_eq!(got, vec![first, second]);
        assert!(buf.is_empty());
    }

    #[test]
    fn framing_errors_close_the_connection() {
        let codec = FrameCodec::new(1024);
        type Expect = fn(&ProtocolError) -> bool;
        let cases: Vec<(&str, BytesMut, Expect)> = vec![
            (
                "negative length",
                BytesMut::from(&(-1i32).to_be_bytes()[..]),
                |e| matches!(e, ProtocolError::FrameTooShort { length: -1 }),
            ),
            ("length 3", BytesMut::from(&3i32.to_be_bytes()[..]), |e| {
                matches!(e, ProtocolError::FrameTooShort { length: 3 })
            }),
            // Only the prefix has arrived: the limit is checked before waiting for the rest.
            (
                "over the limit",
                BytesMut::from(&1021i32.to_be_bytes()[..]),
                |e| {
                    matches!(
                        e,
                        ProtocolError::FrameTooLarge {
                            frame_len: 1025,
                            max_frame_len: 1024
                        }
                    )
                },
            ),
            ("header longer than frame", raw_frame(5, b"{}", b""), |e| {
                matches!(
                    e,
                    ProtocolError::HeaderLengthOutOfRange {
                        header_len: 5,
                        available: 2
                    }
                )
            }),
            (
                "serialize type 2",
                raw_frame(2 << 24 | 2, b"{}", b""),
                |e| matches!(e, ProtocolError::UnknownSerializeType { code: 2 }),
            ),
        ];
        for (what, mut buf, expect) in cases {
            match codec.decode(&mut buf) {
                Err(e) => {
                    assert!(expect(&e), "{what}: {e:?}");
                    assert!(e.closes_connection(), "{what}");
                }
                Ok(cmd) => panic!("{what}: decoded {cmd:?}"),
            }
        }
    }

    #[test]
    fn bad_header_consumes_its_frame_and_keeps_the_stream_in_sync() {
        let header = br#"{"code":10,"opaque":99,"extFields":[]}"#;
        let mut buf = raw_frame(header.len() as u32, header, b"body");
        buf.extend_from_slice(&encoded(&sample(SerializeType::Json)));
        let codec = FrameCodec::default();
        let err = codec.decode(&mut buf).map(|_| ());
        let Err(err) = err else {
            panic!("bad header decoded");
        };
        assert!(!err.closes_connection());
        assert_eq!(err.request_context(), Some((10, 99)));
        assert_eq!(
            codec.decode(&mut buf).ok(),
            Some(Some(sample(SerializeType::Json)))
        );
    }

    #[test]
    fn a_claimed_length_allocates_nothing() {
        let mut buf = BytesMut::with_capacity(8);
        buf.put_i32((DEFAULT_MAX_FRAME_LEN - 4) as i32);
        buf.put_u32(0);
        let capacity = buf.capacity();
        assert_eq!(FrameCodec::default().decode(&mut buf).ok(), Some(None));
        assert_eq!((buf.len(), buf.capacity()), (8, capacity));
    }

    #[test]
    fn encode_refuses_frames_over_the_limit_and_leaves_output_alone() {
        let codec = FrameCodec::new(64);
        let cmd = sample(SerializeType::Json).with_body(vec![0u8; 64]);
        let mut out = BytesMut::from(&b"prior"[..]);
        let result = codec.encode(&cmd, &mut out);
        assert!(
            matches!(result, Err(ProtocolError::FrameTooLarge { .. })),
            "{result:?}"
        );
        assert_eq!(&out[..], b"prior");
    }

    fn language() -> impl Strategy<Value = LanguageCode> {
        (0u8..14).prop_map(LanguageCode::from_code)
    }

    /// Commands whose every field survives both serializations: the binary header keeps
    /// code and version in 16 bits and reads empty strings as absent.
    fn command() -> impl Strategy<Value = RemotingCommand> {
        (
            any::<i16>(),
            language(),
            any::<i16>(),
            any::<i32>(),
            0i32..4,
            proptest::option::of("\\PC{1,20}"),
            proptest::collection::btree_map("\\PC{1,12}", "\\PC{1,30}", 0..6),
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
        )
            .prop_map(
                |(code, language, version, opaque, flag, remark, ext, body, binary)| {
                    RemotingCommand {
                        code: code.into(),
                        language,
                        version: version.into(),
                        opaque,
                        flag,
                        remark,
                        ext_fields: ext.into_iter().collect::<ExtFields>(),
                        body: body.into(),
                        serialize_type: if binary {
                            SerializeType::RocketMq
                        } else {
                            SerializeType::Json
                        },
                    }
                },
            )
    }

    /// Decodes until the buffer is exhausted or an error; must never panic.
    fn drain(codec: &FrameCodec, buf: &mut BytesMut) -> usize {
        let mut frames = 0;
        loop {
            let before = buf.len();
            match codec.decode(buf) {
                Ok(Some(_)) => {
                    assert!(buf.len() < before, "a decoded frame consumes bytes");
                    frames += 1;
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete frame consumes nothing");
                    return frames;
                }
                Err(_) => return frames,
            }
        }
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(cmd in command()) {
            let mut wire = encoded(&cmd);
            let decoded = FrameCodec::default().decode(&mut wire);
            prop_assert_eq!(decoded.ok(), Some(Some(cmd)));
            prop_assert!(wire.is_empty());
        }

        #[test]
        fn truncated_frames_wait_for_more(cmd in command(), cut in any::<prop::sample::Index>()) {
            let wire = encoded(&cmd);
            let cut = cut.index(wire.len());
            let mut partial = BytesMut::from(&wire[..cut]);
            prop_assert_eq!(FrameCodec::default().decode(&mut partial).ok(), Some(None));
            prop_assert_eq!(partial.len(), cut);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            drain(&FrameCodec::new(256), &mut BytesMut::from(&bytes[..]));
        }

        #[test]
        fn corrupted_frames_never_panic(
            cmd in command(),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let mut wire = encoded(&cmd);
            for (at, byte) in flips {
                let at = at.index(wire.len());
                wire[at] = byte;
            }
            drain(&FrameCodec::default(), &mut wire);
        }

        #[test]
        fn lengths_over_the_limit_are_refused_at_once(length in 1021i32..=i32::MAX) {
            let mut buf = BytesMut::from(&length.to_be_bytes()[..]);
            let is_too_large = matches!(
                FrameCodec::new(1024).decode(&mut buf),
                Err(ProtocolError::FrameTooLarge { .. })
            );
            prop_assert!(is_too_large);
        }

        #[test]
        fn garbage_headers_are_content_errors(
            header in proptest::collection::vec(any::<u8>(), 0..64),
            binary in any::<bool>(),
        ) {
            let word = u32::from(binary) << 24 | header.len() as u32;
            let mut buf = raw_frame(word, &header, b"xyz");
            match FrameCodec::default().decode(&mut buf) {
                Ok(Some(cmd)) => prop_assert_eq!(&cmd.body[..], b"xyz"),
                Ok(None) => prop_assert!(false, "a whole frame was there"),
                Err(e) => prop_assert!(!e.closes_connection(), "{:?}", e),
            }
            prop_assert!(buf.is_empty());
        }
    }
}
