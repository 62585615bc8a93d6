//! `tributary topic …` and `tributary group …`: administration through the RocketMQ remoting
//! protocol with tributary-client's [`Admin`], so they work against any RocketMQ-compatible
//! NameServer and brokers.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::Serialize;
use tributary_client::admin::{ConsumerConnections, GroupProgress, TopicSpec, TopicTarget};
use tributary_client::route::MASTER_ID;
use tributary_client::{Admin, MessageQueue};
use tributary_protocol::body::TopicRouteData;
use tributary_protocol::perm;

use crate::cli::{
    BrokerTargetArgs, ClientArgs, GroupCommand, GroupDescribeArgs, PermArg, TopicCommand,
    TopicCreateArgs, TopicNameArgs,
};
use crate::output::{Table, client_config, format_time_ms, perm_name, print_json, topic_error};

/// Runs a `topic` command.
pub fn topic(command: TopicCommand) -> Result<()> {
    crate::runtime()?.block_on(async move {
        match command {
            TopicCommand::Create(args) => {
                with_admin(&args.client, async |admin| create(admin, &args).await).await
            }
            TopicCommand::List(args) => {
                with_admin(&args.client, async |admin| list(admin, &args.client).await).await
            }
            TopicCommand::Describe(args) => {
                with_admin(&args.client, async |admin| describe(admin, &args).await).await
            }
            TopicCommand::Delete(args) => {
                with_admin(&args.client, async |admin| delete(admin, &args).await).await
            }
        }
    })
}

/// Runs a `group` command.
pub fn group(command: GroupCommand) -> Result<()> {
    crate::runtime()?.block_on(async move {
        match command {
            GroupCommand::List(args) => {
                with_admin(&args.client, async |admin| {
                    group_list(admin, &args.client).await
                })
                .await
            }
            GroupCommand::Config(args) => {
                with_admin(&args.client, async |admin| {
                    crate::dlq_cmd::group_config(admin, &args).await
                })
                .await
            }
            GroupCommand::Describe(args) => {
                with_admin(&args.client, async |admin| {
                    group_describe(admin, &args).await
                })
                .await
            }
            GroupCommand::Reset(args) => {
                with_admin(&args.client, async |admin| {
                    crate::replay_cmd::reset(admin, &args).await
                })
                .await
            }
        }
    })
}

/// Starts an admin client, runs `work` with it and shuts the client down whatever happened.
pub(crate) async fn with_admin<T>(
    args: &ClientArgs,
    work: impl AsyncFnOnce(&Admin) -> Result<T>,
) -> Result<T> {
    let admin = Admin::start(client_config(args)?)
        .await
        .with_context(|| format!("connect to NameServer {}", args.namesrv))?;
    let result = work(&admin).await;
    admin.shutdown().await;
    result
}

// ---- topic create ---------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct CreatedTopic<'a> {
    topic: &'a str,
    read_queues: i32,
    write_queues: i32,
    perm: &'static str,
    order: bool,
    brokers: Vec<String>,
}

/// The brokers `--cluster` / `--broker` name (`--broker` wins; clap refuses both).
pub(crate) fn broker_target(args: &BrokerTargetArgs) -> TopicTarget {
    match (&args.cluster, &args.broker) {
        (_, Some(broker)) => TopicTarget::Broker(broker.clone()),
        (Some(cluster), None) => TopicTarget::Cluster(cluster.clone()),
        (None, None) => TopicTarget::AllBrokers,
    }
}

fn perm_bits(perm: PermArg) -> i32 {
    match perm {
        PermArg::Rw => perm::READ | perm::WRITE,
        PermArg::R => perm::READ,
        PermArg::W => perm::WRITE,
    }
}

async fn create(admin: &Admin, args: &TopicCreateArgs) -> Result<()> {
    let spec = TopicSpec {
        name: args.topic.clone(),
        read_queue_nums: args.read_queues.unwrap_or(args.queues),
        write_queue_nums: args.write_queues.unwrap_or(args.queues),
        perm: perm_bits(args.perm),
        order: args.order,
    };
    let target = broker_target(&args.target);
    if target == TopicTarget::AllBrokers {
        let clusters = admin
            .cluster_info()
            .await
            .with_context(|| format!("ask NameServer {} for its brokers", args.client.namesrv))?;
        if clusters.broker_addr_table.is_empty() {
            anyhow::bail!(
                "no broker is registered with NameServer {}: start one (`tributary server` or `tributary broker`), or wait for it to register",
                args.client.namesrv
            );
        }
    }
    let brokers = admin
        .create_topic(&spec, &target)
        .await
        .with_context(|| format!("create topic {}", args.topic))?;
    let created = CreatedTopic {
        topic: &args.topic,
        read_queues: spec.read_queue_nums,
        write_queues: spec.write_queue_nums,
        perm: perm_name(spec.perm),
        order: spec.order,
        brokers,
    };
    if args.client.json {
        return print_json(&created);
    }
    crate::output::print_text(&format!(
        "Created topic {} ({} read / {} write queues per broker, perm {}{}) on {}.\n",
        created.topic,
        created.read_queues,
        created.write_queues,
        created.perm,
        if created.order { ", ordered" } else { "" },
        created.brokers.join(", "),
    ))
}

