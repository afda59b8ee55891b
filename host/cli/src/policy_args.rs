//! `--policy FILE` and the grant flags, shared by the subcommands that run plugins.
//!
//! The rule when both are given: the flags add to the file's grants (a guest path,
//! variable or configuration key given in both is an error, as a repeated flag is), and a
//! stream or limit flag replaces the file's setting. The defaults (the subcommand's
//! streams, the library's limits) apply to what neither says.
//!
//! Exit statuses follow the flags: a file that is not a valid policy (not TOML, an unknown
//! key, a malformed or out-of-range value) is a usage error, 2, like a malformed flag; a
//! grant that cannot be made (a directory that is not there, a guest path given twice) is
//! 1, as it is for `--dir`.

use std::path::PathBuf;

use clap::Args;
use witplug::policy::{self, Policy, PolicyError};
use witplug::{Capabilities, DirGrant, Limits, PluginConfig, PluginOptions, Pooling, Stdio};

use crate::engine_args::{EngineArgs, pooling_for};

/// Exit status of a usage error, as clap gives for a bad flag.
pub const USAGE_EXIT: u8 = 2;

/// Grants and configuration, from a policy file and flags.
#[derive(Args, Debug, Default)]
pub struct PolicyArgs {
    /// Grants, configuration and limits from a TOML policy file (relative host paths in it
    /// are relative to its directory). Flags add to its grants and replace its limits.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    /// Grant a host directory: HOST[::GUEST][:ro|:rw] (read-write unless `:ro`).
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<DirGrant>,

    /// Grant an environment variable: NAME passes the host's value, NAME=VALUE sets one.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,

    /// Plugin configuration entry (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,

    /// The plugin's stdin: `null` (closed) or `inherit`.
    #[arg(long, value_name = "null|inherit", value_parser = policy::parse_input_stdio)]
    stdin: Option<Stdio>,

    /// The plugin's stdout: `null` (discarded), `inherit` or `capture` (kept in memory).
    #[arg(long, value_name = "null|inherit|capture", value_parser = policy::parse_output_stdio)]
    stdout: Option<Stdio>,

    /// The plugin's stderr: `null` (discarded), `inherit` or `capture` (kept in memory,
    /// shown with a trap).
    #[arg(long, value_name = "null|inherit|capture", value_parser = policy::parse_output_stdio)]
    stderr: Option<Stdio>,
}

/// The standard streams of a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streams {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// What a plugin gets once flags, policy file and defaults are merged.
#[derive(Clone, Debug)]
pub struct ResolvedPolicy {
    pub capabilities: Capabilities,
    pub config: PluginConfig,
    pub limits: Limits,
    /// The CLI's pool sized for `limits`.
    pub pooling: Pooling,
    /// The streams in `capabilities`, for subcommands that use some themselves.
    pub streams: Streams,
}

impl ResolvedPolicy {
    /// Plugin options with these grants, configuration and limits.
    pub fn options(&self) -> PluginOptions {
        PluginOptions::default()
            .capabilities(self.capabilities.clone())
            .config(self.config.clone())
            .limits(self.limits.clone())
    }

    /// The runtime for these limits (fuel metering, pool) with `engine`'s compile cache.
    pub fn runtime(&self, engine: &EngineArgs) -> Result<witplug::Runtime, witplug::Error> {
        engine.runtime_for(&self.limits, self.pooling.clone())
    }
}

/// A command line or policy that is well formed but that a subcommand cannot honour.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Whether `error` is the user's to fix in the command line or the policy file (exit 2),
/// rather than something on the host (exit 1).
pub fn is_usage_error(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<witplug::TomlError>()
            || matches!(
                cause.downcast_ref::<PolicyError>(),
                Some(PolicyError::Toml(_))
            )
    })
}

