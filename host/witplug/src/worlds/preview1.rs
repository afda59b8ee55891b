//! Preview1 programs: core modules built for `wasm32-wasip1` (`GOOS=wasip1` Go, wasi-sdk C,
//! Rust `wasm32-wasip1`), run the way `wasmtime run` runs them.
//!
//! They run on wasmtime-wasi's own preview1 implementation (`wasmtime_wasi::p1`), not
//! wrapped in the preview1 component adapter: the adapter turns every non-zero exit status
//! into 1 and misses a few preview1 behaviours. Grants, limits, the deadline and the
//! compile cache are those of components.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::{InstancePre, Linker, Module, Store};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::capabilities::Stdio;
use crate::component::{Header, list_or_nothing, read_wasm_file};
use crate::engine::Runtime;
use crate::error::{Error, LoadError};
use crate::limits::{StoreLimiter, within_wall_clock};
use crate::plugin::PluginOptions;
use crate::state::{PluginConfig, PluginState};

/// What a preview1 program's exports must include, for error messages.
pub const WORLD: &str = "wasi preview1 command (a core module exporting `_start`)";

const START: &str = "_start";

/// The store of a preview1 program. The preview1 context lives in `data`; the preview2
/// context `PluginState` carries is never linked and is built with no grants at all, so
/// that limits, deadlines and error sorting are shared with components.
pub type Preview1Store = Store<PluginState<WasiP1Ctx>>;

/// A compiled and linked preview1 program. Cheap to clone.
#[derive(Clone)]
pub struct Preview1Program {
    runtime: Runtime,
    name: Arc<str>,
    path: PathBuf,
    pre: InstancePre<PluginState<WasiP1Ctx>>,
    options: Arc<PluginOptions>,
    from_cache: bool,
}

/// How a preview1 run ended.
pub struct Preview1Exit {
    /// The status the program passed to `proc_exit` (0..=125, as preview1 allows), or 0
    /// when `_start` returned.
    pub code: i32,
    /// The finished store, to read captured output from.
    pub store: Preview1Store,
}

impl std::fmt::Debug for Preview1Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preview1Exit")
            .field("code", &self.code)
            .finish_non_exhaustive()
    }
}

impl Preview1Program {
    /// Reads, compiles and links a preview1 core module file.
    pub fn load(
        runtime: &Runtime,
        path: impl AsRef<Path>,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = read_wasm_file(path)?;
        Self::from_bytes(runtime, &bytes, path, options)
    }

