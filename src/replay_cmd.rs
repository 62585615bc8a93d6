//! `tributary group reset` and `tributary message show|query|get`: replay and message lookups
//! with tributary-client's [`Admin`] (see `tributary_client::replay`), so they work against any
//! RocketMQ-compatible cluster.

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tributary_client::producer::validate_topic;
use tributary_client::{Admin, ClientError, MessageExt, MessageQueue, ResetTarget};

use crate::admin_cmd::with_admin;
use crate::cli::{
    GroupResetArgs, MessageCommand, MessageGetArgs, MessageQueryArgs, MessageShowArgs,
};
use crate::output::{
    JsonMessage, Table, format_time_ms, hex, print_json, print_text, printable, topic_error,
};
use crate::time_arg::{TIME_FORMS, TimePoint, now_ms, parse_point, time_option};

/// Width of the labels of a message's details.
const LABEL_WIDTH: usize = 16;
/// Bytes per line of a hex dump.
const HEX_LINE: usize = 16;

/// Runs a `message` command.
pub fn message(command: MessageCommand) -> Result<()> {
    crate::runtime()?.block_on(async move {
        match command {
            MessageCommand::Show(args) => {
                with_admin(&args.client, async |admin| show(admin, &args).await).await
            }
            MessageCommand::Query(args) => {
                with_admin(&args.client, async |admin| query(admin, &args).await).await
            }
            MessageCommand::Get(args) => {
                with_admin(&args.client, async |admin| get(admin, &args).await).await
            }
        }
    })
}

// ---- group reset ----------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct JsonReset<'a> {
    group: &'a str,
    topic: &'a str,
    to: &'a str,
    /// The time reset to (ms), absent for `first` and `last`.
    timestamp: Option<i64>,
    time: Option<String>,
    queues: Vec<JsonQueueReset<'a>>,
    online_clients: usize,
}

#[derive(Debug, Serialize)]
struct JsonQueueReset<'a> {
    broker: &'a str,
    queue_id: i32,
    offset: i64,
}

/// `tributary group reset`.
pub async fn reset(admin: &Admin, args: &GroupResetArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if args.group.trim().is_empty() {
        bail!("--group must not be empty");
    }
    let point = parse_point(&args.to, now_ms()).ok_or_else(|| {
        anyhow::anyhow!(
            "invalid --to {:?}: expected `first`, `last`, {TIME_FORMS}",
            args.to.trim()
        )
    })?;
    let (target, timestamp) = match point {
        TimePoint::First => (ResetTarget::First, None),
        TimePoint::Last => (ResetTarget::Last, None),
        TimePoint::At(ms) => (ResetTarget::Time(ms), Some(ms)),
    };
    let queues = match admin.reset_offsets(&args.group, &args.topic, target).await {
        Ok(q) => q,
        Err(e @ ClientError::NoRoute { .. }) => {
            return Err(topic_error(&args.topic, &args.client.namesrv, e));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "reset the offsets of group {} on topic {}",
                args.group, args.topic
            )));
        }
    };
    let online = admin
        .consumer_connections(&args.group)
        .await
        .map_or(0, |c| c.connections.len());
    if args.client.json {
        return print_json(&JsonReset {
            group: &args.group,
            topic: &args.topic,
            to: args.to.trim(),
            timestamp,
            time: timestamp.map(format_time_ms),
            queues: queues
                .iter()
                .map(|q| JsonQueueReset {
                    broker: &q.queue.broker_name,
                    queue_id: q.queue.queue_id,
                    offset: q.offset,
                })
                .collect(),
            online_clients: online,
        });
    }
    let whereto = match target {
        ResetTarget::First => "the oldest stored message of each queue".to_owned(),
        ResetTarget::Last => "the end of each queue".to_owned(),
        ResetTarget::Time(ms) => format!(
            "{} (the first message of each queue stored at or after it)",
            format_time_ms(ms)
        ),
    };
    let mut text = format!(
        "Reset group {} on topic {} to {whereto}.\n",
        args.group, args.topic
    );
    let mut table = Table::new(&["BROKER", ">QUEUE", ">OFFSET"]);
    for q in &queues {
        table.row(vec![
            q.queue.broker_name.clone(),
            q.queue.queue_id.to_string(),
            q.offset.to_string(),
        ]);
    }
    text.push_str(&table.render());
    text.push_str(&match online {
        0 => format!(
            "No member of group {} is online; it resumes from these offsets when one starts.\n",
            args.group
        ),
        n => format!(
            "{n} online client{} of group {} {} told to pull again from these offsets.\n",
            if n == 1 { "" } else { "s" },
            args.group,
            if n == 1 { "was" } else { "were" }
        ),
    });
    print_text(&text)
}

