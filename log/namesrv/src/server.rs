//! [`NameServer`]: the request processor (RocketMQ's `DefaultRequestProcessor`), broker
//! housekeeping, and the listener.

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tributary_protocol::body::{
    DataVersion, JsonBody, RegisterBrokerBody, TopicConfigSerializeWrapper, quote_integer_keys,
};
use tributary_protocol::codes::{request, response};
use tributary_protocol::header::{
    AddWritePermOfBrokerRequestHeader, AddWritePermOfBrokerResponseHeader,
    DeleteKvConfigRequestHeader, DeleteTopicFromNamesrvRequestHeader, GetKvConfigRequestHeader,
    GetKvConfigResponseHeader, GetKvListByNamespaceRequestHeader, GetRouteInfoRequestHeader,
    GetTopicsByClusterRequestHeader, PutKvConfigRequestHeader, QueryDataVersionRequestHeader,
    QueryDataVersionResponseHeader, RegisterBrokerRequestHeader, RegisterBrokerResponseHeader,
    UnregisterBrokerRequestHeader, WipeWritePermOfBrokerRequestHeader,
    WipeWritePermOfBrokerResponseHeader,
};
use tributary_protocol::{ProtocolError, RemotingCommand};
use tributary_remoting::{
    Connection, Handler, HandlerFuture, RemotingServer, TransportConfig, not_supported,
};

use crate::config::NamesrvConfig;
use crate::error::NamesrvError;
use crate::kv::{KvConfig, ORDER_TOPIC_CONFIG};
use crate::route::{Channel, Registration, RouteTable};
use crate::stats::NamesrvStats;

/// A NameServer: the routing table, the KV config and the counters, serving remoting
/// requests as a [`Handler`]. Create it with [`NameServer::new`], then either
/// [`NameServer::bind`] and [`NamesrvListener::run`] it, or hand it to a
/// [`RemotingServer`] of your own and run [`NameServer::run_housekeeping`] beside it.
#[derive(Debug)]
pub struct NameServer {
    config: NamesrvConfig,
    routes: RwLock<RouteTable>,
    kv: Arc<KvConfig>,
    stats: Arc<NamesrvStats>,
}

/// A bound NameServer, ready to serve.
#[derive(Debug)]
pub struct NamesrvListener {
    namesrv: Arc<NameServer>,
    server: RemotingServer,
    local_addr: SocketAddr,
}

impl NamesrvListener {
    /// The address bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves connections and expires silent brokers until `shutdown` is cancelled; returns
    /// once every connection has closed.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(addr = %self.local_addr, "NameServer listening");
        tokio::join!(
            self.server.run(shutdown.clone()),
            self.namesrv.run_housekeeping(shutdown),
        );
        tracing::info!(addr = %self.local_addr, "NameServer stopped");
    }
}

