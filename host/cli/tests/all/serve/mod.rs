//! `witplug serve`: the HTTP handlers (`http-hello`, `http-auth`, `http-geo`, Rust and Go,
//! and the Rust `http-hostile`) behind the real server binary, driven by a small HTTP/1.1
//! client over `std::net` written here (no async runtime, no client crate).
//!
//! Written from the contract (`tasks/serve-spec.md`): expected values come from the spec,
//! and the Rust and Go handlers of a job are held to the same answers.
//!
//! Every wait has a deadline and says what it waited for: a test fails, it never hangs.
//! Time bounds only check that something happens at all (and not before its deadline),
//! never how fast.

mod app;
mod differential;
mod hostile;
mod lifecycle;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A port nobody listens on right now.
pub use crate::common::free_port;
use crate::common::{WitplugChild, guests_dir, tail, witplug_command};

/// How long a server gets to print its `listening on` line (a first compile of a Go
/// component in a busy test run takes a while).
const SERVER_START: Duration = Duration::from_secs(240);

/// How long one request may take end to end unless a test says otherwise.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Guests

/// The built component of an HTTP handler job (`hello`, `auth`, `geo`, `hostile`) in one
/// language (`rust` or `go`): `target/guests/LANG-http-JOB.wasm` (the naming of the other
/// guests), or `http-JOB-LANG.wasm` / `http-JOB.wasm` should the build name them so.
/// A missing guest fails the test: the tests are only meaningful against the real ones.
pub fn http_guest(language: &str, job: &str) -> PathBuf {
    let dir = guests_dir();
    let candidates = [
        format!("{language}-http-{job}.wasm"),
        format!("http-{job}-{language}.wasm"),
        format!("http-{job}.wasm"),
    ];
    let found = candidates
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        // `http-JOB.wasm` only stands for the Rust build (hostile and hello are Rust-only).
        .find(|path| language == "rust" || !path.ends_with(format!("http-{job}.wasm")));
    found.unwrap_or_else(|| {
        panic!(
            "the {language} `http-{job}` guest is missing from {} (looked for {candidates:?}): \
             run `cargo xtask build`",
            dir.display()
        )
    })
}

/// The file stem of a component: a single-component server's route name.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("a UTF-8 file stem")
        .to_owned()
}

pub fn path_text(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

/// The compile cache the servers of this test process share (so that each guest is
/// compiled once, not once per server).
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-compile-cache")
}

// ---------------------------------------------------------------------------------------
// The server process

/// A `witplug serve` child process. Its stdout lines and its stderr are collected by
/// threads; dropping it kills and reaps it.
pub struct Server {
    process: WitplugChild,
    addr: SocketAddr,
    stdout_lines: Arc<Mutex<Vec<String>>>,
    /// In a mutex so that `&Server` can be shared by client threads.
    stdout_rx: Mutex<Receiver<String>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

/// How to start a server.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// The working directory (default: the test's).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Server {
    /// `witplug serve ARGS... --addr 127.0.0.1:0` (no `--addr` added when ARGS have one),
    /// waiting for its `listening on` line.
    pub fn start<S: AsRef<str>>(args: &[S]) -> Server {
        Server::start_with(args, &ServerOptions::default())
    }

    pub fn start_with<S: AsRef<str>>(args: &[S], options: &ServerOptions) -> Server {
        let mut server = Server::spawn(args, options);
        server.wait_listening();
        server
    }

