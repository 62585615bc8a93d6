//! Transactional sends, as Java's `TransactionMQProducer`: a half message is sent, the local
//! transaction runs, and END_TRANSACTION commits or rolls the message back, or leaves it
//! "unknown" for the broker to check later with CHECK_TRANSACTION_STATE, which
//! [`TransactionListener::check_local_transaction`] answers.

use std::sync::Arc;

use tributary_protocol::RemotingCommand;
use tributary_protocol::codes::request;
use tributary_protocol::header::{CheckTransactionStateRequestHeader, EndTransactionRequestHeader};
use tributary_protocol::message::{OffsetMessageId, property};
use tributary_protocol::sysflag::message as sf;
use tributary_remoting::Connection;

use super::{Producer, SendResult, SendStatus};
use crate::error::{ClientError, Result};
use crate::message::{Message, MessageExt};

/// The state of a local transaction (Java's `LocalTransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalTransactionState {
    /// Make the message visible.
    Commit,
    /// Drop the message.
    Rollback,
    /// Not known yet: the broker asks again later.
    Unknown,
}

impl LocalTransactionState {
    /// The END_TRANSACTION `commitOrRollback` value.
    pub fn code(self) -> i32 {
        match self {
            Self::Commit => sf::TRANSACTION_COMMIT,
            Self::Rollback => sf::TRANSACTION_ROLLBACK,
            Self::Unknown => sf::TRANSACTION_NOT_TYPE,
        }
    }
}

/// The application's side of a transaction. Both methods run on a blocking thread.
pub trait TransactionListener: Send + Sync + 'static {
    /// Runs the local transaction of a half message the broker stored.
    fn execute_local_transaction(&self, message: &Message) -> LocalTransactionState;
    /// Tells the broker, which asks about a half message still unresolved, what became of
    /// its local transaction.
    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState;
}

/// The outcome of [`Producer::send_message_in_transaction`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSendResult {
    /// The half message's send.
    pub send: SendResult,
    /// What the local transaction said (Rollback when the half message was not stored).
    pub state: LocalTransactionState,
}

impl Producer {
    /// Makes this producer transactional: `listener` runs local transactions and answers the
    /// broker's checks for this producer's group.
    pub fn set_transaction_listener(&self, listener: Arc<dyn TransactionListener>) {
        self.inner
            .instance
            .set_transaction_listener(&self.inner.config.group, listener);
    }

    /// Sends `message` as a half message, runs the local transaction, and ends the
    /// transaction with its state (Java's `sendMessageInTransaction`).
    pub async fn send_message_in_transaction(
        &self,
        message: Message,
    ) -> Result<TransactionSendResult> {
        let Some(listener) = self
            .inner
            .instance
            .transaction_listener(&self.inner.config.group)
        else {
            return Err(ClientError::invalid(
                "no transaction listener: call set_transaction_listener first",
            ));
        };
        if message.property(property::DELAY_TIME_LEVEL).is_some() {
            return Err(ClientError::invalid(
                "a transactional message cannot be delayed",
            ));
        }
        let message = message
            .with_property(property::TRANSACTION_PREPARED, "true")
            .with_property(property::PRODUCER_GROUP, self.inner.config.group.clone());
        let outgoing = self.prepare(message.clone())?;
        let send = self.send_with_retries(outgoing).await?;
        let state = if send.status == SendStatus::SendOk {
            let l = listener.clone();
            let m = message.clone();
            tokio::task::spawn_blocking(move || l.execute_local_transaction(&m))
                .await
                .unwrap_or(LocalTransactionState::Unknown)
        } else {
            LocalTransactionState::Rollback
        };
        if let Err(e) = self.end_transaction(&send, state).await {
            // As Java: the broker will check the transaction.
            tracing::warn!(msg_id = %send.msg_id, error = %e, "end transaction");
        }
        Ok(TransactionSendResult { send, state })
    }

    async fn end_transaction(&self, send: &SendResult, state: LocalTransactionState) -> Result<()> {
        let id = OffsetMessageId::decode(&send.offset_msg_id)?;
        let header = EndTransactionRequestHeader {
            topic: Some(send.queue.topic.clone()),
            producer_group: self.inner.config.group.clone(),
            tran_state_table_offset: send.queue_offset,
            commit_log_offset: id.commit_log_offset,
            commit_or_rollback: state.code(),
            from_transaction_check: Some(false),
            msg_id: send.msg_id.clone(),
            transaction_id: Some(
                send.transaction_id
                    .clone()
                    .unwrap_or_else(|| send.msg_id.clone()),
            ),
        };
        let addr = self
            .inner
            .instance
            .master_addr_or_refresh(&send.queue.topic, &send.queue.broker_name)
            .await?;
        let request =
            RemotingCommand::new_request(request::END_TRANSACTION, 0).with_header(&header);
        self.inner.instance.invoke_oneway(&addr, request).await
    }
}

/// Answers CHECK_TRANSACTION_STATE from a broker on `conn` (Java's
/// `ClientRemotingProcessor.checkTransactionState`): asks the group's listener and sends
/// END_TRANSACTION (fromTransactionCheck = true) back on the same connection.
pub(crate) async fn answer_check(
    listener: Option<Arc<dyn TransactionListener>>,
    conn: Arc<Connection>,
    header: CheckTransactionStateRequestHeader,
    message: MessageExt,
) {
    let group = message
        .property(property::PRODUCER_GROUP)
        .unwrap_or_default()
        .to_string();
    let Some(listener) = listener else {
        tracing::warn!(
            group,
            "CHECK_TRANSACTION_STATE for a group without a transaction listener"
        );
        return;
    };
    let uniq = message.uniq_id().map(str::to_string);
    let m = message.clone();
    let state = tokio::task::spawn_blocking(move || listener.check_local_transaction(&m))
        .await
        .unwrap_or(LocalTransactionState::Unknown);
    let msg_id = uniq.clone().or(header.msg_id.clone()).unwrap_or_default();
    let end = EndTransactionRequestHeader {
        topic: Some(message.topic.clone()),
        producer_group: group.clone(),
        tran_state_table_offset: header.tran_state_table_offset,
        commit_log_offset: header.commit_log_offset,
        commit_or_rollback: state.code(),
        from_transaction_check: Some(true),
        msg_id: msg_id.clone(),
        transaction_id: header.transaction_id.clone().or(uniq),
    };
    let request = RemotingCommand::new_request(request::END_TRANSACTION, 0).with_header(&end);
    if let Err(e) = conn.try_oneway(request) {
        tracing::warn!(group, msg_id, error = %e, "answer CHECK_TRANSACTION_STATE");
    } else {
        tracing::debug!(group, msg_id, state = ?state, "answered CHECK_TRANSACTION_STATE");
    }
}
