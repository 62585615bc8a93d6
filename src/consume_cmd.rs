//! `tributary consume`: prints a topic's messages as a member of a consumer group, with
//! tributary-client's [`PushConsumer`].
//!
//! The consumer uses an orderly listener that hands each message to the printing loop and
//! waits for its answer: a message counts as consumed (and its offset may be committed) only
//! once it is printed. Messages the loop does not take (after `--max-messages`, Ctrl-C or a
//! closed stdout) are answered "suspend", which leaves them, and their offsets, for the next
//! consumer of the group, with no side effect on the broker. Each queue is therefore printed
//! in offset order, and the group's offsets stop exactly after the last message printed.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tributary_client::consumer::Listener;
use tributary_client::producer::validate_topic;
use tributary_client::{
    Admin, ClientInstance, ConsumeContext, ConsumeFrom, ConsumeOrderlyStatus, ConsumerConfig,
    MessageExt, MessageModel, PushConsumer, Subscription,
};

use crate::cli::ConsumeArgs;
use crate::output::{JsonMessage, client_config, printable, topic_error};
use crate::time_arg::{TIME_FORMS, TimePoint, now_ms, parse_point};

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Runs `tributary consume`.
pub fn run(args: ConsumeArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if args.group.trim().is_empty() {
        bail!("--group must not be empty");
    }
    let from = parse_from(&args.member.from, now_ms())?;
    crate::runtime()?.block_on(consume(args, from))
}

/// Reads `--from`: `first`, `last`, or a time ([`crate::time_arg`]).
pub fn parse_from(text: &str, now_ms: i64) -> Result<ConsumeFrom> {
    match parse_point(text, now_ms) {
        Some(TimePoint::First) => Ok(ConsumeFrom::FirstOffset),
        Some(TimePoint::Last) => Ok(ConsumeFrom::LastOffset),
        Some(TimePoint::At(ms)) => Ok(ConsumeFrom::Timestamp(ms)),
        None => bail!(
            "invalid --from {:?}: expected `first`, `last`, {TIME_FORMS}",
            text.trim()
        ),
    }
}

/// Messages handed from a listener call to the printing loop, and its answer: `true` when
/// they were printed.
pub(crate) struct Delivery {
    pub(crate) messages: Arc<[MessageExt]>,
    pub(crate) printed: oneshot::Sender<bool>,
}

/// Why consumption stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    MaxMessages,
    Idle,
    Signal,
    OutputClosed,
}

async fn consume(args: ConsumeArgs, from: ConsumeFrom) -> Result<()> {
    let instance = ClientInstance::start(client_config(&args.client)?)
        .await
        .with_context(|| format!("connect to NameServer {}", args.client.namesrv))?;
    let result = consume_with(&instance, &args, from).await;
    instance.shutdown().await;
    result
}

async fn consume_with(
    instance: &ClientInstance,
    args: &ConsumeArgs,
    from: ConsumeFrom,
) -> Result<()> {
    Admin::with_instance(instance.clone())
        .topic_route(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, &args.client.namesrv, e))?;
    let subscription = args.member.subscription(&args.topic);
    let mut config = member_config(&args.group, from);
    if args.broadcast {
        config.message_model = MessageModel::Broadcasting;
        config.local_offset_dir = args.offset_dir.clone();
    }
    let offset_file = args
        .broadcast
        .then(|| config.offset_file().display().to_string());
    let (consumer, mut received) = join_group(instance, config, subscription).await?;
    let mut progress = Progress::new(args, offset_file);
    progress.started(topic_queues(&consumer, &args.topic));
    let outcome = print_loop(&mut received, &consumer, args, &mut progress).await;
    // Messages not printed go back to their queues: close the channel before stopping.
    drop(received);
    progress.clear();
    consumer.shutdown().await;
    let (count, stop) = outcome?;
    progress.finished(count, stop);
    Ok(())
}

/// The configuration of a command's group member: one message per listener call, starting
/// `from` where the group has no offset yet.
pub(crate) fn member_config(group: &str, from: ConsumeFrom) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(group);
    config.consume_from = from;
    config.consume_batch_max_size = 1;
    config
}

