//! Routes: a path prefix, the handler serving it, and that handler's version slot.
//!
//! A route's handler sits in a [`PluginSlot`], so that `--watch` can replace it while
//! requests run: a request keeps the version it started with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use witplug::{
    LoadedComponent, Plugin, PluginOptions, PluginSlot, PluginVersion, Runtime, Versioned,
    component_digest,
};

use crate::error::ServeError;
use crate::handler::{BodyLimits, HttpData, HttpHandler, config_variables};
use crate::outbound::OutboundHooks;

/// What a route is made of, before its component is loaded.
#[derive(Clone)]
pub struct RouteSpec {
    /// Names the route in logs, metrics and host-made answers.
    pub name: String,
    /// Matches the path `prefix` and every path below it (`/auth` matches `/auth` and
    /// `/auth/x`, not `/authz`); `/` matches everything.
    pub prefix: String,
    pub component: PathBuf,
    /// Grants, configuration, limits (the deadline is per request) and instance reuse.
    pub options: PluginOptions,
    pub body: BodyLimits,
}

/// A loaded route.
pub struct Route {
    pub(crate) spec: RouteSpec,
    pub(crate) slot: PluginSlot<Plugin<HttpHandler>>,
    /// The component file's modification time and length when last loaded, for `--watch`.
    pub(crate) seen: std::sync::Mutex<Option<(SystemTime, u64)>>,
}

impl Route {
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn prefix(&self) -> &str {
        &self.spec.prefix
    }

    /// The version serving new requests.
    pub fn version(&self) -> PluginVersion {
        self.slot.current().version.clone()
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        prefix_matches(&self.spec.prefix, path)
    }
}

pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

/// Checks a prefix as written by the user: it must start with `/`.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if !prefix.starts_with('/') {
        return Err("a route prefix must start with `/`");
    }
    if prefix.contains(['?', '#']) {
        return Err("a route prefix is a path: no query or fragment");
    }
    Ok(())
}

/// A route's handler as `witplug serve` loads it (grants, configuration as
/// `wasi:config/store`, outbound hooks), for embedders and benchmarks that run requests
/// through [`serve_request`](crate::handler::serve_request) themselves.
pub async fn load_plugin(
    runtime: &Runtime,
    spec: &RouteSpec,
) -> Result<Plugin<HttpHandler>, ServeError> {
    load_version(runtime, spec)
        .await
        .map(|loaded| loaded.plugin)
}

/// Reads, compiles and links a route's component. Compilation runs on a blocking thread:
/// a Go or Python component takes a second or more, which must not stall the server.
pub(crate) async fn load_version(
    runtime: &Runtime,
    spec: &RouteSpec,
) -> Result<Versioned<Plugin<HttpHandler>>, ServeError> {
    // With no digest to skip every read is compiled, so `None` cannot come back; were it
    // to, it is a bug in witplug, which `LoadPanicked` reports.
    load_version_unless(runtime, spec, None)
        .await?
        .ok_or_else(|| ServeError::LoadPanicked {
            route: spec.name.clone(),
        })
}

/// As [`load_version`], but `Ok(None)` without compiling when the file's digest is
/// `unless_digest` (the version serving already): a touch alone costs a read and a hash.
async fn load_version_unless(
    runtime: &Runtime,
    spec: &RouteSpec,
    unless_digest: Option<String>,
) -> Result<Option<Versioned<Plugin<HttpHandler>>>, ServeError> {
    let runtime_for_compile = runtime.clone();
    let path = spec.component.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        read_then_compile(&path, unless_digest.as_deref(), |bytes| {
            LoadedComponent::from_bytes(&runtime_for_compile, bytes, &path)
        })
    })
    .await
    .map_err(|_| ServeError::LoadPanicked {
        route: spec.name.clone(),
    })?
    .map_err(|source| ServeError::Load {
        route: spec.name.clone(),
        source: Box::new(source.into()),
    })?;
    let Some((component, digest)) = compiled else {
        return Ok(None);
    };
    let name: Arc<str> = spec.name.as_str().into();
    let grants: Arc<[witplug::HttpGrant]> = spec.options.capabilities.http_grants().into();
    let variables = Arc::new(config_variables(&spec.options.config));
    let options = spec.options.clone().name(spec.name.clone());
    let plugin = Plugin::with_data(runtime, &component, options, move || {
        HttpData::new(
            OutboundHooks::new(name.clone(), grants.clone()),
            variables.clone(),
        )
    })
    .await
    .map_err(|source| ServeError::Load {
        route: spec.name.clone(),
        source: Box::new(source),
    })?;
    Ok(Some(Versioned {
        plugin,
        version: PluginVersion {
            name: spec.name.clone(),
            version: file_label(&spec.component),
            digest,
        },
    }))
}

