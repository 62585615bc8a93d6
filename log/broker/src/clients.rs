//! Producers and consumers known from their heartbeats, and the queue locks of orderly
//! consumers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tributary_protocol::LanguageCode;
use tributary_protocol::body::{
    ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, MessageQueue, SubscriptionData,
};
use tributary_remoting::Connection;

/// One client on one connection.
#[derive(Debug, Clone)]
pub struct ClientChannel {
    /// The client's id (`ip@instance`).
    pub client_id: String,
    /// Its connection.
    pub conn: Arc<Connection>,
    /// Language it says it is written in.
    pub language: LanguageCode,
    /// Its version ordinal.
    pub version: i32,
    /// Last heartbeat.
    pub last_update: Instant,
}

/// What the broker knows of one consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    /// Clients by connection id.
    pub channels: HashMap<u64, ClientChannel>,
    /// Subscriptions by topic.
    pub subscriptions: HashMap<String, SubscriptionData>,
    /// Pull or push.
    pub consume_type: ConsumeType,
    /// Clustering or broadcasting.
    pub message_model: MessageModel,
    /// Where a new consumer starts.
    pub consume_from_where: ConsumeFromWhere,
}

impl ConsumerGroup {
    /// Client ids, sorted (clients allocate queues over this list).
    pub fn client_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .channels
            .values()
            .map(|c| c.client_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Producer groups with their clients, and the latest channel of each producer client id
/// (Java's `clientChannelTable`), so that a reply finds its requester without a scan.
#[derive(Debug, Default)]
struct Producers {
    groups: HashMap<String, HashMap<u64, ClientChannel>>,
    by_client: HashMap<String, ClientChannel>,
}

impl Producers {
    /// Forgets client ids whose connection is no longer in any producer group.
    fn prune_index(&mut self) {
        let live: std::collections::HashSet<u64> = self
            .groups
            .values()
            .flat_map(|g| g.keys().copied())
            .collect();
        self.by_client.retain(|_, c| live.contains(&c.conn.id()));
    }
}

/// Every producer and consumer group with its live clients.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    consumers: Mutex<HashMap<String, ConsumerGroup>>,
    producers: Mutex<Producers>,
}

impl ClientRegistry {
    /// Records a producer heartbeat.
    pub fn register_producer(&self, group: &str, channel: ClientChannel) {
        let mut producers = self.producers.lock();
        producers
            .by_client
            .insert(channel.client_id.clone(), channel.clone());
        producers
            .groups
            .entry(group.to_string())
            .or_default()
            .insert(channel.conn.id(), channel);
    }

    /// The open connection of a producer client (the requester a reply is pushed to).
    pub fn find_producer(&self, client_id: &str) -> Option<ClientChannel> {
        self.producers
            .lock()
            .by_client
            .get(client_id)
            .filter(|c| !c.conn.is_closed())
            .cloned()
    }

    /// Records a consumer heartbeat. Returns the group's connections to notify when its set
    /// of clients changed (a client joined), else nothing.
    pub fn register_consumer(
        &self,
        data: &ConsumerData,
        channel: ClientChannel,
    ) -> Vec<Arc<Connection>> {
        let mut consumers = self.consumers.lock();
        let group = consumers
            .entry(data.group_name.clone())
            .or_insert_with(|| ConsumerGroup {
                channels: HashMap::new(),
                subscriptions: HashMap::new(),
                consume_type: data.consume_type,
                message_model: data.message_model,
                consume_from_where: data.consume_from_where,
            });
        group.consume_type = data.consume_type;
        group.message_model = data.message_model;
        group.consume_from_where = data.consume_from_where;
        let joined = group.channels.insert(channel.conn.id(), channel).is_none();
        for sub in &data.subscription_data_set {
            let newer = group
                .subscriptions
                .get(&sub.topic)
                .is_none_or(|old| old.sub_version <= sub.sub_version);
            if newer {
                group.subscriptions.insert(sub.topic.clone(), sub.clone());
            }
        }
        if joined {
            group.channels.values().map(|c| c.conn.clone()).collect()
        } else {
            Vec::new()
        }
    }

    /// Removes a client's connection from a group (UNREGISTER_CLIENT); returns the remaining
    /// connections to notify.
    pub fn unregister_consumer(&self, group: &str, conn_id: u64) -> Vec<Arc<Connection>> {
        let mut consumers = self.consumers.lock();
        let Some(g) = consumers.get_mut(group) else {
            return Vec::new();
        };
        if g.channels.remove(&conn_id).is_none() {
            return Vec::new();
        }
        let rest: Vec<_> = g.channels.values().map(|c| c.conn.clone()).collect();
        if g.channels.is_empty() {
            consumers.remove(group);
        }
        rest
    }

    /// Removes a producer's connection from a group.
    pub fn unregister_producer(&self, group: &str, conn_id: u64) {
        let mut producers = self.producers.lock();
        if let Some(g) = producers.groups.get_mut(group) {
            g.remove(&conn_id);
            if g.is_empty() {
                producers.groups.remove(group);
            }
            producers.prune_index();
        }
    }

