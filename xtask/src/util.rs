//! Helpers shared by the tasks: project paths, progress spinners, running commands and
//! writing files only when their content changes.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use std::{fs, io};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// Where things are in the project.
pub(crate) struct Paths {
    /// The workspace root (the parent of `xtask/`).
    pub(crate) root: PathBuf,
    /// The workspace target directory, `target/`.
    pub(crate) target: PathBuf,
    /// Where the built guest components go, `target/guests/`.
    pub(crate) guests: PathBuf,
}

impl Paths {
    pub(crate) fn new() -> Paths {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf();
        let target = root.join("target");
        let guests = target.join("guests");
        Paths {
            root,
            target,
            guests,
        }
    }
}

/// The `cargo` that runs us, so nested builds use the same toolchain.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `always` when our stderr is a terminal, so captured cargo output keeps its colours.
pub(crate) fn color_choice() -> &'static str {
    if io::stderr().is_terminal() {
        "always"
    } else {
        "never"
    }
}

/// One named step of a build, shown as a spinner while it runs.
///
/// Status lines go to stderr, like cargo's. When stderr is not a terminal the spinner is
/// hidden and only the final line of each step is printed.
pub(crate) struct Step {
    bar: ProgressBar,
    name: String,
    started: Instant,
}

impl Step {
    /// Starts a spinner for `name` (a guest, or a group of guests) doing `what`.
    pub(crate) fn start(name: &str, what: &str) -> Step {
        let style = ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bar = ProgressBar::new_spinner()
            .with_style(style)
            .with_prefix(name.to_owned())
            .with_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Step {
            bar,
            name: name.to_owned(),
            started: Instant::now(),
        }
    }

    /// Moves on to the next part of the step.
    pub(crate) fn set(&self, what: &str) {
        self.bar.set_message(what.to_owned());
    }

    /// Prints lines while the spinner runs, above it.
    pub(crate) fn println(&self, lines: &str) {
        self.bar.suspend(|| eprintln!("{lines}"));
    }

    /// Ends the step with a one-line summary and its duration.
    pub(crate) fn done(self, summary: &str) {
        self.bar.finish_and_clear();
        let seconds = self.started.elapsed().as_secs_f64();
        eprintln!("{:>12} {}: {summary} in {seconds:.1}s", "Built", self.name);
    }

    /// Ends the step, which found nothing to do.
    pub(crate) fn up_to_date(self) {
        self.bar.finish_and_clear();
        eprintln!("{:>12} {}: up to date", "Fresh", self.name);
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // On an early return with an error, leave no half-drawn spinner behind.
        self.bar.finish_and_clear();
    }
}

/// A command as a person would type it, for messages.
pub(crate) fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let _ = write!(s, " {}", arg.to_string_lossy());
    }
    s
}

/// Runs a command with its output captured; a failure's error holds its stderr.
pub(crate) fn run_captured(cmd: &mut Command) -> anyhow::Result<Output> {
    let shown = display(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        bail!(
            "`{shown}` failed ({})\n{}{}",
            output.status,
            stdout.trim_end(),
            stderr.trim_end()
        );
    }
    Ok(output)
}

/// Runs a command with inherited stdio, failing when it fails.
pub(crate) fn run_inherited(cmd: &mut Command) -> anyhow::Result<()> {
    let shown = display(cmd);
    let status = cmd
        .status()
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Writes `contents` to `path` unless it already holds exactly that; says whether it wrote.
pub(crate) fn write_if_changed(path: &Path, contents: &[u8]) -> anyhow::Result<bool> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Every file under `dir`, recursively, as paths relative to it, sorted.
pub(crate) fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                walk(base, &path, out)?;
            } else if let Ok(relative) = path.strip_prefix(base) {
                out.push(relative.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out).with_context(|| format!("cannot list {}", dir.display()))?;
    out.sort();
    Ok(out)
}

/// A size in bytes for people, e.g. `2.5 MB`.
pub(crate) fn human_size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.0} KB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// The path as shown in messages: relative to the project root when inside it.
pub(crate) fn shown(paths: &Paths, path: &Path) -> String {
    path.strip_prefix(&paths.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(84_321), "84 KB");
        assert_eq!(human_size(2_512_000), "2.5 MB");
    }
}
