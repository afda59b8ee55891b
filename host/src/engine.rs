//! The engine: one per process, configured once, shared by every plugin.
//!
//! Compiled code, the epoch ticker and (later) the instance allocator and compile cache
//! live in the engine, so creating more than one per process only wastes memory and
//! start-up time.

use std::time::Duration;

use wasmtime::{Config, Engine, EngineWeak};

use crate::error::Error;

/// Engine-wide settings. Per-plugin limits are in [`Limits`](crate::Limits).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// How often the epoch advances: the granularity of call deadlines, and how often a
    /// running guest yields to the async executor.
    pub epoch_tick: Duration,
    /// Wasm stack per call; deeper recursion traps as a stack overflow.
    pub max_wasm_stack: usize,
    /// Meter fuel, so that `Limits::fuel_per_call` can apply. Costs some speed on every
    /// plugin, hence off by default.
    pub fuel_metering: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 << 10,
            fuel_metering: false,
        }
    }
}

/// The process-wide wasmtime engine, configured for witplug. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
}

impl Runtime {
    /// Creates the engine with the default [`RuntimeConfig`].
    pub fn new() -> Result<Self, Error> {
        Self::with_config(RuntimeConfig::default())
    }

    /// Creates the engine: component model on, epoch interruption on, wasm backtraces
    /// (wasmtime's default of 20 frames) attached to traps. Starts the epoch ticker, a
    /// thread that ends when the last clone of the engine is dropped.
    pub fn with_config(config: RuntimeConfig) -> Result<Self, Error> {
        let mut wasmtime_config = Config::new();
        wasmtime_config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .consume_fuel(config.fuel_metering)
            .max_wasm_stack(config.max_wasm_stack)
            // Host functions run on the fiber's stack as well: keep a margin above the
            // wasm stack limit.
            .async_stack_size(config.max_wasm_stack + (1 << 20));
        let engine = Engine::new(&wasmtime_config).map_err(Error::Engine)?;
        spawn_epoch_ticker(engine.weak(), config.epoch_tick)?;
        Ok(Self { engine, config })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

/// One thread for the whole engine, not one per call: it only bumps a counter that the
/// guests' compiled code checks.
fn spawn_epoch_ticker(engine: EngineWeak, tick: Duration) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("witplug-epoch".to_owned())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .map(drop)
        .map_err(Error::Ticker)
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
