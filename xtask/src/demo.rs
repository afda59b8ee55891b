//! `cargo xtask demo`: builds the guests, then runs the Rust and the Go email normalizer on
//! the sample records through the host CLI, so their outputs can be compared by eye.

use std::io::Write as _;

use crate::build::{self, BuildArgs};
use crate::host_cli;
use crate::util::{self, Paths};

/// The sample input and the configuration the demo runs with.
const INPUT: &str = "samples/records.jsonl";
const CONFIG: &str = "blocked-domains=mailinator.com";

pub(crate) fn run() -> anyhow::Result<()> {
    build::run(&BuildArgs::default())?;
    let paths = Paths::new();
    let witplug = host_cli::build(&paths, None)?;
    for (language, prefix) in [("Rust", "rust"), ("Go", "go")] {
        let plugin = format!("target/guests/{prefix}-email-normalizer.wasm");
        println!("\n=== {language} guest: {plugin} ===");
        std::io::stdout().flush()?;
        util::run_inherited(
            host_cli::command(&paths, &witplug)
                .arg("transform")
                .arg(&plugin)
                .args(["--input", INPUT, "--config", CONFIG]),
        )?;
    }
    Ok(())
}