// ---- message show ---------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct JsonFound<'a> {
    msg_id: &'a str,
    messages: Vec<JsonMessage<'a>>,
}

async fn show(admin: &Admin, args: &MessageShowArgs) -> Result<()> {
    let id = args.msg_id.trim();
    if id.is_empty() {
        bail!("the message id must not be empty");
    }
    if let Some(topic) = &args.topic {
        validate_topic(topic).context("check --topic")?;
    }
    let found = match admin.find_message(id, args.topic.as_deref()).await {
        Ok(found) => found,
        Err(e @ ClientError::NoRoute { .. }) => {
            let topic = args.topic.as_deref().unwrap_or_default();
            return Err(topic_error(topic, &args.client.namesrv, e));
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("look up message {id}"))),
    };
    if found.is_empty() {
        match &args.topic {
            Some(topic) => bail!(
                "no message with id {id} in topic {topic} (neither an offset message id of a known broker nor a unique id in the topic's index)"
            ),
            None => bail!(
                "no message with id {id} in any topic (neither an offset message id of a known broker nor a unique id in a topic's index)"
            ),
        }
    }
    if args.client.json {
        return print_json(&JsonFound {
            msg_id: id,
            messages: found.iter().map(JsonMessage::new).collect(),
        });
    }
    let blocks: Vec<String> = found.iter().map(details).collect();
    let mut text = blocks.join("\n");
    if found.len() > 1 {
        text.push_str(&format!(
            "\n{} stored copies of message {id} (delayed or retried messages are stored more than once).\n",
            found.len()
        ));
    }
    print_text(&text)
}

/// A message's fields, properties and body, for a person.
fn details(m: &MessageExt) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        out.push_str(&format!("{label:<LABEL_WIDTH$}{value}\n"));
    };
    line("Message", m.msg_id().to_owned());
    line("Topic", m.topic.clone());
    let broker = if m.broker_name.is_empty() {
        m.store_host.to_string()
    } else {
        m.broker_name.clone()
    };
    line(
        "Queue",
        format!("{broker}:{}, offset {}", m.queue_id, m.queue_offset),
    );
    line("Offset msg id", m.offset_msg_id.clone());
    line("Tags", printable(m.tags().unwrap_or("-").as_bytes()));
    let keys = m.keys().join(" ");
    line(
        "Keys",
        if keys.is_empty() {
            "-".to_owned()
        } else {
            printable(keys.as_bytes())
        },
    );
    line(
        "Born",
        format!("{} at {}", format_time_ms(m.born_timestamp), m.born_host),
    );
    line(
        "Stored",
        format!(
            "{} on {} (commit log offset {}, {} bytes)",
            format_time_ms(m.store_timestamp),
            m.store_host,
            m.commit_log_offset,
            m.store_size
        ),
    );
    line("Reconsumed", format!("{} times", m.reconsume_times));
    out.push_str("Properties\n");
    let mut table = Table::new(&["NAME", "VALUE"]);
    for (name, value) in &m.properties {
        table.row(vec![
            printable(name.as_bytes()),
            printable(value.as_bytes()),
        ]);
    }
    for row in table.render().lines() {
        out.push_str("  ");
        out.push_str(row);
        out.push('\n');
    }
    out.push_str(&format!("Body ({} bytes)\n", m.body.len()));
    match std::str::from_utf8(&m.body) {
        Ok(text) => {
            out.push_str(text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.push('\n');
            }
        }
        Err(_) => out.push_str(&hex_dump(&m.body)),
    }
    out
}

/// `00000000  68 65 6c 6c 6f ff                                |hello.|` lines.
fn hex_dump(bytes: &[u8]) -> String {
    let mut out = String::new();
    for (i, chunk) in bytes.chunks(HEX_LINE).enumerate() {
        let hexes: Vec<String> = chunk.iter().map(|b| hex(&[*b])).collect();
        let ascii: String = chunk
            .iter()
            .map(|b| {
                if b.is_ascii_graphic() || *b == b' ' {
                    char::from(*b)
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<width$}  |{ascii}|\n",
            i * HEX_LINE,
            hexes.join(" "),
            width = HEX_LINE * 3 - 1
        ));
    }
    out
}

// ---- message query --------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct JsonQuery<'a> {
    topic: &'a str,
    key: &'a str,
    begin: String,
    end: String,
    messages: Vec<JsonMessage<'a>>,
}

