//! Errors of setting up a server. Requests never fail this way: every failure of a
//! request is an HTTP answer (see `handler::serve_request`).

use std::path::PathBuf;

/// Why a server could not start (or a route could not be loaded).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("route `{route}`: its handler could not be loaded")]
    Load {
        route: String,
        #[source]
        source: Box<witplug::Error>,
    },
    #[error("route `{route}`: loading its handler panicked (a bug in witplug)")]
    LoadPanicked { route: String },
    #[error("route `{route}`: {reason}")]
    Route { route: String, reason: String },
    #[error("two routes have the prefix `{prefix}`: `{first}` and `{second}`")]
    DuplicatePrefix {
        prefix: String,
        first: String,
        second: String,
    },
    #[error("no route to serve")]
    NoRoutes,
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("app file {}: {reason}", path.display())]
    App { path: PathBuf, reason: String },
    // Boxed: both are large, and errors are the rare path.
    #[error(transparent)]
    Toml(Box<witplug::TomlError>),
    #[error(transparent)]
    Policy(Box<witplug::PolicyError>),
}

impl From<witplug::TomlError> for ServeError {
    fn from(error: witplug::TomlError) -> Self {
        Self::Toml(Box::new(error))
    }
}

impl From<witplug::PolicyError> for ServeError {
    fn from(error: witplug::PolicyError) -> Self {
        Self::Policy(Box::new(error))
    }
}
