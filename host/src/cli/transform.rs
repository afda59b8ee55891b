//! `witplug transform`: JSON Lines through a transform plugin, in batches.
//!
//! Every input line yields exactly one output line, in input order: a bad line becomes an
//! `invalid-input` line, and a batch the plugin fails on is retried record by record so
//! that only the records it really fails on become `plugin-failure` lines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use witplug::jsonl;
use witplug::worlds::transform::Outcome;
use witplug::{Capabilities, PluginConfig, PluginOptions, Record, Stdio, TransformPlugin};

/// Transform JSON Lines records with a transform plugin; writes one JSON line per input line.
///
/// Input lines look like {"key": "k1", "fields": {"email": " Ada@Example.COM "}}.
/// Output lines carry "line", "key" and "outcome" (keep, drop, split, error, invalid-input
/// or plugin-failure).
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

    /// Read records from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,

    #[command(flatten)]
    engine: super::engine_args::EngineArgs,
}

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
    async fn flush(&mut self) -> Vec<Json> {
        let records = std::mem::take(&mut self.records);
        let mut results = self.outcomes(&records).await.into_iter();
        let mut lines = Vec::with_capacity(self.pending.len());
        let mut records = records.iter();
        for pending in self.pending.drain(..) {
            let json = match pending {
                Pending::Invalid { line, error } => {
                    self.tally.invalid += 1;
                    jsonl::invalid_input_to_json(line, &error)
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
                            jsonl::outcome_to_json(line, key, &outcome)
                        }
                        Err(error) => {
                            self.tally.failed += 1;
                            jsonl::plugin_failure_to_json(line, key, &error)
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
    let plugin = TransformPlugin::load(&runtime, &args.component, options).await?;

    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &args.input {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("could not open input file {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let mut lines = BufReader::new(input).lines();
    let mut out = BufWriter::new(tokio::io::stdout());
    let batch_size = args.batch as usize;
    let mut batcher = Batcher {
        plugin,
        pending: Vec::new(),
        records: Vec::new(),
        tally: Tally::default(),
    };
    let mut line_number = 0;
    loop {
        let line = lines
            .next_line()
            .await
            .with_context(|| format!("reading input after line {line_number}"))?;
        let Some(line) = line else { break };
        line_number += 1;
        if line.trim().is_empty() {
            continue;
        }
        match jsonl::parse_record(&line) {
            Ok(record) => {
                batcher.records.push(record);
                batcher.pending.push(Pending::Record { line: line_number });
            }
            Err(error) => batcher.pending.push(Pending::Invalid {
                line: line_number,
                error,
            }),
        }
        if batcher.records.len() >= batch_size {
            write_lines(&mut out, batcher.flush().await).await?;
        }
    }
    write_lines(&mut out, batcher.flush().await).await?;
    out.flush().await.context("writing output")?;

    let t = &batcher.tally;
    eprintln!(
        "witplug: {line_number} lines: {} kept, {} split, {} dropped, {} errors, {} invalid input, {} plugin failures",
        t.keep, t.split, t.drop, t.error, t.invalid, t.failed
    );
    Ok(ExitCode::SUCCESS)
}

async fn write_lines(
    out: &mut BufWriter<tokio::io::Stdout>,
    lines: Vec<Json>,
) -> anyhow::Result<()> {
    for line in lines {
        let mut text = line.to_string();
        text.push('\n');
        out.write_all(text.as_bytes())
            .await
            .context("writing output")?;
    }
    Ok(())
}
