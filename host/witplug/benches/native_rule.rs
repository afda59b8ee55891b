// The sample rule's own source (`guest-rust/email-normalizer/src/rule.rs`), compiled
// natively for the benchmarks' baselines. `include!`d at the root of each bench crate (both
// live in `host/<crate>/benches/`, so the path below holds for both).
//
// The paths the guest's `rule.rs` imports its types from (its `wit_bindgen` bindings), here
// pointing at the host's bindings of the same WIT: same names, same shapes. Using the host's
// types rather than `wit_bindgen::generate!` keeps wit-bindgen's proc macro out of the
// host's dev-dependencies, which would change the features of wasmtime's own macro
// dependencies and make `cargo test` compile wasmtime a second time after `cargo build`.
mod exports {
    pub mod witplug {
        pub mod plugin {
            pub mod transformer {
                pub use ::witplug::worlds::transform::{Outcome, RecordError};
            }
        }
    }
}
mod witplug {
    pub mod plugin {
        pub mod types {
            pub use ::witplug::{Field, Record, Value};
        }
    }
}

/// The sample rule's own source, compiled natively: the throughput baseline. Included by
/// path, as `fuzz/` does, because making the guest crate an `rlib` too would cost its
/// component LTO.
#[path = "../../../guest-rust/email-normalizer/src/rule.rs"]
#[allow(dead_code, clippy::all)]
mod rule;
