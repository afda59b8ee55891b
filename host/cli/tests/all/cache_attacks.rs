//! Attacks on the compile cache: each planted, swapped, patched or hostile-placed file is a
//! miss (or no cache at all), never native code that witplug runs, a hang or a failed load.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use witplug::cache::{CacheError, HEADER_BYTES, KEY_FILE, MAX_ENTRY_BYTES};
use witplug::{CompileCache, LoadedComponent, Runtime, RuntimeConfig};

use crate::common::guest_path;

/// uid of `nobody`: another user, for directories and keys that are not ours.
const NOBODY: u32 = 65534;

fn cached_runtime(dir: &Path) -> Runtime {
    Runtime::with_config(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..RuntimeConfig::default()
    })
    .expect("runtime")
}

/// Compiles `guest` into the runtime's cache; returns the entry's path.
fn cache_entry(runtime: &Runtime, guest: &str) -> PathBuf {
    let path = guest_path(guest);
    LoadedComponent::from_file(runtime, &path).expect("compiles");
    let bytes = std::fs::read(&path).expect("read");
    let entry = runtime
        .cache()
        .expect("cache")
        .entry_path(runtime.engine(), &bytes);
    assert!(entry.is_file(), "no entry written at {}", entry.display());
    entry
}

fn loads_from_cache(runtime: &Runtime, guest: &str) -> bool {
    LoadedComponent::from_file(runtime, guest_path(guest))
        .expect("loads")
        .from_cache()
}

fn witplug(args: &[&str], configure: impl FnOnce(&mut Command)) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_witplug"));
    command.args(args);
    configure(&mut command);
    command.output().expect("witplug runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `f` on a thread; fails the test if it has not returned after a generous deadline
/// (a hang, not a speed check).
fn within_deadline<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver
        .recv_timeout(Duration::from_secs(300))
        .expect("did not return: it hung")
}

/// Re-signs an entry with `key` over its (possibly altered) header and payload, as an
/// attacker holding that key would. Layout: signed header, 32-byte tag, payload.
fn resign(entry: &mut [u8], key: &[u8]) {
    let signed = HEADER_BYTES - 32;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(&entry[..signed]);
    mac.update(&entry[HEADER_BYTES..]);
    entry[signed..HEADER_BYTES].copy_from_slice(&mac.finalize().into_bytes());
}

#[test]
fn an_entry_swapped_from_another_component_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let normalizer_entry = cache_entry(&runtime, "rust-email-normalizer");
    let filetool_entry = cache_entry(&runtime, "rust-filetool");
    std::fs::copy(&filetool_entry, &normalizer_entry).expect("swap");

    let loaded =
        LoadedComponent::from_file(&runtime, guest_path("rust-email-normalizer")).expect("loads");
    assert!(!loaded.from_cache(), "the swapped-in entry was used");
    let fresh = LoadedComponent::from_file(
        &Runtime::new().expect("runtime"),
        guest_path("rust-email-normalizer"),
    )
    .expect("compiles");
    assert_eq!(loaded.export_names(), fresh.export_names());
    let bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read");
    // The recompile replaced the planted entry with an authentic one.
    runtime
        .cache()
        .expect("cache")
        .verify_entry(runtime.engine(), &bytes)
        .expect("entry rewritten");
}

