//! `tributary request` and `tributary reply`: RocketMQ request-reply from the command line.
//!
//! `request` sends each line of stdin as a request with tributary-client's
//! [`Producer::request`] and prints each reply's body. `reply` answers a topic's requests as a
//! member of a consumer group, one at a time (the member of `consume`, so a request counts as
//! consumed only once it was handled): it echoes each request's body or runs a shell command on
//! it, and sends the result with [`Producer::reply`].

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;
use tributary_client::producer::validate_topic;
use tributary_client::{
    ClientError, ClientInstance, Message, MessageExt, Producer, ProducerConfig,
};
use tributary_protocol::message::property;

use crate::cli::{ReplyArgs, RequestArgs};
use crate::consume_cmd::{join_group, member_config, parse_from, stop_signal};
use crate::output::{JsonMessage, client_config, printable, topic_error};
use crate::produce_cmd::{MAX_LINE_BYTES, read_line, with_options};
use crate::time_arg::now_ms;

/// User property of a reply from `reply --exec`: the command's exit status (-1 when it was
/// killed or did not exit normally).
pub const EXIT_CODE: &str = "EXIT_CODE";
/// Largest reply body `reply --exec` sends (the brokers' default message limit).
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

// ---- request --------------------------------------------------------------------------------

/// Runs `tributary request`.
pub fn request(args: RequestArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if let Some((name, _)) = args
        .properties
        .iter()
        .find(|(name, _)| property::ALL.contains(&name.as_str()))
    {
        bail!("--property {name} is reserved: the client or broker sets it");
    }
    crate::runtime()?.block_on(async {
        let producer = Producer::start(
            client_config(&args.client)?,
            ProducerConfig::new(args.producer_group.clone()),
        )
        .await
        .with_context(|| format!("connect to NameServer {}", args.client.namesrv))?;
        let result = request_lines(&producer, &args).await;
        producer.shutdown().await;
        let answered = result?;
        eprintln!(
            "Sent {answered} request{} to {}; every one was answered.",
            if answered == 1 { "" } else { "s" },
            args.topic
        );
        Ok(())
    })
}

#[derive(Debug, Serialize)]
struct JsonReply<'a> {
    /// Line of stdin, counting from 1.
    line: u64,
    reply: JsonMessage<'a>,
}

async fn request_lines(producer: &Producer, args: &RequestArgs) -> Result<u64> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let (mut line_no, mut answered) = (0u64, 0u64);
    loop {
        line.clear();
        let more = read_line(&mut stdin, &mut line, MAX_LINE_BYTES)
            .await
            .with_context(|| format!("read line {} of stdin", line_no + 1))?;
        if !more {
            return Ok(answered);
        }
        line_no += 1;
        if line.is_empty() {
            continue;
        }
        let message = with_options(
            Message::new(args.topic.clone(), line.clone()),
            args.tag.as_deref(),
            args.key.as_deref(),
            &args.properties,
        );
        let reply = producer
            .request(message, args.timeout)
            .await
            .map_err(|e| match e {
                ClientError::NoRoute { .. } => topic_error(&args.topic, &args.client.namesrv, e),
                e => anyhow::Error::new(e),
            })
            .with_context(|| format!("request of line {line_no}"))?;
        answered += 1;
        let mut text = if args.client.json {
            let json = JsonReply {
                line: line_no,
                reply: JsonMessage::new(&reply),
            };
            serde_json::to_vec(&json).context("encode JSON")?
        } else {
            reply.body.to_vec()
        };
        text.push(b'\n');
        let mut out = std::io::stdout().lock();
        out.write_all(&text)
            .and_then(|()| out.flush())
            .context("write to stdout")?;
        if let Some(code) = reply.property(EXIT_CODE).filter(|c| *c != "0") {
            bail!("request of line {line_no}: the replier's command exited with status {code}");
        }
    }
}

// ---- reply ----------------------------------------------------------------------------------

