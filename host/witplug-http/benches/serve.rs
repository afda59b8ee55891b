//! `cargo xtask bench serve`: `witplug serve` against `wasmtime serve` 48 and a native
//! hyper server doing the same work, and per-request instance start against bare wasmtime.
//!
//! - Instance start (in process): a fresh instance of the Rust (and Go) hello handler from
//!   a `Plugin<HttpHandler>` built as `witplug serve` builds it, against wasmtime's own
//!   `ProxyPre::instantiate_async` on the same `Engine` (so the same pooling allocator),
//!   with the `WasiCtx` and `WasiHttpCtx` a bare embedder gives each request.
//! - Load (processes): `wrk` on loopback against the release `witplug serve`, `wasmtime
//!   serve` (when a `wasmtime` 48 is on PATH) and `bench/native-http`, for the hello and
//!   the auth handlers in Rust and Go. Each server runs pinned to CPU 1 and `wrk` to CPU 0,
//!   so that the load generator and the server do not fight for a core.
//!
//! Every comparison is made of interleaved rounds; a ratio is the median of the per-round
//! ratios, printed with its interquartile range, so that drift on a shared machine hits
//! both sides alike and shows in the spread. Prints Markdown on stdout.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use wasmtime::Store;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use witplug::{LoadedComponent, PluginOptions, Pooling, Runtime, RuntimeConfig};
use witplug_http::{BodyLimits, RouteSpec};

const AUTH_KEY: &str = "bench-key";
/// Load per run and rounds per comparison: 3 s runs, 5 rounds, after a 1 s warm-up.
const RUN: &str = "3s";
const WARMUP: &str = "1s";
const ROUNDS: usize = 5;
const CONNECTIONS: &str = "16";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn file(relative: &str, hint: &str) -> PathBuf {
    let path = root().join(relative);
    assert!(path.is_file(), "{} is missing: {hint}", path.display());
    path
}

fn guest(name: &str) -> PathBuf {
    file(
        &format!("target/guests/{name}.wasm"),
        "run `cargo xtask build`",
    )
}

// ---------------------------------------------------------------------------------------
// Statistics

/// Median and interquartile range of per-round ratios.
fn ratio_summary(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.2}x (IQR {:.2}-{:.2}, {} rounds)",
        at(0.5),
        at(0.25),
        at(0.75),
        ratios.len()
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn us(seconds: f64) -> String {
    format!("{:.1} us", seconds * 1e6)
}

// ---------------------------------------------------------------------------------------
// Instance start

/// What a bare wasmtime embedder keeps per request for a `wasi:http/proxy` instance.
struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: Default::default(),
        }
    }
}

