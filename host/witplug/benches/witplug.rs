//! witplug's benchmark suite (`cargo xtask bench`).
//!
//! A custom harness rather than criterion because the questions are percentiles and
//! ratios measured side by side in one run: every witplug figure is paired with the same
//! operation through bare wasmtime `bindgen!` (or native code, or a process per record),
//! measured interleaved in the same process, so machine noise hits both sides alike.
//! Prints one Markdown table on stdout; `cargo xtask bench` writes it to BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
// `::witplug` is the host library; the bare `witplug` module below gives the native copy of
// the sample rule the type paths it expects.
use ::witplug::worlds::transform::{Outcome, TransformWorld};
use ::witplug::{
    Field, InstanceReuse, LoadedComponent, Plugin, PluginOptions, PluginState, Pooling, Record,
    Runtime, RuntimeConfig, TransformPlugin, Value, World,
};

// The native copy of the sample rule and the type paths it expects.
include!("native_rule.rs");

/// Bare wasmtime bindings of the same worlds, as an embedder without witplug writes them.
mod bare {
    pub mod transform {
        wasmtime::component::bindgen!({
            world: "transform-plugin",
            path: "../../wit",
            exports: { default: async },
        });
    }
    pub mod echo {
        wasmtime::component::bindgen!({
            world: "echo-plugin",
            path: "benches/wit",
            exports: { default: async },
        });
    }
}

/// witplug's `World` for the echo benchmark world (a framework author's few lines).
mod framework_echo {
    wasmtime::component::bindgen!({
        world: "echo-plugin",
        path: "benches/wit",
        exports: { default: async },
    });
}

impl World for framework_echo::EchoPlugin {
    const NAME: &'static str = "witplug-bench:echo/echo-plugin@0.1.0";
    type Data = ();
    type Pre = framework_echo::EchoPluginPre<PluginState>;

    fn add_to_linker(_linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
        Ok(())
    }

    fn prepare(pre: wasmtime::component::InstancePre<PluginState>) -> wasmtime::Result<Self::Pre> {
        framework_echo::EchoPluginPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<Self> {
        pre.instantiate_async(store).await
    }
}

/// The host state of the bare embedding: WASI and nothing else.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl Bare {
    fn new() -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bare::transform::witplug::plugin::logging::Host for Bare {
    fn log(
        &mut self,
        _: bare::transform::witplug::plugin::logging::Level,
        _: String,
        _: Vec<(String, String)>,
    ) {
    }
}

impl bare::transform::witplug::plugin::config::Host for Bare {
    fn get(&mut self, _: String) -> Option<String> {
        None
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl bare::transform::witplug::plugin::types::Host for Bare {}

fn bare_engine() -> Engine {
    Engine::new(&Config::new()).expect("engine")
}

/// Bare wasmtime with epoch interruption compiled in (what call deadlines need), the
/// deadline far away: the cost of the checks alone.
fn bare_epoch_engine() -> Engine {
    Engine::new(Config::new().epoch_interruption(true)).expect("engine")
}

/// Bare wasmtime with the pooling allocator sized and tuned as witplug's `Pooling`
/// default, as an embedder who read the same wasmtime documentation would set it up.
fn bare_pooled_engine() -> Engine {
    let mut pooling = wasmtime::PoolingAllocationConfig::default();
    pooling
        .total_component_instances(1000)
        .total_core_instances(8000)
        .total_memories(4000)
        .total_tables(4000)
        .total_stacks(1000)
        .max_memory_size(256 << 20)
        .max_core_instances_per_component(16)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(1 << 16)
        .linear_memory_keep_resident(2 << 20)
        .table_keep_resident(2 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = Config::new();
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pooling));
    Engine::new(&config).expect("engine")
}

/// The runtime witplug's CLI uses: pooling allocator with copy-on-write images.
/// With `WITPLUG_BENCH_PERFMAP=1`, the engine writes a perf map, so that `perf report`
/// names guest functions.
fn pooled_runtime() -> Runtime {
    let profiler = if std::env::var_os("WITPLUG_BENCH_PERFMAP").is_some() {
        ::witplug::Profiler::PerfMap
    } else {
        ::witplug::Profiler::None
    };
    Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling::default()),
        profiler,
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

fn bare_linker(engine: &Engine) -> Linker<Bare> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    linker
}

/// The sample rule's blocked domain in every throughput run, native and guest alike.
const BLOCKED_DOMAIN: &str = "mailinator.com";

/// Whether `cargo xtask build` made the pre-initialised Go guest (it needs Go).
fn go_preinit_built() -> bool {
    guests_dir()
        .join("go-email-normalizer-preinit.wasm")
        .is_file()
}

fn guests_dir() -> PathBuf {
    std::env::var_os("WITPLUG_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"))
}

