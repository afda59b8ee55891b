//! Every `bindgen!` of the built-in worlds, in one place.
//!
//! Generated code stays inside the macros; the world modules re-export what users need.
//! The aggregator world reuses the transform world's `types`, `logging` and `config`
//! bindings (`with:`), so a `Record` is one Rust type whichever world carries it.
//!
//! One module per released package version (`wit/` is 0.1.0, `wit/v0.2.0/` is 0.2.0): a
//! released WIT file is never edited, so these bindings never change either.

pub(crate) mod transform {
    wasmtime::component::bindgen!({
        world: "transform-plugin",
        path: "../../wit",
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

pub(crate) mod aggregator {
    wasmtime::component::bindgen!({
        world: "aggregator-plugin",
        path: "../../wit",
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "witplug:plugin/types": super::transform::witplug::plugin::types,
            "witplug:plugin/logging": super::transform::witplug::plugin::logging,
            "witplug:plugin/config": super::transform::witplug::plugin::config,
        },
    });
}

/// `witplug:plugin@0.2.0`: the transform world with the flat record shape. Its `logging`
/// and `config` are interfaces of another package version, so they get their own
/// (identical) host implementations in `host_services.rs`.
pub(crate) mod transform_v0_2_0 {
    wasmtime::component::bindgen!({
        world: "transform-plugin",
        path: "../../wit/v0.2.0",
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

pub use transform::witplug::plugin::{config, logging, types};
