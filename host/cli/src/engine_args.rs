//! The engine and limit flags shared by the subcommands that load plugins.
//!
//! Every limit flag is checked when the command line is parsed, with a message naming the
//! flag and the accepted range, so that no nonsensical value reaches the engine (where it
//! would surface as a confusing load or configuration error).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use witplug::policy;
use witplug::{CompileCache, Limits, Pooling, Profiler, Runtime, RuntimeConfig};

/// Component instances the CLI's pool holds at once. The subcommands call one instance at
/// a time (plus the probe instance at load); raise this with any concurrency.
pub const CLI_MAX_INSTANCES: u32 = 8;
/// Address space the process needs besides the pool (code, heaps, thread stacks).
const ADDRESS_SPACE_HEADROOM: u64 = 4 << 30;
/// The smallest pool slot: a plugin limited below its initial memory then fails with a
/// memory-limit error naming both sizes, instead of not loading at all.
const MIN_POOL_SLOT: usize = 64 << 20;

/// Per-plugin limits and the compile cache.
///
/// A limit flag that is not given is `None` here, so that a policy file's limit can stand
/// in for it; the defaults are the library's (`Limits::default()`), applied after merging.
#[derive(Args, Debug)]
pub struct EngineArgs {
    /// Linear memory the plugin may use, in MiB (1 to 4096: wasm memories are 32-bit)
    /// [default: 256].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true,
          value_parser = policy::parse_memory_mib)]
    max_memory: Option<usize>,

    /// Wall-clock time one call may take, in milliseconds (1 or more), or `none` for no
    /// deadline [default: 10000].
    #[arg(long, value_name = "MS|none", allow_negative_numbers = true,
          value_parser = parse_timeout)]
    timeout_ms: Option<Timeout>,

    /// Fuel (about one per wasm instruction) one call may burn, 1 or more; turns fuel
    /// metering on [default: no metering].
    #[arg(long, value_name = "N", allow_negative_numbers = true,
          value_parser = policy::parse_fuel)]
    fuel: Option<u64>,

    /// Host memory the values the plugin hands to the host in one call may take, in MiB
    /// (1 to 4096) [default: 64].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true,
          value_parser = policy::parse_transfer_mib)]
    max_transfer: Option<usize>,

    /// Compile cache directory [default: $WITPLUG_CACHE_DIR, $XDG_CACHE_HOME/witplug or
    /// ~/.cache/witplug].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,

    /// Compile without reading or writing the compile cache.
    #[arg(long)]
    no_cache: bool,

    /// Write the plugins' function names for `perf`: `perfmap` for `perf record` then
    /// `perf report`, `jitdump` for `perf record -k mono` then `perf inject --jit`.
    #[arg(long, value_name = "FORMAT")]
    profile: Option<ProfileFormat>,
}

/// `--profile`: what the engine writes for `perf`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileFormat {
    Perfmap,
    Jitdump,
}

/// `--timeout-ms`: a deadline, or none. (An `Option<Option<_>>` field would make clap
/// take the flag's value as optional.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(Option<Duration>);

fn parse_timeout(text: &str) -> Result<Timeout, policy::PolicyValueError> {
    policy::parse_timeout_ms(text).map(Timeout)
}

impl EngineArgs {
    /// The limits of these flags alone, over the library defaults.
    pub fn limits(&self) -> Limits {
        self.apply_limits(Limits::default())
    }

    /// `limits` (e.g. a policy file's) with every limit flag that was given replacing its
    /// value.
    pub fn apply_limits(&self, limits: Limits) -> Limits {
        Limits {
            max_memory_bytes: self.max_memory.unwrap_or(limits.max_memory_bytes),
            call_timeout: self.timeout_ms.map_or(limits.call_timeout, |t| t.0),
            fuel_per_call: self.fuel.or(limits.fuel_per_call),
            max_transfer_bytes: self.max_transfer.unwrap_or(limits.max_transfer_bytes),
            ..limits
        }
    }

    /// The pool for these flags' limits alone (see [`pooling_for`]).
    pub fn pooling(&self) -> Pooling {
        pooling_for(&self.limits())
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
        self.runtime_for(&self.limits(), self.pooling())
    }

    /// The runtime for `limits` (merged from flags and a policy file): fuel metering when
    /// they meter fuel, this pool, and the flags' compile cache.
    pub fn runtime_for(
        &self,
        limits: &Limits,
        pooling: Pooling,
    ) -> Result<Runtime, witplug::Error> {
        // The pooling allocator with copy-on-write images: the fastest instantiation
        // (see BENCHMARKS.md); slots only reserve address space.
        Runtime::with_config(RuntimeConfig {
            fuel_metering: limits.fuel_per_call.is_some(),
            cache_dir: self.cache_dir(),
            pooling: Some(pooling),
            profiler: match self.profile {
                None => Profiler::None,
                Some(ProfileFormat::Perfmap) => Profiler::PerfMap,
                Some(ProfileFormat::Jitdump) => Profiler::JitDump,
            },
            ..RuntimeConfig::default()
        })
    }
}

