//! Plugin versions for a fleet: components in a JetStream Object Store bucket under their
//! SHA-256, the active digest per plugin name in a KV bucket, which workers watch.
//!
//! A version is only made active after it loaded and type-checked here, and a worker
//! loads and type-checks it again before swapping it in (a KV value can be written by
//! anyone with access to the bucket): if that fails the old version keeps serving and the
//! refusal is written to `status.NAME`.

use std::sync::Arc;

use async_nats::jetstream::{self, Context, kv, object_store};
use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt as _;
use witplug::{
    LoadedComponent, PluginOptions, PluginVersion, Runtime, TransformPlugin, component_digest,
};

use crate::metrics::Metrics;
use crate::worker::TransformSlot;

/// Object Store bucket of component bytes, by hex SHA-256.
pub const OBJECTS_BUCKET: &str = "witplug-plugins";
/// KV bucket: key NAME = the active version (JSON), key `status.NAME` = the last refusal.
pub const ACTIVE_BUCKET: &str = "witplug-active";
/// Larger components are refused before they are read whole.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin name `{0}` is not usable: use letters, digits, `-` and `_` (it is a KV key)")]
    BadName(String),
    #[error("no version of plugin `{0}` was published (see `witplug publish`)")]
    NotPublished(String),
    #[error("the registry entry of `{name}` is not valid: {reason}")]
    BadEntry { name: String, reason: String },
    #[error("component {digest} is not in the registry: {reason}")]
    MissingObject { digest: String, reason: String },
    #[error("component {digest} is {size} bytes, over the {MAX_COMPONENT_BYTES}-byte limit")]
    TooLarge { digest: String, size: u64 },
    #[error("component stored as {expected} has different bytes ({actual})")]
    DigestMismatch { expected: String, actual: String },
    #[error("`{origin}` is not a usable transform plugin: {reason}")]
    NotATransform { origin: String, reason: String },
    #[error("registry request failed: {what}: {reason}")]
    Request { what: String, reason: String },
}

fn request(what: &str, error: impl std::fmt::Display) -> RegistryError {
    RegistryError::Request {
        what: what.to_owned(),
        reason: error.to_string(),
    }
}

/// The value of key NAME: which component is active.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActiveVersion {
    pub digest: String,
    pub name: String,
    pub version: String,
}

/// The value of `status.NAME`: the last version a worker refused.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub worker: String,
    pub refused: String,
    pub error: String,
}

pub fn check_name(name: &str) -> Result<(), RegistryError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::BadName(name.to_owned()))
    }
}

/// The KV key a worker reports refusals under.
pub fn status_key(name: &str) -> String {
    format!("status.{name}")
}

/// Loads `bytes` as a transform plugin and asks it what it is: what a version must pass
/// before it is published or swapped in.
pub async fn load_transform(
    runtime: &Runtime,
    bytes: &[u8],
    origin: &str,
    options: PluginOptions,
) -> Result<(TransformPlugin, PluginVersion), RegistryError> {
    let not_a_transform = |error: witplug::Error| RegistryError::NotATransform {
        origin: origin.to_owned(),
        reason: witplug::error_chain(&error),
    };
    let component = LoadedComponent::from_bytes(runtime, bytes, origin)
        .map_err(|e| not_a_transform(e.into()))?;
    let plugin = TransformPlugin::new(runtime, &component, options)
        .await
        .map_err(not_a_transform)?;
    let info = plugin.describe().await.map_err(not_a_transform)?;
    let version = PluginVersion {
        name: info.name,
        version: info.version,
        digest: component_digest(bytes),
    };
    Ok((plugin, version))
}

/// What [`Registry::follow`] keeps up to date, and how.
pub struct Follow {
    pub runtime: Runtime,
    /// The plugin name (KV key) to follow.
    pub name: String,
    /// The KV revision of the version in the slot: updates after it are followed.
    pub revision: u64,
    /// Grants and limits for every new version.
    pub options: PluginOptions,
    pub slot: Arc<TransformSlot>,
    pub metrics: Arc<Metrics>,
    /// Names this worker in the refusals it writes.
    pub worker_id: String,
}

/// The registry buckets, created if missing.
pub struct Registry {
    objects: object_store::ObjectStore,
    active: kv::Store,
}

