//! [`RemotingCommand`]: one request or response of the remoting protocol, and the two header
//! serializations it travels in (JSON and the ROCKETMQ binary layout).

mod fields;
mod json;
mod rocketmq;

use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::error::{HeaderError, ProtocolError};
use crate::header::CommandHeader;

pub use fields::{ExtFields, MAX_EXT_FIELDS};

/// Builds extension fields from pairs, for tests across the crate.
#[cfg(test)]
pub(crate) fn test_fields(pairs: &[(&str, &str)]) -> ExtFields {
    pairs.iter().copied().collect()
}

/// Bit of [`RemotingCommand::flag`] set on responses.
pub const FLAG_RESPONSE: i32 = 1;
/// Bit of [`RemotingCommand::flag`] set on one-way requests (no response expected).
pub const FLAG_ONEWAY: i32 = 1 << 1;

/// How a command header is serialized: the high byte of the header-length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SerializeType {
    /// fastjson-style JSON object (code 0); what every 4.x client sends by default.
    #[default]
    Json,
    /// RocketMQ's compact binary layout (code 1).
    RocketMq,
}

impl SerializeType {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Self::Json => 0,
            Self::RocketMq => 1,
        }
    }

    /// The type for a wire code, `None` when unknown.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Json),
            1 => Some(Self::RocketMq),
            _ => None,
        }
    }

    /// The Java enum name, as written in `serializeTypeCurrentRPC`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::RocketMq => "ROCKETMQ",
        }
    }
}

/// The client language a command declares. Servers only log it, so unknown values are kept
/// rather than rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum LanguageCode {
    /// 0
    #[default]
    Java,
    /// 1
    Cpp,
    /// 2
    DotNet,
    /// 3
    Python,
    /// 4
    Delphi,
    /// 5
    Erlang,
    /// 6
    Ruby,
    /// 7
    Other,
    /// 8
    Http,
    /// 9
    Go,
    /// 10
    Php,
    /// 11
    Oms,
    /// 12
    Rust,
    /// 13
    NodeJs,
    /// A name or number Java's `LanguageCode` does not know, kept as received (a number in
    /// decimal). Encoded as that number in binary headers when it is one, else as `OTHER`.
    Unknown(String),
}

/// Known languages: (wire code, Java enum name, variant).
const LANGUAGES: [(u8, &str, LanguageCode); 14] = [
    (0, "JAVA", LanguageCode::Java),
    (1, "CPP", LanguageCode::Cpp),
    (2, "DOTNET", LanguageCode::DotNet),
    (3, "PYTHON", LanguageCode::Python),
    (4, "DELPHI", LanguageCode::Delphi),
    (5, "ERLANG", LanguageCode::Erlang),
    (6, "RUBY", LanguageCode::Ruby),
    (7, "OTHER", LanguageCode::Other),
    (8, "HTTP", LanguageCode::Http),
    (9, "GO", LanguageCode::Go),
    (10, "PHP", LanguageCode::Php),
    (11, "OMS", LanguageCode::Oms),
    (12, "RUST", LanguageCode::Rust),
    (13, "NODE_JS", LanguageCode::NodeJs),
];

impl LanguageCode {
    /// The language for a wire code; unknown codes become [`LanguageCode::Unknown`].
    pub fn from_code(code: u8) -> Self {
        LANGUAGES
            .iter()
            .find(|(c, _, _)| *c == code)
            .map_or_else(|| Self::Unknown(code.to_string()), |(_, _, l)| l.clone())
    }

    /// The language for a Java enum name; unknown names become [`LanguageCode::Unknown`].
    pub fn from_name(name: &str) -> Self {
        LANGUAGES
            .iter()
            .find(|(_, n, _)| *n == name)
            .map_or_else(|| Self::Unknown(name.to_owned()), |(_, _, l)| l.clone())
    }

    /// The wire code. An unknown language that is a number in `0..=255` keeps that number;
    /// any other unknown value is sent as `OTHER` (7).
    pub fn code(&self) -> u8 {
        match self {
            Self::Unknown(raw) => raw.parse().unwrap_or(7),
            known => LANGUAGES
                .iter()
                .find(|(_, _, l)| l == known)
                .map_or(7, |(c, _, _)| *c),
        }
    }

    /// The Java enum name, or the kept value for unknown languages.
    pub fn name(&self) -> &str {
        match self {
            Self::Unknown(raw) => raw,
            known => LANGUAGES
                .iter()
                .find(|(_, _, l)| l == known)
                .map_or("OTHER", |(_, n, _)| n),
        }
    }
}

impl fmt::Display for LanguageCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One remoting command: a request, a response or a one-way request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemotingCommand {
    /// Request code (see [`crate::codes::request`]) or response code
    /// (see [`crate::codes::response`]).
    pub code: i32,
    /// Language of the sender.
    pub language: LanguageCode,
    /// Sender's RocketMQ version ordinal (`MQVersion.Version`), 0 when unset.
    pub version: i32,
    /// Request id, echoed by the response.
    pub opaque: i32,
    /// Bit 0: response ([`FLAG_RESPONSE`]); bit 1: one-way ([`FLAG_ONEWAY`]).
    pub flag: i32,
    /// Free text, usually the error message of a response.
    pub remark: Option<String>,
    /// The typed header in string form; see [`crate::header`].
    pub ext_fields: ExtFields,
    /// The body, uninterpreted.
    pub body: Bytes,
    /// How the header is (or will be) serialized. A response must use the request's.
    pub serialize_type: SerializeType,
}

