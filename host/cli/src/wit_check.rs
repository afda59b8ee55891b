//! `witplug wit-check`: whether two versions of a WIT package still fit each other's
//! plugins and hosts (the comparison itself is `witplug-wit`'s).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use witplug_wit::{Direction, WitSource};

use crate::output::{errln, outln};
use crate::policy_args::USAGE_EXIT;

/// Check two versions of a WIT package for breaking changes, world by world.
///
/// For each world it says whether plugins built against OLD still work on a host of NEW
/// (what a host upgrade must keep), and whether plugins built against NEW work on a host
/// of OLD, naming every change that breaks either: a removed or added function, a changed
/// parameter or result, a field or case added, removed or reordered. OLD and NEW are WIT
/// folders, .wit files, or .wasm files (a component, or a WIT package encoded as wasm).
/// The verdict is checked against the component model's own type check where both sides
/// are WIT packages of one name.
///
/// Exits 1 when plugins of OLD break on hosts of NEW (with --both-ways: or the other way
/// round; with a component: when it does not fit the package's world), 2 when an input
/// cannot be read.
///
/// Examples:
///   witplug wit-check wit-0.1.0/ wit/
///   witplug wit-check wit/ my-plugin.wasm --world transform-plugin --both-ways
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct WitCheckArgs {
    /// The earlier version: a WIT folder, a .wit file or a .wasm file.
    old: PathBuf,

    /// The later version.
    new: PathBuf,

    /// Only this world (needed when one side is a component and the other has several).
    #[arg(long, value_name = "NAME")]
    world: Option<String>,

    /// Also fail when plugins of NEW break on hosts of OLD: for an edit that must change
    /// nothing either way, such as one to a released version.
    #[arg(long)]
    both_ways: bool,
}

pub fn run(args: WitCheckArgs) -> anyhow::Result<ExitCode> {
    let loaded = WitSource::load(&args.old).and_then(|old| {
        let new = WitSource::load(&args.new)?;
        let component = old.is_component() || new.is_component();
        witplug_wit::check(&old, &new, args.world.as_deref()).map(|report| (report, component))
    });
    let (report, component) = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            errln!("witplug: {error}");
            return Ok(ExitCode::from(USAGE_EXIT));
        }
    };
    outln!("{}", report.to_string().trim_end())?;
    let mut broken = !report.holds(Direction::OldPluginsOnNewHosts);
    // With a component, the one direction checked is the component's, whichever it is.
    if args.both_ways || component {
        broken |= !report.holds(Direction::NewPluginsOnOldHosts);
    }
    Ok(if broken {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
