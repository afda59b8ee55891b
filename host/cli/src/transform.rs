//! `witplug transform`: JSON Lines through a transform plugin, in batches.
//!
//! Every input line yields exactly one output line, in input order: a bad line (not JSON,
//! not UTF-8, blank, over-long) becomes an `invalid-input` line, and a batch the plugin
//! fails on is retried record by record so that only the records it really fails on become
//! `plugin-failure` lines. Each batch's lines are written and flushed as soon as they are
//! ready; a partial batch goes out after [`IDLE_FLUSH`] without input.
//!
//! Up to `--jobs` batches are processed at once, each on an instance of its own; their
//! lines are written in input order all the same, a batch's lines only once every earlier
//! batch's are out ([`InFlight`]). A batch's task also parses its lines and writes its
//! JSON, so that only reading and writing bytes stay on one thread.
//!
//! Memory is bounded in total, not only per line: the lines between the reader thread and
//! the batcher hold at most [`READ_AHEAD_BYTES`] of raw input (and [`READ_AHEAD`] lines),
//! a batch is processed once its raw input reaches `--max-batch-bytes`, and at most
//! `--jobs` batches are in processing.
//!
//! SIGINT and SIGTERM stop the reading: the reader hands over the complete lines it has
//! already read (buffered) and closes the channel; they are all processed and written, then
//! the summary, and the exit code is 130 or 143. Input not yet read stays unread.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::output::errln;
use anyhow::Context as _;
use clap::Args;
use tokio::io::AsyncWriteExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;
use witplug::jsonl;
use witplug::worlds::transform::Outcome;
use witplug::{Record, Stdio, TransformPlugin};

use crate::engine_args::{CLI_MAX_INSTANCES, pooling_for_instances};
use crate::policy_args::{Streams, USAGE_EXIT, is_usage_error};

/// Transform JSON Lines records with a transform plugin; writes one JSON line per input line.
///
/// Input lines look like {"key": "k1", "fields": {"email": " Ada@Example.COM "}}.
/// Output lines carry "line", "key" and "outcome" (keep, drop, split, error, invalid-input
/// or plugin-failure), in input order. Each batch is written as soon as it and the batches
/// before it are done, a partial batch after 100 ms without input. A batch ends at --batch
/// records or at --max-batch-bytes of input, whichever comes first; --jobs batches run at
/// once, each on its own instance; with the read-ahead (1 MiB) that bounds the host's memory.
/// SIGINT/SIGTERM stop reading: every line already read is processed and written, then
/// the summary, and the exit code is 130/143; input not yet read stays unread.
///
/// The plugin gets no directory, no environment variable, a closed stdin and stdout (the
/// records use them) and a captured stderr, unless granted with flags or `--policy FILE`
/// (a TOML file: [grants], [config], [limits]; see the README). Flags add to the file's
/// grants and configuration (a key given in both is an error) and replace its limits.
/// A malformed policy file exits 2, as a bad flag does.
///
/// Examples:
///   witplug transform email-normalizer.wasm --input samples/records.jsonl
///   cat records.jsonl | witplug transform email-normalizer.wasm --config blocked-domains=mailinator.com
///   witplug transform rule.wasm --input big.jsonl --batch 1000 --max-memory 64 --timeout-ms 500
///   witplug transform rule.wasm --policy rule-policy.toml --config email-field=mail
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct TransformArgs {
    /// The transform plugin (.wasm).
    component: PathBuf,

    #[command(flatten)]
    policy: crate::policy_args::PolicyArgs,

    /// Records per plugin call.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    batch: u32,

    /// Read records from this file instead of stdin (`-` is stdin).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,

    /// Longest input line, in bytes (line ending excluded); a longer line becomes an
    /// `invalid-input` line, without being held in memory, and reading goes on after it.
    #[arg(long, value_name = "BYTES", default_value_t = jsonl::DEFAULT_MAX_LINE_BYTES,
          value_parser = parse_byte_limit)]
    max_line_bytes: usize,

    /// Raw input bytes per plugin call: a batch is processed as soon as its lines reach
    /// this size (the line that reaches it included), even before --batch records.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BATCH_BYTES,
          value_parser = parse_byte_limit)]
    max_batch_bytes: usize,

    /// Batches processed at once, each on an instance of its own (1 to 256); the output
    /// stays in input order [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    jobs: Option<u32>,

    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
}