impl RemotingCommand {
    /// A request with the given code and opaque, JSON-serialized.
    ///
    /// Commands we create say language JAVA, as the Java broker does: older clients parse the
    /// language into an enum that may not know RUST. Set `language` to say otherwise.
    pub fn new_request(code: i32, opaque: i32) -> Self {
        Self {
            code,
            opaque,
            ..Self::default()
        }
    }

    /// A response with the given code and remark. Set `opaque` and `serialize_type` from the
    /// request, or use [`RemotingCommand::response_to`].
    pub fn new_response(code: i32, remark: Option<String>) -> Self {
        Self {
            code,
            remark,
            flag: FLAG_RESPONSE,
            ..Self::default()
        }
    }

    /// A response to `request`: same opaque and serialize type, code SUCCESS (0), no remark.
    pub fn response_to(request: &Self) -> Self {
        Self {
            opaque: request.opaque,
            serialize_type: request.serialize_type,
            ..Self::new_response(crate::codes::response::SUCCESS, None)
        }
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    /// Whether this is a one-way request (the sender expects no response).
    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    /// Marks this command as a one-way request.
    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    /// Sets the code, returning `self`.
    pub fn with_code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }

    /// Sets the remark, returning `self`.
    pub fn with_remark(mut self, remark: impl Into<String>) -> Self {
        self.remark = Some(remark.into());
        self
    }

    /// Sets the body, returning `self`.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Writes a typed header into `ext_fields` (keeping entries it does not set), returning
    /// `self`.
    pub fn with_header(mut self, header: &impl CommandHeader) -> Self {
        header.write_ext_fields(&mut self.ext_fields);
        self
    }

    /// Reads a typed header from `ext_fields`.
    pub fn decode_header<H: CommandHeader>(&self) -> Result<H, ProtocolError> {
        H::from_ext_fields(&self.ext_fields)
    }

    /// Serializes the header (not the body) in [`RemotingCommand::serialize_type`].
    pub(crate) fn encode_header(&self, out: &mut BytesMut) -> Result<(), ProtocolError> {
        match self.serialize_type {
            SerializeType::Json => {
                json::encode(self, out);
                Ok(())
            }
            SerializeType::RocketMq => rocketmq::encode(self, out),
        }
    }

    /// Decodes a header of the given serialization; the body is left empty.
    pub(crate) fn decode_header_bytes(
        serialize_type: SerializeType,
        header: &[u8],
    ) -> Result<Self, ProtocolError> {
        let result = match serialize_type {
            SerializeType::Json => json::decode(header),
            SerializeType::RocketMq => rocketmq::decode(header),
        };
        result.map_err(|fault| ProtocolError::InvalidHeader {
            serialize_type,
            code: fault.prefix.code,
            opaque: fault.prefix.opaque,
            flag: fault.prefix.flag,
            source: fault.error,
        })
    }
}

/// What a header decoder could read before failing.
#[derive(Debug, Default, Clone, Copy)]
struct Prefix {
    code: Option<i32>,
    opaque: Option<i32>,
    flag: Option<i32>,
}

/// A header decoding failure with what could be read before it.
#[derive(Debug)]
struct HeaderFault {
    prefix: Prefix,
    error: HeaderError,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_to_copies_opaque_and_serialization() {
        let mut request = RemotingCommand::new_request(crate::codes::request::HEART_BEAT, 31);
        request.serialize_type = SerializeType::RocketMq;
        request.mark_oneway();
        assert!(request.is_oneway() && !request.is_response());
        let response = RemotingCommand::response_to(&request);
        assert_eq!(
            (
                response.opaque,
                response.serialize_type,
                response.code,
                response.flag
            ),
            (
                31,
                SerializeType::RocketMq,
                crate::codes::response::SUCCESS,
                FLAG_RESPONSE
            )
        );
        assert!(response.is_response() && !response.is_oneway());
        let error = RemotingCommand::new_response(
            crate::codes::response::SYSTEM_ERROR,
            Some("boom".into()),
        );
        assert_eq!((error.code, error.remark.as_deref()), (1, Some("boom")));
    }

    #[test]
    fn language_codes_and_names_agree() {
        for code in 0..14u8 {
            let language = LanguageCode::from_code(code);
            assert_eq!(language.code(), code);
            assert_eq!(LanguageCode::from_name(language.name()), language);
        }
        assert_eq!(
            LanguageCode::from_code(99),
            LanguageCode::Unknown("99".into())
        );
        assert_eq!(LanguageCode::Unknown("99".into()).code(), 99);
        assert_eq!(LanguageCode::Unknown("NODE".into()).code(), 7);
    }
}
