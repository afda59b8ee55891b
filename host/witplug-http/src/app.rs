//! App files: route prefixes mapped to handlers, each with its own policy.
//!
//! ```toml
//! addr = "127.0.0.1:8080"        # optional; a command-line address wins
//! max-concurrent = 100           # optional
//!
//! [[route]]
//! name = "auth"                  # optional; default: the component file's stem
//! prefix = "/auth"               # /auth and /auth/..., not /authz; the longest wins
//! component = "auth.wasm"        # relative to this file
//! reuse = 0                      # requests one instance may serve; 0: a fresh one each
//! max-request-body-kib = 1024
//! max-response-body-kib = 8192
//! [route.policy.config]          # a witplug policy: grants, config, limits
//! auth-key = "secret"
//! [route.policy.grants]
//! http = ["https://api.example.com"]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use witplug::policy::{parse_toml, read_toml_file};
use witplug::{InstanceReuse, PluginOptions, Policy};

use crate::error::ServeError;
use crate::handler::BodyLimits;
use crate::route::RouteSpec;

/// The largest body limit a route may set: 1 GiB.
pub const MAX_BODY_KIB: usize = 1 << 20;
/// The largest `max-concurrent`.
pub const MAX_CONCURRENT: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AppFile {
    addr: Option<String>,
    max_concurrent: Option<usize>,
    #[serde(default, rename = "route")]
    routes: Vec<RouteEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RouteEntry {
    name: Option<String>,
    prefix: String,
    component: PathBuf,
    reuse: Option<u32>,
    max_request_body_kib: Option<usize>,
    max_response_body_kib: Option<usize>,
    #[serde(default)]
    policy: Policy,
}

/// A parsed and checked app file.
#[derive(Debug)]
pub struct App {
    pub path: PathBuf,
    pub addr: Option<String>,
    pub max_concurrent: Option<usize>,
    routes: Vec<AppRoute>,
}

#[derive(Debug)]
struct AppRoute {
    name: String,
    prefix: String,
    component: PathBuf,
    reuse: Option<u32>,
    body: BodyLimits,
    policy: Policy,
}

impl App {
    /// Reads an app file; relative paths (components, granted directories) are taken
    /// against its directory.
    pub fn from_file(path: &Path) -> Result<Self, ServeError> {
        let text = read_toml_file(path)?;
        let origin = path.display().to_string();
        let file: AppFile = parse_toml(&text, &origin)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let fail = |reason: String| ServeError::App {
            path: path.to_path_buf(),
            reason,
        };
        if file.routes.is_empty() {
            return Err(fail("no `[[route]]`".to_owned()));
        }
        if let Some(n) = file.max_concurrent
            && !(1..=MAX_CONCURRENT).contains(&n)
        {
            return Err(fail(format!(
                "`max-concurrent` must be 1 to {MAX_CONCURRENT}, not {n}"
            )));
        }
        let mut routes = Vec::with_capacity(file.routes.len());
        for (index, entry) in file.routes.into_iter().enumerate() {
            let at = |key: &str| format!("route[{index}].{key}");
            crate::route::check_prefix(&entry.prefix)
                .map_err(|reason| fail(format!("`{}`: {reason}", at("prefix"))))?;
            let mut body = BodyLimits::default();
            for (key, value, slot) in [
                (
                    "max-request-body-kib",
                    entry.max_request_body_kib,
                    &mut body.max_request_bytes,
                ),
                (
                    "max-response-body-kib",
                    entry.max_response_body_kib,
                    &mut body.max_response_bytes,
                ),
            ] {
                if let Some(kib) = value {
                    *slot = body_limit(kib).ok_or_else(|| {
                        fail(format!(
                            "`{}` must be 1 to {MAX_BODY_KIB}, not {kib}",
                            at(key)
                        ))
                    })?;
                }
            }
            let component = base.join(&entry.component);
            let name = match entry.name {
                Some(name) if name.trim().is_empty() => {
                    return Err(fail(format!("`{}` is empty", at("name"))));
                }
                Some(name) => name,
                None => stem(&component),
            };
            let table = format!("route[{index}].policy");
            let policy = entry
                .policy
                .with_origin(origin.clone(), Some(&table))
                .resolve_paths(base);
            routes.push(AppRoute {
                name,
                prefix: entry.prefix,
                component,
                reuse: entry.reuse,
                body,
                policy,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            addr: file.addr,
            max_concurrent: file.max_concurrent,
            routes,
        })
    }

    /// The routes, each route's policy applied on top of `base` (the command line's grants
    /// and limits, shared by every route).
    pub fn route_specs(&self, base: &PluginOptions) -> Result<Vec<RouteSpec>, ServeError> {
        self.routes
            .iter()
            .map(|route| {
                let mut options = base.clone().policy(&route.policy)?;
                if let Some(reuse) = route.reuse {
                    options = options.reuse(reuse_of(reuse));
                }
                Ok(RouteSpec {
                    name: route.name.clone(),
                    prefix: route.prefix.clone(),
                    component: route.component.clone(),
                    options,
                    body: route.body,
                })
            })
            .collect()
    }
}

/// `reuse = N` / `--reuse N`: 0 is a fresh instance per request.
pub fn reuse_of(requests: u32) -> InstanceReuse {
    match requests {
        0 | 1 => InstanceReuse::Never,
        max_calls => InstanceReuse::UpTo { max_calls },
    }
}

/// KiB to bytes, within 1 KiB to [`MAX_BODY_KIB`].
pub fn body_limit(kib: usize) -> Option<usize> {
    (1..=MAX_BODY_KIB).contains(&kib).then(|| kib * 1024)
}

/// A component file's stem, the default name of its route.
pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "handler".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(text: &str) -> Result<App, ServeError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("app.toml");
        std::fs::write(&path, text).expect("write");
        App::from_file(&path)
    }

    #[test]
    fn routes_take_paths_relative_to_the_file_and_default_names() {
        let app = app(
            "[[route]]\nprefix = \"/auth\"\ncomponent = \"handlers/auth.wasm\"\n\
             [route.policy.config]\nauth-key = \"k\"\n",
        )
        .expect("valid");
        let specs = app.route_specs(&PluginOptions::default()).expect("specs");
        assert_eq!(specs[0].name, "auth");
        assert!(specs[0].component.ends_with("handlers/auth.wasm"));
        assert!(specs[0].component.is_absolute());
        assert_eq!(specs[0].options.config.get("auth-key"), Some("k"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let error = app("[[route]]\nprefix = \"auth\"\ncomponent = \"a.wasm\"\n")
            .expect_err("prefix")
            .to_string();
        assert!(error.contains("route[0].prefix"), "{error}");
        let error =
            app("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\nmax-request-body-kib = 0\n")
                .expect_err("limit")
                .to_string();
        assert!(error.contains("route[0].max-request-body-kib"), "{error}");
        let error = app("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\nbogus = 1\n")
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("bogus"), "{error}");
        let error = app("addr = \"x\"\n").expect_err("no routes").to_string();
        assert!(error.contains("[[route]]"), "{error}");
        let error = app("[[route]]\nprefix = \"/\"\ncomponent = \"a.wasm\"\n\
             [route.policy.grants]\nhttp = [\"https://x.com/path\"]\n")
        .expect_err("bad grant")
        .to_string();
        assert!(error.contains("https://x.com/path"), "{error}");
    }
}
