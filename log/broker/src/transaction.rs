//! Transactional messages, as RocketMQ's `TransactionalMessageServiceImpl`.
//!
//! **Half messages.** A send with the TRANSACTION_PREPARED sys flag (or `TRAN_MSG=true`) is
//! stored as an ordinary, dispatched message of [`HALF_TOPIC`] queue 0 with the transaction
//! bits of its sys flag cleared, its topic and queue kept in `REAL_TOPIC` / `REAL_QID` and
//! `__transactionId__ = UNIQ_KEY` (Java's `parseHalfMessageInner`). Nobody subscribes to the
//! half topic (it is not a configured topic), so the message is invisible.
//!
//! **Resolution.** END_TRANSACTION names the half message by commit-log offset and queue
//! offset. A commit re-appends it to its real topic and queue (sys flag COMMIT, delays
//! applied then), a rollback drops it; either way an *op* message is appended to [`OP_TOPIC`]
//! queue 0 with tag `d` and body `<half queue offset>,` (Java's op log format).
//!
//! **Checks.** A half message not resolved `transaction_timeout_ms` after it was stored is
//! *checked*: a copy is appended to the half topic with `TRANSACTION_CHECK_TIMES` one higher
//! and `TRAN_PREPARED_QUEUE_OFFSET` naming the first half message (the transaction's *origin*),
//! and CHECK_TRANSACTION_STATE (one-way, body = the copy with its real topic) goes to a live
//! producer of its group (`PGROUP`). Further checks follow every
//! `transaction_check_interval_ms`; once `transaction_check_max` checks went unanswered the
//! transaction is discarded (an op message and a log line), as Java's `needDiscard`.
//!
//! **Restart.** Nothing is kept in memory that the logs do not hold: at open the op queue
//! gives the resolved origins, the half queue the pending ones, each with its latest copy
//! (check count, store time). A commit appends the committed message, which carries
//! `__TXN_SRC = <origin>`, before the op message; a crash between the two is repaired at
//! open by scanning the commit log from the oldest pending copy for such messages. So a
//! transaction is committed at most once, whatever the crash point.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use tributary_protocol::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use tributary_protocol::message::{
    OffsetMessageId, decode_properties, encode_properties, property,
};
use tributary_protocol::{RemotingCommand, codes, sysflag};
use tributary_store::{MessageStore, NewMessage, StoredMessage};

use crate::clients::ClientChannel;
use crate::processor::{Refusal, Reply};
use crate::{Broker, BrokerConfig};

use codes::response as rs;
use sysflag::message as sf;

/// Topic of half messages (RocketMQ's `RMQ_SYS_TRANS_HALF_TOPIC`).
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// Topic of op messages (RocketMQ's `RMQ_SYS_TRANS_OP_HALF_TOPIC`).
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Tag of an op message that removes a half message (Java's `REMOVE_TAG`).
const REMOVE_TAG: &str = "d";
/// Property of a committed message naming its transaction's origin (half queue offset). Set
/// only by the broker.
pub const COMMIT_SOURCE_PROPERTY: &str = "__TXN_SRC";
/// Most checks sent in one round.
const MAX_CHECKS_PER_ROUND: usize = 1024;
/// Longest sleep between rounds, ms.
const IDLE_WAKE_MS: i64 = 1000;

fn now_ms() -> i64 {
    crate::schedule::now_ms()
}

/// A transaction not yet resolved.
#[derive(Debug, Clone)]
struct Pending {
    /// Queue offset of its latest half copy.
    offset: i64,
    /// Commit-log offset of its latest half copy.
    phys: u64,
    /// Checks sent so far (`TRANSACTION_CHECK_TIMES` of the latest copy).
    checks: u32,
    /// When it is checked next, ms since the epoch.
    due_ms: i64,
    /// Producer group.
    group: String,
}

/// Counters of the transaction service.
#[derive(Debug, Default)]
pub struct TransactionStats {
    /// Half messages stored.
    pub prepared: std::sync::atomic::AtomicU64,
    /// Transactions committed.
    pub committed: std::sync::atomic::AtomicU64,
    /// Transactions rolled back.
    pub rolled_back: std::sync::atomic::AtomicU64,
    /// CHECK_TRANSACTION_STATE rounds (copies appended), with or without a live producer.
    pub checks: std::sync::atomic::AtomicU64,
    /// Check rounds that found no live producer of the group to ask.
    pub checks_without_producer: std::sync::atomic::AtomicU64,
    /// Transactions discarded after the last check.
    pub discarded: std::sync::atomic::AtomicU64,
}

/// Half messages, their resolution and their checks.
pub struct TransactionService {
    store: Arc<MessageStore>,
    timeout_ms: i64,
    interval_ms: i64,
    max_checks: u32,
    /// Pending transactions by origin; the lock also orders resolutions and checks.
    pending: Mutex<BTreeMap<i64, Pending>>,
    wake: Condvar,
    stopped: AtomicBool,
    stats: TransactionStats,
}

impl std::fmt::Debug for TransactionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionService")
            .field("pending", &self.pending.lock().len())
            .finish_non_exhaustive()
    }
}

