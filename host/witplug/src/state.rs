//! Per-instance host state: what one `Store` carries.
//!
//! Each instance owns exactly one `Store<PluginState<D>>`; nothing in it is shared with
//! another instance except the read-only configuration and the log sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::CapturedOutput;
use crate::error::GrantError;
use crate::limits::StoreLimiter;

/// Read-only key/value configuration given to a plugin by whoever runs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PluginConfig {
    entries: BTreeMap<String, String>,
}

impl PluginConfig {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`, replacing an earlier value.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.entries.insert(key.into(), value.into());
        self
    }

    /// Adds an entry written as `KEY=VALUE` (as `--config` takes it). A key given twice is
    /// an error (as for `--env`), so that no repeat silently overrides another.
    pub fn set_spec(self, spec: &str) -> Result<Self, GrantError> {
        match spec.split_once('=') {
            Some((key, _)) if self.entries.contains_key(key) => Err(GrantError::DuplicateConfig {
                key: key.to_owned(),
            }),
            Some((key, value)) if !key.is_empty() => Ok(self.set(key, value)),
            Some(_) => Err(GrantError::ConfigSpec {
                spec: spec.to_owned(),
                reason: "the key is empty".to_owned(),
            }),
            None => Err(GrantError::ConfigSpec {
                spec: spec.to_owned(),
                reason: "there is no `=`".to_owned(),
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// The configuration keys, one `config: KEY` line each, for `-v`. Values are left out:
    /// they may be secrets (tokens), and `-v` output ends up in logs.
    pub fn grant_lines(&self) -> Vec<String> {
        if self.entries.is_empty() {
            return vec!["config: none".to_owned()];
        }
        self.entries()
            .map(|(key, _)| format!("config: {key}"))
            .collect()
    }

    /// Entries sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Severity of a plugin's log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One log line written by a plugin.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    pub plugin: Arc<str>,
    pub level: LogLevel,
    pub message: String,
    pub fields: Vec<(String, String)>,
}

/// Receives every plugin log line in addition to `tracing` (e.g. to show or test them).
pub type LogSink = Arc<dyn Fn(&LogRecord) + Send + Sync>;

/// The data of one instance's `Store`: WASI context and resource table, the plugin's
/// identity and configuration, and `data` for the world's own host state.
pub struct PluginState<D = ()> {
    pub(crate) plugin: Arc<str>,
    pub(crate) config: Arc<PluginConfig>,
    pub(crate) log_sink: Option<LogSink>,
    pub(crate) captured: CapturedOutput,
    pub(crate) limiter: StoreLimiter,
    world_grants: crate::world_grants::WorldGrants,
    wasi: WasiCtx,
    table: ResourceTable,
    /// Host state of a world defined outside witplug (`()` for the built-in worlds).
    pub data: D,
}

impl<D> PluginState<D> {
    pub(crate) fn new(
        plugin: Arc<str>,
        config: Arc<PluginConfig>,
        log_sink: Option<LogSink>,
        wasi: WasiCtx,
        captured: CapturedOutput,
        limiter: StoreLimiter,
        data: D,
    ) -> Self {
        Self {
            world_grants: Default::default(),
            plugin,
            config,
            log_sink,
            captured,
            limiter,
            wasi,
            table: ResourceTable::new(),
            data,
        }
    }

    /// The name of the plugin this instance belongs to.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// Output captured from the guest's stdout/stderr, for streams granted `Stdio::Capture`.
    pub fn captured(&self) -> &CapturedOutput {
        &self.captured
    }

    pub fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// The world's host data and the resource table at once: host interfaces whose view
    /// borrows both (`wasi:http`'s `WasiHttpCtxView`) need the split borrow.
    pub fn data_and_table(&mut self) -> (&mut D, &mut ResourceTable) {
        (&mut self.data, &mut self.table)
    }

    /// Gives the instance its plugin's world grants (none until then).
    pub(crate) fn with_world_grants(mut self, grants: &crate::world_grants::WorldGrants) -> Self {
        self.world_grants = grants.clone();
        self
    }

    /// The world grant of type `G` given to this plugin, if any.
    pub fn grant<G: crate::WorldGrant>(&self) -> Option<&G> {
        self.world_grants.get::<G>()
    }

    /// The world grant of type `G`, or the denial a host function returns when it is
    /// missing (check it before any effect):
    /// `let mail = state.require::<SendMail>()?;` becomes [`Error::CapabilityDenied`]
    /// naming [`WorldGrant::CAPABILITY`](crate::WorldGrant::CAPABILITY).
    ///
    /// [`Error::CapabilityDenied`]: crate::Error::CapabilityDenied
    pub fn require<G: crate::WorldGrant>(&self) -> Result<&G, crate::CapabilityDenied> {
        self.world_grants.require::<G>()
    }

    /// Writes a plugin log line to `tracing` (target `witplug::guest`) and the sink.
    pub(crate) fn log(&self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        let rendered: String = fields.iter().map(|(k, v)| format!(" {k}={v:?}")).collect();
        let plugin = &*self.plugin;
        // `tracing` levels must be constants, hence one macro call per level.
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "witplug::guest", plugin, "{message}{rendered}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "witplug::guest", plugin, "{message}{rendered}")
            }
            LogLevel::Info => {
                tracing::info!(target: "witplug::guest", plugin, "{message}{rendered}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "witplug::guest", plugin, "{message}{rendered}")
            }
            LogLevel::Error => {
                tracing::error!(target: "witplug::guest", plugin, "{message}{rendered}")
            }
        }
        if let Some(sink) = &self.log_sink {
            sink(&LogRecord {
                plugin: self.plugin.clone(),
                level,
                message,
                fields,
            });
        }
    }
}

impl<D: Send> WasiView for PluginState<D> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_key_given_twice_is_an_error_naming_it() {
        let error = PluginConfig::new()
            .set_spec("mode=a")
            .expect("valid")
            .set_spec("mode=b")
            .expect_err("repeat")
            .to_string();
        assert!(
            error.contains("`mode`") && error.contains("twice"),
            "{error}"
        );
        assert_eq!(
            PluginConfig::new().set("k", "1").set("k", "2").get("k"),
            Some("2")
        );
    }

    #[test]
    fn grant_lines_list_every_key_but_no_value() {
        let config = PluginConfig::new().set("b", "2").set("api-token", "s3cret");
        let lines = config.grant_lines();
        assert_eq!(lines, ["config: api-token", "config: b"]);
        assert!(!lines.concat().contains("s3cret"));
        assert_eq!(PluginConfig::new().grant_lines(), ["config: none"]);
    }
}
