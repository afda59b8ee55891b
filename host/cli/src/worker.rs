//! `witplug worker`: a transform plugin applied to every record of a JetStream stream.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use witplug::Stdio;
use witplug_nats::jetstream::{self as js, ConsumerSettings, JetStreamSink, JetStreamSource};
use witplug_nats::{Metrics, Registry, TransformSlot, WorkerSettings, registry};

use crate::engine_args::{CLI_MAX_INSTANCES, pooling_for_instances};
use crate::output::errln;
use crate::policy_args::{Streams, USAGE_EXIT, UsageError, is_usage_error};

/// Apply a transform plugin to every record of a NATS JetStream stream.
///
/// Inputs are pulled from a durable consumer (created if missing) that every worker of the
/// pipeline shares; each input is one record as JSON (the `witplug transform` input form).
/// Kept and split records go to --output, one message per record; error outcomes and bad
/// inputs go to --dead-letter with the original payload and headers naming the error; a
/// record the plugin fails on is delivered again until --max-deliver, then dead-lettered.
/// An input is acked only after everything it produced is stored, and every output carries
/// a `Nats-Msg-Id` derived from its input, so a redelivery (after a crash) publishes nothing
/// twice: the output streams' duplicate window must cover ack wait x max deliver (checked
/// at start). SIGTERM/SIGINT: stop taking inputs, finish the batches in flight, exit 0.
///
/// Examples:
///   witplug worker email-normalizer.wasm --nats nats://127.0.0.1:4222 --input records \
///       --consumer normalizer --output records.clean --dead-letter records.failed
///   witplug worker nats:normalizer --config-file worker.toml
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct WorkerArgs {
    /// The transform plugin: a .wasm file, or `nats:NAME` for the version active in the
    /// registry (see `witplug publish`), followed as new versions are published.
    #[arg(value_name = "PLUGIN")]
    plugin: Option<String>,

    /// NATS server URL [default: nats://127.0.0.1:4222].
    #[arg(long, value_name = "URL")]
    nats: Option<String>,

    /// The JetStream stream holding the input records.
    #[arg(long, value_name = "STREAM")]
    input: Option<String>,

    /// The durable consumer name every worker of this pipeline shares.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,

    /// Subject for kept and split records.
    #[arg(long, value_name = "SUBJECT")]
    output: Option<String>,

    /// Subject for inputs that failed (error outcomes, bad inputs, plugin failures).
    #[arg(long, value_name = "SUBJECT")]
    dead_letter: Option<String>,

    /// Subject for a notice of each dropped record [default: drops are only counted].
    #[arg(long, value_name = "SUBJECT")]
    dropped: Option<String>,

    /// Inputs per plugin call [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(flag_range(BATCH_RANGE)))]
    batch: Option<u32>,

    /// Batches in flight at once, each on its own instance [default: number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(flag_range(CONCURRENCY_RANGE)))]
    concurrency: Option<u32>,

    /// Deliveries of an input the plugin keeps failing on before it is dead-lettered
    /// (for a consumer this worker creates) [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(flag_range(MAX_DELIVER_RANGE)))]
    max_deliver: Option<u32>,

    /// How long an unacked input waits before it is delivered again (for a consumer this
    /// worker creates) [default: 30000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(ACK_WAIT_MS_RANGE))]
    ack_wait_ms: Option<u64>,

    /// Delay before an input the plugin failed on is delivered again [default: 1000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(RETRY_DELAY_MS_RANGE))]
    retry_delay_ms: Option<u64>,

    /// Larger inputs are dead-lettered without reaching the plugin [default: 1048576].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(MAX_RECORD_BYTES_RANGE))]
    max_record_bytes: Option<u64>,

    /// Inputs delivered and not yet acked across all workers (for a consumer this worker
    /// creates) [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(flag_range(MAX_ACK_PENDING_RANGE)))]
    max_ack_pending: Option<u32>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,

    /// Read these settings from a TOML file: keys are the flag names without `--`, and a
    /// `[policy]` table is a policy (as for --policy); a flag given too overrides the file.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,

    /// Grants, plugin configuration, stdio.
    #[command(flatten)]
    policy: crate::policy_args::PolicyArgs,

    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
}

