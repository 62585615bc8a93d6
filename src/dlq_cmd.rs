//! Retries and dead letters: `tributary dlq list|resend` (a consumer group's dead letters in
//! `%DLQ%<group>`, read with a tools group that commits nothing, and sent again to the topic
//! they came from, their `RETRY_TOPIC` property, with tributary-client's [`Producer`]), and
//! `tributary group config` (the group's `retryMaxTimes` on the brokers).
//!
//! Whether a dead letter was re-sent is read from the log, not kept anywhere: a re-sent copy
//! keeps the letter's message id, so the letter was re-sent when its topic's index holds a copy
//! with that id stored after the letter. (RocketMQ's tools keep no record: `mqadmin
//! queryMsgById -s` and the dashboard's resend leave the letter as it was, and resend it again
//! when asked again.)

use anyhow::{Context, Result};
use serde::Serialize;
use tributary_client::admin::TopicTarget;
use tributary_client::instance::PullArgs;
use tributary_client::message::DLQ_GROUP_TOPIC_PREFIX;
use tributary_client::{
    Admin, ClientError, Message, MessageExt, Producer, ProducerConfig, PullStatus,
};
use tributary_protocol::message::property;

use crate::admin_cmd::{broker_target, with_admin};
use crate::cli::{DlqCommand, DlqListArgs, DlqResendArgs, GroupConfigArgs};
use crate::output::{Table, format_time_ms, print_json, printable};

/// Messages per pull.
const PULL_BATCH: i32 = 32;
/// The producer group re-sent messages are sent as.
const RESEND_GROUP: &str = "tributary-cli-dlq";
/// Properties the broker or a client's consumption added, dropped from a re-sent message:
/// it is a new message on its original topic.
const DROPPED_ON_RESEND: &[&str] = &[
    property::RETRY_TOPIC,
    property::REAL_TOPIC,
    property::REAL_QUEUE_ID,
    property::DELAY_TIME_LEVEL,
    property::TIMER_DELIVER_MS,
    property::TIMER_DELAY_SEC,
    property::TIMER_DELAY_MS,
    property::TIMER_OUT_MS,
    property::RECONSUME_TIME,
    property::MAX_RECONSUME_TIMES,
    property::CONSUME_START_TIMESTAMP,
    property::MIN_OFFSET,
    property::MAX_OFFSET,
    property::WAIT_STORE_MSG_OK,
    property::TRANSACTION_PREPARED,
    property::PRODUCER_GROUP,
    property::CLUSTER,
    tributary_broker::schedule::SOURCE_PROPERTY,
];

/// Runs a `dlq` command.
pub fn run(command: DlqCommand) -> Result<()> {
    crate::runtime()?.block_on(async move {
        match command {
            DlqCommand::List(args) => {
                with_admin(&args.client, async |admin| list(admin, &args).await).await
            }
            DlqCommand::Resend(args) => {
                with_admin(&args.client, async |admin| resend(admin, &args).await).await
            }
        }
    })
}

fn dlq_topic(group: &str) -> String {
    format!("{DLQ_GROUP_TOPIC_PREFIX}{group}")
}

/// Up to `max` messages of the group's dead-letter topic, queue by queue in offset order.
/// A group that never had a dead letter has no such topic: no messages.
async fn dead_letters(admin: &Admin, group: &str, max: u64) -> Result<Vec<MessageExt>> {
    let topic = dlq_topic(group);
    let queues = match admin.topic_status(&topic).await {
        Ok(q) => q,
        Err(ClientError::NoRoute { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("look up topic {topic}"))),
    };
    let mut out = Vec::new();
    for status in queues {
        let mut offset = status.min_offset;
        while offset < status.max_offset && (out.len() as u64) < max {
            let result = admin
                .instance()
                .pull(&status.queue, &PullArgs::tools(offset, PULL_BATCH))
                .await
                .with_context(|| {
                    format!(
                        "read {topic} on {} queue {} at offset {offset}",
                        status.queue.broker_name, status.queue.queue_id
                    )
                })?;
            if result.status != PullStatus::Found || result.next_begin_offset <= offset {
                break;
            }
            offset = result.next_begin_offset;
            let room = usize::try_from(max).unwrap_or(usize::MAX) - out.len();
            out.extend(result.messages.into_iter().take(room));
        }
    }
    Ok(out)
}

/// One dead letter as `dlq list --json` prints it.
#[derive(Debug, Serialize)]
struct DeadLetter {
    broker: String,
    queue_id: i32,
    queue_offset: i64,
    msg_id: String,
    offset_msg_id: String,
    origin_msg_id: Option<String>,
    topic: Option<String>,
    reconsume_times: i32,
    stored: String,
    tags: Option<String>,
    keys: Vec<String>,
    body: String,
    /// When it was re-sent (store time of the first copy in its topic after it), if it was.
    resent: Option<String>,
}

