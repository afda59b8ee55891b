//! `cargo xtask bench`: builds the guests and the release CLI (the process-per-record
//! baseline), runs the benchmark harness (`host/witplug/benches/witplug.rs`) and writes its table
//! to BENCHMARKS.md with the machine, the date and the command.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Args;

use crate::build::{self, BuildArgs};
use crate::util::{self, Paths};

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Only the benchmark groups whose name contains this (instantiate, calls,
    /// throughput, shapes, jobs, latency, compile; `first-call` runs only when named);
    /// BENCHMARKS.md is only written for a full run. `queue` runs
    /// the pipeline benchmark on a real nats-server instead (`host/cli/benches/queue.rs`),
    /// `serve` the HTTP handlers under wrk (`host/witplug-http/benches/serve.rs`); each
    /// writes its own section of BENCHMARKS.md.
    filter: Option<String>,
}

pub(crate) fn run(args: &BenchArgs) -> anyhow::Result<()> {
    build::run(&BuildArgs::default())?;
    let paths = Paths::new();
    util::run_inherited(
        util::cargo()
            .args([
                "build",
                "--release",
                "-p",
                "witplug-cli",
                "--bin",
                "witplug",
            ])
            .current_dir(&paths.root),
    )?;
    match args.filter.as_deref() {
        Some("queue") => return section(&paths, &QUEUE),
        Some("serve") => {
            prepare_serve(&paths)?;
            return section(&paths, &SERVE);
        }
        _ => {}
    }
    let mut cmd = util::cargo();
    cmd.args(["bench", "-p", "witplug", "--bench", "witplug", "--"])
        .args(args.filter.iter())
        .current_dir(&paths.root)
        .stderr(std::process::Stdio::inherit());
    let output = util::run_captured(&mut cmd).context("the benchmarks failed")?;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{table}");
    if args.filter.is_none() {
        let path = paths.root.join("BENCHMARKS.md");
        let mut report = report(&table)?;
        // The hand-written reading of the figures below the table is kept.
        let previous = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(at) = previous.find(HAND_WRITTEN) {
            report.push('\n');
            report.push_str(&previous[at..]);
        }
        std::fs::write(&path, report).context("writing BENCHMARKS.md")?;
        eprintln!("wrote BENCHMARKS.md");
    }
    Ok(())
}

/// A benchmark with a section of its own in BENCHMARKS.md, after the hand-written part
/// (which a full run keeps), between two markers.
struct Section {
    /// The `cargo xtask bench` word that runs it.
    name: &'static str,
    heading: &'static str,
    /// What runs and how, under the heading.
    about: &'static str,
    /// The cargo bench target, in the whole workspace.
    bench: &'static str,
}

const QUEUE: Section = Section {
    name: "queue",
    heading: "Records pipeline on NATS JetStream",
    about: "Harness: `host/cli/benches/queue.rs`, one nats-server 2.15 (file store) on the same machine, every row in the same run.",
    bench: "queue",
};

const SERVE: Section = Section {
    name: "serve",
    heading: "HTTP handlers: `witplug serve`",
    about: "Harness: `host/witplug-http/benches/serve.rs`. Instance start: in process, witplug's `Plugin<HttpHandler>` against wasmtime's `ProxyPre` on the same engine and pool, alternating one by one, 15 rounds. Load: `wrk -t1 -c16 --latency` on loopback, 3 s per run after a 1 s warm-up, 5 interleaved rounds; the server pinned to CPU 1, wrk to CPU 0; the release `witplug serve` at its defaults (fresh instance per request, 100 requests at once, a deadline per request), `wasmtime serve` 48.0.8 at its defaults (`-Scli`, and `-Sconfig` for auth), and `bench/native-http` (hyper, the same rule compiled natively). A ratio is the median of the per-round ratios, with their interquartile range. Every answer is checked before the load, and a run with any non-2xx answer or socket error fails the bench.",
    bench: "serve",
};

fn section(paths: &Paths, section: &Section) -> anyhow::Result<()> {
    let mut cmd = util::cargo();
    cmd.args(["bench", "--workspace", "--bench", section.bench])
        .current_dir(&paths.root)
        .stderr(std::process::Stdio::inherit());
    let output = util::run_captured(&mut cmd)
        .with_context(|| format!("the {} benchmark failed", section.name))?;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{table}");
    let start = format!(
        "<!-- {} benchmark: written by `cargo xtask bench {}` -->",
        section.name, section.name
    );
    let end = format!("<!-- end of {} benchmark -->", section.name);
    let mut text = String::new();
    writeln!(text, "{start}")?;
    writeln!(text, "## {}\n", section.heading)?;
    writeln!(text, "{}", section.about)?;
    writeln!(text, "- date: {}", date())?;
    writeln!(text, "- machine: {}", machine())?;
    writeln!(text, "- command: `cargo xtask bench {}`\n", section.name)?;
    text.push_str(&table);
    writeln!(text, "{end}")?;
    let path = paths.root.join("BENCHMARKS.md");
    let previous = std::fs::read_to_string(&path).unwrap_or_default();
    let report = match (previous.find(&start), previous.find(&end)) {
        (Some(at), Some(until)) if at < until => format!(
            "{}{text}{}",
            &previous[..at],
            &previous[until + end.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n\n{text}", previous.trim_end()),
    };
    std::fs::write(&path, report).context("writing BENCHMARKS.md")?;
    eprintln!("wrote the {} section of BENCHMARKS.md", section.name);
    Ok(())
}

/// What the serve benchmark needs beyond the workspace: wrk, and its native baseline.
fn prepare_serve(paths: &Paths) -> anyhow::Result<()> {
    let wrk = std::process::Command::new("wrk")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    // `wrk --version` prints its usage and exits 1: only a failure to start counts.
    if wrk.is_err() {
        anyhow::bail!("`wrk` is not on PATH: install it with `apt-get install wrk`");
    }
    if std::process::Command::new("taskset")
        .arg("-V")
        .output()
        .is_err()
    {
        anyhow::bail!("`taskset` is not on PATH: install it with `apt-get install util-linux`");
    }
    util::run_inherited(
        util::cargo()
            .args(["build", "--release", "--locked", "--manifest-path"])
            .arg(paths.root.join("bench/native-http/Cargo.toml"))
            .arg("--target-dir")
            .arg(paths.root.join("target/native-http"))
            .current_dir(&paths.root),
    )
}

fn date() -> String {
    util::run_captured(std::process::Command::new("date").arg("-u"))
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The heading of BENCHMARKS.md's hand-written part, which a new run keeps.
const HAND_WRITTEN: &str = "## Reading the figures";

fn report(table: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    writeln!(out, "# Benchmarks\n")?;
    writeln!(
        out,
        "Written by `cargo xtask bench` (harness: `host/witplug/benches/witplug.rs`)."
    )?;
    writeln!(
        out,
        "Every witplug figure is measured in the same run as its baseline (bare wasmtime `bindgen!`, native Rust, or one process per record), interleaved, so the ratios hold even on a noisy machine; absolute figures vary from run to run.\n"
    )?;
    writeln!(out, "- date: {}", date())?;
    writeln!(out, "- machine: {}", machine())?;
    writeln!(
        out,
        "- command: `cargo xtask bench` (release profile; wasmtime 48)\n"
    )?;
    out.push_str(table);
    Ok(out)
}

/// CPU model, core count and memory, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    format!("{model}, {cores} cores, {memory_gib:.0} GiB")
}
