//! Integration tests against the real guest components built by `cargo xtask build`.
//!
//! One test binary (as in wasmtime's `tests/all`) so wasmtime is linked once.

mod aggregator;
mod cache;
mod cache_attacks;
mod cli;
mod cli_output;
mod command;
mod common;
mod custom_world;
mod engine;
mod grants;
mod hostile;
mod load;
mod loading;
mod nats;
mod policy;
mod preinit;
mod preview1;
mod run;
mod serve;
mod slot;
mod transform;
mod transform_cli;
mod wit_check;
mod worker;
mod worker_config;
mod worlds;
