//! Consumer retries and dead letters, as RocketMQ's broker:
//!
//! - CONSUMER_SEND_MSG_BACK (36): a consumer returns a message it could not consume. The broker
//!   reads it back by commit-log offset and stores a copy in the group's retry topic
//!   `%RETRY%<group>` with delay level `3 + reconsume times` (10 s, 30 s, 1 m, 2 m … 2 h with
//!   the default levels) unless the consumer asked for another level, and RECONSUMETIMES one
//!   higher. Once a message was reconsumed `maxReconsumeTimes` times (the request's, else the
//!   group's `retryMaxTimes`, else `broker.max_reconsume_times`, 16), or when the consumer
//!   asks for a negative level, the copy goes to the dead-letter topic `%DLQ%<group>` instead,
//!   at once. The copy keeps body, properties, flag, born time and host; `RETRY_TOPIC` names
//!   the original topic (set on the first retry) and `ORIGIN_MESSAGE_ID` the first stored
//!   message's offset id.
//! - A message a client sends straight to a retry topic (the Java client's fallback when a
//!   send-back fails) goes to the dead-letter topic when its reconsume times exceed the
//!   maximum (`handleRetryAndDLQ`).

use std::sync::Arc;

use tributary_protocol::body::TopicConfig;
use tributary_protocol::header::{ConsumerSendMsgBackRequestHeader, SendMessageRequestHeader};
use tributary_protocol::message::{
    OffsetMessageId, decode_properties, encode_properties, property,
};
use tributary_protocol::{RemotingCommand, codes, perm};
use tributary_store::NewMessage;

use crate::Broker;
use crate::processor::{RETRY_GROUP_TOPIC_PREFIX, Refusal, Reply};
use crate::schedule::{SCHEDULE_TOPIC, SOURCE_PROPERTY, TIMER_TOPIC, now_ms};
use crate::topics::invalid_topic_name;

use codes::response as rs;

/// Prefix of a consumer group's dead-letter topic.
pub const DLQ_GROUP_TOPIC_PREFIX: &str = "%DLQ%";
/// Queues of a retry or dead-letter topic (RocketMQ's `retryQueueNums` default and
/// `DLQ_NUMS_PER_GROUP`).
const RETRY_QUEUE_NUMS: i32 = 1;
/// Delay level of the first retry; retry `n` (from 0) waits level `FIRST_RETRY_LEVEL + n`.
const FIRST_RETRY_LEVEL: i32 = 3;

/// The retry topic of a group.
pub fn retry_topic(group: &str) -> String {
    format!("{RETRY_GROUP_TOPIC_PREFIX}{group}")
}

/// The dead-letter topic of a group.
pub fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// Refuses sends to the schedule topics: only the broker writes them.
pub(crate) fn check_send_topic(topic: &str) -> Result<(), Refusal> {
    if topic == SCHEDULE_TOPIC || topic == TIMER_TOPIC {
        return Err(Refusal::new(
            rs::NO_PERMISSION,
            format!(
                "the topic[{topic}] is a system topic; send with a DELAY or TIMER_* property instead"
            ),
        ));
    }
    Ok(())
}

impl Broker {
    /// Retries before the dead-letter topic: the consumer's `maxReconsumeTimes` (as the Java
    /// broker, it wins), else the group's `retryMaxTimes`, else `broker.max_reconsume_times`.
    pub(crate) fn max_reconsume_times(&self, group: &str, requested: Option<i32>) -> i32 {
        requested
            .filter(|n| *n >= 0)
            .unwrap_or_else(|| self.group_config(group).retry_max_times)
    }

