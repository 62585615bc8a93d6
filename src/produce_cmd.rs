//! `tributary produce`: each line of stdin becomes one message, sent with tributary-client's
//! [`Producer`] (one request in flight, in line order).

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tributary_client::producer::validate_topic;
use tributary_client::{Message, Producer, ProducerConfig, SendStatus};
use tributary_protocol::message::property;

use crate::cli::{ProduceArgs, TransactionArg};
use crate::output::{client_config, print_json};
use crate::produce_txn::{self, CheckAnswers};

/// Longest line read from stdin: the broker's default body limit plus room for a key. Longer
/// lines are refused before they are sent.
pub(crate) const MAX_LINE_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

/// Runs `tributary produce`.
pub fn run(args: ProduceArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if args.key_from_line && args.key_separator.is_empty() {
        bail!("--key-separator must not be empty");
    }
    if let Some((name, _)) = args
        .properties
        .iter()
        .find(|(name, _)| property::ALL.contains(&name.as_str()))
    {
        bail!(
            "--property {name} is reserved: the client or broker sets it (use --tag or --key for tags and keys)"
        );
    }
    if args.ordered && args.key.is_none() && !args.key_from_line {
        bail!(
            "--ordered sends each message to the queue of its key: give --key or --key-from-line"
        );
    }
    if args.batch > 1 && (args.delay_level.is_some() || args.delay.is_some()) {
        bail!("delayed messages cannot be sent in batches: drop --batch or the delay");
    }
    if args.batch > 1 && args.transaction.is_some() {
        bail!("transactional messages cannot be sent in batches: drop --batch or --transaction");
    }
    if args.check_answer.is_some() && args.transaction != Some(TransactionArg::Unknown) {
        bail!(
            "--check-answer answers the broker's checks of pending transactions: it needs --transaction unknown (commit and rollback end a transaction at once)"
        );
    }
    crate::runtime()?.block_on(produce(args))
}

/// One message as stored, for the report.
#[derive(Debug, Serialize)]
struct SentMessage {
    /// Line of stdin, counting from 1.
    line: u64,
    msg_id: String,
    offset_msg_id: String,
    broker: String,
    queue_id: i32,
    /// Offset in the queue (not known for a transaction, whose message is appended to the
    /// queue when it is committed).
    #[serde(skip_serializing_if = "Option::is_none")]
    queue_offset: Option<i64>,
    status: &'static str,
    /// `committed`, `rolled back` or `pending`, with --transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct ProduceReport {
    topic: String,
    /// Messages the brokers stored.
    sent: u64,
    /// Send requests made (fewer than messages with --batch).
    requests: u64,
    skipped_empty_lines: u64,
    /// Stored, but the broker's flush or replication did not confirm in time.
    not_confirmed: u64,
    /// With --check-answer: transactions whose check the command answered, confirmed by
    /// the broker.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks_answered: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<SentMessage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A line turned into a message, with its line number and key.
struct Pending {
    line: u64,
    message: Message,
    key: Option<String>,
}

async fn produce(args: ProduceArgs) -> Result<()> {
    let producer = Producer::start(
        client_config(&args.client)?,
        ProducerConfig::new(args.producer_group.clone()),
    )
    .await
    .with_context(|| format!("connect to NameServer {}", args.client.namesrv))?;
    let answers = args.check_answer.map(|a| Arc::new(CheckAnswers::new(a)));
    if let Some(answers) = &answers {
        producer.set_transaction_listener(answers.clone());
    }
    let mut report = ProduceReport {
        topic: args.topic.clone(),
        sent: 0,
        requests: 0,
        skipped_empty_lines: 0,
        not_confirmed: 0,
        checks_answered: None,
        messages: (!args.quiet).then(Vec::new),
        error: None,
    };
    let mut result = send_lines(&producer, &args, answers.as_deref(), &mut report).await;
    if let (Ok(()), Some(answers)) = (&result, &answers)
        && report.sent > 0
    {
        // Register as a live producer of the group now rather than at the next heartbeat,
        // so the broker's first check finds this process.
        producer.instance().send_heartbeat_to_all_brokers().await;
        let timeout = std::time::Duration::from_secs(args.check_timeout);
        match answers.wait(timeout, &args.producer_group).await {
            Ok(n) => report.checks_answered = Some(n as u64),
            Err(e) => result = Err(e),
        }
    }
    producer.shutdown().await;
    if let Err(e) = &result {
        report.error = Some(format!("{e:#}"));
    }
    if args.client.json {
        print_json(&report)?;
    } else {
        let mut summary = format!(
            "Sent {} message{} to {} in {} request{}",
            report.sent,
            plural(report.sent),
            report.topic,
            report.requests,
            plural(report.requests)
        );
        if report.skipped_empty_lines > 0 {
            summary.push_str(&format!(
                "; skipped {} empty line{}",
                report.skipped_empty_lines,
                plural(report.skipped_empty_lines)
            ));
        }
        if report.not_confirmed > 0 {
            summary.push_str(&format!(
                "; {} stored but not confirmed flushed or replicated in time",
                report.not_confirmed
            ));
        }
        if let Some(end) = args.transaction.filter(|_| report.sent > 0) {
            summary.push_str(&transaction_summary(&args, end, &report));
        }
        summary.push_str(".\n");
        if result.is_err() {
            eprint!("{summary}");
        } else {
            crate::output::print_text(&summary)?;
        }
    }
    result
}

/// What became of the transactions, for the summary line.
fn transaction_summary(args: &ProduceArgs, end: TransactionArg, report: &ProduceReport) -> String {
    let n = report.sent;
    let (each, them) = if n == 1 {
        ("its transaction".to_owned(), "it")
    } else {
        (format!("each in its own transaction, {n}"), "them")
    };
    match (end, report.checks_answered) {
        (TransactionArg::Unknown, Some(answered)) => format!(
            "; {each} left pending, then {} when the broker checked ({answered} answer{} confirmed)",
            args.check_answer
                .map_or("settled", produce_txn::answered_outcome),
            plural(answered)
        ),
        (TransactionArg::Unknown, None) => format!(
            "; {each} left pending: the broker checks {them} with a live producer of group {} and discards {them} after its last check",
            args.producer_group
        ),
        (end, _) => format!("; {each} {}", produce_txn::outcome(end)),
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    answers: Option<&CheckAnswers>,
    report: &mut ProduceReport,
) -> Result<()> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut batch: Vec<Pending> = Vec::new();
    let batch_size = usize::try_from(args.batch).unwrap_or(1).max(1);
    let mut header_printed = false;
    loop {
        line.clear();
        let more = read_line(&mut stdin, &mut line, MAX_LINE_BYTES)
            .await
            .with_context(|| format!("read line {} of stdin", line_no + 1))?;
        if !more {
            break;
        }
        line_no += 1;
        match to_message(args, &line) {
            Some((message, key)) => batch.push(Pending {
                line: line_no,
                message,
                key,
            }),
            None => report.skipped_empty_lines += 1,
        }
        if batch.len() >= batch_size {
            send(
                producer,
                args,
                answers,
                std::mem::take(&mut batch),
                report,
                &mut header_printed,
            )
            .await?;
        }
    }
    if !batch.is_empty() {
        send(producer, args, answers, batch, report, &mut header_printed).await?;
    }
    Ok(())
}

/// Reads one line without its `\n` (or `\r\n`) into `buf`; `false` at the end of input.
pub(crate) async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool> {
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            break;
        }
        read_any = true;
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if buf.len() > limit {
            bail!("the line is longer than {limit} bytes");
        }
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    Ok(read_any)
}

