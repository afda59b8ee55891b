//! The engine: one per process, configured once, shared by every plugin.
//!
//! Compiled code, the epoch ticker and (later) the instance allocator and compile cache
//! live in the engine, so creating more than one per process only wastes memory and
//! start-up time.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
};

use crate::cache::CompileCache;
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
    /// Where compiled components are cached (see [`CompileCache`]); `None`: no cache. A
    /// directory that fails the cache's checks is skipped with a warning.
    pub cache_dir: Option<PathBuf>,
    /// Preallocated instance slots with copy-on-write memory images, or `None` for
    /// on-demand allocation.
    pub pooling: Option<Pooling>,
}

/// Sizing of the pooling allocator. Slots are reserved address space, not memory: only
/// what instances touch becomes resident.
#[derive(Clone, Debug)]
pub struct Pooling {
    /// Component instances alive at once, across all plugins.
    pub max_instances: u32,
    /// The largest linear memory any plugin may have; a plugin's `Limits` above this are
    /// capped by it.
    pub max_memory_bytes: usize,
    /// Per memory and table slot, how many bytes of the pages an instance touched stay
    /// resident when it ends, reset to their initial contents in place (the next instance
    /// sees exactly what a fresh one would) instead of being returned to the kernel.
    /// Saves the `madvise` on every instance's end and the page faults at the start of
    /// the next; costs up to this much memory per idle slot. On Linux 6.7 and later only
    /// the touched pages are reset (found with the `PAGEMAP_SCAN` ioctl); 0 turns it off.
    pub keep_resident_bytes: usize,
}

impl Default for Pooling {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory_bytes: 256 << 20,
            keep_resident_bytes: 2 << 20,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 << 10,
            fuel_metering: false,
            cache_dir: None,
            pooling: None,
        }
    }
}

/// The process-wide wasmtime engine, configured for witplug. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    config: RuntimeConfig,
    cache: Option<CompileCache>,
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
        if let Some(pooling) = &config.pooling {
            wasmtime_config
                .allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(pooling)));
        }
        // A cache that cannot be used safely costs compile time, never the load: warn once
        // (here, per runtime) and compile in memory.
        let cache = config
            .cache_dir
            .as_ref()
            .and_then(|dir| match CompileCache::open(dir) {
                Ok(cache) => Some(cache),
                Err(error) => {
                    tracing::warn!(%error, "compile cache not used; compiling in memory");
                    None
                }
            });
        let engine = Engine::new(&wasmtime_config).map_err(Error::Engine)?;
        spawn_epoch_ticker(engine.weak(), config.epoch_tick)?;
        Ok(Self {
            engine,
            config,
            cache,
        })
    }

    pub fn cache(&self) -> Option<&CompileCache> {
        self.cache.as_ref()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }
}

fn pooling_config(pooling: &Pooling) -> PoolingAllocationConfig {
    let mut config = PoolingAllocationConfig::default();
    // A component (its adapter included) has a handful of core instances, memories and
    // tables; Go guests have large tables and instance states.
    config
        .total_component_instances(pooling.max_instances)
        .total_core_instances(pooling.max_instances.saturating_mul(8))
        .total_memories(pooling.max_instances.saturating_mul(4))
        .total_tables(pooling.max_instances.saturating_mul(4))
        .total_stacks(pooling.max_instances)
        .max_memory_size(pooling.max_memory_bytes)
        .max_core_instances_per_component(16)
        .max_memories_per_component(8)
        .max_tables_per_component(8)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(1 << 16)
        .linear_memory_keep_resident(pooling.keep_resident_bytes)
        .table_keep_resident(pooling.keep_resident_bytes)
        // Without the ioctl (older kernels, other systems) wasmtime resets the first
        // `keep_resident_bytes` whether touched or not.
        .pagemap_scan(Enabled::Auto);
    config
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