impl DeadLetter {
    fn of(m: &MessageExt, resent_ms: Option<i64>) -> Self {
        Self {
            broker: m.broker_name.clone(),
            queue_id: m.queue_id,
            queue_offset: m.queue_offset,
            msg_id: m.msg_id().to_owned(),
            offset_msg_id: m.offset_msg_id.clone(),
            origin_msg_id: m.property(property::ORIGIN_MESSAGE_ID).map(String::from),
            topic: m.property(property::RETRY_TOPIC).map(String::from),
            reconsume_times: m.reconsume_times,
            stored: format_time_ms(m.store_timestamp),
            tags: m.tags().map(String::from),
            keys: m.keys().into_iter().map(String::from).collect(),
            body: printable(&m.body),
            resent: resent_ms.map(format_time_ms),
        }
    }
}

/// When dead letter `m` was sent again to its topic: the store time of the first copy with its
/// message id stored there after it. `None` when there is none (or the letter names no topic,
/// or the topic is gone).
async fn resent_at(admin: &Admin, m: &MessageExt) -> Result<Option<i64>> {
    let Some(topic) = m.property(property::RETRY_TOPIC) else {
        return Ok(None);
    };
    let copies = match admin.query_message_by_unique_key(topic, m.msg_id()).await {
        Ok(copies) => copies,
        Err(ClientError::NoRoute { .. }) => return Ok(None),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "look for re-sent copies of {} in {topic}",
                m.msg_id()
            )));
        }
    };
    Ok(copies
        .iter()
        .map(|c| c.store_timestamp)
        .filter(|t| *t > m.store_timestamp)
        .min())
}

#[derive(Debug, Serialize)]
struct DeadLetters {
    group: String,
    topic: String,
    messages: Vec<DeadLetter>,
}

async fn list(admin: &Admin, args: &DlqListArgs) -> Result<()> {
    let messages = dead_letters(admin, &args.group, args.max_messages).await?;
    let mut letters = Vec::with_capacity(messages.len());
    for m in &messages {
        letters.push(DeadLetter::of(m, resent_at(admin, m).await?));
    }
    let listed = DeadLetters {
        group: args.group.clone(),
        topic: dlq_topic(&args.group),
        messages: letters,
    };
    if args.client.json {
        return print_json(&listed);
    }
    if listed.messages.is_empty() {
        return crate::output::print_text(&format!("Group {} has no dead letters.\n", args.group));
    }
    let mut table = Table::new(&[
        "QUEUE",
        ">OFFSET",
        "MSG ID",
        "TOPIC",
        ">RECONSUMED",
        "STORED",
        "RE-SENT",
        "TAGS",
        "BODY",
    ]);
    for d in &listed.messages {
        table.row(vec![
            format!("{}:{}", d.broker, d.queue_id),
            d.queue_offset.to_string(),
            d.msg_id.clone(),
            d.topic.clone().unwrap_or_else(|| "-".into()),
            d.reconsume_times.to_string(),
            d.stored.clone(),
            d.resent.clone().unwrap_or_else(|| "-".into()),
            d.tags.clone().unwrap_or_default(),
            d.body.clone(),
        ]);
    }
    table.print()?;
    crate::output::print_text(&format!(
        "{} dead letter{} in {}.\n",
        listed.messages.len(),
        if listed.messages.len() == 1 { "" } else { "s" },
        listed.topic
    ))
}

/// The message `resend` sends for a dead letter: same body, flag and user properties, to the
/// topic it came from.
fn resent(m: &MessageExt) -> Result<Message> {
    let topic = m.property(property::RETRY_TOPIC).with_context(|| {
        format!(
            "dead letter {} does not name the topic it came from (no RETRY_TOPIC property)",
            m.msg_id()
        )
    })?;
    let mut properties = m.properties.clone();
    for name in DROPPED_ON_RESEND {
        properties.remove(*name);
    }
    Ok(Message {
        topic: topic.to_owned(),
        flag: m.flag,
        body: m.body.clone(),
        properties,
    })
}

#[derive(Debug, Serialize)]
struct Resent {
    msg_id: String,
    topic: String,
    broker: String,
    queue_id: i32,
    queue_offset: i64,
}

/// A dead letter `resend` left alone because it was re-sent before.
#[derive(Debug, Serialize)]
struct Skipped {
    msg_id: String,
    topic: Option<String>,
    resent: String,
}

#[derive(Debug, Serialize)]
struct ResendReport {
    group: String,
    resent: Vec<Resent>,
    skipped: Vec<Skipped>,
}

/// The dead letters `args` names: every one with `--all`, else those with the given ids.
fn choose<'a>(all: &'a [MessageExt], args: &DlqResendArgs) -> Result<Vec<&'a MessageExt>> {
    if args.all {
        return Ok(all.iter().collect());
    }
    let mut chosen = Vec::new();
    for id in &args.msg_id {
        let found: Vec<&MessageExt> = all
            .iter()
            .filter(|m| m.msg_id() == id || m.offset_msg_id == *id)
            .collect();
        if found.is_empty() {
            anyhow::bail!(
                "no dead letter of group {} has message id {id} (see `tributary dlq list --group {}`)",
                args.group,
                args.group
            );
        }
        chosen.extend(found);
    }
    Ok(chosen)
}