/// Reads the file at `path` and hashes it; compiles the bytes, unless their digest is
/// `unless_digest`, in which case `Ok(None)`. Returns what `compile` made and the digest.
fn read_then_compile<T>(
    path: &Path,
    unless_digest: Option<&str>,
    compile: impl FnOnce(&[u8]) -> Result<T, witplug::LoadError>,
) -> Result<Option<(T, String)>, witplug::LoadError> {
    let bytes = witplug::component::read_wasm_file(path)?;
    let digest = component_digest(&bytes);
    if unless_digest == Some(digest.as_str()) {
        return Ok(None);
    }
    compile(&bytes).map(|compiled| Some((compiled, digest)))
}

fn file_label(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

/// How often `--watch` looks at the component files.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

impl Route {
    pub(crate) async fn load(runtime: &Runtime, spec: RouteSpec) -> Result<Self, ServeError> {
        let seen = file_stamp(&spec.component);
        let loaded = load_version(runtime, &spec).await?;
        Ok(Self {
            slot: PluginSlot::new(loaded.plugin, loaded.version),
            spec,
            seen: std::sync::Mutex::new(seen),
        })
    }

    /// Reloads the component if its file changed since it was last loaded; a version
    /// that fails to load is logged and the current one keeps serving.
    pub(crate) async fn reload_if_changed(&self, runtime: &Runtime) -> bool {
        let stamp = file_stamp(&self.spec.component);
        {
            let Ok(mut seen) = self.seen.lock() else {
                return false;
            };
            if stamp.is_none() || *seen == stamp {
                return false;
            }
            *seen = stamp;
        }
        let serving = self.slot.current().version.digest.clone();
        match load_version_unless(runtime, &self.spec, Some(serving)).await {
            Ok(None) => false,
            Ok(Some(loaded)) => {
                let old = self.slot.replace(loaded.plugin, loaded.version.clone());
                tracing::info!(
                    target: "witplug::serve",
                    route = self.name(),
                    from = %old.version.digest,
                    to = %loaded.version.digest,
                    "handler replaced; requests in flight finish on the old version"
                );
                true
            }
            Err(error) => {
                tracing::warn!(
                    target: "witplug::serve",
                    route = self.name(),
                    error = %witplug::error_chain(&error),
                    "new version not loaded; the current one keeps serving"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/auth", "/auth"));
        assert!(prefix_matches("/auth", "/auth/x"));
        assert!(prefix_matches("/auth/", "/auth/x"));
        assert!(prefix_matches("/auth", "/auth?q=1"));
        assert!(!prefix_matches("/auth", "/authz"));
        assert!(!prefix_matches("/auth", "/"));
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/", "/"));
    }

    /// Writes `bytes` to a fresh file and returns the directory keeping it alive.
    fn component_file(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("handler.wasm");
        std::fs::write(&path, bytes).expect("the file is written");
        (dir, path)
    }

    #[test]
    fn an_unchanged_file_is_not_compiled_again() {
        let (_dir, path) = component_file(b"the same bytes");
        let serving = component_digest(b"the same bytes");
        // A touch: the stamp changes, the content does not.
        std::fs::write(&path, b"the same bytes").expect("the file is rewritten");
        let mut compiles = 0;
        let outcome = read_then_compile(&path, Some(&serving), |_| {
            compiles += 1;
            Ok(())
        })
        .expect("the file is read");
        assert!(outcome.is_none());
        assert_eq!(compiles, 0);
    }

    #[test]
    fn a_changed_file_is_compiled_once_with_its_digest() {
        let (_dir, path) = component_file(b"new bytes");
        let serving = component_digest(b"old bytes");
        let mut compiled = Vec::new();
        let outcome = read_then_compile(&path, Some(&serving), |bytes| {
            compiled.push(bytes.to_vec());
            Ok("component")
        })
        .expect("the file is read");
        assert_eq!(outcome, Some(("component", component_digest(b"new bytes"))));
        assert_eq!(compiled, [b"new bytes".to_vec()]);
    }

    #[test]
    fn a_first_load_always_compiles() {
        let (_dir, path) = component_file(b"bytes");
        let outcome =
            read_then_compile(&path, None, |bytes| Ok(bytes.len())).expect("the file is read");
        assert_eq!(outcome, Some((5, component_digest(b"bytes"))));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_an_error_not_a_skip() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let missing = dir.path().join("gone.wasm");
        let serving = component_digest(b"");
        let outcome = read_then_compile(&missing, Some(&serving), |_| Ok(()));
        assert!(matches!(outcome, Err(witplug::LoadError::NotFound { .. })));
    }

    #[test]
    fn prefixes_must_be_paths() {
        assert!(check_prefix("/a").is_ok());
        assert!(check_prefix("a").is_err());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("/a?b").is_err());
    }
}
