//! Writing to stdout and stderr as Unix tools do.
//!
//! `println!` panics when stdout is a closed pipe (`witplug inspect x | head -1`), and
//! `eprintln!` when stderr is. The CLI writes through these instead: a closed stdout ends
//! the command quietly with [`BROKEN_PIPE_EXIT`] (what a shell reports for a tool killed by
//! SIGPIPE), and a closed stderr loses the message but nothing else.

use std::io::Write as _;

/// The exit status after stdout was closed by its reader: 128 + SIGPIPE, as a shell shows
/// for `yes | head -1`.
pub const BROKEN_PIPE_EXIT: u8 = 141;

/// Writes one line to stdout. The error, if any, is an `io::Error`; [`is_broken_pipe`]
/// tells the caller's caller to end quietly.
pub fn stdout_line(args: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// Writes one line to stderr; if stderr is closed the line is lost, quietly.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Whether `error` (or any of its causes) is a write to a pipe whose reader has gone.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `println!` that returns the write error instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};
