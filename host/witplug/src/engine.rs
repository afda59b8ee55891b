//! The engine: one per process, configured once, shared by every plugin.
//!
//! Compiled code, the epoch ticker and (later) the instance allocator and compile cache
//! live in the engine, so creating more than one per process only wastes memory and
//! start-up time.

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::{
    Config, Enabled, Engine, EngineWeak, InstanceAllocationStrategy, PoolingAllocationConfig,
    ProfilingStrategy,
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
    /// Tell a profiler about the code compiled from plugins, so that `perf` names guest
    /// functions instead of showing anonymous JIT addresses.
    pub profiler: Profiler,
}

/// Which profiler the engine writes guest symbols for (see [`RuntimeConfig::profiler`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profiler {
    #[default]
    None,
    /// Writes `/tmp/perf-PID.map`, which `perf report` reads as it is: function names.
    PerfMap,
    /// Writes a `jit-PID.dump` for `perf inject --jit` (run `perf record -k mono`):
    /// function names and code bytes, for annotated disassembly.
    JitDump,
}

impl Profiler {
    fn strategy(self) -> ProfilingStrategy {
        match self {
            Self::None => ProfilingStrategy::None,
            Self::PerfMap => ProfilingStrategy::PerfMap,
            Self::JitDump => ProfilingStrategy::JitDump,
        }
    }
}

/// Sizing of the pooling allocator. Slots are reserved address space, not memory: only
/// what instances touch becomes resident. The address space reserved up front is
/// [`Pooling::reserved_address_space`]; it must fit `ulimit -v`.
#[derive(Clone, Debug)]
pub struct Pooling {
    /// Component instances alive at once, across all plugins.
    pub max_instances: u32,
    /// Linear memories reserved per component instance (a component usually has one; a
    /// WASI preview 1 adapter or a multi-module component has more).
    pub memories_per_instance: u32,
    /// The largest linear memory any plugin may have, at most 4 GiB; a plugin's `Limits`
    /// above this are capped by it, and a component whose initial memory is larger does
    /// not load.
    pub max_memory_bytes: usize,
    /// Per memory and table slot, how many bytes of the pages an instance touched stay
    /// resident when it ends, reset to their initial contents in place (the next instance
    /// sees exactly what a fresh one would) instead of being returned to the kernel.
    /// Saves the `madvise` on every instance's end and the page faults at the start of
    /// the next; costs up to this much memory per idle slot. On Linux 6.7 and later only
    /// the touched pages are reset (found with the `PAGEMAP_SCAN` ioctl); 0 turns it off.
    pub keep_resident_bytes: usize,
    /// Reserve 4 GiB plus a 32 MiB guard per memory slot (wasmtime's default), so that
    /// compiled code needs no bounds check on memory accesses. `false` reserves only
    /// `max_memory_bytes` plus a 64 KiB guard per slot, at the price of an explicit bounds
    /// check on every load and store: for small pools in processes under an address-space
    /// limit, such as the CLI.
    pub elide_bounds_checks: bool,
}

/// Address space per memory slot when bounds checks are elided: 4 GiB covers every 32-bit
/// index, the guard every static offset wasmtime folds into an access.
const ELIDING_RESERVATION: u64 = 4 << 30;
const ELIDING_GUARD: u64 = 32 << 20;
/// Guard after each slot when bounds are checked: one wasm page, wasmtime's minimum that
/// keeps small static offsets cheap.
const CHECKED_GUARD: u64 = 64 << 10;
/// A wasm page: slots are whole pages.
const WASM_PAGE: u64 = 64 << 10;

impl Pooling {
    /// Bytes of one memory slot: its reservation and the guard after it.
    fn memory_slot(&self) -> (u64, u64) {
        if self.elide_bounds_checks {
            (ELIDING_RESERVATION, ELIDING_GUARD)
        } else {
            let bytes = u64::try_from(self.max_memory_bytes).unwrap_or(u64::MAX);
            (bytes.div_ceil(WASM_PAGE).max(1) * WASM_PAGE, CHECKED_GUARD)
        }
    }

    fn total_memories(&self) -> u32 {
        self.max_instances
            .saturating_mul(self.memories_per_instance)
    }

    /// Address space the memory pool reserves when the runtime starts: one slot
    /// (reservation plus guard) per memory, plus one leading guard. Tables and fiber
    /// stacks add a few MiB per instance on top.
    pub fn reserved_address_space(&self) -> u64 {
        let (reservation, guard) = self.memory_slot();
        u64::from(self.total_memories())
            .saturating_mul(reservation.saturating_add(guard))
            .saturating_add(guard)
    }

    fn validate(&self) -> Result<(), Error> {
        if self.max_instances == 0 || self.memories_per_instance == 0 {
            return Err(Error::InvalidLimits(
                "`Pooling::max_instances` and `memories_per_instance` must be at least 1",
            ));
        }
        let max_memory = u64::try_from(self.max_memory_bytes).unwrap_or(u64::MAX);
        if max_memory == 0 || max_memory > ELIDING_RESERVATION {
            return Err(Error::InvalidLimits(
                "`Pooling::max_memory_bytes` must be 1 byte to 4 GiB (32-bit linear memories)",
            ));
        }
        Ok(())
    }
}

impl Default for Pooling {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            memories_per_instance: 4,
            max_memory_bytes: 256 << 20,
            keep_resident_bytes: 2 << 20,
            elide_bounds_checks: true,
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
            profiler: Profiler::None,
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
            .profiler(config.profiler.strategy())
            // Host functions run on the fiber's stack as well: keep a margin above the
            // wasm stack limit.
            .async_stack_size(config.max_wasm_stack + (1 << 20));
        if let Some(pooling) = &config.pooling {
            pooling.validate()?;
            // The reservation is engine-wide and shapes compiled code; set only with the
            // pool, whose slots it sizes.
            let (reservation, guard) = pooling.memory_slot();
            wasmtime_config
                .memory_reservation(reservation)
                .memory_guard_size(guard)
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
        .total_memories(pooling.total_memories())
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
