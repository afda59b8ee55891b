//! The Go guests of `guest-tinygo/`, built with mainline Go (or TinyGo, when it is on PATH)
//! and turned into components by wit-component with a WASI preview1 adapter.
//!
//! `email-normalizer` (and `hostile`, a test-only attacker) implements the
//! `transform-plugin` world (`email-normalizer-v0-2`: the same rule on its 0.2.0 version,
//! from `wit/v0.2.0/`):
//! 1. `wit/` is parsed into a `Resolve`, and wit-bindgen-go writes the bindings into
//!    `target/go-build/email-normalizer/`: Go module `wit_component`, whose `package main`
//!    (`wit_exports.go`) calls the exported functions in the packages
//!    `export_witplug_plugin_<interface>`.
//! 2. The hand-written sources are copied over the generated tree, so that they provide
//!    those export packages (`go.mod` excepted: the generated one is used).
//! 3. `go.mod` gets a `replace` of `go.bytecodealliance.org/pkg` by the copy shipped in the
//!    wit-bindgen-go crate, as the Go module proxy cannot be reached; and the `require` and
//!    `replace` of every local module that the guest's own `go.mod` replaces by a directory
//!    (`replace M => ../DIR`), with that directory made absolute.
//! 4. `go build -buildmode=c-shared` gives a core module; wit-component embeds the world in
//!    it and encodes a component with the reactor adapter.
//!
//! The HTTP handlers (`http-hello`, `http-auth`, `http-geo`) go through the same steps with
//! the `handler` world of `target/http-wit/` (`crate::http_wit::prepare`) instead of `wit/`;
//! their export package is `export_wasi_http_incoming_handler`. The bindings-side helpers
//! they share live once in `http-hello/wasihttp/` and are copied into each module (step 2).
//! What their `rule` packages share (JSON writing, test helpers) is the local module
//! `http-common/` (`witplug.dev/http-common`), which they reach through a `replace` in
//! their `go.mod` (step 3): a copied package could not be imported by native `go test`,
//! which runs in the source directory, where only a module can be found (offline: a
//! directory replacement needs neither the proxy nor a go.sum entry).
//!
//! `filetool` is a plain Go `main`, built in place and encoded with the command adapter.
//!
//! Each output has a stamp next to it (`*.wasm.stamp`): a hash of every input and of the
//! output. When it matches, the guest is up to date and is not rebuilt.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::Files;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{Resolve, WorldId};

use crate::toolchain::GoToolchain;
use crate::util::{self, Paths, Step};

/// The pinned wit-bindgen-go (see xtask/Cargo.toml), whose crate ships the Go runtime
/// package that its bindings import.
const WIT_BINDGEN_GO_VERSION: &str = "0.63.0";

/// The Go module that the generated bindings import.
const GO_PKG_MODULE: &str = "go.bytecodealliance.org/pkg";

/// Bump when this pipeline changes in a way that changes its outputs.
const STAMP_FORMAT: &str = "witplug-go-guest-1";

/// One Go guest: a directory of `guest-tinygo/` and how it becomes a component.
struct Guest {
    dir: &'static str,
    kind: Kind,
    /// The packages whose tests run natively: those that import no generated bindings.
    /// Empty when every package imports them (nothing to test natively).
    native_tests: &'static [&'static str],
    /// Packages of other guests copied into this one's module, as `DIR/PACKAGE` under
    /// `guest-tinygo/` (it imports them as `wit_component/PACKAGE`). Reactors only.
    shared: &'static [&'static str],
}

