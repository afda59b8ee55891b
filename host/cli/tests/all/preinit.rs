//! Pre-initialised components (`witplug::preinit`, `witplug preinit`): they behave like the
//! originals through the normal API, and the snapshot freezes what the start-up saw.

use std::process::Command;

use tokio::sync::OnceCell;
use witplug::preinit::{PreinitError, preinitialize};
use witplug::worlds::transform::Outcome;
use witplug::{
    Access, Capabilities, Error, LoadedComponent, PluginConfig, PluginOptions, Record, Stdio,
    TransformPlugin,
};

use crate::common::{component, guest_path, guests_dir, normalizer_configs, record, runtime, text};

async fn transform(component: &LoadedComponent, options: PluginOptions) -> TransformPlugin {
    TransformPlugin::new(runtime(), component, options)
        .await
        .expect("links")
}

/// `original` and `preinitialised` give the same outcomes on the tricky records under
/// several configurations (configuration is read per call, not frozen), and describe
/// themselves alike.
async fn assert_same_behaviour(original: &LoadedComponent, preinitialised: &LoadedComponent) {
    let records = crate::transform::tricky_records();
    for config in normalizer_configs() {
        let options = PluginOptions::default().config(config.clone());
        let expected = transform(original, options.clone())
            .await
            .process_batch(&records)
            .await
            .expect("original");
        let plugin = transform(preinitialised, options).await;
        // Twice: a second fresh instance starts from the snapshot again.
        for _ in 0..2 {
            let got = plugin
                .process_batch(&records)
                .await
                .expect("preinitialised");
            assert_eq!(got.len(), records.len());
            for ((record, expected), got) in records.iter().zip(&expected).zip(&got) {
                assert_eq!(expected, got, "config {config:?}, record {record:?}");
            }
        }
    }
    let expected = transform(original, PluginOptions::default())
        .await
        .describe()
        .await
        .expect("describe");
    let got = transform(preinitialised, PluginOptions::default())
        .await
        .describe()
        .await
        .expect("describe");
    assert_eq!(
        (got.name, got.version, got.description),
        (expected.name, expected.version, expected.description)
    );
}

#[tokio::test]
async fn the_preinitialised_go_normalizer_behaves_like_the_original() {
    assert_same_behaviour(
        &component("go-email-normalizer"),
        &component("go-email-normalizer-preinit"),
    )
    .await;
}

#[tokio::test]
async fn the_preinitialised_go_normalizer_loads_through_the_usual_api() {
    let plugin = TransformPlugin::load(
        runtime(),
        guest_path("go-email-normalizer-preinit"),
        PluginOptions::default().config(PluginConfig::new().set("blocked-domains", "spam.example")),
    )
    .await
    .expect("loads");
    assert_eq!(plugin.name(), "go-email-normalizer-preinit");
    let outcomes = plugin
        .process_batch(&[
            record("a", &[("email", text(" Ada@Example.COM "))]),
            record("b", &[("email", text("b@spam.example"))]),
        ])
        .await
        .expect("batch");
    assert_eq!(
        outcomes,
        [
            Outcome::Keep(record("a", &[("email", text("ada@example.com"))])),
            Outcome::Drop("email domain `spam.example` is blocked".to_owned()),
        ]
    );
    // Every call took an instance of its own, each from the snapshot.
    assert_eq!(plugin.instantiations(), 2);
}

/// The passive data segments of every core module in `component`, and how many are empty.
fn passive_data_segments(component: &[u8]) -> (usize, usize) {
    let (mut passive, mut empty) = (0, 0);
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let wasmparser::Payload::DataSection(reader) = payload.expect("parses") {
            for datum in reader {
                let datum = datum.expect("a data segment");
                if matches!(datum.kind, wasmparser::DataKind::Passive) {
                    passive += 1;
                    empty += usize::from(datum.data.is_empty());
                }
            }
        }
    }
    (passive, empty)
}

/// Wizer leaves an empty passive segment for each of the original's active ones (Go has
/// thousands); witplug removes them, as each costs every instantiation a little.
#[test]
fn the_go_snapshot_has_no_empty_data_segments_left() {
    let read = |name| std::fs::read(guest_path(name)).expect("read");
    let wizer_would_leave = {
        let original = read("go-email-normalizer");
        let mut active = 0;
        for payload in wasmparser::Parser::new(0).parse_all(&original) {
            if let wasmparser::Payload::DataSection(reader) = payload.expect("parses") {
                active += reader.count();
            }
        }
        active
    };
    assert!(wizer_would_leave > 1000, "{wizer_would_leave} segments");
    assert_eq!(
        passive_data_segments(&read("go-email-normalizer-preinit")),
        (0, 0)
    );
}

/// Pre-initialises a built guest with the library.
async fn preinitialised(name: &str, init_call: &str) -> LoadedComponent {
    let bytes = std::fs::read(guest_path(name)).expect("read");
    let snapshot = preinitialize(runtime(), &bytes, init_call)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    LoadedComponent::from_bytes(runtime(), &snapshot, format!("{name}-preinit.wasm"))
        .expect("the snapshot compiles")
}

