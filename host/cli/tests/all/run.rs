//! `witplug run` and `witplug inspect` end to end: preview1 programs, exit statuses, and
//! messages that name the world a component does implement.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use crate::common::guest_path;

fn witplug(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(args)
        .output()
        .expect("witplug runs")
}

fn guest(name: &str) -> String {
    guest_path(name).to_str().expect("utf-8 path").to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_preview1_program_runs_with_grants_and_its_exit_status() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "granted text\n").expect("write");
    let grant = format!("{}::/data:ro", dir.path().display());
    let probe = guest("rust-wasip1-probe");
    let out = witplug(&[
        "run",
        &probe,
        "--dir",
        &grant,
        "--",
        "cat",
        "/data/notes.txt",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "granted text\n");

    let out = witplug(&["run", &probe, "--env", "MODE=fast", "--", "env", "MODE"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "MODE=fast\n");

    let out = witplug(&["run", &probe, "--", "exit", "42"]);
    assert_eq!(out.status.code(), Some(42));

    let out = witplug(&["run", &guest("go-filetool-wasip1")]);
    assert_eq!(out.status.code(), Some(2), "Go's own usage status");
}

#[test]
fn stdin_is_inherited() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["run", &guest("rust-wasip1-probe"), "--", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"piped in\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PIPED IN\n");
}

