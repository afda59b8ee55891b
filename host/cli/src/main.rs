//! The `witplug` command line: run commands, transform records, inspect components.
//!
//! Argument parsing and dispatch. Each subcommand is one module.

mod compile;
mod engine_args;
mod inspect;
mod output;
mod policy_args;
mod preinit;
mod publish;
mod queue;
mod run;
mod serve;
mod transform;
mod wit_check;
mod worker;

use std::process::ExitCode;

use std::io::IsTerminal as _;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Run WebAssembly components as sandboxed plugins.
///
/// Plugins get nothing they are not granted: no files, no environment, no network.
#[derive(Parser)]
#[command(name = "witplug", version, propagate_version = true)]
struct Cli {
    /// Show more logs (plugin debug lines included); `RUST_LOG` overrides.
    #[arg(short, long, global = true)]
    verbose: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::RunArgs),
    Transform(transform::TransformArgs),
    Inspect(inspect::InspectArgs),
    Compile(compile::CompileArgs),
    /// Pre-initialise a component: snapshot it after its start-up, so that its instances
    /// skip it.
    Preinit(preinit::PreinitArgs),
    Worker(Box<worker::WorkerArgs>),
    Publish(publish::PublishArgs),
    /// Set up a pipeline's streams, send records, read what came out (NATS JetStream).
    Queue(queue::QueueArgs),
    Serve(Box<serve::ServeArgs>),
    WitCheck(wit_check::WitCheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The NATS client's own debug lines (every protocol message) would drown ours.
    let default_filter = if cli.verbose {
        "debug,async_nats=info"
    } else {
        "warn"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in log files or pipes.
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::errln!("witplug: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args).await,
            Command::Transform(args) => transform::run(args).await,
            Command::Inspect(args) => inspect::run(args).await,
            Command::Compile(args) => compile::run(args),
            Command::Preinit(args) => preinit::run(args).await,
            Command::Worker(args) => worker::run(*args).await,
            Command::Publish(args) => publish::run(args).await,
            Command::Queue(args) => queue::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::WitCheck(args) => wit_check::run(args),
        }
    });
    match result {
        Ok(code) => code,
        // The reader of our output has gone (`witplug inspect x | head -1`): stop quietly.
        Err(error) if output::is_broken_pipe(&error) => ExitCode::from(output::BROKEN_PIPE_EXIT),
        Err(error) => {
            output::errln!("witplug: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs what a plugin is really granted and its limits, one line each, at `info` level:
/// shown with `-v`. The answer to "what can this plugin touch?", after every default.
fn log_grants(options: &witplug::PluginOptions) {
    let lines = options
        .capabilities
        .grant_lines()
        .into_iter()
        .chain(options.config.grant_lines())
        .chain(options.limits.limit_lines());
    for line in lines {
        tracing::info!("grant: {line}");
    }
}
