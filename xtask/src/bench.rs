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
    /// throughput, compile); BENCHMARKS.md is only written for a full run. `queue` runs
    /// the pipeline benchmark on a real nats-server instead (`host/cli/benches/queue.rs`)
    /// and writes its own section of BENCHMARKS.md.
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
    if args.filter.as_deref() == Some("queue") {
        return queue(&paths);
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

/// Where the queue benchmark's section starts and ends in BENCHMARKS.md (after the
/// hand-written part, which a full run keeps).
const QUEUE_START: &str = "<!-- queue benchmark: written by `cargo xtask bench queue` -->";
const QUEUE_END: &str = "<!-- end of queue benchmark -->";

fn queue(paths: &Paths) -> anyhow::Result<()> {
    let mut cmd = util::cargo();
    cmd.args(["bench", "-p", "witplug-cli", "--bench", "queue"])
        .current_dir(&paths.root)
        .stderr(std::process::Stdio::inherit());
    let output = util::run_captured(&mut cmd).context("the queue benchmark failed")?;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{table}");
    let mut section = String::new();
    writeln!(section, "{QUEUE_START}")?;
    writeln!(
        section,
        "## Records pipeline on NATS JetStream
"
    )?;
    writeln!(
        section,
        "Harness: `host/cli/benches/queue.rs`, one nats-server 2.15 (file store) on the same machine, every row in the same run."
    )?;
    writeln!(
        section,
        "- date: {}",
        util::run_captured(std::process::Command::new("date").arg("-u"))
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    )?;
    writeln!(section, "- machine: {}", machine())?;
    writeln!(
        section,
        "- command: `cargo xtask bench queue`
"
    )?;
    section.push_str(&table);
    writeln!(section, "{QUEUE_END}")?;
    let path = paths.root.join("BENCHMARKS.md");
    let previous = std::fs::read_to_string(&path).unwrap_or_default();
    let report = match (previous.find(QUEUE_START), previous.find(QUEUE_END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{section}{}",
            &previous[..start],
            &previous[end + QUEUE_END.len()..].trim_start_matches('\n')
        ),
        _ => format!("{}\n{section}", previous.trim_end()),
    };
    std::fs::write(&path, report).context("writing BENCHMARKS.md")?;
    eprintln!("wrote the queue section of BENCHMARKS.md");
    Ok(())
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
    writeln!(
        out,
        "- date: {}",
        util::run_captured(std::process::Command::new("date").arg("-u"))
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    )?;
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
