//! Command-line arguments. Kept apart from the code that runs the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tributary: a RocketMQ-compatible message log with streaming SQL and Connect, in one binary.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TRIBUTARY_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything on this machine: a NameServer (:9876), a broker (:10911) with its
    /// message store (data under ./tributary-data by default), and the HTTP endpoint with
    /// /metrics and /health (:8080).
    Server(ServerArgs),
    /// Run a NameServer only (cluster mode): brokers register here, clients ask it for routes.
    Namesrv(NamesrvArgs),
    /// Run a broker only (cluster mode), registering with the NameServers given by --namesrv
    /// or NAMESRV_ADDR.
    Broker(ServerArgs),
    /// Inspect and exercise a store data directory (the server must not be running on it).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Create, list, describe and delete topics.
    #[command(subcommand, long_about = TOPIC_HELP)]
    Topic(TopicCommand),
    /// Send each line of stdin as one message to a topic.
    #[command(long_about = PRODUCE_HELP)]
    Produce(ProduceArgs),
    /// Print the messages of a topic as a member of a consumer group, committing its offsets.
    #[command(long_about = CONSUME_HELP)]
    Consume(ConsumeArgs),
    /// Send each line of stdin as a request to a topic and print the replies
    /// (request-reply).
    #[command(long_about = REQUEST_HELP)]
    Request(RequestArgs),
    /// Answer the requests sent to a topic, as a member of a consumer group: echo each
    /// request's body, or run a command on it.
    #[command(long_about = REPLY_HELP)]
    Reply(ReplyArgs),
    /// List consumer groups; show a group's per-queue offsets, lag and online clients; reset
    /// a group's offsets to a point in time (replay).
    #[command(subcommand, long_about = GROUP_HELP)]
    Group(GroupCommand),
    /// Look stored messages up by id, by key and time range, or by queue offset, and print
    /// their body and properties.
    #[command(subcommand, long_about = MESSAGE_HELP)]
    Message(MessageCommand),
    /// List a consumer group's dead letters (`%DLQ%<group>`) and send them again to the topic
    /// they came from.
    #[command(subcommand, long_about = DLQ_HELP)]
    Dlq(DlqCommand),
    /// Measure performance on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print the commented default configuration file.
    DefaultConfig,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file (see `tributary default-config`).
    #[arg(long, short = 'c', env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory; overrides `data_dir` in the file.
    #[arg(long, env = "TRIBUTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address for /metrics and /health; overrides `http.listen` in the file.
    #[arg(long)]
    pub http_listen: Option<std::net::SocketAddr>,
    /// NameServer listen address; overrides `namesrv.listen` (`server` only).
    #[arg(long)]
    pub namesrv_listen: Option<std::net::SocketAddr>,
    /// Broker listen address; overrides `broker.listen`.
    #[arg(long)]
    pub broker_listen: Option<std::net::SocketAddr>,
    /// NameServers the broker registers with, `host:port` separated by `;`; overrides
    /// `broker.namesrv_addr`. `server` registers with its own NameServer as well.
    #[arg(long, env = "NAMESRV_ADDR")]
    pub namesrv: Option<String>,
}

#[derive(Debug, Args)]
pub struct NamesrvArgs {
    /// TOML configuration file; only its `[namesrv]` section is used.
    #[arg(long, short = 'c', env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address; overrides `namesrv.listen`.
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// HTTP listen address for /metrics and /health.
    #[arg(long, default_value = "0.0.0.0:9877")]
    pub http_listen: std::net::SocketAddr,
}

// ---- client commands: topic, produce, consume, group ----------------------------------------

const TOPIC_HELP: &str = "Create, list, describe and delete topics.

Examples:
  tributary topic create orders --queues 4        # on every master broker
  tributary topic list
  tributary topic describe orders                 # route, queues, offsets, last write
  tributary topic delete orders
  NAMESRV_ADDR='ns1:9876;ns2:9876' tributary topic list --json";

const PRODUCE_HELP: &str = "Send each line of stdin as one message to a topic.

Every line (without its line ending) is one message body; empty lines are skipped. For every
message the command prints its message id, queue and offset (only a summary with --quiet).
It stops at the first message the broker does not take and exits non-zero, naming the line
and the broker's answer. Topics that do not exist are created by brokers that allow
auto-creation; `tributary topic create` creates them explicitly.

