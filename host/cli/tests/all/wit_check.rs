//! `witplug wit-check` end to end: witplug's own WIT against itself and against built
//! guests, a mistyped guest named by function, exit codes (the catalogue of changes is in
//! `host/witplug-wit/tests/catalogue.rs`).

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::common::guest_path;

fn wit_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wit")
}

fn wit_check(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_witplug"))
        .arg("wit-check")
        .args(args)
        .output()
        .expect("witplug runs")
}

#[test]
fn the_built_in_package_fits_itself_and_its_sample_guests() {
    let wit = wit_dir();
    let out = wit_check(&[wit.as_os_str(), wit.as_os_str(), "--both-ways".as_ref()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("world transform-plugin: (the component model's type check agrees)"),
        "{stdout}"
    );
    for guest in ["rust-email-normalizer", "go-email-normalizer"] {
        let component = guest_path(guest);
        let out = wit_check(&[
            wit.as_os_str(),
            component.as_os_str(),
            "--world".as_ref(),
            "transform-plugin".as_ref(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{guest}: {stdout}");
        assert!(
            stdout.contains("plugins of NEW on hosts of OLD: fit"),
            "{guest}: {stdout}"
        );
    }
}

#[test]
fn a_mistyped_guest_is_refused_naming_the_function_and_types() {
    let wit = wit_dir();
    let mistyped = guest_path("rust-mistyped");
    let out = wit_check(&[
        wit.as_os_str(),
        mistyped.as_os_str(),
        "--world".as_ref(),
        "transform-plugin".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "witplug:plugin/transformer.process-batch: parameter `batch` changed type from `list<record>` to `list<string>`"
        ),
        "{stdout}"
    );
}

#[test]
fn unreadable_inputs_and_ambiguous_worlds_exit_2_with_a_reason() {
    let wit = wit_dir();
    let out = wit_check(&[wit.as_os_str(), "no/such/dir".as_ref()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));

    let component = guest_path("rust-email-normalizer");
    let out = wit_check(&[wit.as_os_str(), component.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--world") && stderr.contains("transform-plugin"),
        "{stderr}"
    );
}
