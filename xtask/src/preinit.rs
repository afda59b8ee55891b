//! Pre-initialised copies of Go guests: `target/guests/<guest>-preinit.wasm`, made by
//! `witplug preinit` (the host CLI, built by `host_cli`), so that their instances start
//! from a snapshot taken after the Go runtime's start-up instead of running it again.
//!
//! Only guests that do not depend on what the snapshot freezes are listed (see
//! `host/witplug/src/preinit.rs`): no environment, no files, no stdout/stderr.
//!
//! Like the Go guests, each output has a stamp next to it: a hash of the input component,
//! the init call and the snapshotting code's version, and of the output.

use std::fs;
use std::path::Path;

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};

use crate::go_guests::{is_up_to_date, record_built};
use crate::host_cli;
use crate::util::{self, Paths, Step};

/// Bump when this step changes in a way that changes its outputs.
const STAMP_FORMAT: &str = "witplug-preinit-1";

/// The guests to pre-initialise (built component names) and their init calls: an export
/// without side effects.
const GUESTS: [(&str, &str); 1] = [("go-email-normalizer", "describe()")];

/// The crates whose versions decide what a snapshot looks like.
const SNAPSHOT_CRATES: [&str; 2] = ["wasmtime", "wasmtime-wizer"];

/// The host sources that write a snapshot, relative to the workspace root.
const SNAPSHOT_SOURCES: [&str; 2] = [
    "host/witplug/src/preinit.rs",
    "host/witplug/src/data_segments.rs",
];

/// Pre-initialises every listed guest whose copy is not up to date. Runs after the Go
/// guests are built.
pub(crate) fn build(paths: &Paths, jobs: Option<u32>) -> anyhow::Result<()> {
    for (guest, init_call) in GUESTS {
        preinit(paths, guest, init_call, jobs)
            .with_context(|| format!("cannot pre-initialise the guest `{guest}`"))?;
    }
    Ok(())
}

fn preinit(paths: &Paths, guest: &str, init_call: &str, jobs: Option<u32>) -> anyhow::Result<()> {
    let name = format!("{guest}-preinit");
    let input = paths.guests.join(format!("{guest}.wasm"));
    let out = paths.guests.join(format!("{name}.wasm"));
    let stamp_path = paths.guests.join(format!("{name}.wasm.stamp"));

    let step = Step::start(&name, "hashing inputs");
    let inputs = hash_inputs(paths, &input, init_call)?;
    if is_up_to_date(&out, &stamp_path, &inputs) {
        step.up_to_date();
        return Ok(());
    }

    // The CLI build shows cargo's own progress; the spinner would draw over it.
    drop(step);
    let witplug = host_cli::build(paths, jobs)?;
    let step = Step::start(&name, "witplug preinit");
    let mut cmd = host_cli::command(paths, &witplug);
    cmd.arg("preinit")
        .arg(&input)
        .arg(&out)
        .args(["--init", init_call]);
    util::run_captured(&mut cmd)?;

    let output = fs::read(&out).with_context(|| format!("cannot read {}", out.display()))?;
    record_built(paths, step, &out, &stamp_path, &inputs, &output)
}

/// A hash of what the snapshot is made from.
fn hash_inputs(paths: &Paths, input: &Path, init_call: &str) -> anyhow::Result<String> {
    let component = fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let lock_path = paths.root.join("Cargo.lock");
    let lock = fs::read_to_string(&lock_path)
        .with_context(|| format!("cannot read {}", lock_path.display()))?;
    let mut hasher = Sha256::new();
    let mut add = |label: &str, bytes: &[u8]| {
        for part in [label.as_bytes(), bytes] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    };
    add("format", STAMP_FORMAT.as_bytes());
    add("init", init_call.as_bytes());
    add("component", &component);
    // The host's snapshotting code: a change to it (e.g. how segments are compacted)
    // makes a new snapshot.
    for source in SNAPSHOT_SOURCES {
        let path = paths.root.join(source);
        let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        add(source, &text);
    }
    for krate in SNAPSHOT_CRATES {
        add(
            krate,
            locked_version(&lock, krate).unwrap_or("?").as_bytes(),
        );
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The version of `krate` in the text of `Cargo.lock`.
fn locked_version<'a>(lock: &'a str, krate: &str) -> Option<&'a str> {
    let name_line = format!("name = \"{krate}\"");
    let mut lines = lock.lines();
    lines.find(|line| *line == name_line)?;
    lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_lock_file() {
        let lock = "[[package]]\nname = \"wasmtime\"\nversion = \"48.0.8\"\nsource = \"x\"\n\n\
                    [[package]]\nname = \"wasmtime-wizer\"\nversion = \"48.0.1\"\n";
        assert_eq!(locked_version(lock, "wasmtime"), Some("48.0.8"));
        assert_eq!(locked_version(lock, "wasmtime-wizer"), Some("48.0.1"));
        assert_eq!(locked_version(lock, "wasmtime-wasi"), None);
    }

    #[test]
    fn the_snapshot_inputs_exist() -> anyhow::Result<()> {
        let root = Paths::new().root;
        let lock = fs::read_to_string(root.join("Cargo.lock"))?;
        for source in SNAPSHOT_SOURCES {
            assert!(root.join(source).is_file(), "{source}");
        }
        for krate in SNAPSHOT_CRATES {
            assert!(locked_version(&lock, krate).is_some(), "{krate}");
        }
        Ok(())
    }
}
