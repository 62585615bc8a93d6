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
    pub fn encode(&self, command: &RemotingCommand, out: &mut BytesMut) -> Result<(), ProtocolError> {
        let start = out.len();
        out.reserve(PREFIX_LEN + 256 + command.body.len());
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
            let length = i32::try_from(frame_len - 4).map_err(|_| ProtocolError::FrameTooLarge {
                frame_len: frame_len as u64,
                max_frame_len: self.max_frame_len,
            })?;
            let word = (u32::from(command.serialize_type.code()) << 24) | header_len as u32;
            out[start..start + 4].copy_from_slice(&length.to_be_bytes());
            out[start + 4..start + 8].copy_from_slice(&word.to_be_bytes());
            Ok(())
        });
        match result {
            Ok(()) => {
                out.put_slice(&command.body);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
}
