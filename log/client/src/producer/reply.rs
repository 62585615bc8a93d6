//! Request-reply, as Java's `DefaultMQProducer.request` and `MessageUtil.createReplyMessage`.
//!
//! A requester sends an ordinary message carrying `CORRELATION_ID` (a fresh UUID),
//! `REPLY_TO_CLIENT` (its client id) and `TTL` (the timeout, ms), and waits for the reply with
//! that correlation id. The broker that stores the request adds `CLUSTER`. A replier consumes
//! the request, builds the reply with [`create_reply_message`] (topic
//! `<cluster>_REPLY_TOPIC`, `MSG_TYPE` = `reply`, the request's correlation id, requester and
//! TTL) and sends it with any producer: a reply goes out as SEND_REPLY_MESSAGE_V2. The broker
//! pushes it to the requester's connection (PUSH_REPLY_MESSAGE_TO_CLIENT), and the requester's
//! client instance completes the waiting request. A reply that finds no waiting request (it
//! came after the timeout) is acknowledged and dropped with a log line, as Java does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tributary_protocol::RemotingCommand;
use tributary_protocol::codes::response;
use tributary_protocol::header::ReplyMessageRequestHeader;
use tributary_protocol::message::{decode_properties, property};
use tributary_protocol::sysflag;
use tributary_remoting::Connection;

use super::{MessageQueueSelector, Producer, SendResult};
use crate::error::{ClientError, Result};
use crate::instance::ClientInstance;
use crate::message::{Message, MessageExt};
use crate::now_ms;

/// `MSG_TYPE` of a reply (`MixAll.REPLY_MESSAGE_FLAG`).
pub const REPLY_MESSAGE_FLAG: &str = "reply";
/// Suffix of a cluster's reply topic (`MixAll.REPLY_TOPIC_POSTFIX`).
pub const REPLY_TOPIC_SUFFIX: &str = "REPLY_TOPIC";

/// The reply topic of `cluster`: `<cluster>_REPLY_TOPIC`.
pub fn reply_topic(cluster: &str) -> String {
    format!("{cluster}_{REPLY_TOPIC_SUFFIX}")
}

/// Builds the reply to a request message, as Java's `MessageUtil.createReplyMessage`: topic
/// `<cluster>_REPLY_TOPIC` from the request's `CLUSTER` (which the broker set when it stored
/// the request), `MSG_TYPE` = `reply`, and the request's `CORRELATION_ID`, `REPLY_TO_CLIENT`
/// and `TTL`. Fails for a message that is not a request (no `CLUSTER` or no
/// `REPLY_TO_CLIENT`). Send the reply with any [`Producer`] (or [`Producer::reply`]).
pub fn create_reply_message(request: &MessageExt, body: impl Into<Bytes>) -> Result<Message> {
    let Some(cluster) = request.property(property::CLUSTER) else {
        return Err(ClientError::invalid(format!(
            "message {} is not a request: it has no {} property (the broker that stored it sets one)",
            request.msg_id(),
            property::CLUSTER
        )));
    };
    let Some(reply_to) = request.property(property::MESSAGE_REPLY_TO_CLIENT) else {
        return Err(ClientError::invalid(format!(
            "message {} is not a request: it has no {} property",
            request.msg_id(),
            property::MESSAGE_REPLY_TO_CLIENT
        )));
    };
    let mut reply = Message::new(reply_topic(cluster), body)
        .with_property(property::MESSAGE_TYPE, REPLY_MESSAGE_FLAG)
        .with_property(property::MESSAGE_REPLY_TO_CLIENT, reply_to);
    for name in [property::CORRELATION_ID, property::MESSAGE_TTL] {
        if let Some(value) = request.property(name) {
            reply = reply.with_property(name, value);
        }
    }
    Ok(reply)
}