#[test]
fn transform_refuses_the_hostile_guest_swapped_into_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().to_str().expect("utf-8");
    let normalizer = guest_path("rust-email-normalizer");
    let hostile = guest_path("rust-hostile");
    let out = witplug(
        &[
            "compile",
            "--cache-dir",
            cache,
            normalizer.to_str().expect("utf-8"),
            hostile.to_str().expect("utf-8"),
        ],
        |_| {},
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // "<component>: compiled in 1.2s -> <entry>", one line per component.
    let entries: Vec<PathBuf> = text(&out.stdout)
        .lines()
        .map(|line| PathBuf::from(line.rsplit_once(" -> ").expect("entry path").1))
        .collect();
    assert_eq!(entries.len(), 2, "{}", text(&out.stdout));
    std::fs::copy(&entries[1], &entries[0]).expect("swap");

    let input = format!("{}/../../samples/records.jsonl", env!("CARGO_MANIFEST_DIR"));
    let out = witplug(
        &[
            "transform",
            normalizer.to_str().expect("utf-8"),
            "--input",
            &input,
            "--cache-dir",
            cache,
            "--config",
            "blocked-domains=mailinator.com",
        ],
        |_| {},
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("compiled from other wasm bytes"),
        "{}",
        text(&out.stderr)
    );
    let input_lines = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .count();
    let outputs: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(outputs.len(), input_lines);
    // The normalizer's answer for the first sample record, not whatever hostile would do.
    assert_eq!(outputs[0]["outcome"], "keep", "{}", outputs[0]);
}

#[test]
fn patched_native_code_is_refused_without_this_users_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let entry_path = cache_entry(&runtime, "rust-email-normalizer");
    let genuine = std::fs::read(&entry_path).expect("entry");
    // Fill a stretch of the native code with int3, as an attacker planting code would.
    let mut patched = genuine.clone();
    let middle = HEADER_BYTES + (patched.len() - HEADER_BYTES) / 2;
    patched[middle..middle + 4096].fill(0xcc);

    // Unsigned: refused.
    std::fs::write(&entry_path, &patched).expect("plant");
    assert!(!loads_from_cache(&runtime, "rust-email-normalizer"));

    // Signed with another cache's key (a forged or copied entry): refused.
    cached_runtime(other.path());
    let other_key = std::fs::read(other.path().join(KEY_FILE)).expect("other key");
    resign(&mut patched, &other_key);
    std::fs::write(&entry_path, &patched).expect("plant");
    assert!(!loads_from_cache(&runtime, "rust-email-normalizer"));

    // Control (the trust model's limit): signed with this cache's own key, it would be
    // accepted, so the key is what refused the two above. Checked, never loaded.
    let key = std::fs::read(dir.path().join(KEY_FILE)).expect("key");
    resign(&mut patched, &key);
    std::fs::write(&entry_path, &patched).expect("plant");
    let bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read");
    runtime
        .cache()
        .expect("cache")
        .verify_entry(runtime.engine(), &bytes)
        .expect("an entry signed with the owner's key verifies");
}

#[test]
fn a_directory_owned_by_another_user_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache_dir = dir.path().join("cache");
    // Valid entries, then the directory changes hands (or was another user's all along).
    cache_entry(&cached_runtime(&cache_dir), "rust-email-normalizer");
    std::os::unix::fs::chown(&cache_dir, Some(NOBODY), None)
        .expect("chown to nobody (the tests run as root)");

    let error = CompileCache::open(&cache_dir).expect_err("another user's directory");
    assert!(
        matches!(error, CacheError::DirectoryNotOwned { owner: NOBODY, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains("belongs to uid 65534"),
        "{error}"
    );
    let runtime = cached_runtime(&cache_dir);
    assert!(runtime.cache().is_none());
    assert!(!loads_from_cache(&runtime, "rust-email-normalizer"));
}

#[test]
fn a_directory_writable_by_group_or_others_is_not_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    CompileCache::open(dir.path()).expect("an owner-only directory is used");
    for mode in [0o777, 0o770, 0o720, 0o702, 0o1777] {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        let error = CompileCache::open(dir.path()).expect_err("writable by others");
        assert!(
            matches!(error, CacheError::DirectoryWritableByOthers { .. }),
            "mode {mode:o}: {error}"
        );
        assert!(cached_runtime(dir.path()).cache().is_none());
    }
    // Readable by others is fine: only writing plants code.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    CompileCache::open(dir.path()).expect("a 0755 directory is used");
}

