//! Topic routes as the client uses them: the queues to send to and the queues to read.

use std::collections::BTreeMap;

use tributary_protocol::body::{BrokerData, TopicRouteData};
use tributary_protocol::perm;

use crate::message::MessageQueue;

/// Broker id of a master.
pub const MASTER_ID: i64 = 0;

/// A topic's route and the queue lists derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    /// Topic.
    pub topic: String,
    /// The route as the NameServer gave it.
    pub data: TopicRouteData,
    /// Writable queues whose broker has a master, in Java's order (by broker name, then
    /// queue id); what producers choose from.
    pub publish_queues: Vec<MessageQueue>,
    /// Readable queues, sorted; what consumers divide among themselves.
    pub subscribe_queues: Vec<MessageQueue>,
    /// Whether the route came from an ordered-topic configuration.
    pub ordered: bool,
    /// Whether the route was borrowed from the auto-create template (the topic does not exist
    /// yet; brokers create it on the first send).
    pub from_template: bool,
}

impl TopicRoute {
    /// Derives the queue lists of `data` for `topic`.
    pub fn new(topic: &str, data: TopicRouteData) -> Self {
        let (publish_queues, ordered) = publish_queues(topic, &data);
        let subscribe_queues = subscribe_queues(topic, &data);
        Self {
            topic: topic.to_owned(),
            data,
            publish_queues,
            subscribe_queues,
            ordered,
            from_template: false,
        }
    }

    /// A route for a topic that does not exist yet, from the template topic's route: every
    /// broker that carries the template offers `min(queue_nums, template queues)` queues,
    /// as Java's producer does.
    pub fn from_template(topic: &str, mut template: TopicRouteData, queue_nums: i32) -> Self {
        for queue_data in &mut template.queue_datas {
            let nums = queue_nums.min(queue_data.read_queue_nums);
            queue_data.read_queue_nums = nums;
            queue_data.write_queue_nums = nums;
        }
        let mut route = Self::new(topic, template);
        route.from_template = true;
        route
    }

    /// Whether a producer can send: some queue is writable.
    pub fn is_publishable(&self) -> bool {
        !self.publish_queues.is_empty()
    }

    /// The broker data of a broker name.
    pub fn broker(&self, broker_name: &str) -> Option<&BrokerData> {
        self.data
            .broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }
}

/// Java's `topicRouteData2TopicPublishInfo`.
fn publish_queues(topic: &str, data: &TopicRouteData) -> (Vec<MessageQueue>, bool) {
    let mq = |broker: &str, id: i32| MessageQueue {
        topic: topic.to_owned(),
        broker_name: broker.to_owned(),
        queue_id: id,
    };
    if let Some(conf) = data.order_topic_conf.as_deref().filter(|c| !c.is_empty()) {
        let queues = conf
            .split(';')
            .filter_map(|item| item.split_once(':'))
            .filter_map(|(broker, nums)| Some((broker.trim(), nums.trim().parse::<i32>().ok()?)))
            .flat_map(|(broker, nums)| (0..nums).map(move |i| mq(broker, i)))
            .collect();
        return (queues, true);
    }
    let mut queue_datas: Vec<_> = data.queue_datas.iter().collect();
    queue_datas.sort_by(|a, b| a.broker_name.cmp(&b.broker_name));
    let queues = queue_datas
        .into_iter()
        .filter(|qd| perm::is_writeable(qd.perm))
        .filter(|qd| {
            data.broker_datas
                .iter()
                .any(|b| b.broker_name == qd.broker_name && b.broker_addrs.contains_key(&MASTER_ID))
        })
        .flat_map(|qd| (0..qd.write_queue_nums).map(|i| mq(&qd.broker_name, i)))
        .collect();
    (queues, false)
}

/// Java's `topicRouteData2TopicSubscribeInfo`, sorted.
fn subscribe_queues(topic: &str, data: &TopicRouteData) -> Vec<MessageQueue> {
    let mut queues: Vec<MessageQueue> = data
        .queue_datas
        .iter()
        .filter(|qd| perm::is_readable(qd.perm))
        .flat_map(|qd| {
            (0..qd.read_queue_nums).map(|i| MessageQueue {
                topic: topic.to_owned(),
                broker_name: qd.broker_name.clone(),
                queue_id: i,
            })
        })
        .collect();
    queues.sort();
    queues.dedup();
    queues
}

/// Broker addresses by name and id, merged from every route seen.
pub type BrokerAddrTable = BTreeMap<String, BTreeMap<i64, String>>;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tributary_protocol::body::QueueData;

    pub(crate) fn route_data(brokers: &[(&str, &str, i32, i32, i32)]) -> TopicRouteData {
        TopicRouteData {
            order_topic_conf: None,
            queue_datas: brokers
                .iter()
                .map(|(name, _, read, write, perm)| QueueData {
                    broker_name: (*name).into(),
                    read_queue_nums: *read,
                    write_queue_nums: *write,
                    perm: *perm,
                    topic_sys_flag: 0,
                })
                .collect(),
            broker_datas: brokers
                .iter()
                .map(|(name, addr, ..)| BrokerData {
                    cluster: "C".into(),
                    broker_name: (*name).into(),
                    broker_addrs: BTreeMap::from([(0, (*addr).to_owned())]),
                })
                .collect(),
            filter_server_table: BTreeMap::new(),
        }
    }

    fn names(queues: &[MessageQueue]) -> Vec<String> {
        queues
            .iter()
            .map(|q| format!("{}:{}", q.broker_name, q.queue_id))
            .collect()
    }

    #[test]
    fn publish_and_subscribe_queues_follow_permissions() {
        let data = route_data(&[
            ("b", "h:2", 2, 1, perm::READ | perm::WRITE),
            ("a", "h:1", 1, 2, perm::READ | perm::WRITE),
            ("c", "h:3", 1, 1, perm::READ),
        ]);
        let route = TopicRoute::new("T", data);
        assert_eq!(names(&route.publish_queues), ["a:0", "a:1", "b:0"]);
        assert_eq!(names(&route.subscribe_queues), ["a:0", "b:0", "b:1", "c:0"]);
        assert!(!route.ordered && route.is_publishable());
    }

    #[test]
    fn brokers_without_master_take_no_sends() {
        let mut data = route_data(&[("a", "h:1", 2, 2, 6)]);
        data.broker_datas[0].broker_addrs = BTreeMap::from([(1, "h:9".to_owned())]);
        let route = TopicRoute::new("T", data);
        assert!(route.publish_queues.is_empty());
        assert_eq!(route.subscribe_queues.len(), 2);
    }

    #[test]
    fn ordered_topic_conf_wins() {
        let mut data = route_data(&[("a", "h:1", 8, 8, 6)]);
        data.order_topic_conf = Some("a:2;b:1".into());
        let route = TopicRoute::new("T", data);
        assert!(route.ordered);
        assert_eq!(names(&route.publish_queues), ["a:0", "a:1", "b:0"]);
    }

    #[test]
    fn template_routes_cap_the_queue_count() {
        let data = route_data(&[("a", "h:1", 8, 8, 6), ("b", "h:2", 2, 2, 6)]);
        let route = TopicRoute::from_template("New", data, 4);
        assert!(route.from_template);
        assert_eq!(route.publish_queues.len(), 4 + 2);
        assert!(route.publish_queues.iter().all(|q| q.topic == "New"));
    }
}
