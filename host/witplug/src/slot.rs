//! A plugin that can be replaced while calls are in flight.
//!
//! A long-running host (a queue worker, a server) swaps plugin versions without stopping.
//! Callers take the version in use with [`PluginSlot::current`] at the start of a unit of
//! work (a batch, a request) and keep that `Arc` until it is done; [`PluginSlot::replace`]
//! installs a new version for the units that start afterwards. No call fails because of a
//! swap, and a unit of work never mixes two versions.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sha2::{Digest as _, Sha256};

/// Which build of a plugin made a result: what it says of itself and what its bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginVersion {
    /// The plugin's own name (its `describe()`).
    pub name: String,
    /// The plugin's own version string (its `describe()`).
    pub version: String,
    /// `sha256:<hex>` of the component's bytes: what really identifies the build.
    pub digest: String,
}

/// `sha256:<64 hex digits>` of a component's bytes, the form [`PluginVersion::digest`] uses.
pub fn component_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A plugin together with the version it is.
#[derive(Debug)]
pub struct Versioned<P> {
    pub plugin: P,
    pub version: PluginVersion,
}

/// Holds the version of a plugin in use; see the module docs.
pub struct PluginSlot<P> {
    current: RwLock<Arc<Versioned<P>>>,
    swaps: AtomicU64,
}

impl<P> PluginSlot<P> {
    pub fn new(plugin: P, version: PluginVersion) -> Self {
        Self {
            current: RwLock::new(Arc::new(Versioned { plugin, version })),
            swaps: AtomicU64::new(0),
        }
    }

    /// The version in use now. Hold the `Arc` for a whole unit of work.
    pub fn current(&self) -> Arc<Versioned<P>> {
        // The lock is only held to clone or swap an `Arc`, which cannot panic, so a
        // poisoned lock still holds a whole value.
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Installs `plugin` for the units of work that start from now on and returns the
    /// version it replaces (still alive for the units that hold it).
    pub fn replace(&self, plugin: P, version: PluginVersion) -> Arc<Versioned<P>> {
        let new = Arc::new(Versioned { plugin, version });
        let old = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(|e| e.into_inner()),
            new,
        );
        self.swaps.fetch_add(1, Ordering::Relaxed);
        old
    }

    /// How many times [`replace`](Self::replace) was called.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(name: &str) -> PluginVersion {
        PluginVersion {
            name: name.to_owned(),
            version: "1".to_owned(),
            digest: component_digest(name.as_bytes()),
        }
    }

    #[test]
    fn a_unit_of_work_keeps_the_version_it_started_with() {
        let slot = PluginSlot::new("old", version("old"));
        let in_flight = slot.current();
        let replaced = slot.replace("new", version("new"));
        assert_eq!(in_flight.plugin, "old");
        assert_eq!(replaced.plugin, "old");
        assert_eq!(slot.current().plugin, "new");
        assert_eq!(slot.current().version, version("new"));
        assert_eq!(slot.swaps(), 1);
    }

    #[test]
    fn the_digest_is_the_sha256_of_the_bytes() {
        // SHA-256 of the empty string, a published test vector.
        assert_eq!(
            component_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn readers_on_other_threads_always_see_a_whole_version() {
        let slot = Arc::new(PluginSlot::new(0_u64, version("0")));
        let reader = {
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || {
                let mut last = 0;
                for _ in 0..100_000 {
                    let current = slot.current();
                    // Versions only go up, and each plugin carries its own version name.
                    assert!(current.plugin >= last);
                    assert_eq!(current.version.name, current.plugin.to_string());
                    last = current.plugin;
                }
            })
        };
        for n in 1..=1000_u64 {
            slot.replace(n, version(&n.to_string()));
        }
        reader.join().expect("reader saw a torn or older version");
        assert_eq!(slot.swaps(), 1000);
    }
}
