//! `tributary produce --transaction`: each message a transaction of its own, ended as the user
//! asked, and, for `--transaction unknown --check-answer`, the producer that answers the
//! broker's checks of those messages until each answer was confirmed.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tributary_client::producer::{LocalTransactionState, TransactionListener};
use tributary_client::{Message, MessageExt, Producer, SendResult};

use crate::cli::{CheckAnswerArg, TransactionArg};

/// What became of a transaction when its message was printed.
pub fn outcome(end: TransactionArg) -> &'static str {
    match end {
        TransactionArg::Commit => "committed",
        TransactionArg::Rollback => "rolled back",
        TransactionArg::Unknown => "pending",
    }
}

fn state(end: TransactionArg) -> LocalTransactionState {
    match end {
        TransactionArg::Commit => LocalTransactionState::Commit,
        TransactionArg::Rollback => LocalTransactionState::Rollback,
        TransactionArg::Unknown => LocalTransactionState::Unknown,
    }
}

/// Sends `message` as a half message and ends its transaction as `end` says: a commit or
/// rollback is confirmed by the broker before this returns; `unknown` is sent one-way and
/// leaves the transaction to the broker's checks.
pub async fn send(
    producer: &Producer,
    message: Message,
    end: TransactionArg,
) -> Result<SendResult> {
    let sent = producer
        .send_half_message(message)
        .await
        .context("send the half message")?;
    producer
        .end_transaction(&sent, state(end))
        .await
        .with_context(|| {
            format!(
                "end the transaction of message {} as {} (the broker checks it later)",
                sent.msg_id,
                outcome(end)
            )
        })?;
    Ok(sent)
}

/// The listener of `--check-answer`: answers the checks of this run's messages with the given
/// state and records which answers the broker confirmed. Checks of other messages of the
/// group (an earlier run's, say) are answered Unknown: this run knows nothing of them.
#[derive(Debug)]
pub struct CheckAnswers {
    answer: LocalTransactionState,
    /// Line of each message of this run, by message id.
    lines: Mutex<HashMap<String, u64>>,
    /// Message ids whose answer the broker confirmed, with their lines, in answer order.
    confirmed: Mutex<Vec<(u64, String)>>,
    changed: Notify,
}

/// The state `--check-answer` answers with.
fn answer_state(answer: CheckAnswerArg) -> LocalTransactionState {
    match answer {
        CheckAnswerArg::Commit => LocalTransactionState::Commit,
        CheckAnswerArg::Rollback => LocalTransactionState::Rollback,
    }
}

/// What the answers of `--check-answer` made of the transactions.
pub fn answered_outcome(answer: CheckAnswerArg) -> &'static str {
    verb(answer_state(answer))
}

impl CheckAnswers {
    pub fn new(answer: CheckAnswerArg) -> Self {
        Self {
            answer: answer_state(answer),
            lines: Mutex::default(),
            confirmed: Mutex::default(),
            changed: Notify::new(),
        }
    }

    /// Expects a check of `msg_id`, sent from `line`.
    pub fn expect(&self, msg_id: &str, line: u64) {
        self.lines.lock().insert(msg_id.to_owned(), line);
    }

    fn line_of(&self, message: &MessageExt) -> Option<u64> {
        let id = message.uniq_id()?;
        self.lines.lock().get(id).copied()
    }

    /// Waits until the broker confirmed an answer for every expected message, printing each
    /// on stderr as it comes; fails after `timeout` or on Ctrl-C, naming what is left.
    pub async fn wait(&self, timeout: Duration, group: &str) -> Result<usize> {
        let expected = self.lines.lock().len();
        let verb = verb(self.answer);
        let answer = match self.answer {
            LocalTransactionState::Commit => "commit",
            _ => "rollback",
        };
        eprintln!(
            "Waiting up to {} s for the broker to check {expected} pending transaction{} (answering {answer}).",
            timeout.as_secs(),
            if expected == 1 { "" } else { "s" }
        );
        let deadline = tokio::time::Instant::now() + timeout;
        let mut printed = 0;
        let signal = crate::consume_cmd::stop_signal();
        tokio::pin!(signal);
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let done: Vec<(u64, String)> = self.confirmed.lock()[printed..].to_vec();
            for (line, id) in &done {
                eprintln!("Line {line} (message {id}): {verb} at the broker's check.");
            }
            printed += done.len();
            if printed >= expected {
                return Ok(printed);
            }
            let stop = tokio::select! {
                () = &mut changed => None,
                () = tokio::time::sleep_until(deadline) => Some(format!("within {} s", timeout.as_secs())),
                () = &mut signal => Some("before the interruption".to_owned()),
            };
            if let Some(when) = stop {
                let answered: Vec<String> = self
                    .confirmed
                    .lock()
                    .iter()
                    .map(|(_, id)| id.clone())
                    .collect();
                let mut left: Vec<(u64, String)> = self
                    .lines
                    .lock()
                    .iter()
                    .filter(|(id, _)| !answered.contains(id))
                    .map(|(id, line)| (*line, id.clone()))
                    .collect();
                left.sort();
                let left: Vec<String> = left
                    .iter()
                    .map(|(line, id)| format!("line {line} ({id})"))
                    .collect();
                bail!(
                    "the broker did not check {} of {expected} transactions {when}: {}; they stay pending, checked again with producer group {group} and discarded after the broker's last check",
                    left.len(),
                    left.join(", ")
                );
            }
        }
    }
}

fn verb(state: LocalTransactionState) -> &'static str {
    match state {
        LocalTransactionState::Commit => "committed",
        LocalTransactionState::Rollback => "rolled back",
        LocalTransactionState::Unknown => "left unknown",
    }
}

impl TransactionListener for CheckAnswers {
    /// Not called: the command ends each transaction itself.
    fn execute_local_transaction(&self, _message: &Message) -> LocalTransactionState {
        LocalTransactionState::Unknown
    }

    fn check_local_transaction(&self, message: &MessageExt) -> LocalTransactionState {
        if self.line_of(message).is_some() {
            self.answer
        } else {
            eprintln!(
                "A check of message {}, which this run did not send: answered unknown.",
                message.uniq_id().unwrap_or("(no id)")
            );
            LocalTransactionState::Unknown
        }
    }

    fn check_answered(&self, message: &MessageExt, _state: LocalTransactionState, confirmed: bool) {
        let (Some(line), Some(id)) = (self.line_of(message), message.uniq_id()) else {
            return;
        };
        if !confirmed {
            eprintln!(
                "Line {line} (message {id}): the broker did not confirm the answer; it will check again."
            );
            return;
        }
        let mut done = self.confirmed.lock();
        if !done.iter().any(|(_, d)| d == id) {
            done.push((line, id.to_owned()));
            self.changed.notify_one();
        }
    }
}
