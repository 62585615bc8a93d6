//! [`Producer`]: sync, async, one-way, batch and ordered sends (Java's `DefaultMQProducer`).
//!
//! A send picks a queue round robin among the topic's writable queues, and retries on
//! another broker when a broker cannot be reached or answers with a retryable code
//! (`retry_times_when_send_failed`, 2 by default, all within `send_timeout`). Sends through a
//! [`MessageQueueSelector`] (ordered messages) go to the queue chosen and are not retried
//! elsewhere. A topic with no route is sent to through the template topic's route (`TBW102`):
//! brokers that allow auto-creation create it on the first message.

pub(crate) mod reply;
mod selector;
pub(crate) mod transaction;

pub use reply::create_reply_message;
pub use selector::{MessageQueueSelector, SelectByHash, select_by_hash, select_round_robin};
pub use transaction::{LocalTransactionState, TransactionListener, TransactionSendResult};

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::time::Instant;
use tributary_protocol::RemotingCommand;
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{SendMessageRequestHeaderV2, SendMessageResponseHeader};
use tributary_protocol::message::{BatchMessage, encode_batch, encode_properties, property};
use tributary_protocol::sysflag;

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::instance::{ClientInstance, broker_error};
use crate::message::{AUTO_CREATE_TOPIC_KEY, Message, MessageQueue, RETRY_GROUP_TOPIC_PREFIX};
use crate::now_ms;
use crate::record::deflate;
use crate::route::TopicRoute;

/// Response codes after which a send is retried on another broker (Java's default set).
pub const RETRY_RESPONSE_CODES: [i32; 8] = [
    response::TOPIC_NOT_EXIST,
    response::SERVICE_NOT_AVAILABLE,
    response::SYSTEM_ERROR,
    response::SYSTEM_BUSY,
    response::NO_PERMISSION,
    response::NO_BUYER_ID,
    response::NOT_IN_CURRENT_UNIT,
    response::GO_AWAY,
];

/// Longest topic name (Java's `TopicValidator.TOPIC_MAX_LENGTH`).
pub const TOPIC_MAX_LENGTH: usize = 127;

/// Producer settings; the defaults are Java's.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// Producer group (transactions and heartbeats use it).
    pub group: String,
    /// Time for a whole send, retries included (3 s).
    pub send_timeout: Duration,
    /// Extra attempts of a failed send, each on another broker when there is one (2).
    pub retry_times_when_send_failed: usize,
    /// Also retry when a broker stored the message but answered FLUSH_DISK_TIMEOUT,
    /// FLUSH_SLAVE_TIMEOUT or SLAVE_NOT_AVAILABLE (may duplicate the message; off).
    pub retry_another_broker_when_not_store_ok: bool,
    /// Template topic for topics that do not exist yet (`TBW102`).
    pub create_topic_key: String,
    /// Queues per broker of an auto-created topic (4).
    pub default_topic_queue_nums: i32,
    /// Bodies larger than this are zlib-compressed (4 KiB, as Java); `None` never.
    pub compress_over_bytes: Option<usize>,
    /// zlib level (5).
    pub compress_level: u32,
    /// Largest body (4 MiB).
    pub max_message_bytes: usize,
    /// Topics this producer will send to (Java 5's `setTopics`; none by default). Their routes
    /// are learnt at start and kept fresh, so the producer heartbeats to their brokers before
    /// its first send: a transactional producer started after a crash is then asked about the
    /// transactions its group left pending.
    pub topics: Vec<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            group: "DEFAULT_PRODUCER".into(),
            send_timeout: Duration::from_secs(3),
            retry_times_when_send_failed: 2,
            retry_another_broker_when_not_store_ok: false,
            create_topic_key: AUTO_CREATE_TOPIC_KEY.into(),
            default_topic_queue_nums: 4,
            compress_over_bytes: Some(4 * 1024),
            compress_level: 5,
            max_message_bytes: 4 * 1024 * 1024,
            topics: Vec::new(),
        }
    }
}

impl ProducerConfig {
    /// The defaults with a group.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ..Self::default()
        }
    }
}

