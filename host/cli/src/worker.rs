//! `witplug worker`: a transform plugin applied to every record of a JetStream stream.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use witplug::{Capabilities, PluginConfig, PluginOptions, Runtime, RuntimeConfig, Stdio};
use witplug_nats::jetstream::{self as js, ConsumerSettings, JetStreamSink, JetStreamSource};
use witplug_nats::{Metrics, Registry, TransformSlot, WorkerSettings, registry};

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

    /// Plugin configuration entry (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// Inputs per plugin call [default: 64].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch: Option<u32>,

    /// Batches in flight at once, each on its own instance [default: number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    concurrency: Option<u32>,

    /// Deliveries of an input the plugin keeps failing on before it is dead-lettered
    /// (for a consumer this worker creates) [default: 4].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_deliver: Option<u32>,

    /// How long an unacked input waits before it is delivered again (for a consumer this
    /// worker creates) [default: 30000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    ack_wait_ms: Option<u64>,

    /// Delay before an input the plugin failed on is delivered again [default: 1000].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    retry_delay_ms: Option<u64>,

    /// Larger inputs are dead-lettered without reaching the plugin [default: 1048576].
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u64).range(1..=(64 << 20)))]
    max_record_bytes: Option<u64>,

    /// Inputs delivered and not yet acked across all workers (for a consumer this worker
    /// creates) [default: 10000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_ack_pending: Option<u32>,

    /// Serve Prometheus metrics at http://ADDR/metrics, e.g. 127.0.0.1:9464.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,

    /// Read these settings from a TOML file (keys are the flag names without `--`,
    /// `config` a table); a flag given too overrides the file.
    #[arg(long, value_name = "FILE")]
    config_file: Option<PathBuf>,

    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
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
    #[serde(default)]
    config: BTreeMap<String, String>,
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
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read worker config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("worker config {}", path.display()))
}

/// Flag if given, else file, else nothing.
fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

fn required(value: Option<String>, flag: &str) -> anyhow::Result<String> {
    match value {
        Some(value) if !value.is_empty() => Ok(value),
        _ => bail!("missing --{flag} (or `{flag}` in --config-file)"),
    }
}

fn checked_range<T: PartialOrd + std::fmt::Display + Copy>(
    value: Option<T>,
    key: &str,
    low: T,
    high: T,
) -> anyhow::Result<Option<T>> {
    match value {
        Some(v) if v < low || v > high => {
            bail!("`{key}` in --config-file: {v} is not in {low}..={high}")
        }
        other => Ok(other),
    }
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config_file {
        Some(path) => read_file(path)?,
        None => WorkerFile::default(),
    };
    // The file's numbers get the flags' ranges.
    let file_batch = checked_range(file.batch, "batch", 1, 10_000)?;
    let file_concurrency = checked_range(file.concurrency, "concurrency", 1, 256)?;
    let file_max_deliver = checked_range(file.max_deliver, "max-deliver", 1, 1000)?;
    let file_ack_wait = checked_range(file.ack_wait_ms, "ack-wait-ms", 100, 86_400_000)?;
    let file_retry = checked_range(file.retry_delay_ms, "retry-delay-ms", 0, 3_600_000)?;
    let file_max_record = checked_range(file.max_record_bytes, "max-record-bytes", 1, 64 << 20)?;
    let file_pending = checked_range(file.max_ack_pending, "max-ack-pending", 1, 1_000_000)?;

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

    let mut config = PluginConfig::new();
    for (key, value) in &file.config {
        config = config.set_spec(&format!("{key}={value}"))?;
    }
    for spec in &args.config {
        config = config.set_spec(spec)?;
    }

    // Every batch in flight holds an instance, a swap's type check one more.
    let mut pooling = args.engine.pooling();
    pooling.max_instances = pooling.max_instances.max(concurrency.saturating_mul(2) + 2);
    let limits = args.engine.limits();
    let runtime = Runtime::with_config(RuntimeConfig {
        fuel_metering: limits.fuel_per_call.is_some(),
        cache_dir: args.engine.cache_dir(),
        pooling: Some(pooling),
        ..RuntimeConfig::default()
    })?;
    let options = PluginOptions::default()
        .capabilities(Capabilities::none().stderr(Stdio::Capture))
        .config(config)
        .limits(limits);
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
            let follower = tokio::spawn(registry.follow(
                runtime.clone(),
                name.to_owned(),
                revision,
                options,
                Arc::clone(&slot),
                Arc::clone(&metrics),
                worker_id.clone(),
            ));
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
    // Enough buffered for every batch in flight and the next ones.
    let prefetch = (batch as usize)
        .saturating_mul(concurrency as usize)
        .saturating_mul(2);
    let source = JetStreamSource::open(&context, &settings, prefetch).await?;
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
    let uname = rustix::system::uname();
    format!(
        "{}:{}",
        uname.nodename().to_string_lossy(),
        std::process::id()
    )
}
