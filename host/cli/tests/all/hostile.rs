//! Hostile guests (`guest-rust/hostile`, `guest-tinygo/hostile`, and `guest-rust/hostile-v0-2`
//! for transform@0.2.0's flat answers): each attack gets its exact
//! typed error, the host stays healthy, and the same plugin serves the next call.
//!
//! Time bounds here only check that a runaway guest is stopped at all (and not before its
//! deadline); how fast is measured by the benchmarks.

use std::time::{Duration, Instant};

use witplug::worlds::transform::Outcome;
use witplug::{
    Access, Capabilities, Error, InstanceReuse, Limits, Plugin, PluginOptions, Pooling, Record,
    Runtime, RuntimeConfig, Stdio, TransformPlugin, Value,
};

use crate::common::{component, record, runtime, text};

const TIMEOUT: Duration = Duration::from_millis(300);
const MEMORY: usize = 64 << 20;
const TRANSFER: usize = 4 << 20;

fn limits() -> Limits {
    Limits {
        max_memory_bytes: MEMORY,
        call_timeout: Some(TIMEOUT),
        max_transfer_bytes: TRANSFER,
        ..Limits::default()
    }
}

async fn hostile_with(
    language: &str,
    capabilities: Capabilities,
    limits: Limits,
) -> TransformPlugin {
    let options = PluginOptions::default()
        .name(format!("{language}-hostile"))
        .capabilities(capabilities.stderr(Stdio::Capture))
        .limits(limits);
    TransformPlugin::new(
        runtime(),
        &component(&format!("{language}-hostile")),
        options,
    )
    .await
    .expect("hostile guest links")
}

async fn hostile(language: &str) -> TransformPlugin {
    hostile_with(language, Capabilities::none(), limits()).await
}

/// The host is still healthy and the plugin answers a harmless call on a fresh instance.
async fn assert_still_serves(plugin: &TransformPlugin) {
    let outcomes = plugin
        .process_batch(&[record("fine", &[])])
        .await
        .expect("healthy after the attack");
    assert_eq!(outcomes, [Outcome::Keep(record("fine", &[]))]);
}

async fn attack(plugin: &TransformPlugin, attack: Record) -> Error {
    let key = attack.key.clone();
    let error = plugin
        .process_batch(&[attack])
        .await
        .expect_err(&format!("`{key}` must fail"));
    assert_eq!(error.plugin(), Some(plugin.name()), "{error}");
    error
}

#[tokio::test]
async fn runaway_loops_are_stopped_at_the_deadline() {
    for (language, key) in [
        ("rust", "spin"),
        ("rust", "log-storm"),
        ("rust", "config-storm"),
        ("go", "spin"),
        ("go", "goroutines-spin"),
    ] {
        let plugin = hostile(language).await;
        let started = Instant::now();
        let error = attack(&plugin, record(key, &[])).await;
        let elapsed = started.elapsed();
        assert!(
            matches!(&error, Error::Timeout { export, timeout, .. }
                if export == "witplug:plugin/transformer#process-batch" && *timeout == TIMEOUT),
            "{language} {key}: {error:?}"
        );
        assert!(
            elapsed >= TIMEOUT,
            "{language} {key}: stopped early, after {elapsed:?}"
        );
        assert!(
            elapsed < TIMEOUT * 20,
            "{language} {key}: stopped only after {elapsed:?}"
        );
        assert_still_serves(&plugin).await;
    }
}

#[tokio::test]
async fn memory_bombs_hit_the_memory_limit() {
    for (language, key) in [
        ("rust", "grow-memory"),
        ("rust", "alloc-bomb"),
        ("go", "alloc-bomb"),
    ] {
        // A generous deadline: this test is about memory, however slow the machine.
        let limits = Limits {
            call_timeout: Some(Duration::from_secs(30)),
            ..limits()
        };
        let plugin = hostile_with(language, Capabilities::none(), limits).await;
        let error = attack(&plugin, record(key, &[])).await;
        assert!(
            matches!(&error, Error::MemoryLimit { limit, requested, .. } if *limit == MEMORY && *requested > MEMORY),
            "{language} {key}: {error:?}"
        );
        assert_still_serves(&plugin).await;
    }
}

