//! How the CLI writes: a closed stdout or stderr (`witplug inspect x | head -1`) ends a
//! subcommand quietly, as Unix tools do (never a panic, exit status 101), and logs carry
//! colour codes only on a terminal.

use std::process::{Command, Output, Stdio};

use crate::common::guest_path;

/// The exit status the CLI uses when its stdout's reader has gone (128 + SIGPIPE).
const BROKEN_PIPE_EXIT: i32 = 141;

fn sample_records() -> String {
    format!("{}/../../samples/records.jsonl", env!("CARGO_MANIFEST_DIR"))
}

fn path(name: &str) -> String {
    guest_path(name).to_str().expect("utf-8 path").to_owned()
}

/// Runs witplug with stdout (or stderr) connected to a pipe whose reader is already closed.
fn with_closed(stream: &str, args: &[String]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut command = Command::new(env!("CARGO_BIN_EXE_witplug"));
    command.args(args).stdin(Stdio::null());
    match stream {
        "stdout" => command.stdout(writer).stderr(Stdio::piped()),
        _ => command.stdout(Stdio::null()).stderr(writer),
    };
    command.output().expect("witplug runs")
}

fn subcommands(cache: &std::path::Path) -> Vec<Vec<String>> {
    let cache = cache.to_str().expect("utf-8 path").to_owned();
    vec![
        vec!["inspect".into(), path("go-hostile")],
        vec!["inspect".into(), path("rust-email-normalizer")],
        vec![
            "compile".into(),
            "--cache-dir".into(),
            cache,
            path("rust-echo"),
            path("rust-filetool"),
        ],
        vec![
            "transform".into(),
            path("rust-email-normalizer"),
            "--input".into(),
            sample_records(),
        ],
        vec!["--help".into()],
    ]
}

#[test]
fn a_closed_stdout_ends_every_subcommand_quietly() {
    let cache = tempfile::tempdir().expect("tempdir");
    for args in subcommands(cache.path()) {
        let out = with_closed("stdout", &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.code() == Some(BROKEN_PIPE_EXIT)
                || (args[0] == "--help" && out.status.code() == Some(0)),
            "{args:?}: {:?} {stderr}",
            out.status
        );
        if args[0] != "--help" {
            assert!(
                stderr.trim().is_empty() || !stderr.contains("Broken pipe"),
                "{args:?}: {stderr}"
            );
        }
    }
}

#[test]
fn a_closed_stderr_loses_only_the_messages() {
    let cache = tempfile::tempdir().expect("tempdir");
    for args in subcommands(cache.path()) {
        let out = with_closed("stderr", &args);
        // The transform's closing summary and compile's lines go to a closed stderr (or
        // stdout, which is open): the command still succeeds.
        assert_eq!(out.status.code(), Some(0), "{args:?}: {:?}", out.status);
    }
    // A failing command cannot report its error, but still fails, without a panic.
    let out = with_closed("stderr", &["inspect".into(), "/no/such/file.wasm".into()]);
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    // A record the plugin panics on fails its batch, which is logged as a warning.
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["transform", &path("rust-faulty")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"{\"key\":\"ok\"}\n{\"key\":\"panic\"}\n")
            .expect("write");
    }
    let out = child.wait_with_output().expect("witplug ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("WARN"), "no warning logged: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}