/// The pool the CLI uses: a few instances, slots sized from the plugin's memory limit
/// (`limits`, after flags and policy file are merged). Bounds checks are elided (4 GiB +
/// 32 MiB per slot, 64.5 GiB in all) when the process's address-space limit leaves room
/// for that; under a tighter `ulimit -v` the slots are `max(memory limit, 64 MiB)`
/// rounded up to a power of two, plus 64 KiB, with explicit bounds checks:
/// `8 x 2 x (256 MiB + 64 KiB)`, 4 GiB, at the defaults.
pub fn pooling_for(limits: &Limits) -> Pooling {
    pooling_for_instances(limits.max_memory_bytes, CLI_MAX_INSTANCES)
}

/// As [`pooling_for`], with room for `max_instances` instances at once (`witplug serve`).
pub fn pooling_for_instances(max_memory_bytes: usize, max_instances: u32) -> Pooling {
    pooling_under(max_memory_bytes, max_instances, address_space_limit())
}

fn pooling_under(
    max_memory_bytes: usize,
    max_instances: u32,
    address_space_limit: Option<u64>,
) -> Pooling {
    let eliding = Pooling {
        max_instances,
        memories_per_instance: 2,
        // A power of two: the slot size is part of the compiled code (its bounds
        // checks), so this keeps compile-cache entries shared across nearby limits.
        max_memory_bytes: max_memory_bytes.max(MIN_POOL_SLOT).next_power_of_two(),
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

/// The soft `RLIMIT_AS` (`ulimit -v`), `None` when unlimited.
fn address_space_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::As).current
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    const MIB: usize = 1 << 20;

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
    fn the_help_shows_the_library_defaults() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        let defaults = Limits::default();
        for (flag, default) in [
            (
                "--max-memory",
                (defaults.max_memory_bytes / MIB).to_string(),
            ),
            (
                "--timeout-ms",
                defaults
                    .call_timeout
                    .expect("a deadline")
                    .as_millis()
                    .to_string(),
            ),
            (
                "--max-transfer",
                (defaults.max_transfer_bytes / MIB).to_string(),
            ),
        ] {
            let section = help
                .split(flag)
                .nth(1)
                .and_then(|rest| rest.split("\n  --").next())
                .expect(flag);
            assert!(
                section.contains(&format!("[default: {default}]")),
                "{flag}: {section}"
            );
        }
        assert_eq!(defaults.fuel_per_call, None, "--fuel says `no metering`");
    }

    #[test]
    fn a_given_limit_flag_replaces_the_value_it_is_applied_to_and_only_it() {
        let base = Limits {
            max_memory_bytes: 8 * MIB,
            call_timeout: None,
            fuel_per_call: Some(7),
            max_transfer_bytes: 2 * MIB,
            ..Limits::default()
        };
        assert_eq!(
            parse(&[]).expect("no flags").apply_limits(base.clone()),
            base
        );
        let merged = parse(&["--max-memory", "16", "--timeout-ms", "5"])
            .expect("flags")
            .apply_limits(base.clone());
        assert_eq!(merged.max_memory_bytes, 16 * MIB);
        assert_eq!(merged.call_timeout, Some(Duration::from_millis(5)));
        assert_eq!(merged.fuel_per_call, Some(7));
        assert_eq!(merged.max_transfer_bytes, 2 * MIB);
    }

    #[test]
    fn the_cli_pool_elides_bounds_checks_only_where_they_fit() {
        let default_memory = Limits::default().max_memory_bytes;
        let unlimited = pooling_under(default_memory, CLI_MAX_INSTANCES, None);
        assert!(unlimited.elide_bounds_checks);
        assert_eq!(
            unlimited.reserved_address_space(),
            16 * ((4 << 30) + (32 << 20)) + (32 << 20)
        );
        // `ulimit -v 16000000` is in KiB.
        let limited = pooling_under(default_memory, CLI_MAX_INSTANCES, Some(16_000_000 << 10));
        assert!(!limited.elide_bounds_checks);
        assert_eq!(
            limited.reserved_address_space(),
            16 * (256 * MIB as u64 + 65536) + 65536
        );
        assert!(pooling_under(4096 * MIB, CLI_MAX_INSTANCES, Some(1 << 40)).elide_bounds_checks);
        // Nearby limits share one engine configuration, hence one compile-cache entry.
        assert_eq!(
            pooling_under(200 * MIB, CLI_MAX_INSTANCES, Some(1 << 30)).max_memory_bytes,
            256 * MIB
        );
        // `pooling` sizes from the flags' limit.
        let args = parse(&["--max-memory", "1024"]).expect("flag");
        assert_eq!(args.pooling().max_memory_bytes, 1024 * MIB);
    }
}
