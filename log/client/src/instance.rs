//! [`ClientInstance`]: what producers, consumers and the admin API of one client share —
//! connections, NameServer access, the route cache, heartbeats, and the broker requests every
//! part uses (Java's `MQClientInstance` with `MQClientAPIImpl`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tributary_protocol::RemotingCommand;
use tributary_protocol::body::{
    CheckClientRequestBody, ConsumerData, ConsumerListByGroup, HeartbeatData, JsonBody,
    LockBatchRequestBody, LockBatchResponseBody, ProducerData, ResetOffsetBody, SubscriptionData,
    TopicRouteData, UnlockBatchRequestBody,
};
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{
    ConsumerSendMsgBackRequestHeader, GetConsumerListByGroupRequestHeader,
    GetMaxOffsetRequestHeader, GetMaxOffsetResponseHeader, GetMinOffsetRequestHeader,
    GetMinOffsetResponseHeader, GetRouteInfoRequestHeader, PullMessageRequestHeader,
    PullMessageResponseHeader, QueryConsumerOffsetRequestHeader, QueryConsumerOffsetResponseHeader,
    ResetOffsetRequestHeader, SearchOffsetRequestHeader, SearchOffsetResponseHeader,
    UnregisterClientRequestHeader, UpdateConsumerOffsetRequestHeader, ViewMessageRequestHeader,
};
use tributary_protocol::message::OffsetMessageId;
use tributary_protocol::sysflag;
use tributary_remoting::{Connection, Handler, HandlerFuture, RemotingClient, not_supported};

use crate::config::ClientConfig;
use crate::error::{ClientError, Result};
use crate::message::{MessageExt, MessageQueue};
use crate::record::decode_messages;
use crate::route::{BrokerAddrTable, MASTER_ID, TopicRoute};
use crate::uniq_id::UniqIdGenerator;

/// A boxed future borrowed from its owner.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the instance needs from a consumer: its heartbeat entry and its rebalance.
pub(crate) trait ConsumerMember: Send + Sync + 'static {
    /// The consumer group.
    fn group(&self) -> &str;
    /// The consumer's heartbeat entry.
    fn consumer_data(&self) -> ConsumerData;
    /// The topics it reads (their routes are kept fresh).
    fn topics(&self) -> Vec<String>;
    /// Re-divides the queues of its topics.
    fn rebalance(&self) -> BoxFuture<'_, ()>;
    /// Moves its queues of `topic` that `offsets` names to those offsets, dropping what it
    /// buffered of them (RESET_CONSUMER_CLIENT_OFFSET). Pull consumers keep their own offsets.
    fn reset_offsets(
        &self,
        _topic: String,
        _offsets: BTreeMap<MessageQueue, i64>,
    ) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// One client: a client id, connections to NameServers and brokers, the route cache, and the
/// background work every producer and consumer of the client shares (route refresh and
/// heartbeats every 30 s, rebalancing every 20 s and whenever a broker says a group changed).
///
/// Cloning is cheap and shares the instance. Call [`ClientInstance::shutdown`] when done:
/// it stops the background tasks, tells every broker the client is gone and closes the
/// connections.
#[derive(Clone)]
pub struct ClientInstance {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClientInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInstance")
            .field("client_id", &self.inner.client_id)
            .field("namesrv", &self.inner.namesrv_addrs)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: ClientConfig,
    namesrv_addrs: Vec<String>,
    namesrv_index: AtomicUsize,
    client_id: String,
    client_ip: IpAddr,
    remoting: RemotingClient,
    routes: RwLock<HashMap<String, Arc<TopicRoute>>>,
    brokers: RwLock<BrokerAddrTable>,
    /// Broker id to pull each queue from next, as the broker last suggested.
    pull_from: Mutex<HashMap<MessageQueue, i64>>,
    /// Producer groups and the topics each declared (`ProducerConfig::topics`).
    producers: Mutex<BTreeMap<String, Vec<String>>>,
    /// Transaction listeners by producer group.
    tx_listeners: Mutex<HashMap<String, Arc<dyn crate::producer::TransactionListener>>>,
    consumers: Mutex<BTreeMap<String, Weak<dyn ConsumerMember>>>,
    /// Requests waiting for their reply, by correlation id (Java's `RequestFutureHolder`).
    requests: Mutex<HashMap<String, oneshot::Sender<MessageExt>>>,
    /// Per broker address, the id of the connection that last carried a heartbeat: a request
    /// first heartbeats on a connection that has not, so the broker can push the reply.
    heartbeat_conns: Mutex<HashMap<String, u64>>,
    rebalance: Notify,
    ids: UniqIdGenerator,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

/// Answers the requests brokers send to clients.
struct ClientHandler {
    inner: OnceLock<Weak<Inner>>,
}

impl Handler for ClientHandler {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let inner = self.inner.get().and_then(Weak::upgrade);
        let answer = match (request.code, inner) {
            (request::NOTIFY_CONSUMER_IDS_CHANGED, Some(inner)) => {
                tracing::debug!(broker = %conn.peer(), group = request.ext_fields.get("consumerGroup").unwrap_or(""), "consumer ids changed; rebalancing now");
                inner.rebalance.notify_one();
                RemotingCommand::response_to(&request)
            }
            (request::RESET_CONSUMER_CLIENT_OFFSET, Some(inner)) => {
                ClientInstance { inner }.reset_offsets_from(conn, &request);
                RemotingCommand::response_to(&request)
            }
            (request::CHECK_TRANSACTION_STATE, Some(inner)) => {
                return check_transaction_state(&inner, conn, request);
            }
            (request::PUSH_REPLY_MESSAGE_TO_CLIENT, Some(inner)) => {
                crate::producer::reply::receive_reply(&ClientInstance { inner }, conn, &request)
            }
            // Later: GET_CONSUMER_RUNNING_INFO.
            _ => not_supported(&request),
        };
        Box::pin(std::future::ready(Some(answer)))
    }
}

