//! `--policy FILE`: the same grants and limits as the equivalent flags, really enforced,
//! merged with flags by the documented rule, and a bad file refused naming the key.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::guest_path;

fn witplug(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("stdin written");
    child.wait_with_output().expect("witplug runs")
}

fn guest(name: &str) -> String {
    guest_path(name).to_str().expect("utf-8 path").to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `-v` lines that say what the plugin got.
fn grant_lines(out: &Output) -> Vec<String> {
    stderr(out)
        .lines()
        .filter_map(|line| line.split_once("grant: ").map(|(_, rest)| rest.to_owned()))
        .collect()
}

fn write_policy(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).expect("write policy");
    path.to_str().expect("utf-8 path").to_owned()
}

/// A data directory with one file, and a policy granting it read-only with limits.
fn data_and_policy(root: &Path) -> (String, String) {
    let data = root.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::write(data.join("notes.txt"), "one two three\n").expect("write");
    let policy = write_policy(
        root,
        &format!(
            "[grants]\ndirs = [\"{}::/data:ro\"]\nenv = [\"MODE=fast\"]\n\
             [limits]\nmax-memory-mib = 128\ntimeout-ms = 5000\nfuel = 900000000\nmax-transfer-mib = 16\n",
            data.display()
        ),
    );
    (data.display().to_string(), policy)
}

const EQUIVALENT_LIMIT_FLAGS: [&str; 8] = [
    "--max-memory",
    "128",
    "--timeout-ms",
    "5000",
    "--fuel",
    "900000000",
    "--max-transfer",
    "16",
];

#[test]
fn run_with_a_policy_grants_what_the_equivalent_flags_grant() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, policy) = data_and_policy(root.path());
    let filetool = guest("rust-filetool");
    let with_file = witplug(
        &[
            "-v",
            "run",
            &filetool,
            "--policy",
            &policy,
            "--",
            "count",
            "/data/notes.txt",
        ],
        b"",
    );
    assert_eq!(with_file.status.code(), Some(0), "{}", stderr(&with_file));
    let grant = format!("{data}::/data:ro");
    let mut flags = vec![
        "-v",
        "run",
        &filetool,
        "--dir",
        &grant,
        "--env",
        "MODE=fast",
    ];
    flags.extend(EQUIVALENT_LIMIT_FLAGS);
    flags.extend(["--", "count", "/data/notes.txt"]);
    let with_flags = witplug(&flags, b"");
    assert_eq!(with_flags.status.code(), Some(0), "{}", stderr(&with_flags));
    assert_eq!(stdout(&with_file), stdout(&with_flags));
    assert!(
        stdout(&with_file).contains("1 3 14"),
        "{}",
        stdout(&with_file)
    );
    let lines = grant_lines(&with_file);
    assert_eq!(lines, grant_lines(&with_flags));
    for expected in [
        format!("dir: {data} as /data (read-only)"),
        "env: MODE".to_owned(),
        "limit: memory 128 MiB".to_owned(),
        "limit: 5s per call".to_owned(),
        "limit: fuel 900000000 per call".to_owned(),
        "limit: transfer 16 MiB per call".to_owned(),
    ] {
        assert!(
            lines.contains(&expected),
            "missing `{expected}` in {lines:?}"
        );
    }
}

#[test]
fn a_policy_grant_is_enforced_read_only_and_nothing_else_is_granted() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, policy) = data_and_policy(root.path());
    let filetool = guest("rust-filetool");
    let out = witplug(
        &[
            "run",
            &filetool,
            "--policy",
            &policy,
            "--",
            "cat",
            "/data/notes.txt",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one two three\n");
    // Read-only as written: no write reaches the host directory.
    let out = witplug(
        &[
            "run",
            &filetool,
            "--policy",
            &policy,
            "--",
            "write",
            "/data/new.txt",
            "x",
        ],
        b"",
    );
    assert!(!out.status.success(), "write must fail: {}", stderr(&out));
    assert!(!Path::new(&data).join("new.txt").exists());
    // The policy file's own directory, next to the grant, is not visible.
    let out = witplug(
        &[
            "run",
            &filetool,
            "--policy",
            &policy,
            "--",
            "cat",
            "/policy.toml",
        ],
        b"",
    );
    assert!(!out.status.success(), "not granted: {}", stdout(&out));
    let out = witplug(
        &[
            "run",
            &filetool,
            "--policy",
            &policy,
            "--",
            "cat",
            &format!("{}/policy.toml", root.path().display()),
        ],
        b"",
    );
    assert!(!out.status.success(), "not granted: {}", stdout(&out));
}

#[test]
fn relative_host_paths_are_relative_to_the_policy_file_not_the_current_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let team = root.path().join("team");
    std::fs::create_dir_all(team.join("data")).expect("mkdir");
    std::fs::write(team.join("data/notes.txt"), "team notes\n").expect("write");
    let policy = write_policy(&team, "[grants]\ndirs = [\"./data::/data:ro\"]\n");
    // Run from elsewhere: `./data` there does not exist.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args([
            "run",
            &guest("rust-filetool"),
            "--policy",
            &policy,
            "--",
            "cat",
            "/data/notes.txt",
        ])
        .current_dir(elsewhere.path())
        .output()
        .expect("witplug runs");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "team notes\n");
}

