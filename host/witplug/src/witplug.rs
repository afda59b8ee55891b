//! witplug: a WebAssembly component-model plugin framework driven by WIT interfaces.
//!
//! # Embedding
//!
//! - [`Runtime`]: the process-wide engine, created once.
//! - [`Capabilities`]: what a plugin may touch; nothing unless granted.
//! - [`Plugin`]: a component linked against a [`World`]; [`Instance`]: one instantiation of
//!   it, with its own store.
//! - Built-in worlds with typed APIs: [`TransformPlugin`], [`AggregatorPlugin`],
//!   [`CommandPlugin`]; preview1 core-module programs: [`Preview1Program`]. Bring your own world by implementing [`World`] for its `bindgen!`
//!   output.
//! - [`PluginSlot`]: a plugin version that can be replaced while calls are in flight.
//! - [`preinitialize`]: snapshot a component after its start-up, so that its instances
//!   skip it (for Go guests; see [`preinit`] for what the snapshot freezes).
//!
//! ```no_run
//! # async fn demo() -> Result<(), witplug::Error> {
//! use witplug::{PluginOptions, Runtime, TransformPlugin};
//!
//! let runtime = Runtime::new()?;
//! let plugin =
//!     TransformPlugin::load(&runtime, "email-normalizer.wasm", PluginOptions::default()).await?;
//! let outcomes = plugin.process_batch(&[]).await?;
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod capabilities;
pub mod component;
mod data_segments;
pub mod engine;
pub mod error;
mod guest_log;
pub mod http_grant;
pub mod jsonl;
pub mod limits;
pub mod plugin;
pub mod policy;
pub mod preinit;
pub mod slot;
pub mod state;
pub mod world_grants;
pub mod worlds;

/// The wasmtime witplug is built on, for a world's glue: `bindgen!({ wasmtime_crate:
/// witplug::wasmtime, .. })` and `witplug::wasmtime::component::Linker` need no wasmtime
/// dependency of their own, and can never pick a version other than witplug's.
pub use wasmtime;

pub use cache::{CacheError, CompileCache};
pub use capabilities::{Access, Capabilities, CapabilityDenied, DirGrant, Stdio};
pub use component::{LoadedComponent, is_core_module};
pub use engine::{Pooling, Profiler, Runtime, RuntimeConfig};
pub use error::{Error, GrantError, LoadError, error_chain};
pub use http_grant::{HttpGrant, HttpGrantError};
pub use limits::Limits;
pub use plugin::{Instance, InstanceReuse, Plugin, PluginOptions, PluginStore, World};
pub use policy::{Policy, PolicyError, TomlError};
pub use preinit::{PreinitError, preinitialize};
pub use slot::{PluginSlot, PluginVersion, Versioned, component_digest};
pub use state::{LogLevel, LogRecord, LogSink, PluginConfig, PluginState};
pub use world_grants::WorldGrant;
pub use worlds::aggregator::AggregatorPlugin;
pub use worlds::command::CommandPlugin;
pub use worlds::preview1::{Preview1Exit, Preview1Program};
pub use worlds::transform::{TransformPlugin, TransformVersion};
pub use worlds::{BuiltinWorld, Field, PluginInfo, Record, Value};
