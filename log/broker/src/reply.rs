//! Request-reply, as RocketMQ's `ReplyMessageProcessor`: a replier sends its reply with
//! SEND_REPLY_MESSAGE (324) or SEND_REPLY_MESSAGE_V2 (325) to the cluster's reply topic
//! `<cluster>_REPLY_TOPIC`; the broker pushes it at once to the requesting client, found by
//! the reply's `REPLY_TO_CLIENT` property among the producers connected to this broker, with
//! PUSH_REPLY_MESSAGE_TO_CLIENT (326), and, with `store_reply_messages`, also stores it.
//!
//! The answer follows the Java broker: SUCCESS once the requester acknowledged the push,
//! SYSTEM_ERROR with the reason when the reply names no requester, the requester is not
//! connected here as a producer, or the push failed. Storing does not change the answer; it
//! only puts the stored message's id and offset into the response.

use std::net::SocketAddr;

use tributary_protocol::header::{ReplyMessageRequestHeader, SendMessageRequestHeader};
use tributary_protocol::message::{
    OffsetMessageId, decode_properties, encode_properties, property,
};
use tributary_protocol::{RemotingCommand, codes};
use tributary_remoting::Connection;

use crate::Broker;
use crate::processor::Reply;
use crate::stats::BrokerStats;

use codes::response as rs;

/// Suffix of the reply topic of a cluster (`MixAll.REPLY_TOPIC_POSTFIX`).
pub const REPLY_TOPIC_SUFFIX: &str = "REPLY_TOPIC";

/// The reply topic of `cluster`: `<cluster>_REPLY_TOPIC`. Every broker creates its cluster's
/// at start (one queue, read and write) and registers it with the NameServers, so that
/// repliers find a route to it.
pub fn reply_topic(cluster: &str) -> String {
    format!("{cluster}_{REPLY_TOPIC_SUFFIX}")
}

/// An address as Java's `InetAddress.getHostAddress() + ":" + port` writes it (no brackets
/// around IPv6), which Java clients parse back at the last colon.
fn java_host(addr: SocketAddr) -> String {
    format!("{}:{}", addr.ip(), addr.port())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Broker {
    /// SEND_REPLY_MESSAGE and SEND_REPLY_MESSAGE_V2.
    pub(crate) async fn send_reply(&self, conn: &Connection, request: &RemotingCommand) -> Reply {
        let header = SendMessageRequestHeader::from_command(request)?;
        // The checks of any send (Java's `msgCheck`): topic name, existence or creation from
        // the template, write permission, queue id.
        let queue_id = self.send_target(&header)?;
        let properties = header.properties.clone().unwrap_or_default();
        let pushed = self.push_reply(conn, &header, request, &properties).await;
        let (mut msg_id, mut queue_offset) = ("0".to_owned(), 0);
        if self.config.store_reply_messages {
            let message = Self::new_message(
                &header,
                queue_id,
                conn,
                header.flag,
                request.body.clone(),
                properties,
            );
            match self.store.append(&message) {
                Ok((result, durable)) => {
                    if let Err(e) = durable.await {
                        tracing::warn!(topic = %header.topic, error = %e, "stored reply message not known durable");
                    }
                    BrokerStats::add(&self.stats.replies_stored, 1);
                    msg_id = OffsetMessageId::new(
                        self.store.config().store_host,
                        result.physical_offset as i64,
                    )
                    .to_string();
                    queue_offset = result.queue_offset;
                }
                // As Java: the answer is the push's; a failed store is only logged.
                Err(e) => {
                    tracing::warn!(topic = %header.topic, error = %e, "store reply message");
                }
            }
        }
        let (code, remark) = match pushed {
            Ok(()) => (rs::SUCCESS, None),
            Err(why) => (rs::SYSTEM_ERROR, Some(why)),
        };
        Ok(self.send_response(request, code, msg_id, queue_id, queue_offset, remark))
    }

    /// Pushes a reply to the client named by its `REPLY_TO_CLIENT` property; the error is the
    /// remark the replier gets.
    async fn push_reply(
        &self,
        conn: &Connection,
        header: &SendMessageRequestHeader,
        request: &RemotingCommand,
        properties: &str,
    ) -> Result<(), String> {
        let missing = |why: String| {
            BrokerStats::add(&self.stats.replies_requester_missing, 1);
            tracing::warn!(replier = %conn.peer(), topic = %header.topic, "{why}");
            why
        };
        let Some(requester) =
            tributary_store::record::property(properties, property::MESSAGE_REPLY_TO_CLIENT)
        else {
            return Err(missing(format!(
                "reply message properties[{}] is null",
                property::MESSAGE_REPLY_TO_CLIENT
            )));
        };
        let Some(channel) = self.clients.find_producer(requester) else {
            return Err(missing(format!(
                "push reply message fail, channel of <{requester}> not found."
            )));
        };
        let now = now_ms();
        let mut props = decode_properties(properties);
        props.insert(property::PUSH_REPLY_TIME.to_owned(), now.to_string());
        let push = ReplyMessageRequestHeader {
            producer_group: header.producer_group.clone(),
            topic: header.topic.clone(),
            default_topic: header.default_topic.clone(),
            default_topic_queue_nums: header.default_topic_queue_nums,
            queue_id: header.queue_id,
            sys_flag: header.sys_flag,
            born_timestamp: header.born_timestamp,
            flag: header.flag,
            properties: Some(encode_properties(&props)),
            reconsume_times: header.reconsume_times,
            unit_mode: Some(header.unit_mode.unwrap_or(false)),
            born_host: java_host(conn.peer()),
            store_host: java_host(self.store.config().store_host),
            store_timestamp: now,
        };
        let push = RemotingCommand::new_request(codes::request::PUSH_REPLY_MESSAGE_TO_CLIENT, 0)
            .with_header(&push)
            .with_body(request.body.clone());
        let timeout = std::time::Duration::from_millis(self.config.reply_push_timeout_ms);
        let correlation_id = decode_correlation(&props);
        let failed = |why: String| {
            BrokerStats::add(&self.stats.reply_push_failures, 1);
            tracing::warn!(requester, correlation_id, peer = %channel.conn.peer(), "{why}");
            why
        };
        match channel.conn.invoke(push, timeout).await {
            Ok(answer) if answer.code == rs::SUCCESS => {
                BrokerStats::add(&self.stats.replies_pushed, 1);
                tracing::debug!(requester, correlation_id, "reply pushed to the requester");
                Ok(())
            }
            Ok(answer) => Err(failed(format!(
                "push reply message to <{requester}> fail: the client answered code {}: {}",
                answer.code,
                answer.remark.unwrap_or_default()
            ))),
            Err(e) => Err(failed(format!(
                "push reply message to <{requester}> fail: {e}"
            ))),
        }
    }
}

fn decode_correlation(props: &tributary_protocol::message::Properties) -> &str {
    props
        .get(property::CORRELATION_ID)
        .map_or("", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_topic_and_hosts_are_written_as_java_does() {
        assert_eq!(reply_topic("DefaultCluster"), "DefaultCluster_REPLY_TOPIC");
        assert_eq!(
            java_host("127.0.0.1:10911".parse().expect("addr")),
            "127.0.0.1:10911"
        );
        assert_eq!(java_host("[::1]:10911".parse().expect("addr")), "::1:10911");
    }
}