impl PolicyArgs {
    /// Merges the policy file (`--policy`, or `base`: a policy table of the caller's own
    /// configuration file; not both), these flags, the limit flags of `engine` and the
    /// subcommand's `streams`, by the rule in the module docs.
    pub fn resolve(
        &self,
        engine: &EngineArgs,
        base: Option<Policy>,
        streams: Streams,
    ) -> anyhow::Result<ResolvedPolicy> {
        let file = match (&self.policy, base) {
            (Some(path), Some(base)) => {
                return Err(UsageError(format!(
                    "--policy {} and the policy of {}: give one of them",
                    path.display(),
                    base.origin()
                ))
                .into());
            }
            (Some(path), None) => Some(Policy::from_file(path)?),
            (None, base) => base,
        };
        let mut capabilities = Capabilities::none()
            .stdin(streams.stdin)
            .stdout(streams.stdout)
            .stderr(streams.stderr);
        let mut config = PluginConfig::new();
        let mut limits = Limits::default();
        let mut streams = streams;
        if let Some(file) = &file {
            tracing::info!("policy: {}", file.origin());
            capabilities = file.apply_grants(capabilities)?;
            config = file.apply_config(config)?;
            limits = file.apply_limits(limits);
            let grants = file.grants();
            streams = Streams {
                stdin: grants.stdin().unwrap_or(streams.stdin),
                stdout: grants.stdout().unwrap_or(streams.stdout),
                stderr: grants.stderr().unwrap_or(streams.stderr),
            };
        }
        for grant in &self.dirs {
            capabilities = capabilities.dir(grant.clone())?;
        }
        for spec in &self.envs {
            capabilities = capabilities.env_spec(spec)?;
        }
        for spec in &self.config {
            config = config.set_spec(spec)?;
        }
        let streams = Streams {
            stdin: self.stdin.unwrap_or(streams.stdin),
            stdout: self.stdout.unwrap_or(streams.stdout),
            stderr: self.stderr.unwrap_or(streams.stderr),
        };
        let capabilities = capabilities
            .stdin(streams.stdin)
            .stdout(streams.stdout)
            .stderr(streams.stderr);
        let limits = engine.apply_limits(limits);
        let pooling = pooling_for(&limits);
        Ok(ResolvedPolicy {
            capabilities,
            config,
            limits,
            pooling,
            streams,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    const MIB: usize = 1 << 20;

    const NULL_STREAMS: Streams = Streams {
        stdin: Stdio::Null,
        stdout: Stdio::Null,
        stderr: Stdio::Capture,
    };

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        policy: PolicyArgs,
        #[command(flatten)]
        engine: EngineArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<ResolvedPolicy> {
        let cli = Cli::try_parse_from(std::iter::once("witplug").chain(args.iter().copied()))?;
        cli.policy.resolve(&cli.engine, None, NULL_STREAMS)
    }

    /// Everything a plugin would get, comparable: grant lines (with environment values),
    /// configuration, limits, pool.
    #[allow(clippy::type_complexity)]
    fn effect(
        resolved: &ResolvedPolicy,
    ) -> (
        Vec<String>,
        Vec<(String, String)>,
        PluginConfig,
        Limits,
        (usize, bool),
    ) {
        (
            resolved.capabilities.grant_lines(),
            resolved.capabilities.envs().to_vec(),
            resolved.config.clone(),
            resolved.limits.clone(),
            (
                resolved.pooling.max_memory_bytes,
                resolved.pooling.elide_bounds_checks,
            ),
        )
    }

    fn write_policy(dir: &std::path::Path, text: &str) -> String {
        let path = dir.join("policy.toml");
        std::fs::write(&path, text).expect("write policy");
        path.display().to_string()
    }

    #[test]
    fn a_policy_file_and_the_equivalent_flags_give_the_same_plugin() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        let data = dir.path().join("data");
        let file = write_policy(
            dir.path(),
            &format!(
                r#"
                [grants]
                dirs = ["{}::/data:ro"]
                env = ["MODE=fast"]
                stdout = "capture"
                [config]
                email-field = "mail"
                [limits]
                max-memory-mib = 1024
                timeout-ms = "none"
                fuel = 5000
                max-transfer-mib = 8
                "#,
                data.display()
            ),
        );
        let from_file = resolve(&["--policy", &file]).expect("file");
        let grant = format!("{}::/data:ro", data.display());
        let from_flags = resolve(&[
            "--dir",
            &grant,
            "--env",
            "MODE=fast",
            "--stdout",
            "capture",
            "--config",
            "email-field=mail",
            "--max-memory",
            "1024",
            "--timeout-ms",
            "none",
            "--fuel",
            "5000",
            "--max-transfer",
            "8",
        ])
        .expect("flags");
        assert_eq!(effect(&from_file), effect(&from_flags));
        assert_eq!(from_file.streams, from_flags.streams);
        assert_eq!(from_file.limits.max_memory_bytes, 1024 * MIB);
        assert_eq!(
            from_file.pooling.max_memory_bytes,
            1024 * MIB,
            "pool sized from the file"
        );
    }

    #[test]
    fn flags_add_to_the_files_grants_and_replace_its_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = tempfile::tempdir().expect("tempdir");
        let file = write_policy(
            dir.path(),
            "[grants]\ndirs = [\".::/here\"]\nenv = [\"A=1\"]\nstderr = \"null\"\n\
             [config]\nk = \"v\"\n[limits]\nmax-memory-mib = 4096\nfuel = 10\n",
        );
        let extra = format!("{}::/there:ro", other.path().display());
        let merged = resolve(&[
            "--policy",
            &file,
            "--dir",
            &extra,
            "--env",
            "B=2",
            "--config",
            "k2=v2",
            "--max-memory",
            "100",
            "--stderr",
            "inherit",
        ])
        .expect("merge");
        let lines = merged.capabilities.grant_lines();
        assert!(
            lines.contains(&format!(
                "dir: {} as /here (read-write)",
                dir.path().display()
            )),
            "{lines:?}"
        );
        assert!(
            lines.contains(&format!(
                "dir: {} as /there (read-only)",
                other.path().display()
            )),
            "{lines:?}"
        );
        assert_eq!(
            merged.capabilities.envs(),
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(merged.config.get("k"), Some("v"));
        assert_eq!(merged.config.get("k2"), Some("v2"));
        assert_eq!(merged.limits.max_memory_bytes, 100 * MIB, "the flag wins");
        assert_eq!(
            merged.pooling.max_memory_bytes,
            128 * MIB,
            "pool from the merged limit"
        );
        assert_eq!(
            merged.limits.fuel_per_call,
            Some(10),
            "the file's, not overridden"
        );
        assert_eq!(
            merged.limits.call_timeout,
            Some(Duration::from_secs(10)),
            "default"
        );
        assert_eq!(merged.streams.stderr, Stdio::Inherit, "the flag wins");
        assert_eq!(
            merged.streams.stdout,
            Stdio::Null,
            "the subcommand's default"
        );
    }

    #[test]
    fn a_grant_given_in_both_file_and_flags_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_policy(
            dir.path(),
            "[grants]\ndirs = [\".::/data\"]\nenv = [\"A=1\"]\n[config]\nk = \"v\"\n",
        );
        let other = tempfile::tempdir().expect("tempdir");
        let same_guest = format!("{}::/data", other.path().display());
        for (args, expected) in [
            (
                &["--dir", same_guest.as_str()][..],
                "guest path /data is granted twice",
            ),
            (&["--env", "A=2"], "`A` is granted twice"),
            (&["--config", "k=w"], "`k` is given twice"),
        ] {
            let mut all = vec!["--policy", file.as_str()];
            all.extend_from_slice(args);
            let error = format!("{:#}", resolve(&all).expect_err(expected));
            assert!(error.contains(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn only_a_policy_that_is_not_well_formed_is_a_usage_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write_policy(dir.path(), "[limits]\ntimeout-ms = 0\n");
        let error = resolve(&["--policy", &file]).expect_err("bad value");
        assert!(is_usage_error(&error), "{error:#}");
        assert!(format!("{error:#}").contains("`limits.timeout-ms`"));

        let file = write_policy(dir.path(), "[grants]\ndirs = [\"missing::/m\"]\n");
        let error = resolve(&["--policy", &file]).expect_err("no such directory");
        assert!(!is_usage_error(&error), "{error:#}");
        let error = resolve(&["--policy", "/no/such/policy.toml"]).expect_err("unreadable");
        assert!(!is_usage_error(&error), "{error:#}");

        let cli = Cli::try_parse_from(["witplug", "--policy", &file]).expect("parse");
        let error = cli
            .policy
            .resolve(&cli.engine, Some(Policy::default()), NULL_STREAMS)
            .expect_err("two policies");
        assert!(is_usage_error(&error), "{error:#}");
    }

    #[test]
    fn without_a_policy_the_flags_mean_what_they_did() {
        let resolved = resolve(&[]).expect("nothing");
        assert_eq!(resolved.limits, Limits::default());
        assert_eq!(resolved.streams, NULL_STREAMS);
        assert_eq!(resolved.config, PluginConfig::new());
        assert_eq!(
            resolved.capabilities.grant_lines(),
            Capabilities::none().stderr(Stdio::Capture).grant_lines()
        );
    }
}
