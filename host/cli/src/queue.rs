//! `witplug queue`: set up the streams of a pipeline, send records, read what came out.
//! Enough to run a pipeline on a bare `nats-server`, without other tools.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use witplug_nats::jetstream::{self as js, StreamSpec};

use crate::output::outln;

#[derive(Args)]
pub struct QueueArgs {
    /// NATS server URL.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,

    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Subcommand)]
enum QueueCommand {
    /// Create the streams of a pipeline (file storage, 2-minute duplicate window) where
    /// missing: each flag is STREAM:SUBJECT.
    Setup {
        #[arg(long, value_name = "STREAM:SUBJECT", value_parser = parse_spec, required = true)]
        stream: Vec<StreamSpec>,
    },
    /// Publish each line of a JSON Lines file (or stdin) as one message; waits until the
    /// server stored them all and prints how many.
    Send {
        #[arg(long, value_name = "SUBJECT")]
        subject: String,
        /// The file (`-` or none: stdin).
        file: Option<PathBuf>,
    },
    /// Print every message of a stream as a JSON line (seq, subject, headers, payload).
    Read {
        #[arg(long, value_name = "STREAM")]
        stream: String,
        /// Stop after this long without a message.
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        wait_ms: u64,
    },
}

fn parse_spec(text: &str) -> Result<StreamSpec, String> {
    match text.split_once(':') {
        Some((name, subject)) if !name.is_empty() && !subject.is_empty() => Ok(StreamSpec {
            name: name.to_owned(),
            subject: subject.to_owned(),
        }),
        _ => Err(format!(
            "`{text}`: expected STREAM:SUBJECT, e.g. records:records.in"
        )),
    }
}

pub async fn run(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let client = js::connect(&args.nats).await?;
    let context = async_nats::jetstream::new(client);
    match args.command {
        QueueCommand::Setup { stream } => {
            for spec in &stream {
                let created = js::ensure_stream(&context, spec).await?;
                let verb = if created { "created" } else { "exists: " };
                outln!("{verb} stream {} (subject {})", spec.name, spec.subject)?;
            }
        }
        QueueCommand::Send { subject, file } => {
            let lines = read_lines(file.as_deref())?;
            let sent = js::send_all(&context, &subject, lines.into_iter().map(Into::into)).await?;
            outln!("{sent}")?;
        }
        QueueCommand::Read { stream, wait_ms } => {
            let messages = js::read_all(&context, &stream, Duration::from_millis(wait_ms)).await?;
            for message in messages {
                outln!("{}", serde_json::to_string(&message)?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Non-empty lines, as bytes (a line that is not UTF-8 is sent as it is: the worker
/// dead-letters it, which is what a pipeline should see).
fn read_lines(file: Option<&Path>) -> anyhow::Result<Vec<Vec<u8>>> {
    let reader: Box<dyn std::io::BufRead> = match file {
        Some(path) if path != Path::new("-") => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        _ => Box::new(std::io::stdin().lock()),
    };
    let mut lines = Vec::new();
    for line in reader.split(b'\n') {
        let mut line = line.context("reading input")?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        bail!("no lines to send");
    }
    Ok(lines)
}