/// How long input may be idle before a partial batch is processed and written anyway.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// Input lines in flight between the reader thread and the batcher.
const READ_AHEAD: usize = 1024;

/// Raw input bytes in flight between the reader thread and the batcher; a line longer than
/// this still passes, alone. Parsed records take ~10-15x their raw size.
const READ_AHEAD_BYTES: usize = 1024 * 1024;

/// The default of `--max-batch-bytes`.
const DEFAULT_MAX_BATCH_BYTES: usize = 1024 * 1024;

/// How often a reader waiting for input checks whether it has been told to stop.
const STOP_POLL: Duration = Duration::from_millis(50);

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

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.keep += other.keep;
        self.drop += other.drop;
        self.split += other.split;
        self.error += other.error;
        self.invalid += other.invalid;
        self.failed += other.failed;
    }
}

/// One input line of a batch in processing, once parsed.
enum Pending {
    Invalid {
        line: usize,
        error: jsonl::RecordJsonError,
    },
    Record {
        line: usize,
    },
}

/// The lines read since the last batch went out, not yet parsed: parsing is done by the
/// batch's own task, so that with several jobs it runs on every core, not on the one that
/// reads.
#[derive(Default)]
struct Batch {
    lines: Vec<jsonl::InputLine>,
    /// Raw input bytes of the lines.
    bytes: usize,
}

/// A processed batch: its output lines, in input order, and what they were.
struct BatchOutput {
    lines: Vec<String>,
    tally: Tally,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Parses the batch, processes it and returns its output lines, in input order.
    async fn process(self, plugin: TransformPlugin) -> BatchOutput {
        let mut records = Vec::with_capacity(self.lines.len());
        let mut pending = Vec::with_capacity(self.lines.len());
        for line in &self.lines {
            match jsonl::parse_input_line(line) {
                Ok(record) => {
                    records.push(record);
                    pending.push(Pending::Record { line: line.number });
                }
                Err(error) => pending.push(Pending::Invalid {
                    line: line.number,
                    error,
                }),
            }
        }
        drop(self.lines);
        let mut tally = Tally::default();
        let mut results = outcomes(&plugin, &records).await.into_iter();
        let mut lines = Vec::with_capacity(pending.len());
        let mut records = records.iter();
        for pending in pending {
            let json = match pending {
                Pending::Invalid { line, error } => {
                    tally.invalid += 1;
                    jsonl::invalid_input_line(line, &error)
                }
                Pending::Record { line } => {
                    // `outcomes` gives one result per record; the fallbacks only guard it.
                    let key = records.next().map_or("", |record| record.key.as_str());
                    let result = results
                        .next()
                        .unwrap_or_else(|| Err(error_without_outcome(&plugin)));
                    match result {
                        Ok(outcome) => {
                            match outcome {
                                Outcome::Keep(_) => tally.keep += 1,
                                Outcome::Drop(_) => tally.drop += 1,
                                Outcome::Split(_) => tally.split += 1,
                                Outcome::Error(_) => tally.error += 1,
                            }
                            jsonl::outcome_line(line, key, &outcome)
                        }
                        Err(error) => {
                            tally.failed += 1;
                            jsonl::plugin_failure_line(line, key, &error)
                        }
                    }
                }
            };
            lines.push(json);
        }
        BatchOutput { lines, tally }
    }
}

