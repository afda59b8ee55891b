//! `cargo xtask build`: checks the toolchains, then builds every guest into `target/guests/`.

use clap::Args;

use crate::util::Paths;
use crate::{go_guests, preinit, rust_guests, toolchain};

#[derive(Args, Debug, Default)]
pub(crate) struct BuildArgs {
    /// Build only the Rust guests.
    #[arg(long, conflicts_with = "go_only")]
    pub(crate) rust_only: bool,
    /// Build only the Go guests.
    #[arg(long)]
    pub(crate) go_only: bool,
    /// Parallel jobs for cargo and go (default: as many as there are cores).
    #[arg(short, long, value_name = "N")]
    pub(crate) jobs: Option<u32>,
}

pub(crate) fn run(args: &BuildArgs) -> anyhow::Result<()> {
    let paths = Paths::new();
    let rust = !args.go_only;
    let go = !args.rust_only;

    // Check every toolchain first, so a missing one is reported before a long build.
    if rust {
        toolchain::check_rust(&paths.root.join("guest-rust"))?;
    }
    let go_toolchain = if go {
        Some(toolchain::check_go()?)
    } else {
        None
    };

    if rust {
        rust_guests::build(&paths, args.jobs)?;
    }
    if let Some(go_toolchain) = go_toolchain {
        go_guests::build(&paths, &go_toolchain, args.jobs)?;
        preinit::build(&paths, args.jobs)?;
    }
    Ok(())
}