/// The message of a line and its key; `None` for a line with an empty body.
fn to_message(args: &ProduceArgs, line: &[u8]) -> Option<(Message, Option<String>)> {
    let (key, body) = if args.key_from_line {
        split_key(line, args.key_separator.as_bytes())
    } else {
        (args.key.as_deref().map(str::to_owned), line)
    };
    if body.is_empty() {
        return None;
    }
    let mut message = with_options(
        Message::new(args.topic.clone(), body.to_vec()),
        args.tag.as_deref(),
        key.as_deref(),
        &args.properties,
    );
    if let Some(level) = args.delay_level {
        message = message.with_delay_level(level);
    }
    if let Some(delay) = args.delay {
        message = message.with_delay(delay);
    }
    Some((message, key.filter(|k| !k.trim().is_empty())))
}

/// `message` with a tag, keys (separated by spaces; blank is none) and user properties.
pub(crate) fn with_options(
    mut message: Message,
    tag: Option<&str>,
    key: Option<&str>,
    properties: &[(String, String)],
) -> Message {
    if let Some(tag) = tag {
        message = message.with_tags(tag);
    }
    if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
        message = message.with_keys(key.split_whitespace());
    }
    for (name, value) in properties {
        message = message.with_property(name.clone(), value.clone());
    }
    message
}

/// `KEY<separator>BODY` → (key, body); a line without the separator is all body.
fn split_key<'a>(line: &'a [u8], separator: &[u8]) -> (Option<String>, &'a [u8]) {
    match line.windows(separator.len()).position(|w| w == separator) {
        Some(i) => (
            Some(String::from_utf8_lossy(&line[..i]).into_owned()),
            &line[i + separator.len()..],
        ),
        None => (None, line),
    }
}