// ---- topic list -----------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct TopicListing {
    topics: Vec<String>,
}

async fn list(admin: &Admin, client: &ClientArgs) -> Result<()> {
    let topics = admin
        .list_topics()
        .await
        .with_context(|| format!("list topics of NameServer {}", client.namesrv))?;
    if client.json {
        return print_json(&TopicListing { topics });
    }
    let mut table = Table::new(&["TOPIC"]);
    for topic in topics {
        table.row(vec![topic]);
    }
    table.print()
}

// ---- topic describe -------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct TopicDescription {
    topic: String,
    order: bool,
    brokers: Vec<BrokerRoute>,
    queues: Vec<QueueDescription>,
}

#[derive(Debug, Serialize)]
struct BrokerRoute {
    broker: String,
    cluster: Option<String>,
    /// Address per broker id (0 is the master).
    addresses: BTreeMap<i64, String>,
    read_queues: i32,
    write_queues: i32,
    perm: &'static str,
}

#[derive(Debug, Serialize)]
struct QueueDescription {
    broker: String,
    queue_id: i32,
    min_offset: i64,
    max_offset: i64,
    /// Store time of the last message, ms since the epoch; `None` for an empty queue.
    last_update_ms: Option<i64>,
    /// The same as an RFC 3339 UTC time.
    last_update: Option<String>,
}

fn broker_routes(route: &TopicRouteData) -> Vec<BrokerRoute> {
    let mut brokers: Vec<BrokerRoute> = route
        .queue_datas
        .iter()
        .map(|q| {
            let data = route
                .broker_datas
                .iter()
                .find(|b| b.broker_name == q.broker_name);
            BrokerRoute {
                broker: q.broker_name.clone(),
                cluster: data.map(|b| b.cluster.clone()),
                addresses: data.map(|b| b.broker_addrs.clone()).unwrap_or_default(),
                read_queues: q.read_queue_nums,
                write_queues: q.write_queue_nums,
                perm: perm_name(q.perm),
            }
        })
        .collect();
    brokers.sort_by(|a, b| a.broker.cmp(&b.broker));
    brokers
}

/// Store time of the last message of a queue (`None` when it is empty or cannot be read).
async fn last_store_time(admin: &Admin, queue: &MessageQueue, max_offset: i64) -> Option<i64> {
    if max_offset <= 0 {
        return None;
    }
    match admin.message_at(queue, max_offset - 1).await {
        Ok(message) => message.map(|m| m.store_timestamp),
        Err(e) => {
            tracing::debug!(topic = %queue.topic, queue_id = queue.queue_id, error = %e, "read the last message of a queue");
            None
        }
    }
}

