//! Typed errors of the library.
//!
//! Loading problems ([`LoadError`]) and grant problems ([`GrantError`]) are the user's to fix;
//! call failures ([`Error::Trap`], [`Error::Contract`], …) are the plugin's fault and always
//! name the plugin and the export, so that one log line says who failed where.

use std::path::PathBuf;
use std::time::Duration;

use crate::capabilities::CapabilityDenied;
use crate::limits::{LimitExceeded, Limits};

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),

    #[error(transparent)]
    Grant(#[from] GrantError),

    /// The engine could not be set up (a configuration wasmtime rejects).
    #[error("could not configure the wasmtime engine")]
    Engine(#[source] wasmtime::Error),

    /// The plugin's `Limits` cannot be honoured by this runtime.
    #[error("invalid limits: {0}")]
    InvalidLimits(&'static str),

    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),

    /// The epoch ticker thread could not be started.
    #[error("could not start the epoch ticker thread")]
    Ticker(#[source] std::io::Error),

    /// The component loaded and type-checked but its instantiation failed (e.g. its start
    /// function trapped, or a granted directory vanished since).
    #[error("plugin `{plugin}` could not be instantiated")]
    Instantiate {
        plugin: String,
        #[source]
        source: wasmtime::Error,
    },

    /// The guest trapped: a panic, `unreachable`, an out-of-bounds access, …
    /// The instance that trapped refuses every later call ([`Error::Poisoned`]). A stateless
    /// world's next call gets a fresh instance anyway; the state a stateful world kept in
    /// it (an aggregator's resources, say) is lost, and the host must start it again.
    #[error(
        "plugin `{plugin}` trapped in `{export}`: {trap}{}",
        format_detail(detail)
    )]
    Trap {
        plugin: String,
        export: String,
        trap: wasmtime::Trap,
        /// The guest backtrace and whatever the guest wrote to a captured stderr.
        detail: String,
    },

    /// The call ran past `Limits::call_timeout` and was stopped.
    #[error("plugin `{plugin}` ran out of time in `{export}` (limit {timeout:?})")]
    Timeout {
        plugin: String,
        export: String,
        timeout: Duration,
    },

    /// The guest tried to grow its linear memory past `Limits::max_memory_bytes`.
    #[error(
        "plugin `{plugin}` exceeded its memory limit in `{export}`: asked for {requested} bytes, limit {limit}"
    )]
    MemoryLimit {
        plugin: String,
        export: String,
        limit: usize,
        requested: usize,
    },

    /// The guest tried to grow a table past `Limits::max_table_elements`.
    #[error(
        "plugin `{plugin}` exceeded its table limit in `{export}`: asked for {requested} elements, limit {limit}"
    )]
    TableLimit {
        plugin: String,
        export: String,
        limit: usize,
        requested: usize,
    },

    /// The guest recursed deeper than `RuntimeConfig::max_wasm_stack` allows.
    #[error(
        "plugin `{plugin}` overflowed its stack in `{export}`{}",
        format_detail(detail)
    )]
    StackOverflow {
        plugin: String,
        export: String,
        detail: String,
    },

    /// The guest burnt its `Limits::fuel_per_call`.
    #[error("plugin `{plugin}` ran out of fuel in `{export}` (limit {fuel})")]
    FuelExhausted {
        plugin: String,
        export: String,
        fuel: u64,
    },

    /// What the guest passed across the boundary in one call (a huge result, or huge
    /// arguments to a host function) would take more than `Limits::max_transfer_bytes` of
    /// host memory once lifted.
    #[error(
        "plugin `{plugin}` tried to pass the host more than {limit} bytes (of host memory, \
         once lifted) in `{export}`"
    )]
    TransferLimit {
        plugin: String,
        export: String,
        limit: usize,
    },

    /// A host function refused the guest a capability it was not granted.
    #[error("plugin `{plugin}` was denied {capability} in `{export}`")]
    CapabilityDenied {
        plugin: String,
        export: String,
        capability: String,
    },

    /// The guest answered, but broke its world's contract (e.g. a wrong number of outcomes).
    #[error("plugin `{plugin}` broke the contract of `{export}`: {message}")]
    Contract {
        plugin: String,
        export: String,
        message: String,
    },

    /// A stateful instance trapped earlier and can no longer be entered.
    #[error(
        "plugin `{plugin}`: instance is unusable after an earlier failed call (to `{export}`); start a new one"
    )]
    Poisoned { plugin: String, export: String },

    /// [`Instance::call`](crate::Instance::call) was given a name the component does not
    /// export: a slip in the world's glue, caught before anything runs.
    #[error(
        "plugin `{plugin}` has no export `{export}` to call; it exports {exports} (names are `interface#function`, the interface without its version)"
    )]
    UnknownExport {
        plugin: String,
        export: String,
        /// What it does export, as `call` names them.
        exports: String,
    },

    /// Any other failure of a call (e.g. a host function returned an error).
    #[error("call to `{export}` of plugin `{plugin}` failed")]
    Call {
        plugin: String,
        export: String,
        #[source]
        source: wasmtime::Error,
    },
}

