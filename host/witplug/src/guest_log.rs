//! A guest's stdout or stderr turned into log lines ([`Stdio::Log`](crate::Stdio::Log)):
//! each line becomes a `tracing` event of target `witplug::guest`, attributed to the plugin.
//!
//! Servers run many instances at once; inheriting the process's streams would interleave
//! their bytes with no way to tell who wrote what.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A longer line is cut here (and its rest logged as further lines).
const MAX_LINE_BYTES: usize = 4 * 1024;
/// Per stream and instance; past it the output is dropped, with one notice.
const MAX_BYTES_PER_STREAM: usize = 64 * 1024;

/// Which stream, for the log field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Given to `WasiCtxBuilder::stdout`/`stderr`: every stream the guest opens logs as `plugin`.
#[derive(Clone)]
pub(crate) struct LogStream {
    plugin: Arc<str>,
    stream: Stream,
}

impl LogStream {
    pub(crate) fn new(plugin: Arc<str>, stream: Stream) -> Self {
        Self { plugin, stream }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            plugin: self.plugin.clone(),
            stream: self.stream,
            line: Vec::new(),
            written: 0,
        })
    }
}

struct LineWriter {
    plugin: Arc<str>,
    stream: Stream,
    line: Vec<u8>,
    written: usize,
}

impl LineWriter {
    fn emit(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        tracing::info!(
            target: "witplug::guest",
            plugin = &*self.plugin,
            stream = self.stream.name(),
            "{text}"
        );
        self.line.clear();
    }

    fn accept(&mut self, bytes: &[u8]) {
        let room = MAX_BYTES_PER_STREAM.saturating_sub(self.written);
        if room == 0 {
            return;
        }
        let taken = &bytes[..bytes.len().min(room)];
        self.written += taken.len();
        for &byte in taken {
            if byte == b'\n' {
                self.emit();
            } else {
                self.line.push(byte);
                if self.line.len() >= MAX_LINE_BYTES {
                    self.emit();
                }
            }
        }
        if self.written >= MAX_BYTES_PER_STREAM {
            self.emit();
            tracing::warn!(
                target: "witplug::guest",
                plugin = &*self.plugin,
                stream = self.stream.name(),
                "more than {} KiB of output from one instance; the rest is dropped",
                MAX_BYTES_PER_STREAM / 1024
            );
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Dropped output still counts as written: a guest that logs too much is not stalled.
        self.get_mut().accept(bytes);
        Poll::Ready(Ok(bytes.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().emit();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        // A last line without a newline is still the guest's output.
        self.emit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> LineWriter {
        LineWriter {
            plugin: "p".into(),
            stream: Stream::Stdout,
            line: Vec::new(),
            written: 0,
        }
    }

    #[test]
    fn lines_are_cut_at_newlines_and_at_the_line_limit() {
        let mut w = writer();
        w.accept(b"one\ntw");
        assert_eq!(w.line, b"tw");
        w.accept(&vec![b'x'; MAX_LINE_BYTES * 2]);
        assert!(w.line.len() < MAX_LINE_BYTES);
    }

    #[test]
    fn output_past_the_budget_is_dropped() {
        let mut w = writer();
        w.accept(&vec![b'y'; MAX_BYTES_PER_STREAM + 10]);
        assert_eq!(w.written, MAX_BYTES_PER_STREAM);
        w.accept(b"more");
        assert_eq!(w.written, MAX_BYTES_PER_STREAM);
        assert!(w.line.is_empty());
    }
}