/// Origin of a half message: `TRAN_PREPARED_QUEUE_OFFSET`, or its own queue offset.
fn origin_of(m: &StoredMessage) -> i64 {
    m.property(property::TRANSACTION_PREPARED_QUEUE_OFFSET)
        .and_then(|v| v.parse().ok())
        .unwrap_or(m.queue_offset)
}

fn checks_of(m: &StoredMessage) -> u32 {
    m.property(property::TRANSACTION_CHECK_TIMES)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether a send is a half message.
pub(crate) fn is_half(sys_flag: i32, properties: &str) -> bool {
    sf::transaction_type(sys_flag) == sf::TRANSACTION_PREPARED
        || tributary_store::record::property(properties, property::TRANSACTION_PREPARED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Turns a send into its half message (Java's `parseHalfMessageInner`); returns its producer
/// group (`PGROUP`, set from the send's group when the client did not).
pub(crate) fn to_half(message: &mut NewMessage, group: &str) -> String {
    let mut props = decode_properties(&message.properties);
    let group = props
        .entry(property::PRODUCER_GROUP.to_string())
        .or_insert_with(|| group.to_string())
        .clone();
    // Only the broker sets these.
    props.remove(COMMIT_SOURCE_PROPERTY);
    props.remove(property::TRANSACTION_PREPARED_QUEUE_OFFSET);
    props.remove(property::TRANSACTION_CHECK_TIMES);
    if let Some(uniq) = props
        .get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX)
        .filter(|u| !u.is_empty())
        .cloned()
    {
        props.insert(property::TRANSACTION_ID.into(), uniq);
    }
    props.insert(property::REAL_TOPIC.into(), message.topic.clone());
    props.insert(property::REAL_QUEUE_ID.into(), message.queue_id.to_string());
    message.properties = encode_properties(&props);
    message.sys_flag = sf::with_transaction_type(message.sys_flag, sf::TRANSACTION_NOT_TYPE);
    message.topic = HALF_TOPIC.into();
    message.queue_id = 0;
    group
}

/// An op message removing the transaction of `origin`.
fn op_message(origin: i64, host: std::net::SocketAddr) -> NewMessage {
    let mut m = NewMessage::new(OP_TOPIC, 0, Bytes::from(format!("{origin},")));
    m.properties = tributary_store::record::encode_properties([(property::TAGS, REMOVE_TAG)]);
    m.born_timestamp = now_ms();
    m.born_host = host;
    m
}

/// The origins an op message removes.
fn op_origins(m: &StoredMessage) -> Vec<i64> {
    if m.property(property::TAGS) != Some(REMOVE_TAG) {
        return Vec::new();
    }
    std::str::from_utf8(&m.body)
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// A stored message as a new one (same body, flags, born data and properties).
fn copy_of(m: &StoredMessage) -> NewMessage {
    NewMessage {
        topic: m.topic.clone(),
        queue_id: m.queue_id,
        flag: m.flag,
        body: m.body.clone(),
        properties: m.properties.clone(),
        sys_flag: m.sys_flag,
        born_timestamp: m.born_timestamp,
        born_host: m.born_host,
        reconsume_times: m.reconsume_times,
        prepared_transaction_offset: m.prepared_transaction_offset,
    }
}

impl TransactionService {
    /// Opens the service: rebuilds the pending transactions from the half and op queues and
    /// repairs a commit whose op message was lost in a crash. Blocking.
    pub fn open(config: &BrokerConfig, store: Arc<MessageStore>) -> std::io::Result<Self> {
        let service = Self {
            store,
            timeout_ms: i64::try_from(config.transaction_timeout_ms).unwrap_or(i64::MAX),
            interval_ms: i64::try_from(config.transaction_check_interval_ms)
                .unwrap_or(i64::MAX)
                .max(1),
            max_checks: config.transaction_check_max,
            pending: Mutex::new(BTreeMap::new()),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            stats: TransactionStats::default(),
        };
        service.recover().map_err(std::io::Error::other)?;
        Ok(service)
    }

    /// Counters.
    pub fn stats(&self) -> &TransactionStats {
        &self.stats
    }

    /// Transactions not yet resolved.
    pub fn pending_count(&self) -> usize {
        self.pending.lock().len()
    }

    fn read_queue(
        &self,
        topic: &str,
        mut each: impl FnMut(StoredMessage),
    ) -> Result<(), tributary_store::StoreError> {
        let end = self.store.max_offset(topic, 0);
        for offset in self.store.min_offset(topic, 0)..end {
            let Some(unit) = self.store.unit(topic, 0, offset) else {
                continue;
            };
            let Ok(phys) = u64::try_from(unit.phy_offset) else {
                continue;
            };
            if let Some(m) = self.store.read_message(phys)? {
                each(m);
            }
        }
        Ok(())
    }

    fn recover(&self) -> Result<(), tributary_store::StoreError> {
        self.store.wait_dispatched(Duration::from_secs(60));
        let mut resolved = HashSet::new();
        self.read_queue(OP_TOPIC, |m| resolved.extend(op_origins(&m)))?;
        let mut pending = BTreeMap::new();
        self.read_queue(HALF_TOPIC, |m| {
            let origin = origin_of(&m);
            if resolved.contains(&origin) {
                return;
            }
            let checks = checks_of(&m);
            let wait = if checks == 0 {
                self.timeout_ms
            } else {
                self.interval_ms
            };
            pending.insert(
                origin,
                Pending {
                    offset: m.queue_offset,
                    phys: u64::try_from(m.physical_offset).unwrap_or(0),
                    checks,
                    due_ms: m.store_timestamp.saturating_add(wait),
                    group: m
                        .property(property::PRODUCER_GROUP)
                        .unwrap_or_default()
                        .to_string(),
                },
            );
        })?;
        // A commit whose op message did not survive: the committed copy is after the latest
        // half copy of its transaction.
        if let Some(from) = pending.values().map(|p| p.phys).min() {
            let mut at = from;
            while let Some((next, m)) = self.store.next_record(at)? {
                if let Some(origin) = m
                    .property(COMMIT_SOURCE_PROPERTY)
                    .and_then(|v| v.parse::<i64>().ok())
                    && pending.remove(&origin).is_some()
                {
                    tracing::info!(
                        origin,
                        "transaction commit found without its op record; completing"
                    );
                    self.store
                        .append(&op_message(origin, self.store.config().store_host))?;
                }
                if next <= at {
                    break;
                }
                at = next;
            }
        }
        if !pending.is_empty() {
            tracing::info!(
                pending = pending.len(),
                "pending transactions recovered from the half queue"
            );
        }
        *self.pending.lock() = pending;
        Ok(())
    }

    /// Records a half message just stored (before the send is answered).
    pub(crate) fn prepared(&self, queue_offset: i64, phys: u64, group: &str) {
        self.stats.prepared.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().insert(
            queue_offset,
            Pending {
                offset: queue_offset,
                phys,
                checks: 0,
                due_ms: now_ms().saturating_add(self.timeout_ms),
                group: group.to_string(),
            },
        );
        self.wake.notify_one();
    }

    /// Asks [`TransactionService::run`] to return.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _guard = self.pending.lock();
        self.wake.notify_all();
    }

    /// The check loop: runs on its own thread until [`TransactionService::stop`].
    /// `producers` gives the live producers of a group.
    pub fn run(&self, producers: &dyn Fn(&str) -> Vec<ClientChannel>) {
        while !self.stopped.load(Ordering::Acquire) {
            let now = now_ms();
            let due: Vec<(i64, Pending)> = self
                .pending
                .lock()
                .iter()
                .filter(|(_, p)| p.due_ms <= now)
                .take(MAX_CHECKS_PER_ROUND)
                .map(|(o, p)| (*o, p.clone()))
                .collect();
            for (origin, p) in due {
                self.check(origin, &p, producers);
            }
            let mut pending = self.pending.lock();
            if self.stopped.load(Ordering::Acquire) {
                break;
            }
            let next = pending.values().map(|p| p.due_ms).min();
            let wait = next
                .map_or(IDLE_WAKE_MS, |d| d.saturating_sub(now_ms()))
                .clamp(0, IDLE_WAKE_MS);
            if wait > 0 {
                self.wake
                    .wait_for(&mut pending, Duration::from_millis(wait as u64));
            }
        }
    }

    /// One check of one transaction: discard, or a copy with one more check and
    /// CHECK_TRANSACTION_STATE to a live producer.
    fn check(&self, origin: i64, seen: &Pending, producers: &dyn Fn(&str) -> Vec<ClientChannel>) {
        let host = self.store.config().store_host;
        let mut pending = self.pending.lock();
        // Resolved, or checked by someone else, meanwhile.
        let Some(p) = pending
            .get(&origin)
            .filter(|p| p.offset == seen.offset)
            .cloned()
        else {
            return;
        };
        if p.checks >= self.max_checks {
            match self.store.append(&op_message(origin, host)) {
                Ok(_) => {
                    pending.remove(&origin);
                    self.stats.discarded.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        origin,
                        group = %p.group,
                        checks = p.checks,
                        "transaction discarded: its state was still unknown after the last check"
                    );
                }
                Err(e) => tracing::error!(origin, error = %e, "append transaction op record"),
            }
            return;
        }
        let latest = match self.store.read_message(p.phys) {
            Ok(Some(m)) => m,
            Ok(None) => {
                tracing::warn!(
                    origin,
                    phys = p.phys,
                    "half message is gone (retention); dropping the transaction"
                );
                pending.remove(&origin);
                return;
            }
            Err(e) => {
                tracing::error!(origin, error = %e, "read half message");
                if let Some(p) = pending.get_mut(&origin) {
                    p.due_ms = now_ms().saturating_add(self.interval_ms);
                }
                return;
            }
        };
        let mut copy = copy_of(&latest);
        let mut props = decode_properties(&copy.properties);
        props.insert(
            property::TRANSACTION_CHECK_TIMES.into(),
            (p.checks + 1).to_string(),
        );
        props.insert(
            property::TRANSACTION_PREPARED_QUEUE_OFFSET.into(),
            origin.to_string(),
        );
        copy.properties = encode_properties(&props);
        let result = match self.store.append(&copy) {
            Ok((r, _)) => r,
            Err(e) => {
                tracing::error!(origin, error = %e, "append half message copy for a check");
                if let Some(p) = pending.get_mut(&origin) {
                    p.due_ms = now_ms().saturating_add(self.interval_ms);
                }
                return;
            }
        };
        self.stats.checks.fetch_add(1, Ordering::Relaxed);
        pending.insert(
            origin,
            Pending {
                offset: result.queue_offset,
                phys: result.physical_offset,
                checks: p.checks + 1,
                due_ms: now_ms().saturating_add(self.interval_ms),
                group: p.group.clone(),
            },
        );
        drop(pending);
        let Some(channel) = producers(&p.group)
            .into_iter()
            .max_by_key(|c| c.last_update)
        else {
            self.stats
                .checks_without_producer
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(origin, group = %p.group, checks = p.checks + 1, "check transaction state: no live producer of the group");
            return;
        };
        let request = match check_request(&copy, &result, host) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(origin, error = %e, "encode transaction check");
                return;
            }
        };
        if let Err(e) = channel.conn.try_oneway(request) {
            tracing::warn!(origin, group = %p.group, client = %channel.client_id, error = %e, "send CHECK_TRANSACTION_STATE");
        } else {
            tracing::debug!(origin, group = %p.group, client = %channel.client_id, checks = p.checks + 1, "CHECK_TRANSACTION_STATE sent");
        }
    }

    /// Resolves a transaction by one of its half messages: under the lock, so that a
    /// transaction is committed or rolled back once. Returns the durability of the appends.
    fn resolve(
        &self,
        header: &EndTransactionRequestHeader,
        half: &StoredMessage,
        schedule: &crate::ScheduleService,
    ) -> Result<tributary_store::Durable, Refusal> {
        let origin = origin_of(half);
        let host = self.store.config().store_host;
        let mut pending = self.pending.lock();
        if !pending.contains_key(&origin) {
            return Err(Refusal::new(
                rs::SYSTEM_ERROR,
                format!("the transaction of half message {origin} is already resolved or unknown"),
            ));
        }
        if header.commit_or_rollback == sf::TRANSACTION_COMMIT {
            let committed = committed_message(half, origin, header.commit_log_offset);
            let mut committed = committed.map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e))?;
            schedule
                .route(&mut committed, now_ms())
                .map_err(|e| Refusal::new(rs::MESSAGE_ILLEGAL, e))?;
            self.store.append(&committed).map_err(|e| {
                Refusal::new(rs::SYSTEM_ERROR, format!("append committed message: {e}"))
            })?;
        }
        let (_, durable) = self.store.append(&op_message(origin, host)).map_err(|e| {
            Refusal::new(
                rs::SYSTEM_ERROR,
                format!("append transaction op record: {e}"),
            )
        })?;
        pending.remove(&origin);
        let counter = if header.commit_or_rollback == sf::TRANSACTION_COMMIT {
            &self.stats.committed
        } else {
            &self.stats.rolled_back
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(durable)
    }
}

