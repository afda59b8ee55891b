//! WIT packages as data, for the questions a framework author asks when a world changes.
//!
//! [`check`] compares two versions of a package (or the worlds of two components) and says,
//! for each world, whether plugins built against the old version still fit a host of the
//! new one, and whether plugins built against the new version fit a host of the old one,
//! naming every change that breaks either. It backs `witplug wit-check` and the check of
//! witplug's own released WIT in `cargo xtask test`.
//!
//! The verdict follows the component model's own type check: where both sides are WIT
//! packages, `wit-component`'s semver check (which lets wasmparser type-check a component
//! of one world against the other) runs too, and anything it refuses that the named
//! comparison missed is reported in its words.

mod compat;
mod source;

pub use compat::{Break, Direction, Report, WorldChange, WorldReport, check};
pub use source::WitSource;

use std::path::PathBuf;

/// What went wrong reading or pairing WIT.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("could not read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not valid WIT, or a `.wasm` file that is neither a component nor a WIT package.
    #[error("{} is not a WIT package or a component: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{} has no world to compare", path.display())]
    NoWorld { path: PathBuf },
    #[error("{} has no world named `{name}` (it has: {})", path.display(), available.join(", "))]
    NoSuchWorld {
        path: PathBuf,
        name: String,
        available: Vec<String>,
    },
    #[error(
        "{} and {} are both components: compare a component (a plugin) with a WIT package (what hosts offer)",
        old.display(), new.display()
    )]
    TwoComponents { old: PathBuf, new: PathBuf },
    /// A component compared with a package of several worlds: which one is meant?
    #[error(
        "{} is a component and {} has several worlds ({}): name the one to compare with `--world`",
        component.display(), package.display(), available.join(", ")
    )]
    WhichWorld {
        component: PathBuf,
        package: PathBuf,
        available: Vec<String>,
    },
}
