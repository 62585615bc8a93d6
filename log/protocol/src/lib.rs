//! The RocketMQ 4.x remoting protocol: frames, command headers and bodies, so that existing
//! Java, Go, C++, Python and Node clients can talk to Tributary unchanged.
//!
//! **Architecture invariant:** this crate does no IO. It turns bytes into values and back;
//! sockets, timeouts and request routing belong to the broker and NameServer.
//!
//! Entry points:
//! - [`FrameCodec`] splits a byte stream into [`RemotingCommand`]s
//!   ([`FrameCodec::decode`]) and writes them back ([`FrameCodec::encode`]), enforcing the
//!   frame size limit both ways.
//! - [`RemotingCommand`] is one request or response: code, opaque, flags, the `extFields` map
//!   and a body. [`RemotingCommand::response_to`] starts an answer.
//! - [`header::CommandHeader`] reads and writes typed headers (for example
//!   [`header::SendMessageRequestHeader`], [`header::PullMessageRequestHeader`]) from and to
//!   `extFields`.
//! - [`body::JsonBody`] decodes and encodes JSON bodies (heartbeats, routes, locks, broker
//!   registration), tolerating fastjson's non-standard output.
//! - [`codes`] has the request and response codes; [`sysflag`] and [`perm`] the flag bits;
//!   [`message`] the property names, the properties string, the batch body and offset
//!   message ids.
//!
//! Errors are one [`ProtocolError`]; [`ProtocolError::closes_connection`] tells a framing error
//! (close the connection) from a content error (answer the request).
//!
//! ```
//! use bytes::BytesMut;
//! use tributary_protocol::{FrameCodec, RemotingCommand, codes};
//! use tributary_protocol::header::{CommandHeader, GetMaxOffsetRequestHeader};
//!
//! let codec = FrameCodec::default();
//! let request = RemotingCommand::new_request(codes::request::GET_MAX_OFFSET, 7).with_header(
//!     &GetMaxOffsetRequestHeader { topic: "T".into(), queue_id: 0, committed: None },
//! );
//! let mut wire = BytesMut::new();
//! codec.encode(&request, &mut wire)?;
//!
//! let decoded = codec.decode(&mut wire)?.expect("one whole frame");
//! let header: GetMaxOffsetRequestHeader = decoded.decode_header()?;
//! assert_eq!((header.topic.as_str(), decoded.opaque), ("T", 7));
//! assert!(wire.is_empty());
//! # Ok::<(), tributary_protocol::ProtocolError>(())
//! ```

pub mod body;
pub mod codes;
pub mod command;
pub mod error;
pub mod frame;
pub mod header;
pub mod message;
pub mod perm;
pub mod sysflag;

pub use command::{ExtFields, LanguageCode, MAX_EXT_FIELDS, RemotingCommand, SerializeType};
pub use error::{HeaderError, ProtocolError};
pub use frame::{DEFAULT_MAX_FRAME_LEN, FrameCodec};
