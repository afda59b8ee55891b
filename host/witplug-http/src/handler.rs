//! One `wasi:http/proxy` component as a witplug [`World`], and one request through it.
//!
//! The handler world is standard `wasi:http/proxy@0.2` (plus an optional import of
//! `wasi:config/store`, fed from the plugin's configuration): nothing witplug-specific is
//! needed in a guest. Instances come from witplug's [`Plugin`], so grants, limits, pooling
//! and instance reuse are the same as for every other world.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use wasmtime::component::{InstancePre, Linker};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{LinkOptions, Proxy, ProxyPre};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttp, WasiHttpCtx, WasiHttpCtxView};
use witplug::{Error, Plugin, PluginConfig, PluginState, World};

use crate::outbound::OutboundHooks;

/// The export every request calls, for errors and logs.
pub const HANDLE_EXPORT: &str = "wasi:http/incoming-handler#handle";

/// The header carrying the TCP peer's address to the handler. A client-sent one is removed
/// first, so a handler can trust it.
pub const CLIENT_IP_HEADER: HeaderName = HeaderName::from_static("x-witplug-client-ip");

/// `wasi:http/proxy` hosted by witplug.
pub struct HttpHandler(Proxy);

/// Host state of one handler instance.
pub struct HttpData {
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    config: Arc<WasiConfigVariables>,
}

impl HttpData {
    pub(crate) fn new(hooks: OutboundHooks, config: Arc<WasiConfigVariables>) -> Self {
        Self {
            http: WasiHttpCtx::new(),
            hooks,
            config,
        }
    }
}

/// The plugin's configuration as `wasi:config/store` variables.
pub(crate) fn config_variables(config: &PluginConfig) -> WasiConfigVariables {
    config.entries().collect()
}

fn http_view(state: &mut PluginState<HttpData>) -> WasiHttpCtxView<'_> {
    let (data, table) = state.data_and_table();
    WasiHttpCtxView {
        ctx: &mut data.http,
        table,
        hooks: &mut data.hooks,
    }
}

fn config_view(state: &mut PluginState<HttpData>) -> WasiConfig<'_> {
    WasiConfig::new(&state.data.config)
}

impl World for HttpHandler {
    const NAME: &'static str = "wasi:http/proxy@0.2.12";
    type Data = HttpData;
    type Pre = ProxyPre<PluginState<HttpData>>;

    fn add_to_linker(linker: &mut Linker<PluginState<HttpData>>) -> wasmtime::Result<()> {
        use wasmtime_wasi_http::p2::bindings::http::{outgoing_handler, types};
        outgoing_handler::add_to_linker::<_, WasiHttp>(linker, http_view)?;
        types::add_to_linker::<_, WasiHttp>(linker, &LinkOptions::default().into(), http_view)?;
        wasmtime_wasi_config::add_to_linker(linker, config_view)?;
        Ok(())
    }

    fn prepare(pre: InstancePre<PluginState<HttpData>>) -> wasmtime::Result<Self::Pre> {
        ProxyPre::new(pre)
    }

    async fn instantiate(
        pre: &Self::Pre,
        store: &mut wasmtime::Store<PluginState<HttpData>>,
    ) -> wasmtime::Result<Self> {
        pre.instantiate_async(store).await.map(HttpHandler)
    }
}

/// Body sizes a route accepts and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
        }
    }
}

/// How one request ended, for the access log and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub status: StatusCode,
    /// Time to get an instance (fresh or reused).
    pub instance_start: Option<Duration>,
}

/// What a handler answered, or why it could not.
enum Outcome {
    Answered(hyper::http::response::Parts, Bytes),
    CallFailed(wasmtime::Error),
    ErrorResponse(ErrorCode),
    NoResponse,
    ResponseTooLarge,
    BodyFailed(String),
}

pub type HostBody = Full<Bytes>;