#[tokio::test]
async fn the_library_preinitialises_the_rust_guest_too() {
    let original = component("rust-email-normalizer");
    // Bare name, without parentheses, and qualified: the same function.
    for init_call in ["describe", "witplug:plugin/metadata.describe@0.1.0()"] {
        let snapshot = preinitialised("rust-email-normalizer", init_call).await;
        assert_same_behaviour(&original, &snapshot).await;
    }
}

/// A hostile guest pre-initialised once per test process (Go takes a few seconds).
async fn hostile_preinit(language: &str) -> &'static LoadedComponent {
    static GO: OnceCell<LoadedComponent> = OnceCell::const_new();
    static RUST: OnceCell<LoadedComponent> = OnceCell::const_new();
    let (cell, name) = if language == "go" {
        (&GO, "go-hostile")
    } else {
        (&RUST, "rust-hostile")
    };
    cell.get_or_init(|| preinitialised(name, "describe()"))
        .await
}

/// Grants an environment variable and a directory holding `ok.txt`, and the probes that
/// read them through the hostile guest.
fn grants_and_probes() -> (tempfile::TempDir, Capabilities, [Record; 2]) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ok.txt"), "granted").expect("write");
    let grants = Capabilities::none()
        .env("MODE", "strict")
        .dir_at(dir.path(), "/data", Access::ReadOnly)
        .expect("grant");
    let probes = [
        record("env", &[("name", text("MODE"))]),
        record("read", &[("path", text("/data/ok.txt"))]),
    ];
    (dir, grants, probes)
}

fn assert_sees_its_grants(language: &str, outcomes: &[Outcome]) {
    let [Outcome::Keep(env), Outcome::Keep(read)] = outcomes else {
        panic!("{language}: {outcomes:?}")
    };
    assert_eq!(env.fields.last().map(|f| &f.value), Some(&text("strict")));
    assert_eq!(read.fields.last().map(|f| &f.value), Some(&text("granted")));
}

/// The caveat of the module docs, pinned: Go reads its environment and its preopened
/// directories at start-up, so a snapshot taken in the capability-less init instance
/// keeps seeing none, whatever the plugin is granted later. The original sees its grants,
/// and so does a pre-initialised Rust guest (its libc reads them on first use).
#[tokio::test]
async fn a_preinitialised_go_guest_keeps_the_empty_environment_and_directories_of_its_init() {
    let (_dir, grants, probes) = grants_and_probes();
    let options = PluginOptions::default().capabilities(grants);
    for language in ["go", "rust"] {
        let original = transform(&component(&format!("{language}-hostile")), options.clone()).await;
        let outcomes = original.process_batch(&probes).await.expect("answers");
        assert_sees_its_grants(language, &outcomes);
    }

    let rust = transform(hostile_preinit("rust").await, options.clone()).await;
    let outcomes = rust.process_batch(&probes).await.expect("answers");
    assert_sees_its_grants("rust", &outcomes);

    let go = transform(hostile_preinit("go").await, options).await;
    let outcomes = go.process_batch(&probes).await.expect("answers");
    assert!(
        matches!(&outcomes[0], Outcome::Error(e) if e.code == "env" && e.message == "MODE is not set"),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], Outcome::Error(e) if e.code == "io"),
        "{outcomes:?}"
    );
}

