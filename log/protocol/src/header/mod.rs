//! Typed command headers and their `extFields` form.
//!
//! Every header implements [`CommandHeader`]. Decoding follows the Java broker
//! (`RemotingCommand.decodeCommandCustomHeader`): a missing required field (`@CFNotNull`) is an
//! error, optional fields may be absent, and unknown keys are ignored. Values are strings on the
//! wire; numbers are parsed leniently (surrounding spaces allowed) and booleans accept
//! `true`/`false` in any case and `1`/`0`. Unlike Java, which logs and skips a value that does
//! not parse, an unparsable value is an error naming the field.

mod client;
mod namesrv;
mod offset;
mod pull;
mod query;
mod reply;
mod reset;
mod send;
mod topic;
mod transaction;

pub use client::{
    GetConsumerListByGroupRequestHeader, NotifyConsumerIdsChangedRequestHeader,
    UnregisterClientRequestHeader,
};
pub use namesrv::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    DeleteKvConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader, GetKvConfigRequestHeader,
    GetKvConfigResponseHeader, GetKvListByNamespaceRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, PutKvConfigRequestHeader, QueryDataVersionRequestHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnregisterBrokerRequestHeader, WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
};
pub use offset::{
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, QueryConsumerOffsetRequestHeader,
    QueryConsumerOffsetResponseHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UpdateConsumerOffsetRequestHeader,
};
pub use pull::{PullMessageRequestHeader, PullMessageResponseHeader};
pub use query::{QueryMessageRequestHeader, QueryMessageResponseHeader, ViewMessageRequestHeader};
pub use reply::ReplyMessageRequestHeader;
pub use reset::ResetOffsetRequestHeader;
pub use send::{
    ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader, SendMessageRequestHeaderV2,
    SendMessageResponseHeader,
};
pub use topic::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, QueryTopicsByConsumerRequestHeader,
};
pub use transaction::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};

use compact_str::CompactString;

use crate::command::ExtFields;
use crate::error::ProtocolError;

/// A typed view of a command's `extFields`.
pub trait CommandHeader: Sized {
    /// Reads the header, failing on a missing required field or an unparsable value.
    fn from_ext_fields(fields: &ExtFields) -> Result<Self, ProtocolError>;

    /// Writes every field that is set into `fields`, replacing entries of the same name and
    /// keeping the others.
    fn write_ext_fields(&self, fields: &mut ExtFields);

    /// The header as a fresh map.
    fn to_ext_fields(&self) -> ExtFields {
        let mut fields = ExtFields::new();
        self.write_ext_fields(&mut fields);
        fields
    }
}

/// A header field type: how it is parsed from and written to its string form.
pub trait FieldValue: Sized {
    /// What a valid value looks like, for error messages.
    const EXPECTED: &'static str;

    /// Parses the wire form, `None` when it is not valid.
    fn parse(raw: &str) -> Option<Self>;

    /// The wire form.
    fn render(&self) -> CompactString;
}

impl FieldValue for String {
    const EXPECTED: &'static str = "a string";

    fn parse(raw: &str) -> Option<Self> {
        Some(raw.to_owned())
    }

    fn render(&self) -> CompactString {
        CompactString::from(self.as_str())
    }
}

impl FieldValue for i32 {
    const EXPECTED: &'static str = "a 32-bit integer";

    fn parse(raw: &str) -> Option<Self> {
        raw.trim().parse().ok()
    }

    fn render(&self) -> CompactString {
        CompactString::from(itoa::Buffer::new().format(*self))
    }
}

impl FieldValue for i64 {
    const EXPECTED: &'static str = "a 64-bit integer";

    fn parse(raw: &str) -> Option<Self> {
        raw.trim().parse().ok()
    }

    fn render(&self) -> CompactString {
        CompactString::from(itoa::Buffer::new().format(*self))
    }
}

impl FieldValue for bool {
    const EXPECTED: &'static str = "a boolean (true/false/1/0)";

    fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("true") || raw == "1" {
            Some(true)
        } else if raw.eq_ignore_ascii_case("false") || raw == "0" {
            Some(false)
        } else {
            None
        }
    }

    fn render(&self) -> CompactString {
        CompactString::const_new(if *self { "true" } else { "false" })
    }
}

