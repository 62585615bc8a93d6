//! Request handling: each request family turns a [`RemotingCommand`] into a response, or into
//! a [`Refusal`] carrying RocketMQ's response code and a remark a person can act on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tributary_protocol::body::{
    ClientConnection, ConsumerConnection, ConsumerListByGroup, GroupList, HeartbeatData, JsonBody,
    LockBatchRequestBody, LockBatchResponseBody, SubscriptionGroupWrapper, TopicConfig,
    TopicFilterType, TopicList, UnlockBatchRequestBody,
};
use tributary_protocol::header::{
    CreateTopicRequestHeader, DeleteTopicRequestHeader, GetConsumerListByGroupRequestHeader,
    GetEarliestMsgStoretimeRequestHeader, GetEarliestMsgStoretimeResponseHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, NotifyConsumerIdsChangedRequestHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    QueryMessageRequestHeader, QueryMessageResponseHeader, QueryTopicsByConsumerRequestHeader,
    SearchOffsetRequestHeader, SearchOffsetResponseHeader, SendMessageRequestHeader,
    SendMessageResponseHeader, UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader,
    ViewMessageRequestHeader,
};
use tributary_protocol::message::{OffsetMessageId, decode_batch, encode_properties, property};
use tributary_protocol::{ProtocolError, RemotingCommand, codes, perm, sysflag};
use tributary_remoting::{Connection, Handler, HandlerFuture, not_supported};
use tributary_store::{GetStatus, NewMessage, StoreError};

use crate::Broker;
use crate::clients::ClientChannel;
use crate::filter::SubscriptionFilter;
use crate::stats::BrokerStats;
use crate::topics::invalid_topic_name;

use codes::request as rq;
use codes::response as rs;

/// The broker as a transport [`Handler`].
#[derive(Debug)]
pub struct BrokerHandler(pub Arc<Broker>);

impl Handler for BrokerHandler {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let broker = self.0.clone();
        let conn = conn.clone();
        Box::pin(async move { broker.process(&conn, request).await })
    }

    fn on_close(&self, conn: &Arc<Connection>) {
        self.0.connection_closed(conn.id());
    }
}

/// A request the broker answers with an error code.
#[derive(Debug)]
pub struct Refusal {
    /// RocketMQ response code.
    pub code: i32,
    /// Why, for the client's log.
    pub remark: String,
}

impl Refusal {
    pub(crate) fn new(code: i32, remark: impl Into<String>) -> Self {
        Self {
            code,
            remark: remark.into(),
        }
    }
}

impl From<ProtocolError> for Refusal {
    fn from(e: ProtocolError) -> Self {
        Self::new(rs::SYSTEM_ERROR, e.to_string())
    }
}

pub(crate) type Reply = Result<RemotingCommand, Refusal>;

/// Extension fields every send response carries (the Java broker's; some clients read them).
const MSG_REGION: &str = "MSG_REGION";
const TRACE_ON: &str = "TRACE_ON";
const DEFAULT_REGION: &str = "DefaultRegion";
/// QUERY_MESSAGE: look the key up as a unique key (message id) only.
const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// Most messages one QUERY_MESSAGE returns.
const MAX_QUERY_MESSAGES: usize = 64;
/// Largest queue count of a topic.
const MAX_QUEUE_NUMS: i32 = 16_384;
/// Prefix of a consumer group's retry topic.
pub const RETRY_GROUP_TOPIC_PREFIX: &str = "%RETRY%";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Tells a group's clients to rebalance (one-way, best effort: clients also rebalance every
/// 20 s on their own).
pub(crate) fn notify_ids_changed(group: &str, conns: &[Arc<Connection>]) {
    let header = NotifyConsumerIdsChangedRequestHeader {
        consumer_group: group.to_string(),
    };
    for conn in conns {
        let request =
            RemotingCommand::new_request(rq::NOTIFY_CONSUMER_IDS_CHANGED, 0).with_header(&header);
        if let Err(e) = conn.try_oneway(request) {
            tracing::debug!(group, peer = %conn.peer(), error = %e, "notify consumer ids changed");
        }
    }
}