#[tokio::test]
async fn a_huge_return_value_hits_the_transfer_limit() {
    let plugin = hostile("rust").await;
    // Within the limit: fine.
    let outcomes = plugin
        .process_batch(&[record("huge-return", &[("bytes", Value::Integer(1 << 20))])])
        .await
        .expect("1 MiB is allowed");
    let Outcome::Keep(kept) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert!(matches!(&kept.fields[1].value, Value::Text(blob) if blob.len() == 1 << 20));

    let error = attack(
        &plugin,
        record("huge-return", &[("bytes", Value::Integer(16 << 20))]),
    )
    .await;
    assert!(
        matches!(
            error,
            Error::TransferLimit {
                limit: TRANSFER,
                ..
            }
        ),
        "{error:?}"
    );

    // Many small records add up the same way, counted in host memory rather than wire
    // bytes: 32,000 records of one field are ~3.8 MB to wasmtime (under the 4 MiB cap)
    // but ~5.6 MB once lifted (a `String` or `Vec` costs 24 bytes plus a malloc chunk).
    // Building the records takes the guest a while on a loaded machine: no tight deadline.
    let plugin = hostile_with(
        "rust",
        Capabilities::none(),
        Limits {
            call_timeout: Some(Duration::from_secs(30)),
            ..limits()
        },
    )
    .await;
    let split = |count: i64| record("huge-list", &[("count", Value::Integer(count))]);
    let error = attack(&plugin, split(32_000)).await;
    assert!(
        matches!(
            error,
            Error::TransferLimit {
                limit: TRANSFER,
                ..
            }
        ),
        "{error:?}"
    );
    let outcomes = plugin
        .process_batch(&[split(5_000)])
        .await
        .expect("~0.9 MB of host memory is allowed");
    assert!(matches!(&outcomes[0], Outcome::Split(records) if records.len() == 5_000));

    // The attack, 1,000,000 records.
    let error = attack(
        &plugin,
        record("huge-list", &[("count", Value::Integer(1_000_000))]),
    )
    .await;
    assert!(
        matches!(
            error,
            Error::TransferLimit { .. } | Error::MemoryLimit { .. }
        ),
        "{error:?}"
    );
    assert_still_serves(&plugin).await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_stack_overflow() {
    let plugin = hostile("rust").await;
    let error = attack(&plugin, record("recurse", &[])).await;
    assert!(matches!(error, Error::StackOverflow { .. }), "{error:?}");
    assert_still_serves(&plugin).await;
}

#[tokio::test]
async fn panics_are_traps_with_the_message() {
    for (language, message) in [
        ("rust", "hostile plugin panicked"),
        ("go", "hostile Go plugin panicked"),
    ] {
        let plugin = hostile(language).await;
        let error = attack(&plugin, record("panic", &[])).await;
        let Error::Trap { detail, .. } = &error else {
            panic!("{language}: {error:?}")
        };
        assert!(detail.contains(message), "{language}: {detail}");
        assert_still_serves(&plugin).await;
    }
}

/// The Rust hostile guest on a runtime of its own with fuel metering on.
async fn metered_hostile(name: &str, limits: Limits) -> TransformPlugin {
    let metered = Runtime::with_config(RuntimeConfig {
        fuel_metering: true,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let loaded =
        witplug::LoadedComponent::from_file(&metered, crate::common::guest_path("rust-hostile"))
            .expect("loads");
    TransformPlugin::new(
        &metered,
        &loaded,
        PluginOptions::default().name(name).limits(limits),
    )
    .await
    .expect("links")
}

#[tokio::test]
async fn fuel_meters_guests_deterministically() {
    let limits = Limits {
        fuel_per_call: Some(5_000_000),
        call_timeout: Some(Duration::from_secs(30)),
        ..limits()
    };
    let plugin = metered_hostile("metered", limits).await;
    let error = attack(&plugin, record("spin", &[])).await;
    assert!(
        matches!(
            error,
            Error::FuelExhausted {
                fuel: 5_000_000,
                ..
            }
        ),
        "{error:?}"
    );
    assert_still_serves(&plugin).await;

    // Asking for fuel on a runtime that does not meter it is refused up front.
    let error = Plugin::<witplug::worlds::transform::TransformWorld>::new(
        runtime(),
        &component("rust-hostile"),
        PluginOptions::default().limits(Limits {
            fuel_per_call: Some(1),
            ..Limits::default()
        }),
    )
    .await
    .expect_err("fuel without metering");
    assert!(matches!(error, Error::InvalidLimits(_)), "{error:?}");
}

/// A host directory tree: `root/secret.txt` is never granted, `root/data/` is, and holds
/// symlinks that point out of it.
struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::write(root.path().join("secret.txt"), "top secret").expect("write");
        let data = root.path().join("data");
        std::fs::create_dir(&data).expect("mkdir");
        std::fs::write(data.join("ok.txt"), "granted").expect("write");
        std::os::unix::fs::symlink("../secret.txt", data.join("relative-link")).expect("symlink");
        std::os::unix::fs::symlink(root.path().join("secret.txt"), data.join("absolute-link"))
            .expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", data.join("passwd-link")).expect("symlink");
        Self { root }
    }

    fn data(&self) -> std::path::PathBuf {
        self.root.path().join("data")
    }

    fn read_only(&self) -> Capabilities {
        Capabilities::none()
            .dir_at(self.data(), "/data", Access::ReadOnly)
            .expect("grant")
    }
}

fn io_error(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error(e) if e.code == "io")
}