/// One result per record: the batch in one call, or record by record if that fails.
async fn outcomes(
    plugin: &TransformPlugin,
    records: &[Record],
) -> Vec<Result<Outcome, witplug::Error>> {
    if records.is_empty() {
        return Vec::new();
    }
    match plugin.process_batch(records).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        // One record: its own retry would only fail again (a timeout would cost twice).
        Err(error) if records.len() == 1 => vec![Err(error)],
        Err(error) => {
            tracing::warn!(%error, records = records.len(), "batch failed; retrying record by record");
            let mut results = Vec::with_capacity(records.len());
            for record in records {
                let result = plugin
                    .process_batch(std::slice::from_ref(record))
                    .await
                    .and_then(|mut outcomes| {
                        // `process_batch` guarantees one outcome per record.
                        outcomes.pop().ok_or_else(|| error_without_outcome(plugin))
                    });
                results.push(result);
            }
            results
        }
    }
}

/// The batches in processing, oldest first, and where their lines go. Lines are written
/// strictly in this order, so a batch that finishes early waits for the ones before it.
struct InFlight {
    plugin: TransformPlugin,
    jobs: usize,
    batches: VecDeque<JoinHandle<BatchOutput>>,
    out: tokio::io::Stdout,
    tally: Tally,
}

impl InFlight {
    /// Starts processing `batch`; if `jobs` are already in processing, once the oldest is
    /// done. The oldest's lines are written after the new batch has started, so that the
    /// core it leaves does not wait for the write.
    async fn start(&mut self, batch: Batch) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut finished = None;
        while self.batches.len() >= self.jobs {
            if let Some(done) = finished.take() {
                self.write(done).await?;
            }
            if let Some(oldest) = self.batches.pop_front() {
                finished = Some(oldest.await);
            }
        }
        let plugin = self.plugin.clone();
        self.batches.push_back(tokio::spawn(batch.process(plugin)));
        match finished {
            Some(done) => self.write(done).await,
            None => Ok(()),
        }
    }

    /// Waits for the oldest batch and writes its lines.
    async fn write_oldest(&mut self) -> anyhow::Result<()> {
        let Some(oldest) = self.batches.front_mut() else {
            return Ok(());
        };
        let done = oldest.await;
        self.batches.pop_front();
        self.write(done).await
    }

    async fn write(
        &mut self,
        done: Result<BatchOutput, tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let output = done.context("a batch could not be processed")?;
        self.tally.add(&output.tally);
        write_lines(&mut self.out, output.lines).await
    }

    /// Writes every batch's lines, oldest first.
    async fn finish(&mut self) -> anyhow::Result<()> {
        while !self.batches.is_empty() {
            self.write_oldest().await?;
        }
        Ok(())
    }
}

/// Waits for the oldest batch in processing; never, when there is none.
async fn oldest_done(
    batches: &mut VecDeque<JoinHandle<BatchOutput>>,
) -> Result<BatchOutput, tokio::task::JoinError> {
    match batches.front_mut() {
        Some(oldest) => oldest.await,
        None => std::future::pending().await,
    }
}

fn error_without_outcome(plugin: &TransformPlugin) -> witplug::Error {
    witplug::Error::Contract {
        plugin: plugin.name().to_owned(),
        export: "process-batch".to_owned(),
        message: "returned no outcome".to_owned(),
    }
}

fn parse_byte_limit(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(limit) => Ok(limit),
        Err(e) => Err(e.to_string()),
    }
}

/// One input line as the reader thread hands it over, not yet parsed; an `Err` is a
/// failed read, the last message.
type ReadLine = std::io::Result<LineRead>;

struct LineRead {
    line: jsonl::InputLine,
    /// Its length as read (ending excluded; 0 for a line not held, such as an over-long one).
    raw_bytes: usize,
    /// Its share of [`READ_AHEAD_BYTES`], given back when the batcher takes the line.
    _read_ahead: OwnedSemaphorePermit,
}