async fn query(admin: &Admin, args: &MessageQueryArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    if args.key.trim().is_empty() {
        bail!("--key must not be empty");
    }
    let now = now_ms();
    let begin = match &args.begin {
        Some(text) => time_option("--begin", text, now)?,
        None => 0,
    };
    let end = match &args.end {
        Some(text) => time_option("--end", text, now)?,
        None => now,
    };
    if begin > end {
        bail!(
            "--begin ({}) is after --end ({})",
            format_time_ms(begin),
            format_time_ms(end)
        );
    }
    let max = usize::try_from(args.max_messages).unwrap_or(usize::MAX);
    let found = match admin
        .query_messages_by_key(&args.topic, &args.key, begin, end, max)
        .await
    {
        Ok(found) => found,
        Err(e @ ClientError::NoRoute { .. }) => {
            return Err(topic_error(&args.topic, &args.client.namesrv, e));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e)
                .context(format!("query topic {} for key {}", args.topic, args.key)));
        }
    };
    if args.client.json {
        return print_json(&JsonQuery {
            topic: &args.topic,
            key: &args.key,
            begin: format_time_ms(begin),
            end: format_time_ms(end),
            messages: found.iter().map(JsonMessage::new).collect(),
        });
    }
    let range = format!(
        "stored between {} and {}",
        format_time_ms(begin),
        format_time_ms(end)
    );
    if found.is_empty() {
        return print_text(&format!(
            "No message of topic {} with key {} {range}.\n",
            args.topic, args.key
        ));
    }
    let mut table = Table::new(&["STORED", "QUEUE", ">OFFSET", "MSG ID", "TAGS", "BODY"]);
    for m in &found {
        table.row(vec![
            format_time_ms(m.store_timestamp),
            format!("{}:{}", m.broker_name, m.queue_id),
            m.queue_offset.to_string(),
            m.msg_id().to_owned(),
            printable(m.tags().unwrap_or("-").as_bytes()),
            printable(&m.body),
        ]);
    }
    let mut text = table.render();
    text.push_str(&format!(
        "{} message{} of topic {} with key {} {range}.\n",
        found.len(),
        if found.len() == 1 { "" } else { "s" },
        args.topic,
        args.key
    ));
    print_text(&text)
}

// ---- message get ----------------------------------------------------------------------------

async fn get(admin: &Admin, args: &MessageGetArgs) -> Result<()> {
    validate_topic(&args.topic).context("check --topic")?;
    let route = admin
        .topic_route(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, &args.client.namesrv, e))?;
    let brokers: Vec<&str> = route
        .queue_datas
        .iter()
        .map(|q| q.broker_name.as_str())
        .collect();
    let broker = match (&args.broker, brokers.as_slice()) {
        (Some(b), _) if brokers.contains(&b.as_str()) => b.clone(),
        (Some(b), _) => bail!(
            "broker {b} does not carry topic {} (it is on {})",
            args.topic,
            brokers.join(", ")
        ),
        (None, [one]) => (*one).to_owned(),
        (None, _) => bail!(
            "topic {} is on several brokers ({}): pass --broker NAME",
            args.topic,
            brokers.join(", ")
        ),
    };
    let read_queues = route
        .queue_datas
        .iter()
        .find(|q| q.broker_name == broker)
        .map_or(0, |q| q.read_queue_nums);
    if args.queue >= read_queues {
        bail!(
            "topic {} has {read_queues} readable queues on {broker}: --queue must be below {read_queues}",
            args.topic
        );
    }
    let mq = MessageQueue {
        topic: args.topic.clone(),
        broker_name: broker.clone(),
        queue_id: args.queue,
    };
    let what = format!("read {}:{} of topic {}", broker, args.queue, args.topic);
    let Some(m) = admin
        .message_at(&mq, args.offset)
        .await
        .context(what.clone())?
    else {
        let min = admin
            .instance()
            .min_offset(&mq)
            .await
            .context(what.clone())?;
        let max = admin.instance().max_offset(&mq).await.context(what)?;
        if min >= max {
            bail!(
                "queue {broker}:{} of topic {} holds no message (its next offset is {max})",
                args.queue,
                args.topic
            );
        }
        bail!(
            "queue {broker}:{} of topic {} has no message at offset {}: it holds offsets {min} to {}",
            args.queue,
            args.topic,
            args.offset,
            max - 1
        );
    };
    if args.client.json {
        return print_json(&JsonMessage::new(&m));
    }
    print_text(&details(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_dumps_align() {
        assert_eq!(
            hex_dump(b"hello\xff"),
            format!("00000000  68 65 6c 6c 6f ff{}  |hello.|\n", " ".repeat(30))
        );
        let two = hex_dump(&[b'a'; 17]);
        assert_eq!(two.lines().count(), 2);
        assert!(
            two.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("00000010  61 "))
        );
        assert_eq!(hex_dump(b""), "");
    }
}