/// Runs `tributary reply`.
pub fn reply(args: ReplyArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if args.group.trim().is_empty() {
        bail!("--group must not be empty");
    }
    if args.exec.as_deref().is_some_and(|c| c.trim().is_empty()) {
        bail!("--exec must not be empty");
    }
    let from = parse_from(&args.member.from, now_ms())?;
    crate::runtime()?.block_on(async {
        let instance = ClientInstance::start(client_config(&args.client)?)
            .await
            .with_context(|| format!("connect to NameServer {}", args.client.namesrv))?;
        let result = reply_with(&instance, &args, from).await;
        instance.shutdown().await;
        result
    })
}

/// What became of one message.
#[derive(Debug, Serialize)]
struct Handled {
    queue: String,
    queue_offset: i64,
    msg_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    /// `replied`, `skipped` (not a request, or nothing to send) or `failed`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_bytes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// Why it was skipped or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Default)]
struct Tally {
    replied: u64,
    skipped: u64,
    failed: u64,
}

async fn reply_with(
    instance: &ClientInstance,
    args: &ReplyArgs,
    from: tributary_client::ConsumeFrom,
) -> Result<()> {
    tributary_client::Admin::with_instance(instance.clone())
        .topic_route(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, &args.client.namesrv, e))?;
    let producer = Producer::with_instance(
        instance.clone(),
        ProducerConfig::new(args.producer_group.clone()),
    )
    .with_context(|| format!("start producer group {}", args.producer_group))?;
    let subscription = args.member.subscription(&args.topic);
    let config = member_config(&args.group, from);
    let (consumer, mut received) = join_group(instance, config, subscription).await?;
    eprintln!(
        "Answering requests to {} as group {}{}; Ctrl-C stops.",
        args.topic,
        args.group,
        match &args.exec {
            Some(cmd) => format!(" with `{cmd}`"),
            None => " (echo)".to_owned(),
        }
    );
    let idle = args.member.idle_timeout.map(Duration::from_secs);
    let mut tally = Tally::default();
    let mut last = Instant::now();
    let signal = stop_signal();
    tokio::pin!(signal);
    let stop: Result<&str> = loop {
        let idle_at = last + idle.unwrap_or(Duration::from_secs(86_400));
        tokio::select! {
            delivery = received.recv() => {
                let Some(delivery) = delivery else {
                    break Err(anyhow::anyhow!("the consumer stopped unexpectedly"));
                };
                let mut printed = Ok(());
                for m in delivery.messages.iter() {
                    let handled = handle(&producer, args, m).await;
                    match handled.outcome {
                        "replied" => tally.replied += 1,
                        "skipped" => tally.skipped += 1,
                        _ => tally.failed += 1,
                    }
                    if printed.is_ok() {
                        printed = print_handled(&handled, args.client.json);
                    }
                }
                // Handled (replied or not) counts as consumed: a request is answered once.
                let _ = delivery.printed.send(true);
                last = Instant::now();
                if let Err(e) = printed {
                    let closed = e
                        .downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
                    break if closed { Ok("stdout closed") } else { Err(e) };
                }
                let total = tally.replied + tally.skipped + tally.failed;
                if args.member.max_messages.is_some_and(|max| total >= max) {
                    break Ok("reached --max-messages");
                }
            }
            () = tokio::time::sleep_until(idle_at), if idle.is_some() => break Ok("idle"),
            () = &mut signal => break Ok("stopped"),
        }
    };
    drop(received);
    consumer.shutdown().await;
    producer.shutdown().await;
    let why = stop?;
    eprintln!(
        "Answered {} request{} to {} as group {} ({why}); {} skipped, {} failed.",
        tally.replied,
        if tally.replied == 1 { "" } else { "s" },
        args.topic,
        args.group,
        tally.skipped,
        tally.failed
    );
    Ok(())
}