    /// Spawns the process without waiting for anything.
    pub fn spawn<S: AsRef<str>>(args: &[S], options: &ServerOptions) -> Server {
        let mut full: Vec<String> = vec!["serve".to_owned()];
        full.extend(args.iter().map(|a| a.as_ref().to_owned()));
        if !full
            .iter()
            .any(|a| a == "--addr" || a.starts_with("--addr="))
        {
            full.push("--addr".to_owned());
            full.push("127.0.0.1:0".to_owned());
        }
        let mut command = witplug_command(&full);
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("WITPLUG_CACHE_DIR", cache_dir())
            .env("RUST_LOG", "info");
        if let Some(cwd) = &options.cwd {
            command.current_dir(cwd);
        }
        for (name, value) in &options.env {
            command.env(name, value);
        }
        let mut process =
            WitplugChild::spawn(&mut command, &format!("`witplug {}`", full.join(" ")));

        let (stdout, stderr_pipe) = process.take_pipes();
        let stdout = stdout.expect("piped stdout");
        let stderr_pipe = stderr_pipe.expect("piped stderr");
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, stdout_rx) = mpsc::channel();
        let lines = stdout_lines.clone();
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("stdout lock").push(line.clone());
                let _ = tx.send(line);
            }
        });
        let err_buffer = stderr.clone();
        let err_reader = std::thread::spawn(move || {
            let mut pipe = stderr_pipe;
            let mut chunk = [0u8; 8192];
            loop {
                match pipe.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => err_buffer
                        .lock()
                        .expect("stderr lock")
                        .extend_from_slice(&chunk[..n]),
                }
            }
        });
        Server {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout_lines,
            stdout_rx: Mutex::new(stdout_rx),
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// Waits for the first stdout line, `listening on http://IP:PORT`, and connects to it
    /// once (an unspecified IP is reached on loopback).
    fn wait_listening(&mut self) {
        let line = self.next_stdout_line(SERVER_START, "its `listening on` line");
        let addr_text = line
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| {
                panic!(
                    "{}: first stdout line is `{line}`, not `listening on http://IP:PORT`; stderr:\n{}",
                    self.label(),
                    self.stderr_tail()
                )
            });
        let mut addr: SocketAddr = addr_text
            .parse()
            .unwrap_or_else(|e| panic!("{}: `{line}` does not name IP:PORT: {e}", self.label()));
        assert_ne!(addr.port(), 0, "{}: `{line}` names port 0", self.label());
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        self.addr = addr;
        if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) {
            panic!(
                "{}: says `{line}` but {addr} refuses connections: {e}; stderr:\n{}",
                self.label(),
                self.stderr_tail()
            );
        }
    }

    /// The next line the server writes to stdout, within `bound`.
    pub fn next_stdout_line(&mut self, bound: Duration, what: &str) -> String {
        let deadline = Instant::now() + bound;
        loop {
            match self
                .stdout_rx
                .get_mut()
                .expect("stdout lock")
                .recv_timeout(Duration::from_millis(100))
            {
                Ok(line) => return line,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.process.wait();
                    panic!(
                        "{} closed its stdout ({status}) before {what}; stderr:\n{}",
                        self.label(),
                        self.stderr_tail()
                    );
                }
            }
            if let Some(status) = self.process.try_wait() {
                // The reader may still hold a line written just before the exit.
                if let Ok(line) = self
                    .stdout_rx
                    .get_mut()
                    .expect("stdout lock")
                    .recv_timeout(Duration::from_millis(500))
                {
                    return line;
                }
                panic!(
                    "{} exited ({status}) before {what}; stderr:\n{}",
                    self.label(),
                    self.stderr_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} printed no {what} within {bound:?}; stderr:\n{}",
                self.label(),
                self.stderr_tail()
            );
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn label(&self) -> &str {
        self.process.label()
    }

    /// Sends a request; a transport failure fails the test (with the server's log).
    pub fn send(&self, request: &Request) -> Response {
        self.send_to(self.addr, request)
    }

    pub fn send_to(&self, addr: SocketAddr, request: &Request) -> Response {
        request.send(addr).unwrap_or_else(|e| {
            panic!(
                "{} {} to {}: {e}; server stderr ends:\n{}",
                request.method,
                request.target,
                self.label(),
                self.stderr_tail()
            )
        })
    }

    pub fn get(&self, target: &str) -> Response {
        self.send(&Request::get(target))
    }

    /// The hostile guest's `/ok` answers `200 ok`: the server is healthy.
    pub fn assert_ok(&self, after: &str) {
        let response = self.get("/ok");
        assert!(
            response.status == 200 && response.body == b"ok\n",
            "after {after}: GET /ok answered {}; server stderr ends:\n{}",
            response.summary(),
            self.stderr_tail()
        );
    }

    /// Everything the server wrote to stderr so far, colour codes removed.
    pub fn stderr(&self) -> String {
        let bytes = self.stderr.lock().expect("stderr lock").clone();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.stderr(), 6000)
    }

    /// Waits until the server's stderr holds a line for which `pred` holds.
    pub fn wait_for_log_line(&self, what: &str, bound: Duration, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + bound;
        loop {
            if self.stderr().lines().any(&pred) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: no log line {what} within {bound:?}; stderr:\n{}",
                self.label(),
                self.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every stdout line so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout_lines.lock().expect("stdout lock").clone()
    }

    pub fn sigterm(&self) {
        self.process.signal(rustix::process::Signal::TERM);
    }

    pub fn sigint(&self) {
        self.process.signal(rustix::process::Signal::INT);
    }

    /// Waits at most `bound` for the process to exit, then for its output to be read.
    pub fn wait_exit(&mut self, bound: Duration) -> ExitStatus {
        let status = self.process.wait_at_most(bound).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {bound:?}; stderr:\n{}",
                self.label(),
                self.stderr_tail()
            )
        });
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Killed first: the readers end once its pipes close.
        self.process.kill();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Starts several servers at once (their compiles overlap), in the order given.
