//! Policy files: what a plugin is granted and its limits, in one TOML schema.
//!
//! ```toml
//! [grants]
//! dirs = ["./data::/data:ro"]  # as `--dir`: HOST[::GUEST][:ro|:rw]
//! env = ["LANG=C", "HOME"]     # as `--env`: NAME=VALUE, or NAME to pass the host's value
//! stdin = "null"               # null | inherit
//! stdout = "inherit"           # null | inherit | capture
//! stderr = "capture"           # null | inherit | capture | log
//! http = ["https://api.example.com", "http://*.internal:8080"]  # as `--allow-http`
//!
//! [config]                     # the plugin's configuration: string values only
//! email-field = "email"
//!
//! [limits]
//! max-memory-mib = 256         # 1 to 4096
//! timeout-ms = 10000           # 1 or more, or "none"
//! fuel = 1000000               # 1 or more
//! max-transfer-mib = 64        # 1 to 4096
//! ```
//!
//! Every table and key is optional; an absent one leaves the grant or limit as it was
//! (the library's or the subcommand's default). An unknown key, a value of the wrong type
//! and a value out of range are errors naming the file, the line and the key. Each value
//! is read by the same parser as the CLI flag that sets it ([`DirGrant::from_str`],
//! [`parse_memory_mib`], …), so a value valid in one place is valid in the other.
//!
//! A [`Policy`] is a plain `Deserialize` struct, so it can be embedded as a table of
//! another file (a worker's configuration). Relative host paths are resolved by an
//! explicit step, [`Policy::resolve_paths`], which [`Policy::from_file`] takes against
//! the file's directory: a grant means the same directory whatever the current directory.
//!
//! The grants are made by the builders of [`Capabilities`] and [`PluginConfig`], with the
//! checks of the flags: a guest path, variable or configuration key given twice (within
//! the policy, or in the policy and the options it is applied to) is an error, and so is a
//! directory that does not exist. Those checks run when the grants are made
//! ([`Policy::apply_grants`]), since they depend on the host, not on the file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use crate::capabilities::{Capabilities, DirGrant, Stdio};
use crate::error::GrantError;
use crate::http_grant::HttpGrant;
use crate::limits::Limits;
use crate::state::PluginConfig;

const MIB: usize = 1 << 20;

/// The largest `max-memory-mib` / `--max-memory`: wasm memories are 32-bit.
pub const MAX_MEMORY_MIB: u64 = 4096;

/// The largest `max-transfer-mib` / `--max-transfer`.
pub const MAX_TRANSFER_MIB: u64 = 4096;

/// A policy file larger than this is refused rather than read into memory.
pub const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

/// Grants, configuration and limits of a plugin, as a policy file writes them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Policy {
    #[serde(default)]
    grants: Grants,
    #[serde(default, deserialize_with = "config_table")]
    config: BTreeMap<String, String>,
    #[serde(default)]
    limits: PolicyLimits,
    /// Where the policy was read from, for error messages.
    #[serde(skip)]
    origin: Origin,
}

/// The `[grants]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grants {
    #[serde(default, deserialize_with = "spec_list")]
    dirs: Vec<DirGrant>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default, deserialize_with = "input_stdio")]
    stdin: Option<Stdio>,
    #[serde(default, deserialize_with = "output_stdio")]
    stdout: Option<Stdio>,
    #[serde(default, deserialize_with = "output_stdio")]
    stderr: Option<Stdio>,
    /// Outbound HTTP origins (`wasi:http` handlers only), as `--allow-http`.
    #[serde(default, deserialize_with = "spec_list")]
    http: Vec<HttpGrant>,
}

/// The `[limits]` table, each value already checked and converted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    #[serde(default, rename = "max-memory-mib", deserialize_with = "memory_limit")]
    max_memory_bytes: Option<usize>,
    #[serde(default, rename = "timeout-ms", deserialize_with = "timeout_limit")]
    call_timeout: Option<Option<Duration>>,
    #[serde(default, rename = "fuel", deserialize_with = "fuel_limit")]
    fuel_per_call: Option<u64>,
    #[serde(
        default,
        rename = "max-transfer-mib",
        deserialize_with = "transfer_limit"
    )]
    max_transfer_bytes: Option<usize>,
}

