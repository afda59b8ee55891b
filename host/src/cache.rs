//! Compile cache: a component is compiled once; later loads reuse its native code.
//!
//! Entries are keyed by the SHA-256 of the component bytes and of the engine's
//! compatibility hash (wasmtime version, target, compiler settings), so an engine never
//! sees code compiled for another configuration. Each entry carries the SHA-256 of its
//! payload, checked before the code is used; a corrupt or truncated entry is a miss, never
//! a crash. Entries are written to a temporary file and renamed into place, so processes
//! can share one cache directory.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Why the cache directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use compile cache directory {}", dir.display())]
pub struct CacheError {
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

/// A directory of precompiled components.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
}

/// Feeds `Hash` output into SHA-256, so the key is stable across processes and builds.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

impl CompileCache {
    /// Opens (creating if needed, readable by this user only) a cache directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let created = std::fs::DirBuilder::new()
            .recursive(true)
            .mode_owner_only()
            .create(&dir);
        created.map_err(|source| CacheError {
            dir: dir.clone(),
            source,
        })?;
        Ok(Self { dir })
    }

    /// `$WITPLUG_CACHE_DIR`, else `$XDG_CACHE_HOME/witplug`, else `~/.cache/witplug`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("WITPLUG_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(Path::new(&dir).join("witplug"));
        }
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/witplug"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `bytes` compiled by `engine` lives.
    pub fn entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        hasher.0.update(Sha256::digest(bytes));
        let key = hasher.0.finalize();
        self.dir.join(format!("{key:x}.cwasm"))
    }

    /// The cached component, if there is an intact entry for these bytes.
    pub(crate) fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.entry_path(engine, bytes);
        let entry = std::fs::read(&path).ok()?;
        let (checksum, payload) = entry.split_at_checked(32)?;
        if Sha256::digest(payload).as_slice() != checksum {
            tracing::warn!(path = %path.display(), "corrupt compile cache entry ignored");
            return None;
        }
        // SAFETY: `Component::deserialize` trusts its input to be native code that
        // wasmtime produced. The payload was written by `store` below from
        // `Component::serialize`, into a directory only this user can write, and its
        // checksum matches, so it is that output unchanged; wasmtime itself also rejects
        // code from an incompatible engine or wasmtime version.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "unusable compile cache entry ignored");
                None
            }
        }
    }

    /// Saves a compiled component; failures only cost a later recompile, so they are
    /// logged, not returned.
    pub(crate) fn store(&self, engine: &Engine, bytes: &[u8], component: &Component) {
        let path = self.entry_path(engine, bytes);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|payload| {
                let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
                temp.write_all(&Sha256::digest(&payload))?;
                temp.write_all(&payload)?;
                temp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not write compile cache entry");
        }
    }
}

// TEMP (h/run): stand-ins for the cache helper's `load_module`/`store_module`, mirrors of
// `load`/`store` for core modules, so the preview1 path compiles. The lead keeps the cache
// helper's real ones at merge.
impl CompileCache {
    /// The cached core module, if there is an intact entry for these bytes.
    pub(crate) fn load_module(&self, engine: &Engine, bytes: &[u8]) -> Option<wasmtime::Module> {
        let path = self.entry_path(engine, bytes);
        let entry = std::fs::read(&path).ok()?;
        let (checksum, payload) = entry.split_at_checked(32)?;
        if Sha256::digest(payload).as_slice() != checksum {
            return None;
        }
        // SAFETY: as in `load`: the payload is `Module::serialize` output written by
        // `store_module` into this user's directory, and its checksum matches.
        #[allow(unsafe_code)]
        let module = unsafe { wasmtime::Module::deserialize(engine, payload) };
        module.ok()
    }

    /// Saves a compiled core module; failures only cost a later recompile.
    pub(crate) fn store_module(&self, engine: &Engine, bytes: &[u8], module: &wasmtime::Module) {
        let path = self.entry_path(engine, bytes);
        let result = module
            .serialize()
            .map_err(|e| std::io::Error::other(format!("{e:#}")))
            .and_then(|payload| {
                let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
                temp.write_all(&Sha256::digest(&payload))?;
                temp.write_all(&payload)?;
                temp.persist(&path).map_err(|e| e.error)?;
                Ok(())
            });
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "could not write compile cache entry");
        }
    }
}

/// `DirBuilder::mode` where the platform has it.
trait OwnerOnly {
    fn mode_owner_only(&mut self) -> &mut Self;
}

impl OwnerOnly for std::fs::DirBuilder {
    #[cfg(unix)]
    fn mode_owner_only(&mut self) -> &mut Self {
        use std::os::unix::fs::DirBuilderExt as _;
        self.mode(0o700)
    }

    #[cfg(not(unix))]
    fn mode_owner_only(&mut self) -> &mut Self {
        self
    }
}