    /// Creates a retry or dead-letter topic when missing (one queue, read and write).
    fn ensure_group_topic(&self, topic: &str) -> Result<(), Refusal> {
        if let Some(why) = invalid_topic_name(topic) {
            return Err(Refusal::new(rs::SYSTEM_ERROR, why));
        }
        if self.topics.get(topic).is_some() {
            return Ok(());
        }
        let config = TopicConfig {
            topic_name: topic.to_string(),
            read_queue_nums: RETRY_QUEUE_NUMS,
            write_queue_nums: RETRY_QUEUE_NUMS,
            perm: perm::READ | perm::WRITE,
            ..TopicConfig::default()
        };
        match self.topics.upsert(config) {
            Ok(true) => {
                tracing::info!(topic, "topic created for retries");
                self.topics_changed();
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!("create topic {topic}: {e}"),
            )),
        }
    }

    /// Prepares a client's send before it is stored: a retry-topic message past its maximum
    /// goes to the dead-letter topic; a delayed or timer message goes to its schedule queue.
    pub(crate) fn prepare_send(
        &self,
        header: &SendMessageRequestHeader,
        message: &mut NewMessage,
    ) -> Result<(), Refusal> {
        if let Some(group) = header.topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX) {
            let max = self.max_reconsume_times(group, header.max_reconsume_times);
            let times = header.reconsume_times.unwrap_or(0);
            if times > max {
                let dlq = dlq_topic(group);
                self.ensure_group_topic(&dlq)?;
                let mut props = decode_properties(&message.properties);
                props.remove(property::DELAY_TIME_LEVEL);
                message.properties = encode_properties(&props);
                message.topic = dlq;
                message.queue_id = 0;
                tracing::info!(
                    group,
                    reconsume_times = times,
                    max,
                    "retry message sent to the dead-letter topic"
                );
            }
        }
        self.schedule
            .route(message, now_ms())
            .map_err(|e| Refusal::new(rs::MESSAGE_ILLEGAL, e))
    }

    /// CONSUMER_SEND_MSG_BACK.
    pub(crate) async fn consumer_send_msg_back(
        self: &Arc<Self>,
        request: &RemotingCommand,
    ) -> Reply {
        let header: ConsumerSendMsgBackRequestHeader = request.decode_header()?;
        let me = self.clone();
        let (message, dlq) = tokio::task::spawn_blocking(move || me.send_back_message(&header))
            .await
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))??;
        let (_, durable) = self
            .store
            .append(&message)
            .map_err(|e| self.store_refusal(&e))?;
        let (code, remark) = self.durable_code(durable).await?;
        let counter = if dlq {
            &self.stats.dead_letters
        } else {
            &self.stats.sent_back
        };
        crate::stats::BrokerStats::add(counter, 1);
        let mut response = RemotingCommand::response_to(request).with_code(code);
        response.remark = remark;
        Ok(response)
    }

    /// The copy a send-back stores, and whether it goes to the dead-letter topic. Reads the
    /// message and may create the retry or dead-letter topic: runs on a blocking thread.
    fn send_back_message(
        &self,
        header: &ConsumerSendMsgBackRequestHeader,
    ) -> Result<(NewMessage, bool), Refusal> {
        let retry = retry_topic(&header.group);
        if let Some(why) = invalid_topic_name(&retry) {
            return Err(Refusal::new(rs::SYSTEM_ERROR, why));
        }
        let original = u64::try_from(header.offset)
            .ok()
            .map(|offset| self.store.read_message(offset))
            .transpose()
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
            .flatten()
            .ok_or_else(|| {
                Refusal::new(
                    rs::SYSTEM_ERROR,
                    format!("look message by offset failed, {}", header.offset),
                )
            })?;
        let max = self.max_reconsume_times(&header.group, header.max_reconsume_times);
        let mut props = decode_properties(&original.properties);
        props.remove(SOURCE_PROPERTY);
        props
            .entry(property::RETRY_TOPIC.into())
            .or_insert_with(|| original.topic.clone());
        if props
            .get(property::ORIGIN_MESSAGE_ID)
            .is_none_or(|id| id.trim().is_empty())
        {
            let id = OffsetMessageId::new(original.store_host, original.physical_offset);
            props.insert(property::ORIGIN_MESSAGE_ID.into(), id.to_string());
        }
        let dlq = original.reconsume_times >= max || header.delay_level < 0;
        let topic = if dlq {
            props.remove(property::DELAY_TIME_LEVEL);
            let topic = dlq_topic(&header.group);
            tracing::info!(
                group = %header.group,
                topic = %props.get(property::RETRY_TOPIC).map_or("", |t| t.as_str()),
                reconsume_times = original.reconsume_times,
                max,
                "message sent to the dead-letter topic"
            );
            topic
        } else {
            let level = if header.delay_level == 0 {
                FIRST_RETRY_LEVEL.saturating_add(original.reconsume_times)
            } else {
                header.delay_level
            };
            props.insert(property::DELAY_TIME_LEVEL.into(), level.to_string());
            retry
        };
        self.ensure_group_topic(&topic)?;
        let mut message = NewMessage {
            topic,
            queue_id: 0,
            flag: original.flag,
            body: original.body,
            properties: encode_properties(&props),
            sys_flag: original.sys_flag,
            born_timestamp: original.born_timestamp,
            born_host: original.born_host,
            reconsume_times: original.reconsume_times.saturating_add(1),
            prepared_transaction_offset: 0,
        };
        self.schedule
            .route(&mut message, now_ms())
            .map_err(|e| Refusal::new(rs::MESSAGE_ILLEGAL, e))?;
        Ok((message, dlq))
    }
}
