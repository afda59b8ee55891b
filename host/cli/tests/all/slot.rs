//! `PluginSlot`: versions swapped while calls are in flight, with no call failing and no
//! call mixing versions.

use std::sync::Arc;

use witplug::worlds::transform::Outcome;
use witplug::{PluginOptions, PluginSlot, PluginVersion, TransformPlugin, component_digest};

use crate::common::{NORMALIZERS, component, guest_path, record, runtime, text};

async fn load(name: &str) -> (TransformPlugin, PluginVersion) {
    let plugin = TransformPlugin::new(runtime(), &component(name), PluginOptions::default())
        .await
        .expect("plugin links");
    let bytes = std::fs::read(guest_path(name)).expect("guest bytes");
    let info = plugin.describe().await.expect("describe");
    let version = PluginVersion {
        name: info.name,
        version: info.version,
        digest: component_digest(&bytes),
    };
    (plugin, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_concurrent_calls_fail_no_call() {
    // Both languages on both versions of the world: a swap may change either.
    let mut versions = Vec::new();
    for name in NORMALIZERS {
        versions.push(load(name).await);
    }
    let digests: std::collections::BTreeSet<_> =
        versions.iter().map(|(_, v)| v.digest.clone()).collect();
    assert_eq!(digests.len(), NORMALIZERS.len());
    let (first, first_version) = versions[0].clone();
    let slot = Arc::new(PluginSlot::new(first, first_version));

    let batch: Vec<_> = (0..20)
        .map(|i| {
            record(
                &format!("k{i}"),
                &[("email", text(&format!("  User{i}@Example.COM ")))],
            )
        })
        .collect();
    let batch = Arc::new(batch);
    let swapping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (slot, batch, swapping) =
            (Arc::clone(&slot), Arc::clone(&batch), Arc::clone(&swapping));
        callers.spawn(async move {
            let mut seen = Vec::new();
            // Calls go on for as long as versions are being swapped.
            while swapping.load(std::sync::atomic::Ordering::Relaxed) || seen.len() < 3 {
                let current = slot.current();
                let outcomes = current
                    .plugin
                    .process_batch(&batch)
                    .await
                    .expect("no call fails during swaps");
                assert_eq!(outcomes.len(), batch.len());
                for (i, outcome) in outcomes.iter().enumerate() {
                    let Outcome::Keep(kept) = outcome else {
                        panic!("record {i}: {outcome:?}");
                    };
                    assert_eq!(kept.fields[0].value, text(&format!("user{i}@example.com")));
                }
                seen.push(current.version.digest.clone());
                // A call that never waits never yields: let the swapper run.
                tokio::task::yield_now().await;
            }
            seen
        });
    }
    let swapper = {
        let (slot, swapping) = (Arc::clone(&slot), Arc::clone(&swapping));
        tokio::spawn(async move {
            for n in 1..=12 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                let (plugin, version) = versions[n % versions.len()].clone();
                slot.replace(plugin, version);
            }
            swapping.store(false, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut digests = std::collections::BTreeSet::new();
    while let Some(seen) = callers.join_next().await {
        digests.extend(seen.expect("caller"));
    }
    swapper.await.expect("swapper");
    assert_eq!(slot.swaps(), 12);
    // Calls ran on every version (the swaps happened while they were being made).
    assert_eq!(digests.len(), NORMALIZERS.len(), "{digests:?}");
}