/// What errors name as the policy's place: a file, and the table within it if embedded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Origin {
    name: Option<String>,
    table: Option<String>,
}

impl Policy {
    /// Reads a policy file (at most [`MAX_POLICY_FILE_BYTES`]) and resolves its relative
    /// host paths against the file's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = read_toml_file(path)?;
        Ok(Self::from_toml(&text, path.display().to_string())?.resolve_paths(base_dir_of(path)))
    }

    /// Parses a policy; `origin` (a file name, say) is what errors name as its place.
    /// Relative host paths are left as written: see [`Policy::resolve_paths`].
    pub fn from_toml(text: &str, origin: impl Into<String>) -> Result<Self, PolicyError> {
        let origin = origin.into();
        let policy: Policy = parse_toml(text, &origin)?;
        Ok(policy.with_origin(origin, None))
    }

    /// Names the policy's place in errors: a file, and for a policy embedded in another
    /// file the table that holds it (its keys are then named `TABLE.grants.dirs[0]`, …).
    pub fn with_origin(mut self, origin: impl Into<String>, table: Option<&str>) -> Self {
        self.origin = Origin {
            name: Some(origin.into()),
            table: table.map(str::to_owned),
        };
        self
    }

    /// Joins every relative host path of the directory grants to `base_dir` (the
    /// directory of the file the policy was written in). Guest paths are unchanged.
    pub fn resolve_paths(mut self, base_dir: &Path) -> Self {
        for grant in &mut self.grants.dirs {
            if grant.host.is_relative() {
                // `components` drops the `.` of `./data`; `..` is kept (it may cross a
                // symlink, so only the kernel can resolve it).
                grant.host = base_dir.join(&grant.host).components().collect();
            }
        }
        self
    }

    /// The file (and table) this policy was read from, as errors name it.
    pub fn origin(&self) -> String {
        let name = self.origin.name.as_deref().unwrap_or("policy");
        match &self.origin.table {
            Some(table) => format!("{name} (table `{table}`)"),
            None => name.to_owned(),
        }
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }

    /// The `[config]` entries, sorted by key.
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    pub fn limit_settings(&self) -> &PolicyLimits {
        &self.limits
    }

    /// The policy's grants on top of `capabilities`: its directories and environment
    /// variables are added (a guest path or variable already granted is an error, as a
    /// repeated flag is), its standard streams replace those of `capabilities` where it
    /// sets them.
    pub fn apply_grants(&self, capabilities: Capabilities) -> Result<Capabilities, PolicyError> {
        let mut capabilities = capabilities;
        for (index, grant) in self.grants.dirs.iter().enumerate() {
            capabilities = capabilities
                .dir(grant.clone())
                .map_err(|source| self.grant_error(format!("grants.dirs[{index}]"), source))?;
        }
        for (index, spec) in self.grants.env.iter().enumerate() {
            capabilities = capabilities
                .env_spec(spec)
                .map_err(|source| self.grant_error(format!("grants.env[{index}]"), source))?;
        }
        for grant in &self.grants.http {
            capabilities = capabilities.allow_http(grant.clone());
        }
        if let Some(stdin) = self.grants.stdin {
            capabilities = capabilities.stdin(stdin);
        }
        if let Some(stdout) = self.grants.stdout {
            capabilities = capabilities.stdout(stdout);
        }
        if let Some(stderr) = self.grants.stderr {
            capabilities = capabilities.stderr(stderr);
        }
        Ok(capabilities)
    }

    /// The policy's grants alone, on top of [`Capabilities::none`].
    pub fn capabilities(&self) -> Result<Capabilities, PolicyError> {
        self.apply_grants(Capabilities::none())
    }

    /// The policy's configuration added to `config`; a key `config` already has is an
    /// error (as a repeated `--config` is).
    pub fn apply_config(&self, config: PluginConfig) -> Result<PluginConfig, PolicyError> {
        let mut config = config;
        for (key, value) in &self.config {
            if config.get(key).is_some() {
                let source = GrantError::DuplicateConfig { key: key.clone() };
                return Err(self.grant_error(format!("config.{}", toml_key(key)), source));
            }
            config = config.set(key, value);
        }
        Ok(config)
    }

    /// The policy's configuration alone.
    pub fn plugin_config(&self) -> Result<PluginConfig, PolicyError> {
        self.apply_config(PluginConfig::new())
    }

    /// `limits` with every limit the policy sets replaced by the policy's value.
    pub fn apply_limits(&self, limits: Limits) -> Limits {
        let set = &self.limits;
        Limits {
            max_memory_bytes: set.max_memory_bytes.unwrap_or(limits.max_memory_bytes),
            call_timeout: set.call_timeout.unwrap_or(limits.call_timeout),
            fuel_per_call: set.fuel_per_call.or(limits.fuel_per_call),
            max_transfer_bytes: set.max_transfer_bytes.unwrap_or(limits.max_transfer_bytes),
            ..limits
        }
    }

    /// The policy's limits over [`Limits::default`].
    pub fn limits(&self) -> Limits {
        self.apply_limits(Limits::default())
    }

    fn grant_error(&self, key: String, source: GrantError) -> PolicyError {
        let key = match &self.origin.table {
            Some(table) => format!("{table}.{key}"),
            None => key,
        };
        PolicyError::Grant {
            origin: self.origin(),
            key,
            source,
        }
    }
}