enum Kind {
    /// Implements a WIT world through generated bindings; encoded with the reactor adapter.
    Reactor { wit: Wit, world: &'static str },
    /// A plain `main`; encoded with the command adapter as a `wasi:cli/command`.
    Command,
}

/// Where a reactor's world is defined.
#[derive(Clone, Copy)]
enum Wit {
    /// The repository's `wit/` (`witplug:plugin@0.1.0`).
    Repo,
    /// `wit/v0.2.0/` (`witplug:plugin@0.2.0`).
    V0_2_0,
    /// `target/http-wit/`, the HTTP handlers' world with its WASI deps (see http_wit.rs).
    Http,
    /// `host/witplug/benches/shapes-wit/`, the candidate record shapes of the bench.
    Shapes,
}

impl Wit {
    /// The directory to parse, prepared first when it is generated.
    fn dir(self, paths: &Paths) -> anyhow::Result<PathBuf> {
        match self {
            Wit::Repo => Ok(paths.root.join("wit")),
            Wit::V0_2_0 => Ok(paths.root.join("wit/v0.2.0")),
            Wit::Http => crate::http_wit::prepare(paths),
            Wit::Shapes => Ok(paths.root.join("host/witplug/benches/shapes-wit")),
        }
    }
}

/// The world of the HTTP handlers.
const HTTP_HANDLER: Kind = Kind::Reactor {
    wit: Wit::Http,
    world: "handler",
};

/// The bindings-side helpers every HTTP handler shares.
const HTTP_SHARED: &[&str] = &["http-hello/wasihttp"];

const GUESTS: [Guest; 8] = [
    Guest {
        dir: "email-normalizer",
        kind: Kind::Reactor {
            wit: Wit::Repo,
            world: "transform-plugin",
        },
        native_tests: &["./rule/..."],
        shared: &[],
    },
    // The same rule on transform@0.2.0: its `rule` package is email-normalizer's.
    Guest {
        dir: "email-normalizer-v0-2",
        kind: Kind::Reactor {
            wit: Wit::V0_2_0,
            world: "transform-plugin",
        },
        native_tests: &[],
        shared: &["email-normalizer/rule"],
    },
    Guest {
        dir: "filetool",
        kind: Kind::Command,
        native_tests: &["./..."],
        shared: &[],
    },
    Guest {
        dir: "hostile",
        kind: Kind::Reactor {
            wit: Wit::Repo,
            world: "transform-plugin",
        },
        native_tests: &[],
        shared: &[],
    },
    Guest {
        dir: "shapes",
        kind: Kind::Reactor {
            wit: Wit::Shapes,
            world: "shapes",
        },
        native_tests: &[],
        shared: &[],
    },
    Guest {
        dir: "http-hello",
        kind: HTTP_HANDLER,
        native_tests: &[],
        shared: &[],
    },
    Guest {
        dir: "http-auth",
        kind: HTTP_HANDLER,
        native_tests: &["./rule/..."],
        shared: HTTP_SHARED,
    },
    Guest {
        dir: "http-geo",
        kind: HTTP_HANDLER,
        native_tests: &["./rule/..."],
        shared: HTTP_SHARED,
    },
];

impl Kind {
    fn adapter(&self) -> &'static [u8] {
        match self {
            Kind::Reactor { .. } => WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            Kind::Command => WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        }
    }
}

/// The compiler of the core modules: mainline Go, or TinyGo when it is on PATH.
///
/// NOTE: the TinyGo path is untested (TinyGo cannot be installed on the project's
/// machines) and kept cheap: only the compile command differs.
struct Compiler {
    tinygo: bool,
    /// `go1.27.3`, or TinyGo's version line; part of the stamp.
    version: String,
}

impl Compiler {
    fn pick(toolchain: &GoToolchain) -> Compiler {
        match &toolchain.tinygo_version {
            Some(version) => Compiler {
                tinygo: true,
                version: version.clone(),
            },
            None => Compiler {
                tinygo: false,
                version: toolchain.go_version.clone(),
            },
        }
    }

    fn name(&self) -> &'static str {
        if self.tinygo { "tinygo" } else { "go" }
    }

    /// Compiles the Go main package in `dir` into the core module `out`.
    fn build_core(
        &self,
        paths: &Paths,
        dir: &Path,
        out: &Path,
        kind: &Kind,
        jobs: Option<u32>,
    ) -> anyhow::Result<()> {
        let reactor = matches!(kind, Kind::Reactor { .. });
        let mut cmd = go_command(paths, self.name());
        if self.tinygo {
            // NOTE: untested (see above).
            cmd.args(["build", "-target=wasip1"]);
            if reactor {
                cmd.arg("-buildmode=c-shared");
            }
        } else {
            cmd.env("GOOS", "wasip1")
                .env("GOARCH", "wasm")
                .args(["build", "-trimpath"]);
            if reactor {
                // go.bytecodealliance.org/pkg reaches `runtime.sbrk` through go:linkname,
                // which Go 1.23+ refuses unless told otherwise.
                cmd.args(["-buildmode=c-shared", "-ldflags=-checklinkname=0"]);
            }
            if let Some(jobs) = jobs {
                cmd.arg(format!("-p={jobs}"));
            }
        }
        cmd.arg("-o").arg(out).arg(".").current_dir(dir);
        util::run_captured(&mut cmd)?;
        Ok(())
    }
}