With --transaction each message is a transaction of its own: sent as a half message (stored,
invisible), then ended as asked. `commit` makes it visible and `rollback` drops it, each
confirmed by the broker before the message is printed. `unknown` leaves it pending: the broker
then asks a live producer of the group (CHECK_TRANSACTION_STATE) after its transaction
timeout. With --check-answer the command stays up as that producer, answers the checks of its
own messages, and exits once each was answered (or fails after --check-timeout); without it
the command exits at once, and the broker discards the messages after its last check unless
another producer of the group answers.

Examples:
  echo hello | tributary produce --topic orders
  seq 1 1000 | tributary produce --topic orders --tag created --batch 100 --quiet
  printf 'order-1\\tpaid\\norder-2\\tshipped\\n' | tributary produce --topic orders --key-from-line
  echo paid | tributary produce --topic orders --transaction commit
  echo paid | tributary produce --topic orders --transaction unknown --check-answer commit";

const REQUEST_HELP: &str = "Send each line of stdin as a request to a topic and print the replies.

Every non-empty line is one request (RocketMQ request-reply: CORRELATION_ID, REPLY_TO_CLIENT
and TTL are set), sent in line order, each waiting for its reply up to --timeout. Each reply's
body is printed on a line of its own (with --json, one JSON object per reply). The command stops
at the first request that fails or gets no reply in time, and exits non-zero naming the line. A
reply from `tributary reply --exec` whose command failed carries its exit status
(EXIT_CODE): the body is printed, then the command fails naming the status.

A responder is anything that consumes the topic and answers with RocketMQ's reply message: a
Java consumer using MessageUtil.createReplyMessage, the Rust client's Producer::reply, or
`tributary reply`.

Examples:
  echo ping | tributary request --topic svc --timeout 5s
  printf 'a\nb\n' | tributary request --topic svc --json";

const REPLY_HELP: &str = "Answer the requests sent to a topic.

Consumes the topic as a member of --group, one request at a time, and sends each its reply
(SEND_REPLY_MESSAGE_V2 through the cluster's reply topic, which the broker pushes to the
requester). The reply's body is the request's body (an echo), or, with --exec, what a shell
command prints: `sh -c CMD` runs with the request's body on stdin and TRIBUTARY_TOPIC,
TRIBUTARY_MSG_ID, TRIBUTARY_CORRELATION_ID and TRIBUTARY_TAGS in its environment; its exit
status goes with the reply as the property EXIT_CODE. Messages that are not requests are
skipped. One line is printed per message handled. A reply whose requester is gone (it timed out
or exited) is reported and the command goes on; run several with the same group to share the
load.

Examples:
  tributary reply --topic svc --group svc-echo
  tributary reply --topic svc --group svc-upper --exec 'tr a-z A-Z'
  tributary reply --topic svc --group svc-wc --exec 'wc -c' --max-messages 10";

const CONSUME_HELP: &str = "Print the messages of a topic as a member of a consumer group.

The command joins the group like any consumer (queues are shared with the group's other
members) and commits the group's offsets to the broker as messages are printed, and when it
stops: on Ctrl-C, after --max-messages, or after --idle-timeout seconds without a message.
Each queue is printed in offset order: the consumer locks the queues it reads on the broker, so
after a member of the group was killed (rather than stopped with Ctrl-C) its queues come free
when its locks expire, within a minute.

--from applies to queues the group has no committed offset for (a new group); a group that
consumed before resumes where it stopped, as every RocketMQ consumer does. It is `first` (the
oldest stored message), `last` (only messages sent from now on), an RFC 3339 time
(2024-05-01T12:00:00Z) or a time relative to now (-30s, -15m, -1h, -2d).

Human output has one line per message: queue, offset, message id, tags, keys and the body as
UTF-8 (invalid bytes replaced, control characters escaped). With --json every message is one
JSON object on its own line.

Examples:
  tributary consume --topic orders --group audit --from first
  tributary consume --topic orders --group audit --tags 'created || paid' --max-messages 10
  tributary consume --topic orders --group audit --from -1h --idle-timeout 5 --json | jq .body";

const GROUP_HELP: &str = "List consumer groups, show their progress, reset their offsets.

`group list` shows every group the brokers know (online, or with committed offsets), its
online clients and its total lag. `group describe` shows, per queue of every topic the group
reads, the broker offset (end of the queue), the group's committed offset and the lag between
them, then the group's online clients and their subscriptions. `group reset` moves the
group's offsets on a topic to a point in time, to consume again from there (replay).

