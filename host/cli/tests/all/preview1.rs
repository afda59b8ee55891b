//! Preview1 programs (core modules for wasm32-wasip1) on wasmtime-wasi's preview1: the
//! Rust `wasip1-probe` covers what the wasi-testsuite preview1 tests check (arguments,
//! environment, exit statuses, files in and outside grants, stdio, clocks, randomness) and
//! the Go `filetool` built with plain `GOOS=wasip1 go build` shows the same grants hold.

use std::path::Path;
use std::time::Duration;

use witplug::{
    Access, Capabilities, Error, Limits, LoadError, PluginOptions, Preview1Program, Runtime,
    RuntimeConfig, Stdio,
};

use crate::common::{SANDBOX_HELLO, guest_path, runtime, sandbox};

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn options(caps: Capabilities) -> PluginOptions {
    PluginOptions::default().capabilities(caps.stdout(Stdio::Capture).stderr(Stdio::Capture))
}

fn program(name: &str, options: PluginOptions) -> Preview1Program {
    Preview1Program::load(runtime(), guest_path(name), options).expect("preview1 program loads")
}

async fn try_run(name: &str, caps: Capabilities, args: &[&str]) -> Result<Ran, Error> {
    let caps = caps.args(std::iter::once(name).chain(args.iter().copied()));
    let exit = program(name, options(caps)).run().await?;
    let captured = exit.store.data().captured();
    Ok(Ran {
        code: exit.code,
        stdout: captured.stdout().unwrap_or_default(),
        stderr: captured.stderr().unwrap_or_default(),
    })
}

async fn probe(caps: Capabilities, args: &[&str]) -> Ran {
    try_run("rust-wasip1-probe", caps, args)
        .await
        .expect("the probe runs to an exit status")
}

fn granted(dir: &Path, access: Access) -> Capabilities {
    Capabilities::none()
        .dir_at(dir, "/data", access)
        .expect("grant")
}

#[tokio::test]
async fn arguments_reach_the_program_in_order() {
    let ran = probe(Capabilities::none(), &["args", "two words", "", "ünï"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(ran.stdout, "rust-wasip1-probe\nargs\ntwo words\n\nünï\n");
}

#[tokio::test]
async fn only_granted_environment_variables_are_visible() {
    let ran = probe(Capabilities::none(), &["env-count"]).await;
    assert_eq!(ran.stdout, "0\n", "no grant, no variables");
    // HOME is set in the test process, but not granted.
    let ran = probe(Capabilities::none(), &["env", "HOME"]).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (3, "HOME unset\n"));

    let caps = Capabilities::none().env("MODE", "fast");
    let ran = probe(caps, &["env", "MODE"]).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, "MODE=fast\n"));
}

#[tokio::test]
async fn proc_exit_statuses_arrive_exactly() {
    for status in [0, 1, 2, 42, 125] {
        let ran = probe(Capabilities::none(), &["exit", &status.to_string()]).await;
        assert_eq!(ran.code, status);
    }
    // `main` returning `ExitCode::FAILURE` after a bad command line.
    let ran = probe(Capabilities::none(), &["no-such-check"]).await;
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.starts_with("usage: wasip1-probe"),
        "{}",
        ran.stderr
    );
}

#[tokio::test]
async fn an_exit_status_preview1_does_not_allow_is_an_error_not_a_panic() {
    let error = try_run("rust-wasip1-probe", Capabilities::none(), &["exit", "200"])
        .await
        .err()
        .expect("preview1 allows statuses below 126 only");
    assert!(
        matches!(&error, Error::Call { export, .. } if export == "_start"),
        "{error:?}"
    );
    assert!(
        witplug::error::error_chain(&error).contains("invalid exit status"),
        "{error}"
    );
}

