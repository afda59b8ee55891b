//! `witplug worker --config-file` and `witplug queue`, on a real nats-server.

use std::time::Duration;

use serde_json::Value as Json;

use crate::common::guest_path;
use crate::nats::{
    CONSUMER, CuttableLink, DEAD_LETTER, INPUT, NatsServer, OUTPUT, Worker, transform_outcomes,
    wait_until, witplug, worker_args,
};
use witplug_nats::jetstream::{ConsumerSettings, JetStreamSource};
use witplug_nats::{Acker as _, Source as _};

fn payloads() -> Vec<Vec<u8>> {
    (0..60)
        .map(|i| {
            let email = match i % 3 {
                0 => format!(" U{i}@Example.org "),
                1 => format!("u{i}@blocked.example"),
                _ => format!("a{i}@one.org; b{i}@blocked.example"),
            };
            format!(r#"{{"key":"k{i}","fields":{{"email":"{email}"}}}}"#).into_bytes()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_runs_the_pipeline_with_its_policy_and_a_flag_wins() {
    let plugin = guest_path("rust-email-normalizer");
    let payloads = payloads();
    // The rule as `transform` applies it with the same configuration.
    let outcomes = transform_outcomes(
        &plugin,
        &["--config", "blocked-domains=blocked.example"],
        &payloads,
    );
    let mut expected: Vec<String> = outcomes
        .iter()
        .flat_map(|o| match o["outcome"].as_str() {
            Some("keep") => vec![o["record"].to_string()],
            Some("split") => o["records"]
                .as_array()
                .expect("records")
                .iter()
                .map(Json::to_string)
                .collect(),
            _ => Vec::new(),
        })
        .collect();
    expected.sort();
    assert!(expected.len() >= 20, "the mix keeps and splits records");

    let server = NatsServer::start();
    let nats = server.connect().await;
    nats.create_pipeline_streams().await;
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("worker.toml");
    std::fs::write(
        &file,
        format!(
            r#"plugin = "{plugin}"
nats = "{url}"
input = "{input}"
consumer = "{consumer}"
output = "{output}"
dead-letter = "no.such.subject"
batch = 8
concurrency = 1

[policy.config]
blocked-domains = "blocked.example"
"#,
            plugin = plugin.display(),
            url = server.url(),
            input = INPUT.name,
            consumer = CONSUMER,
            output = OUTPUT.subject,
        ),
    )
    .expect("config file");
    let inputs = nats.publish_inputs(&payloads).await;
    // The flag replaces the file's dead-letter subject (which no stream stores: the
    // worker would refuse to start with it).
    let args: Vec<String> = [
        "worker",
        "--config-file",
        file.to_str().expect("utf-8"),
        "--dead-letter",
        DEAD_LETTER.subject,
        "--cache-dir",
        scratch.path().join("cache").to_str().expect("utf-8"),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut worker = Worker::spawn("worker", &args, scratch.path());
    let last = inputs.last().expect("inputs").seq;
    nats.wait_until_drained(
        std::slice::from_mut(&mut worker),
        last,
        Duration::from_secs(60),
    )
    .await;
    let mut got: Vec<String> = nats
        .read_stream(OUTPUT.name)
        .await
        .iter()
        .map(|m| {
            serde_json::from_str::<Json>(&m.payload_text())
                .expect("JSON record")
                .to_string()
        })
        .collect();
    got.sort();
    assert_eq!(
        got, expected,
        "outputs differ from `transform`'s with the same config"
    );
    worker.sigterm();
    assert!(worker.wait(Duration::from_secs(20)).await.success());
}

#[test]
fn a_bad_config_file_exits_2_naming_the_key() {
    let scratch = tempfile::tempdir().expect("tempdir");
    for (text, named) in [
        ("inptu = \"records\"\n", "inptu"),
        ("batch = 0\n", "batch"),
        ("batch = \"many\"\n", "batch"),
        ("[policy.limits]\nfuel = 0\n", "fuel"),
        ("[policy]\ngrants = { dirs = [\"/tmp::data\"] }\n", "dirs"),
    ] {
        let file = scratch.path().join("worker.toml");
        std::fs::write(&file, text).expect("file");
        let out = witplug(&["worker", "--config-file", file.to_str().expect("utf-8")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{text:?} should name `{named}`: {stderr}"
        );
    }
    // A setting that is missing everywhere is named too.
    let file = scratch.path().join("worker.toml");
    std::fs::write(&file, "input = \"records\"\n").expect("file");
    let out = witplug(&[
        "worker",
        "x.wasm",
        "--config-file",
        file.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--consumer"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_setup_send_and_read_round_trip() {
    let server = NatsServer::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    let url = server.url().to_owned();
    let setup = ["queue", "--nats", &url, "setup", "--stream", "A:a.in"];
    let out = witplug(&setup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created stream A"));
    // Again: the stream is kept as it is.
    let out = witplug(&setup);
    assert!(String::from_utf8_lossy(&out.stdout).contains("exists"));

    let file = scratch.path().join("in.jsonl");
    std::fs::write(&file, b"{\"key\":\"1\"}\r\n\nnot json\n\xff\n").expect("file");
    let out = witplug(&[
        "queue",
        "--nats",
        &url,
        "send",
        "--subject",
        "a.in",
        file.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");

    let out = witplug(&[
        "queue",
        "--nats",
        &url,
        "read",
        "--stream",
        "A",
        "--wait-ms",
        "500",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Json> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["payload"], "{\"key\":\"1\"}");
    assert_eq!(lines[1]["payload"], "not json");
    // Not UTF-8: given in base64, byte for byte.
    assert_eq!(lines[2]["payload"], Json::Null);
    assert_eq!(lines[2]["payload_base64"], "/w==");
    assert_eq!(lines[2]["seq"], 3);

    let out = witplug(&["queue", "--nats", &url, "setup", "--stream", "nosubject"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_does_not_stop_the_worker() {
    let plugin = guest_path("rust-email-normalizer");
    let payloads: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            format!(r#"{{"key":"k{i}","fields":{{"email":"u{i}@example.org"}}}}"#).into_bytes()
        })
        .collect();
    let mut server = NatsServer::start();
    let scratch = tempfile::tempdir().expect("tempdir");
    {
        let nats = server.connect().await;
        nats.create_pipeline_streams().await;
        nats.publish_inputs(&payloads[..100]).await;
    }
    let args = worker_args(
        plugin.to_str().expect("utf-8"),
        &server,
        scratch.path(),
        &["--ack-wait-ms", "2000"],
    );
    let mut worker = Worker::spawn("worker", &args, scratch.path());
    let nats = server.connect().await;
    wait_until(
        "the first 100 outputs",
        Duration::from_secs(60),
        async || {
            worker.assert_running();
            match nats.stream_len(OUTPUT.name).await {
                n if n >= 100 => Ok(()),
                n => Err(format!("{n} outputs")),
            }
        },
    )
    .await;
    drop(nats);
    server.restart();
    // The worker outlives the outage and takes the records sent after it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker.assert_running();
    let nats = server.connect().await;
    let inputs = nats.publish_inputs(&payloads[100..]).await;
    let last = inputs.last().expect("inputs").seq;
    nats.wait_until_drained(
        std::slice::from_mut(&mut worker),
        last,
        Duration::from_secs(60),
    )
    .await;
    let outputs = nats.read_stream(OUTPUT.name).await;
    let mut keys: Vec<String> = outputs
        .iter()
        .map(|m| {
            serde_json::from_str::<Json>(&m.payload_text()).expect("record")["key"]
                .as_str()
                .expect("key")
                .to_owned()
        })
        .collect();
    keys.sort();
    let mut expected: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    expected.sort();
    assert_eq!(keys, expected, "every record once, across the restart");
    worker.sigterm();
    assert!(worker.wait(Duration::from_secs(20)).await.success());
}

/// A pull request whose reply never comes (its connection broke with no word to either
/// side) must not hold the worker: this once stopped a worker for good after a server
/// restart, with a few inputs delivered to a request the client had lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_lost_on_a_broken_link_gives_up_and_nothing_is_lost() {
    let server = NatsServer::start();
    let nats = server.connect().await;
    nats.create_pipeline_streams().await;
    let link = CuttableLink::to(server.addr()).await;
    let client = witplug_nats::jetstream::connect(&link.url())
        .await
        .expect("connect through the link");
    let mut source = JetStreamSource::open(
        &async_nats::jetstream::new(client),
        &ConsumerSettings {
            stream: INPUT.name.to_owned(),
            durable: "cut".to_owned(),
            max_deliver: 10,
            ack_wait: Duration::from_secs(1),
            max_ack_pending: 100,
        },
    )
    .await
    .expect("open the consumer");
    let payloads: Vec<Vec<u8>> = (0..5).map(|i| format!("r{i}").into_bytes()).collect();
    let inputs = nats.publish_inputs(&payloads).await;

    // Inputs are ready, so the pull is a no-wait fetch; it reaches no server.
    link.cut();
    let bound = JetStreamSource::WAIT + JetStreamSource::LOST_AFTER + Duration::from_secs(20);
    let pulled = tokio::time::timeout(bound, source.next_batch(8)).await;
    assert!(
        pulled.is_ok(),
        "next_batch still waiting {bound:?} after the link was cut"
    );

    // Once the client reconnects, every input comes and is acked: any delivered to a
    // request given up on come again after their ack wait.
    link.heal();
    let mut acked = std::collections::BTreeSet::new();
    wait_until(
        "every input pulled and acked after the link healed",
        Duration::from_secs(60),
        async || {
            if let Ok(batch) = source.next_batch(8).await {
                for input in batch {
                    let sequence = input.position.sequence;
                    if input.acker.ack().await.is_ok() {
                        acked.insert(sequence);
                    }
                }
            }
            if acked.len() == inputs.len() {
                Ok(())
            } else {
                Err(format!("acked {acked:?}"))
            }
        },
    )
    .await;
    let expected: std::collections::BTreeSet<u64> = inputs.iter().map(|i| i.seq).collect();
    assert_eq!(acked, expected);
    let info = nats.consumer_info("cut").await;
    assert_eq!(info.num_ack_pending, 0, "{info:?}");
    assert_eq!(info.num_pending, 0, "{info:?}");
}