impl Grants {
    /// Directory grants, host paths resolved if [`Policy::resolve_paths`] ran.
    pub fn dirs(&self) -> &[DirGrant] {
        &self.dirs
    }

    /// Environment grants as written (`NAME=VALUE` or `NAME`).
    pub fn env(&self) -> &[String] {
        &self.env
    }

    pub fn stdin(&self) -> Option<Stdio> {
        self.stdin
    }

    pub fn stdout(&self) -> Option<Stdio> {
        self.stdout
    }

    pub fn stderr(&self) -> Option<Stdio> {
        self.stderr
    }

    pub fn http(&self) -> &[HttpGrant] {
        &self.http
    }
}

impl PolicyLimits {
    pub fn max_memory_bytes(&self) -> Option<usize> {
        self.max_memory_bytes
    }

    /// `Some(None)`: the policy lifts the deadline (`timeout-ms = "none"`).
    pub fn call_timeout(&self) -> Option<Option<Duration>> {
        self.call_timeout
    }

    pub fn fuel_per_call(&self) -> Option<u64> {
        self.fuel_per_call
    }

    pub fn max_transfer_bytes(&self) -> Option<usize> {
        self.max_transfer_bytes
    }
}

/// Why a policy could not be read or its grants not be made.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is larger than {MAX_POLICY_FILE_BYTES} bytes: not a policy file", path.display())]
    TooLarge { path: PathBuf },

    /// Not TOML, an unknown key, a value of the wrong type or out of range.
    #[error(transparent)]
    Toml(#[from] TomlError),

    /// A grant that could not be made (a directory that is not there, a guest path given
    /// twice, …), naming the key that asked for it.
    #[error("{origin}: `{key}`")]
    Grant {
        origin: String,
        key: String,
        #[source]
        source: GrantError,
    },
}

/// A TOML document that does not fit the schema it was read with, or is not TOML at all:
/// where (file, line, column, key) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {}{message}", position(*line, *column), key_prefix(key.as_deref()))]
pub struct TomlError {
    pub origin: String,
    /// 1-based line and column of the offending text, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The key of the offending value, e.g. `grants.dirs[1]`; `None` at the top level.
    pub key: Option<String>,
    pub message: String,
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(":{line}:{column}"),
        (Some(line), None) => format!(":{line}"),
        _ => String::new(),
    }
}

fn key_prefix(key: Option<&str>) -> String {
    key.map(|key| format!("`{key}`: ")).unwrap_or_default()
}

impl TomlError {
    fn new(origin: &str, text: &str, key: Option<String>, error: &toml::de::Error) -> Self {
        let (line, column) = match error.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
                let line = before.matches('\n').count() + 1;
                let column = before[line_start..].chars().count() + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Self {
            origin: origin.to_owned(),
            line,
            column,
            key,
            // toml's messages may span lines; errors here are one line each.
            message: error.message().trim().replace('\n', "; "),
        }
    }
}

