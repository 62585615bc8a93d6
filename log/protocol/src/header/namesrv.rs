//! NameServer headers: REGISTER_BROKER (103), UNREGISTER_BROKER (104), GET_ROUTEINFO_BY_TOPIC
//! (105), the KV config requests (100–102, 219), WIPE/ADD_WRITE_PERM_OF_BROKER (205, 327),
//! DELETE_TOPIC_IN_NAMESRV (216), GET_TOPICS_BY_CLUSTER (224) and QUERY_DATA_VERSION (322).

use super::command_header;

command_header! {
    /// Request header of REGISTER_BROKER. The body is a [`crate::body::RegisterBrokerBody`].
    pub struct RegisterBrokerRequestHeader {
        /// Broker name (shared by master and slaves).
        required broker_name: String = "brokerName",
        /// `ip:port` clients connect to.
        required broker_addr: String = "brokerAddr",
        /// Cluster name.
        required cluster_name: String = "clusterName",
        /// `ip:port` of the HA service.
        required ha_server_addr: String = "haServerAddr",
        /// 0 for the master.
        required broker_id: i64 = "brokerId",
        /// 5.x: liveness timeout, ms.
        optional heartbeat_timeout_millis: i64 = "heartbeatTimeoutMillis",
        /// 5.x: acting master.
        optional enable_acting_master: bool = "enableActingMaster",
        /// Whether the body uses the deflated binary layout.
        optional compressed: bool = "compressed",
        /// CRC32 of the body (0 = not checked).
        optional body_crc32: i32 = "bodyCrc32",
    }
}

command_header! {
    /// Response header of REGISTER_BROKER.
    pub struct RegisterBrokerResponseHeader {
        /// HA address of the master, for a slave.
        optional ha_server_addr: String = "haServerAddr",
        /// Address of the master, for a slave.
        optional master_addr: String = "masterAddr",
    }
}

command_header! {
    /// Request header of UNREGISTER_BROKER.
    pub struct UnregisterBrokerRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
        /// Broker address.
        required broker_addr: String = "brokerAddr",
        /// Cluster name.
        required cluster_name: String = "clusterName",
        /// Broker id.
        required broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// Request header of GET_ROUTEINFO_BY_TOPIC. The answer body is a
    /// [`crate::body::TopicRouteData`], or code TOPIC_NOT_EXIST (17).
    pub struct GetRouteInfoRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Ask for standard JSON (quoted map keys) even from an old server.
        optional accept_standard_json_only: bool = "acceptStandardJsonOnly",
    }
}

command_header! {
    /// Request header of DELETE_TOPIC_IN_NAMESRV.
    pub struct DeleteTopicFromNamesrvRequestHeader {
        /// Topic.
        required topic: String = "topic",
        /// Restrict to one cluster.
        optional cluster_name: String = "clusterName",
    }
}

command_header! {
    /// Request header of GET_KV_CONFIG.
    pub struct GetKvConfigRequestHeader {
        /// Namespace.
        required namespace: String = "namespace",
        /// Key.
        required key: String = "key",
    }
}

command_header! {
    /// Response header of GET_KV_CONFIG; answer QUERY_NOT_FOUND (22) for an absent key.
    pub struct GetKvConfigResponseHeader {
        /// Value.
        optional value: String = "value",
    }
}

command_header! {
    /// Request header of PUT_KV_CONFIG.
    pub struct PutKvConfigRequestHeader {
        /// Namespace.
        required namespace: String = "namespace",
        /// Key.
        required key: String = "key",
        /// Value.
        required value: String = "value",
    }
}

command_header! {
    /// Request header of DELETE_KV_CONFIG.
    pub struct DeleteKvConfigRequestHeader {
        /// Namespace.
        required namespace: String = "namespace",
        /// Key.
        required key: String = "key",
    }
}

command_header! {
    /// Request header of QUERY_DATA_VERSION; the body is the broker's data version.
    pub struct QueryDataVersionRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
        /// Broker address.
        required broker_addr: String = "brokerAddr",
        /// Cluster name.
        required cluster_name: String = "clusterName",
        /// Broker id.
        required broker_id: i64 = "brokerId",
    }
}

command_header! {
    /// Response header of QUERY_DATA_VERSION.
    pub struct QueryDataVersionResponseHeader {
        /// Whether the broker's data version differs from the one the NameServer holds.
        required changed: bool = "changed",
    }
}

command_header! {
    /// Request header of GET_KVLIST_BY_NAMESPACE; the answer body is a
    /// [`crate::body::KvTable`], or code QUERY_NOT_FOUND (22) for an unknown namespace.
    pub struct GetKvListByNamespaceRequestHeader {
        /// Namespace.
        required namespace: String = "namespace",
    }
}

command_header! {
    /// Request header of GET_TOPICS_BY_CLUSTER; the answer body is a
    /// [`crate::body::TopicList`].
    pub struct GetTopicsByClusterRequestHeader {
        /// Cluster name.
        required cluster: String = "cluster",
    }
}

command_header! {
    /// Request header of WIPE_WRITE_PERM_OF_BROKER: make every queue of a broker read-only.
    pub struct WipeWritePermOfBrokerRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
    }
}

command_header! {
    /// Response header of WIPE_WRITE_PERM_OF_BROKER.
    pub struct WipeWritePermOfBrokerResponseHeader {
        /// Topics whose queue data on the broker changed.
        required wipe_topic_count: i32 = "wipeTopicCount",
    }
}

command_header! {
    /// Request header of ADD_WRITE_PERM_OF_BROKER: make every queue of a broker writable again.
    pub struct AddWritePermOfBrokerRequestHeader {
        /// Broker name.
        required broker_name: String = "brokerName",
    }
}

command_header! {
    /// Response header of ADD_WRITE_PERM_OF_BROKER.
    pub struct AddWritePermOfBrokerResponseHeader {
        /// Topics whose queue data on the broker changed.
        required add_topic_count: i32 = "addTopicCount",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::test_fields as fields;
    use crate::header::CommandHeader;

    #[test]
    fn namesrv_admin_headers_use_the_java_field_names() {
        let kv = GetKvListByNamespaceRequestHeader::from_ext_fields(&fields(&[(
            "namespace",
            "ORDER_TOPIC_CONFIG",
        )]));
        assert_eq!(
            kv.ok().map(|h| h.namespace).as_deref(),
            Some("ORDER_TOPIC_CONFIG")
        );
        let by_cluster =
            GetTopicsByClusterRequestHeader::from_ext_fields(&fields(&[("cluster", "C")]));
        assert_eq!(by_cluster.ok().map(|h| h.cluster).as_deref(), Some("C"));
        let wipe = WipeWritePermOfBrokerRequestHeader::from_ext_fields(&fields(&[(
            "brokerName",
            "broker-a",
        )]));
        assert_eq!(
            wipe.ok().map(|h| h.broker_name).as_deref(),
            Some("broker-a")
        );
        assert!(AddWritePermOfBrokerRequestHeader::from_ext_fields(&fields(&[])).is_err());
        assert_eq!(
            WipeWritePermOfBrokerResponseHeader {
                wipe_topic_count: 3
            }
            .to_ext_fields(),
            fields(&[("wipeTopicCount", "3")])
        );
        assert_eq!(
            AddWritePermOfBrokerResponseHeader { add_topic_count: 2 }.to_ext_fields(),
            fields(&[("addTopicCount", "2")])
        );
    }
}
