//! `cargo xtask`: the project's build tasks, in Rust so they run wherever cargo does.
//!
//! Each task is one module; this file only parses the command line and dispatches.

mod bench;
mod build;
mod demo;
mod go_guests;
mod host_cli;
mod http_wit;
mod preinit;
mod released_wit;
mod rust_guests;
mod test;
mod toolchain;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Builds the witplug guests, runs the tests and the demo.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Checks the toolchains and builds every guest into target/guests/.
    ///
    /// Rust guests: guest-rust/, built for wasm32-wasip2. Go guests: guest-tinygo/, built
    /// with Go >= 1.27.1 (or TinyGo when it is on PATH, untested) and componentized with
    /// the WASI preview1 adapters, then `go-email-normalizer` is pre-initialised into
    /// `go-email-normalizer-preinit.wasm` (with `witplug preinit`). Up-to-date Go guests
    /// and snapshots are skipped.
    #[command(after_help = BUILD_EXAMPLES)]
    Build(build::BuildArgs),
    /// Builds the guests, then runs the workspace tests and the guests' unit tests.
    #[command(after_help = TEST_EXAMPLES)]
    Test(test::TestArgs),
    /// Builds the guests, then runs the Rust and Go email normalizers on the sample records.
    Demo,
    /// Runs the benchmark suite and writes BENCHMARKS.md.
    Bench(bench::BenchArgs),
}

const EXAMPLES: &str = "\
Examples:
  cargo xtask build              build every guest into target/guests/
  cargo xtask build --go-only    build only the Go guests
  cargo xtask test               build, then run every test
  cargo xtask demo               run both email normalizers on samples/records.jsonl
  cargo xtask bench              run the benchmarks, write BENCHMARKS.md
  cargo xtask bench calls        only the call-cost group (BENCHMARKS.md untouched)
  cargo xtask bench queue        the records pipeline on a real nats-server (its section)
  cargo xtask bench serve        witplug serve vs wasmtime serve vs native, under wrk (its section)";

const BUILD_EXAMPLES: &str = "\
Examples:
  cargo xtask build
  cargo xtask build --rust-only
  cargo xtask build --go-only -j 1";

const TEST_EXAMPLES: &str = "\
Examples:
  cargo xtask test
  cargo xtask test -- differential                 filter the workspace tests by name
  cargo xtask test -- differential -- --nocapture  and show their output";

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Build(args) => build::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

/// Prints an error and its causes; unlike returning it from `main`, without the backtrace
/// that anyhow captures when `RUST_BACKTRACE` is set, which says nothing useful here.
fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {}", cause.to_string().replace('\n', "\n    "));
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
