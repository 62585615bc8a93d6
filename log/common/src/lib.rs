//! RocketMQ's message model, shared by every part of the log that handles stored messages: the
//! commit log record layout ([`record`]), the sys flag bits ([`sysflag`]) and the property names
//! and properties string ([`property`]).
//!
//! The store writes and reads its commit log in the [`record`] layout; the broker answers
//! PULL_MESSAGE, QUERY_MESSAGE and VIEW_MESSAGE_BY_ID with records copied from the log as they
//! are, so the client decodes pulled messages with the same code; the protocol crate re-exports
//! the flags and property names for its headers and bodies. As RocketMQ keeps `MessageDecoder`,
//! `MessageSysFlag` and `MessageConst` in `rocketmq-common`, this crate sits below both the
//! store and the protocol, so that the store still knows nothing of the remoting protocol.
//!
//! **Architecture invariant:** this crate does no IO and depends on no other Tributary crate.
//!
//! Entry points: [`record::encode`] and [`record::patch_assigned`] write a record,
//! [`record::peek`], [`record::view`] and [`record::decode`] read one.

pub mod property;
pub mod record;
pub mod sysflag;