async fn describe(admin: &Admin, args: &TopicNameArgs) -> Result<()> {
    let namesrv = &args.client.namesrv;
    let route = admin
        .topic_route(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, namesrv, e))?;
    let status = admin
        .topic_status(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, namesrv, e))?;
    let times = futures_util::future::join_all(
        status
            .iter()
            .map(|q| last_store_time(admin, &q.queue, q.max_offset)),
    )
    .await;
    let queues: Vec<QueueDescription> = status
        .into_iter()
        .zip(times)
        .map(|(q, last)| QueueDescription {
            broker: q.queue.broker_name,
            queue_id: q.queue.queue_id,
            min_offset: q.min_offset,
            max_offset: q.max_offset,
            last_update_ms: last,
            last_update: last.map(format_time_ms),
        })
        .collect();
    let description = TopicDescription {
        topic: args.topic.clone(),
        order: route.order_topic_conf.is_some(),
        brokers: broker_routes(&route),
        queues,
    };
    if args.client.json {
        return print_json(&description);
    }
    let mut text = format!(
        "Topic {}{}\n\nRoute:\n",
        description.topic,
        if description.order { " (ordered)" } else { "" }
    );
    let mut brokers = Table::new(&[
        "BROKER",
        "CLUSTER",
        "MASTER",
        ">READ QUEUES",
        ">WRITE QUEUES",
        "PERM",
    ]);
    for b in &description.brokers {
        brokers.row(vec![
            b.broker.clone(),
            b.cluster.clone().unwrap_or_else(|| "-".into()),
            b.addresses
                .get(&MASTER_ID)
                .cloned()
                .unwrap_or_else(|| "-".into()),
            b.read_queues.to_string(),
            b.write_queues.to_string(),
            b.perm.to_owned(),
        ]);
    }
    text.push_str(&brokers.render());
    text.push_str("\nQueues:\n");
    let mut queues = Table::new(&[
        "BROKER",
        ">QUEUE",
        ">MIN OFFSET",
        ">MAX OFFSET",
        ">MESSAGES",
        "LAST UPDATE",
    ]);
    for q in &description.queues {
        queues.row(vec![
            q.broker.clone(),
            q.queue_id.to_string(),
            q.min_offset.to_string(),
            q.max_offset.to_string(),
            (q.max_offset - q.min_offset).max(0).to_string(),
            q.last_update.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    text.push_str(&queues.render());
    crate::output::print_text(&text)
}

// ---- topic delete ---------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct DeletedTopic<'a> {
    topic: &'a str,
    brokers: Vec<String>,
    namesrvs: Vec<String>,
}

async fn delete(admin: &Admin, args: &TopicNameArgs) -> Result<()> {
    let namesrv = &args.client.namesrv;
    let route = admin
        .topic_route(&args.topic)
        .await
        .map_err(|e| topic_error(&args.topic, namesrv, e))?;
    admin
        .delete_topic(&args.topic)
        .await
        .with_context(|| format!("delete topic {}", args.topic))?;
    let deleted = DeletedTopic {
        topic: &args.topic,
        brokers: route
            .broker_datas
            .iter()
            .filter_map(|b| b.broker_addrs.get(&MASTER_ID).cloned())
            .collect(),
        namesrvs: admin.instance().namesrv_addrs().to_vec(),
    };
    if args.client.json {
        return print_json(&deleted);
    }
    crate::output::print_text(&format!(
        "Deleted topic {} from brokers {} and NameServers {}.\n",
        deleted.topic,
        deleted.brokers.join(", "),
        deleted.namesrvs.join(", ")
    ))
}

// ---- group list -----------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct GroupListing {
    groups: Vec<GroupSummary>,
}

#[derive(Debug, Serialize)]
struct GroupSummary {
    group: String,
    clients: usize,
    message_model: Option<String>,
    topics: Vec<String>,
    total_lag: i64,
}

fn model_name(connections: &ConsumerConnections) -> Option<String> {
    connections.message_model.map(|m| {
        match m {
            tributary_client::MessageModel::Clustering => "CLUSTERING",
            tributary_client::MessageModel::Broadcasting => "BROADCASTING",
        }
        .to_owned()
    })
}

/// The topics of a group's progress, in order, without repeats.
fn progress_topics(progress: &GroupProgress) -> Vec<String> {
    let mut topics: Vec<String> = progress
        .queues
        .iter()
        .map(|q| q.queue.topic.clone())
        .collect();
    topics.dedup();
    topics
}

async fn group_list(admin: &Admin, client: &ClientArgs) -> Result<()> {
    let names = admin
        .consumer_groups()
        .await
        .context("list the consumer groups of the brokers")?;
    let mut groups = Vec::with_capacity(names.len());
    for group in names {
        let connections = admin
            .consumer_connections(&group)
            .await
            .with_context(|| format!("list the clients of group {group}"))?;
        let progress = admin
            .group_progress(&group)
            .await
            .with_context(|| format!("read the offsets of group {group}"))?;
        groups.push(GroupSummary {
            clients: connections.connections.len(),
            message_model: model_name(&connections),
            topics: progress_topics(&progress),
            total_lag: progress.total_lag(),
            group,
        });
    }
    if client.json {
        return print_json(&GroupListing { groups });
    }
    let mut table = Table::new(&["GROUP", ">CLIENTS", "MODEL", "TOPICS", ">LAG"]);
    for g in &groups {
        table.row(vec![
            g.group.clone(),
            g.clients.to_string(),
            g.message_model.clone().unwrap_or_else(|| "-".into()),
            if g.topics.is_empty() {
                "-".into()
            } else {
                g.topics.join(",")
            },
            g.total_lag.to_string(),
        ]);
    }
    table.print()
}