    /// Drops a closed connection everywhere (or, with `older_than`, every channel silent that
    /// long). Returns, per consumer group that changed, the connections left to notify.
    pub fn remove_channels(
        &self,
        closed: Option<u64>,
        older_than: Option<Duration>,
    ) -> Vec<(String, Vec<Arc<Connection>>)> {
        let now = Instant::now();
        let gone = |id: &u64, c: &ClientChannel| {
            closed == Some(*id)
                || c.conn.is_closed()
                || older_than.is_some_and(|d| now.duration_since(c.last_update) > d)
        };
        let mut changed = Vec::new();
        let mut consumers = self.consumers.lock();
        consumers.retain(|name, g| {
            let before = g.channels.len();
            g.channels.retain(|id, c| !gone(id, c));
            if g.channels.len() != before {
                tracing::info!(group = %name, left = g.channels.len(), "consumer left the group");
                changed.push((
                    name.clone(),
                    g.channels.values().map(|c| c.conn.clone()).collect(),
                ));
            }
            !g.channels.is_empty()
        });
        drop(consumers);
        let mut producers = self.producers.lock();
        producers.groups.retain(|_, g| {
            g.retain(|id, c| !gone(id, c));
            !g.is_empty()
        });
        producers.prune_index();
        changed
    }

    /// A consumer group's state.
    pub fn consumer_group(&self, group: &str) -> Option<ConsumerGroup> {
        self.consumers.lock().get(group).cloned()
    }

    /// The subscription of a group to a topic.
    pub fn subscription(&self, group: &str, topic: &str) -> Option<SubscriptionData> {
        self.consumers
            .lock()
            .get(group)
            .and_then(|g| g.subscriptions.get(topic).cloned())
    }

    /// Every subscription of a group.
    pub fn subscriptions(&self, group: &str) -> Vec<SubscriptionData> {
        self.consumers
            .lock()
            .get(group)
            .map(|g| g.subscriptions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Names of the online consumer groups.
    pub fn consumer_groups(&self) -> Vec<String> {
        let mut v: Vec<String> = self.consumers.lock().keys().cloned().collect();
        v.sort();
        v
    }

    /// Live producers of a group (for transaction checks).
    pub fn producers_of(&self, group: &str) -> Vec<ClientChannel> {
        self.producers
            .lock()
            .groups
            .get(group)
            .map(|g| g.values().cloned().collect())
            .unwrap_or_default()
    }
}

/// A group's locks: queue -> (owner client id, last renewal).
type LockTable = BTreeMap<MessageQueue, (String, Instant)>;

/// Queue locks held by orderly consumers: a queue of a group is consumed by one client at a
/// time. A lock not renewed within the expiry is free again.
#[derive(Debug)]
pub struct QueueLocks {
    expiry: Duration,
    groups: Mutex<HashMap<String, LockTable>>,
}

impl QueueLocks {
    /// Locks expire `expiry` after their last renewal.
    pub fn new(expiry: Duration) -> Self {
        Self {
            expiry,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// Locks (or renews) as many of `queues` for `client_id` as are free or already its own;
    /// returns those it now holds.
    pub fn lock(&self, group: &str, client_id: &str, queues: &[MessageQueue]) -> Vec<MessageQueue> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let table = groups.entry(group.to_string()).or_default();
        let mut held = Vec::new();
        for mq in queues {
            let free = match table.get(mq) {
                None => true,
                Some((owner, at)) => owner == client_id || now.duration_since(*at) > self.expiry,
            };
            if free {
                if let Some((owner, _)) = table.get(mq).filter(|(o, _)| o != client_id) {
                    tracing::info!(group, queue = ?mq, from = %owner, to = client_id, "expired queue lock taken over");
                }
                table.insert(mq.clone(), (client_id.to_string(), now));
                held.push(mq.clone());
            }
        }
        held
    }

    /// Releases the locks of `queues` that `client_id` holds.
    pub fn unlock(&self, group: &str, client_id: &str, queues: &[MessageQueue]) {
        let mut groups = self.groups.lock();
        if let Some(table) = groups.get_mut(group) {
            for mq in queues {
                if table.get(mq).is_some_and(|(owner, _)| owner == client_id) {
                    table.remove(mq);
                }
            }
        }
    }

    /// The client holding a queue's lock, if the lock is live.
    pub fn owner(&self, group: &str, mq: &MessageQueue) -> Option<String> {
        let now = Instant::now();
        self.groups
            .lock()
            .get(group)
            .and_then(|t| t.get(mq))
            .filter(|(_, at)| now.duration_since(*at) <= self.expiry)
            .map(|(owner, _)| owner.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mq(q: i32) -> MessageQueue {
        MessageQueue {
            topic: "T".into(),
            broker_name: "b".into(),
            queue_id: q,
        }
    }

    #[test]
    fn a_queue_is_locked_by_one_client_until_released_or_expired() {
        let locks = QueueLocks::new(Duration::from_secs(60));
        assert_eq!(locks.lock("g", "c1", &[mq(0), mq(1)]), vec![mq(0), mq(1)]);
        // c2 gets only the free queue; c1 renews its own.
        assert_eq!(locks.lock("g", "c2", &[mq(1), mq(2)]), vec![mq(2)]);
        assert_eq!(locks.lock("g", "c1", &[mq(1)]), vec![mq(1)]);
        // Another group is independent.
        assert_eq!(locks.lock("h", "c2", &[mq(1)]), vec![mq(1)]);
        // Only the owner can unlock.
        locks.unlock("g", "c2", &[mq(1)]);
        assert_eq!(locks.owner("g", &mq(1)).as_deref(), Some("c1"));
        locks.unlock("g", "c1", &[mq(1)]);
        assert_eq!(locks.owner("g", &mq(1)), None);
        assert_eq!(locks.lock("g", "c2", &[mq(1)]), vec![mq(1)]);

        let expired = QueueLocks::new(Duration::ZERO);
        expired.lock("g", "c1", &[mq(0)]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(expired.lock("g", "c2", &[mq(0)]), vec![mq(0)]);
    }
}
