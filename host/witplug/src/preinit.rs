//! Pre-initialisation: run a component's start-up once, at build time, and ship the result.
//!
//! # What
//!
//! [`preinitialize`] instantiates a component, calls one of its exports (the *init call*,
//! e.g. `describe()`), and writes out a new component whose linear memories and globals
//! start in the state the instance was in after that call (a snapshot, made by
//! [wasmtime-wizer](https://docs.rs/wasmtime-wizer)). Instantiating the snapshot skips
//! everything that already ran: the guest's start-up code does not run again.
//! The empty data segments wizer leaves behind are then removed (`data_segments`), as
//! wasmtime would set each up on every instantiation.
//!
//! # Why
//!
//! A component built with mainline Go runs the whole Go runtime start-up (heap, scheduler,
//! package `init`s) every time it is instantiated, through the reactor's `_initialize`.
//! Stateless worlds take a fresh instance per call, so every call pays for it. A
//! pre-initialised Go component starts from the snapshot instead: several times faster to
//! instantiate (figures in `guest-tinygo/README.md`). A Rust guest has little start-up
//! to skip, but snapshotting it works the same.
//!
//! # Caveat: whatever the init instance saw is frozen into every instance
//!
//! The snapshot is the memory of *one* instance, copied into every later one. Whatever the
//! guest read or computed during start-up is therefore the same in every instance, and is
//! readable by anyone who has the output file:
//!
//! - random seeds taken at start-up. In Go, the runtime's random state (`runtime.rand`,
//!   seeded once from WASI `random_get`) is frozen, hence every instance gets the same map
//!   hash seeds (Go's protection against hash flooding is gone for anyone who has the
//!   file), the same map iteration order, the same `hash/maphash` seeds and the same
//!   unseeded `math/rand` and `math/rand/v2` sequences. Each pre-initialisation draws new
//!   seeds, so two runs give different bytes. What a guest draws from WASI at call time
//!   (Go's `crypto/rand`) stays fresh;
//! - what the guest caches from WASI at start-up. Go reads its environment variables,
//!   arguments and preopened directories then: a pre-initialised Go guest sees the init
//!   instance's (none, see below) *whatever it is granted later*;
//! - resource handles taken at start-up. Resources are not part of a snapshot, so such
//!   handles dangle in later instances. The WASI preview1 adapter of a Go component takes
//!   its stdin, stdout and stderr handles during Go's start-up: in a pre-initialised Go
//!   guest, the first write to stdout or stderr (a `fmt.Println`, a `log` line, the message
//!   of a panic) fails the call with `unknown handle index`. A Rust `wasm32-wasip2` guest
//!   takes them when it first uses them and is not affected;
//! - the wall-clock and monotonic times read at start-up;
//! - anything the init call itself computes or caches.
//!
//! For that reason the init instance gets **no capabilities at all**: no environment
//! variable, no argument, no directory, no network, stdin closed, stdout discarded
//! ([`Capabilities::none`]; stderr is captured, for error messages only). Nothing of the
//! build machine or of whoever runs the pre-initialisation (secrets in its environment,
//! paths, file contents) can end up in the shipped component. Imports other than WASI
//! (e.g. witplug's `logging` and `config`) are refused ([`Error::CapabilityDenied`]) if
//! the init call uses them: their answers would be frozen too. Pick an init call
//! without side effects, such as the `describe()` every witplug plugin exports.
//!
//! Only pre-initialise a component whose behaviour does not depend on what is frozen: for
//! a Go guest, pure computation on its arguments and imports (configuration and logging
//! go through witplug's imports and are unaffected), no environment, files, stdout or
//! stderr, no reliance on random seeds being secret or differing between instances.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = witplug::Runtime::new()?;
//! let wasm = std::fs::read("go-email-normalizer.wasm")?;
//! let snapshot = witplug::preinit::preinitialize(&runtime, &wasm, "describe()").await?;
//! std::fs::write("go-email-normalizer-preinit.wasm", snapshot)?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use wasmtime::component::wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::wit_parser::ItemName;
use wasmtime::component::{
    Component, ComponentExportIndex, Linker, LinkerInstance, ResourceType, Val, types,
};
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wizer::{WasmtimeWizerComponent, Wizer};

