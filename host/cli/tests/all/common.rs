//! Shared helpers: where the built guests are, one engine and one compile per guest.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use witplug::{Field, LoadedComponent, LogRecord, LogSink, PluginConfig, Record, Runtime, Value};

/// The directory `cargo xtask build` writes guest components to.
pub fn guests_dir() -> PathBuf {
    std::env::var_os("WITPLUG_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guests"))
}

/// Path of a built guest, e.g. `rust-email-normalizer`. A missing guest fails the test
/// (never skips it): the tests are only meaningful against the real components.
pub fn guest_path(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest component {} is missing: run `cargo xtask build` (or `cargo xtask test`)",
        path.display()
    );
    path
}

/// The one engine of the test process.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("engine"))
}

/// A guest compiled once per test process (Go guests take a while to compile).
pub fn component(name: &str) -> LoadedComponent {
    static CACHE: OnceLock<Mutex<HashMap<String, LoadedComponent>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().expect("cache lock").get(name) {
        return found.clone();
    }
    let loaded = LoadedComponent::from_file(runtime(), guest_path(name)).expect("guest loads");
    cache
        .lock()
        .expect("cache lock")
        .insert(name.to_owned(), loaded.clone());
    loaded
}

/// A log sink that keeps every line, and the lines it kept.
pub fn log_collector() -> (LogSink, Arc<Mutex<Vec<LogRecord>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    let sink: LogSink = Arc::new(move |record: &LogRecord| {
        sink_lines.lock().expect("log lock").push(record.clone());
    });
    (sink, lines)
}

/// Both languages' builds of a guest, for tests that must hold for each.
pub const LANGUAGES: [&str; 2] = ["rust", "go"];

/// A record from `(name, value)` pairs.
pub fn record(key: &str, fields: &[(&str, Value)]) -> Record {
    Record {
        key: key.to_owned(),
        fields: fields
            .iter()
            .map(|(name, value)| Field {
                name: (*name).to_owned(),
                value: value.clone(),
            })
            .collect(),
    }
}

pub fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

/// Configurations of the email-normalizer that exercise each of its settings, for tests
/// that hold two builds of it to the same outcomes.
pub fn normalizer_configs() -> [PluginConfig; 3] {
    [
        PluginConfig::new(),
        PluginConfig::new()
            .set("blocked-domains", "spam.example, ok.org")
            .set("required-fields", ""),
        PluginConfig::new()
            .set("email-field", "name")
            .set("required-fields", "name,email"),
    ]
}

/// What a sandbox's granted file holds.
pub const SANDBOX_HELLO: &str = "hello from the host\nsecond line\n";

/// A directory tree for file-grant tests: `root/secret.txt` (never granted) and
/// `root/data/hello.txt` (granted, as `/data`, by the tests that use it).
pub struct Sandbox {
    pub root: tempfile::TempDir,
    pub data: PathBuf,
}

pub fn sandbox() -> Sandbox {
    let root = tempfile::tempdir().expect("tempdir");
    std::fs::write(root.path().join("secret.txt"), "outside the grant\n").expect("write");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("hello.txt"), SANDBOX_HELLO).expect("write");
    Sandbox { root, data }
}
