//! `email-normalizer` on `witplug:plugin/transform-plugin@0.2.0`, the flat record shape.
//!
//! [`lean`] applies the sample rule to the batch where it lies: values are borrowed spans
//! of the batch's text, names are compared as indices, and the answer holds only what the
//! rule changed (`keep` with edits, `split` into records of the answer). Its settings,
//! helpers and messages are the 0.1.0 guest's (`../email-normalizer/src/rule.rs`, included
//! by path); the host's differential tests hold both to identical outcomes.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0",
        world: "transform-plugin",
        // Lets the unit tests compare answers.
        additional_derives: [PartialEq],
    });
}

mod lean;
// Only for `rule.rs` to compile (see below).
#[allow(dead_code)]
mod model;

// The paths `rule.rs` imports its types from (in the 0.1.0 guest, its bindings), so that
// it compiles here.
mod exports {
    pub mod witplug {
        pub mod plugin {
            pub mod transformer {
                pub use crate::model::{Outcome, RecordError};
            }
        }
    }
}
mod witplug {
    pub mod plugin {
        pub mod types {
            pub use crate::model::{Field, Record, Value};
        }
    }
}

// Only `Settings` and the helpers are used here: `apply` works on owned records, which
// this guest never builds.
#[allow(dead_code)]
#[path = "../../email-normalizer/src/rule.rs"]
mod rule;

use bindings::exports::witplug::plugin::metadata::{self, PluginInfo};
use bindings::exports::witplug::plugin::transformer::{self, Answer, Outcome};
use bindings::witplug::plugin::types::Batch;
use bindings::witplug::plugin::{config, logging};

struct EmailNormalizer;

impl metadata::Guest for EmailNormalizer {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "email-normalizer".to_owned(),
            version: "0.2.0".to_owned(),
            description: "Trims text fields, validates and lowercases email addresses, \
                          splits multi-address fields, drops blocked domains (Rust guest, \
                          transform@0.2.0)."
                .to_owned(),
        }
    }
}

impl transformer::Guest for EmailNormalizer {
    fn process_batch(batch: Batch) -> Answer {
        // Configuration cannot change during a call: read it once per batch, not per record.
        let settings = rule::Settings::new(
            config::get("email-field"),
            config::get("required-fields"),
            config::get("blocked-domains"),
        );
        let fields = lean::Fields::new(&settings, &batch);
        let mut writer = lean::Writer::new(&batch);
        for index in 0..batch.records.len() {
            writer.apply(&settings, &fields, index);
        }
        let answer = writer.finish();
        let (mut kept, mut dropped, mut split, mut errors) = (0, 0, 0, 0);
        for outcome in &answer.outcomes {
            match outcome {
                Outcome::Keep | Outcome::KeepAs(_) => kept += 1,
                Outcome::Drop(_) => dropped += 1,
                Outcome::Split(_) => split += 1,
                Outcome::Error(_) => errors += 1,
            }
        }
        let counts = [
            ("records", batch.records.len()),
            ("kept", kept),
            ("dropped", dropped),
            ("split", split),
            ("errors", errors),
        ]
        .map(|(name, count)| (name.to_owned(), count.to_string()));
        logging::log(logging::Level::Debug, "batch processed", &counts);
        answer
    }
}

bindings::export!(EmailNormalizer with_types_in bindings);
