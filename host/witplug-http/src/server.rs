//! The HTTP/1.1 server: accepts connections, routes each request to its handler under the
//! concurrency cap, logs it, and shuts down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use witplug::Runtime;

use crate::error::ServeError;
use crate::handler::{HostBody, Served, host_answer, serve_request};
use crate::metrics::Metrics;
use crate::route::{Route, RouteSpec, WATCH_INTERVAL};

/// Server-wide settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Requests handled at once; more get a 503 at once (with `retry-after`), so that a
    /// burst costs no memory and no queueing delay.
    pub max_concurrent: usize,
    /// Reload a route's component when its file changes.
    pub watch: bool,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// A client that has not sent a whole request head within this is disconnected.
    pub header_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_concurrent: 100,
            watch: false,
            shutdown_grace: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Routes, loaded and bound to a listening socket; [`Server::run`] serves them.
pub struct Server {
    runtime: Runtime,
    shared: Arc<Shared>,
    listener: TcpListener,
    config: ServerConfig,
}

struct Shared {
    /// Longest prefix first: the first match is the most specific.
    routes: Vec<Route>,
    permits: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Loads every route's handler (a failure names the route) and binds `config.addr`.
    pub async fn bind(
        runtime: &Runtime,
        specs: Vec<RouteSpec>,
        config: ServerConfig,
    ) -> Result<Self, ServeError> {
        if specs.is_empty() {
            return Err(ServeError::NoRoutes);
        }
        let mut routes: Vec<Route> = Vec::with_capacity(specs.len());
        for spec in specs {
            crate::route::check_prefix(&spec.prefix).map_err(|reason| ServeError::Route {
                route: spec.name.clone(),
                reason: reason.to_owned(),
            })?;
            if let Some(other) = routes
                .iter()
                .find(|r| same_prefix(r.prefix(), &spec.prefix))
            {
                return Err(ServeError::DuplicatePrefix {
                    prefix: spec.prefix.clone(),
                    first: other.name().to_owned(),
                    second: spec.name.clone(),
                });
            }
            routes.push(Route::load(runtime, spec).await?);
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.prefix().trim_end_matches('/').len()));
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: config.addr.to_string(),
                source,
            })?;
        let metrics = Arc::new(Metrics::new(routes.iter().map(Route::name)));
        Ok(Self {
            runtime: runtime.clone(),
            shared: Arc::new(Shared {
                routes,
                permits: Arc::new(Semaphore::new(config.max_concurrent)),
                metrics,
            }),
            listener,
            config,
        })
    }

    /// The bound address (the port picked, if `addr` had port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.shared.routes.iter()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets requests in flight
    /// finish (up to `shutdown_grace`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            runtime,
            shared,
            listener,
            config,
        } = self;
        let watcher = config.watch.then(|| {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(WATCH_INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    for route in &shared.routes {
                        if route.reload_if_changed(&runtime).await {
                            shared.metrics.swapped(route.name());
                        }
                    }
                }
            })
        });
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, say: back off rather than spin.
                        tracing::warn!(target: "witplug::serve", %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let shared = shared.clone();
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(dispatch(&shared, request, peer).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(config.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(target: "witplug::serve", %error, %peer, "connection ended");
                }
            });
        }
        // No new connection from here on; keep-alive connections close after their
        // current request.
        drop(listener);
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        tracing::info!(target: "witplug::serve", "shutting down: finishing requests in flight");
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                target: "witplug::serve",
                grace = ?config.shutdown_grace,
                "requests still in flight after the grace period were cut off"
            );
        }
    }
}

fn same_prefix(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

async fn dispatch(
    shared: &Shared,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<HostBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = shared.routes.iter().find(|route| route.matches(&path));
    let (response, served, name) = match route {
        None => {
            let (response, served) =
                host_answer(StatusCode::NOT_FOUND, format!("no route for {path}"), None);
            (response, served, "-")
        }
        Some(route) => {
            let (response, served) = match shared.permits.clone().try_acquire_owned() {
                Err(_) => {
                    shared.metrics.rejected(route.name());
                    let (mut response, served) = host_answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("handler `{}`: too many requests in flight", route.name()),
                        None,
                    );
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                    (response, served)
                }
                Ok(_permit) => {
                    let version = route.slot.current();
                    serve_request(&version.plugin, route.spec.body, request, peer.ip()).await
                }
            };
            (response, served, route.name())
        }
    };
    log_access(
        shared,
        name,
        &method,
        &path,
        &served,
        started.elapsed(),
        peer,
    );
    response
}

fn log_access(
    shared: &Shared,
    route: &str,
    method: &hyper::Method,
    path: &str,
    served: &Served,
    elapsed: Duration,
    peer: SocketAddr,
) {
    let status = served.status.as_u16();
    tracing::info!(
        target: "witplug::access",
        route,
        %method,
        path,
        status,
        micros = elapsed.as_micros() as u64,
        client = %peer.ip(),
    );
    shared
        .metrics
        .served(route, status, elapsed, served.instance_start);
}
