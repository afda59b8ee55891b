//! `hostile-v0-2`: a transform@0.2.0 plugin whose answers point where the WIT says they
//! may not, for the tests that attack the host's reading of a flat answer
//! (`host/cli/tests/all/hostile.rs`). The first record's key picks the attack; any other
//! key gets an honest answer (every record kept).

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/v0.2.0",
        world: "transform-plugin",
    });
}

use bindings::exports::witplug::plugin::metadata::{self, PluginInfo};
use bindings::exports::witplug::plugin::transformer::{self, Answer, Edit, Outcome};
use bindings::witplug::plugin::types::{Batch, Cell, Record, Span, Value};

struct Hostile;

impl metadata::Guest for Hostile {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "hostile-v0-2".to_owned(),
            version: "0.2.0".to_owned(),
            description: "Answers with spans and indices out of bounds (test only).".to_owned(),
        }
    }
}

fn answer(outcomes: Vec<Outcome>) -> Answer {
    Answer {
        outcomes,
        edits: Vec::new(),
        names: Vec::new(),
        text: String::new(),
        bytes: Vec::new(),
        items: Vec::new(),
        cells: Vec::new(),
        records: Vec::new(),
    }
}

impl transformer::Guest for Hostile {
    fn process_batch(batch: Batch) -> Answer {
        let n = batch.records.len();
        let first_key = batch.records.first().map_or("", |r| {
            let start = r.key.start as usize;
            batch
                .text
                .get(start..start + r.key.len as usize)
                .unwrap_or("")
        });
        let mut kept = answer(vec![Outcome::Keep; n]);
        match first_key {
            // One outcome too few.
            "short" => kept.outcomes.truncate(n.saturating_sub(1)),
            // A record of the answer whose key runs past the answer's text.
            "span-outside" => {
                kept.text = "abc".to_owned();
                kept.records = vec![Record {
                    key: Span {
                        start: 1,
                        len: 1 << 30,
                    },
                    first: 0,
                    count: 0,
                }];
                kept.outcomes[0] = Outcome::KeepAs(0);
            }
            // A text span that ends inside a two-byte character.
            "mid-char" => {
                kept.text = "é".to_owned();
                kept.edits = vec![Edit {
                    record: 0,
                    cell: 0,
                    value: Value::Text(Span { start: 0, len: 1 }),
                }];
            }
            // An edit of a record the answer drops.
            "edit-dropped" => {
                kept.outcomes[0] = Outcome::Drop("dropped".to_owned());
                kept.edits = vec![Edit {
                    record: 0,
                    cell: 0,
                    value: Value::Null,
                }];
            }
            // A name index past every name.
            "bad-name" => {
                kept.cells = vec![Cell {
                    name: u32::MAX,
                    value: Value::Null,
                }];
                kept.records = vec![Record {
                    key: Span { start: 0, len: 0 },
                    first: 0,
                    count: 1,
                }];
                kept.outcomes[0] = Outcome::Split(Span { start: 0, len: 1 });
            }
            // 256 KiB of text named by 128 cells of one record, that record split 4 times
            // over: an answer of about 256 KiB that reads as 128 MiB of strings.
            "amplify" => {
                kept.text = "x".repeat(1 << 18);
                kept.cells = vec![
                    Cell {
                        name: 0,
                        value: Value::Text(Span {
                            start: 0,
                            len: 1 << 18
                        }),
                    };
                    128
                ];
                kept.records = vec![
                    Record {
                        key: Span { start: 0, len: 0 },
                        first: 0,
                        count: 128,
                    };
                    4
                ];
                kept.outcomes[0] = Outcome::Split(Span { start: 0, len: 4 });
            }
            _ => {}
        }
        kept
    }
}

bindings::export!(Hostile with_types_in bindings);