Examples:
  tributary group list
  tributary group describe audit
  tributary group describe audit --json | jq .total_lag
  tributary group reset --group audit --topic orders --to -1h";

const GROUP_RESET_HELP: &str = "Reset a consumer group's offsets on a topic to a point in time.

Every queue of the topic, on every broker that carries it, is moved to its first message stored
at or after the time (`--to first`: the oldest stored message; `--to last`: the end, skipping
everything not yet consumed). The group then consumes again from there: messages it already
consumed are delivered again (replay), or messages are skipped when the point is later than
where it was. Members of the group that are online are told by the broker to drop what they
have buffered and pull from the new offsets at once; a group with no member online resumes
there when one starts.

--to is `first`, `last`, an RFC 3339 time (2026-11-21T10:00:00Z), a local time without zone
(2026-11-21T10:00:00 or '2026-11-21 10:00'), milliseconds since the epoch, or a time relative
to now (-30s, -15m, -1h30m, -2d).

Examples:
  tributary group reset --group audit --topic orders --to -1h
  tributary group reset --group audit --topic orders --to 2026-11-21T10:00:00
  tributary group reset --group audit --topic orders --to last --json";

const MESSAGE_HELP: &str = "Look stored messages up and print their body and properties.

`message show ID` finds a message by the id producers print (its unique id, UNIQ_KEY) or by its
offset message id (store address and commit log offset, what brokers return): an offset id is
read directly from its broker; a unique id is looked up in the index of --topic, or of every
topic when --topic is not given (slower). Every stored copy is printed (a message that was
delayed or retried is stored more than once). `message query` lists the messages of a topic
with a key (KEYS), stored in a time range (--begin, --end; all time by default). `message get`
prints the message at an offset of one queue.

Times are RFC 3339, local times without zone, epoch milliseconds, or relative (-1h).

Examples:
  tributary message show 7F0000014675ECEBBFDF697521E00000
  tributary message show 7F0000014675ECEBBFDF697521E00000 --topic orders --json
  tributary message query --topic orders --key order-1 --begin -2d
  tributary message get --topic orders --queue 0 --offset 42";

const TOPIC_CREATE_HELP: &str = "Create or update a topic.

By default the topic is created on every master broker the NameServers know; --cluster limits
that to the masters of one cluster and --broker to one broker address. Queue counts are per
broker; an existing topic takes the new counts and permissions. Producers write to the
writable queues, consumers read the readable ones.

Examples:
  tributary topic create orders                          # 8 queues on every master
  tributary topic create orders --queues 16 --cluster DefaultCluster
  tributary topic create audit --read-queues 4 --write-queues 2 --perm rw --order
  tributary topic create archive --perm r --broker 10.0.0.5:10911   # stop writes there";

const TOPIC_DESCRIBE_HELP: &str = "Show a topic's route and the state of its queues.

The route lists every broker that carries the topic with its cluster, master address, queue
counts and permissions. Then every readable queue: the smallest offset still stored, the
offset after its last message, the number of messages between them, and the store time of its
last message (UTC). An unknown topic is an error.

Examples:
  tributary topic describe orders
  tributary topic describe orders --json | jq '.queues[] | {queue_id, max_offset}'";

const GROUP_DESCRIBE_HELP: &str = "Show a consumer group's progress and members.

For every queue of the topics the group has offsets on or subscribes to (its retry topic
%RETRY%<group> included): the broker offset (after the queue's last message), the group's
committed offset (`-` when it has none) and the lag between them. Then the online clients
with their addresses, and what they subscribe to. A group no broker knows is an error.

Examples:
  tributary group describe audit
  tributary group describe audit --json | jq '.total_lag'";

const DLQ_HELP: &str = "List and re-send a consumer group's dead letters.

A message a consumer could not consume goes back to the broker, which delivers it again
through the group's retry topic %RETRY%<group> with growing delays (10 s, 30 s, 1 m, … 2 h);
after the group's maximum number of retries (16 by default) it goes to the dead-letter topic
%DLQ%<group>, where no consumer reads it. `dlq list` prints those messages with the topic they
came from and how often they were consumed. `dlq resend` sends them again, as new messages
with the same body, tags, keys and properties, to the topic they came from, where every
consumer group sees them again. A dead-letter topic is a log: re-sent messages stay in it.
A dead letter counts as re-sent once its topic holds a copy of it (same message id) stored
after it: `dlq list` shows when, and `dlq resend` skips it unless --again is given, so running
`dlq resend --all` twice sends each letter once. A message that fails again and dies again is a
new dead letter.

Examples:
  tributary dlq list --group audit
  tributary dlq list --group audit --json | jq '.messages[].msg_id'
  tributary dlq resend --group audit --msg-id 7F0000014675ECEBBFDF697521E00000
  tributary dlq resend --group audit --all
  tributary dlq resend --group audit --msg-id 7F0000014675ECEBBFDF697521E00000 --again";

/// `NAME=VALUE` of `produce --property`.
/// `--delay`: one delay with its unit, as in `broker.delay_levels`.
fn parse_delay(text: &str) -> Result<std::time::Duration, String> {
    match tributary_broker::schedule::parse_delay_levels(text)?.as_slice() {
        [ms] => Ok(std::time::Duration::from_millis(ms.unsigned_abs())),
        _ => Err(format!("{text:?} is not one delay such as 90s")),
    }
}

/// A timeout: one duration with a unit (`500ms`, `3s`, `1m`), more than zero.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    match parse_delay(text)? {
        d if d.is_zero() => Err("the timeout must be more than zero".into()),
        d => Ok(d),
    }
}

