//! Host memory stays flat across many instantiate/call/drop cycles.
//!
//! Its own test binary, so that no other test shares the process whose RSS it reads.
//! `WITPLUG_SOAK_CYCLES` sets the cycle count (default 2,000; the long run is in the note
//! of the limits issue and in the benchmarks).

#[path = "all/common.rs"]
#[allow(dead_code)]
mod common;

use witplug::{Field, PluginOptions, Record, TransformPlugin, Value};

/// Resident set size of this process, from `/proc/self/statm` (in pages of 4 KiB).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[tokio::test]
async fn rss_stays_flat_over_instantiate_call_drop_cycles() {
    let cycles: usize = std::env::var("WITPLUG_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    for name in ["rust-email-normalizer", "go-email-normalizer"] {
        let plugin = TransformPlugin::new(
            common::runtime(),
            &common::component(name),
            PluginOptions::default(),
        )
        .await
        .expect("links");
        let batch = vec![Record {
            key: "k".into(),
            fields: vec![Field {
                name: "email".into(),
                value: Value::Text(" A@B.org ".into()),
            }],
        }];
        // Warm up: allocator pools, lazily initialised code.
        for _ in 0..200 {
            plugin.process_batch(&batch).await.expect("call");
        }
        let before = rss_bytes();
        for _ in 0..cycles {
            plugin.process_batch(&batch).await.expect("call");
        }
        let after = rss_bytes();
        let growth = after.saturating_sub(before);
        eprintln!("{name}: {cycles} cycles, RSS {before} -> {after} bytes (+{growth})");
        // One leaked instance of these guests costs at least a linear memory (>= 1 MiB):
        // a leak per cycle would grow RSS by gigabytes; allow allocator noise only.
        assert!(
            growth < 32 << 20,
            "{name}: RSS grew by {growth} bytes over {cycles} cycles"
        );
    }
}
