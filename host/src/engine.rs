//! The engine: one per process, configured once, shared by every plugin.
//!
//! Compiled code, the compile cache and (later) the instance allocator live in the engine,
//! so creating more than one per process only wastes memory and start-up time.

use wasmtime::{Config, Engine};

use crate::error::Error;

/// The process-wide wasmtime engine, configured for witplug. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
}

impl Runtime {
    /// Creates the engine with witplug's configuration: the component model on, wasm
    /// backtraces (wasmtime's default of 20 frames) attached to traps.
    pub fn new() -> Result<Self, Error> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(Error::Engine)?;
        Ok(Self { engine })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}
