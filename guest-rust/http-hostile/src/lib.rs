//! `http-hostile`: a `wasi:http/proxy` handler that misbehaves on demand, for the tests of
//! `witplug serve` only. The path selects the behaviour, the query its parameters:
//!
//! - `/ok`: 200 `ok`. `/panic`: panics (a trap). `/loop`: spins forever without yielding.
//!   `/memory`: allocates and touches memory until allocation fails (a trap).
//! - `/huge?mib=N`: a body of N MiB (default 64), in 64 KiB chunks.
//! - `/sleep?ms=N`: sleeps N ms (default 1000) in `wasi:io/poll`, then 200 `slept N`.
//! - `/echo`: the request body back, as `application/octet-stream`.
//! - `/count`: a global counter, incremented: 1 unless the instance is reused.
//! - `/print`: a line to stdout and one to stderr, then 200 `printed`.
//! - `/outbound?url=URL`: a GET of URL (percent-decoded): 200 `upstream STATUS`, or 502
//!   `error CODE` with CODE the WIT name of the `error-code` case. A URL that is not
//!   `SCHEME://AUTHORITY[PATH]` gets 400 `bad url`.
//! - `/host-trick?target=HOST:PORT`: a request with no authority that tries to name its
//!   target in a `host` header; 502 `error header-forbidden` if the header is refused (the
//!   request is still sent without it), else as `/outbound`.
//! - `/block-config?key=K`: the config value of K (percent-decoded) and a newline, or `none`.
//! - Anything else: 404 `not found`.

wit_bindgen::generate!({
    path: "../../target/http-wit",
    world: "witplug:http-handler/handler",
    generate_all,
});

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use exports::wasi::http::incoming_handler::Guest;
use wasi::cli::{stderr, stdout};
use wasi::clocks::monotonic_clock;
use wasi::config::store;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

const TEXT: &str = "text/plain; charset=utf-8";
const DEFAULT_HUGE_MIB: u64 = 64;
const DEFAULT_SLEEP_MS: u64 = 1000;
const CHUNK: usize = 64 * 1024;

static COUNT: AtomicU64 = AtomicU64::new(0);

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_with_query
            .split_once('?')
            .unwrap_or((&path_with_query, ""));
        match path {
            "/ok" => text(response_out, 200, "ok\n"),
            "/loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "/memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touched, so that the pages are really used.
                    let chunk = vec![1u8; 1 << 20];
                    hoard.push(black_box(chunk));
                }
            }
            "/huge" => {
                let mib = param(query, "mib")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(DEFAULT_HUGE_MIB);
                huge(response_out, mib);
            }
            "/panic" => panic!("hostile: /panic"),
            "/sleep" => {
                let ms: u64 = param(query, "ms")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(DEFAULT_SLEEP_MS);
                let pollable = monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000));
                wasi::io::poll::poll(&[&pollable]);
                text(response_out, 200, &format!("slept {ms}\n"));
            }
            "/echo" => {
                let Some(body) = read_body(&request) else {
                    // Let the host answer (e.g. 413 for a body over its limit).
                    return;
                };
                respond(response_out, 200, "application/octet-stream", &body);
            }
            "/count" => {
                let count = COUNT.fetch_add(1, Ordering::Relaxed) + 1;
                text(response_out, 200, &format!("{count}\n"));
            }
            "/print" => {
                let _ = stdout::get_stdout().blocking_write_and_flush(b"hostile stdout line\n");
                let _ = stderr::get_stderr().blocking_write_and_flush(b"hostile stderr line\n");
                text(response_out, 200, "printed\n");
            }
            "/outbound" => {
                let url = param(query, "url").map(percent_decode).unwrap_or_default();
                let Some(request) = url_request(&url) else {
                    return text(response_out, 400, "bad url\n");
                };
                let answer = send(request);
                text(response_out, answer.0, &answer.1);
            }
            "/host-trick" => {
                let target = param(query, "target")
                    .map(percent_decode)
                    .unwrap_or_default();
                let headers = Fields::new();
                let refused = headers.append("host", target.as_bytes()).is_err();
                let request = OutgoingRequest::new(headers);
                let _ = request.set_scheme(Some(&Scheme::Http));
                let _ = request.set_authority(None);
                let _ = request.set_path_with_query(Some("/"));
                let answer = send(request);
                if refused {
                    text(response_out, 502, "error header-forbidden\n");
                } else {
                    text(response_out, answer.0, &answer.1);
                }
            }
            "/block-config" => {
                let key = param(query, "key").map(percent_decode).unwrap_or_default();
                let answer = match store::get(&key) {
                    Ok(Some(value)) => format!("{value}\n"),
                    _ => "none\n".to_owned(),
                };
                text(response_out, 200, &answer);
            }
            _ => text(response_out, 404, "not found\n"),
        }
    }
}

/// The value of the first `key=value` pair of the query (not decoded).
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == key))
        .map(|(_, value)| value)
}