impl Registry {
    pub async fn open(context: &Context) -> Result<Self, RegistryError> {
        let objects = match context.get_object_store(OBJECTS_BUCKET).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: OBJECTS_BUCKET.to_owned(),
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| request("creating the plugin object store", e))?,
        };
        let active = match context.get_key_value(ACTIVE_BUCKET).await {
            Ok(store) => store,
            Err(_) => context
                .create_key_value(kv::Config {
                    bucket: ACTIVE_BUCKET.to_owned(),
                    history: 16,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| request("creating the active-version bucket", e))?,
        };
        Ok(Self { objects, active })
    }

    /// Checks `bytes`, stores them and makes them the active version of `name`.
    pub async fn publish(
        &self,
        runtime: &Runtime,
        name: &str,
        bytes: &[u8],
        origin: &str,
    ) -> Result<ActiveVersion, RegistryError> {
        check_name(name)?;
        let (_, version) = load_transform(runtime, bytes, origin, PluginOptions::default()).await?;
        let hex = hex_of(&version.digest);
        let mut reader = bytes;
        self.objects
            .put(hex, &mut reader)
            .await
            .map_err(|e| request("storing the component", e))?;
        let active = ActiveVersion {
            digest: version.digest,
            name: version.name,
            version: version.version,
        };
        let value = serde_json::to_vec(&active).map_err(|e| request("encoding the entry", e))?;
        self.active
            .put(name, value.into())
            .await
            .map_err(|e| request("setting the active version", e))?;
        Ok(active)
    }

    /// The active version of `name` and the KV revision it was read at.
    pub async fn active(&self, name: &str) -> Result<(ActiveVersion, u64), RegistryError> {
        check_name(name)?;
        let entry = self
            .active
            .entry(name)
            .await
            .map_err(|e| request("reading the active version", e))?
            .filter(|entry| entry.operation == kv::Operation::Put)
            .ok_or_else(|| RegistryError::NotPublished(name.to_owned()))?;
        Ok((parse_entry(name, &entry.value)?, entry.revision))
    }

    /// The bytes of a stored component, checked against its digest.
    pub async fn fetch(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let missing = |reason: String| RegistryError::MissingObject {
            digest: digest.to_owned(),
            reason,
        };
        let mut object = self
            .objects
            .get(hex_of(digest))
            .await
            .map_err(|e| missing(e.to_string()))?;
        let size = object.info().size as u64;
        if size > MAX_COMPONENT_BYTES {
            return Err(RegistryError::TooLarge {
                digest: digest.to_owned(),
                size,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut object)
            .take(MAX_COMPONENT_BYTES + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| missing(e.to_string()))?;
        let actual = component_digest(&bytes);
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                expected: digest.to_owned(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Loads the active version of `name` for a worker.
    pub async fn load_active(
        &self,
        runtime: &Runtime,
        name: &str,
        options: PluginOptions,
    ) -> Result<(TransformPlugin, PluginVersion, u64), RegistryError> {
        let (active, revision) = self.active(name).await?;
        let bytes = self.fetch(&active.digest).await?;
        let (plugin, version) = load_transform(
            runtime,
            &bytes,
            &format!("nats:{name}@{}", active.digest),
            options,
        )
        .await?;
        Ok((plugin, version, revision))
    }

    /// Follows the active version (see [`Follow`]): each new version is fetched, checked,
    /// loaded and swapped into the slot, or refused (the old one keeps serving). Runs
    /// until the watch ends.
    pub async fn follow(self, follow: Follow) -> Result<(), RegistryError> {
        let Follow {
            runtime,
            name,
            revision,
            options,
            slot,
            metrics,
            worker_id,
        } = follow;
        let mut updates = self
            .active
            .watch_from_revision(&name, revision + 1)
            .await
            .map_err(|e| request("watching the active version", e))?;
        while let Some(update) = updates.next().await {
            let entry = match update {
                Ok(entry) => entry,
                Err(error) => {
                    tracing::warn!(%error, "watching the active version");
                    continue;
                }
            };
            if entry.operation != kv::Operation::Put {
                tracing::warn!(plugin = %name, "the active version was deleted; keeping the one in use");
                continue;
            }
            let result = async {
                let active = parse_entry(&name, &entry.value)?;
                if active.digest == slot.current().version.digest {
                    return Ok(None);
                }
                let bytes = self.fetch(&active.digest).await?;
                let origin = format!("nats:{name}@{}", active.digest);
                load_transform(&runtime, &bytes, &origin, options.clone())
                    .await
                    .map(Some)
            }
            .await;
            match result {
                Ok(None) => {}
                Ok(Some((plugin, version))) => {
                    tracing::info!(plugin = %name, digest = %version.digest, version = %version.version,
                        "swapped in a new plugin version");
                    metrics.plugin_in_use(&version);
                    metrics.swaps.inc();
                    slot.replace(plugin, version);
                }
                Err(error) => {
                    let refused = parse_entry(&name, &entry.value)
                        .map(|a| a.digest)
                        .unwrap_or_else(|_| "(unreadable entry)".to_owned());
                    tracing::error!(plugin = %name, %refused, %error,
                        "refused a new plugin version; the old one keeps serving");
                    metrics.swaps_refused.inc();
                    let refusal = Refusal {
                        worker: worker_id.clone(),
                        refused,
                        error: error.to_string(),
                    };
                    if let Ok(value) = serde_json::to_vec(&refusal)
                        && let Err(error) = self.active.put(status_key(&name), value.into()).await
                    {
                        tracing::warn!(%error, "could not write the refusal to the registry");
                    }
                }
            }
        }
        Ok(())
    }
}

fn parse_entry(name: &str, value: &[u8]) -> Result<ActiveVersion, RegistryError> {
    let active: ActiveVersion =
        serde_json::from_slice(value).map_err(|e| RegistryError::BadEntry {
            name: name.to_owned(),
            reason: e.to_string(),
        })?;
    let hex = active.digest.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RegistryError::BadEntry {
            name: name.to_owned(),
            reason: format!("digest `{}` is not sha256:<64 hex digits>", active.digest),
        });
    }
    Ok(active)
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kv_keys() {
        assert!(check_name("email-normalizer_2").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", "ü"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_must_name_a_sha256() {
        let good = format!(
            r#"{{"digest":"sha256:{}","name":"n","version":"1"}}"#,
            "a".repeat(64)
        );
        assert!(parse_entry("n", good.as_bytes()).is_ok());
        let traversal = r#"{"digest":"sha256:../../etc","name":"n","version":"1"}"#;
        assert!(parse_entry("n", traversal.as_bytes()).is_err());
        assert!(parse_entry("n", b"not json").is_err());
    }
}