/// The message a commit appends (Java's `endMessageTransaction`).
fn committed_message(
    half: &StoredMessage,
    origin: i64,
    half_offset: i64,
) -> Result<NewMessage, String> {
    let mut props = decode_properties(&half.properties);
    let topic = props
        .remove(property::REAL_TOPIC)
        .ok_or("the half message has no REAL_TOPIC")?;
    let queue_id = props
        .remove(property::REAL_QUEUE_ID)
        .and_then(|q| q.parse().ok())
        .ok_or("the half message has no REAL_QID")?;
    props.remove(property::TRANSACTION_PREPARED);
    props.remove(property::TRANSACTION_PREPARED_QUEUE_OFFSET);
    props.remove(property::TRANSACTION_CHECK_TIMES);
    props.insert(COMMIT_SOURCE_PROPERTY.into(), origin.to_string());
    let mut m = copy_of(half);
    m.topic = topic;
    m.queue_id = queue_id;
    m.properties = encode_properties(&props);
    m.sys_flag = sf::with_transaction_type(m.sys_flag, sf::TRANSACTION_COMMIT);
    m.prepared_transaction_offset = half_offset;
    Ok(m)
}

/// CHECK_TRANSACTION_STATE for a half copy: the header, and the copy as a record with its real
/// topic and queue (Java's `sendCheckMessage`).
fn check_request(
    copy: &NewMessage,
    stored: &tributary_store::AppendResult,
    host: std::net::SocketAddr,
) -> Result<RemotingCommand, String> {
    let props = decode_properties(&copy.properties);
    let mut real = copy.clone();
    if let Some(t) = props.get(property::REAL_TOPIC) {
        real.topic = t.clone();
    }
    if let Some(q) = props
        .get(property::REAL_QUEUE_ID)
        .and_then(|q| q.parse().ok())
    {
        real.queue_id = q;
    }
    let mut record = tributary_store::record::encode(&real, &host, usize::MAX)
        .map_err(|e| e.to_string())?
        .bytes;
    tributary_store::record::patch_assigned(
        &mut record,
        stored.queue_offset,
        stored.physical_offset as i64,
        stored.store_timestamp,
    );
    let uniq = props.get(property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX).cloned();
    let header = CheckTransactionStateRequestHeader {
        // As Java's check listener: the topic of the half message as stored (the body carries
        // the real topic and queue). Java 5 producers echo it in END_TRANSACTION.
        topic: Some(HALF_TOPIC.to_owned()),
        tran_state_table_offset: stored.queue_offset,
        commit_log_offset: stored.physical_offset as i64,
        msg_id: uniq.clone(),
        transaction_id: uniq,
        offset_msg_id: Some(OffsetMessageId::new(host, stored.physical_offset as i64).to_string()),
    };
    Ok(
        RemotingCommand::new_request(codes::request::CHECK_TRANSACTION_STATE, 0)
            .with_header(&header)
            .with_body(Bytes::from(record)),
    )
}