/// CHECK_TRANSACTION_STATE (one-way): the group's listener answers with END_TRANSACTION.
fn check_transaction_state(
    inner: &Inner,
    conn: &Arc<Connection>,
    request: RemotingCommand,
) -> HandlerFuture {
    let header: tributary_protocol::header::CheckTransactionStateRequestHeader =
        match request.decode_header() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(broker = %conn.peer(), error = %e, "bad CHECK_TRANSACTION_STATE");
                return Box::pin(std::future::ready(None));
            }
        };
    let message = match crate::record::decode_messages(&request.body, "") {
        Ok(mut m) if !m.is_empty() => m.swap_remove(0),
        Ok(_) | Err(_) => {
            tracing::warn!(broker = %conn.peer(), "CHECK_TRANSACTION_STATE without a message");
            return Box::pin(std::future::ready(None));
        }
    };
    let group = message
        .property(tributary_protocol::message::property::PRODUCER_GROUP)
        .unwrap_or_default();
    let listener = inner.tx_listeners.lock().get(group).cloned();
    let conn = conn.clone();
    let timeout = inner.config.request_timeout;
    Box::pin(async move {
        crate::producer::transaction::answer_check(listener, conn, header, message, timeout).await;
        None
    })
}

/// A request waiting for its reply (see [`ClientInstance::register_request`]).
pub(crate) struct PendingReply {
    instance: Weak<Inner>,
    correlation_id: String,
    pub(crate) rx: oneshot::Receiver<MessageExt>,
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        if let Some(inner) = self.instance.upgrade() {
            inner.requests.lock().remove(&self.correlation_id);
        }
    }
}

static INSTANCE_SEQ: AtomicU64 = AtomicU64::new(0);

/// The default instance name: process id, start time and a sequence number, so every
/// instance of every process has its own client id.
fn default_instance_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}#{}#{}",
        std::process::id(),
        nanos,
        INSTANCE_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// Arguments of one PULL_MESSAGE.
#[derive(Debug, Clone)]
pub struct PullArgs {
    /// Consumer group.
    pub group: String,
    /// Offset to read from.
    pub offset: i64,
    /// Most messages to return.
    pub max_nums: i32,
    /// Subscription expression sent with the pull (`None`: the broker uses the heartbeat's).
    pub expression: Option<String>,
    /// `TAG` or `SQL92`.
    pub expression_type: String,
    /// Subscription version.
    pub sub_version: i64,
    /// Offset to commit with the pull (clustering consumers), if any.
    pub commit_offset: Option<i64>,
    /// How long the broker may hold the pull when nothing is there (long polling); `None`
    /// for an immediate answer.
    pub suspend: Option<Duration>,
}

/// The consumer group admin tools read queues as (Java's `MixAll.TOOLS_CONSUMER_GROUP`).
pub const TOOLS_CONSUMER_GROUP: &str = "TOOLS_CONSUMER";

impl PullArgs {
    /// A plain read of up to `max_nums` messages from `offset`, as admin tools pull: as
    /// [`TOOLS_CONSUMER_GROUP`], every tag, nothing committed, answered at once.
    pub fn tools(offset: i64, max_nums: i32) -> Self {
        PullArgs {
            group: TOOLS_CONSUMER_GROUP.to_owned(),
            offset,
            max_nums,
            expression: Some(crate::consumer::SUB_ALL.to_owned()),
            expression_type: "TAG".to_owned(),
            sub_version: 0,
            commit_offset: None,
            suspend: None,
        }
    }
}

/// How a pull ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Messages were found.
    Found,
    /// Nothing new at the offset.
    NoNewMsg,
    /// Messages were there but none matched the filter.
    NoMatchedMsg,
    /// The offset is outside the queue; continue from `next_begin_offset`.
    OffsetIllegal,
}

/// The answer to one pull.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// How it ended.
    pub status: PullStatus,
    /// Where to pull next.
    pub next_begin_offset: i64,
    /// Smallest offset in the queue.
    pub min_offset: i64,
    /// Offset after the last message of the queue.
    pub max_offset: i64,
    /// The messages (after the exact tag re-check, when a subscription was given).
    pub messages: Vec<MessageExt>,
}

impl ClientInstance {
    /// Starts a client: resolves the NameServers, picks the client IP, and starts the
    /// background tasks.
    pub async fn start(config: ClientConfig) -> Result<Self> {
        let namesrv_addrs = config.resolved_namesrv_addrs();
        if namesrv_addrs.is_empty() {
            return Err(ClientError::NoNameServer);
        }
        let handler = Arc::new(ClientHandler {
            inner: OnceLock::new(),
        });
        let remoting = RemotingClient::new(config.transport.clone(), handler.clone());
        let client_ip = match config.client_ip {
            Some(ip) => ip,
            None => local_ip_towards(&remoting, &namesrv_addrs, config.request_timeout).await,
        };
        let instance_name = config
            .instance_name
            .clone()
            .unwrap_or_else(default_instance_name);
        let client_id = format!("{client_ip}@{instance_name}");
        let inner = Arc::new(Inner {
            namesrv_addrs,
            namesrv_index: AtomicUsize::new(rand::random::<u32>() as usize),
            client_id,
            client_ip,
            remoting,
            routes: RwLock::default(),
            brokers: RwLock::default(),
            pull_from: Mutex::default(),
            producers: Mutex::default(),
            tx_listeners: Mutex::default(),
            consumers: Mutex::default(),
            requests: Mutex::default(),
            heartbeat_conns: Mutex::default(),
            rebalance: Notify::new(),
            ids: UniqIdGenerator::new(client_ip),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            config,
        });
        let _ = handler.inner.set(Arc::downgrade(&inner));
        let instance = Self { inner };
        instance.start_background();
        tracing::debug!(client_id = %instance.client_id(), "client instance started");
        Ok(instance)
    }

