//! What the fuzz targets share: one engine, one executor, where the built guests are.
//!
//! Everything here is created once per fuzzing process (libFuzzer runs the target function
//! many times in one process), so each execution only pays for what it fuzzes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use witplug::Runtime;

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