/// How a broker stored a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Stored (and flushed/replicated as the broker is configured).
    SendOk,
    /// Stored, but the SYNC flush did not finish in time.
    FlushDiskTimeout,
    /// Stored, but the slave did not confirm in time.
    FlushSlaveTimeout,
    /// Stored, but no slave is available for a SYNC_MASTER broker.
    SlaveNotAvailable,
}

impl SendStatus {
    /// The Java name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SendOk => "SEND_OK",
            Self::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            Self::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            Self::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }

    fn from_code(code: i32) -> Option<Self> {
        match code {
            response::SUCCESS => Some(Self::SendOk),
            response::FLUSH_DISK_TIMEOUT => Some(Self::FlushDiskTimeout),
            response::FLUSH_SLAVE_TIMEOUT => Some(Self::FlushSlaveTimeout),
            response::SLAVE_NOT_AVAILABLE => Some(Self::SlaveNotAvailable),
            _ => None,
        }
    }
}

/// The outcome of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    /// How the broker stored it.
    pub status: SendStatus,
    /// The unique id the client gave the message (`UNIQ_KEY`); for a batch, the ids of its
    /// messages joined by commas.
    pub msg_id: String,
    /// Where it is stored (store host + commit log offset); comma-joined for a batch.
    pub offset_msg_id: String,
    /// The queue it went to.
    pub queue: MessageQueue,
    /// Its offset in that queue (of the first message, for a batch).
    pub queue_offset: i64,
    /// Transaction id, for half messages.
    pub transaction_id: Option<String>,
}

/// A message ready for the wire: ids assigned, body compressed, properties encoded. Retries
/// resend the same bytes (and so the same `UNIQ_KEY`).
#[derive(Debug, Clone)]
struct Outgoing {
    topic: String,
    flag: i32,
    body: Bytes,
    properties: String,
    sys_flag: i32,
    msg_id: String,
    batch: bool,
    /// A reply (`MSG_TYPE` = `reply`): sent with SEND_REPLY_MESSAGE_V2.
    reply: bool,
    reconsume_times: Option<i32>,
    max_reconsume_times: Option<i32>,
}

/// Sends messages. Cheap to clone; clones share the producer.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<ProducerInner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("group", &self.inner.config.group)
            .field("client_id", &self.inner.instance.client_id())
            .finish_non_exhaustive()
    }
}

struct ProducerInner {
    instance: ClientInstance,
    config: ProducerConfig,
    owns_instance: bool,
    counters: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    shut_down: AtomicBool,
}

impl Producer {
    /// Starts a producer on its own client instance (shut down with the producer).
    pub async fn start(client: ClientConfig, config: ProducerConfig) -> Result<Self> {
        let instance = ClientInstance::start(client).await?;
        match Self::build(instance.clone(), config, true) {
            Ok(producer) => {
                producer.learn_declared_routes().await;
                Ok(producer)
            }
            Err(e) => {
                instance.shutdown().await;
                Err(e)
            }
        }
    }

