//! The engine and limit flags shared by the subcommands that load plugins.
//!
//! Every limit flag is checked when the command line is parsed, with a message naming the
//! flag and the accepted range, so that no nonsensical value reaches the engine (where it
//! would surface as a confusing load or configuration error).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use witplug::{CompileCache, Limits, Pooling, Runtime, RuntimeConfig};

const MIB: usize = 1 << 20;
/// Linear memories are 32-bit: 4 GiB is the most one can address.
const MAX_MEMORY_MIB: u64 = 4096;
const MAX_TRANSFER_MIB: u64 = 4096;
/// Component instances the CLI's pool holds at once. The subcommands call one instance at
/// a time (plus the probe instance at load); raise this with any concurrency.
pub const CLI_MAX_INSTANCES: u32 = 8;
/// Address space the process needs besides the pool (code, heaps, thread stacks).
const ADDRESS_SPACE_HEADROOM: u64 = 4 << 30;
/// The smallest pool slot: a plugin limited below its initial memory then fails with a
/// memory-limit error naming both sizes, instead of not loading at all.
const MIN_POOL_SLOT: usize = 64 * MIB;

/// Per-plugin limits and the compile cache.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// Linear memory the plugin may use, in MiB (1 to 4096: wasm memories are 32-bit).
    #[arg(long, value_name = "MIB", default_value = "256", allow_negative_numbers = true,
          value_parser = mib_parser("--max-memory", MAX_MEMORY_MIB))]
    max_memory: usize,

    /// Wall-clock time one call may take, in milliseconds (1 or more), or `none` for no
    /// deadline.
    #[arg(long, value_name = "MS|none", default_value = "10000", allow_negative_numbers = true,
          value_parser = parse_timeout)]
    timeout_ms: Timeout,

    /// Fuel (about one per wasm instruction) one call may burn, 1 or more; turns fuel
    /// metering on [default: no metering].
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = parse_fuel)]
    fuel: Option<u64>,

    /// Host memory the values the plugin hands to the host in one call may take, in MiB
    /// (1 to 4096).
    #[arg(long, value_name = "MIB", default_value = "64", allow_negative_numbers = true,
          value_parser = mib_parser("--max-transfer", MAX_TRANSFER_MIB))]
    max_transfer: usize,

    /// Compile cache directory [default: $WITPLUG_CACHE_DIR, $XDG_CACHE_HOME/witplug or
    /// ~/.cache/witplug].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Compile without reading or writing the compile cache.
    #[arg(long)]
    no_cache: bool,
}

/// `--timeout-ms`: a deadline, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(Option<Duration>);

fn parse_timeout(text: &str) -> Result<Timeout, String> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(Timeout(None));
    }
    match text.parse::<u64>() {
        Ok(ms) if ms >= 1 => Ok(Timeout(Some(Duration::from_millis(ms)))),
        _ => Err(format!(
            "`{text}` is not a timeout: give 1 or more milliseconds, or `none` for no deadline"
        )),
    }
}

fn parse_fuel(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(fuel) if fuel >= 1 => Ok(fuel),
        _ => Err(format!(
            "`{text}` is not an amount of fuel: give a whole number from 1 to {}",
            u64::MAX
        )),
    }
}

/// A size in MiB from 1 to `max`, as bytes.
fn mib_parser(
    flag: &'static str,
    max: u64,
) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |text: &str| match text.parse::<u64>() {
        Ok(mib) if (1..=max).contains(&mib) => usize::try_from(mib)
            .ok()
            .and_then(|mib| mib.checked_mul(MIB))
            .ok_or_else(|| format!("{flag} {mib} MiB does not fit this platform")),
        _ => Err(format!(
            "`{text}` is not a size for {flag}: give 1 to {max} (MiB)"
        )),
    }
}

