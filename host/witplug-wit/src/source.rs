//! Reading one side of a comparison: a WIT folder, a `.wit` file, or a `.wasm` file that is
//! a component or a binary-encoded WIT package.

use std::path::{Path, PathBuf};

use wit_parser::{PackageId, Resolve, WorldId};

use crate::Error;

/// One side of a comparison, resolved.
#[derive(Clone)]
pub struct WitSource {
    pub(crate) resolve: Resolve,
    pub(crate) main: Main,
    pub(crate) path: PathBuf,
}

#[derive(Clone, Copy)]
pub(crate) enum Main {
    /// A package: its worlds are compared by name with the other side's.
    Package(PackageId),
    /// A component: the one world it implements.
    Component(WorldId),
}

impl WitSource {
    /// Reads `path`: a folder of `.wit` files (with a `deps/` folder if it needs one), a
    /// `.wit` file, or a `.wasm` component or WIT package.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref().to_owned();
        // wit-parser reports with anyhow: `{:#}` gives the whole chain on one line.
        let invalid = |error: &dyn std::fmt::Display| Error::Invalid {
            path: path.clone(),
            message: format!("{error:#}"),
        };
        let metadata = std::fs::metadata(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        let mut resolve = Resolve::default();
        let main = if metadata.is_dir() {
            let (package, _) = resolve.push_dir(&path).map_err(|e| invalid(&e))?;
            Main::Package(package)
        } else if path.extension().is_some_and(|ext| ext == "wasm") {
            let bytes = std::fs::read(&path).map_err(|source| Error::Read {
                path: path.clone(),
                source,
            })?;
            match wit_component::decode(&bytes).map_err(|e| invalid(&e))? {
                wit_component::DecodedWasm::WitPackage(decoded, package) => {
                    resolve = decoded;
                    Main::Package(package)
                }
                wit_component::DecodedWasm::Component(decoded, world) => {
                    resolve = decoded;
                    Main::Component(world)
                }
            }
        } else {
            let package = resolve.push_file(&path).map_err(|e| invalid(&e))?;
            Main::Package(package)
        };
        let source = Self {
            resolve,
            main,
            path,
        };
        if source.worlds().is_empty() {
            return Err(Error::NoWorld { path: source.path });
        }
        Ok(source)
    }

    /// Where it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The package's name and version, e.g. `witplug:plugin@0.1.0`; `component` for one.
    pub fn name(&self) -> String {
        match self.main {
            Main::Package(package) => self.resolve.packages[package].name.to_string(),
            Main::Component(_) => "component".to_owned(),
        }
    }

    /// Its worlds and their names, in definition order.
    pub(crate) fn worlds(&self) -> Vec<(String, WorldId)> {
        match self.main {
            Main::Package(package) => self.resolve.packages[package]
                .worlds
                .iter()
                .map(|(name, world)| (name.clone(), *world))
                .collect(),
            Main::Component(world) => vec![(self.resolve.worlds[world].name.clone(), world)],
        }
    }

    /// Whether it is a component (a plugin) rather than a WIT package.
    pub fn is_component(&self) -> bool {
        matches!(self.main, Main::Component(_))
    }
}