/// A `go` (or `tinygo`) command that works offline and keeps its cache under `target/`.
pub(crate) fn go_command(paths: &Paths, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOWORK", "off")
        .env("GOCACHE", paths.target.join("go-cache"));
    cmd
}

/// Builds every Go guest that is not up to date.
pub(crate) fn build(
    paths: &Paths,
    toolchain: &GoToolchain,
    jobs: Option<u32>,
) -> anyhow::Result<()> {
    let compiler = Compiler::pick(toolchain);
    if compiler.tinygo {
        eprintln!(
            "note: TinyGo found ({}): building the Go guests with it (an untested path)",
            compiler.version
        );
    }
    for guest in &GUESTS {
        build_guest(paths, &compiler, guest, jobs)
            .with_context(|| format!("cannot build the Go guest `{}`", guest.dir))?;
    }
    Ok(())
}

fn build_guest(
    paths: &Paths,
    compiler: &Compiler,
    guest: &Guest,
    jobs: Option<u32>,
) -> anyhow::Result<()> {
    let name = format!("go-{}", guest.dir);
    let src = paths.root.join("guest-tinygo").join(guest.dir);
    let out = paths.guests.join(format!("{name}.wasm"));
    let stamp_path = paths.guests.join(format!("{name}.wasm.stamp"));

    // A command's core module is also kept as it is, `go-<dir>-wasip1.wasm`: the preview1
    // program `witplug run` runs without the adapter.
    let preview1_out = matches!(guest.kind, Kind::Command)
        .then(|| paths.guests.join(format!("{name}-wasip1.wasm")));

    let step = Step::start(&name, "hashing inputs");
    let inputs = hash_inputs(paths, compiler, guest).context("hashing inputs")?;
    if is_up_to_date(&out, &stamp_path, &inputs)
        && preview1_out.as_ref().is_none_or(|path| path.exists())
    {
        step.up_to_date();
        return Ok(());
    }

    let build_dir = paths.target.join("go-build");
    let core = build_dir.join(format!("{}.core.wasm", guest.dir));
    let resolved = match guest.kind {
        Kind::Reactor { wit, world } => {
            step.set("generating bindings");
            let module = build_dir.join(guest.dir);
            let (resolve, world) = prepare_module(paths, guest, &module, &wit.dir(paths)?, world)
                .context("generating the bindings and the Go module")?;
            step.set(&format!("{} build", compiler.name()));
            compiler
                .build_core(paths, &module, &core, &guest.kind, jobs)
                .with_context(|| {
                    format!(
                        "{} build in {} (guest-tinygo/{} plus the bindings)",
                        compiler.name(),
                        util::shown(paths, &module),
                        guest.dir
                    )
                })?;
            Some((resolve, world))
        }
        Kind::Command => {
            step.set(&format!("{} build", compiler.name()));
            compiler
                .build_core(paths, &src, &core, &guest.kind, jobs)
                .with_context(|| format!("{} build", compiler.name()))?;
            None
        }
    };

    step.set("encoding the component");
    let mut module = fs::read(&core).with_context(|| format!("cannot read {}", core.display()))?;
    if let Some(path) = &preview1_out {
        util::write_if_changed(path, &module)?;
    }
    let component = encode_component(&mut module, resolved, guest.kind.adapter())
        .context("encoding the component")?;
    util::write_if_changed(&out, &component)?;
    record_built(paths, step, &out, &stamp_path, &inputs, &component)
}

/// Writes the stamp of `output` (just written to `out`, made from `inputs`) and reports
/// the step done.
pub(crate) fn record_built(
    paths: &Paths,
    step: Step,
    out: &Path,
    stamp_path: &Path,
    inputs: &str,
    output: &[u8],
) -> anyhow::Result<()> {
    fs::write(stamp_path, stamp(inputs, output))
        .with_context(|| format!("cannot write {}", stamp_path.display()))?;
    step.done(&format!(
        "{} ({})",
        util::shown(paths, out),
        util::human_size(output.len() as u64)
    ));
    Ok(())
}