    /// Learns the routes of the declared topics and heartbeats to their brokers now, rather
    /// than at the next route refresh. A topic without a route is logged, as Java does; the
    /// refresh keeps trying.
    async fn learn_declared_routes(&self) {
        if self.inner.config.topics.is_empty() {
            return;
        }
        for topic in &self.inner.config.topics {
            match self.inner.instance.update_route(topic).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(topic, "no route for a declared producer topic"),
                Err(e) => {
                    tracing::warn!(topic, error = %e, "no route for a declared producer topic");
                }
            }
        }
        self.inner.instance.send_heartbeat_to_all_brokers().await;
    }

    /// Starts a producer on a shared client instance (declared topics are learnt at the
    /// instance's next route refresh).
    pub fn with_instance(instance: ClientInstance, config: ProducerConfig) -> Result<Self> {
        Self::build(instance, config, false)
    }

    fn build(
        instance: ClientInstance,
        config: ProducerConfig,
        owns_instance: bool,
    ) -> Result<Self> {
        if config.group.is_empty() {
            return Err(ClientError::invalid("producer group is empty"));
        }
        instance.register_producer(&config.group, &config.topics)?;
        Ok(Self {
            inner: Arc::new(ProducerInner {
                instance,
                config,
                owns_instance,
                counters: Mutex::default(),
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// The client instance.
    pub fn instance(&self) -> &ClientInstance {
        &self.inner.instance
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.config
    }

    /// Sends a message and waits until the broker stored it, choosing the queue round robin
    /// and retrying on another broker on failure.
    pub async fn send(&self, message: Message) -> Result<SendResult> {
        let outgoing = self.prepare(message)?;
        self.send_with_retries(outgoing).await
    }

    /// [`Producer::send`] as a `'static` future: spawn as many as you like; each resolves to
    /// its own result.
    pub fn send_async(
        &self,
        message: Message,
    ) -> impl Future<Output = Result<SendResult>> + Send + 'static {
        let producer = self.clone();
        async move { producer.send(message).await }
    }

    /// Sends without waiting for the broker's answer (no result, no retry).
    pub async fn send_oneway(&self, message: Message) -> Result<()> {
        let outgoing = self.prepare(message)?;
        let route = self.publish_route(&outgoing.topic).await?;
        let counter = self.counter(&outgoing.topic);
        let mq = select_round_robin(&route.publish_queues, &counter, None)
            .cloned()
            .ok_or_else(|| ClientError::NoRoute {
                topic: outgoing.topic.clone(),
            })?;
        let addr = self
            .inner
            .instance
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = self.command(&outgoing, &mq);
        self.inner.instance.invoke_oneway(&addr, request).await
    }

    /// Sends to one queue (one attempt).
    pub async fn send_to_queue(
        &self,
        message: Message,
        queue: &MessageQueue,
    ) -> Result<SendResult> {
        if message.topic != queue.topic {
            return Err(ClientError::invalid(format!(
                "message topic {} differs from queue topic {}",
                message.topic, queue.topic
            )));
        }
        let outgoing = self.prepare(message)?;
        let deadline = Instant::now() + self.inner.config.send_timeout;
        self.send_once(&outgoing, queue, deadline).await
    }

    /// Sends to the queue `selector` picks among the topic's writable queues (one attempt, so
    /// messages of one key stay in one queue and in order).
    pub async fn send_with_selector(
        &self,
        message: Message,
        selector: &dyn MessageQueueSelector,
    ) -> Result<SendResult> {
        let outgoing = self.prepare(message.clone())?;
        let route = self.publish_route(&outgoing.topic).await?;
        let index = selector
            .select(&route.publish_queues, &message)
            .filter(|&i| i < route.publish_queues.len())
            .ok_or_else(|| ClientError::invalid("the selector chose no queue"))?;
        let deadline = Instant::now() + self.inner.config.send_timeout;
        self.send_once(&outgoing, &route.publish_queues[index], deadline)
            .await
    }

    /// Sends an ordered message: every message with the same `sharding_key` goes to the same
    /// queue (by Java hash), so consumers see them in send order.
    pub async fn send_orderly(&self, message: Message, sharding_key: &str) -> Result<SendResult> {
        self.send_with_selector(message, &SelectByHash::new(sharding_key))
            .await
    }

    /// Sends several messages of one topic in one request (SEND_BATCH_MESSAGE). They are
    /// stored together in one queue; the result's ids list each message's id.
    pub async fn send_batch(&self, messages: Vec<Message>) -> Result<SendResult> {
        let outgoing = self.prepare_batch(messages)?;
        self.send_with_retries(outgoing).await
    }

    /// The queues a send to `topic` may go to.
    pub async fn fetch_publish_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.publish_route(topic).await?.publish_queues.clone())
    }

    /// Unregisters the producer from the brokers (and shuts its own client down).
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner
            .instance
            .unregister_producer(&self.inner.config.group)
            .await;
        if self.inner.owns_instance {
            self.inner.instance.shutdown().await;
        }
    }

    fn check_running(&self) -> Result<()> {
        if self.inner.shut_down.load(Ordering::Acquire) || self.inner.instance.is_shut_down() {
            return Err(ClientError::Shutdown { what: "producer" });
        }
        Ok(())
    }

    fn counter(&self, topic: &str) -> Arc<AtomicUsize> {
        self.inner
            .counters
            .lock()
            .entry(topic.to_owned())
            .or_insert_with(|| Arc::new(AtomicUsize::new(rand::random::<u16>() as usize)))
            .clone()
    }

    async fn publish_route(&self, topic: &str) -> Result<Arc<TopicRoute>> {
        self.inner
            .instance
            .publish_route(
                topic,
                &self.inner.config.create_topic_key,
                self.inner.config.default_topic_queue_nums,
            )
            .await
    }

    /// Validates a message and turns it into wire form.
    fn prepare(&self, mut message: Message) -> Result<Outgoing> {
        self.check_running()?;
        self.validate(&message)?;
        let msg_id = self.ensure_uniq_id(&mut message);
        let mut sys_flag = 0;
        let reply = message.property(property::MESSAGE_TYPE) == Some(reply::REPLY_MESSAGE_FLAG);
        let mut body = message.body;
        if let Some(limit) = self.inner.config.compress_over_bytes
            && body.len() > limit
        {
            let packed = deflate(&body, self.inner.config.compress_level);
            if packed.len() < body.len() {
                body = Bytes::from(packed);
                sys_flag |= sysflag::message::COMPRESSED;
            }
        }
        if message
            .properties
            .get(property::TRANSACTION_PREPARED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            sys_flag |= sysflag::message::TRANSACTION_PREPARED;
        }
        let (mut reconsume_times, mut max_reconsume_times) = (None, None);
        if message.topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            reconsume_times = message
                .properties
                .remove(property::RECONSUME_TIME)
                .and_then(|v| v.parse().ok());
            max_reconsume_times = message
                .properties
                .remove(property::MAX_RECONSUME_TIMES)
                .and_then(|v| v.parse().ok());
        }
        Ok(Outgoing {
            reply,
            properties: encode_properties(&message.properties),
            topic: message.topic,
            flag: message.flag,
            body,
            sys_flag,
            msg_id,
            batch: false,
            reconsume_times,
            max_reconsume_times,
        })
    }

    fn prepare_batch(&self, messages: Vec<Message>) -> Result<Outgoing> {
        self.check_running()?;
        let Some(first) = messages.first() else {
            return Err(ClientError::invalid("a batch needs at least one message"));
        };
        let topic = first.topic.clone();
        if topic.starts_with(RETRY_GROUP_TOPIC_PREFIX) {
            return Err(ClientError::invalid("retry topics are not sent in batches"));
        }
        let mut ids = Vec::with_capacity(messages.len());
        let mut batch = Vec::with_capacity(messages.len());
        let mut total = 0;
        for mut message in messages {
            self.validate(&message)?;
            if message.topic != topic {
                return Err(ClientError::invalid(format!(
                    "a batch goes to one topic; found {} and {}",
                    topic, message.topic
                )));
            }
            if message.properties.contains_key(property::DELAY_TIME_LEVEL) {
                return Err(ClientError::invalid(
                    "delayed messages are not sent in batches",
                ));
            }
            let id = self.ensure_uniq_id(&mut message);
            total += message.body.len();
            ids.push(id);
            batch.push(BatchMessage {
                flag: message.flag,
                body: message.body,
                properties: message.properties,
            });
        }
        if total > self.inner.config.max_message_bytes {
            return Err(ClientError::invalid(format!(
                "batch bodies take {total} bytes, the limit is {}",
                self.inner.config.max_message_bytes
            )));
        }
        let mut body = BytesMut::new();
        encode_batch(&batch, &mut body)?;
        let own_id = self.inner.instance.next_uniq_id();
        let mut properties = tributary_protocol::message::Properties::new();
        properties.insert(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.into(), own_id);
        properties.insert(property::WAIT_STORE_MSG_OK.into(), "true".into());
        Ok(Outgoing {
            topic,
            flag: 0,
            body: body.freeze(),
            properties: encode_properties(&properties),
            sys_flag: 0,
            msg_id: ids.join(","),
            batch: true,
            reply: false,
            reconsume_times: None,
            max_reconsume_times: None,
        })
    }

    /// The message's `UNIQ_KEY`, assigned now if it has none (as Java's `setUniqID`).
    fn ensure_uniq_id(&self, message: &mut Message) -> String {
        if let Some(id) = message.uniq_id() {
            return id.to_owned();
        }
        let id = self.inner.instance.next_uniq_id();
        message
            .properties
            .insert(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX.into(), id.clone());
        id
    }

    fn validate(&self, message: &Message) -> Result<()> {
        validate_topic(&message.topic)?;
        if message.topic == self.inner.config.create_topic_key {
            return Err(ClientError::invalid(format!(
                "topic {} is the auto-create template and cannot take messages",
                message.topic
            )));
        }
        if message.body.is_empty() {
            return Err(ClientError::invalid("the message body is empty"));
        }
        if message.body.len() > self.inner.config.max_message_bytes {
            return Err(ClientError::invalid(format!(
                "the message body takes {} bytes, the limit is {}",
                message.body.len(),
                self.inner.config.max_message_bytes
            )));
        }
        Ok(())
    }

    fn command(&self, outgoing: &Outgoing, mq: &MessageQueue) -> RemotingCommand {
        let header = SendMessageRequestHeaderV2 {
            a: self.inner.config.group.clone(),
            b: outgoing.topic.clone(),
            c: self.inner.config.create_topic_key.clone(),
            d: self.inner.config.default_topic_queue_nums,
            e: mq.queue_id,
            f: outgoing.sys_flag,
            g: now_ms(),
            h: outgoing.flag,
            i: Some(outgoing.properties.clone()),
            j: Some(outgoing.reconsume_times.unwrap_or(0)),
            k: Some(false),
            l: outgoing.max_reconsume_times,
            m: Some(outgoing.batch),
            n: Some(mq.broker_name.clone()),
        };
        let code = if outgoing.batch {
            request::SEND_BATCH_MESSAGE
        } else if outgoing.reply {
            request::SEND_REPLY_MESSAGE_V2
        } else {
            request::SEND_MESSAGE_V2
        };
        RemotingCommand::new_request(code, 0)
            .with_header(&header)
            .with_body(outgoing.body.clone())
    }

    /// One attempt on one queue.
    async fn send_once(
        &self,
        outgoing: &Outgoing,
        mq: &MessageQueue,
        deadline: Instant,
    ) -> Result<SendResult> {
        let addr = self
            .inner
            .instance
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::SendTimeout {
                topic: outgoing.topic.clone(),
                timeout: self.inner.config.send_timeout,
            });
        }
        let request = self.command(outgoing, mq);
        let code = request.code;
        let response = self.inner.instance.invoke(&addr, request, left).await?;
        let Some(status) = SendStatus::from_code(response.code) else {
            return Err(broker_error(&addr, code, response));
        };
        let header: SendMessageResponseHeader = response.decode_header()?;
        Ok(SendResult {
            status,
            msg_id: outgoing.msg_id.clone(),
            offset_msg_id: header.msg_id,
            queue: MessageQueue {
                topic: outgoing.topic.clone(),
                broker_name: mq.broker_name.clone(),
                queue_id: header.queue_id,
            },
            queue_offset: header.queue_offset,
            transaction_id: header.transaction_id,
        })
    }

    /// Java's `sendDefaultImpl`: round robin, retries on another broker.
    async fn send_with_retries(&self, outgoing: Outgoing) -> Result<SendResult> {
        self.send_within(outgoing, self.inner.config.send_timeout)
            .await
    }

    /// [`Producer::send_with_retries`] with every attempt within `timeout`.
    async fn send_within(&self, outgoing: Outgoing, timeout: Duration) -> Result<SendResult> {
        let deadline = Instant::now() + timeout;
        let route = self.publish_route(&outgoing.topic).await?;
        let counter = self.counter(&outgoing.topic);
        let attempts = 1 + self.inner.config.retry_times_when_send_failed;
        let mut route = route;
        let mut brokers: Vec<String> = Vec::with_capacity(attempts);
        let mut last_error = None;
        let mut last_result = None;
        for attempt in 0..attempts {
            if Instant::now() >= deadline {
                break;
            }
            let avoid = brokers.last().map(String::as_str);
            let Some(mq) = select_round_robin(&route.publish_queues, &counter, avoid).cloned()
            else {
                break;
            };
            brokers.push(mq.broker_name.clone());
            match self.send_once(&outgoing, &mq, deadline).await {
                Ok(result)
                    if result.status != SendStatus::SendOk
                        && self.inner.config.retry_another_broker_when_not_store_ok =>
                {
                    last_result = Some(result);
                }
                Ok(result) => return Ok(result),
                Err(e) if retryable(&e) => {
                    tracing::debug!(topic = %outgoing.topic, broker = %mq.broker_name, attempt, error = %e, "send failed; retrying");
                    if matches!(
                        e,
                        ClientError::BrokerNotFound { .. }
                            | ClientError::Broker {
                                code: response::TOPIC_NOT_EXIST,
                                ..
                            }
                    ) && let Ok(fresh) = self.publish_route(&outgoing.topic).await
                    {
                        route = fresh;
                    }
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(result) = last_result {
            return Ok(result);
        }
        match last_error {
            Some(last) => Err(ClientError::SendFailed {
                topic: outgoing.topic,
                attempts: brokers.len(),
                brokers,
                last: Box::new(last),
            }),
            None => Err(ClientError::SendTimeout {
                topic: outgoing.topic,
                timeout,
            }),
        }
    }
}

/// Whether a failed attempt may be retried on another broker.
fn retryable(error: &ClientError) -> bool {
    match error {
        ClientError::Remoting(_) | ClientError::BrokerNotFound { .. } => true,
        ClientError::Broker { code, .. } => RETRY_RESPONSE_CODES.contains(code),
        _ => false,
    }
}

/// Checks a topic name as Java's `Validators.checkTopic`: 1–127 characters of
/// `[%|a-zA-Z0-9_-]`.
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(ClientError::invalid("the topic is empty"));
    }
    if topic.len() > TOPIC_MAX_LENGTH {
        return Err(ClientError::invalid(format!(
            "topic {topic:?} is longer than {TOPIC_MAX_LENGTH} characters"
        )));
    }
    if let Some(bad) = topic
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "%|_-".contains(*c)))
    {
        return Err(ClientError::invalid(format!(
            "topic {topic:?} contains {bad:?}; allowed are letters, digits, %, |, _ and -"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_validated_like_java() {
        for ok in ["T", "order-events_1", "%RETRY%g", "a|b"] {
            assert!(validate_topic(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "dot.ted", "é", &"x".repeat(128)] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retry_codes_are_javas() {
        let transport =
            ClientError::Remoting(tributary_remoting::RemotingError::Closed { addr: "x".into() });
        assert!(retryable(&transport));
        let busy = ClientError::Broker {
            addr: "x".into(),
            request: 310,
            code: response::SYSTEM_BUSY,
            remark: String::new(),
        };
        assert!(retryable(&busy));
        let illegal = ClientError::Broker {
            addr: "x".into(),
            request: 310,
            code: response::MESSAGE_ILLEGAL,
            remark: String::new(),
        };
        assert!(!retryable(&illegal));
        assert!(!retryable(&ClientError::invalid("x")));
    }

    #[test]
    fn status_codes_map_to_send_status() {
        assert_eq!(SendStatus::from_code(0), Some(SendStatus::SendOk));
        assert_eq!(
            SendStatus::from_code(10),
            Some(SendStatus::FlushDiskTimeout)
        );
        assert_eq!(
            SendStatus::from_code(12),
            Some(SendStatus::FlushSlaveTimeout)
        );
        assert_eq!(
            SendStatus::from_code(11),
            Some(SendStatus::SlaveNotAvailable)
        );
        assert_eq!(SendStatus::from_code(1), None);
        assert_eq!(SendStatus::FlushDiskTimeout.name(), "FLUSH_DISK_TIMEOUT");
    }
}
