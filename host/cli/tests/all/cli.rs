//! The `witplug` binary, end to end.

use std::process::{Command, Output};

use serde_json::Value as Json;

use crate::common::guest_path;

fn witplug(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(args)
        .output()
        .expect("witplug runs")
}

fn sample_records() -> String {
    format!("{}/../../samples/records.jsonl", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn transform_writes_one_line_per_input_line_in_order() {
    let component = guest_path("rust-email-normalizer");
    let out = witplug(&[
        "transform",
        component.to_str().expect("utf-8 path"),
        "--input",
        &sample_records(),
        "--batch",
        "3",
        "--config",
        "blocked-domains=mailinator.com",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect();
    let input_lines = include_str!("../../../../samples/records.jsonl")
        .lines()
        .count();
    assert_eq!(lines.len(), input_lines);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 1, "output out of order: {line}");
    }
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "keep",
            "split",
            "drop",
            "error",
            "split",
            "drop",
            "keep",
            "invalid-input",
            "error",
            "keep"
        ]
    );
    assert_eq!(
        lines[0]["record"]["fields"]["email"],
        "ada.lovelace@example.com"
    );
    let invalid = lines[7]["error"].as_str().expect("error text");
    assert!(invalid.starts_with("line 8: not valid JSON"), "{invalid}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "10 lines: 3 kept, 2 split, 2 dropped, 2 errors, 1 invalid input, 0 plugin failures"
        ),
        "{stderr}"
    );
}

#[test]
fn transform_isolates_a_record_that_crashes_the_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        "{\"key\":\"a\"}\n{\"key\":\"panic\"}\n{\"key\":\"c\"}\n",
    )
    .expect("write");
    let component = guest_path("rust-faulty");
    let out = witplug(&[
        "transform",
        component.to_str().expect("utf-8"),
        "--input",
        input.to_str().expect("utf-8"),
    ]);
    assert!(out.status.success());
    let lines: Vec<Json> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["keep", "plugin-failure", "keep"]);
    let error = lines[1]["error"].as_str().expect("error");
    assert!(
        error.contains("trapped") && error.contains("faulty plugin asked to panic"),
        "{error}"
    );
}

#[test]
fn run_passes_arguments_stdio_and_exit_code_through() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("notes.txt"), "one two\nthree\n").expect("write");
    let component = guest_path("rust-filetool");
    let grant = format!("{}::/data:ro", dir.path().display());
    let out = witplug(&[
        "run",
        component.to_str().expect("utf-8"),
        "--dir",
        &grant,
        "--",
        "count",
        "/data/notes.txt",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 3 14 /data/notes.txt\n"
    );

    let out = witplug(&[
        "run",
        component.to_str().expect("utf-8"),
        "--",
        "cat",
        "/data/notes.txt",
    ]);
    assert_eq!(out.status.code(), Some(1), "no grant, no file");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("filetool: cat /data/notes.txt: "));
}

#[test]
fn bad_input_to_the_cli_gets_a_clear_error() {
    let out = witplug(&["run", "/no/such/app.wasm"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "witplug: component file /no/such/app.wasm does not exist\n"
    );

    let component = guest_path("rust-email-normalizer");
    let out = witplug(&[
        "transform",
        component.to_str().expect("utf-8"),
        "--config",
        "novalue",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid configuration entry `novalue`"));

    let out = witplug(&[
        "run",
        component.to_str().expect("utf-8"),
        "--dir",
        "/no/such/dir",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot grant directory /no/such/dir"));
}

#[test]
fn inspect_says_which_version_of_the_transform_world_a_plugin_implements() {
    for (name, world) in [
        ("rust-email-normalizer", "0.1.0"),
        ("rust-email-normalizer-v0-2", "0.2.0"),
        ("go-email-normalizer-v0-2", "0.2.0"),
    ] {
        let component = guest_path(name);
        let out = witplug(&["inspect", component.to_str().expect("utf-8")]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}");
        assert!(
            stdout.contains(&format!("world: witplug:plugin/transform-plugin@{world}\n")),
            "{name}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("witplug:plugin/transformer@{world}")),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn inspect_shows_the_world_and_the_description() {
    let component = guest_path("go-email-normalizer");
    let out = witplug(&["inspect", component.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("world: witplug:plugin/transform-plugin@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("plugin: email-normalizer 0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("witplug:plugin/transformer@0.1.0 (interface: process-batch)"),
        "{stdout}"
    );
}
