//! `witplug compile`: compile components ahead of time into the compile cache.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::output::{errln, outln};
use anyhow::Context as _;
use clap::Args;
use witplug::{CompileCache, LoadedComponent, PluginOptions, Preview1Program};

/// Compile components (and preview1 programs) ahead of time, so that later loads skip the
/// compiler.
///
/// Entries are bound to the component's SHA-256 and the engine configuration, and
/// authenticated with a per-user key (hmac.key in the directory), so an entry written by
/// anyone else, or copied from another component, is refused. The directory must belong to
/// the current user and not be writable by group or others; it is created owner-only.
/// Exits non-zero if an entry could not be written. Give it the limit flags the plugin will
/// run with (`--fuel`, `--max-memory`): some change the native code.
///
/// Examples:
///   witplug compile target/guests/*.wasm
///   witplug compile plugin.wasm --cache-dir ~/.cache/witplug-ci
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct CompileArgs {
    /// Component or preview1 core module files (.wasm).
    #[arg(required = true)]
    components: Vec<PathBuf>,

    /// The same limit and cache flags as `run` and `transform`: some (`--fuel`, and
    /// `--max-memory` under a tight `ulimit -v`) change the native code, and an entry
    /// compiled with other flags would never be found.
    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let cache_dir = args.engine.cache_dir().context(
        "no cache directory: set --cache-dir, WITPLUG_CACHE_DIR or HOME (and not --no-cache)",
    )?;
    // Opened here first so that an unusable directory fails the command with its reason
    // (`run` and `transform` only warn and compile in memory).
    let cache = CompileCache::open(&cache_dir)?;
    // The engine `run` and `transform` build from the same flags, so their loads find the
    // entries.
    let runtime = args.engine.runtime()?;
    let mut all_written = true;
    for path in &args.components {
        let started = Instant::now();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        // Preview1 programs (core modules) are cached too, for `witplug run`.
        let core_module = witplug::is_core_module(&bytes);
        let from_cache = if core_module {
            Preview1Program::from_bytes(&runtime, &bytes, path, PluginOptions::default())?
                .from_cache()
        } else {
            LoadedComponent::from_bytes(&runtime, &bytes, path)?.from_cache()
        };
        let state = if from_cache {
            "already cached"
        } else {
            "compiled"
        };
        // Report an entry only once it is there and authentic.
        let verified = if core_module {
            cache.verify_module_entry(runtime.engine(), &bytes)
        } else {
            cache.verify_entry(runtime.engine(), &bytes)
        };
        match verified {
            Ok(entry) => outln!(
                "{}: {state} in {:.1?} -> {}",
                path.display(),
                started.elapsed(),
                entry.display()
            )?,
            Err(error) => {
                all_written = false;
                errln!(
                    "error: {}: compiled, but not cached: {:#}",
                    path.display(),
                    anyhow::Error::from(error)
                );
            }
        }
    }
    Ok(if all_written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