// ---- group describe -------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct GroupDescription {
    group: String,
    message_model: Option<String>,
    consume_type: Option<String>,
    total_lag: i64,
    queues: Vec<QueueProgress>,
    clients: Vec<ClientDescription>,
    subscriptions: Vec<SubscriptionDescription>,
}

#[derive(Debug, Serialize)]
struct QueueProgress {
    topic: String,
    broker: String,
    queue_id: i32,
    broker_offset: i64,
    /// `None` when the group has committed no offset for the queue.
    consumer_offset: Option<i64>,
    lag: i64,
}

#[derive(Debug, Serialize)]
struct ClientDescription {
    client_id: String,
    address: String,
    language: String,
    version: i64,
}

#[derive(Debug, Serialize)]
struct SubscriptionDescription {
    topic: String,
    expression: String,
    expression_type: String,
}

async fn group_describe(admin: &Admin, args: &GroupDescribeArgs) -> Result<()> {
    let group = &args.group;
    let known = admin
        .consumer_groups()
        .await
        .context("list the consumer groups of the brokers")?;
    if !known.contains(group) {
        anyhow::bail!(
            "consumer group {group} is not known to any broker: it has no online member and no committed offset (see `tributary group list`)"
        );
    }
    let connections = admin
        .consumer_connections(group)
        .await
        .with_context(|| format!("list the clients of group {group}"))?;
    let progress = admin
        .group_progress(group)
        .await
        .with_context(|| format!("read the offsets of group {group}"))?;
    let description = GroupDescription {
        group: group.clone(),
        message_model: model_name(&connections),
        consume_type: connections.consume_type.clone(),
        total_lag: progress.total_lag(),
        queues: progress
            .queues
            .into_iter()
            .map(|q| QueueProgress {
                topic: q.queue.topic,
                broker: q.queue.broker_name,
                queue_id: q.queue.queue_id,
                broker_offset: q.broker_offset,
                consumer_offset: q.consumer_offset,
                lag: q.lag,
            })
            .collect(),
        clients: connections
            .connections
            .iter()
            .map(|c| ClientDescription {
                client_id: c.client_id.clone(),
                address: c.client_addr.clone(),
                language: c.language.clone(),
                version: c.version,
            })
            .collect(),
        subscriptions: connections
            .subscriptions
            .values()
            .map(|s| SubscriptionDescription {
                topic: s.topic.clone(),
                expression: s.sub_string.clone(),
                expression_type: s.expression_type.clone(),
            })
            .collect(),
    };
    if args.client.json {
        return print_json(&description);
    }
    let mut text = format!("Group {}", description.group);
    if let Some(model) = &description.message_model {
        text.push_str(&format!(" ({model}"));
        if let Some(kind) = &description.consume_type {
            text.push_str(&format!(", {kind}"));
        }
        text.push(')');
    }
    text.push_str(&format!("\nTotal lag: {}\n\n", description.total_lag));
    let mut queues = Table::new(&[
        "TOPIC",
        "BROKER",
        ">QUEUE",
        ">BROKER OFFSET",
        ">CONSUMER OFFSET",
        ">LAG",
    ]);
    for q in &description.queues {
        queues.row(vec![
            q.topic.clone(),
            q.broker.clone(),
            q.queue_id.to_string(),
            q.broker_offset.to_string(),
            q.consumer_offset
                .map_or_else(|| "-".into(), |o| o.to_string()),
            q.lag.to_string(),
        ]);
    }
    text.push_str(&queues.render());
    text.push_str(&format!(
        "\nOnline clients: {}\n",
        description.clients.len()
    ));
    if !description.clients.is_empty() {
        let mut clients = Table::new(&["CLIENT ID", "ADDRESS", "LANGUAGE", ">VERSION"]);
        for c in &description.clients {
            clients.row(vec![
                c.client_id.clone(),
                c.address.clone(),
                c.language.clone(),
                c.version.to_string(),
            ]);
        }
        text.push_str(&clients.render());
        text.push_str("\nSubscriptions:\n");
        let mut subs = Table::new(&["TOPIC", "TYPE", "EXPRESSION"]);
        for s in &description.subscriptions {
            subs.row(vec![
                s.topic.clone(),
                s.expression_type.clone(),
                s.expression.clone(),
            ]);
        }
        text.push_str(&subs.render());
    }
    crate::output::print_text(&text)
}