use crate::capabilities::{Capabilities, CapabilityDenied, Stdio};
use crate::data_segments;
use crate::engine::Runtime;
use crate::error::Error;
use crate::limits::{Limits, StoreLimiter};
use crate::state::{PluginConfig, PluginState};

/// The init call the CLI uses by default: every witplug plugin exports `describe`, which
/// has no side effects.
pub const DEFAULT_INIT_CALL: &str = "describe()";

/// The exports wizer's instrumentation adds (its state accessors); not init calls.
const WIZER_EXPORTS: &str = "wasmtime:wizer/";

/// The name the init instance goes by in errors.
const INIT_INSTANCE: &str = "pre-initialisation";

/// Why a component could not be pre-initialised.
#[derive(Debug, thiserror::Error)]
pub enum PreinitError {
    /// The init call is not a WAVE function call, names no exported function (or more than
    /// one), or its arguments do not fit the function's parameters.
    #[error("invalid init call `{call}`: {reason}")]
    InitCall { call: String, reason: String },

    /// The bytes are not a WebAssembly component at all: not WebAssembly, or a core module.
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(&'static str),

    /// The component is a `wasi:cli/command` (it exports `wasi:cli/run`). A command's work
    /// is its run: a snapshot taken after it would start every later run after `main`
    /// returned, so each of them would fail.
    #[error(
        "the component is a `wasi:cli/command` (it exports `{export}`): only plugins can be \
         pre-initialised; a snapshot of a command would start after its `main` returned"
    )]
    Command { export: String },

    /// The component is not one that wizer can snapshot (a component start function,
    /// imported memories or tables, …).
    #[error("the component cannot be pre-initialised")]
    Unsupported(#[source] wasmtime::Error),

    /// The instrumented component did not compile or link (WASI p2 is provided; other
    /// imports are linked to functions that refuse every call).
    #[error("the component could not be prepared for pre-initialisation")]
    Prepare(#[source] wasmtime::Error),

    /// Instantiating the component, or the init call, failed: a trap, a limit (the
    /// defaults of [`Limits`]), or an import the init instance does not grant
    /// ([`Error::CapabilityDenied`]: any import but WASI).
    #[error("the init call `{call}` failed")]
    Init {
        call: String,
        #[source]
        source: Box<Error>,
    },

    /// The instance's state could not be written out as a component.
    #[error("the snapshot could not be written")]
    Snapshot(#[source] wasmtime::Error),
}

/// Instantiates `component` with no capabilities, runs `init_call` in it, and returns the
/// bytes of a component that starts in the state that call left it in.
///
/// `init_call` is a [WAVE](https://docs.rs/wasm-wave) function call of an export: a
/// function of the component itself or of an exported interface, either qualified
/// (`witplug:plugin/metadata.describe@0.1.0()`) or by its bare name when only one
/// exported function has it (`describe()`); `()` may be left out when the function takes
/// no parameters. Its results are discarded.
///
/// Instantiation and the init call run under the default [`Limits`] (memory and time).
/// Read the [module documentation](self) for what the snapshot freezes.
pub async fn preinitialize(
    runtime: &Runtime,
    component: &[u8],
    init_call: &str,
) -> Result<Vec<u8>, PreinitError> {
    let call_text = if init_call.contains('(') {
        init_call.trim().to_owned()
    } else {
        format!("{}()", init_call.trim())
    };
    let invalid = |reason: String| PreinitError::InitCall {
        call: init_call.to_owned(),
        reason,
    };
    let call = UntypedFuncCall::parse(&call_text)
        .map_err(|e| invalid(format!("not a WAVE function call: {e}")))?;

    if !wasmparser::Parser::is_component(component) {
        return Err(PreinitError::NotAComponent(
            if wasmparser::Parser::is_core_wasm(component) {
                "it is a core module"
            } else {
                "it does not start with the `\\0asm` magic bytes of a component"
            },
        ));
    }
    let wizer = Wizer::new();
    let (context, instrumented) = wizer
        .instrument_component(component)
        .map_err(PreinitError::Unsupported)?;
    let engine = runtime.engine();
    let compiled = Component::new(engine, &instrumented).map_err(PreinitError::Prepare)?;
    if let Some((export, _)) = compiled
        .component_type()
        .exports(engine)
        .find(|(name, _)| name.starts_with("wasi:cli/run@"))
    {
        return Err(PreinitError::Command {
            export: export.to_owned(),
        });
    }
    let (index, func_type) = resolve_export(engine, &compiled, call.name()).map_err(invalid)?;
    let param_types: Vec<_> = func_type.params().map(|(_, ty)| ty).collect();
    let params: Vec<Val> = call
        .to_wasm_params(&param_types)
        .map_err(|e| invalid(format!("its arguments do not fit `{}`: {e}", call.name())))?;
    let mut results = vec![Val::Bool(false); func_type.results().len()];

    let mut linker = Linker::<PluginState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(PreinitError::Prepare)?;
    // Not `define_unknown_imports_as_traps`: it does not see that WASI imports of a newer
    // 0.2.x version are already satisfied (by semver) and shadows them with mismatching
    // stubs.
    deny_other_imports(engine, &mut linker, &compiled).map_err(PreinitError::Prepare)?;

    let limits = Limits::default();
    let mut store = init_store(runtime, &limits)?;
    let failed = |store: &Store<PluginState>, export: &str, error: wasmtime::Error| {
        let state = store.data();
        PreinitError::Init {
            call: init_call.to_owned(),
            source: Box::new(Error::from_call(
                INIT_INSTANCE,
                export,
                error,
                state.captured().stderr(),
                &limits,
            )),
        }
    };

    store.data_mut().limiter.start_call();
    store.set_epoch_deadline(1);
    let instance = match linker.instantiate_async(&mut store, &compiled).await {
        Ok(instance) => instance,
        Err(error) => return Err(failed(&store, crate::error::INSTANTIATION, error)),
    };
    let Some(func) = instance.get_func(&mut store, index) else {
        return Err(invalid("the export is not a function".to_owned()));
    };
    store.data_mut().limiter.start_call();
    store.set_epoch_deadline(1);
    if let Err(error) = func.call_async(&mut store, &params, &mut results).await {
        return Err(failed(&store, call.name(), error));
    }

    // The snapshot reads the instance through accessors that wizer added; they must not be
    // interrupted (wizer treats their failure as a bug), so the deadline is lifted.
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1)));
    let snapshot = wizer
        .snapshot_component(
            &context,
            &mut WasmtimeWizerComponent {
                store: &mut store,
                instance,
            },
        )
        .await
        .map_err(PreinitError::Snapshot)?;
    // An optimisation only: if it fails, the snapshot as wizer wrote it is still correct.
    match data_segments::compact(&snapshot) {
        Ok((compacted, stats)) => {
            tracing::debug!(
                before = stats.segments_before,
                after = stats.segments_after,
                "removed the snapshot's empty passive data segments"
            );
            Ok(compacted)
        }
        Err(error) => {
            tracing::warn!(
                error = %crate::error::error_chain(&error),
                "kept the snapshot's data segments as they are"
            );
            Ok(snapshot)
        }
    }
}

