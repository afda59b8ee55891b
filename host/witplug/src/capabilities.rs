//! Capability policy: what a plugin may touch outside its own memory.
//!
//! [`Capabilities::none`] (also `Default`) grants nothing: no directory, no environment
//! variable, no argument, stdin closed, stdout and stderr discarded, and no network (TCP,
//! UDP and name lookup denied). Every grant is explicit and per plugin. The policy is turned
//! into a fresh `WasiCtx` for every instance, so grants never leak between instances.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::error::GrantError;
use crate::guest_log::{LogStream, Stream};
use crate::http_grant::HttpGrant;

/// How much of a captured stream is kept; the rest is dropped, not buffered.
const CAPTURE_LIMIT: usize = 64 * 1024;

/// Returned (as the error of a trappable host function) when a guest asks for something it
/// was not granted; witplug reports it as [`Error::CapabilityDenied`](crate::Error).
/// Check before any side effect, e.g. `return Err(CapabilityDenied::new("network").into())`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capability denied: {capability}")]
pub struct CapabilityDenied {
    pub capability: String,
}

impl CapabilityDenied {
    pub fn new(capability: impl Into<String>) -> Self {
        Self {
            capability: capability.into(),
        }
    }
}

/// Access granted on a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A host directory made visible to the guest under `guest` path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    pub host: PathBuf,
    pub guest: String,
    pub access: Access,
}

impl FromStr for DirGrant {
    type Err = GrantError;

    /// Parses `HOST[::GUEST][:ro|:rw]`, as `witplug run --dir` takes it.
    ///
    /// - The access suffix is `:ro` or `:rw` in any case; any other `:WORD` at the end
    ///   (a word without `/`) is an error, never part of a path. Default: read-write, as
    ///   in `wasmtime run --dir`.
    /// - The guest path follows the *last* `::`, so a host path that contains `::` is
    ///   given with an explicit guest path (`a::b::/data`). Without `::GUEST` the guest
    ///   sees the directory under the host path as written.
    /// - The guest path must be absolute and must not contain `::`: a typo such as
    ///   `a::b::c` is refused instead of granting `a` somewhere else.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| GrantError::DirectorySpec {
            spec: spec.to_owned(),
            reason,
        };
        let (paths, access) = match access_suffix(spec) {
            Some((paths, word)) if word.eq_ignore_ascii_case("ro") => (paths, Access::ReadOnly),
            Some((paths, word)) if word.eq_ignore_ascii_case("rw") => (paths, Access::ReadWrite),
            Some((_, word)) => {
                return Err(invalid(format!(
                    "unknown access suffix `:{word}` (expected `:ro` or `:rw`)"
                )));
            }
            None => (spec, Access::ReadWrite),
        };
        let (host, guest) = match paths.rsplit_once("::") {
            Some((host, guest)) => (host, guest),
            None => (paths, paths),
        };
        if host.is_empty() {
            return Err(invalid("the host path is empty".to_owned()));
        }
        if guest.is_empty() {
            return Err(invalid("the guest path is empty".to_owned()));
        }
        if !guest.starts_with('/') {
            return Err(invalid(format!(
                "the guest path `{guest}` is not absolute (write HOST::/GUEST)"
            )));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
            access,
        })
    }
}

/// Splits a trailing `:WORD` (a word without `/`, not part of a `::`) off a grant spec.
fn access_suffix(spec: &str) -> Option<(&str, &str)> {
    let colon = spec.rfind(':')?;
    let word = &spec[colon + 1..];
    let part_of_separator = spec[..colon].ends_with(':');
    (!part_of_separator && !word.contains('/')).then(|| (&spec[..colon], word))
}

impl std::fmt::Display for DirGrant {
    /// The grant in the syntax [`DirGrant::from_str`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let access = match self.access {
            Access::ReadOnly => "ro",
            Access::ReadWrite => "rw",
        };
        write!(f, "{}::{}:{access}", self.host.display(), self.guest)
    }
}

/// `/a//b/./` and `/a/b` name the same guest directory.
fn normalized_guest_path(guest: &str) -> Vec<&str> {
    guest
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect()
}

