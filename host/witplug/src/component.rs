//! Loading and inspecting component files.
//!
//! Bad files are told apart before wasmtime sees them (missing file, not wasm at all, a
//! core module where a component was expected), so that each gets an error that says what to
//! do rather than a parser message.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::engine::Runtime;
use crate::error::LoadError;

/// A compiled component and where it came from.
#[derive(Clone)]
pub struct LoadedComponent {
    pub(crate) component: Component,
    pub(crate) path: PathBuf,
    from_cache: bool,
}

impl LoadedComponent {
    /// Reads and compiles a component file.
    pub fn from_file(runtime: &Runtime, path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref().to_path_buf();
        let bytes = read_wasm_file(&path)?;
        Self::from_bytes(runtime, &bytes, path)
    }

    /// Compiles a component from bytes; `origin` names it in errors.
    pub fn from_bytes(
        runtime: &Runtime,
        bytes: &[u8],
        origin: impl Into<PathBuf>,
    ) -> Result<Self, LoadError> {
        let path = origin.into();
        match Header::of(bytes) {
            Header::Component => {}
            Header::CoreModule => return Err(LoadError::CoreModule { path }),
            Header::Other => return Err(LoadError::NotWasm { path }),
        }
        let engine = runtime.engine();
        if let Some(component) = runtime.cache().and_then(|cache| cache.load(engine, bytes)) {
            return Ok(Self {
                component,
                path,
                from_cache: true,
            });
        }
        let component = Component::new(engine, bytes).map_err(|e| LoadError::Invalid {
            path: path.clone(),
            reason: format!("{e:#}"),
        })?;
        if let Some(cache) = runtime.cache() {
            // A failed write only costs a later recompile.
            if let Err(error) = cache.store(engine, bytes, &component) {
                tracing::warn!(%error, "compile cache entry not written");
            }
        }
        Ok(Self {
            component,
            path,
            from_cache: false,
        })
    }

    /// Whether the native code came from the compile cache rather than the compiler.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn component(&self) -> &Component {
        &self.component
    }

    /// Names of the component's top-level exports (interfaces and functions).
    pub fn export_names(&self) -> Vec<String> {
        let ty = self.component.component_type();
        let engine = self.component.engine();
        ty.exports(engine)
            .map(|(name, item)| describe(name, &item.ty, engine))
            .collect()
    }

    /// The export names [`Instance::call`](crate::Instance::call) accepts for this
    /// component: `interface#function` for each function of an exported interface, the
    /// interface without its version (`witplug:plugin/transformer#process-batch`), methods
    /// and constructors as the component model names them (`[method]res.fn`,
    /// `[constructor]res`); `interface#[dtor]res` for each exported resource (its drop);
    /// a function the world exports directly by its name alone.
    pub fn call_names(&self) -> BTreeSet<String> {
        let ty = self.component.component_type();
        let engine = self.component.engine();
        let mut names = BTreeSet::new();
        for (name, item) in ty.exports(engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    names.insert(name.to_owned());
                }
                ComponentItem::ComponentInstance(instance) => {
                    let interface = name
                        .split_once('@')
                        .map_or(name, |(unversioned, _)| unversioned);
                    for (member, item) in instance.exports(engine) {
                        match item.ty {
                            ComponentItem::ComponentFunc(_) => {
                                names.insert(format!("{interface}#{member}"));
                            }
                            ComponentItem::Resource(_) => {
                                names.insert(format!("{interface}#[dtor]{member}"));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        names
    }

    /// The component's top-level export names as written, e.g. `wasi:cli/run@0.2.6`.
    pub fn raw_export_names(&self) -> Vec<String> {
        let ty = self.component.component_type();
        let engine = self.component.engine();
        ty.exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// The component's top-level import names as written.
    pub fn raw_import_names(&self) -> Vec<String> {
        let ty = self.component.component_type();
        let engine = self.component.engine();
        ty.imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Names of the component's top-level imports.
    pub fn import_names(&self) -> Vec<String> {
        let ty = self.component.component_type();
        let engine = self.component.engine();
        ty.imports(engine)
            .map(|(name, item)| describe(name, &item.ty, engine))
            .collect()
    }
}

/// Reads a `.wasm` file, telling a missing file apart from an unreadable one.
pub fn read_wasm_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LoadError::NotFound {
                path: path.to_path_buf(),
            }
        } else {
            LoadError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Whether `bytes` are a core WebAssembly module (e.g. a preview1 program) rather than a
/// component, from the header alone.
pub fn is_core_module(bytes: &[u8]) -> bool {
    matches!(Header::of(bytes), Header::CoreModule)
}

/// What the first eight bytes say: `\0asm`, then a version and a layer.
pub(crate) enum Header {
    Component,
    CoreModule,
    Other,
}

impl Header {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 1, 0]) => Header::Component,
            Some([0, b'a', b's', b'm', _, _, 0, 0]) => Header::CoreModule,
            _ => Header::Other,
        }
    }
}

fn describe(name: &str, item: &ComponentItem, instance_engine: &wasmtime::Engine) -> String {
    let kind = match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(instance) => {
            let engine = instance_engine;
            let funcs: Vec<&str> = instance
                .exports(engine)
                .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                .map(|(name, _)| name)
                .collect();
            return if funcs.is_empty() {
                format!("{name} (interface)")
            } else {
                format!("{name} (interface: {})", funcs.join(", "))
            };
        }
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    };
    format!("{name} ({kind})")
}

/// `a, b, c`, or `nothing` for an empty list.
pub(crate) fn list_or_nothing(items: &[String]) -> String {
    if items.is_empty() {
        "nothing".to_owned()
    } else {
        items.join(", ")
    }
}