/// The pool `witplug serve` sets up at its defaults (100 requests at once, 64 MiB memories,
/// bounds checks elided): the CLI's sizing, repeated here because the CLI is a binary.
fn serve_runtime() -> Runtime {
    let pooling = Pooling {
        max_instances: 102,
        memories_per_instance: 2,
        max_memory_bytes: 64 << 20,
        elide_bounds_checks: true,
        ..Pooling::default()
    };
    Runtime::with_config(RuntimeConfig {
        pooling: Some(pooling),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

struct StartRound {
    witplug: Vec<Duration>,
    bare: Vec<Duration>,
}

async fn instance_start(rows: &mut Vec<[String; 4]>, name: &str, per_round: usize) {
    let path = guest(name);
    let runtime = serve_runtime();
    let spec = RouteSpec {
        name: name.to_owned(),
        prefix: "/".to_owned(),
        component: path.clone(),
        options: PluginOptions::default(),
        body: BodyLimits::default(),
    };
    let plugin = witplug_http::route::load_plugin(&runtime, &spec)
        .await
        .expect("plugin");

    let engine = runtime.engine().clone();
    let mut linker: Linker<Bare> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).expect("wasi-http");
    let component = LoadedComponent::from_file(&runtime, &path).expect("load");
    let pre = ProxyPre::new(
        linker
            .instantiate_pre(component.component())
            .expect("instantiate_pre"),
    )
    .expect("proxy pre");

    let bare_start = || async {
        let started = Instant::now();
        let mut store = Store::new(
            &engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                http: WasiHttpCtx::new(),
                table: ResourceTable::new(),
            },
        );
        // The engine checks epochs (witplug's deadlines): a bare store needs a deadline.
        store.set_epoch_deadline(u64::MAX / 2);
        let proxy = pre
            .instantiate_async(&mut store)
            .await
            .expect("instantiate");
        drop((proxy, store));
        started.elapsed()
    };
    let witplug_start = || async {
        let started = Instant::now();
        let instance = plugin.checkout().await.expect("instance");
        drop(instance);
        started.elapsed()
    };

    for _ in 0..per_round / 4 {
        bare_start().await;
        witplug_start().await;
    }
    let mut rounds = Vec::new();
    for _ in 0..15 {
        let mut round = StartRound {
            witplug: Vec::with_capacity(per_round),
            bare: Vec::with_capacity(per_round),
        };
        // Alternate one by one: drift hits both sides alike.
        for _ in 0..per_round {
            round.bare.push(bare_start().await);
            round.witplug.push(witplug_start().await);
        }
        round.witplug.sort_unstable();
        round.bare.sort_unstable();
        rounds.push(round);
    }
    for (label, q) in [("p50", 0.5), ("p99", 0.99)] {
        let pick = |side: &dyn Fn(&StartRound) -> &Vec<Duration>| {
            rounds
                .iter()
                .map(|r| percentile(side(r), q).as_secs_f64())
                .collect::<Vec<_>>()
        };
        let witplug = pick(&|r| &r.witplug);
        let bare = pick(&|r| &r.bare);
        let ratios = witplug.iter().zip(&bare).map(|(w, b)| w / b).collect();
        rows.push([
            format!("instance start, {name}, fresh per request, {label}"),
            us(median(witplug)),
            format!("{} bare wasmtime, same pool", us(median(bare))),
            ratio_summary(ratios),
        ]);
    }
}

// ---------------------------------------------------------------------------------------
// Servers under load

/// A server process of this run, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which stream announces the address, and how.
enum Announce {
    /// `listening on http://ADDR` on stdout (witplug, native-http).
    Stdout,
    /// `Serving HTTP on http://ADDR/` on stderr (wasmtime serve).
    Stderr,
}

impl Server {
    fn start(mut command: Command, announce: Announce) -> Server {
        let what = format!("{command:?}");
        let mut pinned = Command::new("taskset");
        pinned.args(["-c", "1"]).arg(command.get_program());
        pinned.args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => pinned.env(key, value),
                None => pinned.env_remove(key),
            };
        }
        command = pinned;
        match announce {
            Announce::Stdout => command.stdout(Stdio::piped()).stderr(Stdio::inherit()),
            Announce::Stderr => command.stdout(Stdio::null()).stderr(Stdio::piped()),
        };
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let stream: Box<dyn std::io::Read + Send> = match announce {
            Announce::Stdout => Box::new(child.stdout.take().expect("piped stdout")),
            Announce::Stderr => Box::new(child.stderr.take().expect("piped stderr")),
        };
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stream).lines();
            for line in lines.by_ref().map_while(Result::ok) {
                let found = line
                    .split_once("http://")
                    .map(|(_, rest)| rest.trim_end_matches('/').to_owned());
                if let Some(addr) = found {
                    let _ = sender.send(addr);
                    break;
                }
            }
            // Keep draining so that the server never blocks on a full pipe.
            for _ in lines {}
        });
        let addr = receiver
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{what} did not announce its address in 120 s"));
        let addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("{what} announced `{addr}`, not an address"));
        Server { child, addr }
    }
}