    /// Compiles (or takes from the compile cache) and links a preview1 core module;
    /// `origin` names it in errors.
    pub fn from_bytes(
        runtime: &Runtime,
        bytes: &[u8],
        origin: impl Into<PathBuf>,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        let path = origin.into();
        match Header::of(bytes) {
            Header::CoreModule => {}
            Header::Component => {
                return Err(LoadError::Invalid {
                    path,
                    reason: "it is a component, not a preview1 core module".to_owned(),
                }
                .into());
            }
            Header::Other => return Err(LoadError::NotWasm { path }.into()),
        }
        options.limits.validate()?;
        if options.limits.fuel_per_call.is_some() && !runtime.config().fuel_metering {
            return Err(Error::InvalidLimits(
                "`fuel_per_call` needs a runtime created with `fuel_metering` on",
            ));
        }
        let engine = runtime.engine();
        let cached = runtime
            .cache()
            .and_then(|cache| cache.load_module(engine, bytes));
        let from_cache = cached.is_some();
        let module = match cached {
            Some(module) => module,
            None => {
                let module = Module::new(engine, bytes).map_err(|e| LoadError::Invalid {
                    path: path.clone(),
                    reason: format!("{e:#}"),
                })?;
                if let Some(cache) = runtime.cache() {
                    // A failed write only costs a later recompile.
                    if let Err(error) = cache.store_module(engine, bytes, &module) {
                        tracing::warn!(%error, "compile cache entry not written");
                    }
                }
                module
            }
        };
        let mismatch = |reason: String| LoadError::WorldMismatch {
            path: path.clone(),
            world: WORLD,
            reason,
            exports: list_or_nothing(&export_names(&module)),
            imports: list_or_nothing(&import_names(&module)),
        };
        if !module
            .exports()
            .any(|export| export.name() == START && export.ty().func().is_some())
        {
            return Err(mismatch(
                "it has no `_start` function: it is a library (reactor), not a program".to_owned(),
            )
            .into());
        }
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(
            &mut linker,
            |state: &mut PluginState<WasiP1Ctx>| &mut state.data,
        )
        .map_err(Error::Engine)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| mismatch(format!("{e:#}")))?;
        let name: Arc<str> = options
            .name
            .clone()
            .unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "program".to_owned())
            })
            .into();
        Ok(Self {
            runtime: runtime.clone(),
            name,
            path,
            pre,
            options: Arc::new(options),
            from_cache,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the native code came from the compile cache rather than the compiler.
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// Runs `_start` in a fresh instance with the granted capabilities. A `proc_exit(n)` is
    /// an exit status, not an error; traps and limits are the typed [`Error`]s of components.
    pub async fn run(&self) -> Result<Preview1Exit, Error> {
        let options = &*self.options;
        let capabilities = &options.capabilities;
        let (mut builder, captured) = capabilities.wasi_builder(&self.name)?;
        let state = PluginState::new(
            self.name.clone(),
            Arc::new(PluginConfig::default()),
            None,
            // Never linked: see `Preview1Store`.
            wasmtime_wasi::WasiCtx::builder().build(),
            captured,
            StoreLimiter::new(options.limits.clone(), self.runtime.config().epoch_tick),
            builder.build_p1(),
        )
        .with_world_grants(capabilities.world_grants());
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(StoreLimiter::on_epoch_tick);
        // The deadline counts instantiation and `_start` together: one budget for the run.
        store.data_mut().limiter.start_call();
        store.set_epoch_deadline(1);
        if self.runtime.config().fuel_metering {
            // Cannot fail: the engine meters fuel.
            let _ = store.set_fuel(options.limits.fuel_per_call.unwrap_or(u64::MAX));
        }
        // The deadline is wall-clock time of the whole run, blocked host calls included.
        let timeout = options.limits.call_timeout;
        let code = match within_wall_clock(timeout, self.instantiate_and_start(&mut store)).await {
            Ok(code) => code?,
            Err(timeout) => {
                return Err(Error::Timeout {
                    plugin: self.name.to_string(),
                    export: START.to_owned(),
                    timeout,
                });
            }
        };
        Ok(Preview1Exit { code, store })
    }

    async fn instantiate_and_start(&self, store: &mut Preview1Store) -> Result<i32, Error> {
        let capture_stderr = self.options.capabilities.stderr_policy() == Stdio::Capture;
        let fail = |store: &Preview1Store, export: &str, error: wasmtime::Error| {
            let state = store.data();
            let stderr = capture_stderr.then(|| state.captured().stderr()).flatten();
            Error::from_call(
                state.plugin(),
                export,
                error,
                stderr,
                state.limiter.limits(),
            )
        };
        let instance = match self.pre.instantiate_async(&mut *store).await {
            Ok(instance) => instance,
            Err(error) => {
                return Err(match fail(store, "(instantiation)", error) {
                    Error::Call { plugin, source, .. } => Error::Instantiate { plugin, source },
                    error => error,
                });
            }
        };
        let start = instance
            .get_typed_func::<(), ()>(&mut *store, START)
            .map_err(|error| fail(store, START, error))?;
        match start.call_async(&mut *store, ()).await {
            Ok(()) => Ok(0),
            // `proc_exit(n)` unwinds the guest with this error: not a fault, just the status.
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(fail(store, START, error)),
            },
        }
    }
}

/// `name (kind)` for each export of a core module.
pub fn export_names(module: &Module) -> Vec<String> {
    module
        .exports()
        .map(|export| format!("{} ({})", export.name(), kind(&export.ty())))
        .collect()
}

/// `module::name (kind)` for each import of a core module.
pub fn import_names(module: &Module) -> Vec<String> {
    module
        .imports()
        .map(|import| {
            format!(
                "{}::{} ({})",
                import.module(),
                import.name(),
                kind(&import.ty())
            )
        })
        .collect()
}

fn kind(ty: &wasmtime::ExternType) -> &'static str {
    match ty {
        wasmtime::ExternType::Func(_) => "func",
        wasmtime::ExternType::Global(_) => "global",
        wasmtime::ExternType::Table(_) => "table",
        wasmtime::ExternType::Memory(_) => "memory",
        wasmtime::ExternType::Tag(_) => "tag",
    }
}
