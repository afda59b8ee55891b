//! Arbitrary bytes as a component file.
//!
//! `LoadedComponent::from_bytes` must sort every input into a component or a `LoadError`;
//! a component that compiles is listed (`witplug inspect`'s code) and linked as a transform
//! plugin, which type-checks it against the world and runs one probe instantiation. One
//! that links is also called once through each export, so that whatever a mutated guest
//! does (trap, loop, wrong answer) goes through witplug's error classification. Any `Err`
//! is fine; a panic, an abort or a sanitizer report is a finding.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use witplug::worlds::transform::TransformWorld;
use witplug::{Field, Limits, LoadedComponent, Plugin, PluginOptions, Record, TransformPlugin};
use witplug_fuzz::{executor, runtime};

fuzz_target!(|data: &[u8]| {
    let runtime = runtime();
    let Ok(loaded) = LoadedComponent::from_bytes(runtime, data, "fuzz.wasm") else {
        return;
    };
    // `witplug inspect` and the world-mismatch message list these.
    let _ = loaded.export_names();
    let _ = loaded.import_names();

    // A mutated guest may loop in its start function or in a call: a deadline well under
    // libFuzzer's `-timeout` keeps such inputs ordinary `Error::Timeout`s.
    let options = PluginOptions::default().limits(Limits {
        call_timeout: Some(Duration::from_millis(500)),
        ..Limits::default()
    });
    executor().block_on(async {
        let Ok(plugin) = Plugin::<TransformWorld>::new(runtime, &loaded, options).await else {
            return;
        };
        let plugin = TransformPlugin::from(plugin);
        let _ = plugin.describe().await;
        let batch = [Record {
            key: "k".to_owned(),
            fields: vec![Field {
                name: "email".to_owned(),
                value: witplug::Value::Text(" Ada@Example.COM; b@c.io ".to_owned()),
            }],
        }];
        let _ = plugin.process_batch(&batch).await;
    });
});
