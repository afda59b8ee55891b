//! `email-normalizer`: the sample transform plugin, written in Rust.
//!
//! Trims text fields, validates and lowercases email addresses, splits multi-address
//! fields and drops blocked domains, exactly as `samples/README.md` specifies (a Go guest
//! implements the same rule). The rule itself lives in [`rule`]; this file is the glue to
//! the `transform-plugin` world.

mod rule;

wit_bindgen::generate!({
    path: "../../wit",
    world: "transform-plugin",
    // Lets the unit tests compare outcomes.
    additional_derives: [PartialEq],
});

use exports::witplug::plugin::metadata::{self, PluginInfo};
use exports::witplug::plugin::transformer::{self, Outcome};
use witplug::plugin::types::Record;
use witplug::plugin::{config, logging};

struct EmailNormalizer;

impl metadata::Guest for EmailNormalizer {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "email-normalizer".to_owned(),
            version: "0.1.0".to_owned(),
            description: "Trims text fields, validates and lowercases email addresses, \
                          splits multi-address fields, drops blocked domains (Rust guest)."
                .to_owned(),
        }
    }
}

impl transformer::Guest for EmailNormalizer {
    fn process_batch(batch: Vec<Record>) -> Vec<Outcome> {
        // Configuration cannot change during a call: read it once per batch, not per record.
        let settings = rule::Settings::new(
            config::get("email-field"),
            config::get("required-fields"),
            config::get("blocked-domains"),
        );
        let records = batch.len();
        let outcomes: Vec<Outcome> = batch
            .into_iter()
            .map(|record| rule::apply(&settings, record))
            .collect();

        let (mut kept, mut dropped, mut split, mut errors) = (0, 0, 0, 0);
        for outcome in &outcomes {
            match outcome {
                Outcome::Keep(_) => kept += 1,
                Outcome::Drop(_) => dropped += 1,
                Outcome::Split(_) => split += 1,
                Outcome::Error(_) => errors += 1,
            }
        }
        let fields = [
            ("records", records),
            ("kept", kept),
            ("dropped", dropped),
            ("split", split),
            ("errors", errors),
        ]
        .map(|(name, count)| (name.to_owned(), count.to_string()));
        logging::log(logging::Level::Debug, "batch processed", &fields);
        outcomes
    }
}

export!(EmailNormalizer);
