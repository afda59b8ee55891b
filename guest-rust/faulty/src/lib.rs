//! `faulty`: a deliberately misbehaving `transform-plugin`, for host tests only.
//!
//! The key of each record says what to do: `panic`, `unreachable` and `divide-by-zero`
//! trap in different ways, `wrong-count` breaks the one-outcome-per-record contract,
//! `log` logs a line; any other record is kept unchanged.

wit_bindgen::generate!({ path: "../../wit", world: "transform-plugin" });

use exports::witplug::plugin::metadata::{self, PluginInfo};
use exports::witplug::plugin::transformer::{self, Outcome};
use witplug::plugin::logging;
use witplug::plugin::types::Record;

struct Faulty;

impl metadata::Guest for Faulty {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "faulty".to_owned(),
            version: "0.1.0".to_owned(),
            description: "Fails on demand; for tests only.".to_owned(),
        }
    }
}

impl transformer::Guest for Faulty {
    fn process_batch(batch: Vec<Record>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(batch.len());
        for record in batch {
            match record.key.as_str() {
                "panic" => panic!("faulty plugin asked to panic"),
                "unreachable" => trap_unreachable(),
                "divide-by-zero" => {
                    // black_box hides the zero from the optimiser, so the division
                    // really happens (and panics) at run time.
                    std::hint::black_box(1 / std::hint::black_box(0_i64));
                }
                "wrong-count" => return Vec::new(),
                "log" => logging::log(
                    logging::Level::Info,
                    "hello from faulty",
                    &[("key".to_owned(), "log".to_owned())],
                ),
                _ => {}
            }
            outcomes.push(Outcome::Keep(record));
        }
        outcomes
    }
}

/// Executes wasm's `unreachable` instruction: a trap that does not go through a panic.
#[cfg(target_arch = "wasm32")]
fn trap_unreachable() -> ! {
    core::arch::wasm32::unreachable()
}

/// Native builds (only for `cargo check`/tests) have no wasm instruction to use.
#[cfg(not(target_arch = "wasm32"))]
fn trap_unreachable() -> ! {
    unreachable!("faulty plugin asked to hit `unreachable`")
}

export!(Faulty);
