//! The `witplug` command line: run commands, transform records, inspect components.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
