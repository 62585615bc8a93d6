//! `tributary produce`: each line of stdin becomes one message, sent with tributary-client's
//! [`Producer`] (one request in flight, in line order).

use std::io::Write;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
use tributary_client::producer::validate_topic;
use tributary_client::{ClientError, Message, Producer, ProducerConfig, SendResult, SendStatus};
use tributary_protocol::message::property;

use crate::cli::ProduceArgs;
use crate::output::{client_config, print_json};

/// Longest line read from stdin: the broker's default body limit plus room for a key. Longer
/// lines are refused before they are sent.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024 + 64 * 1024;

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
    if args.batch > 1 && (args.delay_level.is_some() || args.delay.is_some()) {
        bail!("delayed messages cannot be sent in batches: drop --batch or the delay");
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
    queue_offset: i64,
    status: &'static str,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<SentMessage>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// A line turned into a message, with its line number.
struct Pending {
    line: u64,
    message: Message,
}

async fn produce(args: ProduceArgs) -> Result<()> {
    let producer = Producer::start(
        client_config(&args.client)?,
        ProducerConfig::new(args.producer_group.clone()),
    )
    .await
    .with_context(|| format!("connect to NameServer {}", args.client.namesrv))?;
    let mut report = ProduceReport {
        topic: args.topic.clone(),
        sent: 0,
        requests: 0,
        skipped_empty_lines: 0,
        not_confirmed: 0,
        messages: (!args.quiet).then(Vec::new),
        error: None,
    };
    let result = send_lines(&producer, &args, &mut report).await;
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
        summary.push_str(".\n");
        if result.is_err() {
            eprint!("{summary}");
        } else {
            crate::output::print_text(&summary)?;
        }
    }
    result
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
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
            Some(message) => batch.push(Pending {
                line: line_no,
                message,
            }),
            None => report.skipped_empty_lines += 1,
        }
        if batch.len() >= batch_size {
            send(
                producer,
                args,
                std::mem::take(&mut batch),
                report,
                &mut header_printed,
            )
            .await?;
        }
    }
    if !batch.is_empty() {
        send(producer, args, batch, report, &mut header_printed).await?;
    }
    Ok(())
}

/// Reads one line without its `\n` (or `\r\n`) into `buf`; `false` at the end of input.
async fn read_line(
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

/// The message of a line; `None` for a line with an empty body.
fn to_message(args: &ProduceArgs, line: &[u8]) -> Option<Message> {
    let (key, body) = if args.key_from_line {
        split_key(line, args.key_separator.as_bytes())
    } else {
        (args.key.as_deref().map(str::to_owned), line)
    };
    if body.is_empty() {
        return None;
    }
    let mut message = Message::new(args.topic.clone(), body.to_vec());
    if let Some(tag) = &args.tag {
        message = message.with_tags(tag.clone());
    }
    if let Some(key) = key.filter(|k| !k.trim().is_empty()) {
        message = message.with_keys(key.split_whitespace());
    }
    for (name, value) in &args.properties {
        message = message.with_property(name.clone(), value.clone());
    }
    if let Some(level) = args.delay_level {
        message = message.with_delay_level(level);
    }
    if let Some(delay) = args.delay {
        message = message.with_delay(delay);
    }
    Some(message)
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
    let mut messages: Vec<Message> = batch.into_iter().map(|p| p.message).collect();
    let result: Result<SendResult, ClientError> = if messages.len() == 1 {
        match messages.pop() {
            Some(message) => producer.send(message).await,
            None => return Ok(()),
        }
    } else {
        producer.send_batch(messages).await
    };
    let result = result.with_context(|| format!("send {what} to topic {}", args.topic))?;
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
            queue_offset: result.queue_offset + i64::try_from(i).unwrap_or(0),
            status,
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
        text.push_str(&format!(
            "{:>6}  {:<32}  {:>5}  {:>10}  BROKER\n",
            "LINE", "MSG ID", "QUEUE", "OFFSET"
        ));
    }
    for m in sent {
        text.push_str(&format!(
            "{:>6}  {:<32}  {:>5}  {:>10}  {}",
            m.line, m.msg_id, m.queue_id, m.queue_offset, m.broker
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