impl NameServer {
    /// A NameServer with an empty routing table. Validates `config` and loads the KV config
    /// file when one is configured (a missing file is an empty table; an unreadable or
    /// malformed one is an error).
    pub fn new(config: NamesrvConfig) -> Result<Arc<Self>, NamesrvError> {
        config.validate()?;
        let kv = KvConfig::open(config.kv_config_path.clone())?;
        Ok(Arc::new(Self {
            routes: RwLock::new(RouteTable::new(
                config.delete_topic_with_broker_registration,
            )),
            kv: Arc::new(kv),
            stats: Arc::default(),
            config,
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &NamesrvConfig {
        &self.config
    }

    /// The counters and gauges, for metrics.
    pub fn stats(&self) -> Arc<NamesrvStats> {
        self.stats.clone()
    }

    /// Binds [`NamesrvConfig::listen`].
    pub async fn bind(self: &Arc<Self>) -> Result<NamesrvListener, NamesrvError> {
        let addr = self.config.listen;
        let bind_error = |source| NamesrvError::Bind { addr, source };
        let handler: Arc<dyn Handler> = self.clone();
        let server = RemotingServer::bind(addr, handler, TransportConfig::default())
            .await
            .map_err(bind_error)?;
        let local_addr = server.local_addr().map_err(bind_error)?;
        Ok(NamesrvListener {
            namesrv: self.clone(),
            server,
            local_addr,
        })
    }

    /// Expires silent brokers every [`NamesrvConfig::scan_interval_ms`] until `shutdown` is
    /// cancelled. [`NamesrvListener::run`] runs this already.
    pub async fn run_housekeeping(&self, shutdown: CancellationToken) {
        let period = self.config.scan_interval();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return,
            }
            self.expire_brokers();
        }
    }

    /// One expiry pass now: removes every broker address whose last registration is older
    /// than [`NamesrvConfig::broker_expiry_ms`], with its queues, and closes its connection.
    /// Returns how many were removed.
    pub fn expire_brokers(&self) -> usize {
        let now = Instant::now();
        let expired = self.change_routes(|routes| routes.expire(now, self.config.broker_expiry()));
        for e in &expired {
            tracing::warn!(
                broker_addr = %e.removed.broker_addr,
                broker_name = e.removed.broker_name.as_deref().unwrap_or(""),
                idle_ms = u64::try_from(e.idle.as_millis()).unwrap_or(u64::MAX),
                expiry_ms = self.config.broker_expiry_ms,
                name_removed = e.removed.name_removed,
                topics_removed = e.removed.topics_removed,
                "broker expired: no registration within the expiry"
            );
            if let Some(conn) = e.channel.as_ref().and_then(|c| c.conn.upgrade()) {
                conn.close();
            }
        }
        self.stats
            .expirations
            .fetch_add(expired.len() as u64, Ordering::Relaxed);
        expired.len()
    }

    /// Changes the routing table under its lock and refreshes the gauges.
    fn change_routes<R>(&self, change: impl FnOnce(&mut RouteTable) -> R) -> R {
        let mut routes = self.routes.write();
        let result = change(&mut routes);
        self.publish_gauges(&routes);
        result
    }

    fn publish_gauges(&self, routes: &RouteTable) {
        let counts = routes.counts();
        let set = |gauge: &std::sync::atomic::AtomicU64, value: usize| {
            gauge.store(value as u64, Ordering::Relaxed)
        };
        set(&self.stats.brokers_live, counts.brokers_live);
        set(&self.stats.broker_names, counts.broker_names);
        set(&self.stats.clusters, counts.clusters);
        set(&self.stats.topics, counts.topics);
    }

    /// Answers every request that needs no waiting.
    fn process(&self, conn: &Arc<Connection>, request: &RemotingCommand) -> RemotingCommand {
        let result = match request.code {
            request::REGISTER_BROKER => self.register_broker(conn, request),
            request::UNREGISTER_BROKER => self.unregister_broker(conn, request),
            request::GET_ROUTEINFO_BY_TOPIC => self.route_of_topic(request),
            request::GET_BROKER_CLUSTER_INFO => {
                json_response(request, &self.routes.read().cluster_info())
            }
            request::GET_ALL_TOPIC_LIST_FROM_NAMESERVER => {
                json_response(request, &self.routes.read().all_topics())
            }
            request::GET_SYSTEM_TOPIC_LIST_FROM_NS => {
                json_response(request, &self.routes.read().system_topics())
            }
            request::GET_TOPICS_BY_CLUSTER => self.topics_of_cluster(request),
            request::DELETE_TOPIC_IN_NAMESRV => self.delete_topic(conn, request),
            request::QUERY_DATA_VERSION => self.query_data_version(request),
            request::WIPE_WRITE_PERM_OF_BROKER | request::ADD_WRITE_PERM_OF_BROKER => {
                self.set_write_perm(conn, request)
            }
            request::GET_KV_CONFIG => self.get_kv_config(request),
            request::GET_KVLIST_BY_NAMESPACE => self.kv_namespace(request),
            _ => {
                tracing::debug!(code = request.code, peer = %conn.peer(), "request code not supported");
                self.stats.request_errors.fetch_add(1, Ordering::Relaxed);
                return not_supported(request);
            }
        };
        result.unwrap_or_else(|e| self.error_response(conn, request, &e))
    }

    fn error_response(
        &self,
        conn: &Connection,
        request: &RemotingCommand,
        error: &(dyn Error + 'static),
    ) -> RemotingCommand {
        let remark = error_chain(error);
        tracing::debug!(code = request.code, peer = %conn.peer(), error = %remark, "bad request");
        self.stats.request_errors.fetch_add(1, Ordering::Relaxed);
        RemotingCommand::response_to(request)
            .with_code(response::SYSTEM_ERROR)
            .with_remark(remark)
    }

    fn register_broker(
        &self,
        conn: &Arc<Connection>,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let header: RegisterBrokerRequestHeader = request.decode_header()?;
        let reply = RemotingCommand::response_to(request);
        if let Some(expected) = header.body_crc32.filter(|&crc| crc != 0) {
            let actual = java_crc32(&request.body);
            if actual != expected {
                tracing::warn!(
                    peer = %conn.peer(),
                    broker_addr = %header.broker_addr,
                    expected,
                    actual,
                    "REGISTER_BROKER body CRC32 does not match"
                );
                self.stats.request_errors.fetch_add(1, Ordering::Relaxed);
                return Ok(reply
                    .with_code(response::SYSTEM_ERROR)
                    .with_remark("crc32 not match"));
            }
        }
        let (topics, filter_servers) =
            decode_register_body(&request.body, header.compressed.unwrap_or(false))?;
        let registration = Registration {
            cluster: &header.cluster_name,
            broker_addr: &header.broker_addr,
            broker_name: &header.broker_name,
            broker_id: header.broker_id,
            ha_server_addr: &header.ha_server_addr,
            topics: &topics,
            filter_servers: filter_servers.as_deref(),
            channel: Some(Channel {
                id: conn.id(),
                conn: Arc::downgrade(conn),
            }),
        };
        // Checked under the lock that `on_close` takes too: either the registration is
        // recorded before the close removes it, or it is refused here.
        let registered = self.change_routes(|routes| {
            (!conn.is_closed()).then(|| routes.register(registration, Instant::now()))
        });
        let Some(registered) = registered else {
            return Ok(reply
                .with_code(response::SYSTEM_ERROR)
                .with_remark("connection closed"));
        };
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
        if registered.first {
            tracing::info!(
                cluster = %header.cluster_name,
                broker_name = %header.broker_name,
                broker_id = header.broker_id,
                broker_addr = %header.broker_addr,
                peer = %conn.peer(),
                topics = topics.topic_config_table.len(),
                data_version = topics.data_version.counter,
                "broker registered"
            );
        } else if registered.topics_applied {
            tracing::info!(
                broker_name = %header.broker_name,
                broker_addr = %header.broker_addr,
                topics = topics.topic_config_table.len(),
                data_version = topics.data_version.counter,
                "broker topics updated"
            );
        } else {
            tracing::trace!(broker_addr = %header.broker_addr, "broker heartbeat");
        }
        let mut reply = reply.with_header(&RegisterBrokerResponseHeader {
            ha_server_addr: registered.master_ha_server_addr,
            master_addr: registered.master_addr,
        });
        if let Some(order_topics) = self.kv.namespace(ORDER_TOPIC_CONFIG) {
            reply.body = order_topics.encode()?;
        }
        Ok(reply)
    }

    fn unregister_broker(
        &self,
        conn: &Connection,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let header: UnregisterBrokerRequestHeader = request.decode_header()?;
        let removed = self.change_routes(|routes| {
            routes.unregister(&header.broker_addr, &header.broker_name, header.broker_id)
        });
        self.stats.unregistrations.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            cluster = %header.cluster_name,
            broker_name = %header.broker_name,
            broker_id = header.broker_id,
            broker_addr = %header.broker_addr,
            peer = %conn.peer(),
            found = removed.broker_name.is_some(),
            name_removed = removed.name_removed,
            topics_removed = removed.topics_removed,
            "broker unregistered"
        );
        Ok(RemotingCommand::response_to(request))
    }

    fn route_of_topic(&self, request: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let header: GetRouteInfoRequestHeader = request.decode_header()?;
        let route = self.routes.read().route(&header.topic);
        let Some(mut route) = route else {
            return Ok(RemotingCommand::response_to(request)
                .with_code(response::TOPIC_NOT_EXIST)
                .with_remark(format!(
                    "No topic route info in name server for the topic: {}",
                    header.topic
                )));
        };
        if self.config.order_message_enable {
            route.order_topic_conf = self.kv.get(ORDER_TOPIC_CONFIG, &header.topic);
        }
        // Always standard JSON (quoted map keys), whatever the client's version: fastjson
        // reads it as well as the unquoted form, and other clients read only this.
        json_response(request, &route)
    }

    fn topics_of_cluster(
        &self,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let header: GetTopicsByClusterRequestHeader = request.decode_header()?;
        json_response(
            request,
            &self.routes.read().topics_of_cluster(&header.cluster),
        )
    }

    fn delete_topic(
        &self,
        conn: &Connection,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let header: DeleteTopicFromNamesrvRequestHeader = request.decode_header()?;
        let cluster = header.cluster_name.as_deref().filter(|c| !c.is_empty());
        let removed = self.change_routes(|routes| routes.delete_topic(&header.topic, cluster));
        tracing::info!(topic = %header.topic, cluster, removed, peer = %conn.peer(), "topic deleted");
        Ok(RemotingCommand::response_to(request))
    }

    fn query_data_version(
        &self,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let header: QueryDataVersionRequestHeader = request.decode_header()?;
        let version = DataVersion::decode(&request.body)?;
        let (changed, held) =
            self.routes
                .write()
                .query_data_version(&header.broker_addr, &version, Instant::now());
        let mut reply = RemotingCommand::response_to(request)
            .with_header(&QueryDataVersionResponseHeader { changed });
        if let Some(held) = held {
            reply.body = held.encode()?;
        }
        Ok(reply)
    }

    fn set_write_perm(
        &self,
        conn: &Connection,
        request: &RemotingCommand,
    ) -> Result<RemotingCommand, ProtocolError> {
        let wipe = request.code == request::WIPE_WRITE_PERM_OF_BROKER;
        let broker_name = if wipe {
            request
                .decode_header::<WipeWritePermOfBrokerRequestHeader>()?
                .broker_name
        } else {
            request
                .decode_header::<AddWritePermOfBrokerRequestHeader>()?
                .broker_name
        };
        let touched = self.routes.write().set_write_perm(&broker_name, wipe);
        tracing::info!(broker_name, wipe, topics = touched, peer = %conn.peer(), "broker write permission changed");
        let count = i32::try_from(touched).unwrap_or(i32::MAX);
        let reply = RemotingCommand::response_to(request);
        Ok(if wipe {
            reply.with_header(&WipeWritePermOfBrokerResponseHeader {
                wipe_topic_count: count,
            })
        } else {
            reply.with_header(&AddWritePermOfBrokerResponseHeader {
                add_topic_count: count,
            })
        })
    }

    fn get_kv_config(&self, request: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let header: GetKvConfigRequestHeader = request.decode_header()?;
        let reply = RemotingCommand::response_to(request);
        Ok(match self.kv.get(&header.namespace, &header.key) {
            Some(value) => reply.with_header(&GetKvConfigResponseHeader { value: Some(value) }),
            None => reply
                .with_code(response::QUERY_NOT_FOUND)
                .with_remark(format!(
                    "No config item, Namespace: {} Key: {}",
                    header.namespace, header.key
                )),
        })
    }

    fn kv_namespace(&self, request: &RemotingCommand) -> Result<RemotingCommand, ProtocolError> {
        let header: GetKvListByNamespaceRequestHeader = request.decode_header()?;
        match self.kv.namespace(&header.namespace) {
            Some(table) => json_response(request, &table),
            None => Ok(RemotingCommand::response_to(request)
                .with_code(response::QUERY_NOT_FOUND)
                .with_remark(format!("No config item, Namespace: {}", header.namespace))),
        }
    }

    /// PUT_KV_CONFIG and DELETE_KV_CONFIG: they write the KV file, so they answer once it
    /// is written.
    fn write_kv_config(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        let decoded = if request.code == request::PUT_KV_CONFIG {
            request
                .decode_header::<PutKvConfigRequestHeader>()
                .map(|h| (h.namespace, h.key, Some(h.value)))
        } else {
            request
                .decode_header::<DeleteKvConfigRequestHeader>()
                .map(|h| (h.namespace, h.key, None))
        };
        let (namespace, key, value) = match decoded {
            Ok(change) => change,
            Err(e) => {
                let answer = self.error_response(conn, &request, &e);
                return Box::pin(std::future::ready(Some(answer)));
            }
        };
        let kv = self.kv.clone();
        let stats = self.stats.clone();
        Box::pin(async move {
            let written = match value {
                Some(value) => kv.put(&namespace, &key, &value).await,
                None => kv.delete(&namespace, &key).await,
            };
            let reply = RemotingCommand::response_to(&request);
            Some(match written {
                Ok(()) => reply,
                Err(e) => {
                    let cause = error_chain(&e);
                    tracing::error!(namespace, key, error = %cause, "KV config changed in memory but not saved");
                    stats.request_errors.fetch_add(1, Ordering::Relaxed);
                    reply.with_code(response::SYSTEM_ERROR).with_remark(format!(
                        "KV config changed in memory but not saved: {cause}"
                    ))
                }
            })
        })
    }
}

impl Handler for NameServer {
    fn handle(&self, conn: &Arc<Connection>, request: RemotingCommand) -> HandlerFuture {
        self.stats.count_request(request.code);
        if matches!(
            request.code,
            request::PUT_KV_CONFIG | request::DELETE_KV_CONFIG
        ) {
            return self.write_kv_config(conn, request);
        }
        let answer = self.process(conn, &request);
        Box::pin(std::future::ready(Some(answer)))
    }

    fn on_close(&self, conn: &Arc<Connection>) {
        let removed = self.change_routes(|routes| routes.connection_closed(conn.id()));
        for r in &removed {
            tracing::info!(
                broker_addr = %r.broker_addr,
                broker_name = r.broker_name.as_deref().unwrap_or(""),
                peer = %conn.peer(),
                name_removed = r.name_removed,
                topics_removed = r.topics_removed,
                "broker connection closed; broker removed"
            );
        }
        self.stats
            .connection_closes
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
    }
}

/// A SUCCESS answer carrying `body` as JSON.
fn json_response(
    request: &RemotingCommand,
    body: &impl JsonBody,
) -> Result<RemotingCommand, ProtocolError> {
    Ok(RemotingCommand::response_to(request).with_body(body.encode()?))
}

/// Java's `UtilAll.crc32`: CRC-32 with the sign bit cleared.
fn java_crc32(bytes: &[u8]) -> i32 {
    i32::try_from(crc32fast::hash(bytes) & 0x7FFF_FFFF).unwrap_or(0)
}

/// The topic configs and filter servers of a REGISTER_BROKER body.
///
/// Brokers since RocketMQ 3.0.11 send a `RegisterBrokerBody`
/// (`{"topicConfigSerializeWrapper":…,"filterServerList":[…]}`); older ones the bare
/// `TopicConfigSerializeWrapper`. Java picks by the request's version; the JSON says it just
/// as well, and non-Java brokers need not send a version. An empty body registers no topics
/// with data version 0.
fn decode_register_body(
    body: &[u8],
    compressed: bool,
) -> Result<(TopicConfigSerializeWrapper, Option<Vec<String>>), ProtocolError> {
    if body.is_empty() {
        return Ok((TopicConfigSerializeWrapper::default(), None));
    }
    if compressed {
        let body = RegisterBrokerBody::decode_request(body, true)?;
        return Ok((
            body.topic_config_serialize_wrapper,
            Some(body.filter_server_list),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|source| ProtocolError::BodyNotUtf8 {
        body: RegisterBrokerBody::NAME,
        source,
    })?;
    let invalid = |source| ProtocolError::InvalidBody {
        body: RegisterBrokerBody::NAME,
        source,
    };
    let value: serde_json::Value =
        serde_json::from_str(&quote_integer_keys(text)).map_err(invalid)?;
    let is_register_body = value.as_object().is_some_and(|o| {
        o.contains_key("topicConfigSerializeWrapper") || o.contains_key("filterServerList")
    });
    if is_register_body {
        let body: RegisterBrokerBody = serde_json::from_value(value).map_err(invalid)?;
        Ok((
            body.topic_config_serialize_wrapper,
            Some(body.filter_server_list),
        ))
    } else {
        let wrapper =
            serde_json::from_value(value).map_err(|source| ProtocolError::InvalidBody {
                body: TopicConfigSerializeWrapper::NAME,
                source,
            })?;
        Ok((wrapper, None))
    }
}

/// An error and its causes, `: `-separated, for a response remark.
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_java_s_masked_value() {
        // java.util.zip.CRC32 of "123456789" is 0xCBF43926; UtilAll.crc32 clears the sign bit.
        assert_eq!(java_crc32(b"123456789"), 0x4BF4_3926);
    }

    #[test]
    fn register_bodies_of_both_generations_decode() {
        let new = br#"{"topicConfigSerializeWrapper":{"dataVersion":{"counter":2,"timestamp":5},"topicConfigTable":{"T":{"topicName":"T","readQueueNums":4,"writeQueueNums":4,"perm":6}}},"filterServerList":["10.0.0.1:9999"]}"#;
        let (wrapper, filters) = decode_register_body(new, false).expect("decodes");
        assert_eq!(wrapper.data_version.counter, 2);
        assert_eq!(wrapper.topic_config_table["T"].read_queue_nums, 4);
        assert_eq!(filters, Some(vec!["10.0.0.1:9999".to_owned()]));

        let old = br#"{"dataVersion":{"counter":3,"timestamp":5},"topicConfigTable":{"T":{"topicName":"T","readQueueNums":8,"writeQueueNums":8,"perm":6}}}"#;
        let (wrapper, filters) = decode_register_body(old, false).expect("decodes");
        assert_eq!((wrapper.data_version.counter, filters), (3, None));
        assert_eq!(wrapper.topic_config_table["T"].write_queue_nums, 8);

        let (empty, filters) = decode_register_body(b"", false).expect("decodes");
        assert_eq!(
            (empty, filters),
            (TopicConfigSerializeWrapper::default(), None)
        );

        for bad in [
            &b"{"[..],
            b"[1]",
            b"\xff",
            br#"{"topicConfigSerializeWrapper":7}"#,
        ] {
            assert!(decode_register_body(bad, false).is_err(), "{bad:?}");
        }
        assert!(matches!(
            decode_register_body(b"x", true),
            Err(ProtocolError::UnsupportedBody { .. })
        ));
    }
}