    fn start_background(&self) {
        let weak = Arc::downgrade(&self.inner);
        let cancel = self.inner.cancel.clone();
        let every = self.inner.config.poll_name_server_interval;
        self.spawn_periodic(weak.clone(), cancel.clone(), every, |i| {
            Box::pin(async move { i.refresh_routes().await })
        });
        let every = self.inner.config.heartbeat_broker_interval;
        self.spawn_periodic(weak.clone(), cancel.clone(), every, |i| {
            Box::pin(async move { i.send_heartbeat_to_all_brokers().await })
        });
        let rebalance_every = self.inner.config.rebalance_interval;
        self.inner.tracker.spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else { break };
                let wake = async {
                    tokio::select! {
                        () = tokio::time::sleep(rebalance_every) => {}
                        () = inner.rebalance.notified() => {}
                    }
                };
                tokio::select! {
                    () = wake => {}
                    () = cancel.cancelled() => break,
                }
                let instance = ClientInstance { inner };
                tokio::select! {
                    () = instance.rebalance_all() => {}
                    () = cancel.cancelled() => break,
                }
            }
        });
    }

    /// Runs `work` every `every` until the instance is cancelled or dropped.
    fn spawn_periodic(
        &self,
        weak: Weak<Inner>,
        cancel: CancellationToken,
        every: Duration,
        work: fn(ClientInstance) -> BoxFuture<'static, ()>,
    ) {
        self.inner.tracker.spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = cancel.cancelled() => break,
                }
                let Some(inner) = weak.upgrade() else { break };
                tokio::select! {
                    () = work(ClientInstance { inner }) => {}
                    () = cancel.cancelled() => break,
                }
            }
        });
    }

    /// The client id (`ip@instance`) brokers know this client by.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The client IP used in the client id and message ids.
    pub fn client_ip(&self) -> IpAddr {
        self.inner.client_ip
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The NameServers in use.
    pub fn namesrv_addrs(&self) -> &[String] {
        &self.inner.namesrv_addrs
    }

    /// A fresh unique message id (`UNIQ_KEY`).
    pub fn next_uniq_id(&self) -> String {
        self.inner.ids.next_id()
    }

    /// Whether [`ClientInstance::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// Stops the background tasks, unregisters the client from every broker and closes all
    /// connections. Producers and consumers should be shut down first (they commit offsets
    /// and release queue locks).
    pub async fn shutdown(&self) {
        if self.inner.cancel.is_cancelled() {
            return;
        }
        self.inner.cancel.cancel();
        // Requests still waiting for a reply fail now (ClientError::Shutdown), not at their
        // timeout: no reply can reach a closed client.
        self.inner.requests.lock().clear();
        self.unregister_everywhere(None, None).await;
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
        self.inner.remoting.shutdown().await;
        tracing::debug!(client_id = %self.client_id(), "client instance shut down");
    }

    // ---- registration -------------------------------------------------------------------

    pub(crate) fn register_producer(&self, group: &str, topics: &[String]) -> Result<()> {
        let mut producers = self.inner.producers.lock();
        if producers.contains_key(group) {
            return Err(ClientError::GroupInUse {
                kind: "producer",
                group: group.to_owned(),
            });
        }
        producers.insert(group.to_owned(), topics.to_vec());
        Ok(())
    }

    pub(crate) fn set_transaction_listener(
        &self,
        group: &str,
        listener: Arc<dyn crate::producer::TransactionListener>,
    ) {
        self.inner
            .tx_listeners
            .lock()
            .insert(group.to_owned(), listener);
    }

    pub(crate) fn transaction_listener(
        &self,
        group: &str,
    ) -> Option<Arc<dyn crate::producer::TransactionListener>> {
        self.inner.tx_listeners.lock().get(group).cloned()
    }

    pub(crate) async fn unregister_producer(&self, group: &str) {
        self.inner.tx_listeners.lock().remove(group);
        if self.inner.producers.lock().remove(group).is_some() && !self.is_shut_down() {
            self.unregister_everywhere(Some(group), None).await;
        }
    }

    pub(crate) fn register_consumer(&self, member: Weak<dyn ConsumerMember>) -> Result<()> {
        let Some(strong) = member.upgrade() else {
            return Ok(());
        };
        let mut consumers = self.inner.consumers.lock();
        let group = strong.group().to_owned();
        if consumers.get(&group).is_some_and(|w| w.strong_count() > 0) {
            return Err(ClientError::GroupInUse {
                kind: "consumer",
                group,
            });
        }
        consumers.insert(group, member);
        Ok(())
    }

    pub(crate) async fn unregister_consumer(&self, group: &str) {
        if self.inner.consumers.lock().remove(group).is_some() && !self.is_shut_down() {
            self.unregister_everywhere(None, Some(group)).await;
        }
    }

    fn consumers(&self) -> Vec<Arc<dyn ConsumerMember>> {
        self.inner
            .consumers
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Asks for a rebalance of every consumer now (NOTIFY_CONSUMER_IDS_CHANGED does this).
    pub fn rebalance_now(&self) {
        self.inner.rebalance.notify_one();
    }

    /// Asks for a rebalance after `delay` (a queue lock was refused, say).
    pub(crate) fn rebalance_later(&self, delay: Duration) {
        let weak = Arc::downgrade(&self.inner);
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    if let Some(inner) = weak.upgrade() {
                        inner.rebalance.notify_one();
                    }
                }
                () = cancel.cancelled() => {}
            }
        });
    }

    async fn rebalance_all(&self) {
        for consumer in self.consumers() {
            consumer.rebalance().await;
        }
    }

    /// RESET_CONSUMER_CLIENT_OFFSET from a broker: the group's consumer (if this client has
    /// one) moves to the new offsets, in a task of its own so that the connection's reader
    /// goes on.
    fn reset_offsets_from(&self, conn: &Connection, request: &RemotingCommand) {
        let header: ResetOffsetRequestHeader = match request.decode_header() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(broker = %conn.peer(), error = %e, "bad offset reset from a broker");
                return;
            }
        };
        let offsets = match ResetOffsetBody::decode(&request.body) {
            Ok(body) => body.offset_table,
            Err(e) => {
                tracing::warn!(broker = %conn.peer(), group = %header.group, error = %e, "bad offset reset from a broker");
                return;
            }
        };
        let member = self
            .inner
            .consumers
            .lock()
            .get(&header.group)
            .and_then(Weak::upgrade);
        let Some(member) = member else {
            tracing::debug!(group = %header.group, "offset reset for a group this client does not consume");
            return;
        };
        tracing::info!(broker = %conn.peer(), group = %header.group, topic = %header.topic, timestamp = header.timestamp, queues = offsets.len(), "consumer offsets reset by the broker; pulling again from the new offsets");
        let cancel = self.inner.cancel.clone();
        self.inner.tracker.spawn(async move {
            tokio::select! {
                () = member.reset_offsets(header.topic, offsets) => {}
                () = cancel.cancelled() => {}
            }
        });
    }

    // ---- requests -----------------------------------------------------------------------

    /// Sends `request` to `addr` and returns the response, whatever its code.
    pub async fn invoke(
        &self,
        addr: &str,
        request: RemotingCommand,
        timeout: Duration,
    ) -> Result<RemotingCommand> {
        if self.is_shut_down() {
            return Err(ClientError::Shutdown {
                what: "client instance",
            });
        }
        Ok(self.inner.remoting.invoke(addr, request, timeout).await?)
    }

    /// Sends `request` one-way.
    pub async fn invoke_oneway(&self, addr: &str, request: RemotingCommand) -> Result<()> {
        Ok(self.inner.remoting.oneway(addr, request).await?)
    }

    /// Sends `request` to `addr` with the request timeout; any code but SUCCESS is an error.
    pub async fn request(&self, addr: &str, request: RemotingCommand) -> Result<RemotingCommand> {
        let code = request.code;
        let response = self
            .invoke(addr, request, self.inner.config.request_timeout)
            .await?;
        expect_code(addr, code, response, &[response::SUCCESS])
    }

    /// Sends `request` to a NameServer, moving to the next one on a transport failure.
    pub async fn invoke_namesrv(&self, request: RemotingCommand) -> Result<RemotingCommand> {
        let addrs = &self.inner.namesrv_addrs;
        let start = self.inner.namesrv_index.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..addrs.len() {
            let index = (start + i) % addrs.len();
            let addr = &addrs[index];
            match self
                .invoke(addr, request.clone(), self.inner.config.request_timeout)
                .await
            {
                Ok(response) => {
                    self.inner.namesrv_index.store(index, Ordering::Relaxed);
                    return Ok(response);
                }
                Err(e @ ClientError::Remoting(_)) => {
                    tracing::debug!(namesrv = %addr, error = %e, "NameServer request failed; trying the next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ClientError::NoNameServer))
    }

    // ---- routes -------------------------------------------------------------------------

    /// Asks the NameServer for a topic's route; `None` when the topic does not exist.
    pub async fn fetch_route(&self, topic: &str) -> Result<Option<TopicRouteData>> {
        let request = RemotingCommand::new_request(request::GET_ROUTEINFO_BY_TOPIC, 0).with_header(
            &GetRouteInfoRequestHeader {
                topic: topic.to_owned(),
                accept_standard_json_only: None,
            },
        );
        let response = self.invoke_namesrv(request).await?;
        match response.code {
            response::SUCCESS => Ok(Some(TopicRouteData::decode(&response.body)?)),
            response::TOPIC_NOT_EXIST => Ok(None),
            code => Err(ClientError::Broker {
                addr: "namesrv".into(),
                request: request::GET_ROUTEINFO_BY_TOPIC,
                code,
                remark: response.remark.unwrap_or_default(),
            }),
        }
    }

    /// The cached route of a topic.
    pub fn cached_route(&self, topic: &str) -> Option<Arc<TopicRoute>> {
        self.inner.routes.read().get(topic).cloned()
    }

    /// Refreshes a topic's route from the NameServer and caches it. A topic the NameServer
    /// does not know keeps its cached route (a template route until the broker registers
    /// the new topic); the answer is then the cached route, if any.
    pub async fn update_route(&self, topic: &str) -> Result<Option<Arc<TopicRoute>>> {
        match self.fetch_route(topic).await? {
            Some(data) => {
                let route = Arc::new(TopicRoute::new(topic, data));
                self.merge_brokers(&route);
                let mut routes = self.inner.routes.write();
                let changed = routes
                    .get(topic)
                    .is_none_or(|old| old.data != route.data || old.from_template);
                if changed {
                    routes.insert(topic.to_owned(), route.clone());
                    return Ok(Some(route));
                }
                Ok(routes.get(topic).cloned())
            }
            None => Ok(self.cached_route(topic)),
        }
    }

    /// The route to send to: the topic's own, or, for a topic that does not exist yet, one
    /// borrowed from `template` (brokers create the topic on the first send).
    pub async fn publish_route(
        &self,
        topic: &str,
        template: &str,
        queue_nums: i32,
    ) -> Result<Arc<TopicRoute>> {
        if let Some(route) = self.cached_route(topic).filter(|r| r.is_publishable()) {
            return Ok(route);
        }
        if let Some(route) = self
            .update_route(topic)
            .await?
            .filter(|r| r.is_publishable())
        {
            return Ok(route);
        }
        if let Some(data) = self.fetch_route(template).await? {
            let route = Arc::new(TopicRoute::from_template(topic, data, queue_nums));
            if route.is_publishable() {
                self.merge_brokers(&route);
                let mut routes = self.inner.routes.write();
                let entry = routes
                    .entry(topic.to_owned())
                    .or_insert_with(|| route.clone());
                // A topic with no writable queue (read-only) is sent to through the template
                // as Java does, so the broker's answer (NO_PERMISSION) reaches the caller.
                if !entry.is_publishable() {
                    *entry = route;
                }
                return Ok(entry.clone());
            }
        }
        Err(ClientError::NoRoute {
            topic: topic.to_owned(),
        })
    }

    /// The route to read from (cached, else fetched); `None` when the topic does not exist.
    pub async fn subscribe_route(&self, topic: &str) -> Result<Option<Arc<TopicRoute>>> {
        if let Some(route) = self.cached_route(topic).filter(|r| !r.from_template) {
            return Ok(Some(route));
        }
        Ok(self.update_route(topic).await?.filter(|r| !r.from_template))
    }

    fn merge_brokers(&self, route: &TopicRoute) {
        let mut brokers = self.inner.brokers.write();
        for broker in &route.data.broker_datas {
            brokers.insert(broker.broker_name.clone(), broker.broker_addrs.clone());
        }
    }

    /// Refreshes every route in use and forgets brokers that no route mentions.
    async fn refresh_routes(&self) {
        let mut topics: Vec<String> = self.inner.routes.read().keys().cloned().collect();
        for consumer in self.consumers() {
            topics.extend(consumer.topics());
        }
        topics.extend(self.inner.producers.lock().values().flatten().cloned());
        topics.sort();
        topics.dedup();
        for topic in topics {
            if let Err(e) = self.update_route(&topic).await {
                tracing::debug!(topic, error = %e, "route refresh failed");
            }
        }
        let routes = self.inner.routes.read();
        let mut brokers = self.inner.brokers.write();
        brokers.retain(|name, _| {
            routes
                .values()
                .any(|r| r.data.broker_datas.iter().any(|b| &b.broker_name == name))
        });
    }

    /// The master address of a broker name.
    pub fn master_addr(&self, broker_name: &str) -> Option<String> {
        self.inner
            .brokers
            .read()
            .get(broker_name)
            .and_then(|addrs| addrs.get(&MASTER_ID).cloned())
    }

    /// The master address of `broker_name`, refreshing `topic`'s route once if unknown.
    pub async fn master_addr_or_refresh(&self, topic: &str, broker_name: &str) -> Result<String> {
        if let Some(addr) = self.master_addr(broker_name) {
            return Ok(addr);
        }
        self.update_route(topic).await?;
        self.master_addr(broker_name)
            .ok_or_else(|| ClientError::BrokerNotFound {
                broker_name: broker_name.to_owned(),
            })
    }

    /// Where to pull `mq` from: the broker id it last suggested, else the master, else any.
    async fn pull_addr(&self, mq: &MessageQueue) -> Result<String> {
        let suggested = self
            .inner
            .pull_from
            .lock()
            .get(mq)
            .copied()
            .unwrap_or(MASTER_ID);
        let pick = |brokers: &BrokerAddrTable| {
            brokers.get(&mq.broker_name).and_then(|addrs| {
                addrs
                    .get(&suggested)
                    .or_else(|| addrs.get(&MASTER_ID))
                    .or_else(|| addrs.values().next())
                    .cloned()
            })
        };
        if let Some(addr) = pick(&self.inner.brokers.read()) {
            return Ok(addr);
        }
        self.update_route(&mq.topic).await?;
        pick(&self.inner.brokers.read()).ok_or_else(|| ClientError::BrokerNotFound {
            broker_name: mq.broker_name.clone(),
        })
    }

    /// Every known broker address: `(broker name, id, address)`.
    pub fn broker_addrs(&self) -> Vec<(String, i64, String)> {
        self.inner
            .brokers
            .read()
            .iter()
            .flat_map(|(name, addrs)| {
                addrs
                    .iter()
                    .map(move |(id, addr)| (name.clone(), *id, addr.clone()))
            })
            .collect()
    }

    // ---- heartbeats ---------------------------------------------------------------------

    fn heartbeat_data(&self) -> HeartbeatData {
        HeartbeatData {
            client_id: self.inner.client_id.clone(),
            producer_data_set: self
                .inner
                .producers
                .lock()
                .keys()
                .map(|g| ProducerData {
                    group_name: g.clone(),
                })
                .collect(),
            consumer_data_set: self.consumers().iter().map(|c| c.consumer_data()).collect(),
        }
    }

    /// Sends a heartbeat to every broker: masters always, slaves too when the client has
    /// consumers (they may pull from slaves).
    pub async fn send_heartbeat_to_all_brokers(&self) {
        let data = self.heartbeat_data();
        if data.producer_data_set.is_empty() && data.consumer_data_set.is_empty() {
            return;
        }
        let body = match data.encode() {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "encode heartbeat failed");
                return;
            }
        };
        let with_slaves = !data.consumer_data_set.is_empty();
        let targets: Vec<String> = self
            .broker_addrs()
            .into_iter()
            .filter(|(_, id, _)| with_slaves || *id == MASTER_ID)
            .map(|(_, _, addr)| addr)
            .collect();
        let sends = targets.iter().map(|addr| {
            let body = body.clone();
            async move {
                if let Err(e) = self.heartbeat_to(addr, body).await {
                    tracing::debug!(broker = %addr, error = %e, "heartbeat failed");
                }
            }
        });
        futures_util::future::join_all(sends).await;
    }

    /// Sends one heartbeat to `addr` and remembers the connection that carried it.
    async fn heartbeat_to(&self, addr: &str, body: bytes::Bytes) -> Result<()> {
        if self.is_shut_down() {
            return Err(ClientError::Shutdown {
                what: "client instance",
            });
        }
        let timeout = self.inner.config.request_timeout;
        let conn = tokio::time::timeout(timeout, self.inner.remoting.connection(addr))
            .await
            .map_err(|_| tributary_remoting::RemotingError::Timeout {
                code: request::HEART_BEAT,
                addr: addr.to_owned(),
                timeout,
            })??;
        let request = RemotingCommand::new_request(request::HEART_BEAT, 0).with_body(body);
        let response = conn.invoke(request, timeout).await?;
        expect_code(addr, request::HEART_BEAT, response, &[response::SUCCESS])?;
        self.inner
            .heartbeat_conns
            .lock()
            .insert(addr.to_owned(), conn.id());
        Ok(())
    }

    /// Heartbeats every master broker whose current connection has not carried a heartbeat
    /// yet (a new client, or a reconnect after a broker restart), so that the broker knows
    /// this client's producers on the connection it would push a reply to. Java only
    /// heartbeats before the first request to a topic; a reconnected requester then misses
    /// replies until its next periodic heartbeat.
    pub(crate) async fn ensure_heartbeat(&self) -> Result<()> {
        let data = self.heartbeat_data();
        let body = data.encode()?;
        let masters: Vec<String> = self
            .broker_addrs()
            .into_iter()
            .filter(|(_, id, _)| *id == MASTER_ID)
            .map(|(_, _, addr)| addr)
            .collect();
        let checks = masters.iter().map(|addr| {
            let body = body.clone();
            async move {
                let current = self.inner.remoting.connection(addr).await.map(|c| c.id());
                let carried = self.inner.heartbeat_conns.lock().get(addr).copied();
                if current.as_ref().ok() == carried.as_ref() {
                    return;
                }
                if let Err(e) = self.heartbeat_to(addr, body).await {
                    tracing::debug!(broker = %addr, error = %e, "heartbeat before a request failed");
                }
            }
        });
        futures_util::future::join_all(checks).await;
        Ok(())
    }

    /// Registers a request waiting for the reply with `correlation_id`; the entry goes when
    /// the returned [`PendingReply`] is dropped (reply taken, timeout, or the caller gave up).
    pub(crate) fn register_request(&self, correlation_id: &str) -> PendingReply {
        let (tx, rx) = oneshot::channel();
        self.inner
            .requests
            .lock()
            .insert(correlation_id.to_owned(), tx);
        PendingReply {
            instance: Arc::downgrade(&self.inner),
            correlation_id: correlation_id.to_owned(),
            rx,
        }
    }

    /// Hands a pushed reply to the request waiting for it; `false` when none is (it timed out
    /// or was never made by this client).
    pub(crate) fn complete_request(&self, correlation_id: &str, reply: MessageExt) -> bool {
        let waiter = self.inner.requests.lock().remove(correlation_id);
        waiter.is_some_and(|tx| tx.send(reply).is_ok())
    }

    /// Requests waiting for a reply now.
    pub fn pending_requests(&self) -> usize {
        self.inner.requests.lock().len()
    }

    async fn unregister_everywhere(&self, producer: Option<&str>, consumer: Option<&str>) {
        let (producers, consumers): (Vec<String>, Vec<String>) = match (producer, consumer) {
            (None, None) => (
                self.inner.producers.lock().keys().cloned().collect(),
                self.inner.consumers.lock().keys().cloned().collect(),
            ),
            (p, c) => (
                p.map(str::to_owned).into_iter().collect(),
                c.map(str::to_owned).into_iter().collect(),
            ),
        };
        let mut headers: Vec<UnregisterClientRequestHeader> = producers
            .into_iter()
            .map(|g| UnregisterClientRequestHeader {
                client_id: self.inner.client_id.clone(),
                producer_group: Some(g),
                consumer_group: None,
            })
            .collect();
        headers.extend(
            consumers
                .into_iter()
                .map(|g| UnregisterClientRequestHeader {
                    client_id: self.inner.client_id.clone(),
                    producer_group: None,
                    consumer_group: Some(g),
                }),
        );
        let addrs = self.broker_addrs();
        let timeout = self.inner.config.request_timeout;
        let sends = addrs.iter().flat_map(|(_, _, addr)| {
            headers.iter().map(move |header| {
                let request =
                    RemotingCommand::new_request(request::UNREGISTER_CLIENT, 0).with_header(header);
                async move {
                    let _ = self.inner.remoting.invoke(addr, request, timeout).await;
                }
            })
        });
        futures_util::future::join_all(sends).await;
    }

    // ---- consumer requests --------------------------------------------------------------

    /// Pulls messages from `mq`.
    pub async fn pull(&self, mq: &MessageQueue, args: &PullArgs) -> Result<PullResult> {
        let addr = self.pull_addr(mq).await?;
        let sys_flag = sysflag::pull::build(
            args.commit_offset.is_some(),
            args.suspend.is_some(),
            args.expression.is_some(),
            false,
        );
        let header = PullMessageRequestHeader {
            consumer_group: args.group.clone(),
            topic: mq.topic.clone(),
            queue_id: mq.queue_id,
            queue_offset: args.offset,
            max_msg_nums: args.max_nums,
            sys_flag,
            commit_offset: args.commit_offset.unwrap_or(0),
            suspend_timeout_millis: args
                .suspend
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            subscription: args.expression.clone(),
            sub_version: args.sub_version,
            expression_type: Some(args.expression_type.clone()),
            ..PullMessageRequestHeader::default()
        };
        let timeout = match args.suspend {
            // The broker answers within the suspend time; leave room as Java does (15 s + 15 s).
            Some(suspend) => suspend + Duration::from_secs(15),
            None => self.inner.config.request_timeout,
        };
        let request = RemotingCommand::new_request(request::PULL_MESSAGE, 0).with_header(&header);
        let response = self.invoke(&addr, request, timeout).await?;
        let status = match response.code {
            response::SUCCESS => PullStatus::Found,
            response::PULL_NOT_FOUND => PullStatus::NoNewMsg,
            response::PULL_RETRY_IMMEDIATELY => PullStatus::NoMatchedMsg,
            response::PULL_OFFSET_MOVED => PullStatus::OffsetIllegal,
            _ => return Err(broker_error(&addr, request::PULL_MESSAGE, response)),
        };
        let header: PullMessageResponseHeader = response.decode_header()?;
        {
            let mut pull_from = self.inner.pull_from.lock();
            if header.suggest_which_broker_id == MASTER_ID {
                pull_from.remove(mq);
            } else {
                pull_from.insert(mq.clone(), header.suggest_which_broker_id);
            }
        }
        let messages = if status == PullStatus::Found {
            decode_messages(&response.body, &mq.broker_name)?
        } else {
            Vec::new()
        };
        Ok(PullResult {
            status,
            next_begin_offset: header.next_begin_offset,
            min_offset: header.min_offset,
            max_offset: header.max_offset,
            messages,
        })
    }

    /// The group's committed offset of `mq`; `None` when it has none (QUERY_NOT_FOUND).
    pub async fn query_consumer_offset(
        &self,
        mq: &MessageQueue,
        group: &str,
    ) -> Result<Option<i64>> {
        let addr = self
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = RemotingCommand::new_request(request::QUERY_CONSUMER_OFFSET, 0).with_header(
            &QueryConsumerOffsetRequestHeader {
                consumer_group: group.to_owned(),
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
                set_zero_if_not_found: Some(false),
            },
        );
        let response = self
            .invoke(&addr, request, self.inner.config.request_timeout)
            .await?;
        match response.code {
            response::SUCCESS => Ok(Some(
                response
                    .decode_header::<QueryConsumerOffsetResponseHeader>()?
                    .offset,
            )),
            response::QUERY_NOT_FOUND => Ok(None),
            _ => Err(broker_error(
                &addr,
                request::QUERY_CONSUMER_OFFSET,
                response,
            )),
        }
    }

    /// Commits the group's offset of `mq` on its broker.
    pub async fn update_consumer_offset(
        &self,
        mq: &MessageQueue,
        group: &str,
        offset: i64,
    ) -> Result<()> {
        let addr = self
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = RemotingCommand::new_request(request::UPDATE_CONSUMER_OFFSET, 0).with_header(
            &UpdateConsumerOffsetRequestHeader {
                consumer_group: group.to_owned(),
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
                commit_offset: offset,
            },
        );
        self.request(&addr, request).await.map(drop)
    }

    /// The offset after the last message of `mq`.
    pub async fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        let addr = self
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = RemotingCommand::new_request(request::GET_MAX_OFFSET, 0).with_header(
            &GetMaxOffsetRequestHeader {
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
                committed: None,
            },
        );
        let response = self.request(&addr, request).await?;
        Ok(response
            .decode_header::<GetMaxOffsetResponseHeader>()?
            .offset)
    }

    /// The smallest offset still stored in `mq`.
    pub async fn min_offset(&self, mq: &MessageQueue) -> Result<i64> {
        let addr = self
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = RemotingCommand::new_request(request::GET_MIN_OFFSET, 0).with_header(
            &GetMinOffsetRequestHeader {
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
            },
        );
        let response = self.request(&addr, request).await?;
        Ok(response
            .decode_header::<GetMinOffsetResponseHeader>()?
            .offset)
    }

    /// The offset of the first message of `mq` stored at or after `timestamp_ms`.
    pub async fn search_offset(&self, mq: &MessageQueue, timestamp_ms: i64) -> Result<i64> {
        let addr = self
            .master_addr_or_refresh(&mq.topic, &mq.broker_name)
            .await?;
        let request = RemotingCommand::new_request(request::SEARCH_OFFSET_BY_TIMESTAMP, 0)
            .with_header(&SearchOffsetRequestHeader {
                topic: mq.topic.clone(),
                queue_id: mq.queue_id,
                timestamp: timestamp_ms,
                boundary_type: None,
            });
        let response = self.request(&addr, request).await?;
        Ok(response
            .decode_header::<SearchOffsetResponseHeader>()?
            .offset)
    }

    /// The client ids of a group's live consumers, from one broker of `topic`.
    pub async fn consumer_ids(&self, topic: &str, group: &str) -> Result<Vec<String>> {
        let route = self
            .subscribe_route(topic)
            .await?
            .ok_or_else(|| ClientError::NoRoute {
                topic: topic.to_owned(),
            })?;
        let mut names: Vec<&str> = route
            .data
            .broker_datas
            .iter()
            .map(|b| b.broker_name.as_str())
            .collect();
        if names.is_empty() {
            return Err(ClientError::NoRoute {
                topic: topic.to_owned(),
            });
        }
        let start = rand::random::<u32>() as usize % names.len();
        names.rotate_left(start);
        let mut last = None;
        for name in names {
            let Some(addr) = self.master_addr(name).or_else(|| {
                route
                    .broker(name)
                    .and_then(|b| b.broker_addrs.values().next().cloned())
            }) else {
                continue;
            };
            let request = RemotingCommand::new_request(request::GET_CONSUMER_LIST_BY_GROUP, 0)
                .with_header(&GetConsumerListByGroupRequestHeader {
                    consumer_group: group.to_owned(),
                });
            match self.request(&addr, request).await {
                Ok(response) => {
                    return Ok(ConsumerListByGroup::decode(&response.body)?.consumer_id_list);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::NoRoute {
            topic: topic.to_owned(),
        }))
    }

    /// Locks queues of one broker for `group` (orderly consumption); returns the queues now
    /// held by this client.
    pub async fn lock_batch(
        &self,
        broker_name: &str,
        topic: &str,
        group: &str,
        mqs: Vec<MessageQueue>,
    ) -> Result<Vec<MessageQueue>> {
        let addr = self.master_addr_or_refresh(topic, broker_name).await?;
        let body = LockBatchRequestBody {
            consumer_group: group.to_owned(),
            client_id: self.inner.client_id.clone(),
            only_this_broker: false,
            mq_set: mqs,
        }
        .encode()?;
        let request = RemotingCommand::new_request(request::LOCK_BATCH_MQ, 0).with_body(body);
        let response = self.request(&addr, request).await?;
        Ok(LockBatchResponseBody::decode(&response.body)?.lock_ok_mq_set)
    }

    /// Releases queue locks of one broker (one-way unless `wait`).
    pub async fn unlock_batch(
        &self,
        broker_name: &str,
        group: &str,
        mqs: Vec<MessageQueue>,
        wait: bool,
    ) -> Result<()> {
        let addr = self
            .master_addr(broker_name)
            .ok_or_else(|| ClientError::BrokerNotFound {
                broker_name: broker_name.to_owned(),
            })?;
        let body = UnlockBatchRequestBody {
            consumer_group: group.to_owned(),
            client_id: self.inner.client_id.clone(),
            only_this_broker: false,
            mq_set: mqs,
        }
        .encode()?;
        let request = RemotingCommand::new_request(request::UNLOCK_BATCH_MQ, 0).with_body(body);
        if wait {
            self.request(&addr, request).await.map(drop)
        } else {
            self.invoke_oneway(&addr, request).await
        }
    }

    /// Returns a consumed message to its broker for redelivery through the group's retry
    /// topic (CONSUMER_SEND_MSG_BACK). `delay_level` 0 lets the broker step the delay.
    pub async fn send_message_back(
        &self,
        message: &MessageExt,
        group: &str,
        delay_level: i32,
        max_reconsume_times: i32,
    ) -> Result<()> {
        let addr = match self.master_addr(&message.broker_name) {
            Some(addr) => addr,
            None => message.store_host.to_string(),
        };
        let request = RemotingCommand::new_request(request::CONSUMER_SEND_MSG_BACK, 0).with_header(
            &ConsumerSendMsgBackRequestHeader {
                offset: message.commit_log_offset,
                group: group.to_owned(),
                delay_level,
                origin_msg_id: Some(message.msg_id().to_owned()),
                origin_topic: Some(message.topic.clone()),
                unit_mode: Some(false),
                max_reconsume_times: Some(max_reconsume_times),
            },
        );
        self.request(&addr, request).await.map(drop)
    }

    /// Asks a broker that serves `topic` whether it can evaluate `subscription` (Java's
    /// `checkClientInBroker`, done for SQL92 subscriptions before a consumer starts). A topic
    /// without a route is not checked.
    pub async fn check_client_config(
        &self,
        group: &str,
        subscription: &SubscriptionData,
    ) -> Result<()> {
        let Some(route) = self.update_route(&subscription.topic).await? else {
            return Ok(());
        };
        let Some(addr) = route
            .data
            .broker_datas
            .iter()
            .find_map(|b| {
                b.broker_addrs
                    .get(&MASTER_ID)
                    .or_else(|| b.broker_addrs.values().next())
            })
            .cloned()
        else {
            return Ok(());
        };
        let body = CheckClientRequestBody {
            client_id: self.inner.client_id.clone(),
            group: group.to_owned(),
            subscription_data: Some(subscription.clone()),
            namespace: None,
        };
        let request =
            RemotingCommand::new_request(request::CHECK_CLIENT_CONFIG, 0).with_body(body.encode()?);
        self.request(&addr, request).await.map(drop)
    }

    /// The stored message with an offset message id (VIEW_MESSAGE_BY_ID).
    pub async fn view_message(&self, offset_msg_id: &str) -> Result<MessageExt> {
        let id = OffsetMessageId::decode(offset_msg_id)?;
        let addr = id.store_host.to_string();
        let request = RemotingCommand::new_request(request::VIEW_MESSAGE_BY_ID, 0).with_header(
            &ViewMessageRequestHeader {
                offset: id.commit_log_offset,
                topic: None,
            },
        );
        let response = self.request(&addr, request).await?;
        let broker_name = self
            .inner
            .brokers
            .read()
            .iter()
            .find(|(_, addrs)| addrs.values().any(|a| a == &addr))
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        decode_messages(&response.body, &broker_name)?
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Decode {
                position: 0,
                reason: "empty VIEW_MESSAGE_BY_ID answer".into(),
            })
    }
}