async fn send(
    producer: &Producer,
    args: &ProduceArgs,
    answers: Option<&CheckAnswers>,
    batch: Vec<Pending>,
    report: &mut ProduceReport,
    header_printed: &mut bool,
) -> Result<()> {
    let lines: Vec<u64> = batch.iter().map(|p| p.line).collect();
    let what = match (lines.first(), lines.last()) {
        (Some(a), Some(b)) if a != b => format!("lines {a}-{b}"),
        (Some(a), _) => format!("line {a}"),
        _ => return Ok(()),
    };
    let key = batch.first().and_then(|p| p.key.clone());
    let mut messages: Vec<Message> = batch.into_iter().map(|p| p.message).collect();
    let context = || format!("send {what} to topic {}", args.topic);
    let result = match (args.transaction, messages.pop()) {
        (Some(end), Some(message)) if messages.is_empty() => {
            let sent = produce_txn::send(producer, message, end)
                .await
                .with_context(context)?;
            if let (Some(answers), Some(line)) = (answers, lines.first()) {
                answers.expect(&sent.msg_id, *line);
            }
            sent
        }
        (None, Some(message)) if messages.is_empty() && args.ordered => {
            let Some(key) = key else {
                bail!("{what} has no key: --ordered sends each message to the queue of its key");
            };
            producer
                .send_orderly(message, &key)
                .await
                .with_context(context)?
        }
        (None, Some(message)) if messages.is_empty() => {
            producer.send(message).await.with_context(context)?
        }
        (None, Some(last)) => {
            messages.push(last);
            producer.send_batch(messages).await.with_context(context)?
        }
        _ => return Ok(()),
    };
    report.requests += 1;
    let ids: Vec<&str> = result.msg_id.split(',').collect();
    let offset_ids: Vec<&str> = result.offset_msg_id.split(',').collect();
    let status = result.status.name();
    let mut sent = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        report.sent += 1;
        if result.status != SendStatus::SendOk {
            report.not_confirmed += 1;
        }
        sent.push(SentMessage {
            line: *line,
            msg_id: ids.get(i).copied().unwrap_or_default().to_owned(),
            offset_msg_id: offset_ids.get(i).copied().unwrap_or_default().to_owned(),
            broker: result.queue.broker_name.clone(),
            queue_id: result.queue.queue_id,
            queue_offset: args
                .transaction
                .is_none()
                .then(|| result.queue_offset + i64::try_from(i).unwrap_or(0)),
            status,
            transaction: args.transaction.map(produce_txn::outcome),
        });
    }
    if !args.client.json && !args.quiet {
        print_rows(&sent, header_printed)?;
    }
    if let Some(all) = &mut report.messages {
        all.extend(sent);
    }
    Ok(())
}

/// One line per stored message: fixed-width columns, so lines printed as messages are
/// acknowledged stay aligned.
fn print_rows(sent: &[SentMessage], header_printed: &mut bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    if !*header_printed {
        *header_printed = true;
        let last = if sent.iter().any(|m| m.transaction.is_some()) {
            "TRANSACTION"
        } else {
            "OFFSET"
        };
        text.push_str(&format!(
            "{:>6}  {:<32}  {:>5}  {:>11}  BROKER\n",
            "LINE", "MSG ID", "QUEUE", last
        ));
    }
    for m in sent {
        let offset = m.queue_offset.map(|o| o.to_string());
        let last = m.transaction.or(offset.as_deref()).unwrap_or_default();
        text.push_str(&format!(
            "{:>6}  {:<32}  {:>5}  {:>11}  {}",
            m.line, m.msg_id, m.queue_id, last, m.broker
        ));
        if m.status != SendStatus::SendOk.name() {
            text.push_str(&format!("  ({}: stored, not confirmed in time)", m.status));
        }
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("write to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_split_without_their_endings() {
        let input: &[u8] = b"one\r\ntwo\n\nlast without newline";
        let mut reader = BufReader::with_capacity(4, input);
        let mut lines = Vec::new();
        let mut buf = Vec::new();
        while read_line(&mut reader, &mut buf, 100).await.expect("read") {
            lines.push(String::from_utf8(buf.clone()).expect("utf-8"));
            buf.clear();
        }
        assert_eq!(lines, ["one", "two", "", "last without newline"]);
        let mut long = BufReader::new(&b"0123456789\n"[..]);
        assert!(read_line(&mut long, &mut Vec::new(), 5).await.is_err());
    }

    #[test]
    fn keys_split_off_the_line() {
        let check = |line: &[u8], sep: &str, key: Option<&str>, body: &[u8]| {
            let (k, b) = split_key(line, sep.as_bytes());
            assert_eq!(k.as_deref(), key, "{line:?}");
            assert_eq!(b, body, "{line:?}");
        };
        check(b"k1\tbody", "\t", Some("k1"), b"body");
        check(b"no separator", "\t", None, b"no separator");
        check(b"a::b::c", "::", Some("a"), b"b::c");
        check(b"\tbody", "\t", Some(""), b"body");
    }
}
