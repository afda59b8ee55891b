//! witplug-http: serves `wasi:http/proxy` components, a fresh isolated instance per
//! request by default.
//!
//! - [`handler`]: the proxy world as a witplug [`World`](witplug::World), and one request
//!   through an instance (deadline, body limits, failures as HTTP answers).
//! - [`outbound`]: outbound requests, denied unless a grant names the origin.
//! - [`route`]: a prefix and the handler version serving it (replaceable while serving).
//! - [`server`]: connections, routing, the concurrency cap, graceful shutdown, access log.
//! - [`app`]: app files mapping prefixes to handlers, each with its own policy.
//! - [`metrics`]: what `--metrics` exposes.
//!
//! Instances come from witplug's `Plugin`, so the engine's pooling allocator, grants and
//! limits are those of every witplug plugin.

pub mod app;
pub mod error;
pub mod handler;
pub mod metrics;
pub mod outbound;
pub mod route;
pub mod server;

pub use app::App;
pub use error::ServeError;
pub use handler::{BodyLimits, CLIENT_IP_HEADER, HttpHandler};
pub use route::RouteSpec;
pub use server::{Server, ServerConfig};