/// Each setting's range, for its flag and its `--config-file` key alike.
const BATCH_RANGE: RangeInclusive<u32> = 1..=10_000;
const CONCURRENCY_RANGE: RangeInclusive<u32> = 1..=256;
const MAX_DELIVER_RANGE: RangeInclusive<u32> = 1..=1000;
const ACK_WAIT_MS_RANGE: RangeInclusive<u64> = 100..=86_400_000;
const RETRY_DELAY_MS_RANGE: RangeInclusive<u64> = 0..=3_600_000;
const MAX_RECORD_BYTES_RANGE: RangeInclusive<u64> = 1..=64 << 20;
const MAX_ACK_PENDING_RANGE: RangeInclusive<u32> = 1..=1_000_000;

/// A `u32` range in the form clap's `u32` parser takes (`i64` bounds).
fn flag_range(range: RangeInclusive<u32>) -> RangeInclusive<i64> {
    i64::from(*range.start())..=i64::from(*range.end())
}

/// The `--config-file` schema: the flags' names and meanings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct WorkerFile {
    plugin: Option<String>,
    nats: Option<String>,
    input: Option<String>,
    consumer: Option<String>,
    output: Option<String>,
    dead_letter: Option<String>,
    dropped: Option<String>,
    /// The plugin's grants, configuration and limits: the `--policy` schema.
    policy: Option<witplug::Policy>,
    batch: Option<u32>,
    concurrency: Option<u32>,
    max_deliver: Option<u32>,
    ack_wait_ms: Option<u64>,
    retry_delay_ms: Option<u64>,
    max_record_bytes: Option<u64>,
    max_ack_pending: Option<u32>,
    metrics: Option<String>,
}

fn read_file(path: &Path) -> anyhow::Result<WorkerFile> {
    let text = witplug::policy::read_toml_file(path)?;
    let origin = path.display().to_string();
    let mut file: WorkerFile = witplug::policy::parse_toml(&text, &origin)?;
    // Relative host paths of the policy are relative to the file, as for --policy.
    let base_dir = path.parent().unwrap_or(Path::new("."));
    file.policy = file.policy.map(|policy| {
        policy
            .resolve_paths(base_dir)
            .with_origin(&origin, Some("policy"))
    });
    Ok(file)
}

/// Flag if given, else file, else nothing.
fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

fn required(value: Option<String>, flag: &str) -> anyhow::Result<String> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(UsageError(format!("missing --{flag} (or `{flag}` in --config-file)")).into()),
    }
}