/// Runs one request through a fresh (or, if the plugin allows, reused) instance of
/// `plugin`. Never fails: every failure is an HTTP answer (500, 504, 413), logged with the
/// plugin's name.
pub async fn serve_request(
    plugin: &Plugin<HttpHandler>,
    limits: BodyLimits,
    request: Request<Incoming>,
    client: IpAddr,
) -> (Response<HostBody>, Served) {
    let route = plugin.name();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_request_bytes as u64) {
        return host_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            body_too_large(route, limits),
            None,
        );
    }
    let started = Instant::now();
    let mut instance = match plugin.checkout().await {
        Ok(instance) => instance,
        Err(error) => {
            tracing::error!(target: "witplug::serve", plugin = route, error = %witplug::error_chain(&error), "no instance");
            return host_answer(
                status_of(&error),
                format!("handler `{route}` could not be started"),
                None,
            );
        }
    };
    let instance_start = Some(started.elapsed());
    // Every answer from here on counts the instance's start.
    let answer = |status, message| host_answer(status, message, instance_start);
    let deadline = plugin.limits().call_timeout;

    let (mut parts, body) = request.into_parts();
    parts.headers.remove(&CLIENT_IP_HEADER);
    if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
        parts.headers.insert(CLIENT_IP_HEADER, value);
    }
    let over_limit = Arc::new(AtomicBool::new(false));
    let body = limit_request_body(body, limits.max_request_bytes, over_limit.clone());
    let request = Request::from_parts(parts, body);

    let outcome = {
        let run = run_handler(&mut instance, request, limits.max_response_bytes);
        match deadline {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => Ok(outcome),
                Err(_) => Err(limit),
            },
            None => Ok(run.await),
        }
    };
    let served = |status| Served {
        status,
        instance_start,
    };
    if over_limit.load(Ordering::Relaxed) {
        return answer(StatusCode::PAYLOAD_TOO_LARGE, body_too_large(route, limits));
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(limit) => {
            tracing::warn!(target: "witplug::serve", plugin = route, ?limit, "handler ran out of time");
            return answer(
                StatusCode::GATEWAY_TIMEOUT,
                format!("handler `{route}` ran out of time (limit {limit:?})"),
            );
        }
    };
    match outcome {
        Outcome::Answered(parts, bytes) => {
            plugin.checkin(instance);
            let response = Response::from_parts(parts, Full::new(bytes));
            let status = response.status();
            (response, served(status))
        }
        Outcome::CallFailed(error) => {
            let error = instance.fail(HANDLE_EXPORT, error);
            tracing::warn!(target: "witplug::serve", plugin = route, error = %witplug::error_chain(&error), "handler failed");
            answer(
                status_of(&error),
                format!("handler `{route}` failed: {}", failure_kind(&error)),
            )
        }
        Outcome::ErrorResponse(code) => {
            tracing::warn!(target: "witplug::serve", plugin = route, error = ?code, "handler answered with an error");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("handler `{route}` answered with an error: {code:?}"),
            )
        }
        Outcome::NoResponse => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("handler `{route}` returned without a response"),
        ),
        Outcome::ResponseTooLarge => {
            tracing::warn!(target: "witplug::serve", plugin = route, limit = limits.max_response_bytes, "response body over the limit");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "handler `{route}`: response body over the {} KiB limit",
                    limits.max_response_bytes / 1024
                ),
            )
        }
        Outcome::BodyFailed(reason) => {
            tracing::warn!(target: "witplug::serve", plugin = route, %reason, "response body failed");
            answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("handler `{route}`: response body failed"),
            )
        }
    }
}

/// The message of a 413: the request body is over the route's limit.
fn body_too_large(route: &str, limits: BodyLimits) -> String {
    format!(
        "handler `{route}`: request body over the {} KiB limit",
        limits.max_request_bytes / 1024
    )
}