/// Deserializes a TOML document into `T`, with errors that name `origin`, the line and
/// the key of a bad value. For policy files and for files that embed a [`Policy`].
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, TomlError> {
    let document = toml::Deserializer::parse(text)
        .map_err(|error| TomlError::new(origin, text, None, &error))?;
    serde_path_to_error::deserialize(document).map_err(|error| {
        let key = key_path(error.path());
        TomlError::new(origin, text, key, error.inner())
    })
}

/// Reads a TOML file of at most [`MAX_POLICY_FILE_BYTES`] as text.
pub fn read_toml_file(path: &Path) -> Result<String, PolicyError> {
    let read_error = |source| PolicyError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(PolicyError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// The directory a file's relative paths are relative to (`""`, the current directory,
/// for a bare file name).
fn base_dir_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new(""))
}

/// `grants.dirs[1]`, with keys that are not bare TOML keys quoted (`config."a.b"`).
fn key_path(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut key = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(&toml_key(name));
            }
            Segment::Unknown => key.push_str(if key.is_empty() { "?" } else { ".?" }),
        }
    }
    (!key.is_empty()).then_some(key)
}

/// A key as TOML writes it: bare if it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// A limit or stream setting that is out of range or malformed. The CLI's flags and
/// policy files share these messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyValueError {
    #[error("`{value}` is not a size: give 1 to {max} (MiB)")]
    Size { value: String, max: u64 },

    #[error("{mib} MiB does not fit this platform's address space")]
    Platform { mib: u64 },

    #[error("`{value}` is not a timeout: give 1 or more milliseconds, or `none` for no deadline")]
    Timeout { value: String },

    #[error(
        "`{value}` is not an amount of fuel: give a whole number from 1 to {}",
        u64::MAX
    )]
    Fuel { value: String },

    #[error("`{value}` is not a stream setting: give {expected}")]
    Stdio {
        value: String,
        expected: &'static str,
    },
}

/// `--max-memory` / `max-memory-mib`: 1 to [`MAX_MEMORY_MIB`] MiB, in bytes.
pub fn parse_memory_mib(text: &str) -> Result<usize, PolicyValueError> {
    mib_bytes(parse_integer(text), text, MAX_MEMORY_MIB)
}

/// `--max-transfer` / `max-transfer-mib`: 1 to [`MAX_TRANSFER_MIB`] MiB, in bytes.
pub fn parse_transfer_mib(text: &str) -> Result<usize, PolicyValueError> {
    mib_bytes(parse_integer(text), text, MAX_TRANSFER_MIB)
}

/// `--timeout-ms` / `timeout-ms`: 1 ms or more, or `none` (any case) for no deadline.
pub fn parse_timeout_ms(text: &str) -> Result<Option<Duration>, PolicyValueError> {
    if text.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    timeout_ms(parse_integer(text), text)
}

/// `--fuel` / `fuel`: 1 or more.
pub fn parse_fuel(text: &str) -> Result<u64, PolicyValueError> {
    fuel(parse_integer(text), text)
}

/// `--stdin` / `grants.stdin`: `null` (closed) or `inherit`.
pub fn parse_input_stdio(text: &str) -> Result<Stdio, PolicyValueError> {
    match text.to_ascii_lowercase().as_str() {
        "null" => Ok(Stdio::Null),
        "inherit" => Ok(Stdio::Inherit),
        _ => Err(PolicyValueError::Stdio {
            value: text.to_owned(),
            expected: "`null` or `inherit`",
        }),
    }
}

/// `--stdout`, `--stderr` / `grants.stdout`, `grants.stderr`: `null` (discarded),
/// `inherit`, `capture` (kept in memory, attached to trap errors) or `log` (one log line
/// per output line, attributed to the plugin).
pub fn parse_output_stdio(text: &str) -> Result<Stdio, PolicyValueError> {
    match text.to_ascii_lowercase().as_str() {
        "null" => Ok(Stdio::Null),
        "inherit" => Ok(Stdio::Inherit),
        "capture" => Ok(Stdio::Capture),
        "log" => Ok(Stdio::Log),
        _ => Err(PolicyValueError::Stdio {
            value: text.to_owned(),
            expected: "`null`, `inherit`, `capture` or `log`",
        }),
    }
}

