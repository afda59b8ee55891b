//! Every `bindgen!` of the built-in worlds, in one place.
//!
//! Generated code stays inside the macros; the world modules re-export what users need.
//! The aggregator world reuses the transform world's `types`, `logging` and `config`
//! bindings (`with:`), so a `Record` is one Rust type whichever world carries it.

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

pub use transform::witplug::plugin::{config, logging, types};