async fn resend(admin: &Admin, args: &DlqResendArgs) -> Result<()> {
    let all = dead_letters(admin, &args.group, u64::MAX).await?;
    let mut messages = Vec::new();
    let mut skipped = Vec::new();
    for m in choose(&all, args)? {
        let message = resent(m)?;
        match resent_at(admin, m).await? {
            Some(at) if !args.again => skipped.push(Skipped {
                msg_id: m.msg_id().to_owned(),
                topic: Some(message.topic),
                resent: format_time_ms(at),
            }),
            _ => messages.push(message),
        }
    }
    let mut done = Vec::new();
    if !messages.is_empty() {
        let producer =
            Producer::with_instance(admin.instance().clone(), ProducerConfig::new(RESEND_GROUP))
                .context("start producer")?;
        for message in messages {
            let topic = message.topic.clone();
            let result = producer.send(message).await;
            let result = match result {
                Ok(r) => r,
                Err(e) => {
                    producer.shutdown().await;
                    return Err(anyhow::Error::new(e).context(format!("re-send to {topic}")));
                }
            };
            done.push(Resent {
                msg_id: result.msg_id,
                topic,
                broker: result.queue.broker_name,
                queue_id: result.queue.queue_id,
                queue_offset: result.queue_offset,
            });
        }
        producer.shutdown().await;
    }
    let report = ResendReport {
        group: args.group.clone(),
        resent: done,
        skipped,
    };
    if args.client.json {
        return print_json(&report);
    }
    let mut table = Table::new(&["MSG ID", "TOPIC", "QUEUE", ">OFFSET"]);
    for r in &report.resent {
        table.row(vec![
            r.msg_id.clone(),
            r.topic.clone(),
            format!("{}:{}", r.broker, r.queue_id),
            r.queue_offset.to_string(),
        ]);
    }
    if !report.resent.is_empty() {
        table.print()?;
    }
    let n = report.resent.len();
    let mut text = format!(
        "Re-sent {n} dead letter{} of group {}.\n",
        if n == 1 { "" } else { "s" },
        args.group
    );
    if !report.skipped.is_empty() {
        let k = report.skipped.len();
        let which: Vec<String> = report
            .skipped
            .iter()
            .map(|s| format!("{} (re-sent {})", s.msg_id, s.resent))
            .collect();
        text.push_str(&format!(
            "Skipped {k} dead letter{} re-sent before: {}; --again sends {} once more.\n",
            if k == 1 { "" } else { "s" },
            which.join(", "),
            if k == 1 { "it" } else { "them" }
        ));
    }
    crate::output::print_text(&text)
}

#[derive(Debug, Serialize)]
struct GroupConfigRow {
    broker: String,
    retry_max_times: i32,
    retry_queue_nums: i32,
    consume_enable: bool,
    consume_broadcast_enable: bool,
}

/// `tributary group config G [--retry-max-times N]`.
pub async fn group_config(admin: &Admin, args: &GroupConfigArgs) -> Result<()> {
    let target = broker_target(&args.target);
    if let Some(n) = args.retry_max_times {
        for (addr, mut config) in admin
            .group_configs(&args.group, &target)
            .await
            .with_context(|| format!("read the configuration of group {}", args.group))?
        {
            config.retry_max_times = n;
            admin
                .update_group_config(&config, &TopicTarget::Broker(addr.clone()))
                .await
                .with_context(|| format!("configure group {} on {addr}", args.group))?;
        }
    }
    let rows: Vec<GroupConfigRow> = admin
        .group_configs(&args.group, &target)
        .await
        .with_context(|| format!("read the configuration of group {}", args.group))?
        .into_iter()
        .map(|(broker, c)| GroupConfigRow {
            broker,
            retry_max_times: c.retry_max_times,
            retry_queue_nums: c.retry_queue_nums,
            consume_enable: c.consume_enable,
            consume_broadcast_enable: c.consume_broadcast_enable,
        })
        .collect();
    if args.client.json {
        return print_json(&rows);
    }
    let mut table = Table::new(&[
        "BROKER",
        ">RETRY MAX TIMES",
        ">RETRY QUEUES",
        "CONSUME",
        "BROADCAST",
    ]);
    for r in &rows {
        table.row(vec![
            r.broker.clone(),
            r.retry_max_times.to_string(),
            r.retry_queue_nums.to_string(),
            r.consume_enable.to_string(),
            r.consume_broadcast_enable.to_string(),
        ]);
    }
    crate::output::print_text(&format!("Group {}\n", args.group))?;
    table.print()
}