/// A whole number as written; `None` if it is not one (the range checks then refuse it).
fn parse_integer(text: &str) -> Option<i128> {
    text.parse().ok()
}

fn mib_bytes(value: Option<i128>, written: &str, max: u64) -> Result<usize, PolicyValueError> {
    match value.and_then(|value| u64::try_from(value).ok()) {
        Some(mib) if (1..=max).contains(&mib) => usize::try_from(mib)
            .ok()
            .and_then(|mib| mib.checked_mul(MIB))
            .ok_or(PolicyValueError::Platform { mib }),
        _ => Err(PolicyValueError::Size {
            value: written.to_owned(),
            max,
        }),
    }
}

fn timeout_ms(value: Option<i128>, written: &str) -> Result<Option<Duration>, PolicyValueError> {
    match value.and_then(|value| u64::try_from(value).ok()) {
        Some(ms) if ms >= 1 => Ok(Some(Duration::from_millis(ms))),
        _ => Err(PolicyValueError::Timeout {
            value: written.to_owned(),
        }),
    }
}

fn fuel(value: Option<i128>, written: &str) -> Result<u64, PolicyValueError> {
    match value.and_then(|value| u64::try_from(value).ok()) {
        Some(fuel) if fuel >= 1 => Ok(fuel),
        _ => Err(PolicyValueError::Fuel {
            value: written.to_owned(),
        }),
    }
}

/// A limit as TOML writes it: an integer, or a string in the flag's syntax (`"none"`, or
/// a number too large for a TOML integer).
enum LimitValue {
    Integer(i128),
    Text(String),
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = LimitValue;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<LimitValue, E> {
                Ok(LimitValue::Integer(value.into()))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<LimitValue, E> {
                Ok(LimitValue::Integer(value.into()))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<LimitValue, E> {
                Ok(LimitValue::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

/// Reads a limit with the flag's parser: text as the flag takes it, an integer by the
/// same range check.
fn limit<'de, D, T>(
    deserializer: D,
    from_text: fn(&str) -> Result<T, PolicyValueError>,
) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let parsed = match LimitValue::deserialize(deserializer)? {
        LimitValue::Integer(value) => from_text(&value.to_string()),
        LimitValue::Text(text) => from_text(&text),
    };
    parsed.map(Some).map_err(de::Error::custom)
}

fn memory_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    limit(deserializer, parse_memory_mib)
}

fn transfer_limit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    limit(d, parse_transfer_mib)
}

fn timeout_limit<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<Duration>>, D::Error> {
    limit(deserializer, parse_timeout_ms)
}

fn fuel_limit<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    limit(deserializer, parse_fuel)
}

fn input_stdio<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Stdio>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_input_stdio(&text)
        .map(Some)
        .map_err(de::Error::custom)
}

fn output_stdio<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Stdio>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_output_stdio(&text)
        .map(Some)
        .map_err(de::Error::custom)
}

/// One list entry read by the parser of its flag (`grants.dirs` by `--dir`'s,
/// `grants.http` by `--allow-http`'s).
struct Spec<T>(T);

impl<'de, T> Deserialize<'de> for Spec<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spec = String::deserialize(deserializer)?;
        T::from_str(&spec).map(Spec).map_err(de::Error::custom)
    }
}

fn spec_list<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let specs = Vec::<Spec<T>>::deserialize(deserializer)?;
    Ok(specs.into_iter().map(|Spec(value)| value).collect())
}