#[tokio::test]
async fn a_read_only_grant_reads_but_never_writes() {
    let sandbox = sandbox();
    let caps = || granted(&sandbox.data, Access::ReadOnly);
    let ran = probe(caps(), &["cat", "/data/hello.txt"]).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, SANDBOX_HELLO));
    let ran = probe(caps(), &["ls", "/data"]).await;
    assert_eq!(ran.stdout, "hello.txt\n");

    let ran = probe(caps(), &["write", "/data/new.txt", "x"]).await;
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.starts_with("cannot write /data/new.txt"),
        "{}",
        ran.stderr
    );
    assert!(!sandbox.data.join("new.txt").exists());
    let ran = probe(caps(), &["write", "/data/hello.txt", "overwritten"]).await;
    assert_eq!(ran.code, 1);
    assert_eq!(
        std::fs::read_to_string(sandbox.data.join("hello.txt")).expect("read"),
        SANDBOX_HELLO
    );
}

#[tokio::test]
async fn a_read_write_grant_writes_to_the_host_directory() {
    let sandbox = sandbox();
    let caps = granted(&sandbox.data, Access::ReadWrite);
    let ran = probe(caps, &["write", "/data/out.txt", "written by the guest"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string(sandbox.data.join("out.txt")).expect("read"),
        "written by the guest"
    );
}

#[tokio::test]
async fn paths_outside_the_grant_are_refused() {
    let sandbox = sandbox();
    let secret = sandbox.root.path().join("secret.txt");
    let secret = secret.to_str().expect("utf-8");
    for path in [
        "/data/../secret.txt",
        "/secret.txt",
        "../secret.txt",
        secret,
    ] {
        let caps = granted(&sandbox.data, Access::ReadWrite);
        let ran = probe(caps, &["cat", path]).await;
        assert_eq!(ran.code, 1, "{path} was readable");
        assert!(!ran.stdout.contains("outside the grant"), "{path}");
        let caps = granted(&sandbox.data, Access::ReadWrite);
        let ran = probe(caps, &["write", &format!("{path}.new"), "x"]).await;
        assert_eq!(ran.code, 1, "{path}.new was writable");
    }
    let names: Vec<_> = std::fs::read_dir(sandbox.root.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "nothing new next to the grant: {names:?}");
}

#[tokio::test]
async fn a_symlink_out_of_the_grant_is_refused() {
    let sandbox = sandbox();
    std::os::unix::fs::symlink(
        sandbox.root.path().join("secret.txt"),
        sandbox.data.join("link"),
    )
    .expect("symlink");
    let ran = probe(
        granted(&sandbox.data, Access::ReadOnly),
        &["cat", "/data/link"],
    )
    .await;
    assert_eq!(ran.code, 1);
    assert!(!ran.stdout.contains("outside the grant"));
}

#[tokio::test]
async fn stdin_is_empty_unless_inherited() {
    let ran = probe(Capabilities::none(), &["stdin"]).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (0, ""));
    assert_eq!(ran.stderr, "read 0 bytes\n");
}