pub fn start_all(configs: Vec<(Vec<String>, ServerOptions)>) -> Vec<Server> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .map(|(args, options)| scope.spawn(move || Server::start_with(args, options)))
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(server) => server,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The outcome of a `witplug` run expected to end by itself (a usage error).
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `witplug serve ARGS...` and waits at most `bound` for it to exit; a server still
/// running then is killed and reported with `status: None`.
pub fn run_serve(args: &[String], bound: Duration) -> Finished {
    let mut server = Server::spawn(args, &ServerOptions::default());
    let status = server.process.wait_at_most(bound);
    if status.is_none() {
        server.process.kill();
    }
    for reader in server.readers.drain(..) {
        let _ = reader.join();
    }
    Finished {
        status,
        stdout: server.stdout_lines().join("\n"),
        stderr: server.stderr(),
    }
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until `check` gives `Ok`, at most `bound`; the last `Err` says what was seen.
pub fn wait_until<T>(
    what: &str,
    bound: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + bound;
    loop {
        match check() {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {bound:?} waiting for {what}; last seen: {seen}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// A small HTTP/1.1 client

#[derive(Clone, Debug)]
pub enum Body {
    None,
    /// With `content-length`.
    Fixed(Vec<u8>),
    /// `transfer-encoding: chunked`, in chunks of this many bytes.
    Chunked(Vec<u8>, usize),
}

/// One request on a connection of its own (`connection: close`).
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Body,
    pub timeout: Duration,
}

impl Request {
    pub fn new(method: &str, target: &str) -> Request {
        Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: Vec::new(),
            body: Body::None,
            timeout: REQUEST_TIMEOUT,
        }
    }

    pub fn get(target: &str) -> Request {
        Request::new("GET", target)
    }

    pub fn header(self, name: &str, value: &str) -> Request {
        self.header_bytes(name, value.as_bytes())
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Request {
        self.headers.push((name.to_owned(), value.to_vec()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Request {
        self.body = Body::Fixed(body);
        self
    }

    pub fn chunked(mut self, body: Vec<u8>, chunk: usize) -> Request {
        self.body = Body::Chunked(body, chunk.max(1));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = timeout;
        self
    }

    fn head_bytes(&self, addr: SocketAddr) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (name, value) in &self.headers {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        match &self.body {
            Body::None => {}
            Body::Fixed(body) => {
                head.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes())
            }
            Body::Chunked(..) => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            Body::None => Vec::new(),
            Body::Fixed(body) => body.clone(),
            Body::Chunked(body, size) => {
                let mut out = Vec::new();
                for chunk in body.chunks(*size) {
                    out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                out
            }
        }
    }

    /// Sends the request and reads the response. The body is written by a thread of its
    /// own while the response is read, so that a server answering early (413) is heard
    /// even though it stops reading; write errors are ignored for that reason.
    pub fn send(&self, addr: SocketAddr) -> Result<Response, String> {
        let conn = self.open(addr)?;
        self.exchange(conn)
    }

    /// Connects, without sending anything.
    pub fn open(&self, addr: SocketAddr) -> Result<TcpStream, String> {
        let conn = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        conn.set_nodelay(true).map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_millis(250)))
            .map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(self.timeout))
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// Sends the request on `conn` and reads the response.
    pub fn exchange(&self, mut conn: TcpStream) -> Result<Response, String> {
        let addr = conn.peer_addr().map_err(|e| e.to_string())?;
        conn.write_all(&self.head_bytes(addr))
            .map_err(|e| format!("send request head: {e}"))?;
        let body = self.body_bytes();
        let mut writer = conn.try_clone().map_err(|e| e.to_string())?;
        std::thread::scope(|scope| {
            if !body.is_empty() {
                scope.spawn(move || {
                    for piece in body.chunks(16 * 1024) {
                        if writer.write_all(piece).is_err() {
                            return;
                        }
                    }
                });
            }
            let result = read_response(&mut conn, &self.method, self.timeout);
            // Unblocks the writer should the server have stopped reading.
            let _ = conn.shutdown(Shutdown::Both);
            result
        })
    }
}

/// A response as received.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// From the request's sending to the response's end.
    pub elapsed: Duration,
}

impl Response {
    /// The values of header `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The one value of header `name`; several values fail the test.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut values = self.header_values(name);
        assert!(
            values.len() <= 1,
            "header {name} appears {} times: {values:?}",
            values.len()
        );
        values.pop()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status and (the start of) the body, for failure messages.
    pub fn summary(&self) -> String {
        let text = self.text();
        let shown: String = text.chars().take(300).collect();
        format!(
            "{} {:?}{} (headers {:?})",
            self.status,
            shown,
            if shown.len() < text.len() { "..." } else { "" },
            self.headers
                .iter()
                .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
                .collect::<Vec<_>>()
        )
    }
}

fn read_response(
    conn: &mut TcpStream,
    method: &str,
    timeout: Duration,
) -> Result<Response, String> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let (n, error) = match conn.read(&mut chunk) {
            Ok(n) => (n, None),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err(format!(
                        "no complete response within {timeout:?}; got {} bytes: {:?}",
                        buf.len(),
                        String::from_utf8_lossy(&buf[..buf.len().min(300)])
                    ));
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => (0, Some(e)),
        };
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        match parse_response(&buf, method, eof) {
            Parsed::Complete(mut response) => {
                response.elapsed = started.elapsed();
                return Ok(response);
            }
            Parsed::Incomplete(what) if eof => {
                return Err(match error {
                    Some(e) => format!("{e} with an incomplete response ({what})"),
                    None => format!("connection closed with an incomplete response ({what})"),
                });
            }
            Parsed::Incomplete(_) => {}
            Parsed::Bad(e) => return Err(e),
        }
    }
}

enum Parsed {
    Complete(Response),
    Incomplete(String),
    Bad(String),
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_response(mut buf: &[u8], method: &str, eof: bool) -> Parsed {
    loop {
        let Some(end) = find(buf, b"\r\n\r\n") else {
            return Parsed::Incomplete(format!(
                "no end of head in {} bytes: {:?}",
                buf.len(),
                String::from_utf8_lossy(&buf[..buf.len().min(300)])
            ));
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let rest = &buf[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = match status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
        {
            Some(status) => status,
            None => return Parsed::Bad(format!("bad status line `{status_line}`")),
        };
        let mut headers = Vec::new();
        let raw_head = &buf[..end];
        // Header values as raw bytes (non-ASCII is possible), names as text.
        for line in raw_head.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return Parsed::Bad(format!(
                    "header line without a colon: {:?}",
                    String::from_utf8_lossy(line)
                ));
            };
            let name = String::from_utf8_lossy(&line[..colon]).to_ascii_lowercase();
            let value = trim_ows(&line[colon + 1..]).to_vec();
            headers.push((name, value));
        }
        if (100..200).contains(&status) {
            buf = rest;
            continue;
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
            elapsed: Duration::ZERO,
        };
        if method == "HEAD" || status == 204 || status == 304 {
            return Parsed::Complete(response);
        }
        let chunked = response
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            return match dechunk(rest) {
                Ok(Some(body)) => {
                    response.body = body;
                    Parsed::Complete(response)
                }
                Ok(None) => Parsed::Incomplete(format!(
                    "status {status}, chunked body unfinished after {} bytes",
                    rest.len()
                )),
                Err(e) => Parsed::Bad(format!("status {status}: {e}")),
            };
        }
        if let Some(length) = response.header("content-length") {
            let Ok(length) = length.trim().parse::<usize>() else {
                return Parsed::Bad(format!("bad content-length `{length}`"));
            };
            if rest.len() >= length {
                response.body = rest[..length].to_vec();
                return Parsed::Complete(response);
            }
            return Parsed::Incomplete(format!(
                "status {status}, body {} of content-length {length} bytes",
                rest.len()
            ));
        }
        if eof {
            response.body = rest.to_vec();
            return Parsed::Complete(response);
        }
        return Parsed::Incomplete(format!(
            "status {status}, body to the end of the connection"
        ));
    }
}

fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// A complete chunked body, `None` while unfinished.
fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|e| format!("chunk size `{size_text}`: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            return Ok(find(data, b"\r\n").map(|_| out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// A plain upstream HTTP server, to see whether the server's guests reach it

/// A TCP listener on 127.0.0.1 answering every request `200` with body `upstream\n`,
/// counting the connections it gets and keeping each request head.
pub struct Upstream {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("upstream address");
        let connections = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, kept, stopping) = (connections.clone(), heads.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let kept = kept.clone();
                        std::thread::spawn(move || answer_upstream(conn, &kept));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Upstream {
            addr,
            connections,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
    }
}

fn answer_upstream(mut conn: TcpStream, heads: &Mutex<Vec<String>>) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&buf, b"\r\n\r\n").is_none() {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    heads
        .lock()
        .expect("heads lock")
        .push(String::from_utf8_lossy(&buf).into_owned());
    let _ = conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 9\r\nconnection: close\r\n\r\nupstream\n",
    );
    let _ = conn.flush();
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bearer tokens (the `http-auth` contract), minted here

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = match group {
            [a, b, c] => (u32::from(*a) << 16) | (u32::from(*b) << 8) | u32::from(*c),
            [a, b] => (u32::from(*a) << 16) | (u32::from(*b) << 8),
            [a] => u32::from(*a) << 16,
            _ => unreachable!("chunks of 1 to 3"),
        };
        let chars = group.len() + 1;
        for i in 0..chars {
            let index = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(B64URL[index as usize]));
        }
    }
    out
}