/// Answers one message.
async fn handle(producer: &Producer, args: &ReplyArgs, m: &MessageExt) -> Handled {
    let mut handled = Handled {
        queue: format!("{}:{}", m.broker_name, m.queue_id),
        queue_offset: m.queue_offset,
        msg_id: m.msg_id().to_owned(),
        correlation_id: m.property(property::CORRELATION_ID).map(str::to_owned),
        outcome: "skipped",
        reply_bytes: None,
        exit_code: None,
        reason: None,
    };
    if m.property(property::MESSAGE_REPLY_TO_CLIENT).is_none() {
        handled.reason = Some("not a request (no REPLY_TO_CLIENT)".into());
        return handled;
    }
    let (body, exit_code) = match &args.exec {
        None => (m.body.to_vec(), None),
        Some(cmd) => match run_command(cmd, m, Duration::from_secs(args.exec_timeout)).await {
            Ok((out, code)) => (out, Some(code)),
            Err(e) => {
                handled.outcome = "failed";
                handled.reason = Some(format!("{e:#}"));
                return handled;
            }
        },
    };
    handled.exit_code = exit_code;
    if body.is_empty() {
        handled.reason = Some("the reply would be empty, and RocketMQ refuses empty bodies".into());
        return handled;
    }
    let mut reply = match tributary_client::create_reply_message(m, body) {
        Ok(r) => r,
        Err(e) => {
            handled.reason = Some(e.to_string());
            return handled;
        }
    };
    if let Some(code) = exit_code {
        reply = reply.with_property(EXIT_CODE, code.to_string());
    }
    let bytes = reply.body.len();
    match producer.send(reply).await {
        Ok(_) => {
            handled.outcome = "replied";
            handled.reply_bytes = Some(bytes);
        }
        Err(e) => {
            handled.outcome = "failed";
            handled.reason = Some(match std::error::Error::source(&e) {
                Some(source) => format!("{e}: {source}"),
                None => e.to_string(),
            });
        }
    }
    handled
}

/// Runs `sh -c cmd` with the request's body on stdin; its stdout and exit status (-1 when
/// killed by a signal or after `timeout`).
async fn run_command(cmd: &str, m: &MessageExt, timeout: Duration) -> Result<(Vec<u8>, i32)> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("TRIBUTARY_TOPIC", &m.topic)
        .env("TRIBUTARY_MSG_ID", m.msg_id())
        .env(
            "TRIBUTARY_CORRELATION_ID",
            m.property(property::CORRELATION_ID).unwrap_or(""),
        )
        .env("TRIBUTARY_TAGS", m.tags().unwrap_or(""))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("run `{cmd}`"))?;
    let mut stdin = child.stdin.take().context("the command's stdin")?;
    let mut stdout = child.stdout.take().context("the command's stdout")?;
    let body = m.body.clone();
    let run = async {
        // A command that does not read its input must not block the writer: write while
        // reading, and ignore a closed pipe.
        let write = async move {
            let _ = stdin.write_all(&body).await;
            drop(stdin);
        };
        let mut out = Vec::new();
        let read = async {
            (&mut stdout)
                .take(MAX_REPLY_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .await
        };
        let ((), read) = tokio::join!(write, read);
        read.context("read the command's output")?;
        let status = child.wait().await.context("wait for the command")?;
        anyhow::Ok((out, status.code().unwrap_or(-1)))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(result) => {
            let (out, code) = result?;
            if out.len() > MAX_REPLY_BYTES {
                bail!("the command printed more than {MAX_REPLY_BYTES} bytes");
            }
            Ok((out, code))
        }
        // Dropping the child (kill_on_drop) kills it.
        Err(_) => Ok((
            format!("command timed out after {} s", timeout.as_secs()).into_bytes(),
            -1,
        )),
    }
}

fn print_handled(h: &Handled, json: bool) -> Result<()> {
    let mut text = if json {
        serde_json::to_string(h).context("encode JSON")?
    } else {
        let detail = match (h.outcome, h.reply_bytes, h.exit_code, &h.reason) {
            ("replied", Some(n), Some(code), _) => format!("replied ({n} bytes, exit {code})"),
            ("replied", Some(n), None, _) => format!("replied ({n} bytes)"),
            (outcome, _, _, Some(why)) => format!("{outcome}: {}", printable(why.as_bytes())),
            (outcome, _, _, None) => outcome.to_owned(),
        };
        format!(
            "{:<16}  {:>8}  {:<32}  {:<36}  {detail}",
            h.queue,
            h.queue_offset,
            h.msg_id,
            h.correlation_id.as_deref().unwrap_or("-"),
        )
    };
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(anyhow::Error::new)
}
