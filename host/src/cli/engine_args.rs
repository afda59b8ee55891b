//! The engine and limit flags shared by the subcommands that load plugins.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use witplug::{CompileCache, Limits, Pooling, Runtime, RuntimeConfig};

/// Per-plugin limits (defaults: 256 MiB memory, 10 s per call, 64 MiB per transfer, no
/// fuel metering) and the compile cache.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// Linear memory the plugin may use, in MiB.
    #[arg(long, value_name = "MIB")]
    max_memory: Option<usize>,

    /// Wall-clock time one call may take, in milliseconds.
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,

    /// Fuel (about one per wasm instruction) one call may burn; turns fuel metering on.
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,

    /// Bytes the plugin may hand to the host in one call, in MiB.
    #[arg(long, value_name = "MIB")]
    max_transfer: Option<usize>,

    /// Compile cache directory [default: $WITPLUG_CACHE_DIR, $XDG_CACHE_HOME/witplug or
    /// ~/.cache/witplug].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Compile without reading or writing the compile cache.
    #[arg(long)]
    no_cache: bool,
}

impl EngineArgs {
    pub fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            max_memory_bytes: self
                .max_memory
                .map_or(defaults.max_memory_bytes, |mib| mib.saturating_mul(1 << 20)),
            call_timeout: self
                .timeout_ms
                .map_or(defaults.call_timeout, Duration::from_millis),
            fuel_per_call: self.fuel,
            max_transfer_bytes: self
                .max_transfer
                .map_or(defaults.max_transfer_bytes, |mib| {
                    mib.saturating_mul(1 << 20)
                }),
            ..defaults
        }
    }

    /// The runtime these flags ask for (fuel metering only when `--fuel` is given).
    pub fn runtime(&self) -> Result<Runtime, witplug::Error> {
        let cache_dir = if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(CompileCache::default_dir)
        };
        // The pooling allocator with copy-on-write images: the fastest instantiation
        // (see BENCHMARKS.md); slots only reserve address space.
        let pooling = Pooling {
            max_instances: 256,
            max_memory_bytes: self.limits().max_memory_bytes,
            ..Pooling::default()
        };
        Runtime::with_config(RuntimeConfig {
            fuel_metering: self.fuel.is_some(),
            cache_dir,
            pooling: Some(pooling),
            ..RuntimeConfig::default()
        })
    }
}
