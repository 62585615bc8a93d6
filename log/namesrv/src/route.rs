//! [`RouteTable`]: which brokers are alive, which clusters and broker names they form, and
//! which topics have queues on them (RocketMQ's `RouteInfoManager`).
//!
//! The table does no IO and reads no clock: every method that depends on time takes `now`,
//! so expiry is tested without waiting. The [`crate::NameServer`] holds it behind one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Weak;
use std::time::{Duration, Instant};

use tributary_protocol::body::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigSerializeWrapper,
    TopicList, TopicRouteData,
};
use tributary_protocol::perm;
use tributary_remoting::Connection;

/// Broker id of a master.
pub(crate) const MASTER_ID: i64 = 0;

/// The connection a broker registered on: closing it removes the broker.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    /// [`Connection::id`].
    pub(crate) id: u64,
    /// The connection, to close it when the broker expires.
    pub(crate) conn: Weak<Connection>,
}

/// What the table knows of one registered broker address.
#[derive(Debug)]
struct LiveBroker {
    last_update: Instant,
    data_version: DataVersion,
    channel: Option<Channel>,
    ha_server_addr: String,
}

/// One REGISTER_BROKER request, decoded.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    pub(crate) cluster: &'a str,
    pub(crate) broker_addr: &'a str,
    pub(crate) broker_name: &'a str,
    pub(crate) broker_id: i64,
    pub(crate) ha_server_addr: &'a str,
    pub(crate) topics: &'a TopicConfigSerializeWrapper,
    /// `None` for old bodies that carry no filter server list (the table is left alone).
    pub(crate) filter_servers: Option<&'a [String]>,
    pub(crate) channel: Option<Channel>,
}

/// The outcome of a registration.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Registered {
    /// The address was not registered before (a new broker, or one back after expiry).
    pub(crate) first: bool,
    /// The broker's topics were (re)applied: a master with a new data version, or a first
    /// registration.
    pub(crate) topics_applied: bool,
    /// For a slave: the master's address, when the master is registered.
    pub(crate) master_addr: Option<String>,
    /// For a slave: the master's HA address, when the master is registered.
    pub(crate) master_ha_server_addr: Option<String>,
}

/// A broker address taken out of the table.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    pub(crate) broker_addr: String,
    /// The broker name the address served under, when it was found.
    pub(crate) broker_name: Option<String>,
    /// The name's last address went, so the name, its queues and maybe its cluster went too.
    pub(crate) name_removed: bool,
    /// Topics that lost their last queues with it.
    pub(crate) topics_removed: usize,
}

/// A broker address removed for not registering in time.
#[derive(Debug)]
pub(crate) struct Expired {
    pub(crate) removed: Removed,
    /// Time since its last registration.
    pub(crate) idle: Duration,
    /// Its connection, for the caller to close.
    pub(crate) channel: Option<Channel>,
}

/// Sizes of the table, for gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) brokers_live: usize,
    pub(crate) broker_names: usize,
    pub(crate) clusters: usize,
    pub(crate) topics: usize,
}

/// The routing state of a NameServer. Maps are ordered, so that answers list brokers and
/// queues by broker name, the same way every time.
#[derive(Debug, Default)]
pub(crate) struct RouteTable {
    /// Topic → broker name → queues.
    topics: BTreeMap<String, BTreeMap<String, QueueData>>,
    /// Broker name → cluster, name and addresses by broker id.
    brokers: BTreeMap<String, BrokerData>,
    /// Cluster → broker names.
    clusters: BTreeMap<String, BTreeSet<String>>,
    /// Broker address → liveness.
    live: HashMap<String, LiveBroker>,
    /// Broker address → filter server addresses.
    filter_servers: HashMap<String, Vec<String>>,
    /// Drop topics a broker stops listing (`deleteTopicWithBrokerRegistration`).
    delete_unlisted_topics: bool,
}

