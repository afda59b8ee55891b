//! Engine options: the pooling allocator, and instance reuse for stateless worlds.

use witplug::worlds::transform::Outcome;
use witplug::{
    InstanceReuse, LoadedComponent, PluginOptions, Pooling, Record, Runtime, RuntimeConfig,
    TransformPlugin,
};

use crate::common::{component, guest_path, runtime};

fn record(key: &str) -> Record {
    Record {
        key: key.to_owned(),
        fields: vec![],
    }
}

#[tokio::test]
async fn both_languages_run_on_the_pooling_allocator() {
    let pooled = Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling::default()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    for name in [
        "rust-email-normalizer",
        "go-email-normalizer",
        "rust-hostile",
    ] {
        let loaded = LoadedComponent::from_file(&pooled, guest_path(name)).expect("loads");
        let plugin = TransformPlugin::new(&pooled, &loaded, PluginOptions::default())
            .await
            .expect("links");
        for _ in 0..3 {
            let outcomes = plugin.process_batch(&[record("k")]).await.expect(name);
            assert_eq!(outcomes.len(), 1, "{name}");
        }
    }
}

async fn faulty(reuse: InstanceReuse) -> TransformPlugin {
    let options = PluginOptions::default().reuse(reuse);
    TransformPlugin::new(runtime(), &component("rust-faulty"), options)
        .await
        .expect("links")
}

#[tokio::test]
async fn by_default_every_call_gets_a_fresh_instance() {
    let plugin = faulty(InstanceReuse::Never).await;
    let probe = plugin.instantiations();
    for _ in 0..5 {
        plugin.process_batch(&[record("k")]).await.expect("call");
    }
    assert_eq!(plugin.instantiations() - probe, 5);
}

#[tokio::test]
async fn reuse_serves_several_calls_per_instance_and_drops_failed_ones() {
    let plugin = faulty(InstanceReuse::UpTo { max_calls: 3 }).await;
    let probe = plugin.instantiations();
    for _ in 0..6 {
        assert_eq!(
            plugin.process_batch(&[record("k")]).await.expect("call"),
            [Outcome::Keep(record("k"))]
        );
    }
    assert_eq!(plugin.instantiations() - probe, 2, "3 calls per instance");

    // A trap discards the instance: the next call needs a new one.
    plugin
        .process_batch(&[record("panic")])
        .await
        .expect_err("trap");
    plugin.process_batch(&[record("k")]).await.expect("healthy");
    assert_eq!(plugin.instantiations() - probe, 4);
}

/// The CLI's pool is sized from its limits: it starts with the default flags under a
/// 16 GB address-space limit (it reserved ~4 TiB when every slot took 4 GiB).
#[test]
fn the_cli_starts_under_an_address_space_limit() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -v 16000000 && exec \"$0\" transform \"$1\" --no-cache",
            env!("CARGO_BIN_EXE_witplug"),
        ])
        .arg(guest_path("rust-email-normalizer"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"{\"key\":\"k\",\"fields\":{\"email\":\" A@B.org \"}}\n")
        .expect("write");
    let out = child.wait_with_output().expect("witplug ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("a@b.org"), "{stdout}");
}

#[test]
fn pool_address_space_follows_its_sizing() {
    let checked = Pooling {
        max_instances: 8,
        memories_per_instance: 2,
        max_memory_bytes: 100 << 20,
        elide_bounds_checks: false,
        ..Pooling::default()
    };
    // 16 slots of 100 MiB and a 64 KiB guard each, and one leading guard.
    assert_eq!(
        checked.reserved_address_space(),
        16 * ((100 << 20) + (64 << 10)) + (64 << 10)
    );
    // wasmtime's default: 4 GiB and a 32 MiB guard per slot.
    assert_eq!(
        Pooling::default().reserved_address_space(),
        4000 * ((4 << 30) + (32 << 20)) + (32 << 20)
    );
}

#[tokio::test]
async fn a_checked_pool_runs_both_languages_and_caps_memory() {
    let pooled = Runtime::with_config(RuntimeConfig {
        pooling: Some(Pooling {
            max_instances: 8,
            memories_per_instance: 2,
            max_memory_bytes: 64 << 20,
            elide_bounds_checks: false,
            ..Pooling::default()
        }),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    for name in ["rust-email-normalizer", "go-email-normalizer"] {
        let loaded = LoadedComponent::from_file(&pooled, guest_path(name)).expect("loads");
        let plugin = TransformPlugin::new(&pooled, &loaded, PluginOptions::default())
            .await
            .expect("links");
        let outcomes = plugin.process_batch(&[record("k")]).await.expect(name);
        assert_eq!(outcomes.len(), 1, "{name}");
    }
}

#[test]
fn pool_sizes_beyond_32_bit_memories_are_refused_up_front() {
    for pooling in [
        Pooling {
            max_memory_bytes: (4 << 30) + 1,
            ..Pooling::default()
        },
        Pooling {
            max_memory_bytes: 0,
            ..Pooling::default()
        },
    ] {
        let error = Runtime::with_config(RuntimeConfig {
            pooling: Some(pooling),
            ..RuntimeConfig::default()
        })
        .expect_err("invalid pool");
        assert!(error.to_string().contains("max_memory_bytes"), "{error}");
    }
}
