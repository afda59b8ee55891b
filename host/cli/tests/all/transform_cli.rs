//! `witplug transform` end to end: nothing lost, whatever the input, the signals or the
//! pipes (the sample output itself is checked in `cli.rs`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value as Json;

use crate::common::guest_path;

fn normalizer() -> String {
    guest_path("rust-email-normalizer")
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}

fn transform(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .arg("transform")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug starts");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let out = child.wait_with_output().expect("witplug runs");
    writer.join().expect("writer").expect("stdin written");
    out
}

fn output_lines(out: &Output) -> Vec<Json> {
    String::from_utf8(out.stdout.clone())
        .expect("output is UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("each output line is JSON"))
        .collect()
}

fn assert_one_line_per_input_line(lines: &[Json], count: usize) {
    assert_eq!(lines.len(), count);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 1, "out of order or missing: {line}");
    }
}

fn record_line(i: usize) -> String {
    format!("{{\"key\":\"k{i}\",\"fields\":{{\"email\":\"U{i}@Example.org\"}}}}\n")
}

#[test]
fn a_non_utf8_line_costs_only_itself() {
    let mut input = Vec::new();
    for i in 1..=3000 {
        if i == 2000 {
            input.extend(b"{\"key\":\"\xff\xfe\"}\n");
        } else {
            input.extend(record_line(i).as_bytes());
        }
    }
    let out = transform(&[&normalizer(), "--input", "-"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = output_lines(&out);
    assert_one_line_per_input_line(&lines, 3000);
    assert_eq!(lines[1999]["outcome"], "invalid-input");
    assert_eq!(
        lines[1999]["error"],
        "line 2000: not UTF-8: invalid byte at column 9"
    );
    assert_eq!(
        lines[2999]["record"]["fields"]["email"],
        "u3000@example.org"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("3000 lines: 2999 kept, 0 split, 0 dropped, 0 errors, 1 invalid input"),
        "{stderr}"
    );
}

#[test]
fn blank_lines_give_an_output_line_and_the_summary_adds_up() {
    let input = format!(
        "{}\n   \n\t\r\n{}",
        record_line(1),
        record_line(2).trim_end()
    );
    let out = transform(&[&normalizer()], input.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = output_lines(&out);
    // The record, an empty line, two whitespace lines and a last line without newline.
    assert_one_line_per_input_line(&lines, 5);
    for blank in &lines[1..4] {
        assert_eq!(blank["outcome"], "invalid-input", "{blank}");
        assert!(
            blank["error"]
                .as_str()
                .expect("error")
                .contains("blank line")
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("5 lines: 2 kept, 0 split, 0 dropped, 0 errors, 3 invalid input"),
        "{stderr}"
    );
}

#[test]
fn an_over_long_line_is_invalid_input_and_reading_resumes_after_it() {
    let mut input = record_line(1).into_bytes();
    input.extend(std::iter::repeat_n(b'x', 3 << 20));
    input.push(b'\n');
    input.extend(record_line(3).as_bytes());
    let out = transform(&[&normalizer(), "--max-line-bytes", "4096"], &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = output_lines(&out);
    assert_one_line_per_input_line(&lines, 3);
    assert_eq!(
        lines[1]["error"],
        "line 2: line longer than 4096 bytes (see --max-line-bytes); skipped to its end"
    );
    assert_eq!(lines[2]["outcome"], "keep");
}

#[test]
fn a_bom_at_the_start_is_accepted_and_messages_give_the_column() {
    let input = format!("\u{feff}{}this is not JSON\n", record_line(1));
    let out = transform(&[&normalizer()], input.as_bytes());
    let lines = output_lines(&out);
    assert_one_line_per_input_line(&lines, 2);
    assert_eq!(lines[0]["outcome"], "keep");
    assert_eq!(
        lines[1]["error"],
        "line 2: not valid JSON at column 2: expected ident"
    );
}

#[test]
fn values_pass_through_unchanged_and_duplicates_are_kept() {
    let input = concat!(
        r#"{"key":"f","fields":{"email":"a@b.co","f":-100519.43134222063,"z":-0.0,"n":-0,"g":1.5e300}}"#,
        "\n",
        r#"{"key":"d","fields":{"email":"A@b.co","email":" X@y.zz "}}"#,
        "\n",
        r#"{"key":"d","key":"e"}"#,
        "\n",
        r#"{"fields":{"u":18446744073709551615,"t":1e-400}}"#,
        "\n",
    );
    let out = transform(&[&normalizer()], input.as_bytes());
    let text = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let raw: Vec<&str> = text.lines().collect();
    assert_eq!(
        raw[0],
        r#"{"line":1,"key":"f","outcome":"keep","record":{"key":"f","fields":{"email":"a@b.co","f":-100519.43134222063,"z":-0.0,"n":0,"g":1.5e+300}}}"#
    );
    // The first `email` is the rule's; the second is trimmed (step 1) and kept.
    assert_eq!(
        raw[1],
        r#"{"line":2,"key":"d","outcome":"keep","record":{"key":"d","fields":{"email":"a@b.co","email":"X@y.zz"}}}"#
    );
    let lines = output_lines(&out);
    assert_eq!(lines[2]["error"], "line 3: member `key` appears twice");
    let error = lines[3]["error"].as_str().expect("error");
    assert!(
        error.starts_with("line 4: field `u`: integer 18446744073709551615 does not fit in s64"),
        "{error}"
    );
}

#[test]
fn input_dash_is_stdin() {
    let out = transform(&[&normalizer(), "--input", "-"], record_line(1).as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_one_line_per_input_line(&output_lines(&out), 1);
}

#[test]
fn a_failed_one_record_batch_is_not_retried() {
    let hostile = guest_path("rust-hostile");
    let out = transform(
        &[
            hostile.to_str().expect("utf-8"),
            "--batch",
            "1",
            "--timeout-ms",
            "200",
        ],
        b"{\"key\":\"spin\"}\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = output_lines(&out);
    assert_eq!(lines[0]["outcome"], "plugin-failure", "{}", lines[0]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("retrying record by record"), "{stderr}");
}

/// A guest blocked in a sleep is stopped by `--timeout-ms` like a spinning one: its record
/// gets a `plugin-failure` line naming the timeout, and the run goes on to succeed.
#[test]
fn a_sleeping_guest_is_a_plugin_failure_at_the_timeout() {
    let hostile = guest_path("rust-hostile");
    let started = std::time::Instant::now();
    let out = transform(
        &[hostile.to_str().expect("utf-8"), "--timeout-ms", "300"],
        b"{\"key\":\"sleep\"}\n{\"key\":\"fine\"}\n",
    );
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The guest would sleep 60 s; well before that, the deadline has stopped it.
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    let lines = output_lines(&out);
    assert_eq!(lines[0]["key"], "sleep", "{}", lines[0]);
    assert_eq!(lines[0]["outcome"], "plugin-failure", "{}", lines[0]);
    let error = lines[0]["error"].as_str().expect("an error text");
    assert!(
        error.contains("ran out of time") && error.contains("300ms"),
        "{error}"
    );
}

#[test]
fn the_summary_does_not_panic_when_stderr_is_closed() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["transform", &normalizer()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug starts");
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(record_line(1).as_bytes()).expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("runs");
    assert!(out.status.success(), "{:?}", out.status);
    assert_one_line_per_input_line(&output_lines(&out), 1);
}

/// Kills the child if a test hangs (e.g. output that never comes).
fn watchdog(pid: u32) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    });
}

fn read_output_line(stdout: &mut BufReader<ChildStdout>) -> Json {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn stop_with(signal: &str, expected_code: i32) {
    let (mut child, mut stdout) = spawn_live(&["--batch", "500"]);
    let mut stdin = child.stdin.take().expect("stdin");
    // Two lines of a batch of 500, the pipe kept open: they come out after the idle time.
    stdin
        .write_all(format!("{}{}", record_line(1), record_line(2)).as_bytes())
        .expect("write");
    stdin.flush().expect("flush");
    assert_eq!(read_output_line(&mut stdout)["line"], 1);
    assert_eq!(read_output_line(&mut stdout)["line"], 2);

    // Many more, still arriving while the signal comes.
    let writer = std::thread::spawn(move || {
        for i in 3..=20_000 {
            if stdin.write_all(record_line(i).as_bytes()).is_err() {
                break; // witplug has stopped reading
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    let out = child.wait_with_output().expect("exits");
    writer.join().expect("writer");
    assert_eq!(out.status.code(), Some(expected_code), "{:?}", out.status);

    // Every line taken in was processed and written, in order, and the summary says so.
    let lines: Vec<Json> = rest
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 3, "{line}");
        assert_eq!(line["outcome"], "keep");
    }
    let written = lines.len() + 2;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("witplug: {written} lines: {written} kept")),
        "{written} lines written; stderr: {stderr}"
    );
    assert!(stderr.contains("stopped by SIG"), "{stderr}");
}

#[test]
fn sigterm_finishes_the_batch_in_flight_and_exits_143() {
    stop_with("-TERM", 143);
}

#[test]
fn sigint_finishes_the_batch_in_flight_and_exits_130() {
    stop_with("-INT", 130);
}

/// The peak resident memory of a live process, in KiB (`VmHWM`, a high-water mark).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc status");
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("VmHWM value")
}

#[test]
fn memory_stays_bounded_when_every_line_is_a_field_bomb() {
    // Just under the default 1 MiB line cap, each `"a":1` (6 bytes) a `Field` once parsed:
    // ~12 MB per line in the host. Without a byte budget the lines piled up in the
    // read-ahead and the batch (old code: ~310 MB peak for these 12 lines); with it a few
    // are in flight at a time. One job, so that the bound is about the budget: each job
    // holds a batch of its own (measured on 2026-12-04 with the debug build: ~135 MB peak
    // with `--jobs 1`, 195-240 MB with two jobs, whose bound this was too tight for).
    const LINES: usize = 12;
    let fields = vec![r#""a":1"#; 170_000].join(",");
    let line = format!("{{\"key\":\"bomb\",\"fields\":{{\"email\":\"A@B.co\",{fields}}}}}\n");
    assert!(line.len() < 1024 * 1024);
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["transform", &normalizer(), "--jobs", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug starts");
    watchdog(child.id());
    let mut stdin = child.stdin.take().expect("stdin");
    let (done_sender, done) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        for _ in 0..LINES {
            stdin.write_all(line.as_bytes()).expect("write");
        }
        // stdin stays open until the peak is read, so that the process is still there.
        let _ = done.recv();
        drop(stdin);
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    for i in 1..=LINES {
        let out = read_output_line(&mut stdout);
        assert_eq!(out["line"], i);
        assert_eq!(out["outcome"], "keep", "line {i}");
        assert_eq!(out["record"]["fields"]["email"], "a@b.co");
    }
    let peak = peak_rss_kib(child.id());
    done_sender.send(()).expect("writer waits");
    writer.join().expect("writer");
    let out = child.wait_with_output().expect("exits");
    assert!(out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{LINES} lines: {LINES} kept")),
        "{stderr}"
    );
    assert!(peak < 200 * 1024, "peak RSS {peak} KiB");
}

#[test]
fn a_batch_ends_once_its_input_reaches_max_batch_bytes() {
    // Six ~60-byte lines, read at once, with room for 1000 records but 100 bytes a batch:
    // batches of two. Which batch failed shows in the retry warning's record count.
    let faulty = guest_path("rust-faulty");
    let mut input = String::new();
    for i in 1..=6 {
        let key = if i == 3 {
            "panic".to_owned()
        } else {
            format!("k{i}")
        };
        input.push_str(&format!(
            "{{\"key\":\"{key}\",\"fields\":{{\"pad\":\"{}\"}}}}\n",
            "x".repeat(30)
        ));
    }
    let out = transform(
        &[
            faulty.to_str().expect("utf-8"),
            "--batch",
            "1000",
            "--max-batch-bytes",
            "100",
        ],
        input.as_bytes(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = output_lines(&out);
    assert_one_line_per_input_line(&lines, 6);
    for (i, line) in lines.iter().enumerate() {
        let expected = if i == 2 { "plugin-failure" } else { "keep" };
        assert_eq!(line["outcome"], expected, "{line}");
    }
    assert!(
        stderr.contains("retrying record by record") && stderr.contains("records=2"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("retrying record by record").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn max_batch_bytes_must_be_at_least_one() {
    let out = transform(&[&normalizer(), "--max-batch-bytes", "0"], b"");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--max-batch-bytes") && stderr.contains("must be at least 1"),
        "{stderr}"
    );
}

fn spawn_live(extra: &[&str]) -> (Child, BufReader<ChildStdout>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
        .args(["transform", &normalizer()])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("witplug starts");
    watchdog(child.id());
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    (child, stdout)
}

/// Every line the process has read when the signal comes gets its output line: the lines
/// in the read-ahead channel, the one the reader is handing over and those in its buffer.
fn no_line_read_is_lost_on(signal: &str, expected_code: i32) {
    const LINES: usize = 3000;
    // One record per plugin call, so that processing lags far behind reading.
    let (mut child, mut stdout) = spawn_live(&["--batch", "1"]);
    let stdin = child.stdin.take().expect("stdin");
    let mut input = String::new();
    for i in 1..=LINES {
        input.push_str(&record_line(i));
    }
    let writer = std::thread::spawn(move || {
        let mut stdin = stdin;
        stdin
            .write_all(input.as_bytes())
            .expect("all lines written");
        stdin
    });
    assert_eq!(read_output_line(&mut stdout)["line"], 1);
    // Output is read all along, so that a full stdout pipe never stops the process.
    let collector = std::thread::spawn(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
        rest
    });
    let stdin = writer.join().expect("writer");
    // Wait until the process has read everything out of the pipe (stdin stays open).
    let started = std::time::Instant::now();
    while rustix::io::ioctl_fionread(&stdin).expect("FIONREAD") > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "input not read"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let rest = collector.join().expect("collector");
    let out = child.wait_with_output().expect("exits");
    drop(stdin);
    assert_eq!(out.status.code(), Some(expected_code), "{:?}", out.status);
    let lines: Vec<Json> = rest
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(lines.len() + 1, LINES, "lines lost after the signal");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 2, "{line}");
        assert_eq!(line["outcome"], "keep");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("witplug: {LINES} lines: {LINES} kept")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "stopped by SIG{} after line {LINES}",
            &signal[1..]
        )),
        "{stderr}"
    );
}

#[test]
fn sigterm_loses_no_line_already_read() {
    no_line_read_is_lost_on("-TERM", 143);
}

#[test]
fn sigint_loses_no_line_already_read() {
    no_line_read_is_lost_on("-INT", 130);
}

/// With `--jobs`, a batch that finishes early waits for the ones before it: every batch
/// here is one record, and the earlier ones sleep longest.
#[test]
fn jobs_keep_input_order_when_later_batches_finish_first() {
    let hostile = guest_path("rust-hostile");
    let mut input = String::new();
    for i in 1..=12 {
        // 110, 100, ..., 0 ms: each batch is slower than the one after it.
        let ms = (12 - i) * 10;
        input.push_str(&format!(
            "{{\"key\":\"sleep\",\"fields\":{{\"ms\":{ms},\"n\":{i}}}}}\n"
        ));
    }
    let out = transform(
        &[
            hostile.to_str().expect("utf-8"),
            "--batch",
            "1",
            "--jobs",
            "4",
        ],
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = output_lines(&out);
    assert_one_line_per_input_line(&lines, 12);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["outcome"], "keep", "{line}");
        assert_eq!(line["record"]["fields"]["n"], i + 1, "{line}");
    }
}

/// Many jobs write byte for byte what one job writes, retries of failed batches, invalid
/// lines and the summary included.
#[test]
fn jobs_write_exactly_what_one_job_writes() {
    let faulty = guest_path("rust-faulty");
    let mut input = String::new();
    for i in 1..=3000 {
        match i % 97 {
            // A panic fails its whole batch: the retry record by record keeps the others.
            0 => input.push_str("{\"key\":\"panic\"}\n"),
            13 => input.push_str("not json\n"),
            _ => input.push_str(&record_line(i)),
        }
    }
    let run = |jobs: &str| {
        let out = transform(
            &[
                faulty.to_str().expect("utf-8"),
                "--batch",
                "16",
                "--jobs",
                jobs,
            ],
            input.as_bytes(),
        );
        assert!(
            out.status.success(),
            "--jobs {jobs}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let one = run("1");
    let lines = output_lines(&one);
    assert_one_line_per_input_line(&lines, 3000);
    let failures = lines
        .iter()
        .filter(|line| line["outcome"] == "plugin-failure")
        .count();
    assert_eq!(failures, 3000 / 97, "only the panicking records fail");
    for jobs in ["2", "5"] {
        let many = run(jobs);
        assert!(
            one.stdout == many.stdout,
            "--jobs {jobs} wrote other lines than --jobs 1"
        );
        let summary = |out: &Output| {
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|line| line.contains(" lines: "))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&one), summary(&many), "--jobs {jobs}");
        assert_eq!(summary(&many).len(), 1, "one summary line");
    }
}

#[test]
fn jobs_must_be_between_1_and_256() {
    for jobs in ["0", "257", "many"] {
        let out = transform(&[&normalizer(), "--jobs", jobs], b"");
        assert_eq!(out.status.code(), Some(2), "--jobs {jobs}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--jobs"), "--jobs {jobs}: {stderr}");
    }
}

/// `witplug transform` runs a plugin of either world version the same way: every build of
/// the sample rule writes byte for byte what the 0.1.0 Rust guest writes, on the sample
/// records (every kind of outcome, bytes, null, a non-JSON line) with a blocked domain.
#[test]
fn every_world_version_writes_what_the_0_1_0_plugin_writes() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/records.jsonl"
    ))
    .expect("sample records");
    let run = |name: &str| {
        let plugin = guest_path(name);
        let out = transform(
            &[
                plugin.to_str().expect("utf-8"),
                "--config",
                "blocked-domains=mailinator.com",
                "--batch",
                "4",
            ],
            &input,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let reference = run(crate::common::NORMALIZERS[0]);
    assert!(
        reference.split(|&b| b == b'\n').count() > 10,
        "the samples give output"
    );
    for name in &crate::common::NORMALIZERS[1..] {
        assert!(
            run(name) == reference,
            "{name} wrote other lines than the 0.1.0 Rust guest"
        );
    }
}

/// `--profile perfmap` writes the plugin's function names where `perf report` looks for
/// them, whether the code was compiled now or read from the compile cache. (The Go guest
/// keeps its name section; the Rust guests are built with `strip = true`.)
#[test]
fn profile_perfmap_names_the_plugin_functions_for_perf() {
    let cache = tempfile::tempdir().expect("tempdir");
    let cache_dir = cache.path().to_str().expect("utf-8 path").to_owned();
    let plugin = guest_path("go-email-normalizer");
    for run in ["compiled", "from the cache"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_witplug"))
            .arg("transform")
            .arg(&plugin)
            .args(["--profile", "perfmap"])
            .args(["--cache-dir", &cache_dir])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("witplug starts");
        let map_path = format!("/tmp/perf-{}.map", child.id());
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(record_line(1).as_bytes()).expect("stdin");
        drop(input);
        let out = child.wait_with_output().expect("witplug runs");
        let map = std::fs::read_to_string(&map_path);
        let _ = std::fs::remove_file(&map_path);
        assert!(
            out.status.success(),
            "{run}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_one_line_per_input_line(&output_lines(&out), 1);
        let map = map.unwrap_or_else(|e| panic!("{run}: no {map_path}: {e}"));
        // Each line is `ADDRESS SIZE NAME`; the rule's function is among them.
        assert!(
            map.lines()
                .any(|line| line.split(' ').nth(2) == Some("wit_component_rule.Apply")),
            "{run}: no guest function in {map_path}:\n{}",
            crate::common::tail(&map, 2000)
        );
    }
}
