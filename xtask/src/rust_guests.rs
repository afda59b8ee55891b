//! The Rust guests: one cargo build of the `guest-rust/` workspace for `wasm32-wasip2`,
//! whose linker already emits components, then a copy of each member's component into
//! `target/guests/rust-<package>.wasm`. The `guest-wasip1/` workspace, preview1 programs
//! (core modules) for `witplug run`, is built the same way for `wasm32-wasip1`.

use std::fs;
use std::path::Path;

use anyhow::Context as _;

use crate::toolchain::{WASIP1_TARGET, WASM_TARGET};
use crate::util::{self, Paths, Step};

/// Builds every Rust guest; cargo is incremental, so this is quick when nothing changed.
pub(crate) fn build(paths: &Paths, jobs: Option<u32>) -> anyhow::Result<()> {
    // The HTTP handlers bind against target/http-wit/.
    crate::http_wit::prepare(paths)?;
    build_workspace(paths, "guest-rust", WASM_TARGET, "rust guests", jobs)?;
    build_workspace(
        paths,
        "guest-wasip1",
        WASIP1_TARGET,
        "preview1 programs",
        jobs,
    )?;
    adapt_preview1_programs(paths)
}

/// Each preview1 program also wrapped in the preview1 command adapter, as
/// `rust-<package>-adapted.wasm`: the same program as a `wasi:cli/command` component, to
/// test that path (exit statuses, deadlines) against the direct one.
fn adapt_preview1_programs(paths: &Paths) -> anyhow::Result<()> {
    let workspace = paths.root.join("guest-wasip1");
    let step = Step::start("preview1 programs", "wrapping in the command adapter");
    let programs = components(&workspace)?;
    for (_, name) in &programs {
        let from = paths.guests.join(name);
        let mut module = fs::read(&from)
            .with_context(|| format!("{name}: cannot read {}", util::shown(paths, &from)))?;
        let component = crate::go_guests::encode_component(
            &mut module,
            None,
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        )
        .with_context(|| format!("{name}: wrapping in the command adapter"))?;
        let adapted = name.replace(".wasm", "-adapted.wasm");
        util::write_if_changed(&paths.guests.join(&adapted), &component)
            .with_context(|| format!("{adapted}: write"))?;
    }
    step.done(&format!("{} components", programs.len()));
    Ok(())
}

fn build_workspace(
    paths: &Paths,
    folder: &str,
    target: &str,
    what: &str,
    jobs: Option<u32>,
) -> anyhow::Result<()> {
    let workspace = paths.root.join(folder);
    // An explicit target dir, so that the artifacts are where we copy them from even when
    // CARGO_TARGET_DIR or build.target-dir is set.
    let target_dir = workspace.join("target");

    let step = Step::start(what, "cargo build");
    let mut cmd = util::cargo();
    cmd.args(["build", "--release", "--workspace", "--quiet"])
        .args(["--target", target])
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--color", util::color_choice()]);
    if let Some(jobs) = jobs {
        cmd.arg(format!("--jobs={jobs}"));
    }
    let output =
        util::run_captured(&mut cmd).with_context(|| format!("cannot build the {what}"))?;
    // With `--quiet`, whatever cargo printed is warnings: show them.
    let warnings = String::from_utf8_lossy(&output.stderr);
    if !warnings.trim().is_empty() {
        step.println(warnings.trim_end());
    }

    step.set("copying components");
    let guests = components(&workspace)?;
    let built = target_dir.join(target).join("release");
    let mut updated = 0;
    for (artifact, name) in &guests {
        let from = built.join(artifact);
        let to = paths.guests.join(name);
        let bytes = fs::read(&from)
            .with_context(|| format!("{name}: cannot read {}", util::shown(paths, &from)))?;
        if util::write_if_changed(&to, &bytes).with_context(|| format!("{name}: copy"))? {
            updated += 1;
        }
    }
    step.done(&format!("{} files, {updated} updated", guests.len()));
    Ok(())
}

/// The components the guest workspace builds, from `cargo metadata`: for each member, the
/// file cargo writes and its name in `target/guests/`, `rust-<package>.wasm`.
fn components(workspace: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let output = util::run_captured(
        util::cargo()
            .args([
                "metadata",
                "--format-version=1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(workspace.join("Cargo.toml")),
    )?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cannot parse `cargo metadata`")?;
    let mut components = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"]
            .as_str()
            .context("a package without a name")?;
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds = target["kind"].as_array().into_iter().flatten();
            let kinds: Vec<&str> = kinds.filter_map(|k| k.as_str()).collect();
            let target_name = target["name"].as_str().unwrap_or(name);
            // A library's file takes `_` for `-`; a binary's keeps its name.
            let file = if kinds.contains(&"cdylib") {
                target_name.replace('-', "_")
            } else if kinds.contains(&"bin") {
                target_name.to_owned()
            } else {
                continue;
            };
            components.push((format!("{file}.wasm"), format!("rust-{name}.wasm")));
        }
    }
    components.sort();
    Ok(components)
}
