//! The `tributary` binary: the one place that composes the crates.

mod admin_cmd;
mod bench;
mod bench_net;
mod cli;
mod config;
mod consume_cmd;
mod dlq_cmd;
mod metrics;
mod output;
mod produce_cmd;
mod produce_txn;
mod replay_cmd;
mod request_cmd;
mod server;
mod store_cmd;
mod time_arg;

use clap::Parser;

/// mimalloc: glibc malloc's arena locks showed up as futex waits between the runtime's
/// workers in broker profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::EnvFilter;

use crate::cli::{BenchCommand, Cli, Command, LogFormat};

fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("TRIBUTARY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tributary-io")
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match cli.command {
        Command::Server(args) => {
            let config = config::Config::from_args(&args)?;
            let roles = server::Roles {
                namesrv: true,
                broker: true,
            };
            runtime()?.block_on(server::run(config, roles))
        }
        Command::Broker(args) => {
            let config = config::Config::from_args(&args)?;
            let roles = server::Roles {
                namesrv: false,
                broker: true,
            };
            runtime()?.block_on(server::run(config, roles))
        }
        Command::Namesrv(args) => {
            let mut config = config::Config::load(args.config.as_deref(), None, None)?;
            if let Some(l) = args.listen {
                config.namesrv.listen = l;
            }
            config.http.listen = args.http_listen;
            let roles = server::Roles {
                namesrv: true,
                broker: false,
            };
            runtime()?.block_on(server::run(config, roles))
        }
        Command::Store(cmd) => store_cmd::run(cmd),
        Command::Topic(cmd) => admin_cmd::topic(cmd),
        Command::Group(cmd) => admin_cmd::group(cmd),
        Command::Message(cmd) => replay_cmd::message(cmd),
        Command::Dlq(cmd) => dlq_cmd::run(cmd),
        Command::Produce(args) => produce_cmd::run(args),
        Command::Consume(args) => consume_cmd::run(args),
        Command::Request(args) => request_cmd::request(args),
        Command::Reply(args) => request_cmd::reply(args),
        Command::Bench(BenchCommand::Store(args)) => bench::store(args),
        Command::Bench(BenchCommand::Produce(args)) => bench_net::produce(args),
        Command::Bench(BenchCommand::Consume(args)) => bench_net::consume(args),
        Command::DefaultConfig => {
            print!("{}", config::DEFAULT_TOML);
            Ok(())
        }
    }
}
