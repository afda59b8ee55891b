//! `filetool`: a small `wasi:cli` command for testing the capabilities a host grants
//! (preopened directories, environment variables, stdio). Plain std, no WIT.
//!
//! ```text
//! filetool cat PATH          print a file
//! filetool count PATH...     LINES WORDS BYTES PATH per file, like wc
//! filetool write PATH TEXT   create or truncate PATH and write TEXT
//! filetool ls DIR            entry names, sorted, one per line
//! filetool env NAME...       NAME=VALUE or `NAME is not set`
//! ```
//!
//! A failed operation prints `filetool: CMD PATH: ERROR` to stderr and exits with 1;
//! bad usage prints the usage to stderr and exits with 2.

#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::process::ExitCode;
use std::{env, fs};

const USAGE: &str = "\
usage: filetool cat PATH
       filetool count PATH...
       filetool write PATH TEXT
       filetool ls DIR
       filetool env NAME...";

/// An operation that failed on one path.
struct Failure {
    path: String,
    error: io::Error,
}

/// Attaches the path an I/O error happened on.
trait OnPath<T> {
    fn on(self, path: &str) -> Result<T, Failure>;
}

impl<T> OnPath<T> for io::Result<T> {
    fn on(self, path: &str) -> Result<T, Failure> {
        self.map_err(|error| Failure {
            path: path.to_owned(),
            error,
        })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let Some((command, operands)) = args.split_first() else {
        return usage();
    };
    let result = match (command.as_str(), operands) {
        ("cat", [path]) => cat(path),
        ("count", paths @ [_, ..]) => count(paths),
        ("write", [path, text]) => write(path, text),
        ("ls", [dir]) => ls(dir),
        ("env", names @ [_, ..]) => print_env(names),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure { path, error }) => {
            eprintln!("filetool: {command} {path}: {error}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}

fn cat(path: &str) -> Result<(), Failure> {
    let bytes = fs::read(path).on(path)?;
    io::stdout().lock().write_all(&bytes).on(path)
}

fn count(paths: &[String]) -> Result<(), Failure> {
    for path in paths {
        let bytes = fs::read(path).on(path)?;
        let lines = bytes.iter().filter(|&&b| b == b'\n').count();
        let words = bytes
            .split(u8::is_ascii_whitespace)
            .filter(|word| !word.is_empty())
            .count();
        println!("{lines} {words} {} {path}", bytes.len());
    }
    Ok(())
}

fn write(path: &str, text: &str) -> Result<(), Failure> {
    fs::write(path, text).on(path)?;
    println!("wrote {} bytes to {path}", text.len());
    Ok(())
}

fn ls(dir: &str) -> Result<(), Failure> {
    let mut names = fs::read_dir(dir)
        .on(dir)?
        .map(|entry| entry.map(|entry| entry.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<Vec<_>>>()
        .on(dir)?;
    names.sort();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

fn print_env(names: &[String]) -> Result<(), Failure> {
    for name in names {
        match env::var(name) {
            Ok(value) => println!("{name}={value}"),
            Err(_) => println!("{name} is not set"),
        }
    }
    Ok(())
}