/// Parses the WIT directory `wit` and generates the Go bindings of `world`.
fn generate_bindings(
    paths: &Paths,
    wit: &Path,
    world: &str,
) -> anyhow::Result<(Resolve, WorldId, Files)> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve
        .push_dir(wit)
        .with_context(|| format!("cannot parse {}", util::shown(paths, wit)))?;
    let world = resolve.select_world(&[package], Some(world))?;

    let mut files = Files::default();
    let opts = wit_bindgen_go::Opts {
        // gofmt may or may not be on PATH: keep the output independent of it.
        format: wit_bindgen_go::Format::False,
        // It would print an empty line even without warnings, under the spinner.
        quiet: true,
        ..Default::default()
    };
    opts.build().generate(&mut resolve, world, &mut files)?;
    Ok((resolve, world, files))
}

/// Generates the bindings of `world` (from the WIT directory `wit`) into a fresh `module`
/// directory, copies the guest's hand-written sources and shared packages over them and
/// points `go.mod` at the local runtime package.
fn prepare_module(
    paths: &Paths,
    guest: &Guest,
    module: &Path,
    wit: &Path,
    world: &str,
) -> anyhow::Result<(Resolve, WorldId)> {
    let (resolve, world, files) = generate_bindings(paths, wit, world)?;
    if module.exists() {
        fs::remove_dir_all(module).with_context(|| format!("cannot clear {}", module.display()))?;
    }
    for (name, contents) in files.iter() {
        util::write_if_changed(&module.join(name), contents)?;
    }

    // The hand-written sources provide the `export_*` packages (and any other package);
    // their go.mod only serves native `go test` in the source directory.
    for (from, to) in source_dirs(paths, guest) {
        for relative in util::files_under(&from)? {
            if relative == Path::new("go.mod") || relative == Path::new("go.sum") {
                continue;
            }
            let target = module.join(&to).join(&relative);
            if target.exists() {
                bail!(
                    "{} would overwrite a generated or copied file",
                    from.join(&relative).display()
                );
            }
            let contents = fs::read(from.join(&relative))?;
            util::write_if_changed(&target, &contents)?;
        }
    }

    let go_mod = module.join("go.mod");
    let mut text = fs::read_to_string(&go_mod).context("the bindings have no go.mod")?;
    let pkg = go_pkg_source(paths)?;
    writeln!(text, "\nreplace {GO_PKG_MODULE} => {}", pkg.display())?;
    for local in local_modules(paths, &paths.root.join("guest-tinygo").join(guest.dir))? {
        writeln!(
            text,
            "\nrequire {path} {version}\n\nreplace {path} => {dir}",
            path = local.path,
            version = local.version,
            dir = local.dir.display()
        )?;
    }
    fs::write(&go_mod, text)?;
    Ok((resolve, world))
}

/// A Go module that a guest's `go.mod` replaces by a directory: code shared between
/// guests, reached the same way by native `go test` and by the component build.
struct LocalModule {
    /// The module path, e.g. `witplug.dev/http-common`.
    path: String,
    /// The version the guest requires (any: the directory replaces them all).
    version: String,
    /// The directory, absolute.
    dir: PathBuf,
}

/// The local modules of the guest whose sources are in `src`, from `go mod edit -json`
/// on its `go.mod` (none without one).
fn local_modules(paths: &Paths, src: &Path) -> anyhow::Result<Vec<LocalModule>> {
    if !src.join("go.mod").is_file() {
        return Ok(Vec::new());
    }
    let mut cmd = go_command(paths, "go");
    cmd.args(["mod", "edit", "-json"]).current_dir(src);
    let output = util::run_captured(&mut cmd)?;
    let go_mod: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("cannot parse `go mod edit -json` in {}", src.display()))?;
    let mut modules = Vec::new();
    for replace in go_mod["Replace"].as_array().into_iter().flatten() {
        // A directory replacement has no version on its right-hand side.
        let (Some(path), Some(dir), None) = (
            replace["Old"]["Path"].as_str(),
            replace["New"]["Path"].as_str(),
            replace["New"]["Version"].as_str(),
        ) else {
            continue;
        };
        let version = go_mod["Require"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["Path"] == path)
            .and_then(|r| r["Version"].as_str())
            .unwrap_or("v0.0.0");
        let dir = fs::canonicalize(src.join(dir)).with_context(|| {
            format!(
                "{}/go.mod: `replace {path} => {dir}`: no such directory",
                src.display()
            )
        })?;
        modules.push(LocalModule {
            path: path.to_owned(),
            version: version.to_owned(),
            dir,
        });
    }
    Ok(modules)
}