#[tokio::test]
async fn files_outside_the_grant_stay_out_of_reach() {
    let sandbox = Sandbox::new();
    for language in ["rust", "go"] {
        let plugin = hostile_with(language, sandbox.read_only(), limits()).await;
        let reads = [
            "/data/ok.txt",
            "/etc/passwd",
            "/data/../secret.txt",
            "/data/relative-link",
            "/data/absolute-link",
            "/data/passwd-link",
            "../secret.txt",
        ];
        let batch: Vec<Record> = reads
            .iter()
            .map(|path| record("read", &[("path", text(path))]))
            .collect();
        let outcomes = plugin.process_batch(&batch).await.expect("reads answer");
        let Outcome::Keep(granted) = &outcomes[0] else {
            panic!("{language}: {:?}", outcomes[0])
        };
        assert_eq!(granted.fields[1].value, text("granted"), "{language}");
        for (path, outcome) in reads.iter().zip(&outcomes).skip(1) {
            assert!(
                io_error(outcome),
                "{language}: {path} was readable: {outcome:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_read_only_grant_cannot_be_written() {
    let sandbox = Sandbox::new();
    let plugin = hostile_with("rust", sandbox.read_only(), limits()).await;
    let outcomes = plugin
        .process_batch(&[
            record(
                "write",
                &[("path", text("/data/new.txt")), ("content", text("x"))],
            ),
            record(
                "write",
                &[
                    ("path", text("/data/ok.txt")),
                    ("content", text("overwritten")),
                ],
            ),
        ])
        .await
        .expect("answers");
    assert!(outcomes.iter().all(io_error), "{outcomes:?}");
    assert!(!sandbox.data().join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(sandbox.data().join("ok.txt")).expect("read"),
        "granted"
    );
}

#[tokio::test]
async fn environment_variables_are_invisible_unless_granted() {
    for language in ["rust", "go"] {
        let plugin = hostile(language).await;
        let outcomes = plugin
            .process_batch(&[record("env", &[("name", text("PATH"))])])
            .await
            .expect("answers");
        assert!(
            matches!(&outcomes[0], Outcome::Error(e) if e.code == "env"),
            "{language}: {outcomes:?}"
        );
    }
    let plugin = hostile_with("rust", Capabilities::none().env("MODE", "strict"), limits()).await;
    let outcomes = plugin
        .process_batch(&[record("env-all", &[])])
        .await
        .expect("answers");
    let Outcome::Keep(kept) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    assert_eq!(
        kept.fields[0].value,
        Value::TextList(vec!["MODE=strict".to_owned()])
    );
}

#[tokio::test]
async fn the_network_is_denied() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let plugin = hostile("rust").await;
    let outcomes = plugin
        .process_batch(&[
            record("tcp-connect", &[("addr", text(&addr))]),
            record("dns", &[("host", text("localhost"))]),
            record("udp-bind", &[]),
        ])
        .await
        .expect("answers");
    for outcome in &outcomes {
        assert!(
            matches!(outcome, Outcome::Error(e) if e.code == "net"),
            "{outcomes:?}"
        );
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the guest reached the listener"
    );
}

#[tokio::test]
async fn go_goroutines_that_never_end_die_with_their_instance() {
    let plugin = hostile("go").await;
    for _ in 0..3 {
        let outcomes = plugin
            .process_batch(&[record("goroutines-leak", &[])])
            .await
            .expect("returns");
        assert_eq!(outcomes, [Outcome::Keep(record("goroutines-leak", &[]))]);
    }
    assert_still_serves(&plugin).await;
}

/// On a single-threaded executor, other plugins' calls complete while one plugin spins:
/// the spinning guest yields at every epoch tick.
#[tokio::test(flavor = "current_thread")]
async fn a_spinning_plugin_does_not_block_the_executor() {
    let spinner = hostile_with(
        "rust",
        Capabilities::none(),
        Limits {
            call_timeout: Some(Duration::from_secs(3)),
            ..limits()
        },
    )
    .await;
    let spinning = tokio::spawn(async move { spinner.process_batch(&[record("spin", &[])]).await });
    let worker = hostile("rust").await;
    for i in 0..20 {
        let key = format!("work-{i}");
        let outcomes = worker
            .process_batch(&[record(&key, &[])])
            .await
            .expect("served");
        assert_eq!(outcomes, [Outcome::Keep(record(&key, &[]))]);
        tokio::task::yield_now().await;
    }
    assert!(
        !spinning.is_finished(),
        "the other calls waited for the spinning guest"
    );
    let error = spinning
        .await
        .expect("join")
        .expect_err("spinner times out");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

/// Whether the `residue` attack found its static memory written before it.
fn residue(outcomes: &[Outcome]) -> bool {
    match outcomes {
        [Outcome::Keep(kept)] => match kept.fields.iter().find(|f| f.name == "residue") {
            Some(field) => field.value == Value::Boolean(true),
            None => panic!("no `residue` field in {kept:?}"),
        },
        other => panic!("unexpected outcomes {other:?}"),
    }
}

/// The pooling allocator hands the same memory slot to the next instance, resetting in
/// place the pages the last one touched (`Pooling::keep_resident_bytes`): no instance may
/// find what another wrote. The same probe on a reused instance does find its own marks,
/// which shows that it can tell.
#[tokio::test]
async fn a_pooled_memory_slot_holds_nothing_of_the_instance_before() {
    let runtime = Runtime::with_config(RuntimeConfig {
        // One slot, so that every instance reuses it.
        pooling: Some(Pooling {
            max_instances: 1,
            ..Pooling::default()
        }),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let loaded =
        witplug::LoadedComponent::from_file(&runtime, crate::common::guest_path("rust-hostile"))
            .expect("loads");
    let batch = [record("residue", &[])];
    for reuse in [InstanceReuse::Never, InstanceReuse::UpTo { max_calls: 10 }] {
        let plugin = TransformPlugin::new(&runtime, &loaded, PluginOptions::default().reuse(reuse))
            .await
            .expect("links");
        let mut found = Vec::new();
        for _ in 0..3 {
            found.push(residue(&plugin.process_batch(&batch).await.expect("batch")));
        }
        let expected = match reuse {
            InstanceReuse::Never => [false, false, false],
            InstanceReuse::UpTo { .. } => [false, true, true],
        };
        assert_eq!(found, expected, "{reuse:?}");
    }
}

/// `call_timeout: None` lifts the deadline: a spinning guest runs through many epoch
/// ticks and is stopped only by its fuel (with metering on, so the test ends). The control
/// shows that this fuel outlasts a short deadline, so `None` ran past it.
/// (`limits::tests::without_a_timeout_no_tick_stops_the_call` covers hours of ticks.)
#[tokio::test]
async fn without_a_deadline_only_fuel_stops_a_spinning_guest() {
    // About 0.5 s of spinning here (300 million took 45 ms): ten times the control.
    const FUEL: u64 = 3_000_000_000;
    const CONTROL: Duration = Duration::from_millis(50);
    let control = metered_hostile(
        "deadlined",
        Limits {
            fuel_per_call: Some(FUEL),
            call_timeout: Some(CONTROL),
            ..limits()
        },
    )
    .await;
    let error = attack(&control, record("spin", &[])).await;
    assert!(
        matches!(error, Error::Timeout { timeout, .. } if timeout == CONTROL),
        "the fuel must outlast {CONTROL:?}: {error:?}"
    );

    let limits = Limits {
        fuel_per_call: Some(FUEL),
        call_timeout: None,
        ..limits()
    };
    let plugin = metered_hostile("undeadlined", limits).await;
    let started = Instant::now();
    let error = attack(&plugin, record("spin", &[])).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(error, Error::FuelExhausted { fuel: FUEL, .. }),
        "{error:?} after {elapsed:?}"
    );
    assert!(elapsed >= CONTROL, "stopped after only {elapsed:?}");
    assert_still_serves(&plugin).await;
}

/// How long a test waits for a sleeping guest to be stopped before it fails: far beyond
/// the deadline, far below the guest's 60 s sleep.
const WATCHDOG: Duration = Duration::from_secs(20);

/// A guest blocked in `wasi:io/poll` (`std::thread::sleep`) reaches no epoch check; the
/// wall-clock deadline stops it all the same, and the timed-out instance is never reused.
#[tokio::test]
async fn a_sleeping_guest_is_stopped_at_the_deadline() {
    let loaded = component("rust-hostile");
    let plugin = TransformPlugin::new(
        runtime(),
        &loaded,
        PluginOptions::default()
            .name("sleeper")
            .limits(limits())
            .reuse(InstanceReuse::UpTo { max_calls: 10 }),
    )
    .await
    .expect("links");
    assert_still_serves(&plugin).await;
    let before = plugin.instantiations();

    let started = Instant::now();
    let error = tokio::time::timeout(WATCHDOG, attack(&plugin, record("sleep", &[])))
        .await
        .expect("the sleeping guest is stopped by its deadline");
    let elapsed = started.elapsed();
    assert!(
        matches!(&error, Error::Timeout { export, timeout, .. }
            if export == "witplug:plugin/transformer#process-batch" && *timeout == TIMEOUT),
        "{error:?}"
    );
    assert!(elapsed >= TIMEOUT, "stopped early, after {elapsed:?}");
    assert!(error.to_string().contains("ran out of time"), "{error}");
    // The sleep ran on the idle instance; the next call needs a new one.
    assert_eq!(plugin.instantiations(), before);
    assert_still_serves(&plugin).await;
    assert_eq!(plugin.instantiations(), before + 1);

    // A sleep shorter than the deadline just returns.
    let short = record("sleep", &[("ms", Value::Integer(10))]);
    let outcomes = plugin
        .process_batch(std::slice::from_ref(&short))
        .await
        .expect("a short sleep fits the deadline");
    assert_eq!(outcomes, [Outcome::Keep(short)]);
}

/// Without a deadline a sleep longer than the usual test deadline runs to its end.
#[tokio::test]
async fn without_a_deadline_a_sleeping_guest_runs_to_its_end() {
    let plugin = hostile_with(
        "rust",
        Capabilities::none(),
        Limits {
            call_timeout: None,
            ..limits()
        },
    )
    .await;
    let long = record(
        "sleep",
        &[("ms", Value::Integer(2 * TIMEOUT.as_millis() as i64))],
    );
    let outcomes =
        tokio::time::timeout(WATCHDOG, plugin.process_batch(std::slice::from_ref(&long)))
            .await
            .expect("the sleep ends")
            .expect("no deadline stops it");
    assert_eq!(outcomes, [Outcome::Keep(long)]);
}

/// A transform@0.2.0 answer is spans and indices into itself and into the batch: a guest
/// that points anywhere it may not gets a contract error naming the offence, one that
/// names a large text many times is stopped by the transfer limit, and the plugin serves
/// the next call (with instance reuse on, so a refused instance must not be reused).
#[tokio::test]
async fn a_flat_answer_that_points_out_of_bounds_breaks_the_contract() {
    let plugin = TransformPlugin::new(
        runtime(),
        &component("rust-hostile-v0-2"),
        PluginOptions::default()
            .name("hostile-v0-2")
            .limits(limits())
            .reuse(InstanceReuse::UpTo { max_calls: 100 }),
    )
    .await
    .expect("links");
    assert_eq!(plugin.version(), witplug::TransformVersion::V0_2_0);
    assert_still_serves(&plugin).await;
    let cases = [
        ("short", "returned 0 outcomes for a batch of 1 records"),
        (
            "span-outside",
            "outcome 0: keep-as 0: key: span 1+1073741824 is outside the answer's text (3 long)",
        ),
        (
            "mid-char",
            "edit 0: span 0+1 of the answer's text does not fall on character boundaries",
        ),
        (
            "edit-dropped",
            "edit 0: record 0 is not kept as it came (its outcome is not `keep`)",
        ),
        (
            "bad-name",
            "outcome 0: split, record 0: cell 0: name 4294967295 is not one of the batch's 1 \
             and the answer's 0 names",
        ),
    ];
    for (key, offence) in cases {
        let error = attack(&plugin, record(key, &[("email", text("a@b.org"))])).await;
        let Error::Contract {
            export, message, ..
        } = &error
        else {
            panic!("`{key}`: expected a contract error, got {error:?}");
        };
        assert_eq!(export, "witplug:plugin/transformer#process-batch");
        assert!(message.contains(offence), "`{key}`: {message}");
        assert_still_serves(&plugin).await;
    }
    // Its 256 KiB answer lifts within the 4 MiB transfer limit; the 128 MiB it names do not.
    let error = attack(&plugin, record("amplify", &[("email", text("a@b.org"))])).await;
    assert!(
        matches!(error, Error::TransferLimit { limit, .. } if limit == TRANSFER),
        "{error:?}"
    );
    assert_still_serves(&plugin).await;
}
