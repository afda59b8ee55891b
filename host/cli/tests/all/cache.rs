//! The compile cache: hits skip the compiler, corrupt entries are misses, never crashes.

use witplug::{LoadedComponent, Runtime, RuntimeConfig};

use crate::common::guest_path;

fn cached_runtime(dir: &std::path::Path) -> Runtime {
    Runtime::with_config(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

#[test]
fn a_second_load_comes_from_the_cache_and_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = guest_path("rust-email-normalizer");
    let first = LoadedComponent::from_file(&cached_runtime(dir.path()), &path).expect("compiles");
    assert!(!first.from_cache());
    // A new runtime, as another process would have.
    let runtime = cached_runtime(dir.path());
    let second = LoadedComponent::from_file(&runtime, &path).expect("loads");
    assert!(second.from_cache());
    assert_eq!(second.export_names(), first.export_names());
}

#[test]
fn a_corrupt_entry_is_a_miss_and_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = guest_path("rust-email-normalizer");
    let runtime = cached_runtime(dir.path());
    LoadedComponent::from_file(&runtime, &path).expect("compiles");
    let bytes = std::fs::read(&path).expect("read");
    let entry = runtime
        .cache()
        .expect("cache")
        .entry_path(runtime.engine(), &bytes);

    // Flip one byte of the native code: the checksum no longer matches.
    let mut corrupt = std::fs::read(&entry).expect("entry");
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    std::fs::write(&entry, &corrupt).expect("write");
    let reloaded = LoadedComponent::from_file(&runtime, &path).expect("recompiles");
    assert!(!reloaded.from_cache());

    // Truncated to nothing: also a miss. The recompile rewrote a good entry.
    std::fs::write(&entry, b"").expect("truncate");
    assert!(
        !LoadedComponent::from_file(&runtime, &path)
            .expect("recompiles")
            .from_cache()
    );
    assert!(
        LoadedComponent::from_file(&runtime, &path)
            .expect("loads")
            .from_cache()
    );
}

#[test]
fn another_engine_configuration_does_not_share_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = guest_path("rust-email-normalizer");
    LoadedComponent::from_file(&cached_runtime(dir.path()), &path).expect("compiles");
    let metered = Runtime::with_config(RuntimeConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        fuel_metering: true,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    assert!(
        !LoadedComponent::from_file(&metered, &path)
            .expect("compiles")
            .from_cache()
    );
}
