//! The WIT of the HTTP handlers, `target/http-wit/`: our world (`wit-http/handler.wit`)
//! and, in `deps/`, the WASI packages it uses, copied from the registry sources of
//! wasmtime-wasi-http 48 (`wit/deps/*.wit`: wasi:http, io, clocks, random, cli, filesystem,
//! sockets) and wasmtime-wasi-config 48 (`wit/deps/config/`: wasi:config), so that the
//! guests bind against exactly what the host implements. Both crates are dependencies of
//! host/witplug-http and are found with `cargo metadata`.
//!
//! A stamp next to the directory (`target/http-wit.stamp`) hashes the inputs that decide
//! its contents (the lock file, which pins the crates' versions, and our world): when it
//! matches, nothing is done, not even `cargo metadata`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::go_guests::crate_source;
use crate::util::{self, Paths};

/// The major version of wasmtime whose WASI WIT the handlers use.
const WASMTIME_MAJOR: &str = "48";

/// Bump when this step changes in a way that changes its output.
const STAMP_FORMAT: &str = "witplug-http-wit-1";

/// Writes `target/http-wit/` unless it is up to date, and returns its path.
pub(crate) fn prepare(paths: &Paths) -> anyhow::Result<PathBuf> {
    let out = paths.target.join("http-wit");
    let stamp_path = paths.target.join("http-wit.stamp");
    let world_path = paths.root.join("wit-http").join("handler.wit");
    let world = fs::read(&world_path)
        .with_context(|| format!("cannot read {}", util::shown(paths, &world_path)))?;
    let lock_path = paths.root.join("Cargo.lock");
    let lock = fs::read(&lock_path).context("cannot read Cargo.lock")?;

    let mut hash = Sha256::new();
    for part in [STAMP_FORMAT.as_bytes(), &lock, &world] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let stamp = format!("{:x}\n", hash.finalize());
    if fs::read_to_string(&stamp_path).is_ok_and(|old| old == stamp)
        && out.join("handler.wit").is_file()
    {
        return Ok(out);
    }

    let files = gather(paths, world)?;
    for (relative, contents) in &files {
        util::write_if_changed(&out.join(relative), contents)?;
    }
    // Whatever an older version of the crates or of this step left behind.
    for relative in util::files_under(&out)? {
        if !files.contains_key(&relative) {
            let stale = out.join(&relative);
            fs::remove_file(&stale)
                .with_context(|| format!("cannot remove {}", stale.display()))?;
        }
    }
    util::write_if_changed(&stamp_path, stamp.as_bytes())?;
    Ok(out)
}

/// Every file of the directory, by path relative to it.
fn gather(paths: &Paths, world: Vec<u8>) -> anyhow::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    files.insert(PathBuf::from("handler.wit"), world);
    for krate in ["wasmtime-wasi-http", "wasmtime-wasi-config"] {
        let deps = crate_source(paths, krate, WASMTIME_MAJOR)?
            .join("wit")
            .join("deps");
        let found =
            util::files_under(&deps).with_context(|| format!("{krate} has no wit/deps/"))?;
        let mut any = false;
        for relative in found {
            if relative.extension().is_none_or(|e| e != "wit") {
                continue;
            }
            let contents = fs::read(deps.join(&relative))
                .with_context(|| format!("cannot read {}", deps.join(&relative).display()))?;
            let to = Path::new("deps").join(&relative);
            if files.insert(to.clone(), contents).is_some() {
                anyhow::bail!("{krate}: {} is shipped twice", to.display());
            }
            any = true;
        }
        if !any {
            anyhow::bail!("{krate}: no .wit files under {}", deps.display());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use wit_parser::{Resolve, WorldItem, WorldKey};

    use super::*;

    fn interface_names(resolve: &Resolve, items: &[&WorldItem]) -> Vec<String> {
        items
            .iter()
            .filter_map(|item| match item {
                WorldItem::Interface { id, .. } => resolve.id_of(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_handler_world_resolves() -> anyhow::Result<()> {
        let paths = Paths::new();
        let dir = prepare(&paths)?;
        // A second call finds it up to date.
        assert_eq!(prepare(&paths)?, dir);

        let mut resolve = Resolve::default();
        let (package, _) = resolve.push_dir(&dir)?;
        let world = resolve.select_world(&[package], Some("handler"))?;
        let world = &resolve.worlds[world];
        let imports: Vec<&WorldItem> = world.imports.values().collect();
        let exports: Vec<&WorldItem> = world.exports.values().collect();
        let imports = interface_names(&resolve, &imports);
        let exports = interface_names(&resolve, &exports);
        for wanted in [
            "wasi:config/store@0.2.0-rc.1",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:http/types@0.2.12",
            "wasi:clocks/monotonic-clock@0.2.12",
            "wasi:cli/stdout@0.2.12",
        ] {
            assert!(
                imports.iter().any(|i| i == wanted),
                "{wanted} in {imports:?}"
            );
        }
        assert_eq!(exports, ["wasi:http/incoming-handler@0.2.12"]);
        assert!(
            world
                .exports
                .keys()
                .all(|key| matches!(key, WorldKey::Interface(_)))
        );
        Ok(())
    }
}
