//! JSON command bodies (`RemotingSerializable` subclasses in Java), as [`JsonBody`] types.
//!
//! Decoding accepts what fastjson writes and what non-Java clients send:
//! - map keys that are bare integers (`{0:"10.0.0.1:10911"}`, fastjson's form of a
//!   `Map<Long, String>`), via [`quote_integer_keys`];
//! - enums as Java names, as ordinals, or (where clients use them) as aliases;
//! - absent or `null` collections, read as empty;
//! - unknown fields, ignored.
//!
//! Encoding writes standard JSON (quoted keys), which fastjson, Go's `encoding/json` and
//! JavaScript all read; Node's ali-ons cannot read the unquoted form at all.

mod admin;
mod cluster;
mod consumer;
mod heartbeat;
mod lock;
mod namesrv;
mod reset;
mod route;
mod topic_config;

pub use admin::{
    ClientConnection, ConsumerConnection, GroupList, SubscriptionGroupConfig,
    SubscriptionGroupWrapper,
};
pub use cluster::ClusterInfo;
pub use consumer::{CheckClientRequestBody, ConsumerListByGroup};
pub use heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, HeartbeatData, MessageModel, ProducerData,
    SubscriptionData,
};
pub use lock::{LockBatchRequestBody, LockBatchResponseBody, MessageQueue, UnlockBatchRequestBody};
pub use namesrv::{KvTable, TopicList};
pub use reset::ResetOffsetBody;
pub use route::{BrokerData, QueueData, TopicRouteData};
pub use topic_config::{
    DataVersion, RegisterBrokerBody, TopicConfig, TopicConfigSerializeWrapper, TopicFilterType,
};

use std::borrow::Cow;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ProtocolError;

/// A body serialized as JSON.
pub trait JsonBody: Serialize + DeserializeOwned {
    /// Type name used in errors.
    const NAME: &'static str;

    /// Decodes the body leniently (see the module docs).
    fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let text = std::str::from_utf8(body).map_err(|source| ProtocolError::BodyNotUtf8 {
            body: Self::NAME,
            source,
        })?;
        serde_json::from_str(&quote_integer_keys(text)).map_err(|source| {
            ProtocolError::InvalidBody {
                body: Self::NAME,
                source,
            }
        })
    }

    /// Encodes the body as standard JSON.
    fn encode(&self) -> Result<Bytes, ProtocolError> {
        serde_json::to_vec(self)
            .map(Bytes::from)
            .map_err(|source| ProtocolError::BodyEncode {
                body: Self::NAME,
                source,
            })
    }
}

/// Quotes object keys that are bare (optionally negative) integers, as fastjson writes them for
/// maps with numeric keys, so that a standard JSON parser accepts the text. Returns the input
/// unchanged (borrowed) when there is nothing to quote. String contents are never touched.
pub fn quote_integer_keys(json: &str) -> Cow<'_, str> {
    let bytes = json.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b',' => {
                // A key position: after `{` or `,` (inside an array no key follows a `,`, and
                // `,digits:` is not valid JSON there, so this never misfires on valid input).
                let mut j = i + 1;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                let start = j;
                if j < bytes.len() && bytes[j] == b'-' {
                    j += 1;
                }
                let digits = j;
                while j < bytes.len() && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                let end = j;
                while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                    j += 1;
                }
                if end > digits && j < bytes.len() && bytes[j] == b':' {
                    let buf = out.get_or_insert_with(|| String::with_capacity(json.len() + 16));
                    buf.push_str(&json[copied..start]);
                    buf.push('"');
                    buf.push_str(&json[start..end]);
                    buf.push('"');
                    copied = end;
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(json),
        Some(mut buf) => {
            buf.push_str(&json[copied..]);
            Cow::Owned(buf)
        }
    }
}

/// Deserializes `null` as the type's default, for collections clients may send as `null`.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Defines a Java enum mirror that serializes as its Java name and deserializes from the name
/// (any case), an alias, or the Java ordinal.
macro_rules! java_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = ($ordinal:literal, $java:literal $(, $alias:literal)*)
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )*
        }

        impl $name {
            /// The Java enum name.
            pub fn java_name(self) -> &'static str {
                match self {
                    $( Self::$variant => $java, )*
                }
            }

            /// The Java ordinal.
            pub fn ordinal(self) -> u32 {
                match self {
                    $( Self::$variant => $ordinal, )*
                }
            }

            /// Parses a Java name (any case) or alias.
            pub fn from_java_name(name: &str) -> Option<Self> {
                $(
                    if name.eq_ignore_ascii_case($java) $( || name.eq_ignore_ascii_case($alias) )* {
                        return Some(Self::$variant);
                    }
                )*
                None
            }

            /// The variant with a Java ordinal.
            pub fn from_ordinal(ordinal: u64) -> Option<Self> {
                match ordinal {
                    $( $ordinal => Some(Self::$variant), )*
                    _ => None,
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.java_name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " name or ordinal"))
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_java_name(v)
                            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(v), &self))
                    }

                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        $name::from_ordinal(v)
                            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
                    }

                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        u64::try_from(v)
                            .ok()
                            .and_then($name::from_ordinal)
                            .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    }
                }
                deserializer.deserialize_any(Visitor)
            }
        }
    };
}
pub(crate) use java_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_keys_get_quoted_and_strings_stay_intact() {
        let cases = [
            (r#"{"a":1}"#, r#"{"a":1}"#),
            (r#"{0:"x",1:"y"}"#, r#"{"0":"x","1":"y"}"#),
            (r#"{ 0 : "x" , -1:"y"}"#, r#"{ "0" : "x" , "-1":"y"}"#),
            (
                r#"{"s":"{0:1}","m":{12:"a"}}"#,
                r#"{"s":"{0:1}","m":{"12":"a"}}"#,
            ),
            (r#"{"s":"a\",0:b"}"#, r#"{"s":"a\",0:b"}"#),
            (r#"[1,2,{3:4}]"#, r#"[1,2,{"3":4}]"#),
            (r#"{"k":-5}"#, r#"{"k":-5}"#),
            ("", ""),
            ("{", "{"),
            ("{-", "{-"),
        ];
        for (input, expect) in cases {
            assert_eq!(quote_integer_keys(input), expect, "{input}");
        }
    }

    #[test]
    fn unchanged_input_is_borrowed() {
        assert!(matches!(
            quote_integer_keys(r#"{"a":[1,2]}"#),
            Cow::Borrowed(_)
        ));
    }
}
