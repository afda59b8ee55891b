//! `email-normalizer` on `witplug:plugin/transform-plugin@0.2.0`, the flat record shape.
//!
//! The rule is the 0.1.0 guest's own source (`../email-normalizer/src/rule.rs`, included
//! by path), so both versions answer alike by construction. It runs on plain Rust records
//! read out of the flat batch ([`model`]); [`flat`] reads the batch and writes the answer:
//! a kept record whose fields are those it came with is answered `keep` with edits of the
//! values the rule changed, any other one `keep-as` a record of the answer.

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0",
        world: "transform-plugin",
        // Lets the unit tests compare answers.
        additional_derives: [PartialEq],
    });
}

mod flat;
mod model;

// The paths `rule.rs` imports its types from (in the 0.1.0 guest, its bindings).
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

#[path = "../../email-normalizer/src/rule.rs"]
mod rule;

use bindings::exports::witplug::plugin::metadata::{self, PluginInfo};
use bindings::exports::witplug::plugin::transformer::{self, Answer};
use bindings::witplug::plugin::types::Batch;
use bindings::witplug::plugin::{config, logging};
use model::Outcome;

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
        let (mut kept, mut dropped, mut split, mut errors) = (0, 0, 0, 0);
        let mut answer = flat::AnswerWriter::new(&batch);
        for (index, record) in flat::records(&batch).enumerate() {
            let outcome = rule::apply(&settings, record);
            match &outcome {
                Outcome::Keep(_) => kept += 1,
                Outcome::Drop(_) => dropped += 1,
                Outcome::Split(_) => split += 1,
                Outcome::Error(_) => errors += 1,
            }
            answer.push(index, outcome);
        }
        let fields = [
            ("records", batch.records.len()),
            ("kept", kept),
            ("dropped", dropped),
            ("split", split),
            ("errors", errors),
        ]
        .map(|(name, count)| (name.to_owned(), count.to_string()));
        logging::log(logging::Level::Debug, "batch processed", &fields);
        answer.finish()
    }
}

bindings::export!(EmailNormalizer with_types_in bindings);
