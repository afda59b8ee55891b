//! A preview1 program exercising what the WASI preview1 tests check: arguments, the
//! environment, exit statuses, files in granted directories, stdio, clocks and randomness.
//! Its first argument picks the check; the host's tests assert on its output.

use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rest: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    match (args.get(1).map(String::as_str), rest.as_slice()) {
        (Some("args"), _) => {
            for arg in &args {
                println!("{arg}");
            }
        }
        (Some("env"), [name]) => match std::env::var(name) {
            Ok(value) => println!("{name}={value}"),
            Err(_) => {
                println!("{name} unset");
                return ExitCode::from(3);
            }
        },
        (Some("env-count"), []) => println!("{}", std::env::vars().count()),
        (Some("exit"), [code]) => std::process::exit(code.parse().unwrap_or(99)),
        (Some("cat"), [path]) => match std::fs::read_to_string(path) {
            Ok(text) => print!("{text}"),
            Err(error) => return fail(&format!("cannot read {path}: {error}")),
        },
        (Some("write"), [path, text]) => {
            if let Err(error) = std::fs::write(path, text) {
                return fail(&format!("cannot write {path}: {error}"));
            }
            println!("wrote {path}");
        }
        (Some("ls"), [path]) => match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for name in names {
                    println!("{name}");
                }
            }
            Err(error) => return fail(&format!("cannot list {path}: {error}")),
        },
        (Some("stdin"), []) => {
            let mut input = String::new();
            if let Err(error) = std::io::stdin().read_to_string(&mut input) {
                return fail(&format!("cannot read stdin: {error}"));
            }
            print!("{}", input.to_uppercase());
            eprintln!("read {} bytes", input.len());
        }
        (Some("clock"), []) => {
            let wall = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let start = Instant::now();
            std::thread::sleep(Duration::from_millis(20));
            println!("wall {wall}");
            println!("slept_ms {}", start.elapsed().as_millis());
        }
        (Some("random"), []) => {
            // Fresh hasher keys come from `random_get`.
            println!("{:016x}", RandomState::new().hash_one(0u8));
        }
        (Some("panic"), []) => panic!("the probe was asked to panic"),
        (Some("spin"), []) => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        (Some("grow"), []) => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        _ => {
            eprintln!(
                "usage: wasip1-probe args|env NAME|env-count|exit N|cat PATH|write PATH TEXT|ls PATH|stdin|clock|random|panic|spin|grow"
            );
            return ExitCode::from(2);
        }
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("{message}");
    ExitCode::FAILURE
}
