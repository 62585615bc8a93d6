//! Client-session headers: UNREGISTER_CLIENT (35), GET_CONSUMER_LIST_BY_GROUP (38) and
//! NOTIFY_CONSUMER_IDS_CHANGED (40, broker to client).

use super::command_header;

command_header! {
    /// Request header of UNREGISTER_CLIENT.
    pub struct UnregisterClientRequestHeader {
        /// Client id (`ip@instance`).
        required client_id: String = "clientID",
        /// Producer group being left, if any.
        optional producer_group: String = "producerGroup",
        /// Consumer group being left, if any.
        optional consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// Request header of GET_CONSUMER_LIST_BY_GROUP. The answer carries a
    /// [`crate::body::ConsumerListByGroup`] body.
    pub struct GetConsumerListByGroupRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
    }
}

command_header! {
    /// Request header of NOTIFY_CONSUMER_IDS_CHANGED, sent one-way by the broker to each
    /// consumer of a group whose membership changed, so that it rebalances now.
    pub struct NotifyConsumerIdsChangedRequestHeader {
        /// Consumer group.
        required consumer_group: String = "consumerGroup",
    }
}
