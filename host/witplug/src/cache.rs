//! Compile cache: a component (or core module) is compiled once; later loads reuse its
//! native code.
//!
//! Trust model. `deserialize` runs whatever native code an entry holds, so an entry is used
//! only if it is authenticated:
//!
//! - The directory must be a directory owned by the current user and not group- or
//!   world-writable; otherwise the cache is not used at all (the caller compiles in memory).
//! - A per-user key (32 random bytes, file [`KEY_FILE`] in the directory, mode 0600, owned
//!   by the current user) authenticates every entry with HMAC-SHA256 over its header and
//!   payload. The header binds the artifact kind (component or module), the SHA-256 of the
//!   exact wasm bytes, and the engine's compatibility hash, so an entry copied to another
//!   name, from another component, another engine configuration or another machine's cache
//!   is refused; so is one whose code was patched.
//! - Entries are opened without following symlinks and without blocking, and must be
//!   regular files of at most [`MAX_ENTRY_BYTES`]: a FIFO, a device or a symlink to one is
//!   a miss, never a hang or an unbounded read.
//!
//! An attacker who can write entries (but not read the key) can only cause misses. One who
//! can replace the directory or the key file with their own is refused by the owner and
//! mode checks. One who can read the key (the same user, or root) can forge entries: the
//! cache protects against other users and copied files, not against the owner. The
//! directory's parents are trusted as the user's own (as `~/.cache` is), and the checks run
//! when the cache is opened.
//!
//! Any problem with the cache costs a recompile, never a failed load. Entries are written
//! to a temporary file and renamed into place, so processes can share one directory.

use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::io::{Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rustix::fs::{FileType, Mode, OFlags};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

/// The largest entry read (1 GiB): well above any real component's native code, and a
/// bound on what a planted file can make witplug read.
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Name of the per-user key file inside the cache directory.
pub const KEY_FILE: &str = "hmac.key";

const KEY_BYTES: usize = 32;
const MAGIC: &[u8; 8] = b"WPCACHE\0";
/// Bumped whenever the header layout changes; an entry of another version is a miss.
const FORMAT_VERSION: u32 = 2;
/// magic, version, kind, wasm SHA-256, engine hash, payload length.
const SIGNED_HEADER_BYTES: usize = 8 + 4 + 1 + 32 + 32 + 8;
/// The signed header followed by its HMAC-SHA256.
pub const HEADER_BYTES: usize = SIGNED_HEADER_BYTES + 32;

type HmacSha256 = Hmac<Sha256>;

/// What an entry holds; bound into the authenticated header so that one kind never loads
/// as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum ArtifactKind {
    Component = 1,
    Module = 2,
}

impl ArtifactKind {
    fn extension(self) -> &'static str {
        match self {
            ArtifactKind::Component => "cwasm",
            ArtifactKind::Module => "mwasm",
        }
    }
}