#[test]
fn a_trap_or_a_limit_exits_134_and_says_what_happened() {
    let probe = guest("rust-wasip1-probe");
    let out = witplug(&["run", &probe, "--", "panic"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(
        stderr(&out).contains("trapped in `_start`"),
        "{}",
        stderr(&out)
    );

    let out = witplug(&["run", &probe, "--timeout-ms", "300", "--", "spin"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(stderr(&out).contains("ran out of time"), "{}", stderr(&out));

    let out = witplug(&["run", &probe, "--max-memory", "32", "--", "grow"]);
    assert_eq!(out.status.code(), Some(134));
    assert!(stderr(&out).contains("memory limit"), "{}", stderr(&out));
}

#[test]
fn load_and_usage_errors_have_their_own_statuses() {
    let out = witplug(&["run", "/no/such/app.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    let dir = tempfile::tempdir().expect("tempdir");
    let library = dir.path().join("lib.wasm");
    std::fs::write(
        &library,
        wat::parse_str(r#"(module (func (export "f")))"#).expect("wat"),
    )
    .expect("write");
    let out = witplug(&["run", library.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no `_start`"), "{}", stderr(&out));

    let out = witplug(&["run", &guest("rust-wasip1-probe"), "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_command_component_through_the_adapter_reports_failure_as_1() {
    // The same Go program exits 2 as a preview1 program (above); the adapter's
    // `wasi:cli/exit` only knows success and failure.
    let out = witplug(&["run", &guest("go-filetool")]);
    assert_eq!(out.status.code(), Some(1));
    let out = witplug(&["run", &guest("rust-filetool"), "--", "cat", "/nowhere"]);
    assert_eq!(out.status.code(), Some(1));
    // The probe's `exit 42` is 42 directly (see above) and 1 through the adapter.
    let out = witplug(&[
        "run",
        &guest("rust-wasip1-probe-adapted"),
        "--",
        "exit",
        "42",
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn run_on_a_transform_plugin_names_its_world_and_subcommand() {
    let out = witplug(&["run", &guest("rust-email-normalizer")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(
        text.contains("implements world `witplug:plugin/transform-plugin@0.1.0`")
            && text.contains("`witplug transform`"),
        "{text}"
    );
    assert!(!text.contains("has the wrong type"), "{text}");

    let out = witplug(&["run", &guest("rust-aggregator")]);
    assert!(
        stderr(&out).contains("witplug:plugin/aggregator-plugin@0.1.0"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_help_lists_exit_statuses_defaults_and_the_deadline() {
    let out = witplug(&["run", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "134",
        "preview1",
        "256 MiB",
        "10 s",
        "blocked",
        "bad command line",
    ] {
        assert!(
            help.contains(expected),
            "`{expected}` missing from:\n{help}"
        );
    }
}

#[test]
fn inspect_tells_a_preview1_program_and_a_command() {
    let out = witplug(&["inspect", &guest("rust-wasip1-probe")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("wasi_snapshot_preview1::fd_write (func)"),
        "{text}"
    );
    assert!(text.contains("_start (func)"), "{text}");
    assert!(text.contains("world: wasi preview1 command"), "{text}");

    let out = witplug(&["inspect", &guest("go-filetool")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("world: wasi:cli/command@0.2"), "{text}");
    assert!(text.contains("`witplug run`"), "{text}");
}

#[test]
fn inspect_on_an_unknown_world_says_what_each_world_misses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("other.wasm");
    let component = wat::parse_str(
        r#"(component
            (import "acme:tools/clock" (instance))
            (core module $m (func (export "f") (result i32) i32.const 1))
            (core instance $i (instantiate $m))
            (func (export "answer") (result u32) (canon lift (core func $i "f"))))"#,
    )
    .expect("wat");
    std::fs::write(&path, component).expect("write");
    let out = witplug(&["inspect", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acme:tools/clock (interface)"), "{text}");
    assert!(text.contains("answer (func)"), "{text}");
    assert!(
        text.contains("world: none of the built-in worlds"),
        "{text}"
    );
    assert!(
        text.contains("not wasi:cli/command@0.2: no export `wasi:cli/run`; import `acme:tools/clock` is not provided"),
        "{text}"
    );
    assert!(
        text.contains(
            "not witplug:plugin/transform-plugin@0.1.0: no export `witplug:plugin/metadata`"
        ),
        "{text}"
    );
}

#[test]
fn a_component_exit_with_code_status_arrives_exactly() {
    // `wasi:cli/exit.exit-with-code` (stable since WASI 0.2.12, linked by wasmtime-wasi 48):
    // a component that calls it with 42 exits 42, not 1.
    let component = wat::parse_str(
        r#"(component
            (import "wasi:cli/exit@0.2.12" (instance $exit
                (export "exit-with-code" (func (param "status-code" u8)))))
            (core func $exit_with_code (canon lower (func $exit "exit-with-code")))
            (core module $m
                (import "host" "exit-with-code" (func $exit_with_code (param i32)))
                (func (export "run") (result i32) i32.const 42 call $exit_with_code unreachable))
            (core instance $host (export "exit-with-code" (func $exit_with_code)))
            (core instance $i (instantiate $m (with "host" (instance $host))))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $run_instance (export "run" (func $run)))
            (export "wasi:cli/run@0.2.12" (instance $run_instance)))"#,
    )
    .expect("wat");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exit42.wasm");
    std::fs::write(&path, component).expect("write");
    let out = witplug(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(42), "{}", stderr(&out));
}

#[test]
fn the_deadline_stops_a_program_blocked_on_stdin() {
    // The preview1 program directly, and the same program as a component (adapter).
    for name in ["rust-wasip1-probe", "rust-wasip1-probe-adapted"] {
        stopped_while_blocked_on_stdin(name);
    }
}

fn stopped_while_blocked_on_stdin(name: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["run", &guest(name), "--timeout-ms", "500", "--", "stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Stdin stays open and empty: the program blocks in its read until the deadline.
    let _stdin = child.stdin.take().expect("stdin");
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > give_up {
            child.kill().expect("kill");
            panic!("{name} blocked on stdin outlived its deadline");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert_eq!(out.status.code(), Some(134), "{name}: {}", stderr(&out));
    assert!(
        stderr(&out).contains("ran out of time"),
        "{name}: {}",
        stderr(&out)
    );
}

#[test]
fn compile_caches_a_preview1_program_ahead_of_time_for_run() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().to_str().expect("utf-8 path");
    let probe = guest("rust-wasip1-probe");
    let out = witplug(&["compile", "--cache-dir", cache_dir, &probe]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains(": compiled in"), "{stdout}");
    assert_eq!(module_entries(cache.path()), 1, "one core-module entry");

    let out = witplug(&["compile", "--cache-dir", cache_dir, &probe]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": already cached in"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // `run` finds the same entry: its configuration (the CLI's) compiles alike.
    let out = witplug(&["run", "--cache-dir", cache_dir, &probe, "--", "exit", "3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Had `run` missed the entry, it would have written a second one.
    assert_eq!(module_entries(cache.path()), 1, "run reused the entry");
}

fn module_entries(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "mwasm"))
        .count()
}

#[test]
fn compile_takes_the_flags_that_change_native_code() {
    // Fuel metering compiles other code: an entry made without `--fuel` would never serve
    // `run --fuel`, so `compile` takes the same flags and makes the entry `run` looks for.
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().to_str().expect("utf-8 path");
    let probe = guest("rust-wasip1-probe");
    let fuel = ["--fuel", "1000000000"];
    let out = witplug(
        &[
            &["compile", "--cache-dir", cache_dir, &probe][..],
            &fuel[..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = witplug(
        &[
            &["run", "--cache-dir", cache_dir, &probe][..],
            &fuel[..],
            &["--", "exit", "4"][..],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(
        module_entries(cache.path()),
        1,
        "run --fuel reused the entry"
    );
}

#[test]
fn inspect_on_a_look_alike_with_a_wrong_signature_says_so_and_why() {
    // `rust-mistyped` has the transform world's names but a wrong signature.
    let out = witplug(&["inspect", &guest("rust-mistyped")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "world: looks like witplug:plugin/transform-plugin@0.1.0, but does not implement it"
        ),
        "{text}"
    );
    assert!(text.contains("does not implement world"), "{text}");
    assert!(text.contains("exports:"), "{text}");
}