/// `%XX` sequences decoded (others kept as they are); `+` stays `+`.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A GET of `SCHEME://AUTHORITY[/PATH][?QUERY]`.
fn url_request(url: &str) -> Option<OutgoingRequest> {
    let (scheme, rest) = url.split_once("://")?;
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => Scheme::Other(other.to_owned()),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).ok()?;
    request.set_scheme(Some(&scheme)).ok()?;
    request.set_authority(Some(authority)).ok()?;
    request.set_path_with_query(Some(&path)).ok()?;
    Some(request)
}

/// Sends `request` and waits: (200, `upstream STATUS`) or (502, `error CODE`).
fn send(request: OutgoingRequest) -> (u16, String) {
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return (502, format!("error {}\n", code_name(&code))),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => (200, format!("upstream {}\n", response.status())),
        Some(Ok(Err(code))) => (502, format!("error {}\n", code_name(&code))),
        // Taken twice, or not ready after `block`: neither can happen.
        _ => (502, "error internal-error\n".to_owned()),
    }
}

/// The whole request body, or None when reading it fails.
fn read_body(request: &IncomingRequest) -> Option<Vec<u8>> {
    let body = request.consume().ok()?;
    let mut bytes = Vec::new();
    {
        let stream = body.stream().ok()?;
        loop {
            match stream.blocking_read(CHUNK as u64) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => return None,
            }
        }
    }
    drop(IncomingBody::finish(body));
    Some(bytes)
}

fn huge(response_out: ResponseOutparam, mib: u64) {
    let Some((body, stream)) = start(response_out, 200, "application/octet-stream") else {
        return;
    };
    let chunk = vec![b'x'; CHUNK];
    for _ in 0..mib.saturating_mul(16) {
        if write_all(&stream, &chunk).is_err() {
            // The host stopped taking it (over its limit, or the client left).
            return;
        }
    }
    drop(stream);
    let _ = OutgoingBody::finish(body, None);
}

fn text(response_out: ResponseOutparam, status: u16, body: &str) {
    respond(response_out, status, TEXT, body.as_bytes());
}

fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let Some((outgoing, stream)) = start(response_out, status, content_type) else {
        return;
    };
    if write_all(&stream, body).is_err() {
        return;
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// Sends the head of the response; returns its body and the body's stream.
fn start(
    response_out: ResponseOutparam,
    status: u16,
    content_type: &str,
) -> Option<(OutgoingBody, OutputStream)> {
    let headers =
        Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())]).ok()?;
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).ok()?;
    let body = response.body().ok()?;
    ResponseOutparam::set(response_out, Ok(response));
    let stream = body.write().ok()?;
    Some((body, stream))
}

/// Writes all of `bytes`, waiting whenever the stream has no room, then flushes.
fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    while !bytes.is_empty() {
        let room = stream.check_write()?;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = usize::try_from(room).unwrap_or(usize::MAX).min(bytes.len());
        stream.write(&bytes[..n])?;
        bytes = &bytes[n..];
    }
    stream.blocking_flush()
}

/// The WIT name of an `error-code` case.
fn code_name(code: &ErrorCode) -> &'static str {
    match code {
        ErrorCode::DnsTimeout => "DNS-timeout",
        ErrorCode::DnsError(_) => "DNS-error",
        ErrorCode::DestinationNotFound => "destination-not-found",
        ErrorCode::DestinationUnavailable => "destination-unavailable",
        ErrorCode::DestinationIpProhibited => "destination-IP-prohibited",
        ErrorCode::DestinationIpUnroutable => "destination-IP-unroutable",
        ErrorCode::ConnectionRefused => "connection-refused",
        ErrorCode::ConnectionTerminated => "connection-terminated",
        ErrorCode::ConnectionTimeout => "connection-timeout",
        ErrorCode::ConnectionReadTimeout => "connection-read-timeout",
        ErrorCode::ConnectionWriteTimeout => "connection-write-timeout",
        ErrorCode::ConnectionLimitReached => "connection-limit-reached",
        ErrorCode::TlsProtocolError => "TLS-protocol-error",
        ErrorCode::TlsCertificateError => "TLS-certificate-error",
        ErrorCode::TlsAlertReceived(_) => "TLS-alert-received",
        ErrorCode::HttpRequestDenied => "HTTP-request-denied",
        ErrorCode::HttpRequestLengthRequired => "HTTP-request-length-required",
        ErrorCode::HttpRequestBodySize(_) => "HTTP-request-body-size",
        ErrorCode::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        ErrorCode::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        ErrorCode::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        ErrorCode::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        ErrorCode::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        ErrorCode::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        ErrorCode::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        ErrorCode::HttpResponseIncomplete => "HTTP-response-incomplete",
        ErrorCode::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        ErrorCode::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        ErrorCode::HttpResponseBodySize(_) => "HTTP-response-body-size",
        ErrorCode::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        ErrorCode::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        ErrorCode::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        ErrorCode::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        ErrorCode::HttpResponseTimeout => "HTTP-response-timeout",
        ErrorCode::HttpUpgradeFailed => "HTTP-upgrade-failed",
        ErrorCode::HttpProtocolError => "HTTP-protocol-error",
        ErrorCode::LoopDetected => "loop-detected",
        ErrorCode::ConfigurationError => "configuration-error",
        ErrorCode::InternalError(_) => "internal-error",
    }
}

export!(Hostile);