impl Broker {
    /// END_TRANSACTION (37): commit or roll back a half message; "unknown" leaves it to the
    /// checks.
    pub(crate) async fn end_transaction(self: &Arc<Self>, request: &RemotingCommand) -> Reply {
        let header: EndTransactionRequestHeader = request.decode_header()?;
        let kind = header.commit_or_rollback;
        if kind != sf::TRANSACTION_COMMIT && kind != sf::TRANSACTION_ROLLBACK {
            tracing::debug!(producer_group = %header.producer_group, msg_id = %header.msg_id, from_check = ?header.from_transaction_check, "transaction state unknown; it will be checked");
            return Ok(RemotingCommand::response_to(request));
        }
        let phys = u64::try_from(header.commit_log_offset).map_err(|_| {
            Refusal::new(rs::SYSTEM_ERROR, "Find prepared transaction message failed")
        })?;
        let me = self.clone();
        let header2 = header.clone();
        let durable = tokio::task::spawn_blocking(move || -> Result<_, Refusal> {
            let half = me
                .store
                .read_message(phys)
                .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))?
                .filter(|m| m.topic == HALF_TOPIC)
                .ok_or_else(|| {
                    Refusal::new(rs::SYSTEM_ERROR, "Find prepared transaction message failed")
                })?;
            if half.property(property::PRODUCER_GROUP) != Some(header2.producer_group.as_str()) {
                return Err(Refusal::new(rs::SYSTEM_ERROR, "The producer group wrong"));
            }
            if half.queue_offset != header2.tran_state_table_offset {
                return Err(Refusal::new(
                    rs::SYSTEM_ERROR,
                    "The transaction state table offset wrong",
                ));
            }
            me.transactions.resolve(&header2, &half, &me.schedule)
        })
        .await
        .map_err(|e| Refusal::new(rs::SYSTEM_ERROR, e.to_string()))??;
        tracing::debug!(producer_group = %header.producer_group, msg_id = %header.msg_id, commit = kind == sf::TRANSACTION_COMMIT, "transaction resolved");
        let (code, remark) = self.durable_code(durable).await?;
        let mut response = RemotingCommand::response_to(request).with_code(code);
        response.remark = remark;
        Ok(response)
    }

    /// Transactional messages.
    pub fn transactions(&self) -> &TransactionService {
        &self.transactions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_message_keeps_real_topic_and_clears_the_transaction_flag() {
        let mut m = NewMessage::new("Orders", 3, "x");
        m.sys_flag = sf::TRANSACTION_PREPARED | sf::MULTI_TAGS;
        m.properties = tributary_store::record::encode_properties([
            (property::UNIQ_CLIENT_MESSAGE_ID_KEYIDX, "U1"),
            (property::TRANSACTION_PREPARED, "true"),
            (COMMIT_SOURCE_PROPERTY, "forged"),
        ]);
        assert!(is_half(m.sys_flag, &m.properties));
        assert_eq!(to_half(&mut m, "G"), "G");
        assert_eq!(m.topic, HALF_TOPIC);
        assert_eq!(m.queue_id, 0);
        assert_eq!(sf::transaction_type(m.sys_flag), sf::TRANSACTION_NOT_TYPE);
        assert_eq!(m.sys_flag & sf::MULTI_TAGS, sf::MULTI_TAGS);
        let p = decode_properties(&m.properties);
        assert_eq!(
            p.get(property::REAL_TOPIC).map(String::as_str),
            Some("Orders")
        );
        assert_eq!(
            p.get(property::REAL_QUEUE_ID).map(String::as_str),
            Some("3")
        );
        assert_eq!(
            p.get(property::TRANSACTION_ID).map(String::as_str),
            Some("U1")
        );
        assert!(!p.contains_key(COMMIT_SOURCE_PROPERTY));
    }

    #[test]
    fn op_body_is_javas_offset_list() {
        let host = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        let m = op_message(42, host);
        assert_eq!(&m.body[..], b"42,");
        let stored = StoredMessage {
            total_size: 0,
            magic: 0,
            body_crc: 0,
            queue_id: 0,
            flag: 0,
            queue_offset: 0,
            physical_offset: 0,
            sys_flag: 0,
            born_timestamp: 0,
            born_host: host,
            store_timestamp: 0,
            store_host: host,
            reconsume_times: 0,
            prepared_transaction_offset: 0,
            body: Bytes::from_static(b"7,9,"),
            topic: OP_TOPIC.into(),
            properties: m.properties.clone(),
        };
        assert_eq!(op_origins(&stored), vec![7, 9]);
    }
}