/// What the main loop waits for.
enum Event {
    Line(Option<ReadLine>),
    /// The oldest batch in processing is done.
    Done(Result<BatchOutput, tokio::task::JoinError>),
    Idle,
    Signal(&'static str, u8),
}

pub async fn run(args: TransformArgs) -> anyhow::Result<ExitCode> {
    // stderr is captured so that a guest's panic message ends up in its failure line.
    let defaults = Streams {
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Capture,
    };
    let resolved = match args.policy.resolve(&args.engine, None, defaults) {
        Ok(resolved) => resolved,
        Err(error) if is_usage_error(&error) => {
            errln!("witplug: {error:#}");
            return Ok(ExitCode::from(USAGE_EXIT));
        }
        Err(error) => return Err(error),
    };
    // The records come on stdin and go to stdout: a plugin must not take or add lines.
    for (stream, setting) in [
        ("stdin", resolved.streams.stdin),
        ("stdout", resolved.streams.stdout),
    ] {
        if setting == Stdio::Inherit {
            errln!(
                "witplug: transform cannot let the plugin inherit {stream}: the records \
                 pass through it (give `null` or, for stdout, `capture`)"
            );
            return Ok(ExitCode::from(USAGE_EXIT));
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let jobs = args.jobs.map_or(cores, |jobs| jobs as usize);
    // One instance per job, and one for the probe at load; the slots sized to fit the
    // process's address space as ever.
    let instances = (jobs as u32 + 1).max(CLI_MAX_INSTANCES);
    let pooling = pooling_for_instances(resolved.limits.max_memory_bytes, instances);
    let runtime = args.engine.runtime_for(&resolved.limits, pooling)?;
    let options = resolved.options();
    crate::log_grants(&options);
    let plugin = TransformPlugin::load(&runtime, &args.component, options).await?;

    let input: OwnedFd = match &args.input {
        Some(path) if path != Path::new("-") => std::fs::File::open(path)
            .with_context(|| format!("could not open input file {}", path.display()))?
            .into(),
        // A duplicate of fd 0, read unbuffered: `Stdin`'s own buffer would hide lines from
        // the readiness poll.
        _ => rustix::io::dup(std::io::stdin().as_fd()).context("opening stdin")?,
    };
    // Installed before reading, so that a signal never kills the process mid-batch.
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    let stop_reading = Arc::new(AtomicBool::new(false));
    let mut lines = spawn_reader(input, args.max_line_bytes, Arc::clone(&stop_reading))?;

    let batch_size = args.batch as usize;
    let mut batch = Batch::default();
    let mut in_flight = InFlight {
        plugin,
        jobs,
        batches: VecDeque::with_capacity(jobs),
        out: tokio::io::stdout(),
        tally: Tally::default(),
    };
    let mut lines_read = 0;
    let mut stopped_by = None;
    // One timer for the idle flush, moved on only when it fires or a batch starts filling:
    // a timer set per line would cost more than the line.
    let idle = tokio::time::sleep(IDLE_FLUSH);
    tokio::pin!(idle);
    let mut last_line = tokio::time::Instant::now();
    let read_error = loop {
        let waiting = !batch.is_empty();
        let listening = stopped_by.is_none();
        let event = tokio::select! {
            biased;
            _ = interrupt.recv(), if listening => Event::Signal("SIGINT", 130),
            _ = terminate.recv(), if listening => Event::Signal("SIGTERM", 143),
            // Finished lines go out before more are read: a live stream sees them now.
            done = oldest_done(&mut in_flight.batches) => Event::Done(done),
            line = lines.recv() => Event::Line(line),
            () = &mut idle, if waiting => Event::Idle,
        };
        match event {
            // The reader hands over what it has read and closes the channel; the lines are
            // processed like any others until then.
            Event::Signal(name, code) => {
                stopped_by = Some((name, code));
                stop_reading.store(true, Ordering::Relaxed);
            }
            Event::Done(done) => {
                in_flight.batches.pop_front();
                in_flight.write(done).await?;
            }
            Event::Idle if last_line.elapsed() < IDLE_FLUSH => {
                idle.as_mut().reset(last_line + IDLE_FLUSH);
            }
            Event::Idle => in_flight.start(std::mem::take(&mut batch)).await?,
            Event::Line(None) => break None,
            Event::Line(Some(Err(error))) => break Some(error),
            Event::Line(Some(Ok(read))) => {
                last_line = tokio::time::Instant::now();
                if batch.is_empty() {
                    idle.as_mut().reset(last_line + IDLE_FLUSH);
                }
                lines_read = read.line.number;
                batch.bytes = batch.bytes.saturating_add(read.raw_bytes);
                batch.lines.push(read.line);
                if batch.lines.len() >= batch_size || batch.bytes >= args.max_batch_bytes {
                    in_flight.start(std::mem::take(&mut batch)).await?;
                }
            }
        }
    };
    // Whatever ended the input, the lines already read are processed and written.
    in_flight.start(batch).await?;
    in_flight.finish().await?;

    let t = &in_flight.tally;
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

/// Reads lines on a thread of its own: a blocking read of stdin there never
/// holds up the exit (a tokio stdin read would, until its next line). Once `stop` is set
/// it sends the complete lines it has buffered, drops a partial one and closes the channel.
fn spawn_reader(
    input: OwnedFd,
    max_line_bytes: usize,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<mpsc::Receiver<ReadLine>> {
    let (sender, receiver) = mpsc::channel(READ_AHEAD);
    let read_ahead = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
    let runtime = tokio::runtime::Handle::current();
    let input = StoppableInput { fd: input, stop };
    let reader = jsonl::LineReader::new(
        std::io::BufReader::with_capacity(64 * 1024, input),
        max_line_bytes,
    );
    std::thread::Builder::new()
        .name("witplug-input".to_owned())
        .spawn(move || {
            for line in reader {
                let line = match line {
                    Ok(line) => line,
                    Err(error) if is_stopped(&error) => break,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(error));
                        break;
                    }
                };
                let raw_bytes = line.text.as_ref().map_or(0, String::len);
                // At least 1 so that even empty lines count; at most the whole budget so
                // that a longer line still passes, alone. The semaphore is never closed.
                let permits = raw_bytes.clamp(1, READ_AHEAD_BYTES) as u32;
                // Blocking (through the runtime) only when it must: most lines find room.
                let permit = match Arc::clone(&read_ahead).try_acquire_many_owned(permits) {
                    Ok(permit) => permit,
                    Err(_) => match runtime
                        .block_on(Arc::clone(&read_ahead).acquire_many_owned(permits))
                    {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                };
                let message = Ok(LineRead {
                    line,
                    raw_bytes,
                    _read_ahead: permit,
                });
                // A closed channel means the batcher has stopped (closed stdout).
                let sent = match sender.try_send(message) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(message)) => sender.blocking_send(message),
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                };
                if sent.is_err() {
                    break;
                }
            }
        })
        .context("starting the input reader thread")?;
    Ok(receiver)
}

/// What [`StoppableInput`] fails with once told to stop.
#[derive(Debug, thiserror::Error)]
#[error("input reading stopped by a signal")]
struct Stopped;

fn is_stopped(error: &std::io::Error) -> bool {
    error.get_ref().is_some_and(|inner| inner.is::<Stopped>())
}

/// The input, read only while `stop` is unset: a read waits for data in steps of
/// [`STOP_POLL`], so that a reader blocked on an idle pipe notices the stop.
struct StoppableInput {
    fd: OwnedFd,
    stop: Arc<AtomicBool>,
}

impl Read for StoppableInput {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: STOP_POLL.as_nanos() as _,
        };
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Err(std::io::Error::other(Stopped));
            }
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                // Readable, closed or failed: the read tells which.
                Ok(ready) if ready > 0 => break,
                Ok(_) | Err(rustix::io::Errno::INTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
        rustix::io::read(&self.fd, buf).map_err(Into::into)
    }
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
