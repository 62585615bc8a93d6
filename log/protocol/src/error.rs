//! The one error type of the crate.

use std::str::Utf8Error;

use crate::command::SerializeType;

/// Everything that can go wrong while decoding or encoding remoting traffic.
///
/// Two families matter to a server:
/// - framing errors ([`ProtocolError::closes_connection`] is `true`): the byte stream can no
///   longer be trusted and the connection must be closed;
/// - content errors (a bad header, a missing field, a malformed body): the frame boundary was
///   intact, so the caller may answer the request, using [`ProtocolError::request_context`] to
///   address the response when the header was too broken to decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length prefix is smaller than the 4-byte header-length word it must cover.
    #[error("decode frame: length field {length} is below the minimum of 4")]
    FrameTooShort {
        /// The length field as read.
        length: i32,
    },

    /// The frame (length prefix included) is larger than the configured limit.
    #[error("decode frame: frame of {frame_len} bytes exceeds the limit of {max_frame_len} bytes")]
    FrameTooLarge {
        /// Bytes the frame claims (or would take, when encoding), length prefix included.
        frame_len: u64,
        /// The configured limit.
        max_frame_len: usize,
    },

    /// The header length does not fit in the frame.
    #[error(
        "decode frame: header length {header_len} exceeds the {available} bytes after the header-length word"
    )]
    HeaderLengthOutOfRange {
        /// Header length from the header-length word.
        header_len: usize,
        /// Bytes left in the frame for header and body.
        available: usize,
    },

    /// The serialize-type byte is neither 0 (JSON) nor 1 (ROCKETMQ).
    #[error("decode frame: unknown serialize type {code}")]
    UnknownSerializeType {
        /// The byte as read.
        code: u8,
    },

    /// The frame was complete but its header could not be decoded.
    #[error("decode {serialize_type:?} header (code {code:?}, opaque {opaque:?})")]
    InvalidHeader {
        /// How the header was serialized.
        serialize_type: SerializeType,
        /// The request code, when it could be read.
        code: Option<i32>,
        /// The opaque (request id), when it could be read.
        opaque: Option<i32>,
        /// The flag word, when it could be read.
        flag: Option<i32>,
        /// What was wrong.
        #[source]
        source: HeaderError,
    },

    /// An encoded header would not fit the 24-bit header-length field.
    #[error("encode header: {header_len} bytes do not fit the 24-bit header length")]
    HeaderTooLarge {
        /// Size of the encoded header.
        header_len: usize,
    },

    /// A command field does not fit its slot in the ROCKETMQ binary header.
    #[error("encode ROCKETMQ header: {field} {value} does not fit in 16 bits")]
    FieldOutOfRange {
        /// Field name.
        field: &'static str,
        /// The value that did not fit.
        value: i32,
    },

    /// A required extFields entry is absent.
    #[error("decode {header}: required field `{field}` is missing")]
    MissingField {
        /// The header type being decoded.
        header: &'static str,
        /// The extFields key.
        field: &'static str,
    },

    /// An extFields entry does not parse as the type the header needs.
    #[error("decode {header}: field `{field}` = {value:?} is not {expected}")]
    InvalidField {
        /// The header type being decoded.
        header: &'static str,
        /// The extFields key.
        field: &'static str,
        /// The value as received.
        value: String,
        /// What was expected, e.g. "a 32-bit integer".
        expected: &'static str,
    },

    /// A JSON body did not decode.
    #[error("decode {body} body")]
    InvalidBody {
        /// The body type being decoded.
        body: &'static str,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON body did not encode (a bug: our body types always serialize).
    #[error("encode {body} body")]
    BodyEncode {
        /// The body type being encoded.
        body: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON body is not UTF-8.
    #[error("decode {body} body: not UTF-8")]
    BodyNotUtf8 {
        /// The body type being decoded.
        body: &'static str,
        /// Where the bytes went wrong.
        #[source]
        source: Utf8Error,
    },

    /// A body uses an encoding this crate does not decode.
    #[error("decode {body} body: {reason}")]
    UnsupportedBody {
        /// The body type being decoded.
        body: &'static str,
        /// Why it is not supported.
        reason: &'static str,
    },

    /// A batch body (SEND_BATCH_MESSAGE) is malformed.
    #[error("decode message batch: message #{index} at byte {position}: {reason}")]
    InvalidMessageBatch {
        /// Zero-based index of the message in the batch.
        index: usize,
        /// Byte position of the message in the body.
        position: usize,
        /// What was wrong.
        reason: String,
    },

    /// A message cannot be encoded into a batch body.
    #[error("encode message batch: message #{index}: {reason}")]
    MessageTooLarge {
        /// Zero-based index of the message in the batch.
        index: usize,
        /// Which limit was exceeded.
        reason: String,
    },

    /// An offset message id (store host + commit log offset) is malformed.
    #[error("decode offset message id {id:?}: {reason}")]
    InvalidMessageId {
        /// The id as given (truncated to 64 characters).
        id: String,
        /// What was wrong.
        reason: &'static str,
    },
}

impl ProtocolError {
    /// Whether the byte stream is out of sync after this error, so the connection must be
    /// closed. `false` means the frame was consumed whole and the caller may answer.
    pub fn closes_connection(&self) -> bool {
        matches!(
            self,
            Self::FrameTooShort { .. }
                | Self::FrameTooLarge { .. }
                | Self::HeaderLengthOutOfRange { .. }
                | Self::UnknownSerializeType { .. }
        )
    }

    /// The request code and opaque of a command whose header failed to decode, when both
    /// could be read: enough to send an error response the client can match to its request.
    pub fn request_context(&self) -> Option<(i32, i32)> {
        match self {
            Self::InvalidHeader {
                code: Some(code),
                opaque: Some(opaque),
                ..
            } => Some((*code, *opaque)),
            _ => None,
        }
    }
}

/// Why a header failed to decode. Carried by [`ProtocolError::InvalidHeader`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The JSON header is not well-formed JSON, or not an object.
    #[error("malformed JSON")]
    Json(#[from] serde_json::Error),

    /// A JSON header field has a type the Java broker would not accept either.
    #[error("field `{field}` is not {expected}")]
    FieldType {
        /// The JSON key.
        field: String,
        /// What was expected.
        expected: &'static str,
    },

    /// The header has more `extFields` entries than [`crate::command::MAX_EXT_FIELDS`].
    #[error("more than {limit} extFields entries")]
    TooManyFields {
        /// The limit.
        limit: usize,
    },

    /// The binary header ends inside a field.
    #[error("truncated inside {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },

    /// A length inside the binary header is negative or runs past its enclosing region.
    #[error("{what} length {len} is out of range ({available} bytes available)")]
    LengthOutOfRange {
        /// The field whose length is wrong.
        what: &'static str,
        /// The length as read.
        len: i64,
        /// Bytes that were left.
        available: usize,
    },

    /// A string in the binary header is not UTF-8.
    #[error("{what} is not UTF-8")]
    NotUtf8 {
        /// The field being read.
        what: &'static str,
    },

    /// Bytes remain in the binary header after the extFields map.
    #[error("{count} unread bytes after the extFields map")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}