impl Broker {
    async fn process(
        self: &Arc<Self>,
        conn: &Arc<Connection>,
        request: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let reply = match request.code {
            rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 => self.send(conn, &request).await,
            rq::SEND_BATCH_MESSAGE => self.send_batch(conn, &request).await,
            rq::SEND_REPLY_MESSAGE | rq::SEND_REPLY_MESSAGE_V2 => {
                self.send_reply(conn, &request).await
            }
            rq::END_TRANSACTION => self.end_transaction(&request).await,
            rq::CONSUMER_SEND_MSG_BACK => self.consumer_send_msg_back(&request).await,
            rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP => self.update_group_config(&request).await,
            rq::PULL_MESSAGE => self.pull(&request).await,
            rq::QUERY_CONSUMER_OFFSET => self.query_consumer_offset(&request),
            rq::UPDATE_CONSUMER_OFFSET => self.update_consumer_offset(&request),
            rq::GET_MAX_OFFSET => self.max_offset(&request),
            rq::GET_MIN_OFFSET => self.min_offset(&request),
            rq::SEARCH_OFFSET_BY_TIMESTAMP => self.search_offset(&request),
            rq::GET_EARLIEST_MSG_STORETIME => self.earliest_store_time(&request),
            rq::VIEW_MESSAGE_BY_ID => self.view_message(&request),
            rq::QUERY_MESSAGE => self.query_message(&request),
            rq::HEART_BEAT => self.heartbeat(conn, &request),
            rq::UNREGISTER_CLIENT => self.unregister_client(conn, &request),
            rq::GET_CONSUMER_LIST_BY_GROUP => self.consumer_list(&request),
            rq::GET_CONSUMER_CONNECTION_LIST => self.consumer_connections(&request),
            rq::LOCK_BATCH_MQ => self.lock_batch(&request),
            rq::UNLOCK_BATCH_MQ => self.unlock_batch(&request),
            rq::UPDATE_AND_CREATE_TOPIC => self.create_topic(&request).await,
            rq::DELETE_TOPIC_IN_BROKER => self.delete_topic(&request).await,
            rq::GET_ALL_TOPIC_CONFIG => self.all_topic_config(&request),
            rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG => self.all_groups(&request),
            rq::QUERY_TOPIC_CONSUME_BY_WHO => self.topic_consumed_by(&request),
            rq::QUERY_TOPICS_BY_CONSUMER => self.topics_by_consumer(&request),
            rq::INVOKE_BROKER_TO_RESET_OFFSET => self.reset_offset(&request).await,
            rq::CHECK_CLIENT_CONFIG => self.check_client_config(&request),
            _ => Ok(not_supported(&request)),
        };
        Some(reply.unwrap_or_else(|refusal| {
            tracing::debug!(
                code = request.code,
                answer = refusal.code,
                remark = %refusal.remark,
                "request refused"
            );
            RemotingCommand::response_to(&request)
                .with_code(refusal.code)
                .with_remark(refusal.remark)
        }))
    }

    // ---- send ----