/// Joins `config`'s group as a member that hands each message, one at a time, to the receiver
/// and counts it consumed only once the receiver answers `true`: queues stay in offset order,
/// and messages not taken (answered `false`, or the receiver dropped) stay for the group. The
/// listener is orderly, so in clustering mode the member locks each queue it reads on its
/// broker (LOCK_BATCH_MQ), as RocketMQ's orderly consumers do: a queue is read by one member
/// at a time, also while queues move between members.
pub(crate) async fn join_group(
    instance: &ClientInstance,
    config: ConsumerConfig,
    subscription: Subscription,
) -> Result<(PushConsumer, mpsc::Receiver<Delivery>)> {
    let group = config.group.clone();
    let (deliveries, received) = mpsc::channel::<Delivery>(1);
    let listener = Listener::orderly(move |messages: Arc<[MessageExt]>, _: ConsumeContext| {
        let deliveries = deliveries.clone();
        async move {
            let (printed, answer) = oneshot::channel();
            if deliveries
                .send(Delivery { messages, printed })
                .await
                .is_err()
            {
                return ConsumeOrderlyStatus::SuspendCurrentQueueAMoment;
            }
            match answer.await {
                Ok(true) => ConsumeOrderlyStatus::Success,
                _ => ConsumeOrderlyStatus::SuspendCurrentQueueAMoment,
            }
        }
    });
    let consumer =
        PushConsumer::with_instance(instance.clone(), config, vec![subscription], listener)
            .await
            .with_context(|| format!("join consumer group {group}"))?;
    Ok((consumer, received))
}

async fn print_loop(
    received: &mut mpsc::Receiver<Delivery>,
    consumer: &PushConsumer,
    args: &ConsumeArgs,
    progress: &mut Progress,
) -> Result<(u64, Stop)> {
    let idle = args.member.idle_timeout.map(Duration::from_secs);
    let mut printer = Printer::new(args.client.json);
    let mut count = 0u64;
    let mut last = Instant::now();
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    let signal = stop_signal();
    tokio::pin!(signal);
    let stop = loop {
        let idle_at = last + idle.unwrap_or(Duration::from_secs(86_400));
        tokio::select! {
            delivery = received.recv() => {
                let Some(delivery) = delivery else { bail!("the consumer stopped unexpectedly") };
                progress.clear();
                match printer.print(&delivery.messages) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                        let _ = delivery.printed.send(false);
                        break Stop::OutputClosed;
                    }
                    Err(e) => {
                        let _ = delivery.printed.send(false);
                        return Err(e).context("write to stdout");
                    }
                }
                let _ = delivery.printed.send(true);
                count += delivery.messages.len() as u64;
                last = Instant::now();
                if args.member.max_messages.is_some_and(|max| count >= max) {
                    break Stop::MaxMessages;
                }
                if progress.due() {
                    progress.draw(consumer, count, last);
                }
            }
            () = tokio::time::sleep_until(idle_at), if idle.is_some() => break Stop::Idle,
            () = &mut signal => break Stop::Signal,
            _ = ticker.tick() => progress.draw(consumer, count, last),
        }
    };
    Ok((count, stop))
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub(crate) async fn stop_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    () = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => interrupt.await,
        }
    }
    #[cfg(not(unix))]
    interrupt.await;
}

// ---- output ---------------------------------------------------------------------------------

/// Writes messages to stdout: one JSON object per line, or fixed-width columns.
struct Printer {
    json: bool,
    header_printed: bool,
}

impl Printer {
    fn new(json: bool) -> Self {
        Self {
            json,
            header_printed: false,
        }
    }

