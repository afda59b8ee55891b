//! `witplug run` grants exactly what its flags say: a typo is an error, never a wider or
//! moved grant.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::process::{Command, Output};

use crate::common::guest_path;

fn run(args: &[&OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_witplug"))
        .arg("run")
        .arg(guest_path("rust-filetool"))
        .args(args)
        .env("WITPLUG_TEST_NOT_UTF8", OsStr::from_bytes(b"\xff\xfe"))
        .output()
        .expect("witplug runs")
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|arg| OsStr::new(*arg)).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_upper_case_read_only_suffix_grants_read_only_at_the_right_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grant = format!("{}::/data:RO", dir.path().display());
    let out = run(&os(&["--dir", &grant, "--", "write", "/data/new.txt", "x"]));
    assert!(!out.status.success(), "write must fail: {}", stderr(&out));
    assert!(!dir.path().join("new.txt").exists(), "nothing written");
    let out = run(&os(&["--dir", &grant, "--", "ls", "/data"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn ambiguous_or_mistyped_grants_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = dir.path().display().to_string();
    for (spec, expected) in [
        (format!("{host}::/data:RX"), "unknown access suffix `:RX`"),
        (format!("{host}::b::c"), "not absolute"),
        (format!("{host}::data"), "not absolute"),
    ] {
        let out = run(&os(&["--dir", &spec, "--", "ls", "/"]));
        assert_eq!(out.status.code(), Some(2), "{spec}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{spec}: {}", stderr(&out));
    }
    let other = tempfile::tempdir().expect("tempdir");
    let out = run(&os(&[
        "--dir",
        &format!("{host}::/data"),
        "--dir",
        &format!("{}::/data", other.path().display()),
        "--",
        "ls",
        "/data",
    ]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("guest path /data is granted twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_host_path_containing_double_colons_is_granted_with_an_explicit_guest_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let odd = dir.path().join("a::b");
    std::fs::create_dir(&odd).expect("mkdir");
    std::fs::write(odd.join("f.txt"), "one two\n").expect("write");
    let grant = format!("{}::/data:ro", odd.display());
    let out = run(&os(&["--dir", &grant, "--", "count", "/data/f.txt"]));
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn repeated_env_names_and_non_utf8_host_values_are_errors() {
    let out = run(&os(&["--env", "A=1", "--env", "A=2", "--", "env", "A"]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("`A` is granted twice"),
        "{}",
        stderr(&out)
    );

    let out = run(&os(&["--env", "WITPLUG_TEST_NOT_UTF8", "--", "env", "X"]));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));
}

#[test]
fn verbose_prints_the_effective_grants_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let grant = format!("{}::/data:RO", dir.path().display());
    let mut args = vec![OsStr::new("-v")];
    args.extend(os(&[
        "--dir",
        &grant,
        "--env",
        "MODE=fast",
        "--",
        "ls",
        "/data",
    ]));
    let out = run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let expected = [
        format!("grant: dir: {} as /data (read-only)", dir.path().display()),
        "grant: env: MODE".to_owned(),
        "grant: network: denied".to_owned(),
        "grant: config: none".to_owned(),
    ];
    for line in expected {
        assert!(text.contains(&line), "missing `{line}` in: {text}");
    }
    // The value of a variable may be a secret: only its name is shown.
    assert!(!text.contains("fast"), "{text}");
    // Without -v, nothing of the kind.
    let out = run(&os(&["--dir", &grant, "--", "ls", "/data"]));
    assert!(!stderr(&out).contains("grant:"), "{}", stderr(&out));
}