/// The host's value of `name`: `None` if unset, an error if it is not UTF-8.
fn host_env_value(name: &str) -> Result<Option<String>, GrantError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        // `std::env::var_os` panics on such names; the caller reports them.
        return Ok(None);
    }
    env_value_text(name, std::env::var_os(name))
}

fn env_value_text(
    name: &str,
    value: Option<std::ffi::OsString>,
) -> Result<Option<String>, GrantError> {
    match value {
        None => Ok(None),
        Some(value) => value
            .into_string()
            .map(Some)
            .map_err(|_| GrantError::EnvNotUnicode {
                name: name.to_owned(),
            }),
    }
}

/// What a guest standard stream is connected to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stdio {
    /// Closed stdin; output discarded.
    #[default]
    Null,
    /// The host process's own stream.
    Inherit,
    /// Kept in memory (up to 64 KiB per stream and instance): readable after a call, and
    /// attached to trap errors so that a guest's panic message is not lost.
    Capture,
    /// Each line logged (`tracing`, target `witplug::guest`) with the plugin's name: for
    /// servers, where many instances write at once. Up to 64 KiB per stream and instance.
    Log,
}

/// The capabilities granted to one plugin. See the module docs for the defaults.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    dirs: Vec<DirGrant>,
    env: Vec<(String, String)>,
    args: Vec<String>,
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    http: Vec<HttpGrant>,
    world: crate::world_grants::WorldGrants,
}

/// Output captured from one instance (present only for streams granted [`Stdio::Capture`]).
#[derive(Clone, Debug, Default)]
pub struct CapturedOutput {
    stdout: Option<MemoryOutputPipe>,
    stderr: Option<MemoryOutputPipe>,
}

impl CapturedOutput {
    pub fn stdout(&self) -> Option<String> {
        self.stdout.as_ref().map(pipe_text)
    }

    pub fn stderr(&self) -> Option<String> {
        self.stderr.as_ref().map(pipe_text)
    }
}

fn pipe_text(pipe: &MemoryOutputPipe) -> String {
    String::from_utf8_lossy(&pipe.contents()).into_owned()
}

impl Capabilities {
    /// Grants nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Grants a host directory. Fails now, not at instantiation, if it is not a directory,
    /// if the guest path is not absolute, or if another grant already uses the guest path
    /// (the later one would silently shadow it).
    pub fn dir(mut self, grant: DirGrant) -> Result<Self, GrantError> {
        if !grant.guest.starts_with('/') {
            return Err(GrantError::Directory {
                host: grant.host,
                reason: format!("the guest path `{}` is not absolute", grant.guest),
            });
        }
        let guest = normalized_guest_path(&grant.guest);
        if let Some(earlier) = self
            .dirs
            .iter()
            .find(|earlier| normalized_guest_path(&earlier.guest) == guest)
        {
            return Err(GrantError::DuplicateGuestPath {
                guest: grant.guest,
                first: earlier.host.clone(),
                second: grant.host,
            });
        }
        let metadata = std::fs::metadata(&grant.host).map_err(|e| GrantError::Directory {
            host: grant.host.clone(),
            reason: e.to_string(),
        })?;
        if !metadata.is_dir() {
            return Err(GrantError::Directory {
                host: grant.host,
                reason: "it is not a directory".to_owned(),
            });
        }
        self.dirs.push(grant);
        Ok(self)
    }

    /// Shorthand for [`Capabilities::dir`].
    pub fn dir_at(
        self,
        host: impl AsRef<Path>,
        guest: &str,
        access: Access,
    ) -> Result<Self, GrantError> {
        self.dir(DirGrant {
            host: host.as_ref().to_path_buf(),
            guest: guest.to_owned(),
            access,
        })
    }