/// Calls `handle`, and collects the response body while the guest writes it.
///
/// The head arrives through the response outparam, possibly before `handle` returns; the
/// body is read concurrently so that a guest writing more than a channel's worth is not
/// stalled. A call that fails at any point wins over what was received.
async fn run_handler(
    instance: &mut witplug::Instance<HttpHandler>,
    request: Request<LimitedBody>,
    max_response: usize,
) -> Outcome {
    let (bindings, store) = match instance.parts() {
        Ok(parts) => parts,
        Err(error) => return Outcome::CallFailed(wasmtime::Error::msg(error.to_string())),
    };
    let (sender, mut receiver) = tokio::sync::oneshot::channel();
    let resources = {
        let mut view = http_view(store.data_mut());
        view.new_incoming_request(Scheme::Http, request)
            .and_then(|req| Ok((req, view.new_response_outparam(sender)?)))
    };
    let (req, out) = match resources {
        Ok(resources) => resources,
        Err(error) => return Outcome::CallFailed(error),
    };
    let call = bindings
        .0
        .wasi_http_incoming_handler()
        .call_handle(&mut *store, req, out);
    tokio::pin!(call);
    let mut call_done = false;

    let head = tokio::select! {
        head = &mut receiver => head,
        result = &mut call => {
            if let Err(error) = result {
                return Outcome::CallFailed(error);
            }
            call_done = true;
            // `set` sends at once: nothing pending now means no answer will come.
            match receiver.try_recv() {
                Ok(head) => Ok(head),
                Err(_) => return Outcome::NoResponse,
            }
        }
    };
    let response: hyper::Response<HyperOutgoingBody> = match head {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => return Outcome::ErrorResponse(code),
        Err(_) => {
            // The outparam was dropped unset; the call's own result says why.
            if !call_done && let Err(error) = call.await {
                return Outcome::CallFailed(error);
            }
            return Outcome::NoResponse;
        }
    };
    let (parts, body) = response.into_parts();
    let collect = Limited::new(body, max_response).collect();
    tokio::pin!(collect);
    let collected = loop {
        tokio::select! {
            collected = &mut collect => break collected,
            result = &mut call, if !call_done => {
                if let Err(error) = result {
                    return Outcome::CallFailed(error);
                }
                call_done = true;
            }
        }
    };
    let bytes = match collected {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return Outcome::ResponseTooLarge;
        }
        Err(error) => {
            // A trap mid-body closes the stream with an error: report the trap.
            if !call_done && let Err(trap) = call.await {
                return Outcome::CallFailed(trap);
            }
            return Outcome::BodyFailed(error.to_string());
        }
    };
    // The guest may still run after finishing its body; an instance is only reused (or
    // its failure reported) once `handle` has returned.
    if !call_done && let Err(error) = call.await {
        return Outcome::CallFailed(error);
    }
    Outcome::Answered(parts, bytes)
}

type LimitedBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// The request body as the guest reads it: at most `max` bytes, then an error (and a flag,
/// so that the answer is a 413 whatever the guest makes of the error).
fn limit_request_body(body: Incoming, max: usize, over_limit: Arc<AtomicBool>) -> LimitedBody {
    Limited::new(body, max)
        .map_err(move |error| {
            if error.downcast_ref::<LengthLimitError>().is_some() {
                over_limit.store(true, Ordering::Relaxed);
                wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max as u64))
            } else {
                match error.downcast::<hyper::Error>() {
                    Ok(error) => wasmtime_wasi_http::Error::Hyper(*error),
                    Err(_) => wasmtime_wasi_http::Error::HttpProtocolError,
                }
            }
        })
        .boxed_unsync()
}

fn status_of(error: &Error) -> StatusCode {
    match error {
        Error::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A short reason for the client; the full error (backtrace, guest output) only goes to
/// the log.
fn failure_kind(error: &Error) -> &'static str {
    match error {
        Error::Trap { .. } => "trapped",
        Error::Timeout { .. } => "ran out of time",
        Error::MemoryLimit { .. } => "exceeded its memory limit",
        Error::TableLimit { .. } => "exceeded its table limit",
        Error::StackOverflow { .. } => "overflowed its stack",
        Error::FuelExhausted { .. } => "ran out of fuel",
        Error::TransferLimit { .. } => "exceeded its transfer limit",
        _ => "host error",
    }
}

/// An answer made by the host, not the handler: one text line.
pub(crate) fn host_answer(
    status: StatusCode,
    message: String,
    instance_start: Option<Duration>,
) -> (Response<HostBody>, Served) {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (
        response,
        Served {
            status,
            instance_start,
        },
    )
}