fn guest(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build`",
        path.display()
    );
    path
}

// ---------------------------------------------------------------------------------------
// Measurement

#[derive(Clone, Copy)]
struct Stats {
    p50: Duration,
    p99: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// Times `$body` `$samples` times after `$warmup` runs; bodies shorter than a microsecond
/// are timed in groups of `$group` and divided, so that `Instant::now` does not dominate.
/// A macro rather than a function taking a closure, so that the body can `.await` on
/// state it borrows mutably (a store, an instance).
macro_rules! sample {
    ($warmup:expr, $samples:expr, $group:expr, $body:block) => {{
        for _ in 0..$warmup {
            $body
        }
        let mut times = Vec::with_capacity($samples);
        for _ in 0..$samples {
            let started = std::time::Instant::now();
            for _ in 0..$group {
                $body
            }
            times.push(started.elapsed() / $group as u32);
        }
        crate::stats(times)
    }};
}

// After `sample!`, which it uses.
mod shapes;

fn us(d: Duration) -> String {
    format!("{:.2} us", d.as_secs_f64() * 1e6)
}

struct Table {
    rows: Vec<[String; 4]>,
}

impl Table {
    fn row(
        &mut self,
        what: impl Into<String>,
        witplug: impl Into<String>,
        baseline: impl Into<String>,
        ratio: impl Into<String>,
    ) {
        let row = [what.into(), witplug.into(), baseline.into(), ratio.into()];
        eprintln!("{}", row.join(" | "));
        self.rows.push(row);
    }

    fn print(&self) {
        println!("| benchmark | witplug | baseline | ratio |");
        println!("|---|---|---|---|");
        for row in &self.rows {
            println!("| {} |", row.join(" | "));
        }
    }
}

/// The middle of several rounds' medians.
fn median(mut rounds: Vec<Duration>) -> Duration {
    rounds.sort_unstable();
    rounds[rounds.len() / 2]
}

/// Interleaved A/B rounds of every ratio row: the ratio printed is the median of the
/// per-round ratios, with their interquartile range, so one noisy round cannot move it.
const ROUNDS: usize = 15;

impl Table {
    /// Two rows comparing witplug with bare wasmtime, then with bare wasmtime with epoch
    /// interruption on (the mechanism of witplug's call deadlines, so what witplug adds
    /// of its own); each figure the median of its rounds, each ratio the median of the
    /// rounds' ratios (the three measured in every round).
    fn compare3(
        &mut self,
        what: impl Into<String>,
        witplug: Vec<Duration>,
        bare: Vec<Duration>,
        bare_epoch: Vec<Duration>,
    ) {
        let what = what.into();
        let (w, b, e) = (
            median(witplug.clone()),
            median(bare.clone()),
            median(bare_epoch.clone()),
        );
        self.row(
            what.clone(),
            us(w),
            format!("{} bare", us(b)),
            round_ratios(&witplug, &bare),
        );
        self.row(
            format!("{what}, vs bare with epoch interruption"),
            us(w),
            format!("{} bare+epoch", us(e)),
            round_ratios(&witplug, &bare_epoch),
        );
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

/// `native` time over `run` time in each round, as a share: the median with its IQR.
fn round_percent(native: &[Duration], run: &[Duration]) -> String {
    let shares = native
        .iter()
        .zip(run)
        .map(|(n, t)| 100.0 * n.as_secs_f64() / t.as_secs_f64())
        .collect();
    let [q1, median, q3] = quartiles(shares);
    format!("{median:.1}% (IQR {q1:.1}-{q3:.1})")
}

/// `a` over `b` in each round, as [`spread`] gives it.
fn round_ratios(a: &[Duration], b: &[Duration]) -> String {
    spread(
        a.iter()
            .zip(b)
            .map(|(a, b)| a.as_secs_f64() / b.as_secs_f64())
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// Benchmarks

async fn instantiate(table: &mut Table, name: &str) {
    let path = guest(name);
    let bytes = std::fs::read(&path).expect("read");

    let engine = bare_engine();
    let pre = bare_transform_pre(&engine, &bytes);
    let pooled_engine = bare_pooled_engine();
    let pooled_pre = bare_transform_pre(&pooled_engine, &bytes);

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<TransformWorld> = Plugin::new(&runtime, &loaded, PluginOptions::default())
        .await
        .expect("plugin");
    let pooled = pooled_runtime();
    let pooled_loaded = LoadedComponent::from_file(&pooled, &path).expect("load");
    let pooled_plugin: Plugin<TransformWorld> =
        Plugin::new(&pooled, &pooled_loaded, PluginOptions::default())
            .await
            .expect("plugin");

    let n = if name.starts_with("go") { 400 } else { 4000 };
    // Interleave rounds so that drift hits every variant alike.
    let (mut b, mut w, mut bp, mut wp) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let per_round = n / 4;
    for _ in 0..ROUNDS {
        b.push(sample!(50, per_round, 1, {
            let mut store = Store::new(&engine, Bare::new());
            let _ = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
        }));
        w.push(sample!(50, per_round, 1, {
            let _ = plugin.instantiate().await.expect("instantiate");
        }));
        bp.push(sample!(50, per_round, 1, {
            let mut store = Store::new(&pooled_engine, Bare::new());
            let _ = pooled_pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
        }));
        wp.push(sample!(50, per_round, 1, {
            let _ = pooled_plugin.instantiate().await.expect("instantiate");
        }));
    }
    let median = |v: &[Stats], f: fn(&Stats) -> Duration| {
        let mut d: Vec<Duration> = v.iter().map(f).collect();
        d.sort_unstable();
        d[d.len() / 2]
    };
    for (allocator, witplug, bare) in [("", &w, &b), (" pooling", &wp, &bp)] {
        for (percentile, pick) in [
            ("p50", (|s| s.p50) as fn(&Stats) -> Duration),
            ("p99", |s| s.p99),
        ] {
            let (wt, bt) = (median(witplug, pick), median(bare, pick));
            let picked = |v: &[Stats]| v.iter().map(pick).collect::<Vec<_>>();
            table.row(
                format!("instantiate {name}{allocator}, {percentile}"),
                us(wt),
                format!("{} bare{allocator}", us(bt)),
                round_ratios(&picked(witplug), &picked(bare)),
            );
        }
    }
}

/// The same instantiation loop on both cores at once.
fn instantiate_both_cores(table: &mut Table, name: &str) {
    let path = guest(name);
    let runtime = pooled_runtime();
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let n = if name.starts_with("go") { 300 } else { 3000 };
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let runtime = runtime.clone();
            let loaded = loaded.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio");
                rt.block_on(async {
                    let plugin: Plugin<TransformWorld> =
                        Plugin::new(&runtime, &loaded, PluginOptions::default())
                            .await
                            .expect("plugin");
                    sample!(50, n, 1, {
                        let _ = plugin.instantiate().await.expect("instantiate");
                    })
                })
            })
        })
        .collect();
    let results: Vec<Stats> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let p50 = results.iter().map(|s| s.p50).max().unwrap_or_default();
    let p99 = results.iter().map(|s| s.p99).max().unwrap_or_default();
    table.row(
        format!("instantiate {name} pooling, 2 cores busy, p50 / p99 (worse thread)"),
        format!("{} / {}", us(p50), us(p99)),
        "",
        "",
    );
}

/// The echo world through bare wasmtime on `engine`.
async fn bare_echo(engine: &Engine, guest: &Path) -> (bare::echo::EchoPlugin, Store<Bare>) {
    let component = Component::new(engine, std::fs::read(guest).expect("read")).expect("compile");
    let linker = bare_linker(engine);
    let pre = bare::echo::EchoPluginPre::new(linker.instantiate_pre(&component).expect("pre"))
        .expect("pre");
    let mut store = Store::new(engine, Bare::new());
    // Epoch checks run (when compiled in) but never fire.
    store.set_epoch_deadline(u64::MAX);
    let plugin = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    (plugin, store)
}

async fn calls(table: &mut Table) {
    let path = guest("rust-echo");
    // Bare wasmtime without, then with, epoch interruption: the two baselines of `compare3`.
    let mut bare = [
        bare_echo(&bare_engine(), &path).await,
        bare_echo(&bare_epoch_engine(), &path).await,
    ];

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<framework_echo::EchoPlugin> =
        Plugin::new(&runtime, &loaded, PluginOptions::default())
            .await
            .expect("plugin");
    let mut instance = plugin.instantiate().await.expect("instantiate");

    let (mut bare_times, mut ws) = ([Vec::new(), Vec::new()], Vec::new());
    for _ in 0..ROUNDS {
        for ((echo, store), times) in bare.iter_mut().zip(&mut bare_times) {
            times.push(
                sample!(1000, 200, 100, {
                    echo.witplug_bench_echo_echo()
                        .call_noop(&mut *store)
                        .await
                        .expect("noop")
                })
                .p50,
            );
        }
        ws.push(
            sample!(1000, 200, 100, {
                let (bindings, store) = instance.parts().expect("parts");
                let result = bindings.witplug_bench_echo_echo().call_noop(store).await;
                instance.finish("noop", result).expect("noop");
            })
            .p50,
        );
    }
    let [bs, es] = bare_times;
    table.compare3("call: empty (noop), p50", ws, bs, es);

    for size in [16usize, 1024, 64 * 1024] {
        let text = "x".repeat(size);
        let group = if size > 4096 { 5 } else { 50 };
        let (mut bare_times, mut ws) = ([Vec::new(), Vec::new()], Vec::new());
        for _ in 0..ROUNDS {
            for ((echo, store), times) in bare.iter_mut().zip(&mut bare_times) {
                times.push(
                    sample!(200, 200, group, {
                        echo.witplug_bench_echo_echo()
                            .call_echo_string(&mut *store, &text)
                            .await
                            .expect("echo");
                    })
                    .p50,
                );
            }
            ws.push(
                sample!(200, 200, group, {
                    let (bindings, store) = instance.parts().expect("parts");
                    let result = bindings
                        .witplug_bench_echo_echo()
                        .call_echo_string(store, &text)
                        .await;
                    instance.finish("echo-string", result).expect("echo");
                })
                .p50,
            );
        }
        let [bs, es] = bare_times;
        table.compare3(format!("call: string echo {size} B, p50"), ws, bs, es);
    }
}

fn sample_records(n: usize) -> Vec<Record> {
    let text = |s: String| Value::Text(s);
    (0..n)
        .map(|i| Record {
            key: format!("cust-{i:05}"),
            fields: vec![
                Field {
                    name: "name".into(),
                    value: text(format!(" Customer {i} ")),
                },
                Field {
                    name: "email".into(),
                    value: text(match i % 5 {
                        0 => format!("  User{i}@Example.COM "),
                        1 => format!("a{i}@x.org; b{i}@y.org"),
                        2 => "not an address".to_owned(),
                        3 => format!("u{i}@mailinator.com"),
                        _ => format!("u{i}@example.com"),
                    }),
                },
                Field {
                    name: "plan".into(),
                    value: text("pro".into()),
                },
                Field {
                    name: "seats".into(),
                    value: Value::Integer(i as i64),
                },
            ],
        })
        .collect()
}

/// The component `bytes` compiled, linked and type-checked in the transform world through
/// bare wasmtime on `engine`.
fn bare_transform_pre(engine: &Engine, bytes: &[u8]) -> bare::transform::TransformPluginPre<Bare> {
    let component = Component::new(engine, bytes).expect("compile");
    let mut linker = bare_linker(engine);
    bare::transform::TransformPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .expect("link");
    bare::transform::TransformPluginPre::new(linker.instantiate_pre(&component).expect("pre"))
        .expect("pre")
}

/// An instance of `guest` in the transform world through bare wasmtime on `engine`.
async fn bare_transform(
    engine: &Engine,
    guest: &Path,
) -> (bare::transform::TransformPlugin, Store<Bare>) {
    let pre = bare_transform_pre(engine, &std::fs::read(guest).expect("read"));
    let mut store = Store::new(engine, Bare::new());
    // Epoch checks run (when compiled in) but never fire.
    store.set_epoch_deadline(u64::MAX);
    let plugin = pre
        .instantiate_async(&mut store)
        .await
        .expect("instantiate");
    (plugin, store)
}

/// `batch` (witplug's `Record`s, as `sample_records` makes them: text and integer values)
/// converted to the `Record` of other bindings of the same WIT, given by their `types`
/// module: bare wasmtime's, or the rule's (the host's own types, so a plain copy).
macro_rules! records_as {
    ($types:path, $batch:expr) => {{
        use $types as t;
        $batch
            .iter()
            .map(|r| t::Record {
                key: r.key.clone(),
                fields: r
                    .fields
                    .iter()
                    .map(|f| t::Field {
                        name: f.name.clone(),
                        value: match &f.value {
                            Value::Text(s) => t::Value::Text(s.clone()),
                            Value::Integer(i) => t::Value::Integer(*i),
                            _ => t::Value::Null,
                        },
                    })
                    .collect(),
            })
            .collect::<Vec<t::Record>>()
    }};
}

fn to_bare(batch: &[Record]) -> Vec<bare::transform::witplug::plugin::types::Record> {
    records_as!(bare::transform::witplug::plugin::types, batch)
}

async fn records_call(table: &mut Table) {
    // `faulty` keeps every ordinary record: a `list<record>` echo through the transform world.
    let path = guest("rust-faulty");
    let batch = sample_records(1000);
    let bare_batch = to_bare(&batch);
    // Bare wasmtime without, then with, epoch interruption: the two baselines of `compare3`.
    let mut bare = [
        bare_transform(&bare_engine(), &path).await,
        bare_transform(&bare_epoch_engine(), &path).await,
    ];

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<TransformWorld> = Plugin::new(&runtime, &loaded, PluginOptions::default())
        .await
        .expect("plugin");
    let mut instance = plugin.instantiate().await.expect("instantiate");

    let (mut bare_times, mut ws) = ([Vec::new(), Vec::new()], Vec::new());
    for _ in 0..ROUNDS {
        for ((transform, store), times) in bare.iter_mut().zip(&mut bare_times) {
            times.push(
                sample!(20, 40, 1, {
                    transform
                        .witplug_plugin_transformer()
                        .call_process_batch(&mut *store, &bare_batch)
                        .await
                        .expect("batch");
                })
                .p50,
            );
        }
        ws.push(
            sample!(20, 40, 1, {
                let (bindings, store) = instance.parts().expect("parts");
                let result = bindings
                    .witplug_plugin_transformer()
                    .call_process_batch(store, &batch)
                    .await;
                instance.finish("process-batch", result).expect("batch");
            })
            .p50,
        );
    }
    let [bs, es] = bare_times;
    table.compare3(
        "call: list<record> of 1,000 records in and out, p50",
        ws,
        bs,
        es,
    );
}

/// The sample rule, natively: the guest crate's own rule module compiled for the host.
fn native_rule(batch: &[Record]) -> impl FnMut() {
    let settings = rule::Settings::new(None, None, Some(BLOCKED_DOMAIN.to_owned()));
    let converted = records_as!(crate::witplug::plugin::types, batch);
    move || {
        // The guest receives an owned copy of the batch too: clone to compare like with like.
        let outcomes: Vec<_> = converted
            .iter()
            .cloned()
            .map(|r| rule::apply(&settings, r))
            .collect();
        std::hint::black_box(outcomes);
    }
}

async fn throughput(table: &mut Table) {
    let batch = sample_records(1000);
    // As the CLI runs plugins.
    let runtime = pooled_runtime();
    let config = ::witplug::PluginConfig::new().set("blocked-domains", BLOCKED_DOMAIN);
    let mut plugins = Vec::new();
    let reused = InstanceReuse::UpTo {
        max_calls: u32::MAX,
    };
    for (name, reuse) in [
        ("rust-email-normalizer", InstanceReuse::Never),
        ("rust-email-normalizer", reused),
        ("rust-email-normalizer-v0-2", InstanceReuse::Never),
        ("rust-email-normalizer-v0-2", reused),
        ("go-email-normalizer", InstanceReuse::Never),
        ("go-email-normalizer", reused),
        ("go-email-normalizer-v0-2", InstanceReuse::Never),
        ("go-email-normalizer-v0-2", reused),
        // transform@0.2.0's copy-only floor through witplug: this guest answers `keep`
        // for every record of a batch whose first key names none of its attacks.
        ("rust-hostile-v0-2", reused),
    ]
    .into_iter()
    // One guest alone, for a profile of it (`WITPLUG_BENCH_GUEST=rust-email-normalizer-v0-2`).
    .filter(|(name, _)| std::env::var("WITPLUG_BENCH_GUEST").map_or(true, |only| only == *name))
    {
        let plugin = TransformPlugin::load(
            &runtime,
            guest(name),
            PluginOptions::default().config(config.clone()).reuse(reuse),
        )
        .await
        .expect("plugin");
        plugins.push((name, reuse, plugin));
    }
    // Every build of the rule must answer alike before any of them is timed.
    let reference = plugins[0].2.process_batch(&batch).await.expect("batch");
    for (name, _, plugin) in &plugins {
        let outcomes = plugin.process_batch(&batch).await.expect("batch");
        if name.contains("email-normalizer") {
            assert!(outcomes == reference, "{name} answers otherwise");
        } else {
            assert!(
                outcomes
                    .iter()
                    .zip(&batch)
                    .all(|(o, r)| *o == Outcome::Keep(r.clone()))
            );
        }
    }
    let mut native = native_rule(&batch);
    let per_sec = |d: Duration| batch.len() as f64 / d.as_secs_f64();
    // The floor of any guest: the same batch copied in and out through bare wasmtime by a
    // guest that keeps every record and does nothing else (`faulty`).
    let bare_batch = to_bare(&batch);
    let (echo, mut echo_store) = bare_transform(&bare_engine(), &guest("rust-faulty")).await;

    let mut native_times = Vec::new();
    let mut echo_times = Vec::new();
    let mut guest_times = vec![Vec::new(); plugins.len()];
    for _ in 0..ROUNDS {
        native_times.push(
            sample!(5, 30, 1, {
                native();
            })
            .p50,
        );
        echo_times.push(
            sample!(5, 30, 1, {
                echo.witplug_plugin_transformer()
                    .call_process_batch(&mut echo_store, &bare_batch)
                    .await
                    .expect("batch");
            })
            .p50,
        );
        for (i, (_, _, plugin)) in plugins.iter().enumerate() {
            guest_times[i].push(
                sample!(5, 30, 1, {
                    plugin.process_batch(&batch).await.expect("batch");
                })
                .p50,
            );
        }
    }
    let native = median(native_times.clone());
    table.row(
        "transform: native Rust rule, records/s",
        format!("{:.0}", per_sec(native)),
        "",
        "",
    );
    table.row(
        "transform: copy only (bare wasmtime, a guest that keeps every record), records/s",
        format!("{:.0}", per_sec(median(echo_times.clone()))),
        format!("{:.0} native", per_sec(native)),
        format!(
            "{} of native: the ceiling of any guest",
            round_percent(&native_times, &echo_times)
        ),
    );
    for ((name, reuse, plugin), times) in plugins.iter().zip(guest_times) {
        let policy = if *reuse == InstanceReuse::Never {
            "fresh instance per batch"
        } else {
            "reused instance"
        };
        let version = plugin
            .version()
            .world_name()
            .rsplit('@')
            .next()
            .unwrap_or("?");
        let what = if *name == "rust-hostile-v0-2" {
            format!("copy only on {version} (witplug, a guest that keeps every record)")
        } else {
            format!("{name} on {version}, {policy}")
        };
        table.row(
            format!("transform: {what}, batches of 1,000, records/s"),
            format!("{:.0}", per_sec(median(times.clone()))),
            format!("{:.0} native", per_sec(native)),
            format!("{} of native", round_percent(&native_times, &times)),
        );
    }

    // The old way: one `witplug transform` process per record (compile cache warm).
    let witplug = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/witplug");
    if witplug.is_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("one.jsonl");
        std::fs::write(
            &input,
            "{\"key\":\"k\",\"fields\":{\"email\":\" A@B.org \"}}\n",
        )
        .expect("write");
        let run = || {
            let status = std::process::Command::new(&witplug)
                .args([
                    "transform",
                    guest("rust-email-normalizer").to_str().expect("utf-8"),
                    "--input",
                ])
                .arg(&input)
                .arg("--cache-dir")
                .arg(dir.path().join("cache"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("spawn witplug");
            assert!(status.success());
        };
        run();
        let started = Instant::now();
        let n = 30;
        for _ in 0..n {
            run();
        }
        let per_record = started.elapsed() / n;
        let mut fresh = guest_times_median(&plugins[0].2, &batch).await;
        fresh = fresh.max(Duration::from_nanos(1));
        table.row(
            "transform: one process per record (witplug CLI, cache warm), records/s",
            format!("{:.0} in-process", per_sec(fresh)),
            format!("{:.1} subprocess", 1.0 / per_record.as_secs_f64()),
            format!(
                "{:.0}x",
                per_record.as_secs_f64() * batch.len() as f64 / fresh.as_secs_f64()
            ),
        );
    } else {
        table.row(
            "transform: one process per record",
            "not measured",
            "target/release/witplug missing",
            "",
        );
    }
}

/// `witplug transform --jobs 2` against `--jobs 1` on this machine's two cores: the release
/// CLI on a file of records, the runs alternating, the ratio of each round's pair.
fn transform_jobs(table: &mut Table) {
    let witplug = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/witplug");
    if !witplug.is_file() {
        table.row(
            "transform --jobs",
            "not measured",
            "target/release/witplug missing",
            "",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("records.jsonl");
    let records = 200_000;
    // The records of the in-process rows, in the CLI's input format.
    let mut text = String::new();
    for record in sample_records(records) {
        text.push_str(&::witplug::jsonl::record_line(&record));
        text.push('\n');
    }
    std::fs::write(&input, text).expect("write records");
    let cache = dir.path().join("cache");
    let run = |name: &str, jobs: &str| -> Duration {
        let started = Instant::now();
        let out = std::process::Command::new(&witplug)
            .args(["transform", guest(name).to_str().expect("utf-8"), "--input"])
            .arg(&input)
            .args(["--jobs", jobs, "--config"])
            .arg(format!("blocked-domains={BLOCKED_DOMAIN}"))
            .arg("--cache-dir")
            .arg(&cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("spawn witplug");
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "witplug transform failed: {stderr}");
        assert!(
            stderr.contains(&format!("witplug: {records} lines:")),
            "not every line was processed: {stderr}"
        );
        elapsed
    };
    for name in ["rust-email-normalizer", "go-email-normalizer"] {
        // Warms the compile cache and the page cache.
        run(name, "1");
        let (mut one, mut two, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..7 {
            // Alternating which goes first, so that drift favours neither.
            let (a, b) = if round % 2 == 0 {
                let a = run(name, "1");
                (a, run(name, "2"))
            } else {
                let b = run(name, "2");
                (run(name, "1"), b)
            };
            one.push(a);
            two.push(b);
            ratios.push(a.as_secs_f64() / b.as_secs_f64());
        }
        let per_sec = |d: Duration| records as f64 / d.as_secs_f64();
        table.row(
            format!(
                "transform --jobs 2 vs --jobs 1: {name}, 200,000 records end to end, records/s"
            ),
            format!("{:.0} (2 jobs)", per_sec(median(two))),
            format!("{:.0} (1 job)", per_sec(median(one))),
            spread(ratios),
        );
    }
}

/// The first quartile, median and third quartile of per-round figures.
fn quartiles(mut figures: Vec<f64>) -> [f64; 3] {
    figures.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| figures[((figures.len() - 1) as f64 * q).round() as usize];
    [at(0.25), at(0.5), at(0.75)]
}

/// The median of per-round ratios, with their interquartile range.
fn spread(ratios: Vec<f64>) -> String {
    let [q1, median, q3] = quartiles(ratios);
    format!("{median:.2}x (IQR {q1:.2}-{q3:.2})")
}

/// The first call into a new instance against the second, for one record, through bare
/// wasmtime: what a fresh instance per request pays in guest work beyond instantiation.
/// Only run when asked for (`cargo xtask bench first-call`); with `WITPLUG_BENCH_PERFMAP=1`
/// the engine writes `/tmp/perf-PID.map`, so that `perf record` names the guest's
/// functions (see BENCHMARKS.md), and `WITPLUG_BENCH_GUEST` picks one guest.
async fn first_call(table: &mut Table) {
    let mut config = Config::new();
    if std::env::var_os("WITPLUG_BENCH_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config).expect("engine");
    let one = to_bare(&sample_records(1));
    let mut names = vec!["rust-email-normalizer", "go-email-normalizer"];
    if go_preinit_built() {
        names.push("go-email-normalizer-preinit");
    }
    // One guest alone, for a profile of it (`WITPLUG_BENCH_GUEST=go-email-normalizer`).
    if let Ok(only) = std::env::var("WITPLUG_BENCH_GUEST") {
        names.retain(|name| *name == only);
    }
    for name in names {
        let pre = bare_transform_pre(&engine, &std::fs::read(guest(name)).expect("read"));
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for _ in 0..2000 {
            let mut store = Store::new(&engine, Bare::new());
            let plugin = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
            for times in [&mut first, &mut second] {
                let started = Instant::now();
                plugin
                    .witplug_plugin_transformer()
                    .call_process_batch(&mut store, &one)
                    .await
                    .expect("batch");
                times.push(started.elapsed());
            }
        }
        let (first, second) = (stats(first), stats(second));
        table.row(
            format!("first call vs second call on one instance: {name}, 1 record, p50"),
            us(first.p50),
            format!("{} second", us(second.p50)),
            ratio(first.p50, second.p50),
        );
    }
}

/// One record through a fresh instance, end to end (instantiate, call, drop): the cost of
/// a request when every request gets its own instance.
async fn fresh_instance_latency(table: &mut Table) {
    let runtime = pooled_runtime();
    let config = ::witplug::PluginConfig::new().set("blocked-domains", BLOCKED_DOMAIN);
    let one = sample_records(1);
    let mut names = vec!["rust-email-normalizer", "go-email-normalizer"];
    if go_preinit_built() {
        names.push("go-email-normalizer-preinit");
    }
    let mut plugins = Vec::new();
    for name in &names {
        let plugin = TransformPlugin::load(
            &runtime,
            guest(name),
            PluginOptions::default().config(config.clone()),
        )
        .await
        .expect("plugin");
        plugins.push(plugin);
    }
    let mut times = vec![Vec::new(); plugins.len()];
    for _ in 0..4 {
        for (i, plugin) in plugins.iter().enumerate() {
            times[i].push(sample!(20, 250, 1, {
                plugin.process_batch(&one).await.expect("batch");
            }));
        }
    }
    for (name, stats) in names.iter().zip(times) {
        let p50 = median(stats.iter().map(|s| s.p50).collect());
        let p99 = median(stats.iter().map(|s| s.p99).collect());
        table.row(
            format!("fresh instance per request: {name}, 1 record, pooling, p50 / p99"),
            format!("{} / {}", us(p50), us(p99)),
            "",
            "",
        );
    }
}

async fn guest_times_median(plugin: &TransformPlugin, batch: &[Record]) -> Duration {
    sample!(5, 30, 1, {
        plugin.process_batch(batch).await.expect("batch");
    })
    .p50
}

fn compile_vs_cache(table: &mut Table) {
    for name in ["rust-email-normalizer", "go-email-normalizer"] {
        let path = guest(name);
        let dir = tempfile::tempdir().expect("tempdir");
        let runtime = Runtime::with_config(RuntimeConfig {
            cache_dir: Some(dir.path().to_path_buf()),
            ..RuntimeConfig::default()
        })
        .expect("runtime");
        let uncached = Runtime::new().expect("runtime");
        LoadedComponent::from_file(&runtime, &path).expect("fill cache");
        let mut cold = Vec::new();
        let mut cached = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let loaded = LoadedComponent::from_file(&uncached, &path).expect("compile");
            cold.push(started.elapsed());
            assert!(!loaded.from_cache());
            let started = Instant::now();
            let loaded = LoadedComponent::from_file(&runtime, &path).expect("cached");
            cached.push(started.elapsed());
            assert!(loaded.from_cache());
        }
        let ms = |runs: &[Duration]| median(runs.to_vec()).as_secs_f64() * 1e3;
        table.row(
            format!("load {name}: cached vs cold compile, median"),
            format!("{:.1} ms cached", ms(&cached)),
            format!("{:.1} ms compile", ms(&cold)),
            format!("{} faster", round_ratios(&cold, &cached)),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects groups by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |group: &str| filter.as_deref().is_none_or(|f| group.contains(f));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut table = Table { rows: Vec::new() };
    if wanted("instantiate/rust") {
        rt.block_on(instantiate(&mut table, "rust-email-normalizer"));
    }
    if wanted("instantiate/go") {
        rt.block_on(instantiate(&mut table, "go-email-normalizer"));
        if go_preinit_built() {
            rt.block_on(instantiate(&mut table, "go-email-normalizer-preinit"));
        }
    }
    if wanted("instantiate/both-cores") {
        instantiate_both_cores(&mut table, "rust-email-normalizer");
        instantiate_both_cores(&mut table, "go-email-normalizer");
        if go_preinit_built() {
            instantiate_both_cores(&mut table, "go-email-normalizer-preinit");
        }
    }
    if wanted("calls") {
        rt.block_on(calls(&mut table));
        rt.block_on(records_call(&mut table));
    }
    if wanted("throughput") {
        rt.block_on(throughput(&mut table));
    }
    if wanted("shapes") {
        rt.block_on(shapes::shapes(&mut table));
    }
    if wanted("jobs") {
        transform_jobs(&mut table);
    }
    // Not part of a full run: a diagnostic, for `perf`.
    if filter.as_deref() == Some("first-call") {
        rt.block_on(first_call(&mut table));
    }
    if wanted("latency") {
        rt.block_on(fresh_instance_latency(&mut table));
    }
    if wanted("compile") {
        compile_vs_cache(&mut table);
    }
    table.print();
}