/// One GET over a fresh connection: status and body, to check a server's answer before
/// loading it.
fn get(addr: SocketAddr, authorization: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!("GET / HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(value) = authorization {
        request.push_str(&format!("authorization: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// What one `wrk` run measured.
struct Load {
    requests_per_second: f64,
    p50: f64,
    p99: f64,
}

/// `wrk` output's `50%    1.23ms` style durations, in seconds.
fn wrk_duration(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => return None,
    };
    Some(number * scale)
}

fn parse_wrk(output: &str) -> Result<Load, String> {
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = wrk_duration(rest.trim());
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = wrk_duration(rest.trim());
        } else if line.starts_with("Non-2xx") || line.starts_with("Socket errors") {
            return Err(format!("wrk saw failures: {line}"));
        }
    }
    match (rps, p50, p99) {
        (Some(requests_per_second), Some(p50), Some(p99)) => Ok(Load {
            requests_per_second,
            p50,
            p99,
        }),
        _ => Err(format!("unreadable wrk output:\n{output}")),
    }
}

fn wrk(addr: SocketAddr, duration: &str, authorization: Option<&str>) -> Load {
    let mut command = Command::new("taskset");
    command.args([
        "-c",
        "0",
        "wrk",
        "-t1",
        "-c",
        CONNECTIONS,
        "-d",
        duration,
        "--latency",
    ]);
    if let Some(value) = authorization {
        command.arg("-H").arg(format!("authorization: {value}"));
    }
    command.arg(format!("http://{addr}/"));
    let output = command
        .output()
        .expect("wrk on PATH (`apt-get install wrk`; `cargo xtask bench serve` checks)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    parse_wrk(&text).unwrap_or_else(|e| panic!("http://{addr}/: {e}"))
}

/// A bearer token the auth handlers accept (valid until 2100).
fn auth_token() -> String {
    let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"bench-user","exp":4102444800}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(AUTH_KEY.as_bytes()).expect("any key length");
    mac.update(payload.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("Bearer {payload}.{signature}")
}

/// `wasmtime` from `WITPLUG_BENCH_WASMTIME` or PATH, if it is version 48.
fn wasmtime_binary() -> Option<PathBuf> {
    let path = std::env::var_os("WITPLUG_BENCH_WASMTIME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("wasmtime"));
    let output = Command::new(&path).arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&output.stdout);
    version.starts_with("wasmtime 48.").then_some(path)
}

#[derive(Clone, Copy, PartialEq)]
enum Job {
    Hello,
    Auth,
}

impl Job {
    fn name(self) -> &'static str {
        match self {
            Job::Hello => "hello",
            Job::Auth => "auth",
        }
    }
}

/// The servers of one handler in one language, and what each measured per round.
struct Contest {
    label: String,
    job: Job,
    servers: Vec<(String, Server)>,
    loads: Vec<Vec<Load>>,
}

fn witplug_server(component: &Path, job: Job) -> Server {
    let mut command = Command::new(file(
        "target/release/witplug",
        "`cargo xtask bench serve` builds it",
    ));
    command.args(["serve", "--addr", "127.0.0.1:0"]);
    if job == Job::Auth {
        command.arg("--config").arg(format!("auth-key={AUTH_KEY}"));
    }
    command.arg(component);
    Server::start(command, Announce::Stdout)
}

fn wasmtime_server(wasmtime: &Path, component: &Path, job: Job) -> Server {
    let mut command = Command::new(wasmtime);
    // `-Scli`: the handlers import wasi:cli interfaces (through std or Go's adapter).
    command.args(["serve", "--addr", "127.0.0.1:0", "-Scli"]);
    if job == Job::Auth {
        command
            .arg("-Sconfig")
            .arg(format!("-Sconfig-var=auth-key={AUTH_KEY}"));
    }
    command.arg(component);
    Server::start(command, Announce::Stderr)
}

fn native_server(job: Job) -> Server {
    let mut command = Command::new(file(
        "target/native-http/release/native-http",
        "`cargo xtask bench serve` builds it",
    ));
    command.args([job.name(), "127.0.0.1:0"]);
    command.env("AUTH_KEY", AUTH_KEY);
    Server::start(command, Announce::Stdout)
}

fn check_answer(label: &str, server: &str, addr: SocketAddr, job: Job, token: &str) {
    let (status, body) = get(addr, (job == Job::Auth).then_some(token));
    let expected = match job {
        Job::Hello => "hello from witplug",
        Job::Auth => r#""sub":"bench-user""#,
    };
    assert!(
        status == 200 && body.contains(expected),
        "{server} with {label} answered {status} `{body}`, not a 200 with `{expected}`"
    );
}

fn load(out: &mut String) {
    let token = auth_token();
    let wasmtime = wasmtime_binary();
    let mut contests = Vec::new();
    for (language, job) in [
        ("rust", Job::Hello),
        ("go", Job::Hello),
        ("rust", Job::Auth),
        ("go", Job::Auth),
    ] {
        let component = guest(&format!("{language}-http-{}", job.name()));
        let mut servers = vec![("witplug serve".to_owned(), witplug_server(&component, job))];
        if let Some(wasmtime) = &wasmtime {
            servers.push((
                "wasmtime serve".to_owned(),
                wasmtime_server(wasmtime, &component, job),
            ));
        }
        contests.push(Contest {
            label: format!("{} ({language})", job.name()),
            job,
            servers,
            loads: Vec::new(),
        });
    }
    for job in [Job::Hello, Job::Auth] {
        contests.push(Contest {
            label: format!("{} (native Rust, hyper)", job.name()),
            job,
            servers: vec![("native-http".to_owned(), native_server(job))],
            loads: Vec::new(),
        });
    }
    for contest in &mut contests {
        for (name, server) in &contest.servers {
            check_answer(&contest.label, name, server.addr, contest.job, &token);
            wrk(
                server.addr,
                WARMUP,
                (contest.job == Job::Auth).then_some(&token),
            );
        }
        contest.loads = contest.servers.iter().map(|_| Vec::new()).collect();
    }
    for round in 0..ROUNDS {
        eprintln!("serve bench: round {} of {ROUNDS}", round + 1);
        for contest in &mut contests {
            // Alternate which server goes first.
            let mut order: Vec<usize> = (0..contest.servers.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let auth = (contest.job == Job::Auth).then_some(token.as_str());
                let measured = wrk(contest.servers[i].1.addr, RUN, auth);
                contest.loads[i].push(measured);
            }
        }
    }
    report(out, &contests, wasmtime.is_some());
}

fn report(out: &mut String, contests: &[Contest], had_wasmtime: bool) {
    out.push_str(
        "| handler | server | req/s | p50 | p99 | req/s vs wasmtime serve | p99 vs wasmtime serve | req/s vs native |\n|---|---|---|---|---|---|---|---|\n",
    );
    let native = |job: Job| {
        contests
            .iter()
            .find(|c| c.job == job && c.servers[0].0 == "native-http")
            .map(|c| &c.loads[0])
    };
    for contest in contests {
        for (i, (name, _)) in contest.servers.iter().enumerate() {
            let loads = &contest.loads[i];
            let rps = median(loads.iter().map(|l| l.requests_per_second).collect());
            let p50 = median(loads.iter().map(|l| l.p50).collect());
            let p99 = median(loads.iter().map(|l| l.p99).collect());
            let versus = |other: &[Load], pick: fn(&Load) -> f64| {
                ratio_summary(
                    loads
                        .iter()
                        .zip(other)
                        .map(|(a, b)| pick(a) / pick(b))
                        .collect(),
                )
            };
            let (vs_wasmtime_rps, vs_wasmtime_p99) = if i == 0 && contest.servers.len() > 1 {
                (
                    versus(&contest.loads[1], |l| l.requests_per_second),
                    versus(&contest.loads[1], |l| l.p99),
                )
            } else {
                (String::new(), String::new())
            };
            let vs_native = match native(contest.job) {
                Some(native) if name != "native-http" => versus(native, |l| l.requests_per_second),
                _ => String::new(),
            };
            out.push_str(&format!(
                "| {} | {name} | {rps:.0} | {} | {} | {vs_wasmtime_rps} | {vs_wasmtime_p99} | {vs_native} |\n",
                contest.label,
                us(p50),
                us(p99),
            ));
        }
    }
    if !had_wasmtime {
        out.push_str(
            "\n`wasmtime serve` was not measured: no `wasmtime` 48 on PATH (`cargo install wasmtime-cli --version 48.0.8 --locked`).\n",
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a bare word selects `instance` or `load`.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |group: &str| filter.as_deref().is_none_or(|f| group.contains(f));
    let mut out = String::new();
    if wanted("instance") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let mut rows = Vec::new();
        runtime.block_on(async {
            instance_start(&mut rows, "rust-http-hello", 2000).await;
            instance_start(&mut rows, "go-http-hello", 400).await;
        });
        out.push_str("| benchmark | witplug | baseline | ratio |\n|---|---|---|---|\n");
        for row in rows {
            eprintln!("{}", row.join(" | "));
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push('\n');
    }
    if wanted("load") {
        load(&mut out);
    }
    print!("{out}");
}