/// Why a cache directory, its key or one of its entries cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("compile cache directory is an empty path")]
    EmptyPath,

    #[error("cannot create or open compile cache directory {}", dir.display())]
    Directory {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("compile cache path {} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },

    #[error(
        "compile cache directory {} belongs to uid {owner}, not to the current user (uid {user})",
        dir.display()
    )]
    DirectoryNotOwned { dir: PathBuf, owner: u32, user: u32 },

    #[error(
        "compile cache directory {} is writable by other users (mode {mode:o}); \
         run `chmod go-w` on it or choose another directory",
        dir.display()
    )]
    DirectoryWritableByOthers { dir: PathBuf, mode: u32 },

    #[error("compile cache key {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },

    #[error("compile cache entry {}: {reason}", path.display())]
    Entry { path: PathBuf, reason: String },

    #[error("compile cache entry {} could not be read", path.display())]
    EntryRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("compile cache entry {} could not be written", path.display())]
    EntryWrite {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A checked directory of precompiled components and modules, with its key.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for CompileCache {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into SHA-256, so the engine hash is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

fn engine_hash(engine: &Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

fn io_error(errno: rustix::io::Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno.raw_os_error())
}

impl CompileCache {
    /// Opens a cache directory, creating it (owner-only) if needed, and its key (created
    /// on first use). Refuses a directory or key that another user owns or could write.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        if dir.as_os_str().is_empty() {
            return Err(CacheError::EmptyPath);
        }
        let directory_error = |source| CacheError::Directory {
            dir: dir.clone(),
            source,
        };
        {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(directory_error)?;
        }
        let stat = rustix::fs::stat(&dir).map_err(|e| directory_error(io_error(e)))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            return Err(CacheError::NotADirectory { dir });
        }
        let user = rustix::process::geteuid().as_raw();
        if stat.st_uid != user {
            return Err(CacheError::DirectoryNotOwned {
                dir,
                owner: stat.st_uid,
                user,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(CacheError::DirectoryWritableByOthers { dir, mode });
        }
        let key = load_or_create_key(&dir.join(KEY_FILE), user)?;
        Ok(Self { dir, key })
    }

    /// `$WITPLUG_CACHE_DIR`, else `$XDG_CACHE_HOME/witplug`, else `~/.cache/witplug`.
    /// Empty variables count as unset (never the current directory); relative
    /// `XDG_CACHE_HOME` and `HOME` are ignored, as the XDG specification says.
    pub fn default_dir() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|value: &OsString| !value.is_empty());
        if let Some(dir) = var("WITPLUG_CACHE_DIR") {
            return Some(dir.into());
        }
        let absolute = |value: OsString| Some(PathBuf::from(value)).filter(|p| p.is_absolute());
        if let Some(dir) = var("XDG_CACHE_HOME").and_then(absolute) {
            return Some(dir.join("witplug"));
        }
        var("HOME")
            .and_then(absolute)
            .map(|home| home.join(".cache/witplug"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for component `bytes` compiled by `engine` lives.
    pub fn entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.path_of(ArtifactKind::Component, engine, bytes)
    }

    /// Where the entry for core module `bytes` compiled by `engine` lives.
    pub fn module_entry_path(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        self.path_of(ArtifactKind::Module, engine, bytes)
    }

    fn path_of(&self, kind: ArtifactKind, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut name = Sha256::new();
        name.update([kind as u8]);
        name.update(engine_hash(engine));
        name.update(Sha256::digest(bytes));
        self.dir
            .join(format!("{:x}.{}", name.finalize(), kind.extension()))
    }

    /// The cached component for these bytes, if there is an authentic entry.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let (path, payload) = self.read_logged(ArtifactKind::Component, engine, bytes)?;
        // SAFETY: `Component::deserialize` trusts its input to be native code that
        // wasmtime produced. `read_verified` checked the HMAC under this user's key (in an
        // owner-only directory, readable by this user only) over the header and payload,
        // so `store` wrote this payload, for these exact bytes, this artifact kind and
        // this engine configuration, from `Component::serialize`.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &payload) };
        component
            .inspect_err(|error| {
                tracing::warn!(path = %path.display(), %error, "unusable compile cache entry ignored");
            })
            .ok()
    }

    /// The cached core module for these bytes, if there is an authentic entry.
    pub fn load_module(&self, engine: &Engine, bytes: &[u8]) -> Option<Module> {
        let (path, payload) = self.read_logged(ArtifactKind::Module, engine, bytes)?;
        // SAFETY: as in `load`: the HMAC under this user's key proves `store_module` wrote
        // this payload from `Module::serialize`, for these bytes, this kind and engine.
        #[allow(unsafe_code)]
        let module = unsafe { Module::deserialize(engine, &payload) };
        module
            .inspect_err(|error| {
                tracing::warn!(path = %path.display(), %error, "unusable compile cache entry ignored");
            })
            .ok()
    }

    /// Checks that an authentic component entry for these bytes exists, without loading
    /// it; `Ok` is its path.
    pub fn verify_entry(&self, engine: &Engine, bytes: &[u8]) -> Result<PathBuf, CacheError> {
        let path = self.entry_path(engine, bytes);
        self.read_verified(ArtifactKind::Component, engine, bytes, &path)?;
        Ok(path)
    }

    /// As [`verify_entry`](Self::verify_entry), for a core module's entry.
    pub fn verify_module_entry(
        &self,
        engine: &Engine,
        bytes: &[u8],
    ) -> Result<PathBuf, CacheError> {
        let path = self.module_entry_path(engine, bytes);
        self.read_verified(ArtifactKind::Module, engine, bytes, &path)?;
        Ok(path)
    }

    /// Saves a compiled component; `Ok` is the entry's path.
    pub fn store(
        &self,
        engine: &Engine,
        bytes: &[u8],
        component: &Component,
    ) -> Result<PathBuf, CacheError> {
        let path = self.entry_path(engine, bytes);
        let payload = component.serialize().map_err(|e| CacheError::EntryWrite {
            path: path.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        self.write_entry(ArtifactKind::Component, engine, bytes, &payload, path)
    }

    /// Saves a compiled core module; `Ok` is the entry's path.
    pub fn store_module(
        &self,
        engine: &Engine,
        bytes: &[u8],
        module: &Module,
    ) -> Result<PathBuf, CacheError> {
        let path = self.module_entry_path(engine, bytes);
        let payload = module.serialize().map_err(|e| CacheError::EntryWrite {
            path: path.clone(),
            source: std::io::Error::other(format!("{e:#}")),
        })?;
        self.write_entry(ArtifactKind::Module, engine, bytes, &payload, path)
    }

    fn signed_header(
        kind: ArtifactKind,
        engine: &Engine,
        bytes: &[u8],
        payload_len: u64,
    ) -> [u8; SIGNED_HEADER_BYTES] {
        let mut header = [0u8; SIGNED_HEADER_BYTES];
        let fields = [
            &MAGIC[..],
            &FORMAT_VERSION.to_le_bytes(),
            &[kind as u8],
            &Sha256::digest(bytes),
            &engine_hash(engine),
            &payload_len.to_le_bytes(),
        ];
        let mut at = 0;
        for field in fields {
            header[at..at + field.len()].copy_from_slice(field);
            at += field.len();
        }
        header
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes is always accepted.
        <HmacSha256 as Mac>::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    fn write_entry(
        &self,
        kind: ArtifactKind,
        engine: &Engine,
        bytes: &[u8],
        payload: &[u8],
        path: PathBuf,
    ) -> Result<PathBuf, CacheError> {
        let header = Self::signed_header(kind, engine, bytes, payload.len() as u64);
        let mut mac = self.mac();
        mac.update(&header);
        mac.update(payload);
        let tag = mac.finalize().into_bytes();
        let written = (|| {
            // Created 0600 by tempfile, renamed over any old entry (never written through).
            let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
            temp.write_all(&header)?;
            temp.write_all(&tag)?;
            temp.write_all(payload)?;
            temp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        })();
        written.map_err(|source| CacheError::EntryWrite {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// `read_verified`, with a missing entry silent and any other refusal logged.
    fn read_logged(
        &self,
        kind: ArtifactKind,
        engine: &Engine,
        bytes: &[u8],
    ) -> Option<(PathBuf, Vec<u8>)> {
        let path = self.path_of(kind, engine, bytes);
        match self.read_verified(kind, engine, bytes, &path) {
            Ok(payload) => Some((path, payload)),
            Err(CacheError::EntryRead { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(error) => {
                tracing::warn!(%error, "compile cache entry refused; compiling instead");
                None
            }
        }
    }

    /// Reads an entry and checks every header field and the HMAC; `Ok` is the payload.
    fn read_verified(
        &self,
        kind: ArtifactKind,
        engine: &Engine,
        bytes: &[u8],
        path: &Path,
    ) -> Result<Vec<u8>, CacheError> {
        let refuse = |reason: &str| CacheError::Entry {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        let entry = read_regular_file(path, MAX_ENTRY_BYTES).map_err(|e| match e {
            ReadError::Io(source) => CacheError::EntryRead {
                path: path.to_path_buf(),
                source,
            },
            ReadError::Refused(reason) => refuse(&reason),
        })?;
        let (header, rest) = entry
            .split_at_checked(SIGNED_HEADER_BYTES)
            .ok_or_else(|| refuse("shorter than its header"))?;
        let (tag, payload) = rest
            .split_at_checked(32)
            .ok_or_else(|| refuse("shorter than its header"))?;
        let expected = Self::signed_header(kind, engine, bytes, payload.len() as u64);
        // Field by field, only to say what is wrong; the HMAC below is the check that
        // matters.
        let fields = [
            (12, "not a witplug cache entry of this format version"),
            (13, "holds another kind of artifact"),
            (45, "compiled from other wasm bytes"),
            (77, "compiled by another engine configuration"),
            (SIGNED_HEADER_BYTES, "truncated or extended payload"),
        ];
        let mut from = 0;
        for (to, reason) in fields {
            if header[from..to] != expected[from..to] {
                return Err(refuse(reason));
            }
            from = to;
        }
        let mut mac = self.mac();
        mac.update(header);
        mac.update(payload);
        mac.verify_slice(tag)
            .map_err(|_| refuse("authentication failed (written with another key, or altered)"))?;
        let payload_start = SIGNED_HEADER_BYTES + tag.len();
        // The payload alone, in the same allocation: an entry can be large.
        let mut entry = entry;
        entry.drain(..payload_start);
        Ok(entry)
    }
}

enum ReadError {
    Io(std::io::Error),
    Refused(String),
}

/// Opens `path` without following a symlink or blocking on a FIFO, and reads it if it is
/// a regular file of at most `limit` bytes.
fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let fd = open_no_follow(path, OFlags::RDONLY).map_err(|errno| {
        if errno == rustix::io::Errno::LOOP {
            ReadError::Refused("is a symbolic link".to_owned())
        } else {
            ReadError::Io(io_error(errno))
        }
    })?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(io_error(e)))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(ReadError::Refused("is not a regular file".to_owned()));
    }
    let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
    if size > limit {
        return Err(ReadError::Refused(format!(
            "is {size} bytes, over the {limit}-byte limit"
        )));
    }
    let mut contents = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // `take`: the file may grow after `fstat`.
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut contents)
        .map_err(ReadError::Io)?;
    if contents.len() as u64 > limit {
        return Err(ReadError::Refused(format!(
            "grew over the {limit}-byte limit while being read"
        )));
    }
    Ok(contents)
}

fn open_no_follow(path: &Path, flags: OFlags) -> Result<OwnedFd, rustix::io::Errno> {
    rustix::fs::open(
        path,
        flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
}

/// Reads the key file, creating it first if there is none. A key that is not a regular
/// file of [`KEY_BYTES`] owned by `user` with no group or other permissions is refused.
fn load_or_create_key(path: &Path, user: u32) -> Result<[u8; KEY_BYTES], CacheError> {
    let refuse = |reason: String| CacheError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    match open_no_follow(path, OFlags::RDONLY) {
        Err(rustix::io::Errno::NOENT) => create_key(path).map_err(|e| refuse(e.to_string()))?,
        Err(rustix::io::Errno::LOOP) => return Err(refuse("is a symbolic link".to_owned())),
        Err(errno) => return Err(refuse(io_error(errno).to_string())),
        Ok(_) => {}
    }
    let fd = open_no_follow(path, OFlags::RDONLY).map_err(|e| refuse(io_error(e).to_string()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| refuse(io_error(e).to_string()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(refuse("is not a regular file".to_owned()));
    }
    if stat.st_uid != user {
        return Err(refuse(format!(
            "belongs to uid {}, not to the current user (uid {user})",
            stat.st_uid
        )));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o077 != 0 {
        return Err(refuse(format!(
            "is readable or writable by other users (mode {mode:o}); it must be 0600"
        )));
    }
    let mut key = [0u8; KEY_BYTES];
    let mut file = std::fs::File::from(fd);
    file.read_exact(&mut key)
        .map_err(|_| refuse(format!("is not {KEY_BYTES} bytes long")))?;
    if file
        .read(&mut [0u8; 1])
        .map_err(|e| refuse(e.to_string()))?
        != 0
    {
        return Err(refuse(format!("is not {KEY_BYTES} bytes long")));
    }
    Ok(key)
}

/// Writes a new random key to a temporary file and links it into place: another process
/// creating the key at the same time makes the link fail harmlessly, and nobody reads a
/// half-written key.
fn create_key(path: &Path) -> std::io::Result<()> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::getrandom(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    // tempfile creates with O_EXCL and mode 0600.
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&key)?;
    temp.as_file().sync_all()?;
    match std::fs::hard_link(temp.path(), path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}