/// What errors name as the export when instantiation itself (initial memory, start
/// functions) failed.
pub(crate) const INSTANTIATION: &str = "(instantiation)";

fn format_detail(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!("\n{detail}")
    }
}

/// Why a component file could not be loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("component file {} does not exist", path.display())]
    NotFound { path: PathBuf },

    #[error("could not read component file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is not a WebAssembly file (it does not start with the `\\0asm` magic bytes)", path.display())]
    NotWasm { path: PathBuf },

    #[error(
        "{} is a core WebAssembly module, not a component (`witplug run` runs preview1 \
         programs as they are); for a plugin, build it for wasm32-wasip2 or wrap it with \
         the preview1 adapter: `wasm-tools component new app.wasm --adapt \
         wasi_snapshot_preview1.reactor.wasm -o app.component.wasm`",
        path.display()
    )]
    CoreModule { path: PathBuf },

    #[error("{} is not a valid component: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },

    /// The component is valid but does not fit the world the host expects.
    #[error(
        "{} does not implement world `{world}`: {reason}\n  the component exports: {exports}\n  the component imports: {imports}",
        path.display()
    )]
    WorldMismatch {
        path: PathBuf,
        world: &'static str,
        reason: String,
        exports: String,
        imports: String,
    },
}

/// A capability grant that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    #[error("cannot grant directory {}: {reason}", host.display())]
    Directory { host: PathBuf, reason: String },

    #[error("invalid directory grant `{spec}`: {reason} (expected HOST[::GUEST][:ro|:rw])")]
    DirectorySpec { spec: String, reason: String },

    #[error("invalid environment grant `{spec}`: {reason} (expected NAME or NAME=VALUE)")]
    EnvSpec { spec: String, reason: String },

    #[error("invalid configuration entry `{spec}`: {reason} (expected KEY=VALUE)")]
    ConfigSpec { spec: String, reason: String },

    #[error(
        "guest path {guest} is granted twice (host {} and {}); each guest path takes one grant",
        first.display(),
        second.display()
    )]
    DuplicateGuestPath {
        guest: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("environment variable `{name}` is granted twice; give each name once")]
    DuplicateEnv { name: String },

    #[error("{capability} is granted twice; give each world grant once")]
    DuplicateWorldGrant { capability: &'static str },

    #[error("configuration key `{key}` is given twice; give each key once")]
    DuplicateConfig { key: String },

    #[error(
        "cannot pass environment variable `{name}`: its host value is not valid UTF-8 \
         (give a value with `{name}=VALUE`)"
    )]
    EnvNotUnicode { name: String },
}