    /// Sets a guest environment variable, replacing an earlier value of the same name (as
    /// [`PluginConfig::set`](crate::PluginConfig::set) does).
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self.env.iter_mut().find(|(existing, _)| *existing == name) {
            Some(entry) => entry.1 = value,
            None => self.env.push((name, value)),
        }
        self
    }

    /// Grants `NAME=VALUE`, or with `NAME` alone passes the host's value of `NAME` (read now;
    /// a variable the host does not have is not set in the guest either). Naming a variable
    /// twice is an error, so that no repeat silently overrides another; so is a host value
    /// that is not UTF-8 (WASI environment values are strings).
    pub fn env_spec(self, spec: &str) -> Result<Self, GrantError> {
        let invalid = |reason: &str| GrantError::EnvSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, value) = match spec.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (spec, host_env_value(spec)?),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if name.contains('\0') {
            return Err(invalid("the name contains a NUL byte"));
        }
        if self.env.iter().any(|(existing, _)| existing == name) {
            return Err(GrantError::DuplicateEnv {
                name: name.to_owned(),
            });
        }
        Ok(match value {
            Some(value) => self.env(name, value),
            None => {
                tracing::warn!(name, "environment variable not set on the host; not passed");
                self
            }
        })
    }

    /// Sets the guest's arguments (`argv[0]` included).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    pub fn stdin(mut self, stdin: Stdio) -> Self {
        self.stdin = stdin;
        self
    }

    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = stdout;
        self
    }

    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = stderr;
        self
    }

    /// Grants a capability of a world defined outside witplug (see [`WorldGrant`]): its
    /// host functions find it with [`PluginState::require`](crate::PluginState::require).
    /// A second grant of the same type is refused rather than merged or replaced.
    ///
    /// [`WorldGrant`]: crate::WorldGrant
    pub fn grant<G: crate::WorldGrant>(mut self, grant: G) -> Result<Self, GrantError> {
        self.world
            .insert(grant)
            .map_err(|capability| GrantError::DuplicateWorldGrant { capability })?;
        Ok(self)
    }

    pub(crate) fn world_grants(&self) -> &crate::world_grants::WorldGrants {
        &self.world
    }

    /// Allows outbound `wasi:http` requests to the origins `grant` matches (see
    /// [`HttpGrant`]). Only hosts that link `wasi:http` use it; without any, every
    /// outbound request is denied.
    pub fn allow_http(mut self, grant: HttpGrant) -> Self {
        if !self.http.contains(&grant) {
            self.http.push(grant);
        }
        self
    }

    pub fn http_grants(&self) -> &[HttpGrant] {
        &self.http
    }

    pub fn stderr_policy(&self) -> Stdio {
        self.stderr
    }

    pub fn dirs(&self) -> &[DirGrant] {
        &self.dirs
    }

    /// Environment variables granted, in the order given.
    pub fn envs(&self) -> &[(String, String)] {
        &self.env
    }

    /// The effective grants, one line each, for `-v`: every directory with its guest path
    /// and access, every environment variable (its name; values may be secrets), the
    /// arguments, the standard streams and the network (always denied).
    pub fn grant_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .dirs
            .iter()
            .map(|grant| {
                let access = match grant.access {
                    Access::ReadOnly => "read-only",
                    Access::ReadWrite => "read-write",
                };
                format!(
                    "dir: {} as {} ({access})",
                    grant.host.display(),
                    grant.guest
                )
            })
            .collect();
        if self.dirs.is_empty() {
            lines.push("dir: none".to_owned());
        }
        if self.env.is_empty() {
            lines.push("env: none".to_owned());
        }
        lines.extend(self.env.iter().map(|(name, _)| format!("env: {name}")));
        lines.push(format!("args: {:?}", self.args));
        let stdio = |stdio: Stdio| match stdio {
            Stdio::Null => "closed",
            Stdio::Inherit => "inherited",
            Stdio::Capture => "captured (64 KiB)",
            Stdio::Log => "logged",
        };
        lines.push(format!(
            "stdio: stdin {}, stdout {}, stderr {}",
            stdio(self.stdin),
            stdio(self.stdout),
            stdio(self.stderr)
        ));
        lines.push("network: denied (TCP, UDP, name lookup)".to_owned());
        lines.extend(self.http.iter().map(|grant| format!("http: {grant}")));
        lines.extend(self.world.lines().map(|grant| format!("world: {grant}")));
        lines
    }

    /// Builds the WASI context for one new instance of `plugin`.
    pub(crate) fn build_wasi(
        &self,
        plugin: &Arc<str>,
    ) -> Result<(WasiCtx, CapturedOutput), GrantError> {
        let (mut builder, captured) = self.wasi_builder(plugin)?;
        Ok((builder.build(), captured))
    }

    /// The WASI builder for these grants, for a preview2 `build` or a preview1 `build_p1`.
    pub(crate) fn wasi_builder(
        &self,
        plugin: &Arc<str>,
    ) -> Result<(WasiCtxBuilder, CapturedOutput), GrantError> {
        let mut builder = WasiCtxBuilder::new();
        // The defaults of `WasiCtxBuilder` already deny the network; say so explicitly so
        // that a change of defaults upstream cannot widen what a plugin gets.
        builder
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        builder.args(&self.args);
        builder.envs(&self.env);
        for grant in &self.dirs {
            let perms = match grant.access {
                Access::ReadOnly => FsPerms::ReadOnly,
                Access::ReadWrite => FsPerms::ReadWrite,
            };
            builder
                .preopened_dir(&grant.host, &grant.guest, perms)
                .map_err(|e| GrantError::Directory {
                    host: grant.host.clone(),
                    reason: format!("{e:#}"),
                })?;
        }
        if self.stdin == Stdio::Inherit {
            builder.inherit_stdin();
        }
        let mut captured = CapturedOutput::default();
        match self.stdout {
            Stdio::Null => {}
            Stdio::Inherit => {
                builder.inherit_stdout();
            }
            Stdio::Capture => {
                let pipe = MemoryOutputPipe::new(CAPTURE_LIMIT);
                builder.stdout(pipe.clone());
                captured.stdout = Some(pipe);
            }
            Stdio::Log => {
                builder.stdout(LogStream::new(plugin.clone(), Stream::Stdout));
            }
        }
        match self.stderr {
            Stdio::Null => {}
            Stdio::Inherit => {
                builder.inherit_stderr();
            }
            Stdio::Capture => {
                let pipe = MemoryOutputPipe::new(CAPTURE_LIMIT);
                builder.stderr(pipe.clone());
                captured.stderr = Some(pipe);
            }
            Stdio::Log => {
                builder.stderr(LogStream::new(plugin.clone(), Stream::Stderr));
            }
        }
        Ok((builder, captured))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_spec_with_guest_path_and_read_only() {
        let grant: DirGrant = "./data::/input:ro".parse().expect("valid spec");
        assert_eq!(grant.host, PathBuf::from("./data"));
        assert_eq!(grant.guest, "/input");
        assert_eq!(grant.access, Access::ReadOnly);
    }

    #[test]
    fn dir_spec_without_guest_path_maps_to_itself_read_write() {
        let grant: DirGrant = "/data".parse().expect("valid spec");
        assert_eq!(grant.guest, "/data");
        assert_eq!(grant.access, Access::ReadWrite);
    }

    #[test]
    fn dir_spec_access_suffix_is_any_case_and_never_part_of_the_path() {
        let grant: DirGrant = "d1::/data:RO".parse().expect("valid spec");
        assert_eq!(
            (grant.guest.as_str(), grant.access),
            ("/data", Access::ReadOnly)
        );
        let grant: DirGrant = "d1::/data:Rw".parse().expect("valid spec");
        assert_eq!(
            (grant.guest.as_str(), grant.access),
            ("/data", Access::ReadWrite)
        );
        for typo in [
            "d1::/data:r0",
            "d1::/data:readonly",
            "d1::/data:",
            "/data:xyz",
        ] {
            let error = typo.parse::<DirGrant>().expect_err(typo).to_string();
            assert!(error.contains("access suffix"), "{typo}: {error}");
            assert!(error.contains(typo), "names the spec: {error}");
        }
    }

    #[test]
    fn dir_spec_guest_path_must_be_absolute() {
        for spec in ["a::b::c", "data", "./data::data:ro", "a::b:ro"] {
            let error = spec.parse::<DirGrant>().expect_err(spec).to_string();
            assert!(error.contains("not absolute"), "{spec}: {error}");
        }
    }

    #[test]
    fn dir_spec_host_path_with_double_colon_takes_an_explicit_guest_path() {
        let grant: DirGrant = "a::b::/data:ro".parse().expect("valid spec");
        assert_eq!(grant.host, PathBuf::from("a::b"));
        assert_eq!(grant.guest, "/data");
        assert_eq!(grant.access, Access::ReadOnly);
        let grant: DirGrant = "/x:y::/g".parse().expect("a colon in the host path");
        assert_eq!(grant.host, PathBuf::from("/x:y"));
        // Display reads back as the same grant.
        assert_eq!(
            grant.to_string().parse::<DirGrant>().expect("round trip"),
            grant
        );
    }

    #[test]
    fn a_guest_path_granted_twice_is_refused() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        let caps = Capabilities::none()
            .dir_at(one.path(), "/data", Access::ReadOnly)
            .expect("first grant");
        let error = caps
            .clone()
            .dir_at(two.path(), "/data/", Access::ReadWrite)
            .expect_err("same guest path")
            .to_string();
        assert!(error.contains("granted twice"), "{error}");
        assert!(error.contains(&two.path().display().to_string()), "{error}");
        assert!(
            caps.dir_at(two.path(), "relative", Access::ReadOnly)
                .is_err()
        );
    }

    #[test]
    fn env_repeats_are_an_error_by_spec_and_replace_by_builder() {
        let error = Capabilities::none()
            .env_spec("A=1")
            .expect("valid")
            .env_spec("A=2")
            .expect_err("repeat")
            .to_string();
        assert!(error.contains("`A`") && error.contains("twice"), "{error}");
        let caps = Capabilities::none().env("A", "1").env("A", "2");
        assert_eq!(caps.envs(), [("A".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn a_non_utf8_host_value_is_reported_as_such() {
        use std::os::unix::ffi::OsStrExt as _;
        let name = "WITPLUG_TEST_NOT_UTF8";
        // `set_var` is unsafe in this edition; the CLI test sets it on a child instead.
        let value = std::ffi::OsStr::from_bytes(b"\xff\xfe").to_owned();
        let error = env_value_text(name, Some(value))
            .expect_err("not UTF-8")
            .to_string();
        assert!(
            error.contains("not valid UTF-8") && error.contains(name),
            "{error}"
        );
    }

    #[test]
    fn grant_lines_show_what_was_granted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let caps = Capabilities::none()
            .dir_at(dir.path(), "/data", Access::ReadOnly)
            .expect("grant")
            .env("SECRET", "hunter2");
        let lines = caps.grant_lines();
        assert!(
            lines.contains(&format!(
                "dir: {} as /data (read-only)",
                dir.path().display()
            )),
            "{lines:?}"
        );
        assert!(lines.contains(&"env: SECRET".to_owned()), "{lines:?}");
        assert!(
            !lines.iter().any(|line| line.contains("hunter2")),
            "no values"
        );
        assert!(
            Capabilities::none()
                .grant_lines()
                .contains(&"dir: none".to_owned())
        );
    }

    #[test]
    fn dir_spec_with_empty_parts_is_refused() {
        assert!("::/x".parse::<DirGrant>().is_err());
        assert!("data:::ro".parse::<DirGrant>().is_err());
        assert!(":ro".parse::<DirGrant>().is_err());
    }

    #[test]
    fn granting_a_missing_directory_fails_early_and_names_it() {
        let err = Capabilities::none()
            .dir_at("/no/such/dir/witplug", "/x", Access::ReadOnly)
            .expect_err("missing dir");
        assert!(err.to_string().contains("/no/such/dir/witplug"), "{err}");
    }

    #[test]
    fn env_spec_sets_value_or_passes_the_host_value() {
        let caps = Capabilities::none()
            .env_spec("GREETING=hi")
            .expect("valid")
            .env_spec("PATH")
            .expect("valid");
        assert_eq!(caps.env[0], ("GREETING".into(), "hi".into()));
        assert_eq!(caps.env[1].0, "PATH");
        assert!(Capabilities::none().env_spec("=x").is_err());
    }
}