    /// Checks a send's topic and queue, creating the topic from its template when allowed;
    /// returns the queue to write.
    pub(crate) fn send_target(&self, header: &SendMessageRequestHeader) -> Result<i32, Refusal> {
        if let Some(why) = invalid_topic_name(&header.topic) {
            return Err(Refusal::new(rs::SYSTEM_ERROR, why));
        }
        let created = self
            .topics
            .get_or_create(
                &header.topic,
                &header.default_topic,
                header
                    .default_topic_queue_nums
                    .min(self.config.default_topic_queue_nums),
            )
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, format!("create topic: {e}")))?;
        let Some((topic, was_created)) = created else {
            return Err(Refusal::new(
                rs::TOPIC_NOT_EXIST,
                format!(
                    "topic[{}] not exist, apply first please! (auto-creation is {} on this broker)",
                    header.topic,
                    if self.config.auto_create_topic {
                        "on, but the template does not allow it"
                    } else {
                        "off"
                    }
                ),
            ));
        };
        if was_created {
            BrokerStats::add(&self.stats.topics_auto_created, 1);
            self.topics_changed();
        }
        if !perm::is_writeable(topic.perm) {
            return Err(Refusal::new(
                rs::NO_PERMISSION,
                format!("the topic[{}] sending message is forbidden", header.topic),
            ));
        }
        let queues = topic.write_queue_nums.max(1);
        match header.queue_id {
            q if q < 0 => Ok(rand::random_range(0..queues)),
            q if q >= queues => Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!(
                    "queueId[{q}] is illegal, topic:[{}] topicConfig.writeQueueNums:[{queues}]",
                    header.topic
                ),
            )),
            q => Ok(q),
        }
    }

    fn refuse_transactions(header: &SendMessageRequestHeader) -> Result<(), Refusal> {
        let kind = sysflag::message::transaction_type(header.sys_flag);
        if kind == sysflag::message::TRANSACTION_PREPARED {
            return Err(Refusal::new(
                rs::NO_PERMISSION,
                "transactional (half) messages are not supported by this broker version",
            ));
        }
        Ok(())
    }

    pub(crate) fn new_message(
        header: &SendMessageRequestHeader,
        queue_id: i32,
        conn: &Connection,
        flag: i32,
        body: bytes::Bytes,
        properties: String,
    ) -> NewMessage {
        NewMessage {
            topic: header.topic.clone(),
            queue_id,
            flag,
            body,
            properties,
            sys_flag: header.sys_flag,
            born_timestamp: header.born_timestamp,
            born_host: conn.peer(),
            reconsume_times: header.reconsume_times.unwrap_or(0),
            prepared_transaction_offset: 0,
        }
    }

    pub(crate) fn store_refusal(&self, e: &StoreError) -> Refusal {
        BrokerStats::add(&self.stats.send_failures, 1);
        let code = match e {
            StoreError::MessageTooLarge { .. } | StoreError::MessageIllegal { .. } => {
                rs::MESSAGE_ILLEGAL
            }
            StoreError::DiskFull { .. } => rs::SERVICE_NOT_AVAILABLE,
            _ => rs::SYSTEM_ERROR,
        };
        Refusal::new(code, e.to_string())
    }

    pub(crate) fn send_response(
        &self,
        request: &RemotingCommand,
        code: i32,
        msg_id: String,
        queue_id: i32,
        queue_offset: i64,
        remark: Option<String>,
    ) -> RemotingCommand {
        let mut response = RemotingCommand::response_to(request)
            .with_code(code)
            .with_header(&SendMessageResponseHeader {
                msg_id,
                queue_id,
                queue_offset,
                transaction_id: None,
                batch_uniq_id: None,
                recall_handle: None,
            });
        response.remark = remark;
        response.ext_fields.insert(MSG_REGION, DEFAULT_REGION);
        response.ext_fields.insert(TRACE_ON, "true");
        response
    }

    /// Awaits durability; SUCCESS, or FLUSH_DISK_TIMEOUT for a stored but not yet durable
    /// message.
    pub(crate) async fn durable_code(
        &self,
        durable: tributary_store::Durable,
    ) -> Result<(i32, Option<String>), Refusal> {
        match durable.await {
            Ok(()) => Ok((rs::SUCCESS, None)),
            Err(e @ StoreError::FlushTimeout { .. }) => {
                BrokerStats::add(&self.stats.flush_timeouts, 1);
                Ok((rs::FLUSH_DISK_TIMEOUT, Some(e.to_string())))
            }
            Err(e) => Err(self.store_refusal(&e)),
        }
    }

    async fn send(&self, conn: &Connection, request: &RemotingCommand) -> Reply {
        let header = SendMessageRequestHeader::from_command(request)?;
        crate::retry::check_send_topic(&header.topic)?;
        let queue_id = self.send_target(&header)?;
        let mut message = Self::new_message(
            &header,
            queue_id,
            conn,
            header.flag,
            request.body.clone(),
            header.properties.clone().unwrap_or_default(),
        );
        // Every stored message names its cluster, as Java's broker writes it: a replier
        // builds its reply's topic (`<cluster>_REPLY_TOPIC`) from it.
        set_property(
            &mut message.properties,
            property::CLUSTER,
            &self.config.cluster_name,
        );
        let half = crate::transaction::is_half(header.sys_flag, &message.properties)
            .then(|| crate::transaction::to_half(&mut message, &header.producer_group));
        if half.is_none() {
            self.prepare_send(&header, &mut message)?;
        }
        let body_len = message.body.len() as u64;
        let (result, durable) = self
            .store
            .append(&message)
            .map_err(|e| self.store_refusal(&e))?;
        if let Some(group) = &half {
            self.transactions
                .prepared(result.queue_offset, result.physical_offset, group);
        }
        // WAIT=false (`waitStoreMsgOK` off): the producer asked not to wait for the flush.
        let wait =
            tributary_store::record::property(&message.properties, property::WAIT_STORE_MSG_OK)
                .is_none_or(|w| !w.eq_ignore_ascii_case("false"));
        let (code, remark) = if wait {
            self.durable_code(durable).await?
        } else {
            (rs::SUCCESS, None)
        };
        BrokerStats::add(&self.stats.messages_in, 1);
        BrokerStats::add(&self.stats.bytes_in, body_len);
        let msg_id = OffsetMessageId::new(
            self.store.config().store_host,
            result.physical_offset as i64,
        )
        .to_string();
        Ok(self.send_response(request, code, msg_id, queue_id, result.queue_offset, remark))
    }

    async fn send_batch(&self, conn: &Connection, request: &RemotingCommand) -> Reply {
        let header = SendMessageRequestHeader::from_command(request)?;
        Self::refuse_transactions(&header)?;
        if header.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return Err(Refusal::new(
                rs::MESSAGE_ILLEGAL,
                "batch messages cannot be sent to a retry topic",
            ));
        }
        let queue_id = self.send_target(&header)?;
        let batch = decode_batch(&request.body)
            .map_err(|e| Refusal::new(rs::MESSAGE_ILLEGAL, e.to_string()))?;
        crate::schedule::refuse_delayed_batch(&header, &batch)?;
        if batch.is_empty() {
            return Err(Refusal::new(rs::MESSAGE_ILLEGAL, "the batch is empty"));
        }
        let messages: Vec<NewMessage> = batch
            .into_iter()
            .map(|mut m| {
                m.properties
                    .insert(property::CLUSTER.into(), self.config.cluster_name.clone());
                let properties = encode_properties(&m.properties);
                Self::new_message(&header, queue_id, conn, m.flag, m.body, properties)
            })
            .collect();
        let body_len: u64 = messages.iter().map(|m| m.body.len() as u64).sum();
        let (results, durable) = self
            .store
            .append_batch(&messages)
            .map_err(|e| self.store_refusal(&e))?;
        let (code, remark) = self.durable_code(durable).await?;
        BrokerStats::add(&self.stats.messages_in, results.len() as u64);
        BrokerStats::add(&self.stats.bytes_in, body_len);
        let host = self.store.config().store_host;
        let ids: Vec<String> = results
            .iter()
            .map(|r| OffsetMessageId::new(host, r.physical_offset as i64).to_string())
            .collect();
        let first = results.first().map_or(0, |r| r.queue_offset);
        Ok(self.send_response(request, code, ids.join(","), queue_id, first, remark))
    }

    // ---- pull ----

    fn readable_topic(&self, topic: &str, queue_id: i32) -> Result<TopicConfig, Refusal> {
        let Some(config) = self.topics.get(topic) else {
            return Err(Refusal::new(
                rs::TOPIC_NOT_EXIST,
                format!("topic[{topic}] not exist, apply first please!"),
            ));
        };
        if !perm::is_readable(config.perm) {
            return Err(Refusal::new(
                rs::NO_PERMISSION,
                format!("the topic[{topic}] pulling message is forbidden"),
            ));
        }
        if queue_id < 0 || queue_id >= config.read_queue_nums {
            return Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!(
                    "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                    config.read_queue_nums
                ),
            ));
        }
        Ok(config)
    }

    fn pull_filter(
        &self,
        header: &PullMessageRequestHeader,
    ) -> Result<SubscriptionFilter, Refusal> {
        let parse_failed = |e: crate::filter::FilterError| {
            Refusal::new(rs::SUBSCRIPTION_PARSE_FAILED, e.to_string())
        };
        if sysflag::pull::has(header.sys_flag, sysflag::pull::SUBSCRIPTION) {
            let expression = header.subscription.as_deref().unwrap_or("*");
            return SubscriptionFilter::parse(expression, header.expression_type.as_deref())
                .map_err(parse_failed);
        }
        match self
            .clients
            .subscription(&header.consumer_group, &header.topic)
        {
            Some(sub) => SubscriptionFilter::from_subscription(&sub).map_err(parse_failed),
            // Java answers SUBSCRIPTION_NOT_EXIST here; every client heartbeats before it
            // pulls, and one that has not yet is better served everything than refused.
            None => Ok(SubscriptionFilter::all()),
        }
    }

    async fn pull(&self, request: &RemotingCommand) -> Reply {
        let header: PullMessageRequestHeader = request.decode_header()?;
        self.readable_topic(&header.topic, header.queue_id)?;
        let mut filter = self.pull_filter(&header)?;
        if let Some(group) = header.topic.strip_prefix(RETRY_GROUP_TOPIC_PREFIX)
            && self.config.filter_support_retry
        {
            filter = filter.for_retry(&self.clients.subscriptions(group));
        }
        if sysflag::pull::has(header.sys_flag, sysflag::pull::COMMIT_OFFSET)
            && header.commit_offset >= 0
        {
            self.offsets.commit(
                &header.consumer_group,
                &header.topic,
                header.queue_id,
                header.commit_offset,
            );
        }
        let max_count = usize::try_from(header.max_msg_nums)
            .unwrap_or(1)
            .clamp(1, self.config.max_pull_messages.max(1));
        let max_bytes = header
            .max_msg_bytes
            .and_then(|b| usize::try_from(b).ok())
            .filter(|b| *b > 0)
            .map_or(self.config.max_pull_bytes, |b| {
                b.min(self.config.max_pull_bytes)
            });
        let suspend = sysflag::pull::has(header.sys_flag, sysflag::pull::SUSPEND)
            && header.suspend_timeout_millis > 0;
        let hold = Duration::from_millis(
            u64::try_from(header.suspend_timeout_millis)
                .unwrap_or(0)
                .min(self.config.long_polling_max_ms),
        );
        let deadline = Instant::now() + hold;

        loop {
            let notify = self.polls.notifier(&header.topic, header.queue_id);
            let notified = notify.notified();
            tokio::pin!(notified);
            // Registered before the read, so an arrival between the read and the wait is seen.
            notified.as_mut().enable();
            let got = if self.is_cold(&header.topic, header.queue_id, header.queue_offset) {
                // Far behind the end of the log the pages may have left memory: read on a
                // blocking thread so a disk read never stalls a runtime worker.
                let store = self.store.clone();
                let (topic, queue_id, offset) =
                    (header.topic.clone(), header.queue_id, header.queue_offset);
                let filter = filter.clone();
                tokio::task::spawn_blocking(move || {
                    store.get_messages(&topic, queue_id, offset, max_count, max_bytes, &filter)
                })
                .await
                .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
            } else {
                self.store.get_messages(
                    &header.topic,
                    header.queue_id,
                    header.queue_offset,
                    max_count,
                    max_bytes,
                    &filter,
                )
            };
            let code = pull_code(got.status, header.queue_offset);
            if code == rs::PULL_NOT_FOUND && suspend && Instant::now() < deadline {
                self.stats.pulls_suspended.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = &mut notified => {}
                    () = tokio::time::sleep_until(deadline.into()) => {}
                }
                self.stats.pulls_suspended.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            BrokerStats::add(&self.stats.pulls, 1);
            let mut response = RemotingCommand::response_to(request)
                .with_code(code)
                .with_header(&PullMessageResponseHeader {
                    suggest_which_broker_id: 0,
                    next_begin_offset: got.next_begin_offset,
                    min_offset: got.min_offset,
                    max_offset: got.max_offset,
                    offset_delta: None,
                    topic_sys_flag: None,
                    group_sys_flag: None,
                    forbidden_type: None,
                });
            if code == rs::SUCCESS {
                BrokerStats::add(&self.stats.messages_out, got.messages.len() as u64);
                BrokerStats::add(&self.stats.bytes_out, got.bytes as u64);
                response.body = if got.messages.len() == 1 {
                    got.messages
                        .into_iter()
                        .map(|m| m.into_bytes())
                        .next()
                        .unwrap_or_default()
                } else {
                    let mut body = BytesMut::with_capacity(got.bytes);
                    for m in &got.messages {
                        body.extend_from_slice(m.as_bytes());
                    }
                    body.freeze()
                };
            } else {
                response.remark = Some(format!("{:?}", got.status));
            }
            return Ok(response);
        }
    }

    /// Whether the message at `offset` is far enough behind the end of the log that its pages
    /// may have been evicted ([`crate::BrokerConfig::hot_read_bytes`]).
    fn is_cold(&self, topic: &str, queue_id: i32, offset: i64) -> bool {
        let Some(unit) = self.store.unit(topic, queue_id, offset) else {
            return false;
        };
        let end = self.store.commitlog_max_offset();
        end.saturating_sub(u64::try_from(unit.phy_offset).unwrap_or(0)) > self.config.hot_read_bytes
    }

    // ---- offsets ----

    fn query_consumer_offset(&self, request: &RemotingCommand) -> Reply {
        let h: QueryConsumerOffsetRequestHeader = request.decode_header()?;
        match self.offsets.get(&h.consumer_group, &h.topic, h.queue_id) {
            Some(offset) => Ok(RemotingCommand::response_to(request)
                .with_header(&QueryConsumerOffsetResponseHeader { offset })),
            // The client then starts where its consumeFromWhere says.
            None => Err(Refusal::new(
                rs::QUERY_NOT_FOUND,
                format!(
                    "no offset committed by group {} for {}:{}",
                    h.consumer_group, h.topic, h.queue_id
                ),
            )),
        }
    }

    fn update_consumer_offset(&self, request: &RemotingCommand) -> Reply {
        let h: UpdateConsumerOffsetRequestHeader = request.decode_header()?;
        if self.topics.get(&h.topic).is_none() {
            return Err(Refusal::new(
                rs::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist", h.topic),
            ));
        }
        self.offsets
            .commit(&h.consumer_group, &h.topic, h.queue_id, h.commit_offset);
        Ok(RemotingCommand::response_to(request))
    }

    fn max_offset(&self, request: &RemotingCommand) -> Reply {
        let h: GetMaxOffsetRequestHeader = request.decode_header()?;
        let offset = self.store.max_offset(&h.topic, h.queue_id);
        Ok(RemotingCommand::response_to(request)
            .with_header(&GetMaxOffsetResponseHeader { offset }))
    }

    fn min_offset(&self, request: &RemotingCommand) -> Reply {
        let h: GetMinOffsetRequestHeader = request.decode_header()?;
        let offset = self.store.min_offset(&h.topic, h.queue_id);
        Ok(RemotingCommand::response_to(request)
            .with_header(&GetMinOffsetResponseHeader { offset }))
    }

    fn search_offset(&self, request: &RemotingCommand) -> Reply {
        let h: SearchOffsetRequestHeader = request.decode_header()?;
        let offset = self.store.offset_by_time(&h.topic, h.queue_id, h.timestamp);
        Ok(RemotingCommand::response_to(request)
            .with_header(&SearchOffsetResponseHeader { offset }))
    }

    fn earliest_store_time(&self, request: &RemotingCommand) -> Reply {
        let h: GetEarliestMsgStoretimeRequestHeader = request.decode_header()?;
        let min = self.store.min_offset(&h.topic, h.queue_id);
        match self.store.message_store_time(&h.topic, h.queue_id, min) {
            Some(timestamp) => Ok(RemotingCommand::response_to(request)
                .with_header(&GetEarliestMsgStoretimeResponseHeader { timestamp })),
            None => Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!("no message in {}:{}", h.topic, h.queue_id),
            )),
        }
    }

    // ---- lookups ----

    fn view_message(&self, request: &RemotingCommand) -> Reply {
        let h: ViewMessageRequestHeader = request.decode_header()?;
        let record = u64::try_from(h.offset)
            .ok()
            .map(|phy| self.store.read_record(phy))
            .transpose()
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
            .flatten();
        match record {
            Some(record) => {
                Ok(RemotingCommand::response_to(request).with_body(record.into_bytes()))
            }
            None => Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!("can not find message by the offset, {}", h.offset),
            )),
        }
    }

    fn query_message(&self, request: &RemotingCommand) -> Reply {
        let h: QueryMessageRequestHeader = request.decode_header()?;
        let unique = request
            .ext_fields
            .get(UNIQUE_KEY_QUERY)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let max = usize::try_from(h.max_num)
            .unwrap_or(0)
            .clamp(1, MAX_QUERY_MESSAGES);
        let max = if unique { max.min(32) } else { max };
        let found = self
            .store
            .query_records_by_key(&h.topic, &h.key, max, h.begin_timestamp, h.end_timestamp)
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?;
        if found.is_empty() {
            return Err(Refusal::new(
                rs::QUERY_NOT_FOUND,
                "can not find message, maybe time range not correct",
            ));
        }
        let mut body = BytesMut::new();
        for m in &found {
            body.extend_from_slice(m.as_bytes());
        }
        Ok(RemotingCommand::response_to(request)
            .with_header(&QueryMessageResponseHeader {
                index_last_update_timestamp: now_ms(),
                index_last_update_phyoffset: self.store.commitlog_max_offset() as i64,
            })
            .with_body(body.freeze()))
    }

    // ---- clients ----

    fn heartbeat(&self, conn: &Arc<Connection>, request: &RemotingCommand) -> Reply {
        let data = HeartbeatData::decode(&request.body)?;
        let channel = ClientChannel {
            client_id: data.client_id.clone(),
            conn: conn.clone(),
            language: request.language.clone(),
            version: request.version,
            last_update: Instant::now(),
        };
        for p in &data.producer_data_set {
            self.clients
                .register_producer(&p.group_name, channel.clone());
        }
        let mut topics_changed = false;
        for c in &data.consumer_data_set {
            // Clustering consumers also pull their group's retry topic: make sure it exists,
            // as the Java broker does on heartbeat.
            let retry = format!("{RETRY_GROUP_TOPIC_PREFIX}{}", c.group_name);
            if invalid_topic_name(&retry).is_none() && self.topics.get(&retry).is_none() {
                let config = TopicConfig {
                    topic_name: retry.clone(),
                    read_queue_nums: 1,
                    write_queue_nums: 1,
                    perm: perm::READ | perm::WRITE,
                    ..TopicConfig::default()
                };
                match self.topics.upsert(config) {
                    Ok(changed) => topics_changed |= changed,
                    Err(e) => tracing::error!(topic = %retry, error = %e, "create retry topic"),
                }
            }
            let notify = self.clients.register_consumer(c, channel.clone());
            if !notify.is_empty() {
                tracing::info!(group = %c.group_name, client = %data.client_id, members = notify.len(), "consumer joined the group");
                notify_ids_changed(&c.group_name, &notify);
            }
        }
        if topics_changed {
            self.topics_changed();
        }
        // Registered all the same (as Java does), but told at once why its pulls will fail.
        crate::filter::check_subscriptions(&data)
            .map_err(|why| Refusal::new(rs::SUBSCRIPTION_PARSE_FAILED, why))?;
        Ok(RemotingCommand::response_to(request))
    }

    fn unregister_client(&self, conn: &Connection, request: &RemotingCommand) -> Reply {
        let h: UnregisterClientRequestHeader = request.decode_header()?;
        if let Some(group) = h.producer_group.as_deref().filter(|g| !g.is_empty()) {
            self.clients.unregister_producer(group, conn.id());
        }
        if let Some(group) = h.consumer_group.as_deref().filter(|g| !g.is_empty()) {
            let rest = self.clients.unregister_consumer(group, conn.id());
            tracing::info!(group, client = %h.client_id, left = rest.len(), "consumer unregistered");
            notify_ids_changed(group, &rest);
        }
        Ok(RemotingCommand::response_to(request))
    }

    fn consumer_list(&self, request: &RemotingCommand) -> Reply {
        let h: GetConsumerListByGroupRequestHeader = request.decode_header()?;
        let Some(group) = self.clients.consumer_group(&h.consumer_group) else {
            return Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!("no consumer for this group, {}", h.consumer_group),
            ));
        };
        let body = ConsumerListByGroup {
            consumer_id_list: group.client_ids(),
        };
        Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
    }

    fn consumer_connections(&self, request: &RemotingCommand) -> Reply {
        let h: GetConsumerListByGroupRequestHeader = request.decode_header()?;
        let Some(group) = self.clients.consumer_group(&h.consumer_group) else {
            return Err(Refusal::new(
                rs::CONSUMER_NOT_ONLINE,
                format!("the consumer group[{}] not online", h.consumer_group),
            ));
        };
        let mut connection_set: Vec<ClientConnection> = group
            .channels
            .values()
            .map(|c| {
                ClientConnection::new(
                    c.client_id.clone(),
                    c.conn.peer().to_string(),
                    &c.language,
                    c.version,
                )
            })
            .collect();
        connection_set.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        let body = ConsumerConnection {
            connection_set,
            subscription_table: group.subscriptions.into_iter().collect(),
            consume_type: group.consume_type,
            message_model: group.message_model,
            consume_from_where: group.consume_from_where,
        };
        Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
    }

    fn lock_batch(&self, request: &RemotingCommand) -> Reply {
        let body = LockBatchRequestBody::decode(&request.body)?;
        let locked = self
            .locks
            .lock(&body.consumer_group, &body.client_id, &body.mq_set);
        let answer = LockBatchResponseBody {
            lock_ok_mq_set: locked,
        };
        Ok(RemotingCommand::response_to(request).with_body(answer.encode()?))
    }

    fn unlock_batch(&self, request: &RemotingCommand) -> Reply {
        let body = UnlockBatchRequestBody::decode(&request.body)?;
        self.locks
            .unlock(&body.consumer_group, &body.client_id, &body.mq_set);
        Ok(RemotingCommand::response_to(request))
    }

    // ---- admin ----

    async fn create_topic(self: &Arc<Self>, request: &RemotingCommand) -> Reply {
        let h: CreateTopicRequestHeader = request.decode_header()?;
        if let Some(why) = invalid_topic_name(&h.topic) {
            return Err(Refusal::new(rs::SYSTEM_ERROR, why));
        }
        if h.topic == crate::topics::AUTO_CREATE_TOPIC || h.topic == self.config.cluster_name {
            return Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!(
                    "the topic[{}] is conflict with system reserved words",
                    h.topic
                ),
            ));
        }
        for (what, n) in [
            ("readQueueNums", h.read_queue_nums),
            ("writeQueueNums", h.write_queue_nums),
        ] {
            if !(1..=MAX_QUEUE_NUMS).contains(&n) {
                return Err(Refusal::new(
                    rs::INVALID_PARAMETER,
                    format!("{what} {n} is out of range 1..={MAX_QUEUE_NUMS}"),
                ));
            }
        }
        let topic_filter_type =
            TopicFilterType::from_java_name(&h.topic_filter_type).unwrap_or_default();
        let config = TopicConfig {
            topic_name: h.topic.clone(),
            read_queue_nums: h.read_queue_nums,
            write_queue_nums: h.write_queue_nums,
            perm: h.perm,
            topic_filter_type,
            topic_sys_flag: h.topic_sys_flag.unwrap_or(0),
            order: h.order,
            attributes: Default::default(),
        };
        let me = self.clone();
        let changed = tokio::task::spawn_blocking(move || me.topics.upsert(config))
            .await
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
            .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, format!("save topic: {e}")))?;
        if changed {
            tracing::info!(topic = %h.topic, read = h.read_queue_nums, write = h.write_queue_nums, perm = h.perm, "topic created or updated");
            // Register before answering, so that a route lookup right after sees the topic.
            self.register(Some(&h.topic)).await;
        }
        Ok(RemotingCommand::response_to(request))
    }

    async fn delete_topic(self: &Arc<Self>, request: &RemotingCommand) -> Reply {
        let h: DeleteTopicRequestHeader = request.decode_header()?;
        if self.topics.get(&h.topic).is_none() {
            return Err(Refusal::new(
                rs::TOPIC_NOT_EXIST,
                format!("topic[{}] not exist", h.topic),
            ));
        }
        let me = self.clone();
        let topic = h.topic.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            me.topics.remove(&topic).map_err(|e| e.to_string())?;
            me.store.delete_topic(&topic).map_err(|e| e.to_string())?;
            me.offsets.remove_topic(&topic);
            me.polls.remove_topic(&topic);
            Ok(())
        })
        .await
        .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
        .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, format!("delete topic: {e}")))?;
        tracing::info!(topic = %h.topic, "topic deleted");
        self.register_all().await;
        Ok(RemotingCommand::response_to(request))
    }

    fn all_topic_config(&self, request: &RemotingCommand) -> Reply {
        Ok(RemotingCommand::response_to(request).with_body(self.topics.snapshot().encode()?))
    }

    /// Every group this broker knows: online ones and those with committed offsets.
    pub fn group_names(&self) -> Vec<String> {
        let mut names = self.clients.consumer_groups();
        names.extend(self.offsets.groups().into_iter().map(|(g, _)| g));
        names.extend(self.groups.all().into_iter().map(|c| c.group_name));
        names.sort();
        names.dedup();
        names
    }

    fn all_groups(&self, request: &RemotingCommand) -> Reply {
        let table = self
            .group_names()
            .into_iter()
            .map(|g| {
                let config = self.group_config(&g);
                (g, config)
            })
            .collect();
        let body = SubscriptionGroupWrapper {
            subscription_group_table: table,
            data_version: self.topics.snapshot().data_version,
        };
        Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
    }

    fn topic_consumed_by(&self, request: &RemotingCommand) -> Reply {
        let h: DeleteTopicRequestHeader = request.decode_header()?;
        let mut groups: Vec<String> = self
            .offsets
            .groups()
            .into_iter()
            .filter(|(_, t)| *t == h.topic)
            .map(|(g, _)| g)
            .collect();
        for g in self.clients.consumer_groups() {
            if self.clients.subscription(&g, &h.topic).is_some() {
                groups.push(g);
            }
        }
        groups.sort();
        groups.dedup();
        let body = GroupList { group_list: groups };
        Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
    }

    /// QUERY_TOPICS_BY_CONSUMER: the topics a group has committed offsets on (Java's
    /// `whichTopicByConsumer`) and those its online members subscribe to, so that a group's
    /// lag can be shown whether or not a member is connected.
    fn topics_by_consumer(&self, request: &RemotingCommand) -> Reply {
        let h: QueryTopicsByConsumerRequestHeader = request.decode_header()?;
        let mut topic_list: std::collections::BTreeSet<String> =
            self.offsets.topics_of(&h.group).into_iter().collect();
        if let Some(group) = self.clients.consumer_group(&h.group) {
            topic_list.extend(group.subscriptions.into_keys());
        }
        let body = TopicList {
            topic_list,
            broker_addr: None,
        };
        Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
    }
}

