//! `mistyped`: exports `witplug:plugin/transformer` with a `process-batch` of the wrong
//! type, so that host tests can check the error names the mistyped export.

wit_bindgen::generate!({ path: "wit", world: "transform-plugin" });

use exports::witplug::plugin::metadata::{self, PluginInfo};
use exports::witplug::plugin::transformer;

struct Mistyped;

impl metadata::Guest for Mistyped {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "mistyped".to_owned(),
            version: "0.1.0".to_owned(),
            description: "Has a transformer of the wrong type; for tests only.".to_owned(),
        }
    }
}

impl transformer::Guest for Mistyped {
    fn process_batch(batch: Vec<String>) -> u32 {
        u32::try_from(batch.len()).unwrap_or(u32::MAX)
    }
}

export!(Mistyped);
