//! What the fuzz targets share: one engine, one executor, where the built guests are, and
//! the Rust `email-normalizer`'s rule compiled natively.
//!
//! Everything here is created once per fuzzing process (libFuzzer runs the target function
//! many times in one process), so each execution only pays for what it fuzzes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// `::witplug` is the host library; `witplug` alone (below) is the guest-side bindings.
use ::witplug::Runtime;

// The guest's bindings, generated as `guest-rust/email-normalizer/src/lib.rs` generates
// them, at this crate's root because the rule refers to them as `crate::…`.
wit_bindgen::generate!({
    path: "../wit",
    world: "transform-plugin",
    additional_derives: [PartialEq],
});

/// The guest's rule, from the guest's own source file, compiled natively: the reference
/// of `transform_batch`.
///
/// Included by path rather than by depending on the guest crate: that crate is a
/// `cdylib`, and adding `rlib` to its crate types makes cargo drop `-C lto` from its
/// release build, which changes (and grows by about 10%) the very component under test.
#[path = "../../guest-rust/email-normalizer/src/rule.rs"]
pub mod rule;

/// The one engine of the process, as the CLI and the tests create it.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the wasmtime engine starts"))
}

/// A current-thread tokio runtime to block on witplug's async API.
pub fn executor() -> &'static tokio::runtime::Runtime {
    static EXECUTOR: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("the tokio runtime starts")
    })
}

/// The directory `cargo xtask build` writes guest components to (`WITPLUG_GUESTS_DIR`
/// overrides it, as for the tests).
pub fn guests_dir() -> PathBuf {
    std::env::var_os("WITPLUG_GUESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests"))
}

/// Path of a built guest, e.g. `rust-email-normalizer`. A missing guest stops the fuzzer
/// with a message saying how to build it.
pub fn guest_path(name: &str) -> PathBuf {
    let path = guests_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "guest component {} is missing: run `cargo xtask build` first",
        path.display()
    );
    path
}
