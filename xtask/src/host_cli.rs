//! The host's `witplug` binary, which the preinit step and the demo run.
//!
//! Built with a plain `cargo build` whose progress is shown (the first build compiles
//! wasmtime, for minutes), then run directly: `cargo run --quiet` would print nothing for
//! all that time. The build uses the same profile and features as `cargo test`, so the
//! tests that follow reuse its wasmtime instead of compiling another.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::util::{self, Paths};

/// Builds `target/debug/witplug` (a no-op when it is up to date) and returns its path.
pub(crate) fn build(paths: &Paths, jobs: Option<u32>) -> anyhow::Result<PathBuf> {
    let binary = paths.target.join("debug").join("witplug");
    let mut cmd = util::cargo();
    cmd.args(["build", "--package", "witplug-cli", "--bin", "witplug"])
        .current_dir(&paths.root);
    if let Some(jobs) = jobs {
        cmd.arg(format!("--jobs={jobs}"));
    }
    if !binary.exists() {
        eprintln!(
            "{:>12} the witplug CLI: the first build compiles wasmtime (about 12 minutes on 2 cores)",
            "Building"
        );
    }
    util::run_inherited(&mut cmd).context("cannot build the witplug CLI")?;
    Ok(binary)
}

/// A command running the built CLI from the project root.
pub(crate) fn command(paths: &Paths, binary: &Path) -> Command {
    let mut cmd = Command::new(binary);
    cmd.current_dir(&paths.root);
    cmd
}