fn checked_range<T: PartialOrd + std::fmt::Display + Copy>(
    value: Option<T>,
    key: &str,
    range: RangeInclusive<T>,
) -> anyhow::Result<Option<T>> {
    match value {
        Some(v) if !range.contains(&v) => Err(UsageError(format!(
            "`{key}` in --config-file: {v} is not in {}..={}",
            range.start(),
            range.end()
        ))
        .into()),
        other => Ok(other),
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    match serve(args).await {
        Err(error) if is_usage_error(&error) => {
            errln!("witplug: {error:#}");
            Ok(ExitCode::from(USAGE_EXIT))
        }
        other => other,
    }
}

async fn serve(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let mut file = match &args.config_file {
        Some(path) => read_file(path)?,
        None => WorkerFile::default(),
    };
    // The file's numbers get the flags' ranges.
    let file_batch = checked_range(file.batch, "batch", BATCH_RANGE)?;
    let file_concurrency = checked_range(file.concurrency, "concurrency", CONCURRENCY_RANGE)?;
    let file_max_deliver = checked_range(file.max_deliver, "max-deliver", MAX_DELIVER_RANGE)?;
    let file_ack_wait = checked_range(file.ack_wait_ms, "ack-wait-ms", ACK_WAIT_MS_RANGE)?;
    let file_retry = checked_range(file.retry_delay_ms, "retry-delay-ms", RETRY_DELAY_MS_RANGE)?;
    let file_max_record = checked_range(
        file.max_record_bytes,
        "max-record-bytes",
        MAX_RECORD_BYTES_RANGE,
    )?;
    let file_pending = checked_range(
        file.max_ack_pending,
        "max-ack-pending",
        MAX_ACK_PENDING_RANGE,
    )?;

    let plugin_spec = required(pick(args.plugin, file.plugin), "plugin (PLUGIN argument)")?;
    let url = pick(args.nats, file.nats).unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let input = required(pick(args.input, file.input), "input")?;
    let consumer = required(pick(args.consumer, file.consumer), "consumer")?;
    let output = required(pick(args.output, file.output), "output")?;
    let dead_letter = required(pick(args.dead_letter, file.dead_letter), "dead-letter")?;
    let dropped = pick(args.dropped, file.dropped);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let concurrency = pick(args.concurrency, file_concurrency).unwrap_or(cores);
    let batch = pick(args.batch, file_batch).unwrap_or(64);

    // stderr is captured so that a guest's panic message ends up in its dead letter.
    let defaults = Streams {
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Capture,
    };
    let resolved = args
        .policy
        .resolve(&args.engine, file.policy.take(), defaults)?;
    // Every batch in flight holds an instance, a swap's type check one more; the slots
    // sized to fit the process's address space for that many.
    let instances = concurrency
        .saturating_mul(2)
        .saturating_add(2)
        .max(CLI_MAX_INSTANCES);
    let pooling = pooling_for_instances(resolved.limits.max_memory_bytes, instances);
    let runtime = args.engine.runtime_for(&resolved.limits, pooling)?;
    let options = resolved.options();
    crate::log_grants(&options);

    let client = js::connect(&url).await?;
    let context = async_nats::jetstream::new(client.clone());
    let metrics = Arc::new(Metrics::new());
    let worker_id = worker_id();

    // The plugin, and for `nats:NAME` the task that follows its new versions.
    let (slot, follower) = match plugin_spec.strip_prefix("nats:") {
        Some(name) => {
            let registry = Registry::open(&context).await?;
            let (plugin, version, revision) = registry
                .load_active(&runtime, name, options.clone())
                .await?;
            tracing::info!(plugin = %name, digest = %version.digest, version = %version.version, "plugin loaded");
            metrics.plugin_in_use(&version);
            let slot = Arc::new(TransformSlot::new(plugin, version));
            let follower = tokio::spawn(registry.follow(registry::Follow {
                runtime: runtime.clone(),
                name: name.to_owned(),
                revision,
                options,
                slot: Arc::clone(&slot),
                metrics: Arc::clone(&metrics),
                worker_id: worker_id.clone(),
            }));
            (slot, Some(follower))
        }
        None => {
            let bytes = witplug::component::read_wasm_file(Path::new(&plugin_spec))?;
            let (plugin, version) =
                registry::load_transform(&runtime, &bytes, &plugin_spec, options).await?;
            metrics.plugin_in_use(&version);
            (Arc::new(TransformSlot::new(plugin, version)), None)
        }
    };

    let settings = ConsumerSettings {
        stream: input,
        durable: consumer,
        max_deliver: pick(args.max_deliver, file_max_deliver).unwrap_or(4),
        ack_wait: Duration::from_millis(pick(args.ack_wait_ms, file_ack_wait).unwrap_or(30_000)),
        max_ack_pending: pick(args.max_ack_pending, file_pending).unwrap_or(10_000),
    };
    let source = JetStreamSource::open(&context, &settings).await?;
    let limits = source.limits();
    let mut destinations = vec![("output", &output), ("dead-letter", &dead_letter)];
    if let Some(dropped) = &dropped {
        destinations.push(("dropped", dropped));
    }
    for (role, subject) in destinations {
        js::check_destination(&context, role, subject, limits.redelivery_span()).await?;
    }

    let metrics_task = match pick(args.metrics, file.metrics) {
        Some(addr) => {
            let (bound, task) = witplug_nats::metrics::serve(&addr, Arc::clone(&metrics)).await?;
            tracing::info!(%bound, "serving metrics at /metrics");
            Some(task)
        }
        None => None,
    };

    let worker_settings = WorkerSettings {
        output_subject: output,
        dead_letter_subject: dead_letter,
        dropped_subject: dropped,
        batch: batch as usize,
        concurrency: concurrency as usize,
        max_deliver: limits.max_deliver,
        retry_delay: Duration::from_millis(pick(args.retry_delay_ms, file_retry).unwrap_or(1000)),
        max_record_bytes: pick(args.max_record_bytes, file_max_record)
            .unwrap_or(witplug::jsonl::DEFAULT_MAX_LINE_BYTES as u64)
            as usize,
    };
    tracing::info!(worker = %worker_id, concurrency, batch, "worker started");

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: finishing the batches in flight"),
            _ = sigint.recv() => tracing::info!("SIGINT: finishing the batches in flight"),
        }
    };
    let result = witplug_nats::worker::run(
        source,
        JetStreamSink::new(&client),
        slot,
        worker_settings,
        Arc::clone(&metrics),
        shutdown,
    )
    .await;
    if let Some(follower) = follower {
        follower.abort();
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    // Acks already went out as double acks; flush anything else still buffered.
    if let Err(error) = client.flush().await {
        tracing::warn!(%error, "flushing the NATS connection");
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Names this worker in refusals written to the registry: host and process.
fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host}:{}", std::process::id())
}
