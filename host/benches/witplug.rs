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
// `::witplug` is the host library; the bare `witplug` module below is the guest-side
// bindings that the native copy of the sample rule needs.
use ::witplug::worlds::transform::TransformWorld;
use ::witplug::{
    Field, InstanceReuse, LoadedComponent, Plugin, PluginOptions, PluginState, Pooling, Record,
    Runtime, RuntimeConfig, TransformPlugin, Value, World,
};

// The guest's bindings at this crate's root, where the guest's `rule.rs` expects them.
wit_bindgen::generate!({ path: "../wit", world: "transform-plugin" });

/// The sample rule's own source, compiled natively: the throughput baseline. Included by
/// path, as `fuzz/` does, because making the guest crate an `rlib` too would cost its
/// component LTO.
#[path = "../../guest-rust/email-normalizer/src/rule.rs"]
#[allow(dead_code, clippy::all)]
mod rule;

/// Bare wasmtime bindings of the same worlds, as an embedder without witplug writes them.
mod bare {
    pub mod transform {
        wasmtime::component::bindgen!({
            world: "transform-plugin",
            path: "../wit",
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

fn bare_linker(engine: &Engine) -> Linker<Bare> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
    linker
}

fn guests_dir() -> PathBuf {
    std::env::var_os("WITPLUG_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests"))
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
            let started = Instant::now();
            for _ in 0..$group {
                $body
            }
            times.push(started.elapsed() / $group as u32);
        }
        stats(times)
    }};
}

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

impl Table {
    /// A row comparing witplug with bare wasmtime, each the median of its rounds.
    fn compare(&mut self, what: impl Into<String>, witplug: Vec<Duration>, bare: Vec<Duration>) {
        let (w, b) = (median(witplug), median(bare));
        self.row(what, us(w), format!("{} bare", us(b)), ratio(w, b));
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}x", a.as_secs_f64() / b.as_secs_f64())
}

// ---------------------------------------------------------------------------------------
// Benchmarks