fn parse_property(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {text:?}")),
    }
}

/// Where the NameServers are and how to print; shared by the client commands.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// NameServer addresses, `host:port` separated by `;`.
    #[arg(long, env = "NAMESRV_ADDR", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Print one JSON document instead of tables (`consume`: one JSON object per message and
    /// line).
    #[arg(long)]
    pub json: bool,
}

/// The brokers a command acts on: every master broker the NameServers know (neither option),
/// the masters of one cluster, or one broker.
#[derive(Debug, Args)]
pub struct BrokerTargetArgs {
    /// Only the master brokers of this cluster.
    #[arg(long, conflicts_with = "broker")]
    pub cluster: Option<String>,
    /// Only this broker (`host:port`).
    #[arg(long)]
    pub broker: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (or update its queues and permissions) on every master broker of the
    /// NameServers' clusters, or of one cluster, or on one broker.
    #[command(long_about = TOPIC_CREATE_HELP)]
    Create(TopicCreateArgs),
    /// List every topic the NameServers know.
    List(TopicListArgs),
    /// Show a topic's route (brokers, queue counts, permissions) and, per queue, the min and
    /// max offset and the time of the last message.
    #[command(long_about = TOPIC_DESCRIBE_HELP)]
    Describe(TopicNameArgs),
    /// Delete a topic from the brokers that carry it and from every NameServer.
    Delete(TopicNameArgs),
}

/// Topic permissions.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PermArg {
    /// Readable and writable.
    Rw,
    /// Read only.
    R,
    /// Write only.
    W,
}