/// Reads typed fields out of an `extFields` map, naming the header in errors.
#[derive(Debug, Clone, Copy)]
pub struct FieldReader<'a> {
    header: &'static str,
    fields: &'a ExtFields,
}

impl<'a> FieldReader<'a> {
    /// A reader for the header type named `header`.
    pub fn new(header: &'static str, fields: &'a ExtFields) -> Self {
        Self { header, fields }
    }

    /// A field that must be present.
    pub fn required<T: FieldValue>(&self, key: &'static str) -> Result<T, ProtocolError> {
        self.optional(key)?.ok_or(ProtocolError::MissingField {
            header: self.header,
            field: key,
        })
    }

    /// A field that may be absent.
    pub fn optional<T: FieldValue>(&self, key: &'static str) -> Result<Option<T>, ProtocolError> {
        let Some(raw) = self.fields.get(key) else {
            return Ok(None);
        };
        T::parse(raw)
            .map(Some)
            .ok_or_else(|| ProtocolError::InvalidField {
                header: self.header,
                field: key,
                value: raw.chars().take(64).collect(),
                expected: T::EXPECTED,
            })
    }
}

/// Defines a header struct and its [`CommandHeader`] impl from a field list.
///
/// `required name: Type = "wireName"` becomes a `Type` field that must be present;
/// `optional name: Type = "wireName"` becomes an `Option<Type>` field.
macro_rules! command_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$field_meta:meta])*
                $kind:ident $field:ident : $ty:ty = $key:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name {
            $(
                $(#[$field_meta])*
                pub $field: command_header!(@type $kind $ty),
            )*
        }

        impl $crate::header::CommandHeader for $name {
            #[allow(unused_variables)]
            fn from_ext_fields(
                fields: &$crate::command::ExtFields,
            ) -> Result<Self, $crate::error::ProtocolError> {
                let reader = $crate::header::FieldReader::new(stringify!($name), fields);
                Ok(Self {
                    $( $field: reader.$kind($key)?, )*
                })
            }

            #[allow(unused_variables)]
            fn write_ext_fields(&self, fields: &mut $crate::command::ExtFields) {
                $( command_header!(@write $kind fields, $key, &self.$field); )*
            }
        }
    };
    (@type required $ty:ty) => { $ty };
    (@type optional $ty:ty) => { Option<$ty> };
    (@write required $fields:ident, $key:literal, $value:expr) => {
        $fields.insert(
            compact_str::CompactString::const_new($key),
            $crate::header::FieldValue::render($value),
        );
    };
    (@write optional $fields:ident, $key:literal, $value:expr) => {
        if let Some(value) = $value {
            $fields.insert(
                compact_str::CompactString::const_new($key),
                $crate::header::FieldValue::render(value),
            );
        }
    };
}
pub(crate) use command_header;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::command::test_fields as fields;

    #[test]
    fn booleans_are_lenient() {
        let cases = [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("False", Some(false)),
            ("0", Some(false)),
            ("yes", None),
            ("", None),
        ];
        for (raw, expect) in cases {
            assert_eq!(bool::parse(raw), expect, "{raw:?}");
        }
    }

    #[test]
    fn integers_tolerate_spaces_and_reject_garbage() {
        assert_eq!(i32::parse(" 42 "), Some(42));
        assert_eq!(i32::parse("-7"), Some(-7));
        assert_eq!(i32::parse("2147483648"), None);
        assert_eq!(i64::parse("2147483648"), Some(2_147_483_648));
        assert_eq!(i64::parse("1.5"), None);
    }

    #[test]
    fn reader_names_the_missing_and_the_invalid_field() {
        let map = fields(&[("queueId", "x")]);
        let reader = FieldReader::new("SomeHeader", &map);
        let missing = reader.required::<String>("topic").map(|_| ());
        assert!(
            matches!(
                missing,
                Err(ProtocolError::MissingField {
                    header: "SomeHeader",
                    field: "topic"
                })
            ),
            "{missing:?}"
        );
        let invalid = reader.required::<i32>("queueId").map(|_| ());
        assert!(
            matches!(
                &invalid,
                Err(ProtocolError::InvalidField { field: "queueId", value, .. }) if value == "x"
            ),
            "{invalid:?}"
        );
        assert_eq!(reader.optional::<i64>("absent").ok(), Some(None));
    }
}
