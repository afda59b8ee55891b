//! Capability policy: what a plugin may touch outside its own memory.
//!
//! [`Capabilities::none`] (also `Default`) grants nothing: no directory, no environment
//! variable, no argument, stdin closed, stdout and stderr discarded, and no network (TCP,
//! UDP and name lookup denied). Every grant is explicit and per plugin. The policy is turned
//! into a fresh `WasiCtx` for every instance, so grants never leak between instances.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::error::GrantError;

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

    /// Parses `HOST[::GUEST][:ro|:rw]`, as `witplug run --dir` takes it. Without `::GUEST` the
    /// guest sees the directory under the host path as written; the default access is
    /// read-write, as in `wasmtime run --dir`.
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| GrantError::DirectorySpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (paths, access) = if let Some(rest) = spec.strip_suffix(":ro") {
            (rest, Access::ReadOnly)
        } else if let Some(rest) = spec.strip_suffix(":rw") {
            (rest, Access::ReadWrite)
        } else {
            (spec, Access::ReadWrite)
        };
        let (host, guest) = match paths.split_once("::") {
            Some((host, guest)) => (host, guest),
            None => (paths, paths),
        };
        if host.is_empty() {
            return Err(invalid("the host path is empty"));
        }
        if guest.is_empty() {
            return Err(invalid("the guest path is empty"));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
            access,
        })
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

    /// Grants a host directory. Fails now, not at instantiation, if it is not a directory.
    pub fn dir(mut self, grant: DirGrant) -> Result<Self, GrantError> {
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

    /// Sets a guest environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Grants `NAME=VALUE`, or with `NAME` alone passes the host's value of `NAME` (read now;
    /// a variable the host does not have is not set in the guest either).
    pub fn env_spec(self, spec: &str) -> Result<Self, GrantError> {
        let invalid = |reason: &str| GrantError::EnvSpec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, value) = match spec.split_once('=') {
            Some((name, value)) => (name, Some(value.to_owned())),
            None => (spec, std::env::var(spec).ok()),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        if name.contains('\0') {
            return Err(invalid("the name contains a NUL byte"));
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

    pub fn stderr_policy(&self) -> Stdio {
        self.stderr
    }

    pub fn dirs(&self) -> &[DirGrant] {
        &self.dirs
    }

    /// Builds the WASI context for one new instance.
    pub(crate) fn build_wasi(&self) -> Result<(WasiCtx, CapturedOutput), GrantError> {
        let (mut builder, captured) = self.wasi_builder()?;
        Ok((builder.build(), captured))
    }

    /// The WASI builder for these grants, for a preview2 `build` or a preview1 `build_p1`.
    pub(crate) fn wasi_builder(&self) -> Result<(WasiCtxBuilder, CapturedOutput), GrantError> {
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
        let grant: DirGrant = "data".parse().expect("valid spec");
        assert_eq!(grant.guest, "data");
        assert_eq!(grant.access, Access::ReadWrite);
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