#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    /// Topic name: up to 127 letters, digits, `_`, `-`, `%` or `|`.
    pub topic: String,
    /// Queues per broker, read and write.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=16384))]
    pub queues: i32,
    /// Readable queues per broker (default: --queues).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=16384))]
    pub read_queues: Option<i32>,
    /// Writable queues per broker (default: --queues).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=16384))]
    pub write_queues: Option<i32>,
    /// Permissions.
    #[arg(long, value_enum, default_value_t = PermArg::Rw)]
    pub perm: PermArg,
    /// Mark the topic as ordered.
    #[arg(long)]
    pub order: bool,
    #[command(flatten)]
    pub target: BrokerTargetArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TopicListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct TopicNameArgs {
    /// Topic name.
    pub topic: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic to send to.
    #[arg(long)]
    pub topic: String,
    /// Tag of every message.
    #[arg(long)]
    pub tag: Option<String>,
    /// Key of every message (several keys: separated by spaces).
    #[arg(long, conflicts_with = "key_from_line")]
    pub key: Option<String>,
    /// A user property of every message, `NAME=VALUE`; repeat for several. Consumers can
    /// select messages by property with SQL92 filters (`consume --sql`).
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// Deliver every message after a delay level (property DELAY; 1 = 1 s … 18 = 2 h with the
    /// brokers' default levels). Not with --batch.
    #[arg(long, conflicts_with = "delay", value_parser = clap::value_parser!(i32).range(1..=256))]
    pub delay_level: Option<i32>,
    /// Deliver every message this long after the broker stores it (TIMER_DELAY_MS): a number
    /// with a unit ms, s, m, h or d, such as 90s. Not with --batch.
    #[arg(long, value_parser = parse_delay)]
    pub delay: Option<std::time::Duration>,
    /// Take each message's key from its line: `KEY<separator>BODY` (a line without the
    /// separator has no key).
    #[arg(long)]
    pub key_from_line: bool,
    /// Ordered messages: send each message to the queue its key selects (the key's Java hash
    /// modulo the queue count, as RocketMQ's SelectMessageQueueByHash), so that the messages
    /// of one key are stored, and consumed, in line order. Needs --key or --key-from-line.
    #[arg(long, conflicts_with_all = ["batch", "transaction"])]
    pub ordered: bool,
    /// Separator of key and body for --key-from-line.
    #[arg(long, default_value = "\t", requires = "key_from_line")]
    pub key_separator: String,
    /// Messages per request (SEND_BATCH_MESSAGE above 1; a batch goes to one queue).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub batch: u32,
    /// Print only a summary, not a line per message.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Send each message as a transaction and end it: `commit`, `rollback`, or `unknown`
    /// (left to the broker's checks). Not with --batch or a delay.
    #[arg(long, value_enum, conflicts_with_all = ["delay", "delay_level"])]
    pub transaction: Option<TransactionArg>,
    /// With `--transaction unknown`: answer the broker's checks of these messages with this
    /// state, staying up until each was answered.
    #[arg(long, value_enum)]
    pub check_answer: Option<CheckAnswerArg>,
    /// Longest wait for the broker's checks with --check-answer, seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
    pub check_timeout: u64,
    /// Producer group the messages are sent as (the broker checks transactions with a live
    /// producer of this group).
    #[arg(long, default_value = "tributary-cli-producer")]
    pub producer_group: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How `produce --transaction` ends each transaction.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TransactionArg {
    /// Make the message visible.
    Commit,
    /// Drop the message.
    Rollback,
    /// Leave it pending for the broker's checks.
    Unknown,
}

/// The answer `produce --check-answer` gives the broker's transaction checks.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CheckAnswerArg {
    /// Make the message visible.
    Commit,
    /// Drop the message.
    Rollback,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Topic to send the requests to.
    #[arg(long)]
    pub topic: String,
    /// How long each request waits for its reply: a number with a unit ms, s, m or h.
    #[arg(long, default_value = "3s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// Tag of every request.
    #[arg(long)]
    pub tag: Option<String>,
    /// Key of every request (several keys: separated by spaces).
    #[arg(long)]
    pub key: Option<String>,
    /// A user property of every request, `NAME=VALUE`; repeat for several.
    #[arg(long = "property", value_name = "NAME=VALUE", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// Producer group the requests are sent as.
    #[arg(long, default_value = "tributary-cli-requester")]
    pub producer_group: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// Topic whose requests are answered.
    #[arg(long)]
    pub topic: String,
    /// Consumer group: members share the topic's queues, and its committed offsets say where
    /// to resume.
    #[arg(long)]
    pub group: String,
    /// Shell command producing each reply (`sh -c`): the request's body on stdin, the reply's
    /// body from stdout. Without it, each request's body is echoed.
    #[arg(long)]
    pub exec: Option<String>,
    /// Longest run of --exec for one request, seconds; a command still running then is
    /// killed and the reply carries EXIT_CODE -1.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub exec_timeout: u64,
    #[command(flatten)]
    pub member: MemberArgs,
    /// Producer group the replies are sent as.
    #[arg(long, default_value = "tributary-cli-replier")]
    pub producer_group: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Consumer group: its committed offsets say where to resume, and it shares the queues
    /// with the group's other members.
    #[arg(long)]
    pub group: String,
    /// Broadcasting: get every message of the topic, whatever the group's other members get,
    /// keeping this consumer's offsets in a local file instead of on the brokers (RocketMQ's
    /// BROADCASTING message model).
    #[arg(long)]
    pub broadcast: bool,
    /// Folder of the local offset files with --broadcast (`<DIR>/<group>/offsets.json`;
    /// default `~/.tributary/offsets`). A broadcasting consumer resumes from its file.
    #[arg(long, requires = "broadcast")]
    pub offset_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub member: MemberArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How a command joins its consumer group (`consume`, `reply`).
#[derive(Debug, Args)]
pub struct MemberArgs {
    /// Where a group with no committed offset starts: `first`, `last`, an RFC 3339 time or a
    /// relative time such as `-1h`, `-30m`, `-10s`, `-2d`.
    #[arg(long, default_value = "last", allow_hyphen_values = true)]
    pub from: String,
    /// Tag filter: `*` for all, or tags separated by `||` (`'TagA || TagB'`).
    #[arg(long, default_value = "*")]
    pub tags: String,
    /// SQL92 filter over message properties, evaluated by the broker, instead of --tags:
    /// `"a > 5 AND b = 'x'"`, `IS NULL`, `BETWEEN`, `IN`, `NOT`, `<>` (see the README).
    #[arg(long, conflicts_with = "tags")]
    pub sql: Option<String>,
    /// Stop after this many messages.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: Option<u64>,
    /// Stop after this many seconds without a message.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: Option<u64>,
}

impl MemberArgs {
    /// The subscription to `topic` of `--sql`, else `--tags`.
    pub fn subscription(&self, topic: &str) -> tributary_client::Subscription {
        match &self.sql {
            Some(sql) => tributary_client::Subscription::sql92(topic, sql),
            None => tributary_client::Subscription::tag(topic, &self.tags),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List the consumer groups the brokers know, with online clients and total lag.
    List(GroupListArgs),
    /// Show a group's per-queue broker offset, committed offset and lag, and its online
    /// clients.
    #[command(long_about = GROUP_DESCRIBE_HELP)]
    Describe(GroupDescribeArgs),
    /// Show a group's configuration on the brokers (retries before the dead-letter topic);
    /// with --retry-max-times, set it first.
    #[command(long_about = GROUP_CONFIG_HELP)]
    Config(GroupConfigArgs),
    /// Reset a group's offsets on a topic to a point in time (`--to -1h`, a time, `first`,
    /// `last`); online members pull again from there.
    #[command(long_about = GROUP_RESET_HELP)]
    Reset(GroupResetArgs),
}

#[derive(Debug, Args)]
pub struct GroupResetArgs {
    /// Consumer group.
    #[arg(long)]
    pub group: String,
    /// Topic whose queues are reset.
    #[arg(long)]
    pub topic: String,
    /// Where to: `first`, `last`, a time, or a time relative to now such as `-1h`.
    #[arg(long, allow_hyphen_values = true)]
    pub to: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Print a message by its id (unique id or offset message id).
    Show(MessageShowArgs),
    /// List a topic's messages with a key, stored in a time range.
    Query(MessageQueryArgs),
    /// Print the message at an offset of a queue.
    Get(MessageGetArgs),
}

#[derive(Debug, Args)]
pub struct MessageShowArgs {
    /// Message id: the unique id producers print, or an offset message id.
    pub msg_id: String,
    /// Topic to look a unique id up in (default: every topic).
    #[arg(long)]
    pub topic: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct MessageQueryArgs {
    /// Topic.
    #[arg(long)]
    pub topic: String,
    /// Message key (one of the keys the producer set).
    #[arg(long)]
    pub key: String,
    /// Stored at or after this time (default: any time).
    #[arg(long, allow_hyphen_values = true)]
    pub begin: Option<String>,
    /// Stored at or before this time (default: now).
    #[arg(long, allow_hyphen_values = true)]
    pub end: Option<String>,
    /// Print at most this many messages.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_messages: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct MessageGetArgs {
    /// Topic.
    #[arg(long)]
    pub topic: String,
    /// Queue id.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..))]
    pub queue: i32,
    /// Offset in the queue.
    #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
    pub offset: i64,
    /// Broker name of the queue (needed when several brokers carry the topic).
    #[arg(long)]
    pub broker: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct GroupListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct GroupDescribeArgs {
    /// Consumer group.
    pub group: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct GroupConfigArgs {
    /// Consumer group.
    pub group: String,
    /// Retries through %RETRY%<group> before a message goes to %DLQ%<group>, for consumers
    /// that do not send their own maximum.
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..=10000))]
    pub retry_max_times: Option<i32>,
    #[command(flatten)]
    pub target: BrokerTargetArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

const GROUP_CONFIG_HELP: &str = "Show or set a consumer group's configuration on the brokers.

Brokers keep per group a configuration (RocketMQ's subscription group config, as `mqadmin
updateSubGroup` sets it). Its `retryMaxTimes` is how often a message the group fails to consume
is redelivered through %RETRY%<group> before it goes to %DLQ%<group>, unless the consumer sends
its own maximum (Java and Tributary consumers send 16 unless configured otherwise). Without
--retry-max-times the command prints the configuration on every master broker; with it, it
sets the value first (on every master, or those of --cluster, or --broker).

Examples:
  tributary group config audit
  tributary group config audit --retry-max-times 3";

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Print the messages in a group's dead-letter topic, oldest first.
    List(DlqListArgs),
    /// Send dead letters again to the topic they came from.
    Resend(DlqResendArgs),
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// Consumer group.
    #[arg(long)]
    pub group: String,
    /// Print at most this many messages.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_messages: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["msg_id", "all"])))]
pub struct DlqResendArgs {
    /// Consumer group.
    #[arg(long)]
    pub group: String,
    /// Message id to re-send, as `dlq list` prints it (the producer's id), or the dead
    /// letter's offset message id; repeat for several.
    #[arg(long)]
    pub msg_id: Vec<String>,
    /// Re-send every message in the dead-letter topic.
    #[arg(long)]
    pub all: bool,
    /// Also re-send dead letters that were re-sent before (skipped otherwise).
    #[arg(long)]
    pub again: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum FlushArg {
    Async,
    Sync,
}

/// What drives the writers of `bench store`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DriverArg {
    /// One OS thread per writer, blocking in `Durable::wait`.
    Threads,
    /// One tokio task per writer on a small multi-threaded runtime, awaiting `Durable` (how the
    /// broker uses the store).
    Tokio,
}

#[derive(Debug, Args)]
pub struct StoreDirArgs {
    /// Store data directory (the `store` folder inside the server's data directory).
    #[arg(long, default_value = "./tributary-data/store")]
    pub store_dir: PathBuf,
    /// Commit log segment size in bytes (must match the directory's).
    #[arg(long, default_value_t = 1 << 30)]
    pub segment_bytes: u64,
}

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open the store (running recovery), check that consume queues and index agree with the
    /// commit log, and print a report. Exits non-zero when anything disagrees.
    Verify {
        #[command(flatten)]
        dir: StoreDirArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print records of the commit log from an offset.
    Dump {
        #[command(flatten)]
        dir: StoreDirArgs,
        /// Physical offset of the first record.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Records to print at most.
        #[arg(long, default_value_t = 20)]
        count: usize,
    },
    /// Append generated messages and print one line per acknowledged message:
    /// `ack <seq> <physical_offset> <queue_id> <queue_offset>`. Message `seq` has topic
    /// `--topic`, queue `seq % queues`, key `key-<seq>`, tag `tag-<seq % 4>`, and a body that is
    /// a pure function of `seq` and `--size` (see `tributary::workload::body`).
    Append {
        #[command(flatten)]
        dir: StoreDirArgs,
        #[arg(long, default_value = "TestTopic")]
        topic: String,
        #[arg(long, default_value_t = 4)]
        queues: i32,
        /// First sequence number.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Messages to append.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        /// Body size in bytes (at least 24).
        #[arg(long, default_value_t = 128)]
        size: usize,
        /// Concurrent writer threads.
        #[arg(long, default_value_t = 1)]
        writers: usize,
        #[arg(long, value_enum, default_value_t = FlushArg::Sync)]
        flush: FlushArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Append and read back 128 B, 1 KiB and 4 KiB messages with 1..64 writers, ASYNC and
    /// SYNC flush, and print msgs/s, MB/s and append latency percentiles beside this machine's
    /// sequential-write limit measured in the same run.
    Store(BenchStoreArgs),
    /// Send messages to a topic through the RocketMQ protocol (any RocketMQ-compatible
    /// broker; a NameServer address is all it needs) and print send TPS, MB/s and RT
    /// percentiles every few seconds and at the end.
    Produce(BenchProduceArgs),
    /// Consume a topic through the RocketMQ protocol and print consume TPS, MB/s and
    /// end-to-end latency (store time and born time to receipt).
    Consume(BenchConsumeArgs),
}

#[derive(Debug, Args)]
pub struct BenchNetArgs {
    /// NameServer addresses, `host:port` separated by `;`.
    #[arg(long, env = "NAMESRV_ADDR", default_value = "127.0.0.1:9876")]
    pub namesrv: String,
    /// Topic.
    #[arg(long, default_value = "BenchTopic")]
    pub topic: String,
    /// Run for this many seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Print a line every this many seconds.
    #[arg(long, default_value_t = 5)]
    pub report_interval: u64,
    /// Worker threads of the client's runtime. One is fastest when the client shares a
    /// small machine with the broker: every sender then wakes on the thread that read its
    /// response, instead of a second worker being woken to steal half of them. Raise it
    /// when the client has cores of its own.
    #[arg(long, default_value_t = 1)]
    pub runtime_threads: usize,
    /// Print the final result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchProduceArgs {
    #[command(flatten)]
    pub net: BenchNetArgs,
    /// Concurrent senders, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub threads: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Messages per request; above 1, SEND_BATCH_MESSAGE.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Create the topic with this many queues on every master broker first (0: do not).
    #[arg(long, default_value_t = 8)]
    pub queues: i32,
    /// Header serialization of the requests: `json` (what most clients send) or `rocketmq`
    /// (RocketMQ's binary header, `rocketmq.serialize.type=ROCKETMQ` in the Java client).
    #[arg(long, value_enum, default_value = "json")]
    pub serialize: SerializeArg,
    /// Also create this many extra topics of `--queues` queues each and spread sends over
    /// them all (to measure a broker holding many queues).
    #[arg(long, default_value_t = 0)]
    pub extra_topics: usize,
}

/// Remoting header serialization.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SerializeArg {
    Json,
    Rocketmq,
}

#[derive(Debug, Args)]
pub struct BenchConsumeArgs {
    #[command(flatten)]
    pub net: BenchNetArgs,
    /// Consumer group whose offsets are used (a fresh one starts at the first message).
    #[arg(long, default_value = "bench_consumer")]
    pub group: String,
    /// Messages per pull.
    #[arg(long, default_value_t = 256)]
    pub pull_batch: i32,
    /// Stop after this many messages (0: run for --duration).
    #[arg(long, default_value_t = 0)]
    pub messages: u64,
}

#[derive(Debug, Args)]
pub struct BenchStoreArgs {
    /// Directory for the benchmark's store (a fresh temporary directory inside it).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Message sizes in bytes.
    #[arg(long, value_delimiter = ',', default_value = "128,1024,4096")]
    pub sizes: Vec<usize>,
    /// Writer counts (threads or tasks, see `--driver`).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub writers: Vec<usize>,
    /// What runs the writers: OS threads, or tasks on a tokio runtime of `--runtime-threads`.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "threads")]
    pub driver: Vec<DriverArg>,
    /// Worker threads of the tokio runtime of `--driver tokio`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub runtime_threads: u16,
    /// Messages per append call (`append_batch`); each writer waits for one call to be
    /// acknowledged before the next. Latencies are per call.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub batch: Vec<usize>,
    /// Override the store's `warm_segments` (prefault the next segment; ASYNC mode only).
    #[arg(long)]
    pub warm_segments: Option<bool>,
    /// Override the store's `prewrite_segments` (write zeros over the next segment before the
    /// roll; SYNC mode only). The SYNC fsync unit is then measured over prewritten blocks too.
    #[arg(long)]
    pub prewrite_segments: Option<bool>,
    /// SYNC runs with each of these `sync_gather_max_us` (the longest a group commit waits for
    /// the writers the previous fsync acknowledged; 0: fsyncs back to back). Default: the
    /// store's default.
    #[arg(long, value_delimiter = ',')]
    pub sync_gather_max_us: Vec<u64>,
    /// Override the store's `sync_gather_fsync_ratio` (the gathering wait's bound as a fraction
    /// of the recent fsync time).
    #[arg(long)]
    pub sync_gather_fsync_ratio: Option<f64>,
    /// Flush modes.
    #[arg(long, value_delimiter = ',', value_enum, default_value = "async,sync")]
    pub flush: Vec<FlushArg>,
    /// Commit log bytes (records with their headers) to append per run.
    #[arg(long, default_value_t = 1 << 30)]
    pub bytes: u64,
    /// Stop a run after this many seconds even if `--bytes` was not reached.
    #[arg(long, default_value_t = 20)]
    pub max_seconds: u64,
    /// Queues of the benchmark topic that the writers spread their messages over.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=1024))]
    pub queues: i32,
    /// Commit log segment size of the benchmark stores.
    #[arg(long, default_value_t = 256 << 20)]
    pub segment_bytes: u64,
    /// Bytes written (in 1 MiB chunks, then fsync) to measure the disk's sequential-write limit.
    #[arg(long, default_value_t = 1 << 30)]
    pub disk_probe_bytes: u64,
    /// Read back from disk rather than the page cache: restart the store and evict its files
    /// from the cache before reading.
    #[arg(long)]
    pub cold_read: bool,
    /// Print results as JSON lines.
    #[arg(long)]
    pub json: bool,
}