/// The response if its code is one of `ok`, else the server's error.
pub(crate) fn expect_code(
    addr: &str,
    request_code: i32,
    response: RemotingCommand,
    ok: &[i32],
) -> Result<RemotingCommand> {
    if ok.contains(&response.code) {
        Ok(response)
    } else {
        Err(broker_error(addr, request_code, response))
    }
}

pub(crate) fn broker_error(
    addr: &str,
    request_code: i32,
    response: RemotingCommand,
) -> ClientError {
    ClientError::Broker {
        addr: addr.to_owned(),
        request: request_code,
        code: response.code,
        remark: response.remark.unwrap_or_default(),
    }
}

/// The local address of a connection to the first reachable NameServer: the address brokers
/// and NameServers see this client at. 127.0.0.1 when none answers.
async fn local_ip_towards(
    remoting: &RemotingClient,
    addrs: &[String],
    timeout: Duration,
) -> IpAddr {
    for addr in addrs {
        if let Ok(Ok(conn)) = tokio::time::timeout(timeout, remoting.connection(addr)).await {
            return conn.local().ip();
        }
    }
    tracing::warn!(namesrv = ?addrs, "no NameServer reachable at start; using 127.0.0.1 as the client IP");
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Writes `fields` into a request without a typed header.
pub(crate) fn with_fields(
    mut request: RemotingCommand,
    fields: &[(&str, &str)],
) -> RemotingCommand {
    for (k, v) in fields {
        request.ext_fields.insert((*k).to_owned(), (*v).to_owned());
    }
    request
}