#[test]
fn a_key_that_is_not_ours_or_not_private_disables_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    CompileCache::open(dir.path()).expect("creates the key");
    let key = dir.path().join(KEY_FILE);
    let mode = std::fs::metadata(&key).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key created with mode {mode:o}");
    let refused = |what: &str| {
        let error = CompileCache::open(dir.path()).expect_err(what);
        assert!(
            matches!(error, CacheError::KeyFile { .. }),
            "{what}: {error}"
        );
        assert!(cached_runtime(dir.path()).cache().is_none(), "{what}");
    };

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    refused("a key readable by others");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&key, Some(NOBODY), None).expect("chown (tests run as root)");
    refused("another user's key");

    std::fs::remove_file(&key).expect("rm");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::write(&elsewhere, [7u8; 32]).expect("write");
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::symlink(&elsewhere, &key).expect("symlink");
    refused("a symlinked key");

    std::fs::remove_file(&key).expect("rm");
    std::fs::write(&key, [7u8; 31]).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    refused("a short key");
}

#[test]
fn a_fifo_entry_is_a_miss_not_a_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let entry = cache_entry(&runtime, "rust-email-normalizer");
    std::fs::remove_file(&entry).expect("rm");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &entry,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let loader = runtime.clone();
    let from_cache = within_deadline(move || loads_from_cache(&loader, "rust-email-normalizer"));
    assert!(!from_cache);
    // The recompile replaced the FIFO with an entry.
    assert!(loads_from_cache(&runtime, "rust-email-normalizer"));
}

#[test]
fn a_symlinked_entry_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let entry = cache_entry(&runtime, "rust-email-normalizer");

    std::fs::remove_file(&entry).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", &entry).expect("symlink");
    let loader = runtime.clone();
    assert!(!within_deadline(move || loads_from_cache(
        &loader,
        "rust-email-normalizer"
    )));

    // Even a symlink to an authentic entry is refused: the link itself is never followed.
    std::fs::remove_file(&entry).expect("rm");
    let genuine = dir.path().join("genuine");
    std::fs::rename(cache_entry(&runtime, "rust-email-normalizer"), &genuine).expect("mv");
    std::os::unix::fs::symlink(&genuine, &entry).expect("symlink");
    let bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read");
    let cache = runtime.cache().expect("cache");
    let error = cache
        .verify_entry(runtime.engine(), &bytes)
        .expect_err("symlinked entry");
    assert!(error.to_string().contains("symbolic link"), "{error}");
    assert!(!loads_from_cache(&runtime, "rust-email-normalizer"));
}

#[test]
fn an_oversized_entry_is_not_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let entry = cache_entry(&runtime, "rust-email-normalizer");
    // Sparse: a 1 GiB + 1 byte file that costs no disk.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&entry)
        .and_then(|file| file.set_len(MAX_ENTRY_BYTES + 1))
        .expect("grow");
    let bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read");
    let error = runtime
        .cache()
        .expect("cache")
        .verify_entry(runtime.engine(), &bytes)
        .expect_err("oversized");
    assert!(error.to_string().contains("limit"), "{error}");
    assert!(!loads_from_cache(&runtime, "rust-email-normalizer"));
}