/// An error and its sources, one line: `outer: inner: innermost`.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // wasmtime repeats a context's message in its source; say it once.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl Error {
    /// Sorts a failed guest call into the typed error that says what happened.
    pub(crate) fn from_call(
        plugin: &str,
        export: &str,
        error: wasmtime::Error,
        captured_stderr: Option<String>,
        limits: &Limits,
    ) -> Self {
        let plugin = plugin.to_owned();
        let export = export.to_owned();
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return match *limit {
                LimitExceeded::Memory { limit, requested } => Error::MemoryLimit {
                    plugin,
                    export,
                    limit,
                    requested,
                },
                LimitExceeded::Table { limit, requested } => Error::TableLimit {
                    plugin,
                    export,
                    limit,
                    requested,
                },
                LimitExceeded::Deadline { timeout } => Error::Timeout {
                    plugin,
                    export,
                    timeout,
                },
            };
        }
        if let Some(denied) = error.downcast_ref::<CapabilityDenied>() {
            return Error::CapabilityDenied {
                plugin,
                export,
                capability: denied.capability.clone(),
            };
        }
        // wasmtime reports its "hostcall fuel" running out with a private error type;
        // its message is all there is to recognise it by.
        if error
            .chain()
            .any(|cause| cause.to_string().contains("too much data is being copied"))
        {
            return Error::TransferLimit {
                plugin,
                export,
                limit: limits.max_transfer_bytes,
            };
        }
        // A world's `bindgen!` without `exports: { default: async }` makes synchronous calls,
        // which witplug's async stores refuse before the guest is entered.
        if error.chain().any(|cause| {
            cause
                .to_string()
                .contains("`*_async` functions are used instead")
        }) {
            let hint = if export == INSTANTIATION {
                "the world's `World::instantiate` instantiates synchronously: witplug needs \
                 `pre.instantiate_async(store).await`"
            } else {
                "the world's bindings call exports synchronously: witplug needs them \
                 generated with `bindgen!({ exports: { default: async }, .. })`"
            };
            return Error::Call {
                plugin,
                export,
                source: error.context(hint),
            };
        }
        let Some(trap) = error.downcast_ref::<wasmtime::Trap>().copied() else {
            return Error::Call {
                plugin,
                export,
                source: error,
            };
        };
        let mut detail = String::new();
        if let Some(stderr) = captured_stderr.filter(|s| !s.trim().is_empty()) {
            detail.push_str("guest stderr:\n");
            detail.push_str(stderr.trim_end());
            detail.push('\n');
        }
        if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
            detail.push_str(&backtrace.to_string());
        }
        let detail = detail.trim_end().to_owned();
        match trap {
            wasmtime::Trap::StackOverflow => Error::StackOverflow {
                plugin,
                export,
                detail,
            },
            wasmtime::Trap::OutOfFuel => Error::FuelExhausted {
                plugin,
                export,
                fuel: limits.fuel_per_call.unwrap_or_default(),
            },
            trap => Error::Trap {
                plugin,
                export,
                trap,
                detail,
            },
        }
    }

    /// The plugin the error is about, when it is about one.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Error::Instantiate { plugin, .. }
            | Error::Timeout { plugin, .. }
            | Error::MemoryLimit { plugin, .. }
            | Error::TableLimit { plugin, .. }
            | Error::StackOverflow { plugin, .. }
            | Error::FuelExhausted { plugin, .. }
            | Error::TransferLimit { plugin, .. }
            | Error::CapabilityDenied { plugin, .. }
            | Error::Trap { plugin, .. }
            | Error::Contract { plugin, .. }
            | Error::Poisoned { plugin, .. }
            | Error::UnknownExport { plugin, .. }
            | Error::Call { plugin, .. } => Some(plugin),
            Error::Load(_)
            | Error::Grant(_)
            | Error::Engine(_)
            | Error::Ticker(_)
            | Error::Cache(_)
            | Error::InvalidLimits(_) => None,
        }
    }

    /// The export whose call failed, when the error is about a call (not about an
    /// instantiation or a load). For [`Error::Poisoned`], the export whose earlier failure
    /// poisoned the instance.
    pub fn export(&self) -> Option<&str> {
        let export = match self {
            Error::Timeout { export, .. }
            | Error::MemoryLimit { export, .. }
            | Error::TableLimit { export, .. }
            | Error::StackOverflow { export, .. }
            | Error::FuelExhausted { export, .. }
            | Error::TransferLimit { export, .. }
            | Error::CapabilityDenied { export, .. }
            | Error::Trap { export, .. }
            | Error::Contract { export, .. }
            | Error::Poisoned { export, .. }
            | Error::UnknownExport { export, .. }
            | Error::Call { export, .. } => export,
            Error::Instantiate { .. }
            | Error::Load(_)
            | Error::Grant(_)
            | Error::Engine(_)
            | Error::Ticker(_)
            | Error::Cache(_)
            | Error::InvalidLimits(_) => return None,
        };
        // A limit hit or a trap while instantiating is not about an export.
        (export != INSTANTIATION).then_some(export.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout(export: &str) -> Error {
        Error::Timeout {
            plugin: "p".to_owned(),
            export: export.to_owned(),
            timeout: Duration::from_millis(5),
        }
    }

    #[test]
    fn export_names_a_call_but_not_an_instantiation() {
        let call = timeout("iface#f");
        assert_eq!((call.plugin(), call.export()), (Some("p"), Some("iface#f")));
        let start = timeout(INSTANTIATION);
        assert_eq!((start.plugin(), start.export()), (Some("p"), None));
        let poisoned = Error::Poisoned {
            plugin: "p".to_owned(),
            export: "iface#g".to_owned(),
        };
        assert_eq!(poisoned.export(), Some("iface#g"));
    }

    #[test]
    fn synchronous_bindings_get_the_fix_for_where_they_failed() {
        let refused = || {
            wasmtime::Error::msg(
                "store configuration requires that `*_async` functions are used instead",
            )
        };
        let hint = |export| {
            let error = Error::from_call("p", export, refused(), None, &Limits::default());
            assert!(matches!(error, Error::Call { .. }), "{error:?}");
            error_chain(&error)
        };
        assert!(hint("iface#f").contains("exports: { default: async }"));
        assert!(hint(INSTANTIATION).contains("instantiate_async"));
    }
}
