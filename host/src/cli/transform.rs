//! `witplug transform`: JSON Lines through a transform plugin, in batches.
//!
//! Every input line yields exactly one output line, in input order: a bad line (not JSON,
//! not UTF-8, blank, over-long) becomes an `invalid-input` line, and a batch the plugin
//! fails on is retried record by record so that only the records it really fails on become
//! `plugin-failure` lines. Each batch's lines are written and flushed as soon as they are
//! ready; a partial batch goes out after [`IDLE_FLUSH`] without input. SIGINT and SIGTERM
//! finish the batch in flight, write it and the summary, and exit 130 or 143.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::output::errln;
use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use witplug::jsonl;
use witplug::worlds::transform::Outcome;
use witplug::{Capabilities, PluginConfig, PluginOptions, Record, Stdio, TransformPlugin};

/// Transform JSON Lines records with a transform plugin; writes one JSON line per input line.
///
/// Input lines look like {"key": "k1", "fields": {"email": " Ada@Example.COM "}}.
/// Output lines carry "line", "key" and "outcome" (keep, drop, split, error, invalid-input
/// or plugin-failure). Each batch is written as soon as it is done, a partial batch after
/// 100 ms without input; SIGINT/SIGTERM finish the batch in flight, write it and the
/// summary, and exit 130/143.
///
/// Examples:
///   witplug transform email-normalizer.wasm --input samples/records.jsonl
///   cat records.jsonl | witplug transform email-normalizer.wasm --config blocked-domains=mailinator.com
///   witplug transform rule.wasm --input big.jsonl --batch 1000 --max-memory 64 --timeout-ms 500
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct TransformArgs {
    /// The transform plugin (.wasm).
    component: PathBuf,

    /// Plugin configuration entry (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// Records per plugin call.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch: u32,

    /// Read records from this file instead of stdin (`-` is stdin).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,

    /// Longest input line, in bytes (line ending excluded); a longer line becomes an
    /// `invalid-input` line, without being held in memory, and reading goes on after it.
    #[arg(long, value_name = "BYTES", default_value_t = jsonl::DEFAULT_MAX_LINE_BYTES,
          value_parser = parse_line_limit)]
    max_line_bytes: usize,

    #[command(flatten)]
    engine: super::engine_args::EngineArgs,
}

/// How long input may be idle before a partial batch is processed and written anyway.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// Input lines in flight between the reader thread and the batcher.
const READ_AHEAD: usize = 1024;

/// Counts of each kind of output line, for the closing summary.
#[derive(Default)]
struct Tally {
    keep: usize,
    drop: usize,
    split: usize,
    error: usize,
    invalid: usize,
    failed: usize,
}

/// One input line waiting for its batch to be processed.
enum Pending {
    Invalid {
        line: usize,
        error: jsonl::RecordJsonError,
    },
    Record {
        line: usize,
    },
}

struct Batcher {
    plugin: TransformPlugin,
    pending: Vec<Pending>,
    records: Vec<Record>,
    tally: Tally,
}

impl Batcher {
    /// Processes what is pending and returns the output lines, in input order.
    async fn flush(&mut self) -> Vec<String> {
        let records = std::mem::take(&mut self.records);
        let mut results = self.outcomes(&records).await.into_iter();
        let mut lines = Vec::with_capacity(self.pending.len());
        let mut records = records.iter();
        for pending in self.pending.drain(..) {
            let json = match pending {
                Pending::Invalid { line, error } => {
                    self.tally.invalid += 1;
                    jsonl::invalid_input_line(line, &error)
                }
                Pending::Record { line } => {
                    // `outcomes` gives one result per record; the fallbacks only guard it.
                    let key = records.next().map_or("", |record| record.key.as_str());
                    let result = results
                        .next()
                        .unwrap_or_else(|| Err(error_without_outcome(&self.plugin)));
                    match result {
                        Ok(outcome) => {
                            match outcome {
                                Outcome::Keep(_) => self.tally.keep += 1,
                                Outcome::Drop(_) => self.tally.drop += 1,
                                Outcome::Split(_) => self.tally.split += 1,
                                Outcome::Error(_) => self.tally.error += 1,
                            }
                            jsonl::outcome_line(line, key, &outcome)
                        }
                        Err(error) => {
                            self.tally.failed += 1;
                            jsonl::plugin_failure_line(line, key, &error)
                        }
                    }
                }
            };
            lines.push(json);
        }
        lines
    }

    /// One result per record: the batch in one call, or record by record if that fails.
    async fn outcomes(&self, records: &[Record]) -> Vec<Result<Outcome, witplug::Error>> {
        if records.is_empty() {
            return Vec::new();
        }
        match self.plugin.process_batch(records).await {
            Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
            // One record: its own retry would only fail again (a timeout would cost twice).
            Err(error) if records.len() == 1 => vec![Err(error)],
            Err(error) => {
                tracing::warn!(%error, records = records.len(), "batch failed; retrying record by record");
                let mut results = Vec::with_capacity(records.len());
                for record in records {
                    let result = self
                        .plugin
                        .process_batch(std::slice::from_ref(record))
                        .await
                        .and_then(|mut outcomes| {
                            // `process_batch` guarantees one outcome per record.
                            outcomes
                                .pop()
                                .ok_or_else(|| error_without_outcome(&self.plugin))
                        });
                    results.push(result);
                }
                results
            }
        }
    }
}