#[test]
fn transform_with_a_policy_grants_what_the_equivalent_flags_grant() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, _) = data_and_policy(root.path());
    let policy = write_policy(
        root.path(),
        &format!(
            "[grants]\ndirs = [\"{data}::/data:ro\"]\nstderr = \"null\"\n\
             [config]\nmode = \"strict\"\n[limits]\nmax-memory-mib = 64\ntimeout-ms = \"none\"\n"
        ),
    );
    let hostile = guest("rust-hostile");
    let records = b"{\"key\":\"read\",\"fields\":{\"path\":\"/data/notes.txt\"}}\n\
                    {\"key\":\"read\",\"fields\":{\"path\":\"/policy.toml\"}}\n";
    let with_file = witplug(&["-v", "transform", &hostile, "--policy", &policy], records);
    assert_eq!(with_file.status.code(), Some(0), "{}", stderr(&with_file));
    let grant = format!("{data}::/data:ro");
    let with_flags = witplug(
        &[
            "-v",
            "transform",
            &hostile,
            "--dir",
            &grant,
            "--stderr",
            "null",
            "--config",
            "mode=strict",
            "--max-memory",
            "64",
            "--timeout-ms",
            "none",
        ],
        records,
    );
    assert_eq!(with_flags.status.code(), Some(0), "{}", stderr(&with_flags));
    assert_eq!(grant_lines(&with_file), grant_lines(&with_flags));
    assert_eq!(stdout(&with_file), stdout(&with_flags));
    let lines: Vec<serde_json::Value> = stdout(&with_file)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    // The granted file is read; a file outside the grant is not.
    assert_eq!(lines[0]["outcome"], "keep", "{}", lines[0]);
    assert_eq!(
        lines[0]["record"]["fields"]["content"], "one two three\n",
        "{}",
        lines[0]
    );
    assert_eq!(lines[1]["outcome"], "error", "{}", lines[1]);
    let text = grant_lines(&with_file);
    assert!(text.contains(&"config: mode".to_owned()), "{text:?}");
    assert!(text.contains(&"limit: no deadline".to_owned()), "{text:?}");
    assert!(
        text.iter().any(|line| line.ends_with("stderr closed")),
        "{text:?}"
    );
}

#[test]
fn flags_add_to_the_files_grants_and_replace_its_limits() {
    let root = tempfile::tempdir().expect("tempdir");
    let (data, policy) = data_and_policy(root.path());
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("more.txt"), "more\n").expect("write");
    let extra = format!("{}::/more:ro", other.path().display());
    let out = witplug(
        &[
            "-v",
            "run",
            &guest("rust-filetool"),
            "--policy",
            &policy,
            "--dir",
            &extra,
            "--max-memory",
            "300",
            "--",
            "count",
            "/data/notes.txt",
            "/more/more.txt",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines = grant_lines(&out);
    for expected in [
        format!("dir: {data} as /data (read-only)"),
        format!("dir: {} as /more (read-only)", other.path().display()),
        "limit: memory 300 MiB".to_owned(),
        "limit: 5s per call".to_owned(),
    ] {
        assert!(
            lines.contains(&expected),
            "missing `{expected}` in {lines:?}"
        );
    }
    // A guest path in both is an error, as a repeated --dir is.
    let same = format!("{}::/data", other.path().display());
    let out = witplug(
        &[
            "run",
            &guest("rust-filetool"),
            "--policy",
            &policy,
            "--dir",
            &same,
            "--",
            "ls",
            "/data",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("guest path /data is granted twice"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_bad_policy_file_exits_2_naming_file_and_key_and_runs_nothing() {
    let root = tempfile::tempdir().expect("tempdir");
    for (text, key) in [
        ("[limits]\ntimeout-ms = 0\n", "`limits.timeout-ms`"),
        ("[grants]\ndirs = [\"/tmp::data\"]\n", "`grants.dirs[0]`"),
        ("[grants]\nnetwork = true\n", "unknown field `network`"),
        (
            "[limits]\nmax-memory-mib = 5000\n",
            "`limits.max-memory-mib`",
        ),
    ] {
        let policy = write_policy(root.path(), text);
        let located = format!("{policy}:2:");
        for args in [
            vec![
                "run",
                guest_path("rust-filetool").to_str().expect("utf-8"),
                "--policy",
                &policy,
                "--",
                "ls",
                "/",
            ],
            vec![
                "transform",
                guest_path("rust-email-normalizer").to_str().expect("utf-8"),
                "--policy",
                &policy,
            ],
        ] {
            let out = witplug(&args, b"{\"key\":\"k\",\"fields\":{}}\n");
            assert_eq!(
                out.status.code(),
                Some(2),
                "{text} {args:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains(&located), "{text}: {}", stderr(&out));
            assert!(stderr(&out).contains(key), "{text}: {}", stderr(&out));
            assert!(stdout(&out).is_empty(), "nothing ran: {}", stdout(&out));
        }
    }
    // Well formed, but the directory is not there: a grant error, 1, as for --dir.
    let policy = write_policy(root.path(), "[grants]\ndirs = [\"missing::/m\"]\n");
    let out = witplug(
        &[
            "run",
            &guest("rust-filetool"),
            "--policy",
            &policy,
            "--",
            "ls",
            "/m",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`grants.dirs[0]`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn subcommands_refuse_settings_they_cannot_honour() {
    let root = tempfile::tempdir().expect("tempdir");
    let policy = write_policy(root.path(), "[config]\nmode = \"x\"\n");
    let out = witplug(
        &[
            "run",
            &guest("rust-filetool"),
            "--policy",
            &policy,
            "--",
            "ls",
            "/",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("configuration `mode`"),
        "{}",
        stderr(&out)
    );
    let out = witplug(
        &[
            "transform",
            &guest("rust-email-normalizer"),
            "--stdout",
            "inherit",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("inherit stdout"), "{}", stderr(&out));
}
