//! `native-http hello|auth ADDR`: the serve benchmark's native baseline.
//!
//! The same work as the sample handlers, without WebAssembly: `hello` answers every request
//! with the Rust hello handler's greeting; `auth` runs the Rust auth handler's own decision
//! (`guest-rust/http-auth/src/rule.rs`, compiled natively) with the key from `AUTH_KEY`.
//! Prints `listening on http://ADDR` once it accepts connections, as `witplug serve` does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[path = "../../../guest-rust/http-auth/src/rule.rs"]
mod rule;

const HELLO: &[u8] = b"hello from witplug\n";

enum Handler {
    Hello,
    Auth { key: Option<String> },
}

impl Handler {
    fn handle(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        match self {
            Handler::Hello => {
                let mut response = Response::new(Full::new(Bytes::from_static(HELLO)));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                response
            }
            Handler::Auth { key } => {
                let authorization = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let answer = rule::decide(key.as_deref(), authorization, now);
                let mut response = Response::new(Full::new(Bytes::from(answer.body)));
                *response.status_mut() = hyper::StatusCode::from_u16(answer.status)
                    .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                if answer.status == 401 {
                    headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                if let Some(value) = answer
                    .identity
                    .and_then(|identity| HeaderValue::from_str(&identity).ok())
                {
                    headers.insert("x-identity", value);
                }
                response
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: native-http hello|auth ADDR (auth reads its key from AUTH_KEY)";
    let handler = match args.next().as_deref() {
        Some("hello") => Handler::Hello,
        Some("auth") => Handler::Auth {
            key: std::env::var("AUTH_KEY").ok(),
        },
        _ => return Err(usage.into()),
    };
    let addr: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let handler = Arc::new(handler);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = handler.handle(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