/// Pinned too: the WASI preview1 adapter of a Go component takes its stdin, stdout and
/// stderr stream handles during the Go start-up and keeps them in linear memory. Resource
/// handles are not part of a snapshot, so in a pre-initialised instance they dangle: the
/// first write to stdout or stderr fails the call (here a panic, whose message is lost).
/// The call still fails cleanly and the next call gets a fresh instance.
#[tokio::test]
async fn a_preinitialised_go_guest_cannot_write_to_stdio() {
    let options =
        PluginOptions::default().capabilities(Capabilities::none().stderr(Stdio::Capture));
    let plugin = transform(hostile_preinit("go").await, options.clone()).await;
    let error = plugin
        .process_batch(&[record("panic", &[])])
        .await
        .expect_err("fails");
    let Error::Call { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(
        format!("{source:?}").contains("unknown handle index"),
        "{source:?}"
    );
    let outcomes = plugin
        .process_batch(&[record("fine", &[])])
        .await
        .expect("serves");
    assert_eq!(outcomes, [Outcome::Keep(record("fine", &[]))]);

    // A pre-initialised Rust guest writes its panic message as usual.
    let plugin = transform(hostile_preinit("rust").await, options).await;
    let error = plugin
        .process_batch(&[record("panic", &[])])
        .await
        .expect_err("traps");
    assert!(
        matches!(&error, Error::Trap { detail, .. } if detail.contains("hostile plugin panicked")),
        "{error:?}"
    );
}

async fn preinit_error(name: &str, init_call: &str) -> PreinitError {
    let bytes = std::fs::read(guest_path(name)).expect("read");
    preinitialize(runtime(), &bytes, init_call)
        .await
        .err()
        .unwrap_or_else(|| panic!("`{init_call}` should fail"))
}

#[tokio::test]
async fn bad_init_calls_are_refused_with_the_reason() {
    for (call, expected) in [
        (
            "nope()",
            "the component exports no function `nope`; its functions: witplug:plugin/metadata@0.1.0#describe, witplug:plugin/transformer@0.1.0#process-batch",
        ),
        ("describe(1)", "its arguments do not fit `describe`"),
        ("describe(", "not a WAVE function call"),
        (
            "witplug:plugin/metadata.nope@0.1.0()",
            "the component exports no function",
        ),
    ] {
        let error = preinit_error("rust-email-normalizer", call).await;
        let PreinitError::InitCall {
            call: shown,
            reason,
        } = &error
        else {
            panic!("{call}: {error:?}")
        };
        assert_eq!(shown, call);
        assert!(reason.contains(expected), "{call}: {reason}");
    }
}

#[tokio::test]
async fn the_init_instance_is_denied_every_import_but_wasi() {
    // The normalizer reads its configuration through the `config` import.
    let error = preinit_error(
        "rust-email-normalizer",
        r#"process-batch([{key: "a", fields: []}])"#,
    )
    .await;
    let PreinitError::Init { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(
        matches!(&**source, Error::CapabilityDenied { capability, .. }
            if capability.contains("witplug:plugin/config@0.1.0#get")),
        "{source:?}"
    );
}

#[tokio::test]
async fn a_trap_in_the_init_call_is_reported() {
    let error = preinit_error(
        "rust-hostile",
        r#"process-batch([{key: "panic", fields: []}])"#,
    )
    .await;
    let PreinitError::Init { source, call } = &error else {
        panic!("{error:?}")
    };
    assert!(call.starts_with("process-batch("));
    assert!(
        matches!(&**source, Error::Trap { detail, .. } if detail.contains("hostile plugin panicked")),
        "{source:?}"
    );
}

#[tokio::test]
async fn what_is_not_a_component_is_refused() {
    for (bytes, reason) in [
        (b"not wasm".to_vec(), "magic bytes"),
        (wat::parse_str("(module)").expect("wat"), "core module"),
    ] {
        let error = preinitialize(runtime(), &bytes, "describe()")
            .await
            .expect_err("refused");
        assert!(
            matches!(error, PreinitError::NotAComponent(why) if why.contains(reason)),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn a_command_is_refused_whatever_the_init_call() {
    // Running `run` and snapshotting would ship a command whose `main` already returned.
    for call in ["run()", "wasi:cli/run.run@0.2.0()"] {
        let error = preinit_error("rust-filetool", call).await;
        assert!(
            matches!(&error, PreinitError::Command { export } if export.starts_with("wasi:cli/run@")),
            "{call}: {error:?}"
        );
    }
}

fn witplug(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(args)
        .output()
        .expect("witplug runs")
}

#[test]
fn the_cli_writes_a_component_that_inspect_describes() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let output = out_dir.path().join("preinit.wasm");
    let input = guests_dir().join("rust-email-normalizer.wasm");
    let out = witplug(&[
        "preinit",
        input.to_str().expect("utf-8 path"),
        output.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = witplug(&["inspect", output.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plugin: email-normalizer 0.1.0"),
        "{stdout}"
    );

    let out = witplug(&[
        "preinit",
        input.to_str().expect("utf-8 path"),
        output.to_str().expect("utf-8 path"),
        "--init",
        "nope()",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid init call `nope()`"), "{stderr}");

    let out = witplug(&["preinit", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("--init <CALL>"), "{help}");
}

#[test]
fn the_cli_names_a_file_that_is_not_wasm_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "# just text\n").expect("write");
    let output = dir.path().join("out.wasm");
    let out = witplug(&[
        "preinit",
        text.to_str().expect("utf-8 path"),
        output.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a WebAssembly component"), "{stderr}");
    // Not wasmparser's dump of the first bytes as an array.
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(!output.exists());
}

#[cfg(unix)]
#[test]
fn the_cli_replaces_its_output_by_rename_so_in_place_is_safe() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(guests_dir().join("rust-email-normalizer.wasm"), &path).expect("copy");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let inode_before = std::fs::metadata(&path).expect("metadata").ino();
    let path_text = path.to_str().expect("utf-8 path");
    let out = witplug(&["preinit", path_text, path_text]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A new file was renamed into place: a write that fails half-way (a full disk) would
    // have left the old file whole rather than truncated.
    let after = std::fs::metadata(&path).expect("metadata");
    assert_ne!(after.ino(), inode_before);
    // Readable by whoever could read it before (not the temporary file's 0600).
    assert_eq!(after.mode() & 0o777, 0o644);
    let out = witplug(&["inspect", path_text]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("plugin: email-normalizer 0.1.0"),
        "{stdout}"
    );
    // Nothing else was left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).expect("read_dir").count(), 1);
}
