//! Replay: INVOKE_BROKER_TO_RESET_OFFSET (222) moves a consumer group's offsets on a topic to
//! a point in time (or the end of each queue, or one queue's exact offset), and
//! CHECK_CLIENT_CONFIG (46) tells a consumer before it starts whether its subscription can be
//! served.
//!
//! The broker commits the new offsets itself, so a reset works whether or not the group is
//! online (as RocketMQ 5's server-side reset; the 4.x broker refuses an offline group), writes
//! them to `consumerOffset.json` at once, and then sends RESET_CONSUMER_CLIENT_OFFSET (220)
//! one-way to every online member of the group with the same offset table. A member drops
//! what it buffered of those queues and pulls again from the new offsets; until it has, a
//! commit it had in flight may briefly overwrite the reset, and its next commit (of the new
//! offset) puts it back. The answer carries the offset table.

use std::sync::Arc;

use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{CheckClientRequestBody, JsonBody, MessageQueue, ResetOffsetBody};
use tributary_protocol::codes::{request as rq, response as rs};
use tributary_protocol::header::ResetOffsetRequestHeader;

use crate::Broker;
use crate::filter::SubscriptionFilter;
use crate::processor::{Refusal, Reply};

impl Broker {
    /// INVOKE_BROKER_TO_RESET_OFFSET.
    pub(crate) async fn reset_offset(self: &Arc<Self>, request: &RemotingCommand) -> Reply {
        let h: ResetOffsetRequestHeader = request.decode_header()?;
        let Some(topic) = self.topics.get(&h.topic) else {
            return Err(Refusal::new(
                rs::TOPIC_NOT_EXIST,
                format!(
                    "reset offset failed: topic {} does not exist on this broker",
                    h.topic
                ),
            ));
        };
        let online = self.clients.consumer_group(&h.group);
        let known = online.is_some() || self.offsets.groups().iter().any(|(g, _)| *g == h.group);
        if !known {
            return Err(Refusal::new(
                rs::SUBSCRIPTION_GROUP_NOT_EXIST,
                format!(
                    "reset offset failed: consumer group {} is unknown to this broker (no member online, no committed offset)",
                    h.group
                ),
            ));
        }
        let queues: Vec<i32> = match h.queue_id.filter(|q| *q >= 0) {
            Some(q) if q >= topic.read_queue_nums => {
                return Err(Refusal::new(
                    rs::INVALID_PARAMETER,
                    format!(
                        "reset offset failed: queue {q} is out of range, topic {} has {} read queues",
                        h.topic, topic.read_queue_nums
                    ),
                ));
            }
            Some(q) => vec![q],
            None => (0..topic.read_queue_nums).collect(),
        };
        let force = h.is_force.unwrap_or(true);
        let exact = h
            .queue_id
            .filter(|q| *q >= 0)
            .and(h.offset)
            .filter(|o| *o != -1);
        let mut body = ResetOffsetBody::default();
        for queue_id in queues {
            let min = self.store.min_offset(&h.topic, queue_id);
            let max = self.store.max_offset(&h.topic, queue_id);
            let mut target = match exact {
                Some(offset) if offset < min || offset > max => {
                    return Err(Refusal::new(
                        rs::INVALID_PARAMETER,
                        format!(
                            "reset offset failed: offset {offset} is not in queue {queue_id}'s range [{min}, {max}]"
                        ),
                    ));
                }
                Some(offset) => offset,
                None if h.timestamp < 0 => max,
                None => self.store.offset_by_time(&h.topic, queue_id, h.timestamp),
            };
            if !force
                && let Some(current) = self.offsets.get(&h.group, &h.topic, queue_id)
                && current <= target
            {
                // Without force, offsets only move back (the Java broker's rule).
                target = current;
            }
            body.offset_table.insert(
                MessageQueue {
                    topic: h.topic.clone(),
                    broker_name: self.config.broker_name.clone(),
                    queue_id,
                },
                target,
            );
        }
        for (mq, offset) in &body.offset_table {
            self.offsets
                .commit(&h.group, &mq.topic, mq.queue_id, *offset);
        }
        self.flush_offsets().await;
        let encoded = body.encode()?;
        let members = online.map(|g| g.channels.into_values().collect::<Vec<_>>());
        let told = members.as_ref().map_or(0, Vec::len);
        for member in members.into_iter().flatten() {
            let notice = RemotingCommand::new_request(rq::RESET_CONSUMER_CLIENT_OFFSET, 0)
                .with_header(&ResetOffsetRequestHeader {
                    topic: h.topic.clone(),
                    group: h.group.clone(),
                    timestamp: h.timestamp,
                    is_force: Some(force),
                    queue_id: None,
                    offset: None,
                })
                .with_body(encoded.clone());
            if let Err(e) = member.conn.try_oneway(notice) {
                tracing::warn!(group = %h.group, topic = %h.topic, client = %member.client_id, error = %e, "tell a consumer of the offset reset");
            }
        }
        tracing::info!(
            group = %h.group,
            topic = %h.topic,
            timestamp = h.timestamp,
            queues = body.offset_table.len(),
            online_members = told,
            "consumer offsets reset"
        );
        Ok(RemotingCommand::response_to(request).with_body(encoded))
    }

    /// CHECK_CLIENT_CONFIG: SUBSCRIPTION_PARSE_FAILED with the reason when the subscription's
    /// expression cannot be evaluated.
    pub(crate) fn check_client_config(&self, request: &RemotingCommand) -> Reply {
        let body = CheckClientRequestBody::decode(&request.body)?;
        if let Some(sub) = &body.subscription_data
            && let Err(e) = SubscriptionFilter::from_subscription(sub)
        {
            tracing::info!(group = %body.group, client = %body.client_id, topic = %sub.topic, error = %e, "consumer subscription refused");
            return Err(Refusal::new(rs::SUBSCRIPTION_PARSE_FAILED, e.to_string()));
        }
        Ok(RemotingCommand::response_to(request))
    }
}