impl EngineArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_memory_bytes: self.max_memory,
            call_timeout: self.timeout_ms.0,
            fuel_per_call: self.fuel,
            max_transfer_bytes: self.max_transfer,
            ..Limits::default()
        }
    }

    /// The pool the CLI uses: a few instances, slots sized from `--max-memory`. Bounds
    /// checks are elided (4 GiB + 32 MiB per slot, 64.5 GiB in all) when the process's
    /// address-space limit leaves room for that; under a tighter `ulimit -v` the slots
    /// are `max(--max-memory, 64 MiB)` rounded up to a power of two, plus 64 KiB, with
    /// explicit bounds checks: `8 x 2 x (256 MiB + 64 KiB)`, 4 GiB, at the defaults.
    pub fn pooling(&self) -> Pooling {
        self.pooling_under(address_space_limit())
    }

    fn pooling_under(&self, address_space_limit: Option<u64>) -> Pooling {
        let eliding = Pooling {
            max_instances: CLI_MAX_INSTANCES,
            memories_per_instance: 2,
            // A power of two: the slot size is part of the compiled code (its bounds
            // checks), so this keeps compile-cache entries shared across nearby limits.
            max_memory_bytes: self.max_memory.max(MIN_POOL_SLOT).next_power_of_two(),
            elide_bounds_checks: true,
            ..Pooling::default()
        };
        let fits = |limit: u64| {
            eliding
                .reserved_address_space()
                .saturating_add(ADDRESS_SPACE_HEADROOM)
                <= limit
        };
        match address_space_limit {
            Some(limit) if !fits(limit) => Pooling {
                elide_bounds_checks: false,
                ..eliding
            },
            _ => eliding,
        }
    }

    /// The compile cache directory these flags ask for: `None` with `--no-cache`, or when
    /// there is no default (no usable `HOME`).
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir.clone().or_else(CompileCache::default_dir)
        }
    }

    /// The runtime these flags ask for (fuel metering only when `--fuel` is given).
    pub fn runtime(&self) -> Result<Runtime, witplug::Error> {
        let cache_dir = self.cache_dir();
        // The pooling allocator with copy-on-write images: the fastest instantiation
        // (see BENCHMARKS.md); slots only reserve address space.
        Runtime::with_config(RuntimeConfig {
            fuel_metering: self.fuel.is_some(),
            cache_dir,
            pooling: Some(self.pooling()),
            ..RuntimeConfig::default()
        })
    }
}

/// The soft `RLIMIT_AS` (`ulimit -v`), `None` when unlimited.
fn address_space_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::As).current
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn parse(args: &[&str]) -> Result<EngineArgs, String> {
        Cli::try_parse_from(std::iter::once("witplug").chain(args.iter().copied()))
            .map(|cli| cli.engine)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_flag_defaults_are_the_library_defaults() {
        assert_eq!(parse(&[]).expect("no flags").limits(), Limits::default());
    }

    #[test]
    fn out_of_range_limits_are_refused_naming_the_flag_and_range() {
        for (args, expected) in [
            (&["--max-memory", "0"][..], "give 1 to 4096"),
            (&["--max-memory", "4097"], "give 1 to 4096"),
            (&["--max-memory", "-1"], "--max-memory"),
            (&["--max-transfer", "0"], "--max-transfer"),
            (&["--timeout-ms", "0"], "1 or more milliseconds, or `none`"),
            (&["--timeout-ms", "-5"], "1 or more milliseconds"),
            (&["--fuel", "0"], "from 1"),
            (&["--fuel", "-3"], "from 1"),
        ] {
            let error = parse(args).expect_err(&format!("{args:?}"));
            assert!(error.contains(expected), "{args:?}: {error}");
            assert!(
                !error.contains("tip:"),
                "no misleading tip for {args:?}: {error}"
            );
        }
    }

    #[test]
    fn timeout_none_lifts_the_deadline() {
        let limits = parse(&["--timeout-ms", "none"]).expect("none").limits();
        assert_eq!(limits.call_timeout, None);
        let limits = parse(&["--timeout-ms", "1", "--max-memory", "4096"])
            .expect("bounds")
            .limits();
        assert_eq!(limits.call_timeout, Some(Duration::from_millis(1)));
        assert_eq!(limits.max_memory_bytes, 4096 * MIB);
    }

    #[test]
    fn the_cli_pool_elides_bounds_checks_only_where_they_fit() {
        let args = parse(&[]).expect("defaults");
        let unlimited = args.pooling_under(None);
        assert!(unlimited.elide_bounds_checks);
        assert_eq!(
            unlimited.reserved_address_space(),
            16 * ((4 << 30) + (32 << 20)) + (32 << 20)
        );
        // `ulimit -v 16000000` is in KiB.
        let limited = args.pooling_under(Some(16_000_000 << 10));
        assert!(!limited.elide_bounds_checks);
        assert_eq!(
            limited.reserved_address_space(),
            16 * (256 * MIB as u64 + 65536) + 65536
        );
        let largest = parse(&["--max-memory", "4096"]).expect("largest");
        assert!(largest.pooling_under(Some(1 << 40)).elide_bounds_checks);
        // Nearby limits share one engine configuration, hence one compile-cache entry.
        let nearby = parse(&["--max-memory", "200"]).expect("nearby");
        assert_eq!(
            nearby.pooling_under(Some(1 << 30)).max_memory_bytes,
            256 * MIB
        );
    }
}