fn error_without_outcome(plugin: &TransformPlugin) -> witplug::Error {
    witplug::Error::Contract {
        plugin: plugin.name().to_owned(),
        export: "process-batch".to_owned(),
        message: "returned no outcome".to_owned(),
    }
}

fn parse_line_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(limit) => Ok(limit),
        Err(e) => Err(e.to_string()),
    }
}

/// One input line as the reader thread hands it over: its number and its record, or why
/// it has none; an `Err` is a failed read, the last message.
type ReadLine = std::io::Result<(usize, Result<Record, jsonl::RecordJsonError>)>;

/// What the main loop waits for.
enum Event {
    Line(Option<ReadLine>),
    Idle,
    Signal(&'static str, u8),
}

pub async fn run(args: TransformArgs) -> anyhow::Result<ExitCode> {
    let mut config = PluginConfig::new();
    for spec in &args.config {
        config = config.set_spec(spec)?;
    }
    let runtime = args.engine.runtime()?;
    // stderr is captured so that a guest's panic message ends up in its failure line.
    let options = PluginOptions::default()
        .capabilities(Capabilities::none().stderr(Stdio::Capture))
        .config(config)
        .limits(args.engine.limits());
    super::log_grants(&options);
    let plugin = TransformPlugin::load(&runtime, &args.component, options).await?;

    let input: Box<dyn Read + Send> = match &args.input {
        Some(path) if path != Path::new("-") => Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("could not open input file {}", path.display()))?,
        ),
        _ => Box::new(std::io::stdin()),
    };
    let mut lines = spawn_reader(input, args.max_line_bytes)?;
    // Installed before reading, so that a signal never kills the process mid-batch.
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;

    let mut out = tokio::io::stdout();
    let batch_size = args.batch as usize;
    let mut batcher = Batcher {
        plugin,
        pending: Vec::new(),
        records: Vec::new(),
        tally: Tally::default(),
    };
    let mut lines_read = 0;
    let mut stopped_by = None;
    let read_error = loop {
        let waiting = !batcher.pending.is_empty();
        let event = tokio::select! {
            biased;
            _ = interrupt.recv() => Event::Signal("SIGINT", 130),
            _ = terminate.recv() => Event::Signal("SIGTERM", 143),
            line = lines.recv() => Event::Line(line),
            () = tokio::time::sleep(IDLE_FLUSH), if waiting => Event::Idle,
        };
        match event {
            Event::Signal(name, code) => {
                stopped_by = Some((name, code));
                break None;
            }
            Event::Idle => write_lines(&mut out, batcher.flush().await).await?,
            Event::Line(None) => break None,
            Event::Line(Some(Err(error))) => break Some(error),
            Event::Line(Some(Ok((line, parsed)))) => {
                lines_read = line;
                match parsed {
                    Ok(record) => {
                        batcher.records.push(record);
                        batcher.pending.push(Pending::Record { line });
                    }
                    Err(error) => batcher.pending.push(Pending::Invalid { line, error }),
                }
                if batcher.records.len() >= batch_size || batcher.pending.len() >= batch_size {
                    write_lines(&mut out, batcher.flush().await).await?;
                }
            }
        }
    };
    // Whatever ended the input, the lines already read are processed and written.
    write_lines(&mut out, batcher.flush().await).await?;

    let t = &batcher.tally;
    errln!(
        "witplug: {lines_read} lines: {} kept, {} split, {} dropped, {} errors, {} invalid input, {} plugin failures",
        t.keep,
        t.split,
        t.drop,
        t.error,
        t.invalid,
        t.failed
    );
    if let Some(error) = read_error {
        return Err(error).with_context(|| format!("reading input after line {lines_read}"));
    }
    Ok(match stopped_by {
        Some((name, code)) => {
            errln!("witplug: stopped by {name} after line {lines_read}");
            ExitCode::from(code)
        }
        None => ExitCode::SUCCESS,
    })
}

/// Reads and parses lines on a thread of its own: a blocking read of stdin there never
/// holds up the exit (a tokio stdin read would, until its next line).
fn spawn_reader(
    input: Box<dyn Read + Send>,
    max_line_bytes: usize,
) -> anyhow::Result<mpsc::Receiver<ReadLine>> {
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    let reader = jsonl::LineReader::new(
        std::io::BufReader::with_capacity(64 * 1024, input),
        max_line_bytes,
    );
    std::thread::Builder::new()
        .name("witplug-input".to_owned())
        .spawn(move || {
            for line in reader {
                let failed = line.is_err();
                let message = line.map(|line| (line.number, jsonl::parse_input_line(&line)));
                // A closed channel means the batcher has stopped (signal, closed stdout).
                if sender.blocking_send(message).is_err() || failed {
                    break;
                }
            }
        })
        .context("starting the input reader thread")?;
    Ok(receiver)
}

/// Writes the lines of one batch and flushes them, so that a live stream shows them now.
async fn write_lines(out: &mut tokio::io::Stdout, lines: Vec<String>) -> anyhow::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut text = String::with_capacity(lines.iter().map(|line| line.len() + 1).sum());
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    out.write_all(text.as_bytes())
        .await
        .context("writing output")?;
    out.flush().await.context("writing output")
}
