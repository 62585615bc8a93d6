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
    /// Called once the answer to a check has gone out: `confirmed` says the broker
    /// acknowledged a commit or rollback (an `Unknown` answer is one-way, never confirmed).
    /// Nothing by default.
    fn check_answered(&self, message: &MessageExt, state: LocalTransactionState, confirmed: bool) {
        let _ = (message, state, confirmed);
    }
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
    /// transaction with its state (Java's `sendMessageInTransaction`). The end is one-way, as
    /// in Java: if it is lost, the broker checks the transaction later.
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
        let send = self.send_half_message(message.clone()).await?;
        let state = if send.status == SendStatus::SendOk {
            let l = listener.clone();
            let m = message.clone();
            tokio::task::spawn_blocking(move || l.execute_local_transaction(&m))
                .await
                .unwrap_or(LocalTransactionState::Unknown)
        } else {
            LocalTransactionState::Rollback
        };
        let ended = match self.end_request(&send, state).await {
            Ok((addr, request)) => self.inner.instance.invoke_oneway(&addr, request).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ended {
            // As Java: the broker will check the transaction.
            tracing::warn!(msg_id = %send.msg_id, error = %e, "end transaction");
        }
        Ok(TransactionSendResult { send, state })
    }

    /// Sends `message` as a half message: stored, invisible until the transaction is ended
    /// with [`Producer::end_transaction`] or settled by the broker's checks, which this
    /// producer's transaction listener (if any) answers. For callers that run the local
    /// transaction themselves.
    pub async fn send_half_message(&self, message: Message) -> Result<SendResult> {
        if message.property(property::DELAY_TIME_LEVEL).is_some() {
            return Err(ClientError::invalid(
                "a transactional message cannot be delayed",
            ));
        }
        let message = message
            .with_property(property::TRANSACTION_PREPARED, "true")
            .with_property(property::PRODUCER_GROUP, self.inner.config.group.clone());
        let outgoing = self.prepare(message)?;
        self.send_with_retries(outgoing).await
    }

    /// Ends the transaction of a half message sent with [`Producer::send_half_message`] and
    /// waits for the broker's answer, so a commit or rollback that returns `Ok` is done. (Java
    /// sends END_TRANSACTION one-way; brokers answer it all the same, except the Java broker
    /// for `Unknown`, which it does not answer: `Unknown` is therefore sent one-way.)
    pub async fn end_transaction(
        &self,
        send: &SendResult,
        state: LocalTransactionState,
    ) -> Result<()> {
        let (addr, request) = self.end_request(send, state).await?;
        if state == LocalTransactionState::Unknown {
            return self.inner.instance.invoke_oneway(&addr, request).await;
        }
        self.inner.instance.request(&addr, request).await.map(drop)
    }

    /// END_TRANSACTION for a half message, and the address of its broker.
    async fn end_request(
        &self,
        send: &SendResult,
        state: LocalTransactionState,
    ) -> Result<(String, RemotingCommand)> {
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
        Ok((addr, request))
    }
}

/// Answers CHECK_TRANSACTION_STATE from a broker on `conn` (Java's
/// `ClientRemotingProcessor.checkTransactionState`): asks the group's listener and sends
/// END_TRANSACTION (fromTransactionCheck = true) back on the same connection. A commit or
/// rollback waits up to `timeout` for the broker's answer (Java sends it one-way; brokers
/// answer it all the same), so the listener learns that it took effect.
pub(crate) async fn answer_check(
    listener: Option<Arc<dyn TransactionListener>>,
    conn: Arc<Connection>,
    header: CheckTransactionStateRequestHeader,
    message: MessageExt,
    timeout: std::time::Duration,
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
    let (l, m) = (listener.clone(), message.clone());
    let state = tokio::task::spawn_blocking(move || l.check_local_transaction(&m))
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
    let confirmed = if state == LocalTransactionState::Unknown {
        if let Err(e) = conn.try_oneway(request) {
            tracing::warn!(group, msg_id, error = %e, "answer CHECK_TRANSACTION_STATE");
        }
        false
    } else {
        match conn.invoke(request, timeout).await {
            Ok(r) if r.code == tributary_protocol::codes::response::SUCCESS => true,
            Ok(r) => {
                tracing::warn!(
                    group,
                    msg_id,
                    code = r.code,
                    remark = r.remark.as_deref().unwrap_or(""),
                    "the broker refused the answer to CHECK_TRANSACTION_STATE"
                );
                false
            }
            Err(e) => {
                tracing::warn!(group, msg_id, error = %e, "answer CHECK_TRANSACTION_STATE");
                false
            }
        }
    };
    tracing::debug!(group, msg_id, state = ?state, confirmed, "answered CHECK_TRANSACTION_STATE");
    tokio::task::spawn_blocking(move || listener.check_answered(&message, state, confirmed))
        .await
        .unwrap_or(());
}