#[test]
fn empty_cache_variables_count_as_unset() {
    let home = tempfile::tempdir().expect("tempdir");
    let cwd = tempfile::tempdir().expect("tempdir");
    let component = guest_path("rust-email-normalizer");
    let out = witplug(
        &["compile", component.to_str().expect("utf-8")],
        |command| {
            command
                .current_dir(cwd.path())
                .env("WITPLUG_CACHE_DIR", "")
                .env("XDG_CACHE_HOME", "")
                .env("HOME", home.path());
        },
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_dir(cwd.path()).expect("cwd").count(),
        0,
        "wrote into the current directory"
    );
    let cache = home.path().join(".cache/witplug");
    let entries = std::fs::read_dir(&cache)
        .expect("cache under HOME")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "cwasm"))
        .count();
    assert_eq!(entries, 1);

    // A relative XDG_CACHE_HOME is ignored too (the XDG specification).
    let out = witplug(
        &["compile", component.to_str().expect("utf-8")],
        |command| {
            command
                .current_dir(cwd.path())
                .env_remove("WITPLUG_CACHE_DIR")
                .env("XDG_CACHE_HOME", "relative")
                .env("HOME", home.path());
        },
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("already cached"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(std::fs::read_dir(cwd.path()).expect("cwd").count(), 0);
}

#[test]
fn an_unusable_cache_only_warns_in_transform() {
    let component = guest_path("rust-email-normalizer");
    let input = format!("{}/../../samples/records.jsonl", env!("CARGO_MANIFEST_DIR"));
    // /etc/passwd is a file; nothing can be created under /proc, even by root.
    for home in ["/etc/passwd", "/proc/self/no-such-home"] {
        let out = witplug(
            &[
                "transform",
                component.to_str().expect("utf-8"),
                "--input",
                &input,
            ],
            |command| {
                command
                    .env_remove("WITPLUG_CACHE_DIR")
                    .env_remove("XDG_CACHE_HOME")
                    .env("HOME", home);
            },
        );
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "HOME={home}: {stderr}");
        assert_eq!(
            stderr.matches("compile cache not used").count(),
            1,
            "HOME={home}: one warning expected: {stderr}"
        );
        assert!(
            stderr.contains(home),
            "the warning names the path: {stderr}"
        );
        assert!(!out.stdout.is_empty());
    }
}

#[test]
fn compile_fails_when_it_wrote_nothing() {
    let component = guest_path("rust-email-normalizer");
    let component_arg = component.to_str().expect("utf-8");

    // The entry's name is taken by a directory: the write fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(&component).expect("read");
    let entry = CompileCache::open(dir.path())
        .expect("cache")
        .entry_path(Runtime::new().expect("runtime").engine(), &bytes);
    std::fs::create_dir(&entry).expect("mkdir");
    let out = witplug(
        &[
            "compile",
            "--cache-dir",
            dir.path().to_str().expect("utf-8"),
            component_arg,
        ],
        |_| {},
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "exit 0 without an entry: {stderr}");
    assert!(stderr.contains("not cached"), "{stderr}");
    assert!(stderr.contains(&entry.display().to_string()), "{stderr}");
    assert!(!text(&out.stdout).contains(" -> "), "{}", text(&out.stdout));

    // A directory witplug must not use: compile says why and fails.
    let foreign = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::chown(foreign.path(), Some(NOBODY), None).expect("chown");
    let out = witplug(
        &[
            "compile",
            "--cache-dir",
            foreign.path().to_str().expect("utf-8"),
            component_arg,
        ],
        |_| {},
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("belongs to uid 65534"), "{stderr}");
    assert_eq!(std::fs::read_dir(foreign.path()).expect("dir").count(), 0);
}

#[test]
fn a_component_entry_never_loads_as_a_module_or_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = cached_runtime(dir.path());
    let engine = runtime.engine();
    let cache = runtime.cache().expect("cache");
    let module_bytes = wat::parse_str(r#"(module (func (export "f")))"#).expect("wat");
    let module = wasmtime::Module::new(engine, &module_bytes).expect("module");
    let module_entry = cache
        .store_module(engine, &module_bytes, &module)
        .expect("stored");
    assert!(cache.load_module(engine, &module_bytes).is_some());

    // The module's entry under the component name for the same bytes: only the kind
    // differs, and it is refused.
    std::fs::copy(&module_entry, cache.entry_path(engine, &module_bytes)).expect("copy");
    let error = cache
        .verify_entry(engine, &module_bytes)
        .expect_err("module entry as a component");
    assert!(error.to_string().contains("another kind"), "{error}");
    assert!(cache.load(engine, &module_bytes).is_none());

    // And a component's entry under the module name for the same bytes.
    let component_bytes = std::fs::read(guest_path("rust-email-normalizer")).expect("read");
    let component_entry = cache_entry(&runtime, "rust-email-normalizer");
    std::fs::copy(
        &component_entry,
        cache.module_entry_path(engine, &component_bytes),
    )
    .expect("copy");
    assert!(cache.load_module(engine, &component_bytes).is_none());
    assert!(cache.load(engine, &component_bytes).is_some());
}