#[tokio::test]
async fn clocks_tell_the_time_and_sleeping_takes_it() {
    let ran = probe(Capabilities::none(), &["clock"]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let value = |key: &str| -> u64 {
        ran.stdout
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {:?}", ran.stdout))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    assert!(value("wall").abs_diff(now) < 60, "{}", ran.stdout);
    assert!(value("slept_ms") >= 20, "{}", ran.stdout);
}

#[tokio::test]
async fn randomness_differs_between_runs() {
    let first = probe(Capabilities::none(), &["random"]).await.stdout;
    let second = probe(Capabilities::none(), &["random"]).await.stdout;
    assert_eq!(first.trim().len(), 16, "{first}");
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_panic_is_a_typed_trap_with_the_guest_stderr() {
    let caps = Capabilities::none().args(["probe", "panic"]);
    let error = program("rust-wasip1-probe", options(caps))
        .run()
        .await
        .expect_err("a panic traps");
    let Error::Trap {
        plugin,
        export,
        detail,
        ..
    } = &error
    else {
        panic!("expected a trap, got {error:?}");
    };
    assert_eq!(
        (plugin.as_str(), export.as_str()),
        ("rust-wasip1-probe", "_start")
    );
    assert!(detail.contains("the probe was asked to panic"), "{detail}");
}

#[tokio::test]
async fn the_deadline_stops_a_spinning_program() {
    let caps = Capabilities::none().args(["probe", "spin"]);
    let limits = Limits {
        call_timeout: Some(Duration::from_millis(300)),
        ..Limits::default()
    };
    let error = program("rust-wasip1-probe", options(caps).limits(limits))
        .run()
        .await
        .expect_err("a spinning program is stopped");
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn the_memory_limit_stops_a_growing_program() {
    let caps = Capabilities::none().args(["probe", "grow"]);
    let limits = Limits {
        max_memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let error = program("rust-wasip1-probe", options(caps).limits(limits))
        .run()
        .await
        .expect_err("a growing program is stopped");
    assert!(
        matches!(error, Error::MemoryLimit { limit, .. } if limit == 32 << 20),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_go_wasip1_program_runs_with_its_own_exit_status() {
    let sandbox = sandbox();
    let ran = try_run(
        "go-filetool-wasip1",
        granted(&sandbox.data, Access::ReadOnly),
        &["cat", "/data/hello.txt"],
    )
    .await
    .expect("go program runs");
    assert_eq!((ran.code, ran.stdout.as_str()), (0, SANDBOX_HELLO));

    // filetool exits 2 on bad usage: exactly 2 here, where the adapter makes it 1.
    let ran = try_run("go-filetool-wasip1", Capabilities::none(), &[])
        .await
        .expect("go program runs");
    assert_eq!(ran.code, 2, "{}", ran.stderr);

    let ran = try_run(
        "go-filetool-wasip1",
        granted(&sandbox.data, Access::ReadOnly),
        &["cat", "/data/../secret.txt"],
    )
    .await
    .expect("go program runs");
    assert_eq!(ran.code, 1);
    assert!(!ran.stdout.contains("outside the grant"));
}

#[tokio::test]
async fn a_core_module_is_compiled_once_through_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cached = Runtime::with_config(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let path = guest_path("rust-wasip1-probe");
    let load = || {
        let caps = Capabilities::none()
            .args(["probe", "exit", "7"])
            .stdout(Stdio::Capture);
        Preview1Program::load(&cached, &path, PluginOptions::default().capabilities(caps))
            .expect("loads")
    };
    let first = load();
    assert!(!first.from_cache());
    let second = load();
    assert!(second.from_cache());
    assert_eq!(second.run().await.expect("runs").code, 7);
}

#[test]
fn a_component_is_not_a_preview1_program() {
    let error = Preview1Program::load(
        runtime(),
        guest_path("rust-filetool"),
        PluginOptions::default(),
    )
    .err()
    .expect("a component is refused");
    assert!(
        matches!(&error, Error::Load(LoadError::Invalid { reason, .. }) if reason.contains("is a component")),
        "{error:?}"
    );
}

#[test]
fn a_module_without_start_or_with_foreign_imports_is_named() {
    let library = wat::parse_str(r#"(module (func (export "f")))"#).expect("wat");
    let error =
        Preview1Program::from_bytes(runtime(), &library, "lib.wasm", PluginOptions::default())
            .err()
            .expect("no _start");
    let text = error.to_string();
    assert!(
        matches!(error, Error::Load(LoadError::WorldMismatch { .. })),
        "{error:?}"
    );
    assert!(
        text.contains("no `_start`") && text.contains("f (func)"),
        "{text}"
    );

    let foreign =
        wat::parse_str(r#"(module (import "env" "host_secret" (func)) (func (export "_start")))"#)
            .expect("wat");
    let error =
        Preview1Program::from_bytes(runtime(), &foreign, "app.wasm", PluginOptions::default())
            .err()
            .expect("unknown import");
    let text = error.to_string();
    assert!(text.contains("env::host_secret"), "{text}");

    let garbage = b"\0asm\x01\0\0\0\xff\xff".to_vec();
    let error =
        Preview1Program::from_bytes(runtime(), &garbage, "bad.wasm", PluginOptions::default())
            .err()
            .expect("invalid module");
    assert!(
        matches!(error, Error::Load(LoadError::Invalid { .. })),
        "{error:?}"
    );
}