/// The `[config]` table: string values, and keys that `--config KEY=VALUE` could also
/// write (not empty, no `=`), so that file and flags stay equivalent.
fn config_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let table = BTreeMap::<String, String>::deserialize(deserializer)?;
    for key in table.keys() {
        if key.is_empty() {
            return Err(de::Error::custom("a configuration key is empty"));
        }
        if key.contains('=') {
            return Err(de::Error::custom(format!(
                "the configuration key {key:?} contains `=` (not expressible as --config KEY=VALUE)"
            )));
        }
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Access;
    use crate::error::error_chain;

    const FILE: &str = "team/policy.toml";

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::from_toml(text, FILE)
    }

    /// The whole message of a refused policy: file, position, key and reason.
    fn refusal(text: &str) -> String {
        let error = parse(text).expect_err(text);
        assert!(
            matches!(error, PolicyError::Toml(_)),
            "a schema error: {error:?}"
        );
        error_chain(&error)
    }

    #[test]
    fn every_key_is_read() {
        let policy = parse(
            r#"
            [grants]
            dirs = ["/srv/data::/data:ro", "/tmp/out::/out"]
            env = ["LANG=C", "HOME"]
            stdin = "inherit"
            stdout = "capture"
            stderr = "null"

            [config]
            email-field = "email"
            "blocked domains" = "a.com,b.org"

            [limits]
            max-memory-mib = 4096
            timeout-ms = 1
            fuel = 1000000
            max-transfer-mib = 1
            "#,
        )
        .expect("valid policy");
        let grants = policy.grants();
        assert_eq!(
            grants.dirs(),
            [
                DirGrant {
                    host: "/srv/data".into(),
                    guest: "/data".into(),
                    access: Access::ReadOnly
                },
                DirGrant {
                    host: "/tmp/out".into(),
                    guest: "/out".into(),
                    access: Access::ReadWrite
                },
            ]
        );
        assert_eq!(grants.env(), ["LANG=C", "HOME"]);
        assert_eq!(grants.stdin(), Some(Stdio::Inherit));
        assert_eq!(grants.stdout(), Some(Stdio::Capture));
        assert_eq!(grants.stderr(), Some(Stdio::Null));
        let config = policy.plugin_config().expect("config");
        assert_eq!(config.get("email-field"), Some("email"));
        assert_eq!(config.get("blocked domains"), Some("a.com,b.org"));
        assert_eq!(
            policy.limits(),
            Limits {
                max_memory_bytes: 4096 * MIB,
                call_timeout: Some(Duration::from_millis(1)),
                fuel_per_call: Some(1_000_000),
                max_transfer_bytes: MIB,
                ..Limits::default()
            }
        );
    }

    #[test]
    fn an_empty_policy_changes_nothing() {
        let policy = parse("").expect("empty");
        assert_eq!(policy.limits(), Limits::default());
        assert_eq!(
            policy.capabilities().expect("none").grant_lines(),
            Capabilities::none().grant_lines()
        );
        assert_eq!(policy.plugin_config().expect("none"), PluginConfig::new());
        // Limits the policy leaves out keep the value they are applied to.
        let base = Limits {
            fuel_per_call: Some(5),
            ..Limits::default()
        };
        let policy = parse("[limits]\nmax-memory-mib = 8").expect("valid");
        let applied = policy.apply_limits(base.clone());
        assert_eq!(applied.fuel_per_call, Some(5));
        assert_eq!(applied.max_memory_bytes, 8 * MIB);
        assert_eq!(applied.call_timeout, base.call_timeout);
    }

    #[test]
    fn timeout_none_lifts_the_deadline_in_any_case_as_the_flag_does() {
        for text in [r#""none""#, r#""NONE""#] {
            let policy = parse(&format!("[limits]\ntimeout-ms = {text}")).expect(text);
            assert_eq!(policy.limits().call_timeout, None);
        }
        // A number too large for a TOML integer is written as the flag takes it.
        let policy = parse("[limits]\nfuel = \"18446744073709551615\"").expect("u64::MAX");
        assert_eq!(policy.limits().fuel_per_call, Some(u64::MAX));
    }

    #[test]
    fn an_unknown_key_is_refused_at_each_level_naming_it() {
        for (text, key, line) in [
            ("grant = 1", "`grant`", 1),
            ("[grants]\ndir = []", "`dir`", 2),
            ("[limits]\n\nmax-memory = 256", "`max-memory`", 3),
            ("[grants]\n[limit]", "`limit`", 2),
        ] {
            let error = refusal(text);
            assert!(error.contains("unknown field"), "{text}: {error}");
            assert!(error.contains(key), "{text}: {error}");
            assert!(
                error.starts_with(&format!("{FILE}:{line}:")),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn bad_values_are_refused_naming_file_key_and_reason() {
        for (text, key, reason) in [
            (
                "[grants]\ndirs = [\"/a::/a\", \"/b::data\"]",
                "`grants.dirs[1]`",
                "not absolute",
            ),
            (
                "[grants]\ndirs = [\"/b::/data:rx\"]",
                "`grants.dirs[0]`",
                "unknown access suffix `:rx`",
            ),
            (
                "[grants]\nstdin = \"capture\"",
                "`grants.stdin`",
                "give `null` or `inherit`",
            ),
            (
                "[grants]\nenv = \"HOME\"",
                "`grants.env`",
                "expected a sequence",
            ),
            (
                "[limits]\ntimeout-ms = 0",
                "`limits.timeout-ms`",
                "give 1 or more milliseconds, or `none`",
            ),
            (
                "[limits]\ntimeout-ms = \"soon\"",
                "`limits.timeout-ms`",
                "`soon` is not a timeout",
            ),
            (
                "[limits]\nmax-memory-mib = 5000",
                "`limits.max-memory-mib`",
                "give 1 to 4096",
            ),
            (
                "[limits]\nmax-transfer-mib = -1",
                "`limits.max-transfer-mib`",
                "give 1 to 4096",
            ),
            (
                "[limits]\nmax-memory-mib = 2.5",
                "`limits.max-memory-mib`",
                "expected an integer or a string",
            ),
            ("[limits]\nfuel = 0", "`limits.fuel`", "from 1"),
            (
                "[config]\nretries = 3",
                "`config.retries`",
                "expected a string",
            ),
        ] {
            let error = refusal(text);
            assert!(error.starts_with(&format!("{FILE}:2:")), "{text}: {error}");
            assert!(error.contains(key), "{text}: {error}");
            assert!(error.contains(reason), "{text}: {error}");
        }
        // A key of the table itself is checked with the whole table (named from its header).
        let error = refusal("[config]\n\"a=b\" = \"c\"");
        assert!(
            error.starts_with(&format!("{FILE}:1:1: `config`: "))
                && error.contains("\"a=b\" contains `=`"),
            "{error}"
        );
        let error = refusal("[grants\n");
        assert!(
            error.starts_with(&format!("{FILE}:1:")),
            "not TOML: {error}"
        );
    }

    #[test]
    fn a_grant_given_twice_is_refused_naming_file_and_key() {
        let one = tempfile::tempdir().expect("tempdir");
        let two = tempfile::tempdir().expect("tempdir");
        let policy = parse(&format!(
            "[grants]\ndirs = [\"{}::/data\", \"{}::/data/:ro\"]",
            one.path().display(),
            two.path().display()
        ))
        .expect("each entry is well formed");
        let error = error_chain(&policy.capabilities().expect_err("same guest path"));
        assert!(
            error.starts_with(&format!("{FILE}: `grants.dirs[1]`")),
            "{error}"
        );
        assert!(
            error.contains("guest path /data/ is granted twice"),
            "{error}"
        );

        let policy = parse("[grants]\nenv = [\"A=1\", \"A=2\"]").expect("well formed");
        let error = error_chain(&policy.capabilities().expect_err("same variable"));
        assert!(error.contains("`grants.env[1]`") && error.contains("`A` is granted twice"));

        // Applied on top of grants that already have the key: the same rule.
        let policy = parse("[config]\nmode = \"fast\"").expect("valid");
        let error = policy
            .apply_config(PluginConfig::new().set("mode", "slow"))
            .expect_err("key given twice");
        let error = error_chain(&error);
        assert!(
            error.contains("`config.mode`") && error.contains("given twice"),
            "{error}"
        );
    }

    #[test]
    fn an_embedded_policy_names_its_table() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct WorkerFile {
            #[allow(dead_code)]
            input: String,
            policy: Policy,
        }
        let text = "input = \"records\"\n[policy.limits]\nfuel = -1\n";
        let error = parse_toml::<WorkerFile>(text, "worker.toml").expect_err("bad fuel");
        assert_eq!(error.key.as_deref(), Some("policy.limits.fuel"));
        assert_eq!((error.line, error.column), (Some(3), Some(8)));
        let text = "input = \"records\"\n[policy.grants]\nenv = [\"A=1\", \"A=2\"]\n";
        let worker: WorkerFile = parse_toml(text, "worker.toml").expect("well formed");
        let error = worker
            .policy
            .with_origin("worker.toml", Some("policy"))
            .capabilities()
            .expect_err("A twice");
        assert!(
            error_chain(&error).starts_with("worker.toml (table `policy`): `policy.grants.env[1]`"),
            "{}",
            error_chain(&error)
        );
    }

    #[test]
    fn relative_host_paths_resolve_against_the_files_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let team = root.path().join("team");
        std::fs::create_dir_all(team.join("data")).expect("mkdir");
        let file = team.join("policy.toml");
        std::fs::write(
            &file,
            "[grants]\ndirs = [\"./data::/data:ro\", \"/abs::/abs\", \"data::/again\"]",
        )
        .expect("write");
        let policy = Policy::from_file(&file).expect("valid");
        let hosts: Vec<&Path> = policy
            .grants()
            .dirs()
            .iter()
            .map(|d| d.host.as_path())
            .collect();
        assert_eq!(
            hosts,
            [
                team.join("data").as_path(),
                Path::new("/abs"),
                team.join("data").as_path()
            ]
        );
        // The guest path is as written, whatever the host path resolved to.
        assert_eq!(policy.grants().dirs()[0].guest, "/data");
        // Not resolved when parsed from text: there is no file to be relative to.
        let policy = parse("[grants]\ndirs = [\"./data::/data\"]").expect("valid");
        assert_eq!(policy.grants().dirs()[0].host, Path::new("./data"));
    }

    #[test]
    fn a_missing_directory_is_named_with_its_key() {
        let root = tempfile::tempdir().expect("tempdir");
        let file = root.path().join("p.toml");
        std::fs::write(&file, "[grants]\ndirs = [\"nowhere::/x\"]").expect("write");
        let error = Policy::from_file(&file)
            .expect("syntax is fine")
            .capabilities()
            .expect_err("no such directory");
        let error = error_chain(&error);
        assert!(error.contains("`grants.dirs[0]`"), "{error}");
        assert!(
            error.contains(&root.path().join("nowhere").display().to_string()),
            "names the resolved path: {error}"
        );
    }

    #[test]
    fn unreadable_or_oversized_files_are_refused_naming_them() {
        let root = tempfile::tempdir().expect("tempdir");
        let missing = root.path().join("missing.toml");
        let error = Policy::from_file(&missing).expect_err("missing");
        assert!(matches!(error, PolicyError::Read { .. }));
        assert!(error_chain(&error).contains("missing.toml"));
        let big = root.path().join("big.toml");
        let comment = format!("#{}\n", "x".repeat(MAX_POLICY_FILE_BYTES as usize));
        std::fs::write(&big, comment).expect("write");
        assert!(matches!(
            Policy::from_file(&big),
            Err(PolicyError::TooLarge { .. })
        ));
        let error = Policy::from_file(root.path()).expect_err("a directory");
        assert!(matches!(error, PolicyError::Read { .. }), "{error:?}");
    }

    #[test]
    fn the_value_parsers_take_what_the_flags_take() {
        assert_eq!(parse_memory_mib("256"), Ok(256 * MIB));
        assert_eq!(parse_memory_mib("4096"), Ok(4096 * MIB));
        for bad in ["0", "4097", "-1", "", "1.5", "x"] {
            assert!(parse_memory_mib(bad).is_err(), "{bad}");
            assert!(parse_transfer_mib(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout_ms("none"), Ok(None));
        assert_eq!(parse_timeout_ms("1"), Ok(Some(Duration::from_millis(1))));
        assert!(parse_timeout_ms("0").is_err());
        assert_eq!(parse_fuel(&u64::MAX.to_string()), Ok(u64::MAX));
        assert!(parse_fuel("18446744073709551616").is_err());
        assert_eq!(parse_output_stdio("Capture"), Ok(Stdio::Capture));
        assert!(parse_input_stdio("capture").is_err());
    }
}