async fn instantiate(table: &mut Table, name: &str) {
    let path = guest(name);
    let bytes = std::fs::read(&path).expect("read");

    let engine = bare_engine();
    let component = Component::new(&engine, &bytes).expect("compile");
    let mut linker = bare_linker(&engine);
    bare::transform::TransformPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .expect("link");
    let pre =
        bare::transform::TransformPluginPre::new(linker.instantiate_pre(&component).expect("pre"))
            .expect("pre");

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<TransformWorld> = Plugin::new(&runtime, &loaded, PluginOptions::default())
        .await
        .expect("plugin");

    let pooled = Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling::default()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let pooled_loaded = LoadedComponent::from_file(&pooled, &path).expect("load");
    let pooled_plugin: Plugin<TransformWorld> =
        Plugin::new(&pooled, &pooled_loaded, PluginOptions::default())
            .await
            .expect("plugin");

    let n = if name.starts_with("go") { 400 } else { 4000 };
    // Interleave rounds so that drift hits every variant alike.
    let (mut b, mut w, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..4 {
        b.push(sample!(50, n / 4, 1, {
            let mut store = Store::new(&engine, Bare::new());
            let _ = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiate");
        }));
        w.push(sample!(50, n / 4, 1, {
            let _ = plugin.instantiate().await.expect("instantiate");
        }));
        p.push(sample!(50, n / 4, 1, {
            let _ = pooled_plugin.instantiate().await.expect("instantiate");
        }));
    }
    let median = |v: &[Stats], f: fn(&Stats) -> Duration| {
        let mut d: Vec<Duration> = v.iter().map(f).collect();
        d.sort_unstable();
        d[d.len() / 2]
    };
    let (b50, b99) = (median(&b, |s| s.p50), median(&b, |s| s.p99));
    let (w50, w99) = (median(&w, |s| s.p50), median(&w, |s| s.p99));
    let (p50, p99) = (median(&p, |s| s.p50), median(&p, |s| s.p99));
    table.row(
        format!("instantiate {name}, p50"),
        us(w50),
        format!("{} bare", us(b50)),
        ratio(w50, b50),
    );
    table.row(
        format!("instantiate {name}, p99"),
        us(w99),
        format!("{} bare", us(b99)),
        ratio(w99, b99),
    );
    table.row(
        format!("instantiate {name} pooling, p50"),
        us(p50),
        format!("{} bare", us(b50)),
        ratio(p50, b50),
    );
    table.row(
        format!("instantiate {name} pooling, p99"),
        us(p99),
        format!("{} bare", us(b99)),
        ratio(p99, b99),
    );
}

/// The same instantiation loop on both cores at once.
fn instantiate_both_cores(table: &mut Table, name: &str) {
    let path = guest(name);
    let runtime = Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling::default()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
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

async fn calls(table: &mut Table) {
    let path = guest("rust-echo");
    let engine = bare_engine();
    let component = Component::new(&engine, std::fs::read(&path).expect("read")).expect("compile");
    let linker = bare_linker(&engine);
    let pre = bare::echo::EchoPluginPre::new(linker.instantiate_pre(&component).expect("pre"))
        .expect("pre");
    let mut bare_store = Store::new(&engine, Bare::new());
    let bare_echo = pre
        .instantiate_async(&mut bare_store)
        .await
        .expect("instantiate");

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<framework_echo::EchoPlugin> =
        Plugin::new(&runtime, &loaded, PluginOptions::default())
            .await
            .expect("plugin");
    let mut instance = plugin.instantiate().await.expect("instantiate");

    let mut bare_noop = Vec::new();
    let mut witplug_noop = Vec::new();
    for _ in 0..5 {
        bare_noop.push(
            sample!(1000, 200, 100, {
                bare_echo
                    .witplug_bench_echo_echo()
                    .call_noop(&mut bare_store)
                    .await
                    .expect("noop")
            })
            .p50,
        );
        witplug_noop.push(
            sample!(1000, 200, 100, {
                let (bindings, store) = instance.parts().expect("parts");
                let result = bindings.witplug_bench_echo_echo().call_noop(store).await;
                instance.finish("noop", result).expect("noop");
            })
            .p50,
        );
    }
    table.compare("call: empty (noop), p50", witplug_noop, bare_noop);

    for size in [16usize, 1024, 64 * 1024] {
        let text = "x".repeat(size);
        let group = if size > 4096 { 5 } else { 50 };
        let mut bs = Vec::new();
        let mut ws = Vec::new();
        for _ in 0..5 {
            bs.push(
                sample!(200, 200, group, {
                    bare_echo
                        .witplug_bench_echo_echo()
                        .call_echo_string(&mut bare_store, &text)
                        .await
                        .expect("echo");
                })
                .p50,
            );
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
        table.compare(format!("call: string echo {size} B, p50"), ws, bs);
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

async fn records_call(table: &mut Table) {
    // `faulty` keeps every ordinary record: a `list<record>` echo through the transform world.
    let path = guest("rust-faulty");
    let batch = sample_records(1000);
    let engine = bare_engine();
    let component = Component::new(&engine, std::fs::read(&path).expect("read")).expect("compile");
    let mut linker = bare_linker(&engine);
    bare::transform::TransformPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .expect("link");
    let pre =
        bare::transform::TransformPluginPre::new(linker.instantiate_pre(&component).expect("pre"))
            .expect("pre");
    let mut bare_store = Store::new(&engine, Bare::new());
    let bare_plugin = pre
        .instantiate_async(&mut bare_store)
        .await
        .expect("instantiate");
    // The bare bindings have their own `Record` type: convert once, outside the timing.
    let bare_batch: Vec<bare::transform::witplug::plugin::types::Record> = batch
        .iter()
        .map(|r| bare::transform::witplug::plugin::types::Record {
            key: r.key.clone(),
            fields: r
                .fields
                .iter()
                .map(|f| bare::transform::witplug::plugin::types::Field {
                    name: f.name.clone(),
                    value: match &f.value {
                        Value::Text(s) => {
                            bare::transform::witplug::plugin::types::Value::Text(s.clone())
                        }
                        Value::Integer(i) => {
                            bare::transform::witplug::plugin::types::Value::Integer(*i)
                        }
                        _ => bare::transform::witplug::plugin::types::Value::Null,
                    },
                })
                .collect(),
        })
        .collect();

    let runtime = Runtime::new().expect("runtime");
    let loaded = LoadedComponent::from_file(&runtime, &path).expect("load");
    let plugin: Plugin<TransformWorld> = Plugin::new(&runtime, &loaded, PluginOptions::default())
        .await
        .expect("plugin");
    let mut instance = plugin.instantiate().await.expect("instantiate");

    let mut bs = Vec::new();
    let mut ws = Vec::new();
    for _ in 0..5 {
        bs.push(
            sample!(20, 40, 1, {
                bare_plugin
                    .witplug_plugin_transformer()
                    .call_process_batch(&mut bare_store, &bare_batch)
                    .await
                    .expect("batch");
            })
            .p50,
        );
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
    table.compare(
        "call: list<record> of 1,000 records in and out, p50",
        ws,
        bs,
    );
}

/// The sample rule, natively: the guest crate's own rule module compiled for the host.
fn native_rule(batch: &[Record]) -> impl FnMut() {
    use crate::witplug::plugin::types as g;
    let settings = rule::Settings::new(None, None, Some("mailinator.com".to_owned()));
    let converted: Vec<g::Record> = batch
        .iter()
        .map(|r| g::Record {
            key: r.key.clone(),
            fields: r
                .fields
                .iter()
                .map(|f| g::Field {
                    name: f.name.clone(),
                    value: match &f.value {
                        Value::Text(s) => g::Value::Text(s.clone()),
                        Value::Integer(i) => g::Value::Integer(*i),
                        _ => g::Value::Null,
                    },
                })
                .collect(),
        })
        .collect();
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
    let runtime = Runtime::new().expect("runtime");
    let config = ::witplug::PluginConfig::new().set("blocked-domains", "mailinator.com");
    let mut plugins = Vec::new();
    for (name, reuse) in [
        ("rust-email-normalizer", InstanceReuse::Never),
        (
            "rust-email-normalizer",
            InstanceReuse::UpTo {
                max_calls: u32::MAX,
            },
        ),
        ("go-email-normalizer", InstanceReuse::Never),
        (
            "go-email-normalizer",
            InstanceReuse::UpTo {
                max_calls: u32::MAX,
            },
        ),
    ] {
        let plugin = TransformPlugin::load(
            &runtime,
            guest(name),
            PluginOptions::default().config(config.clone()).reuse(reuse),
        )
        .await
        .expect("plugin");
        plugins.push((name, reuse, plugin));
    }
    let mut native = native_rule(&batch);
    let per_sec = |d: Duration| batch.len() as f64 / d.as_secs_f64();

    let mut native_times = Vec::new();
    let mut guest_times = vec![Vec::new(); plugins.len()];
    for _ in 0..5 {
        native_times.push(
            sample!(5, 30, 1, {
                native();
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
    native_times.sort_unstable();
    let native = native_times[2];
    table.row(
        "transform: native Rust rule, records/s",
        format!("{:.0}", per_sec(native)),
        "",
        "",
    );
    for ((name, reuse, _), mut times) in plugins.iter().zip(guest_times) {
        times.sort_unstable();
        let t = times[2];
        let policy = if *reuse == InstanceReuse::Never {
            "fresh instance per batch"
        } else {
            "reused instance"
        };
        table.row(
            format!("transform: {name}, {policy}, batches of 1,000, records/s"),
            format!("{:.0}", per_sec(t)),
            format!("{:.0} native", per_sec(native)),
            format!(
                "{:.1}% of native",
                100.0 * native.as_secs_f64() / t.as_secs_f64()
            ),
        );
    }

    // The old way: one `witplug transform` process per record (compile cache warm).
    let witplug = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/witplug");
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
        cold.sort_unstable();
        cached.sort_unstable();
        table.row(
            format!("load {name}: cached vs cold compile, median"),
            format!("{:.1} ms cached", cached[2].as_secs_f64() * 1e3),
            format!("{:.1} ms compile", cold[2].as_secs_f64() * 1e3),
            format!(
                "{:.0}x faster",
                cold[2].as_secs_f64() / cached[2].as_secs_f64()
            ),
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
    if wanted("instantiate") {
        rt.block_on(instantiate(&mut table, "rust-email-normalizer"));
        rt.block_on(instantiate(&mut table, "go-email-normalizer"));
        if guests_dir()
            .join("go-email-normalizer-preinit.wasm")
            .is_file()
        {
            rt.block_on(instantiate(&mut table, "go-email-normalizer-preinit"));
        }
        instantiate_both_cores(&mut table, "rust-email-normalizer");
        instantiate_both_cores(&mut table, "go-email-normalizer");
    }
    if wanted("calls") {
        rt.block_on(calls(&mut table));
        rt.block_on(records_call(&mut table));
    }
    if wanted("throughput") {
        rt.block_on(throughput(&mut table));
    }
    if wanted("compile") {
        compile_vs_cache(&mut table);
    }
    table.print();
}