/// The source of `go.bytecodealliance.org/pkg` inside the wit-bindgen-go crate, found
/// with `cargo metadata`.
fn go_pkg_source(paths: &Paths) -> anyhow::Result<PathBuf> {
    let pkg = crate_source(paths, "wit-bindgen-go", WIT_BINDGEN_GO_VERSION)?
        .join("src")
        .join("pkg");
    if !pkg.join("go.mod").is_file() {
        bail!(
            "{} does not hold the Go module {GO_PKG_MODULE}",
            pkg.display()
        );
    }
    Ok(pkg)
}

/// The source directory of a dependency of the root workspace, found with `cargo metadata`:
/// the package `name` whose version is `version` or starts with `version.` (`48` matches
/// `48.0.8`).
pub(crate) fn crate_source(paths: &Paths, name: &str, version: &str) -> anyhow::Result<PathBuf> {
    let output = util::run_captured(
        util::cargo()
            .args(["metadata", "--format-version=1", "--manifest-path"])
            .arg(paths.root.join("Cargo.toml")),
    )?;
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cannot parse `cargo metadata`")?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["name"] == name
                && p["version"].as_str().is_some_and(|v| {
                    v == version || v.strip_prefix(version).is_some_and(|r| r.starts_with('.'))
                })
        })
        .and_then(|p| p["manifest_path"].as_str())
        .with_context(|| format!("`cargo metadata` lists no {name} {version}"))?;
    let dir = Path::new(manifest)
        .parent()
        .context("a manifest without a directory")?;
    Ok(dir.to_path_buf())
}

/// Turns a core module into a validated component, embedding the world first if any.
pub(crate) fn encode_component(
    module: &mut Vec<u8>,
    world: Option<(Resolve, WorldId)>,
    adapter: &[u8],
) -> anyhow::Result<Vec<u8>> {
    if let Some((resolve, world)) = world {
        wit_component::embed_component_metadata(
            module,
            &resolve,
            world,
            StringEncoding::UTF8,
            false,
        )?;
    }
    ComponentEncoder::default()
        .module(module)?
        .validate(true)
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)?
        .encode()
}

/// The directories of hand-written Go that make up a guest's module, each with where it
/// goes in the module: the guest's own directory at the root, then its shared packages.
fn source_dirs(paths: &Paths, guest: &Guest) -> Vec<(PathBuf, PathBuf)> {
    let base = paths.root.join("guest-tinygo");
    let own = (base.join(guest.dir), PathBuf::new());
    let shared = guest.shared.iter().map(|package| {
        let to = Path::new(package).file_name().map(PathBuf::from);
        (base.join(package), to.unwrap_or_default())
    });
    std::iter::once(own).chain(shared).collect()
}

