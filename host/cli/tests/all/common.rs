//! Shared helpers: where the built guests are, one engine and one compile per guest, and
//! the `witplug` child processes of the `serve` and `nats` (worker) harnesses.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// The sample rule in every language and on every version of the transform world, the
/// 0.1.0 Rust guest (the reference) first.
pub const NORMALIZERS: [&str; 4] = [
    "rust-email-normalizer",
    "go-email-normalizer",
    "rust-email-normalizer-v0-2",
    "go-email-normalizer-v0-2",
];

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

// ---------------------------------------------------------------------------------------
// `witplug` child processes

/// `witplug ARGS...` with stdin closed, for the caller to set up (output, environment)
/// and hand to [`WitplugChild::spawn`].
pub fn witplug_command<S: AsRef<OsStr>>(args: &[S]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_witplug"));
    command.args(args).stdin(Stdio::null());
    command
}

/// A running `witplug` child process and the label failure messages name it by.
/// Dropping it kills and reaps it.
pub struct WitplugChild {
    child: Child,
    label: String,
}

impl WitplugChild {
    /// Spawns `command`; the label is `name (pid N)`.
    pub fn spawn(command: &mut Command, name: &str) -> WitplugChild {
        let child = command.spawn().expect("witplug starts");
        WitplugChild {
            label: format!("{name} (pid {})", child.id()),
            child,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The child's stdout and stderr pipes, for those set up as piped.
    pub fn take_pipes(
        &mut self,
    ) -> (
        Option<std::process::ChildStdout>,
        Option<std::process::ChildStderr>,
    ) {
        (self.child.stdout.take(), self.child.stderr.take())
    }

    /// Sends `signal`; a process that has exited already is left as it is (the caller's
    /// wait shows it).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a child pid");
        // ESRCH: it has exited already, which the caller's wait will show.
        let _ = rustix::process::kill_process(pid, signal);
    }

    /// Kills it (SIGKILL, as a crash) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// Waits for it to exit, however long that takes.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Waits at most `bound` for it to exit (polling every 20 ms); `None` if it still runs.
    pub fn wait_at_most(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WitplugChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last `max_bytes` (or a little fewer, to start on a character) of a process's
/// output, for failure messages (a long run logs a lot).
pub fn tail(all: &str, max_bytes: usize) -> String {
    let start = all.len().saturating_sub(max_bytes);
    let start = (start..all.len())
        .find(|i| all.is_char_boundary(*i))
        .unwrap_or(all.len());
    all[start..].to_owned()
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
