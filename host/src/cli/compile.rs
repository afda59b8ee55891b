//! `witplug compile`: compile components ahead of time into the compile cache.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::output::outln;
use anyhow::Context as _;
use clap::Args;
use witplug::{CompileCache, LoadedComponent, Runtime, RuntimeConfig};

/// Compile components ahead of time, so that later loads skip the compiler.
///
/// Entries are keyed by the component's hash and the engine configuration, and checked
/// before use; one cache directory can be shared by several processes.
///
/// Examples:
///   witplug compile target/guests/*.wasm
///   witplug compile plugin.wasm --cache-dir /var/cache/witplug
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct CompileArgs {
    /// Component files (.wasm).
    #[arg(required = true)]
    components: Vec<PathBuf>,

    /// Cache directory [default: $WITPLUG_CACHE_DIR, $XDG_CACHE_HOME/witplug or
    /// ~/.cache/witplug].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: CompileArgs) -> anyhow::Result<ExitCode> {
    let cache_dir = args
        .cache_dir
        .or_else(CompileCache::default_dir)
        .context("no cache directory: set --cache-dir, WITPLUG_CACHE_DIR or HOME")?;
    let runtime = Runtime::with_config(RuntimeConfig {
        cache_dir: Some(cache_dir),
        ..RuntimeConfig::default()
    })?;
    let cache = runtime
        .cache()
        .context("the runtime was created without its cache")?;
    for path in &args.components {
        let started = Instant::now();
        let component = LoadedComponent::from_file(&runtime, path)?;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let state = if component.from_cache() {
            "already cached"
        } else {
            "compiled"
        };
        outln!(
            "{}: {state} in {:.1?} -> {}",
            path.display(),
            started.elapsed(),
            cache.entry_path(runtime.engine(), &bytes).display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