/// HMAC-SHA256(key, data).
pub fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `P.S` for these claims bytes: P their base64url, S that of HMAC(key, P).
pub fn token(key: &[u8], claims: &[u8]) -> String {
    let payload = b64url(claims);
    let signature = b64url(&hmac(key, payload.as_bytes()));
    format!("{payload}.{signature}")
}

/// A token whose P is given as is (signed as is).
pub fn token_with_payload(key: &[u8], payload: &str) -> String {
    format!("{payload}.{}", b64url(&hmac(key, payload.as_bytes())))
}

/// Claims JSON `{"sub":SUB,"exp":EXP}` from JSON texts.
pub fn claims(sub_json: &str, exp_json: &str) -> Vec<u8> {
    format!(r#"{{"sub":{sub_json},"exp":{exp_json}}}"#).into_bytes()
}

pub fn now_secs() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit i64")
}

/// A JSON string literal by the contract's rule: `"` and `\` escaped, control characters
/// below 0x20 as `\n \r \t \b \f` or `\u00xx` (lower-case hex), everything else raw.
/// Written from the contract, not shared with the guests' `http-common`: it is the oracle
/// their output is checked against.
pub fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn serve_harness_encodings_are_right() {
    // RFC 4648 test vectors, in the URL alphabet without padding.
    for (input, expected) in [
        ("", ""),
        ("f", "Zg"),
        ("fo", "Zm8"),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg"),
        ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(b64url(input.as_bytes()), expected);
    }
    assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    // RFC 4231 test case 2.
    let mac = hmac(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        json_string("a\"\\\n\u{1}\u{1f}é\u{2028}"),
        "\"a\\\"\\\\\\n\\u0001\\u001fé\u{2028}\""
    );
    assert_eq!(
        percent_encode("http://a:1/b?c"),
        "http%3A%2F%2Fa%3A1%2Fb%3Fc"
    );
    let full =
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nx-a:  v \r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    match parse_response(full, "GET", false) {
        Parsed::Complete(r) => {
            assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
            assert_eq!(r.header("x-a").as_deref(), Some("v"));
        }
        _ => panic!("a complete chunked response"),
    }
    assert!(matches!(
        parse_response(&full[..full.len() - 2], "GET", false),
        Parsed::Incomplete(_)
    ));
}
