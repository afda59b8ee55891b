//! Glue for each built-in world: its `World` impl and a typed, easy API over it.

mod bindings;
mod host_services;

pub mod aggregator;
pub mod command;
pub mod transform;

pub use bindings::types::{Field, Record, Value};
pub use bindings::{config, logging};

/// What a plugin says about itself (the `metadata` interface every witplug plugin exports).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
}