/// A hash of everything the guest is built from.
fn hash_inputs(paths: &Paths, compiler: &Compiler, guest: &Guest) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut add = |label: &str, bytes: &[u8]| {
        for part in [label.as_bytes(), bytes] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    };
    add("format", STAMP_FORMAT.as_bytes());
    add("compiler", compiler.version.as_bytes());
    add("adapter", guest.kind.adapter());
    let mut dirs: Vec<(String, PathBuf)> = source_dirs(paths, guest)
        .into_iter()
        .map(|(from, to)| match to.to_str() {
            Some("") => ("src".to_owned(), from),
            _ => (format!("src/{}", to.display()), from),
        })
        .collect();
    let src = paths.root.join("guest-tinygo").join(guest.dir);
    for local in local_modules(paths, &src)? {
        dirs.push((format!("module/{}", local.path), local.dir));
    }
    if let Kind::Reactor { wit, world } = guest.kind {
        add("wit-bindgen-go", WIT_BINDGEN_GO_VERSION.as_bytes());
        add("world", world.as_bytes());
        dirs.push(("wit".to_owned(), wit.dir(paths)?));
    }
    for (label, dir) in dirs {
        for relative in util::files_under(&dir)? {
            let contents = fs::read(dir.join(&relative))?;
            add(&format!("{label}/{}", relative.display()), &contents);
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// The stamp file's text: the input hash and the output's hash.
pub(crate) fn stamp(inputs: &str, output: &[u8]) -> String {
    format!("inputs {inputs}\noutput {:x}\n", Sha256::digest(output))
}

/// Whether `out` exists, was built from these inputs and was not changed since.
pub(crate) fn is_up_to_date(out: &Path, stamp_path: &Path, inputs: &str) -> bool {
    match (fs::read_to_string(stamp_path), fs::read(out)) {
        (Ok(recorded), Ok(output)) => recorded == stamp(inputs, &output),
        _ => false,
    }
}

/// Runs the Go guests' unit tests natively, then vets their hand-written packages as
/// compiled for wasip1 (against the generated bindings, so after a build). The generated
/// code itself is not vetted: it is not vet-clean (`possible misuse of unsafe.Pointer`).
/// The local modules the guests share are tested and vetted natively, once each.
pub(crate) fn unit_tests(paths: &Paths) -> anyhow::Result<()> {
    let mut shared_modules = BTreeSet::new();
    for guest in &GUESTS {
        let src = paths.root.join("guest-tinygo").join(guest.dir);
        shared_modules.extend(local_modules(paths, &src)?.into_iter().map(|m| m.dir));
        // Skipped when there is nothing to test natively: `go test` without packages would
        // test `.`, which may have no Go files.
        if !guest.native_tests.is_empty() {
            let mut test = go_command(paths, "go");
            test.arg("test").args(guest.native_tests).current_dir(&src);
            util::run_inherited(&mut test).with_context(|| format!("go-{}: go test", guest.dir))?;
        }

        let module = match guest.kind {
            Kind::Reactor { .. } => paths.target.join("go-build").join(guest.dir),
            Kind::Command => src.clone(),
        };
        let mut vet = go_command(paths, "go");
        vet.env("GOOS", "wasip1")
            .env("GOARCH", "wasm")
            .arg("vet")
            .args(hand_written_packages(&src)?)
            .current_dir(module);
        util::run_inherited(&mut vet).with_context(|| format!("go-{}: go vet", guest.dir))?;
    }
    for dir in shared_modules {
        let shown = util::shown(paths, &dir);
        for what in ["test", "vet"] {
            let mut cmd = go_command(paths, "go");
            cmd.args([what, "./..."]).current_dir(&dir);
            util::run_inherited(&mut cmd).with_context(|| format!("{shown}: go {what}"))?;
        }
    }
    Ok(())
}

/// The packages of `src` as `go` arguments: `.` or `./DIR` for each directory with Go files.
fn hand_written_packages(src: &Path) -> anyhow::Result<BTreeSet<String>> {
    let packages = util::files_under(src)?
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "go"))
        .map(|f| match f.parent() {
            Some(dir) if dir != Path::new("") => format!("./{}", dir.display()),
            _ => ".".to_owned(),
        })
        .collect();
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated `package main` calls the exported functions in `export_*` packages
    /// that the bindings do not define: the hand-written sources must.
    #[test]
    fn sources_provide_the_export_packages_the_bindings_call() -> anyhow::Result<()> {
        let paths = Paths::new();
        for guest in &GUESTS {
            let Kind::Reactor { wit, world } = guest.kind else {
                continue;
            };
            let (_, _, files) = generate_bindings(&paths, &wit.dir(&paths)?, world)?;
            let generated: BTreeSet<String> = files
                .iter()
                .filter_map(|(name, _)| name.split_once('/').map(|(dir, _)| format!("./{dir}")))
                .collect();
            let main = files
                .iter()
                .find_map(|(name, contents)| (name == "wit_exports.go").then_some(contents))
                .context("no wit_exports.go")?;
            let called: BTreeSet<String> = String::from_utf8_lossy(main)
                .split('"')
                .filter_map(|s| s.strip_prefix("wit_component/"))
                .map(|package| format!("./{package}"))
                .filter(|package| !generated.contains(package))
                .collect();
            assert!(!called.is_empty());
            let src = paths.root.join("guest-tinygo").join(guest.dir);
            let mut provided = hand_written_packages(&src)?;
            for (_, to) in source_dirs(&paths, guest).into_iter().skip(1) {
                provided.insert(format!("./{}", to.display()));
            }
            assert!(
                called.is_subset(&provided),
                "{}: the bindings call {called:?}, the sources provide {provided:?}",
                guest.dir
            );
        }
        Ok(())
    }

    #[test]
    fn hand_written_packages_are_listed_once() -> anyhow::Result<()> {
        let filetool = Paths::new().root.join("guest-tinygo/filetool");
        assert_eq!(
            hand_written_packages(&filetool)?,
            BTreeSet::from([".".to_owned()])
        );
        Ok(())
    }
}