/// A random UUID (version 4) in its usual text form, as Java's `CorrelationIdUtil`.
fn new_correlation_id() -> String {
    let v: u128 = rand::random();
    let v = (v & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// How a request's message goes out.
enum Target<'a> {
    /// Round robin with retries, as [`Producer::send`].
    Any,
    /// To the queue a selector picks, one attempt, as [`Producer::send_with_selector`].
    Selector(&'a dyn MessageQueueSelector),
}

impl Producer {
    /// Sends `message` as a request and waits for its reply, all within `timeout` (Java's
    /// `request(msg, timeout)`). A responder consumes the request and answers with
    /// [`create_reply_message`]. Errors: the send's error when the request could not be
    /// stored, [`ClientError::RequestTimeout`] when it was but no reply came in time.
    pub async fn request(&self, message: Message, timeout: Duration) -> Result<MessageExt> {
        self.request_to(message, Target::Any, timeout).await
    }

    /// [`Producer::request`] as a `'static` future: spawn as many as you like; each resolves
    /// to its own reply (Java's callback form, `request(msg, callback, timeout)`).
    pub fn request_async(
        &self,
        message: Message,
        timeout: Duration,
    ) -> impl Future<Output = Result<MessageExt>> + Send + 'static {
        let producer = self.clone();
        async move { producer.request(message, timeout).await }
    }

    /// [`Producer::request`] to the queue `selector` picks (one attempt), so that requests of
    /// one key are handled in order.
    pub async fn request_with_selector(
        &self,
        message: Message,
        selector: &dyn MessageQueueSelector,
        timeout: Duration,
    ) -> Result<MessageExt> {
        self.request_to(message, Target::Selector(selector), timeout)
            .await
    }

    /// Sends the reply to a request message (built by [`create_reply_message`]).
    pub async fn reply(&self, request: &MessageExt, body: impl Into<Bytes>) -> Result<SendResult> {
        self.send(create_reply_message(request, body)?).await
    }

    async fn request_to(
        &self,
        message: Message,
        target: Target<'_>,
        timeout: Duration,
    ) -> Result<MessageExt> {
        let deadline = Instant::now() + timeout;
        let instance = self.instance().clone();
        let correlation_id = new_correlation_id();
        let ttl = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let message = message
            .with_property(property::CORRELATION_ID, correlation_id.clone())
            .with_property(property::MESSAGE_REPLY_TO_CLIENT, instance.client_id())
            .with_property(property::MESSAGE_TTL, ttl.to_string());
        let topic = message.topic.clone();
        let outgoing = self.prepare(message.clone())?;
        let route = self.publish_route(&topic).await?;
        // The broker pushes the reply only to a producer it knows on the connection.
        instance.ensure_heartbeat().await?;
        let pending = instance.register_request(&correlation_id);
        let left = deadline.saturating_duration_since(Instant::now());
        let sent = match target {
            Target::Any => self.send_within(outgoing, left).await,
            Target::Selector(selector) => {
                let index = selector
                    .select(&route.publish_queues, &message)
                    .filter(|&i| i < route.publish_queues.len())
                    .ok_or_else(|| ClientError::invalid("the selector chose no queue"))?;
                self.send_once(&outgoing, &route.publish_queues[index], deadline)
                    .await
            }
        };
        let sent = match sent {
            // The client closed under the send: say so rather than how the send broke.
            Err(_) if instance.is_shut_down() => Err(ClientError::Shutdown {
                what: "client instance",
            }),
            other => other,
        }?;
        tracing::debug!(topic, correlation_id, msg_id = %sent.msg_id, "request sent; waiting for the reply");
        let mut pending = pending;
        let reply = tokio::time::timeout_at(deadline, &mut pending.rx).await;
        drop(pending);
        match reply {
            Ok(Ok(reply)) => Ok(reply),
            // The sender goes only with the instance (shut down while waiting).
            Ok(Err(_)) => Err(ClientError::Shutdown {
                what: "client instance",
            }),
            Err(_) => Err(ClientError::RequestTimeout {
                topic,
                correlation_id,
                timeout,
            }),
        }
    }
}

/// PUSH_REPLY_MESSAGE_TO_CLIENT from a broker (Java's `ClientRemotingProcessor.
/// receiveReplyMessage`): the reply as a [`MessageExt`] goes to the request waiting for its
/// correlation id. Answered SUCCESS whether or not a request still waits (a late reply is
/// dropped with a log line), SYSTEM_ERROR when the push cannot be read.
pub(crate) fn receive_reply(
    instance: &ClientInstance,
    conn: &Arc<Connection>,
    request: &RemotingCommand,
) -> RemotingCommand {
    let arrived = now_ms();
    let reply = match decode_reply(request, arrived) {
        Ok(reply) => reply,
        Err(why) => {
            tracing::warn!(broker = %conn.peer(), error = %why, "bad PUSH_REPLY_MESSAGE_TO_CLIENT");
            return RemotingCommand::response_to(request)
                .with_code(response::SYSTEM_ERROR)
                .with_remark(format!("process reply message fail: {why}"));
        }
    };
    let correlation_id = reply
        .property(property::CORRELATION_ID)
        .unwrap_or_default()
        .to_owned();
    let born_host = reply.born_host;
    if instance.complete_request(&correlation_id, reply) {
        tracing::debug!(correlation_id, "reply received");
    } else {
        tracing::warn!(
            correlation_id,
            reply_from = %born_host,
            "received a reply that matches no waiting request (it timed out?); dropped"
        );
    }
    RemotingCommand::response_to(request)
}

fn decode_reply(request: &RemotingCommand, arrived_ms: i64) -> Result<MessageExt, String> {
    let header: ReplyMessageRequestHeader = request.decode_header().map_err(|e| e.to_string())?;
    let host = |text: &str, what: &str| {
        parse_java_host(text).ok_or_else(|| format!("{what} {text:?} is not ip:port"))
    };
    let born_host = host(&header.born_host, "bornHost")?;
    let store_host = host(&header.store_host, "storeHost")?;
    let mut sys_flag = header.sys_flag;
    let body = if sys_flag & sysflag::message::COMPRESSED != 0 {
        sys_flag &= !sysflag::message::COMPRESSED;
        crate::record::inflate(&request.body, header.sys_flag)
            .map_err(|e| format!("reply body: {e}"))?
    } else {
        request.body.clone()
    };
    let mut properties = decode_properties(header.properties.as_deref().unwrap_or(""));
    properties.insert(
        property::REPLY_MESSAGE_ARRIVE_TIME.to_owned(),
        arrived_ms.to_string(),
    );
    Ok(MessageExt {
        topic: header.topic,
        flag: header.flag,
        body,
        properties,
        queue_id: header.queue_id,
        store_size: 0,
        queue_offset: 0,
        sys_flag,
        born_timestamp: header.born_timestamp,
        born_host,
        store_timestamp: header.store_timestamp,
        store_host,
        reconsume_times: header.reconsume_times.unwrap_or(0),
        prepared_transaction_offset: 0,
        commit_log_offset: 0,
        body_crc: 0,
        offset_msg_id: String::new(),
        broker_name: String::new(),
    })
}

/// An address as Java writes it (`ip:port`, IPv6 without brackets) or in Rust's form.
fn parse_java_host(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (ip, port) = text.rsplit_once(':')?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};
    use tributary_protocol::header::CommandHeader;

    fn request_message(props: &[(&str, &str)]) -> MessageExt {
        let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        MessageExt {
            topic: "T".into(),
            flag: 0,
            body: Bytes::from_static(b"ping"),
            properties: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            queue_id: 0,
            store_size: 0,
            queue_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: host,
            store_timestamp: 0,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            commit_log_offset: 0,
            body_crc: 0,
            offset_msg_id: "X".into(),
            broker_name: "b".into(),
        }
    }

    #[test]
    fn reply_messages_are_built_as_java_does() {
        let request = request_message(&[
            ("CLUSTER", "DefaultCluster"),
            ("REPLY_TO_CLIENT", "127.0.0.1@1"),
            ("CORRELATION_ID", "c-1"),
            ("TTL", "3000"),
            ("TAGS", "not-copied"),
        ]);
        let reply = create_reply_message(&request, "pong").expect("a request");
        assert_eq!(reply.topic, "DefaultCluster_REPLY_TOPIC");
        assert_eq!(&reply.body[..], b"pong");
        let props: Vec<(&str, &str)> = reply
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            props,
            [
                ("CORRELATION_ID", "c-1"),
                ("MSG_TYPE", "reply"),
                ("REPLY_TO_CLIENT", "127.0.0.1@1"),
                ("TTL", "3000"),
            ]
        );
        for missing in ["CLUSTER", "REPLY_TO_CLIENT"] {
            let mut m = request.clone();
            m.properties.remove(missing);
            let err = create_reply_message(&m, "x").expect_err("not a request");
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn correlation_ids_are_uuids() {
        let a = new_correlation_id();
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4');
        assert!(matches!(a.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{a}");
        assert_ne!(a, new_correlation_id());
    }

    #[test]
    fn pushed_replies_decode_with_java_hosts_and_compressed_bodies() {
        let header = ReplyMessageRequestHeader {
            producer_group: "replier".into(),
            topic: "DefaultCluster_REPLY_TOPIC".into(),
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            queue_id: 0,
            sys_flag: sysflag::message::COMPRESSED,
            born_timestamp: 5,
            flag: 7,
            properties: Some("CORRELATION_ID\u{1}c-1\u{2}".into()),
            reconsume_times: None,
            unit_mode: Some(false),
            born_host: "::1:40000".into(),
            store_host: "127.0.0.1:10911".into(),
            store_timestamp: 6,
        };
        let mut push = RemotingCommand::new_request(
            tributary_protocol::codes::request::PUSH_REPLY_MESSAGE_TO_CLIENT,
            1,
        )
        .with_body(Bytes::from(crate::record::deflate(b"pong", 5)));
        header.write_ext_fields(&mut push.ext_fields);
        let reply = decode_reply(&push, 42).expect("decodes");
        assert_eq!(&reply.body[..], b"pong");
        assert_eq!(reply.sys_flag, 0);
        assert_eq!(reply.born_host, "[::1]:40000".parse().expect("addr"));
        assert_eq!(reply.property("CORRELATION_ID"), Some("c-1"));
        assert_eq!(reply.property("ARRIVE_TIME"), Some("42"));
        assert_eq!((reply.flag, reply.store_timestamp), (7, 6));
        push.ext_fields.insert("bornHost", "nowhere");
        assert!(decode_reply(&push, 42).is_err());
    }
}
