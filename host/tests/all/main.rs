//! Integration tests against the real guest components built by `cargo xtask build`.
//!
//! One test binary (as in wasmtime's `tests/all`) so wasmtime is linked once.

mod aggregator;
mod cache;
mod cli;
mod command;
mod common;
mod custom_world;
mod engine;
mod hostile;
mod load;
mod loading;
mod preinit;
mod preview1;
mod run;
mod transform;
mod worlds;
