//! `witplug serve`: `wasi:http/proxy` components over HTTP, one fresh instance per request.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use witplug::{HttpGrant, Stdio};
use witplug_http::app::{self, App, MAX_CONCURRENT};
use witplug_http::{BodyLimits, RouteSpec, Server, ServerConfig};

use crate::engine_args::{EngineArgs, pooling_for_instances};
use crate::policy_args::{PolicyArgs, Streams, UsageError};

/// Serve `wasi:http/proxy` components: a fresh isolated instance per request.
///
/// Outbound HTTP is denied unless `--allow-http` (or a policy's `grants.http`) names the
/// origin. Handler output is logged, attributed to the route. SIGTERM or Ctrl-C stops
/// accepting and lets requests in flight finish.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The handler component, served at `/` (or use `--app`).
    #[arg(
        value_name = "COMPONENT",
        required_unless_present = "app",
        conflicts_with = "app"
    )]
    component: Option<PathBuf>,

    /// An app file (TOML) mapping route prefixes to components, each with its own policy.
    #[arg(long, value_name = "FILE")]
    app: Option<PathBuf>,

    /// Address to listen on (port 0 picks a free one) [default: 127.0.0.1:8080, or the
    /// app file's `addr`].
    #[arg(long, value_name = "IP:PORT")]
    addr: Option<SocketAddr>,

    /// Allow outbound HTTP to an origin: SCHEME://HOST[:PORT], HOST may be `*.SUFFIX` or
    /// `*`, PORT may be `*` (repeatable).
    #[arg(long = "allow-http", value_name = "PATTERN", value_parser = parse_grant)]
    allow_http: Vec<HttpGrant>,

    /// Requests handled at once; more get a 503 at once [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_CONCURRENT as i64))]
    max_concurrent: Option<u32>,

    /// Largest request body, in KiB (1 to 1048576) [default: 1024].
    #[arg(long = "max-request-body-kib", value_name = "KIB", value_parser = parse_body_kib)]
    max_request_body: Option<usize>,

    /// Largest response body, in KiB (1 to 1048576) [default: 8192].
    #[arg(long = "max-response-body-kib", value_name = "KIB", value_parser = parse_body_kib)]
    max_response_body: Option<usize>,

    /// Let one instance serve up to N requests (trusted handlers only: what a handler
    /// keeps in memory is then seen by later requests) [default: 1, a fresh instance
    /// each].
    #[arg(long, value_name = "N")]
    reuse: Option<u32>,

    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<String>,

    /// Reload a component when its file changes; requests in flight finish on the old one.
    #[arg(long)]
    watch: bool,

    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    engine: EngineArgs,
}

fn parse_grant(text: &str) -> Result<HttpGrant, String> {
    text.parse()
        .map_err(|e: witplug::HttpGrantError| e.to_string())
}

fn parse_body_kib(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .and_then(app::body_limit)
        .ok_or_else(|| format!("give 1 to {} KiB, not `{text}`", app::MAX_BODY_KIB))
}

/// Handler output is logged per route: many instances write at once.
const SERVE_STREAMS: Streams = Streams {
    stdin: Stdio::Null,
    stdout: Stdio::Log,
    stderr: Stdio::Log,
};

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let resolved = args.policy.resolve(&args.engine, None, SERVE_STREAMS)?;
    let mut base = resolved.options();
    for grant in &args.allow_http {
        base.capabilities = base.capabilities.allow_http(grant.clone());
    }
    if let Some(reuse) = args.reuse {
        base = base.reuse(app::reuse_of(reuse));
    }
    let flag_body = |limits: BodyLimits| BodyLimits {
        max_request_bytes: args.max_request_body.unwrap_or(limits.max_request_bytes),
        max_response_bytes: args.max_response_body.unwrap_or(limits.max_response_bytes),
    };
    let (specs, file_addr, file_concurrency) = match (&args.app, &args.component) {
        (Some(path), _) => {
            let app = App::from_file(path)?;
            let mut specs = app.route_specs(&base)?;
            for spec in &mut specs {
                spec.body = flag_body(spec.body);
            }
            (specs, app.addr.clone(), app.max_concurrent)
        }
        (None, Some(component)) => {
            let spec = RouteSpec {
                name: app::stem(component),
                prefix: "/".to_owned(),
                component: component.clone(),
                options: base,
                body: flag_body(BodyLimits::default()),
            };
            (vec![spec], None, None)
        }
        (None, None) => return Err(UsageError("give a COMPONENT or --app FILE".into()).into()),
    };
    let addr = match (args.addr, file_addr) {
        (Some(addr), _) => addr,
        (None, Some(text)) => text
            .parse()
            .map_err(|_| UsageError(format!("the app file's `addr` is not IP:PORT: `{text}`")))?,
        (None, None) => ServerConfig::default().addr,
    };
    let max_concurrent = args
        .max_concurrent
        .map(|n| n as usize)
        .or(file_concurrency)
        .unwrap_or(ServerConfig::default().max_concurrent);
    for spec in &specs {
        crate::log_grants(&spec.options);
    }

    // One pool for every route: room for every request in flight, the instances kept for
    // reuse and each route's load-time probe; slots as large as the largest memory limit.
    let max_memory = specs
        .iter()
        .map(|spec| spec.options.limits.max_memory_bytes)
        .max()
        .unwrap_or(resolved.limits.max_memory_bytes);
    let idle = specs
        .iter()
        .filter(|spec| spec.options.reuse != witplug::InstanceReuse::Never)
        .count()
        * 64;
    let instances = u32::try_from(max_concurrent + idle + specs.len() + 1).unwrap_or(u32::MAX);
    let mut limits = resolved.limits.clone();
    limits.fuel_per_call = specs.iter().find_map(|s| s.options.limits.fuel_per_call);
    let runtime = args
        .engine
        .runtime_for(&limits, pooling_for_instances(max_memory, instances))?;

    let config = ServerConfig {
        addr,
        max_concurrent,
        watch: args.watch,
        ..ServerConfig::default()
    };
    let server = Server::bind(&runtime, specs, config).await?;
    let bound = server.local_addr().context("reading the bound address")?;
    for route in server.routes() {
        tracing::info!(route = route.name(), prefix = route.prefix(), digest = %route.version().digest, "serving");
    }
    let metrics_task = match &args.metrics {
        Some(addr) => {
            let (bound, task) = witplug_metrics::serve(addr, server.metrics().registry()).await?;
            Some((bound, task))
        }
        None => None,
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{bound}")?;
        if let Some((bound, _)) = &metrics_task {
            writeln!(stdout, "metrics on http://{bound}/metrics")?;
        }
        stdout.flush()?;
    }
    server.run(shutdown_signal()).await;
    if let Some((_, task)) = metrics_task {
        task.abort();
    }
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM or SIGINT. If the handlers cannot be installed, Ctrl-C alone.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received: shutting down");
    // Let the log line out before the connections close.
    tokio::time::sleep(Duration::from_millis(1)).await;
}
