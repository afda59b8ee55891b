//! `witplug preinit`: snapshot a component after its start-up (see `witplug::preinit`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::output::errln;
use anyhow::Context as _;
use clap::Args;
use witplug::Runtime;
use witplug::preinit::{DEFAULT_INIT_CALL, preinitialize};

/// What `witplug preinit --help` shows after the options. (The summary line is the doc
/// comment of `Command::Preinit`, which clap shows instead of this struct's.)
const AFTER_HELP: &str = "\
Runs the component's start-up (the Go runtime's, for Go guests) and the init call once, and
writes a component whose instances start from the resulting state instead of running it again.

The init instance gets no capabilities: no environment, arguments, directories or network,
and no import but WASI. Whatever the start-up read or computed is frozen into every instance
of the output: random and hash seeds (Go's map seeds, math/rand), and, for Go guests, the
(empty) environment and list of directories; a pre-initialised Go guest does not see the
environment or directories it is granted later, and cannot write to stdout or stderr.

Examples:
  witplug preinit target/guests/go-email-normalizer.wasm go-email-normalizer-preinit.wasm
  witplug preinit plugin.wasm plugin-preinit.wasm --init 'witplug:plugin/metadata.describe@0.1.0()'
  witplug preinit greeter.wasm greeter-preinit.wasm --init 'greet(\"warm-up\")'";

/// The arguments of `witplug preinit`.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct PreinitArgs {
    /// The component to pre-initialise (.wasm).
    input: PathBuf,

    /// Where to write the pre-initialised component.
    output: PathBuf,

    /// The export to call before the snapshot, as a WAVE call: a bare function name when
    /// only one export has it, or a qualified one (`ns:pkg/iface.func@version(...)`).
    /// Choose one without side effects.
    #[arg(long = "init", value_name = "CALL", default_value = DEFAULT_INIT_CALL)]
    init_call: String,
}

pub async fn run(args: PreinitArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let input = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let runtime = Runtime::new()?;
    let output = preinitialize(&runtime, &input, &args.init_call)
        .await
        .with_context(|| format!("cannot pre-initialise {}", args.input.display()))?;
    write_atomically(&args.output, &output, &args.input)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    errln!(
        "{}: pre-initialised with `{}` in {:.1?} -> {} ({} bytes, was {})",
        args.input.display(),
        args.init_call,
        started.elapsed(),
        args.output.display(),
        output.len(),
        input.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`: a failed
/// write (a full disk) leaves `path` as it was, even when it is the input itself. The new
/// file gets the mode of the file it replaces, else of `like` (the input), not the
/// temporary file's owner-only mode; a symlinked `path` is written through, to its target.
fn write_atomically(path: &Path, bytes: &[u8], like: &Path) -> std::io::Result<()> {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let path = if is_link {
        std::fs::canonicalize(path)?
    } else {
        path.to_path_buf()
    };
    let permissions = std::fs::metadata(&path)
        .or_else(|_| std::fs::metadata(like))?
        .permissions();
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.as_file().set_permissions(permissions)?;
    temp.as_file().sync_all()?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}