/// The store of the init instance: no capabilities (stderr captured for error messages
/// only), the default limits, no host data.
fn init_store(runtime: &Runtime, limits: &Limits) -> Result<Store<PluginState>, PreinitError> {
    let capabilities = Capabilities::none().stderr(Stdio::Capture);
    let (wasi, captured) = capabilities
        .build_wasi(&Arc::from(INIT_INSTANCE))
        .map_err(|e| {
            PreinitError::Prepare(wasmtime::Error::msg(format!(
                "no WASI context for the init instance: {e}"
            )))
        })?;
    let state = PluginState::new(
        Arc::from(INIT_INSTANCE),
        Arc::new(PluginConfig::new()),
        None,
        wasi,
        captured,
        StoreLimiter::new(limits.clone(), runtime.config().epoch_tick),
        (),
    );
    let mut store = Store::new(runtime.engine(), state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_callback(StoreLimiter::on_epoch_tick);
    if runtime.config().fuel_metering {
        // Cannot fail: the engine meters fuel.
        let _ = store.set_fuel(u64::MAX);
    }
    Ok(store)
}

/// Links every import that is not WASI to a function that refuses the call with
/// [`CapabilityDenied`] (imported resources to a host type nobody can create).
fn deny_other_imports(
    engine: &Engine,
    linker: &mut Linker<PluginState>,
    component: &Component,
) -> wasmtime::Result<()> {
    fn deny(
        linker: &mut LinkerInstance<'_, PluginState>,
        name: &str,
        qualified: String,
    ) -> wasmtime::Result<()> {
        linker.func_new(name, move |_, _, _, _| {
            Err(wasmtime::Error::new(CapabilityDenied::new(format!(
                "`{qualified}` (the init instance gets no imports but WASI)"
            ))))
        })
    }
    /// The type of imported resources: the init instance never holds one.
    struct DeniedResource;

    for (import, item) in component.component_type().imports(engine) {
        if import.starts_with("wasi:") {
            continue;
        }
        match item.ty {
            types::ComponentItem::ComponentFunc(_) => {
                deny(&mut linker.root(), import, import.to_owned())?;
            }
            types::ComponentItem::ComponentInstance(instance) => {
                let mut linker_instance = linker.instance(import)?;
                for (name, item) in instance.exports(engine) {
                    match item.ty {
                        types::ComponentItem::ComponentFunc(_) => {
                            deny(&mut linker_instance, name, format!("{import}#{name}"))?;
                        }
                        types::ComponentItem::Resource(_) => {
                            linker_instance.resource(
                                name,
                                ResourceType::host::<DeniedResource>(),
                                |_, _| Ok(()),
                            )?;
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Finds the exported function `name`: a qualified item name
/// (`ns:pkg/iface.func@version`, or `iface.func`), or a bare function name that exactly one
/// function of the component or of its exported instances has.
fn resolve_export(
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<(ComponentExportIndex, types::ComponentFunc), String> {
    let as_function = |found: Option<(types::ComponentItem, ComponentExportIndex)>| match found {
        Some((types::ComponentItem::ComponentFunc(ty), index)) => Ok((index, ty)),
        Some(_) => Err(format!("the export `{name}` is not a function")),
        None => Err(format!(
            "the component exports no function `{name}`; its functions: {}",
            exported_functions(engine, component).join(", ")
        )),
    };
    if name.contains(['.', ':']) {
        let item: ItemName = name
            .parse()
            .map_err(|e| format!("`{name}` is not an item name: {e}"))?;
        return as_function(component.get_export(None, item));
    }
    let mut candidates = Vec::new();
    for (export, item) in component.component_type().exports(engine) {
        if export.starts_with(WIZER_EXPORTS) {
            continue;
        }
        match item.ty {
            types::ComponentItem::ComponentFunc(_) if export == name => {
                candidates.push((None, export.to_owned()));
            }
            types::ComponentItem::ComponentInstance(instance) => {
                if let Some(func) = instance.get_export(engine, name)
                    && matches!(func.ty, types::ComponentItem::ComponentFunc(_))
                {
                    candidates.push((Some(export.to_owned()), format!("{export}#{name}")));
                }
            }
            _ => {}
        }
    }
    match candidates.as_slice() {
        [] => as_function(None),
        [(None, _)] => as_function(component.get_export(None, name)),
        [(Some(instance), _)] => {
            let instance = component.get_export_index(None, instance.as_str());
            as_function(component.get_export(instance.as_ref(), name))
        }
        several => Err(format!(
            "more than one export has a function `{name}`: {}; qualify it, e.g. `ns:pkg/iface.{name}@version`",
            several
                .iter()
                .map(|(_, shown)| format!("`{shown}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Every exported function, as `name` or `instance#name`, for error messages.
fn exported_functions(engine: &Engine, component: &Component) -> Vec<String> {
    let mut names = Vec::new();
    for (export, item) in component.component_type().exports(engine) {
        if export.starts_with(WIZER_EXPORTS) {
            continue;
        }
        match item.ty {
            types::ComponentItem::ComponentFunc(_) => names.push(export.to_owned()),
            types::ComponentItem::ComponentInstance(instance) => {
                for (func, item) in instance.exports(engine) {
                    if matches!(item.ty, types::ComponentItem::ComponentFunc(_)) {
                        names.push(format!("{export}#{func}"));
                    }
                }
            }
            _ => {}
        }
    }
    if names.is_empty() {
        names.push("none".to_owned());
    }
    names
}