/// Sets one property in an encoded properties string, appending it when absent (the usual
/// case, with no decoding) and replacing its value otherwise.
pub(crate) fn set_property(properties: &mut String, name: &str, value: &str) {
    use tributary_protocol::message::{NAME_VALUE_SEPARATOR, PROPERTY_SEPARATOR};
    if tributary_store::record::property(properties, name).is_some() {
        let mut decoded = tributary_protocol::message::decode_properties(properties);
        decoded.insert(name.to_owned(), value.to_owned());
        *properties = encode_properties(&decoded);
        return;
    }
    if !properties.is_empty() && !properties.ends_with(PROPERTY_SEPARATOR) {
        properties.push(PROPERTY_SEPARATOR);
    }
    properties.push_str(name);
    properties.push(NAME_VALUE_SEPARATOR);
    properties.push_str(value);
    properties.push(PROPERTY_SEPARATOR);
}

/// The pull response code of a store outcome, as the Java broker maps `GetMessageStatus`.
fn pull_code(status: GetStatus, requested: i64) -> i32 {
    match status {
        GetStatus::Found => rs::SUCCESS,
        GetStatus::MessageWasRemoving | GetStatus::NoMatchedMessage => rs::PULL_RETRY_IMMEDIATELY,
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            if requested != 0 {
                rs::PULL_OFFSET_MOVED
            } else {
                rs::PULL_NOT_FOUND
            }
        }
        GetStatus::OffsetFoundNull | GetStatus::OffsetOverflowOne => rs::PULL_NOT_FOUND,
        GetStatus::OffsetOverflowBadly | GetStatus::OffsetTooSmall => rs::PULL_OFFSET_MOVED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_property_appends_or_replaces() {
        let cases = [
            ("", "CLUSTER\u{1}c\u{2}"),
            ("A\u{1}1\u{2}", "A\u{1}1\u{2}CLUSTER\u{1}c\u{2}"),
            ("A\u{1}1", "A\u{1}1\u{2}CLUSTER\u{1}c\u{2}"),
            (
                "CLUSTER\u{1}old\u{2}A\u{1}1\u{2}",
                "A\u{1}1\u{2}CLUSTER\u{1}c\u{2}",
            ),
        ];
        for (before, after) in cases {
            let mut p = before.to_owned();
            set_property(&mut p, "CLUSTER", "c");
            assert_eq!(p, after, "{before:?}");
        }
    }

    #[test]
    fn store_outcomes_map_to_java_pull_codes() {
        assert_eq!(pull_code(GetStatus::Found, 5), rs::SUCCESS);
        assert_eq!(
            pull_code(GetStatus::OffsetOverflowOne, 5),
            rs::PULL_NOT_FOUND
        );
        assert_eq!(
            pull_code(GetStatus::NoMessageInQueue, 0),
            rs::PULL_NOT_FOUND
        );
        assert_eq!(
            pull_code(GetStatus::NoMessageInQueue, 3),
            rs::PULL_OFFSET_MOVED
        );
        assert_eq!(
            pull_code(GetStatus::OffsetTooSmall, 0),
            rs::PULL_OFFSET_MOVED
        );
        assert_eq!(
            pull_code(GetStatus::NoMatchedMessage, 0),
            rs::PULL_RETRY_IMMEDIATELY
        );
    }
}