impl RouteTable {
    pub(crate) fn new(delete_unlisted_topics: bool) -> Self {
        Self {
            delete_unlisted_topics,
            ..Self::default()
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        Counts {
            brokers_live: self.live.len(),
            broker_names: self.brokers.len(),
            clusters: self.clusters.len(),
            topics: self.topics.len(),
        }
    }

    /// Registers a broker address (REGISTER_BROKER), or refreshes it: the address joins its
    /// broker name and cluster, its liveness restarts at `now`, and a master's topics are
    /// applied when its data version changed or it is new.
    pub(crate) fn register(&mut self, reg: Registration<'_>, now: Instant) -> Registered {
        self.clusters
            .entry(reg.cluster.to_owned())
            .or_default()
            .insert(reg.broker_name.to_owned());
        let mut name_is_new = false;
        let broker = self
            .brokers
            .entry(reg.broker_name.to_owned())
            .or_insert_with(|| {
                name_is_new = true;
                BrokerData {
                    cluster: reg.cluster.to_owned(),
                    broker_name: reg.broker_name.to_owned(),
                    broker_addrs: BTreeMap::new(),
                }
            });
        // One address has one id: a slave promoted to master comes back under id 0.
        broker
            .broker_addrs
            .retain(|&id, addr| id == reg.broker_id || addr != reg.broker_addr);
        let previous_addr = broker
            .broker_addrs
            .insert(reg.broker_id, reg.broker_addr.to_owned());
        let register_first = name_is_new || previous_addr.is_none();

        let version_changed = self
            .live
            .get(reg.broker_addr)
            .is_none_or(|live| live.data_version != reg.topics.data_version);
        let topics_applied = reg.broker_id == MASTER_ID && (version_changed || register_first);
        if topics_applied {
            self.apply_topics(reg.broker_name, reg.topics);
        }

        let previous = self.live.insert(
            reg.broker_addr.to_owned(),
            LiveBroker {
                last_update: now,
                data_version: reg.topics.data_version,
                channel: reg.channel,
                ha_server_addr: reg.ha_server_addr.to_owned(),
            },
        );
        match reg.filter_servers {
            Some([]) => {
                self.filter_servers.remove(reg.broker_addr);
            }
            Some(list) => {
                self.filter_servers
                    .insert(reg.broker_addr.to_owned(), list.to_vec());
            }
            None => {}
        }

        let mut registered = Registered {
            first: previous.is_none(),
            topics_applied,
            ..Registered::default()
        };
        if reg.broker_id != MASTER_ID {
            let master = self
                .brokers
                .get(reg.broker_name)
                .and_then(|b| b.broker_addrs.get(&MASTER_ID));
            if let Some((addr, live)) = master.and_then(|a| Some((a, self.live.get(a)?))) {
                registered.master_addr = Some(addr.clone());
                registered.master_ha_server_addr = Some(live.ha_server_addr.clone());
            }
        }
        registered
    }

    /// Writes a master's topic configs as queue data of its broker name.
    fn apply_topics(&mut self, broker_name: &str, wrapper: &TopicConfigSerializeWrapper) {
        let listed: BTreeMap<&str, &TopicConfig> = wrapper
            .topic_config_table
            .iter()
            .map(|(key, config)| {
                let name = if config.topic_name.is_empty() {
                    key.as_str()
                } else {
                    config.topic_name.as_str()
                };
                (name, config)
            })
            .collect();
        if self.delete_unlisted_topics {
            self.topics.retain(|topic, queues| {
                if !listed.contains_key(topic.as_str()) && queues.remove(broker_name).is_some() {
                    tracing::info!(topic, broker_name, "topic no longer listed by its broker");
                }
                !queues.is_empty()
            });
        }
        for (topic, config) in listed {
            let queues = QueueData {
                broker_name: broker_name.to_owned(),
                read_queue_nums: config.read_queue_nums,
                write_queue_nums: config.write_queue_nums,
                perm: config.perm,
                topic_sys_flag: config.topic_sys_flag,
            };
            let per_broker = self.topics.entry(topic.to_owned()).or_default();
            match per_broker.insert(broker_name.to_owned(), queues.clone()) {
                None => tracing::debug!(topic, broker_name, ?queues, "topic registered"),
                Some(old) if old != queues => {
                    tracing::debug!(topic, broker_name, ?old, new = ?queues, "topic changed")
                }
                Some(_) => {}
            }
        }
    }

    /// UNREGISTER_BROKER: removes `broker_addr` and the id `broker_id` of `broker_name`; when
    /// that was the name's last address, the name and its queues go too.
    pub(crate) fn unregister(
        &mut self,
        broker_addr: &str,
        broker_name: &str,
        broker_id: i64,
    ) -> Removed {
        self.live.remove(broker_addr);
        self.filter_servers.remove(broker_addr);
        let mut removed = Removed {
            broker_addr: broker_addr.to_owned(),
            ..Removed::default()
        };
        if let Some(broker) = self.brokers.get_mut(broker_name) {
            broker.broker_addrs.remove(&broker_id);
            removed.broker_name = Some(broker_name.to_owned());
            if broker.broker_addrs.is_empty() {
                removed.name_removed = true;
                removed.topics_removed = self.remove_broker_name(broker_name);
            }
        }
        removed
    }

    /// Removes an address wherever it is registered (its connection closed or it expired).
    fn remove_addr(&mut self, broker_addr: &str) -> Removed {
        self.live.remove(broker_addr);
        self.filter_servers.remove(broker_addr);
        let mut removed = Removed {
            broker_addr: broker_addr.to_owned(),
            ..Removed::default()
        };
        let found = self
            .brokers
            .iter_mut()
            .find(|(_, b)| b.broker_addrs.values().any(|a| a == broker_addr));
        if let Some((name, broker)) = found {
            broker.broker_addrs.retain(|_, a| a != broker_addr);
            removed.broker_name = Some(name.clone());
            if broker.broker_addrs.is_empty() {
                let name = name.clone();
                removed.name_removed = true;
                removed.topics_removed = self.remove_broker_name(&name);
            }
        }
        removed
    }

    /// Drops a broker name from the broker and cluster tables and its queues from every topic;
    /// returns how many topics lost their last queues.
    fn remove_broker_name(&mut self, broker_name: &str) -> usize {
        self.brokers.remove(broker_name);
        self.clusters.retain(|_, names| {
            names.remove(broker_name);
            !names.is_empty()
        });
        let before = self.topics.len();
        self.topics.retain(|_, queues| {
            queues.remove(broker_name);
            !queues.is_empty()
        });
        before - self.topics.len()
    }

    /// Removes every address whose last registration is more than `expiry` before `now`.
    pub(crate) fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<Expired> {
        let stale: Vec<(String, Duration, Option<Channel>)> = self
            .live
            .iter()
            .filter_map(|(addr, live)| {
                let idle = now.saturating_duration_since(live.last_update);
                (idle > expiry).then(|| (addr.clone(), idle, live.channel.clone()))
            })
            .collect();
        stale
            .into_iter()
            .map(|(addr, idle, channel)| Expired {
                removed: self.remove_addr(&addr),
                idle,
                channel,
            })
            .collect()
    }

    /// Removes every address registered over the connection `conn_id`, which closed.
    pub(crate) fn connection_closed(&mut self, conn_id: u64) -> Vec<Removed> {
        let addrs: Vec<String> = self
            .live
            .iter()
            .filter(|(_, live)| live.channel.as_ref().is_some_and(|c| c.id == conn_id))
            .map(|(addr, _)| addr.clone())
            .collect();
        addrs.iter().map(|addr| self.remove_addr(addr)).collect()
    }

    /// The route of `topic`, `None` when no live broker serves it.
    pub(crate) fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let queues = self.topics.get(topic)?;
        let broker_datas: Vec<BrokerData> = queues
            .keys()
            .filter_map(|name| self.brokers.get(name).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        let filter_server_table = broker_datas
            .iter()
            .flat_map(|b| b.broker_addrs.values())
            .filter_map(|addr| Some((addr.clone(), self.filter_servers.get(addr)?.clone())))
            .collect();
        Some(TopicRouteData {
            order_topic_conf: None,
            queue_datas: queues.values().cloned().collect(),
            broker_datas,
            filter_server_table,
        })
    }

    pub(crate) fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self
                .clusters
                .iter()
                .map(|(cluster, names)| (cluster.clone(), names.iter().cloned().collect()))
                .collect(),
        }
    }

    pub(crate) fn all_topics(&self) -> TopicList {
        TopicList {
            topic_list: self.topics.keys().cloned().collect(),
            broker_addr: None,
        }
    }

    /// Topics with queues on any broker of `cluster` (empty for an unknown cluster).
    pub(crate) fn topics_of_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        let topic_list = self
            .topics
            .iter()
            .filter(|(_, queues)| {
                names.is_some_and(|names| queues.keys().any(|n| names.contains(n)))
            })
            .map(|(topic, _)| topic.clone())
            .collect();
        TopicList {
            topic_list,
            broker_addr: None,
        }
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and broker names (every broker has a topic of
    /// each), and one broker address to ask for more.
    pub(crate) fn system_topics(&self) -> TopicList {
        let topic_list = self
            .clusters
            .iter()
            .flat_map(|(cluster, names)| std::iter::once(cluster).chain(names))
            .cloned()
            .collect();
        let broker_addr = self
            .brokers
            .values()
            .find_map(|b| b.broker_addrs.values().next().cloned());
        TopicList {
            topic_list,
            broker_addr,
        }
    }

    /// DELETE_TOPIC_IN_NAMESRV: the whole topic, or only its queues on the brokers of
    /// `cluster`. Returns whether anything was removed.
    pub(crate) fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) -> bool {
        let Some(cluster) = cluster else {
            return self.topics.remove(topic).is_some();
        };
        let (Some(names), Some(queues)) = (self.clusters.get(cluster), self.topics.get_mut(topic))
        else {
            return false;
        };
        let before = queues.len();
        queues.retain(|name, _| !names.contains(name));
        let removed = queues.len() != before;
        if queues.is_empty() {
            self.topics.remove(topic);
        }
        removed
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`wipe`) or ADD_WRITE_PERM_OF_BROKER: clears the write bit
    /// of every queue of `broker_name`, or sets read and write. Returns the topics touched.
    pub(crate) fn set_write_perm(&mut self, broker_name: &str, wipe: bool) -> usize {
        let mut touched = 0;
        for queues in self.topics.values_mut() {
            if let Some(q) = queues.get_mut(broker_name) {
                q.perm = if wipe {
                    q.perm & !perm::WRITE
                } else {
                    perm::READ | perm::WRITE
                };
                touched += 1;
            }
        }
        touched
    }

    /// QUERY_DATA_VERSION: whether `version` differs from the one `broker_addr` registered
    /// (an unknown address counts as changed), and the registered one. An unchanged version
    /// counts as a heartbeat.
    pub(crate) fn query_data_version(
        &mut self,
        broker_addr: &str,
        version: &DataVersion,
        now: Instant,
    ) -> (bool, Option<DataVersion>) {
        match self.live.get_mut(broker_addr) {
            Some(live) => {
                let changed = live.data_version != *version;
                if !changed {
                    live.last_update = now;
                }
                (changed, Some(live.data_version))
            }
            None => (true, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapper(counter: i64, topics: &[(&str, i32, i32)]) -> TopicConfigSerializeWrapper {
        TopicConfigSerializeWrapper {
            topic_config_table: topics
                .iter()
                .map(|&(name, queues, perm)| {
                    let config = TopicConfig {
                        topic_name: name.to_owned(),
                        read_queue_nums: queues,
                        write_queue_nums: queues,
                        perm,
                        ..TopicConfig::default()
                    };
                    (name.to_owned(), config)
                })
                .collect(),
            data_version: DataVersion {
                counter,
                timestamp: 1,
                state_version: 0,
            },
        }
    }

    fn register(
        table: &mut RouteTable,
        (cluster, name, id, addr): (&str, &str, i64, &str),
        topics: &TopicConfigSerializeWrapper,
        channel: Option<u64>,
        now: Instant,
    ) -> Registered {
        table.register(
            Registration {
                cluster,
                broker_addr: addr,
                broker_name: name,
                broker_id: id,
                ha_server_addr: &format!("{addr}-ha"),
                topics,
                filter_servers: Some(&[]),
                channel: channel.map(|id| Channel {
                    id,
                    conn: Weak::new(),
                }),
            },
            now,
        )
    }

    fn queue_nums(table: &RouteTable, topic: &str) -> Vec<(String, i32)> {
        table
            .route(topic)
            .map(|r| {
                r.queue_datas
                    .into_iter()
                    .map(|q| (q.broker_name, q.write_queue_nums))
                    .collect()
            })
            .unwrap_or_default()
    }

    const A: (&str, &str, i64, &str) = ("C1", "broker-a", 0, "10.0.0.1:10911");
    const A_SLAVE: (&str, &str, i64, &str) = ("C1", "broker-a", 1, "10.0.0.2:10911");
    const B: (&str, &str, i64, &str) = ("C1", "broker-b", 0, "10.0.0.3:10911");

    #[test]
    fn topics_are_applied_only_for_a_new_data_version() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        let first = register(&mut table, A, &wrapper(1, &[("T", 4, 6)]), None, now);
        assert!(first.first && first.topics_applied);
        // Same version, different content: a heartbeat, the topics stay as they were.
        let same = register(&mut table, A, &wrapper(1, &[("T", 8, 6)]), None, now);
        assert!(!same.first && !same.topics_applied);
        assert_eq!(queue_nums(&table, "T"), [("broker-a".to_owned(), 4)]);
        let newer = register(
            &mut table,
            A,
            &wrapper(2, &[("T", 8, 6), ("U", 1, 6)]),
            None,
            now,
        );
        assert!(newer.topics_applied);
        assert_eq!(queue_nums(&table, "T"), [("broker-a".to_owned(), 8)]);
        // Without deleteTopicWithBrokerRegistration, an unlisted topic stays.
        register(&mut table, A, &wrapper(3, &[("U", 1, 6)]), None, now);
        assert_eq!(queue_nums(&table, "T").len(), 1);

        let mut deleting = RouteTable::new(true);
        register(
            &mut deleting,
            A,
            &wrapper(1, &[("T", 4, 6), ("U", 1, 6)]),
            None,
            now,
        );
        register(&mut deleting, B, &wrapper(1, &[("T", 2, 6)]), None, now);
        register(&mut deleting, A, &wrapper(2, &[("U", 1, 6)]), None, now);
        assert_eq!(queue_nums(&deleting, "T"), [("broker-b".to_owned(), 2)]);
    }

    #[test]
    fn a_slave_learns_its_master_and_adds_no_topics() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        let alone = register(&mut table, A_SLAVE, &wrapper(1, &[("S", 4, 6)]), None, now);
        assert_eq!((alone.master_addr, alone.topics_applied), (None, false));
        assert!(table.route("S").is_none());
        register(&mut table, A, &wrapper(1, &[("T", 4, 6)]), None, now);
        let slave = register(&mut table, A_SLAVE, &wrapper(1, &[]), None, now);
        assert_eq!(slave.master_addr.as_deref(), Some(A.3));
        assert_eq!(slave.master_ha_server_addr, Some(format!("{}-ha", A.3)));
        let route = table.route("T").expect("route");
        assert_eq!(
            route.broker_datas[0].broker_addrs,
            BTreeMap::from([(0, A.3.to_owned()), (1, A_SLAVE.3.to_owned())])
        );
    }

    #[test]
    fn a_promoted_slave_keeps_one_id_per_address() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        register(&mut table, A_SLAVE, &wrapper(1, &[]), None, now);
        register(
            &mut table,
            ("C1", "broker-a", 0, A_SLAVE.3),
            &wrapper(1, &[("T", 4, 6)]),
            None,
            now,
        );
        let info = table.cluster_info();
        assert_eq!(
            info.broker_addr_table["broker-a"].broker_addrs,
            BTreeMap::from([(0, A_SLAVE.3.to_owned())])
        );
    }

    #[test]
    fn expiry_removes_stale_addresses_with_their_queues() {
        let start = Instant::now();
        let expiry = Duration::from_secs(120);
        let mut table = RouteTable::new(false);
        register(
            &mut table,
            A,
            &wrapper(1, &[("T", 4, 6), ("OnlyA", 1, 6)]),
            Some(7),
            start,
        );
        register(&mut table, B, &wrapper(1, &[("T", 2, 6)]), None, start);
        register(&mut table, A_SLAVE, &wrapper(1, &[]), None, start);
        let later = start + Duration::from_secs(100);
        register(&mut table, B, &wrapper(1, &[("T", 2, 6)]), None, later);
        register(&mut table, A_SLAVE, &wrapper(1, &[]), None, later);
        assert!(
            table.expire(start + expiry, expiry).is_empty(),
            "not older than the expiry"
        );

        let expired = table.expire(start + expiry + Duration::from_millis(1), expiry);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].removed.broker_addr, A.3);
        assert_eq!(expired[0].channel.as_ref().map(|c| c.id), Some(7));
        // The slave keeps broker-a's name and queues; only the master address went.
        assert!(!expired[0].removed.name_removed);
        assert_eq!(queue_nums(&table, "T").len(), 2);

        let expired = table.expire(later + expiry + Duration::from_secs(1), expiry);
        assert_eq!(expired.len(), 2);
        assert!(table.route("T").is_none() && table.route("OnlyA").is_none());
        let counts = table.counts();
        assert_eq!(
            (
                counts.brokers_live,
                counts.broker_names,
                counts.clusters,
                counts.topics
            ),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn a_heartbeat_by_data_version_keeps_a_broker_alive() {
        let start = Instant::now();
        let expiry = Duration::from_secs(120);
        let mut table = RouteTable::new(false);
        let topics = wrapper(5, &[("T", 4, 6)]);
        register(&mut table, A, &topics, None, start);
        let at = start + Duration::from_secs(100);
        let (changed, held) = table.query_data_version(A.3, &topics.data_version, at);
        assert_eq!((changed, held), (false, Some(topics.data_version)));
        assert!(
            table
                .expire(start + Duration::from_secs(150), expiry)
                .is_empty()
        );
        let newer = wrapper(6, &[]).data_version;
        let (changed, _) = table.query_data_version(A.3, &newer, at);
        assert!(changed);
        assert_eq!(
            table.query_data_version("unknown:1", &newer, at),
            (true, None)
        );
    }

    #[test]
    fn a_closed_connection_removes_what_registered_over_it() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        register(&mut table, A, &wrapper(1, &[("T", 4, 6)]), Some(1), now);
        register(&mut table, B, &wrapper(1, &[("T", 4, 6)]), Some(2), now);
        assert!(table.connection_closed(99).is_empty());
        let removed = table.connection_closed(1);
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].broker_name.as_deref(), Some("broker-a"));
        assert_eq!(queue_nums(&table, "T"), [("broker-b".to_owned(), 4)]);
        // A broker that re-registered on a new connection survives the old one closing.
        register(&mut table, B, &wrapper(1, &[("T", 4, 6)]), Some(3), now);
        assert!(table.connection_closed(2).is_empty());
    }

    #[test]
    fn unregister_drops_the_name_with_its_last_address() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        register(&mut table, A, &wrapper(1, &[("T", 4, 6)]), None, now);
        register(&mut table, A_SLAVE, &wrapper(1, &[]), None, now);
        let removed = table.unregister(A_SLAVE.3, "broker-a", 1);
        assert!(!removed.name_removed);
        assert!(table.route("T").is_some());
        let removed = table.unregister(A.3, "broker-a", 0);
        assert_eq!((removed.name_removed, removed.topics_removed), (true, 1));
        assert!(table.cluster_info().cluster_addr_table.is_empty());
    }

    #[test]
    fn topic_lists_deletes_and_write_perms() {
        let now = Instant::now();
        let mut table = RouteTable::new(false);
        register(
            &mut table,
            A,
            &wrapper(1, &[("T", 4, 6), ("U", 1, 6)]),
            None,
            now,
        );
        register(
            &mut table,
            ("C2", "broker-c", 0, "10.0.0.9:10911"),
            &wrapper(1, &[("T", 4, 6)]),
            None,
            now,
        );
        let names = |list: TopicList| list.topic_list.into_iter().collect::<Vec<_>>();
        assert_eq!(names(table.all_topics()), ["T", "U"]);
        assert_eq!(names(table.topics_of_cluster("C2")), ["T"]);
        assert!(table.topics_of_cluster("nope").topic_list.is_empty());
        let system = table.system_topics();
        assert_eq!(names(system.clone()), ["C1", "C2", "broker-a", "broker-c"]);
        assert_eq!(system.broker_addr.as_deref(), Some(A.3));

        assert_eq!(table.set_write_perm("broker-a", true), 2);
        assert_eq!(
            table.route("U").map(|r| r.queue_datas[0].perm),
            Some(perm::READ)
        );
        assert_eq!(table.set_write_perm("broker-a", false), 2);
        assert_eq!(table.route("U").map(|r| r.queue_datas[0].perm), Some(6));

        assert!(table.delete_topic("T", Some("C1")));
        assert_eq!(queue_nums(&table, "T"), [("broker-c".to_owned(), 4)]);
        assert!(!table.delete_topic("T", Some("unknown")));
        assert!(table.delete_topic("T", None));
        assert!(table.route("T").is_none());
        assert!(!table.delete_topic("T", None));
    }
}
