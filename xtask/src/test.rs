//! `cargo xtask test`: builds the guests, then runs the workspace tests (which load them),
//! the Rust guests' unit tests, the Go guests' unit tests, the check of the released WIT
//! (`wit/released.toml`) and the lints (rustfmt, clippy), stopping at the first failure. Lints run here, not only in CI, so that a green local
//! run means a green CI.

use std::process::Command;

use anyhow::Context as _;
use clap::Args;

use crate::build::{self, BuildArgs};
use crate::util::{self, Paths};
use crate::{go_guests, released_wit};

#[derive(Args, Debug)]
pub(crate) struct TestArgs {
    /// Parallel jobs for cargo and go (default: as many as there are cores).
    #[arg(short, long, value_name = "N")]
    jobs: Option<u32>,
    /// Extra arguments for `cargo test --workspace`, e.g. a test name filter.
    #[arg(last = true, value_name = "CARGO_TEST_ARGS")]
    cargo_args: Vec<String>,
}

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<()> {
    let paths = Paths::new();
    build::run(&BuildArgs {
        jobs: args.jobs,
        ..BuildArgs::default()
    })?;

    heading("workspace tests");
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace"]).current_dir(&paths.root);
    jobs_arg(&mut cmd, args.jobs);
    util::run_inherited(cmd.args(&args.cargo_args)).context("workspace tests failed")?;

    // The guest workspace may default to the wasm target: its unit tests run on the host's.
    heading("Rust guest unit tests");
    let mut cmd = util::cargo();
    cmd.args(["test", "--workspace", "--target"])
        .arg(host_triple()?)
        .arg("--manifest-path")
        .arg(paths.root.join("guest-rust/Cargo.toml"))
        .current_dir(&paths.root);
    jobs_arg(&mut cmd, args.jobs);
    util::run_inherited(&mut cmd).context("Rust guest unit tests failed")?;

    heading("Go guest unit tests");
    go_guests::unit_tests(&paths)?;

    heading("released WIT");
    for checked in released_wit::check(&paths)? {
        eprintln!("unchanged either way: {checked}");
    }

    heading("lints");
    lint(&paths, args.jobs)
}

/// `cargo fmt --check` over both workspaces, `clippy -D warnings` over the root one.
fn lint(paths: &Paths, jobs: Option<u32>) -> anyhow::Result<()> {
    for manifest in [
        "Cargo.toml",
        "guest-rust/Cargo.toml",
        "guest-wasip1/Cargo.toml",
    ] {
        let mut cmd = util::cargo();
        cmd.args(["fmt", "--all", "--check", "--manifest-path"])
            .arg(paths.root.join(manifest))
            .current_dir(&paths.root);
        util::run_inherited(&mut cmd)
            .with_context(|| format!("{manifest} is not formatted: run `cargo fmt --all`"))?;
    }
    let mut cmd = util::cargo();
    cmd.args(["clippy", "--workspace", "--all-targets"])
        .current_dir(&paths.root);
    jobs_arg(&mut cmd, jobs);
    cmd.args(["--", "-D", "warnings"]);
    util::run_inherited(&mut cmd).context("clippy found problems")
}

fn heading(title: &str) {
    eprintln!("\n=== {title} ===");
}

fn jobs_arg(cmd: &mut Command, jobs: Option<u32>) {
    if let Some(jobs) = jobs {
        cmd.arg(format!("--jobs={jobs}"));
    }
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> anyhow::Result<String> {
    let output = util::run_captured(Command::new("rustc").arg("-vV"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(str::to_owned)
        .context("`rustc -vV` names no host")
}