    fn print(&mut self, messages: &[MessageExt]) -> std::io::Result<()> {
        let mut text = String::new();
        if !self.json && !self.header_printed {
            self.header_printed = true;
            text.push_str(&format!(
                "{:<16}  {:>8}  {:<32}  {:<12}  {:<12}  BODY\n",
                "QUEUE", "OFFSET", "MSG ID", "TAGS", "KEYS"
            ));
        }
        for m in messages {
            if self.json {
                let line = JsonMessage::new(m);
                text.push_str(&serde_json::to_string(&line).map_err(std::io::Error::other)?);
            } else {
                let keys = m.keys().join(" ");
                text.push_str(&format!(
                    "{:<16}  {:>8}  {:<32}  {:<12}  {:<12}  {}",
                    format!("{}:{}", m.broker_name, m.queue_id),
                    m.queue_offset,
                    m.msg_id(),
                    printable(m.tags().unwrap_or("-").as_bytes()),
                    if keys.is_empty() {
                        "-".to_owned()
                    } else {
                        printable(keys.as_bytes())
                    },
                    printable(&m.body),
                ));
            }
            text.push('\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// The queues of `topic` (not of the group's retry topic) the consumer reads now.
fn topic_queues(consumer: &PushConsumer, topic: &str) -> usize {
    consumer
        .assigned_queues()
        .iter()
        .filter(|q| q.topic == topic)
        .count()
}

/// What a person waiting sees on stderr: a status line redrawn every second on a terminal;
/// otherwise one line when consumption starts and one when it stops.
struct Progress {
    terminal: bool,
    shown: bool,
    drawn_at: Option<Instant>,
    topic: String,
    group: String,
    /// With --broadcast, the local file of this consumer's offsets.
    offset_file: Option<String>,
}

impl Progress {
    fn new(args: &ConsumeArgs, offset_file: Option<String>) -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            shown: false,
            drawn_at: None,
            topic: args.topic.clone(),
            group: args.group.clone(),
            offset_file,
        }
    }

    fn started(&mut self, queues: usize) {
        if !self.terminal {
            let waiting = if self.offset_file.is_some() {
                " (broadcasting: every message, offsets kept locally)"
            } else if queues == 0 {
                "; waiting for queues (the group's other members hold them all, or a member that was killed holds their locks until they expire, within a minute)"
            } else {
                ""
            };
            eprintln!(
                "Consuming {} as group {} from {queues} queue{}{waiting}; Ctrl-C stops.",
                self.topic,
                self.group,
                if queues == 1 { "" } else { "s" }
            );
        }
    }

    /// Whether the line should be redrawn after a message (at most every 100 ms, so that a
    /// fast stream is not slowed down by the terminal).
    fn due(&self) -> bool {
        self.drawn_at
            .is_none_or(|at| at.elapsed() >= Duration::from_millis(100))
    }

    fn draw(&mut self, consumer: &PushConsumer, count: u64, last: Instant) {
        if !self.terminal {
            return;
        }
        self.drawn_at = Some(Instant::now());
        let queues = topic_queues(consumer, &self.topic);
        let idle = last.elapsed().as_secs();
        let line = format!(
            "{} as {}: {queues} queue{} assigned, {count} message{}, {} — Ctrl-C stops",
            self.topic,
            self.group,
            if queues == 1 { "" } else { "s" },
            if count == 1 { "" } else { "s" },
            if queues == 0 {
                format!(
                    "waiting {idle}s for the group's other members or a killed member's queue locks to let go"
                )
            } else if count == 0 {
                format!("waiting {idle}s")
            } else {
                format!("last {idle}s ago")
            }
        );
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }

    fn finished(&mut self, count: u64, stop: Stop) {
        let why = match stop {
            Stop::MaxMessages => "reached --max-messages",
            Stop::Idle => "no message within --idle-timeout",
            Stop::Signal => "interrupted",
            Stop::OutputClosed => "stdout closed",
        };
        let saved = match &self.offset_file {
            Some(file) => format!("offsets saved in {file}"),
            None => "offsets committed".to_owned(),
        };
        eprintln!(
            "Consumed {count} message{} from {} as group {} ({why}); {saved}.",
            if count == 1 { "" } else { "s" },
            self.topic,
            self.group
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_accepts_positions_times_and_relative_times() {
        let now = 1_714_564_800_000; // 2024-05-01T12:00:00Z
        let cases: [(&str, ConsumeFrom); 9] = [
            ("first", ConsumeFrom::FirstOffset),
            ("LAST", ConsumeFrom::LastOffset),
            ("latest", ConsumeFrom::LastOffset),
            ("-30s", ConsumeFrom::Timestamp(now - 30_000)),
            ("-15m", ConsumeFrom::Timestamp(now - 900_000)),
            ("-1h30m", ConsumeFrom::Timestamp(now - 5_400_000)),
            ("-2d", ConsumeFrom::Timestamp(now - 172_800_000)),
            (
                "2024-05-01T11:00:00Z",
                ConsumeFrom::Timestamp(now - 3_600_000),
            ),
            (
                "2024-05-01T14:00:00.5+02:00",
                ConsumeFrom::Timestamp(now + 500),
            ),
        ];
        for (text, expect) in cases {
            assert_eq!(parse_from(text, now).expect(text), expect, "{text}");
        }
        for bad in ["", "-", "-1", "-1x", "-h", "yesterday", "2024-05-01", "1h"] {
            let e = parse_from(bad, now).expect_err(bad).to_string();
            assert!(e.contains("invalid --from"), "{bad}: {e}");
        }
    }
}
