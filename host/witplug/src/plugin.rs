//! Plugins and their instances, for any world.
//!
//! A [`Plugin`] is a component linked and type-checked against a [`World`] once (an
//! `InstancePre`), plus the capabilities and configuration granted to it. An [`Instance`] is
//! one instantiation of it with its own `Store`: the unit of isolation. Stateless worlds take
//! a fresh instance per call; stateful worlds keep one for as long as their state lives.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::{InstancePre, Linker};

use crate::capabilities::{Capabilities, Stdio};
use crate::component::{LoadedComponent, list_or_nothing};
use crate::engine::Runtime;
use crate::error::{Error, LoadError};
use crate::limits::{Limits, StoreLimiter, within_call_timeout};
use crate::policy::{Policy, PolicyError};
use crate::state::{LogSink, PluginConfig, PluginState};

/// The store of one instance.
pub type PluginStore<D> = Store<PluginState<D>>;

/// A WIT world the host can instantiate: what a `bindgen!`-generated world type needs to
/// be hosted by witplug. The built-in worlds implement it in `worlds/`; framework authors
/// implement it for their own `bindgen!` output, as below (compiled, not run); a world whose
/// host import checks a capability, run by the tests, is in `host/cli/tests/all/custom_world.rs`.
///
/// witplug runs every instantiation and call asynchronously (deadlines, async WASI), so
/// `bindgen!` needs `exports: { default: async }`. Calls go through [`Instance::call`].
///
/// ```no_run
/// use witplug::wasmtime::{self, Store};
/// use witplug::wasmtime::component::{HasSelf, InstancePre, Linker};
/// use witplug::{Error, LoadedComponent, Plugin, PluginOptions, PluginState, Runtime, World};
///
/// witplug::wasmtime::component::bindgen!({
///     inline: "
///         package acme:greeter@0.1.0;
///         interface salutation { word: func() -> string; }
///         world greeter {
///             import salutation;
///             export greet: func(name: string) -> string;
///         }
///     ",
///     wasmtime_crate: witplug::wasmtime,
///     exports: { default: async },
/// });
///
/// /// The host state behind the world's import.
/// pub struct Salutation(String);
///
/// impl acme::greeter::salutation::Host for Salutation {
///     fn word(&mut self) -> String {
///         self.0.clone()
///     }
/// }
///
/// impl World for Greeter {
///     const NAME: &'static str = "acme:greeter/greeter@0.1.0";
///     type Data = Salutation;
///     type Pre = GreeterPre<PluginState<Salutation>>;
///
///     fn add_to_linker(linker: &mut Linker<PluginState<Salutation>>) -> wasmtime::Result<()> {
///         Greeter::add_to_linker::<_, HasSelf<Salutation>>(linker, |state| &mut state.data)
///     }
///
///     fn prepare(pre: InstancePre<PluginState<Salutation>>) -> wasmtime::Result<Self::Pre> {
///         GreeterPre::new(pre)
///     }
///
///     async fn instantiate(
///         pre: &Self::Pre,
///         store: &mut Store<PluginState<Salutation>>,
///     ) -> wasmtime::Result<Self> {
///         pre.instantiate_async(store).await
///     }
/// }
///
/// # async fn demo() -> Result<(), Error> {
/// let runtime = Runtime::new()?;
/// let component = LoadedComponent::from_file(&runtime, "greeter.wasm")?;
/// let plugin: Plugin<Greeter> = Plugin::with_data(
///     &runtime,
///     &component,
///     PluginOptions::default().name("greeter"),
///     || Salutation("Hello".to_owned()),
/// )
/// .await?;
/// let mut instance = plugin.instantiate().await?;
/// let greeting = instance
///     .call("greet", async |bindings, store| bindings.call_greet(store, "Ada").await)
///     .await?;
/// # Ok(())
/// # }
/// ```
pub trait World: Sized + Send + Sync + 'static {
    /// The world's full name, for error messages, e.g. `witplug:plugin/transform-plugin@0.1.0`.
    const NAME: &'static str;

    /// Host state this world's imports need, kept in [`PluginState::data`].
    type Data: Send + 'static;

    /// The generated `<World>Pre<PluginState<Self::Data>>`.
    type Pre: Clone + Send + Sync + 'static;

    /// Adds the world's own imports. WASI is added by witplug (and then restricted by the
    /// plugin's [`Capabilities`]).
    fn add_to_linker(linker: &mut Linker<PluginState<Self::Data>>) -> wasmtime::Result<()>;

    /// Type-checks the exports once, ahead of every instantiation.
    fn prepare(pre: InstancePre<PluginState<Self::Data>>) -> wasmtime::Result<Self::Pre>;

    fn instantiate(
        pre: &Self::Pre,
        store: &mut Store<PluginState<Self::Data>>,
    ) -> impl Future<Output = wasmtime::Result<Self>> + Send;
}

/// Whether an instance of a stateless world may serve more than one call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InstanceReuse {
    /// A fresh instance per call: nothing a guest keeps survives its call. The default.
    #[default]
    Never,
    /// Reuse a healthy instance for up to `max_calls` calls. Saves the instantiation, but
    /// what the guest keeps in memory survives into later calls (of any caller): only
    /// for plugins that are trusted not to carry data between calls.
    UpTo { max_calls: u32 },
}

/// Idle instances kept for reuse, per plugin, at most this many.
const MAX_IDLE_INSTANCES: usize = 64;

/// What is granted to a plugin and how it is named.
#[derive(Clone, Default)]
pub struct PluginOptions {
    /// Name used in logs and errors; defaults to the component file's stem.
    pub name: Option<String>,
    pub capabilities: Capabilities,
    pub config: PluginConfig,
    pub log_sink: Option<LogSink>,
    pub limits: Limits,
    pub reuse: InstanceReuse,
}

impl PluginOptions {
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    pub fn config(mut self, config: PluginConfig) -> Self {
        self.config = config;
        self
    }

    pub fn log_sink(mut self, sink: LogSink) -> Self {
        self.log_sink = Some(sink);
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn reuse(mut self, reuse: InstanceReuse) -> Self {
        self.reuse = reuse;
        self
    }

    /// Applies a policy file's settings: its directories, environment variables and
    /// configuration are added to these options' (a guest path, variable or key given in
    /// both is an error), its streams and limits replace these where it sets them.
    pub fn policy(mut self, policy: &Policy) -> Result<Self, PolicyError> {
        self.capabilities = policy.apply_grants(std::mem::take(&mut self.capabilities))?;
        self.config = policy.apply_config(std::mem::take(&mut self.config))?;
        self.limits = policy.apply_limits(std::mem::take(&mut self.limits));
        Ok(self)
    }
}

/// A component ready to be instantiated as world `W`. Cheap to clone; share it freely.
pub struct Plugin<W: World> {
    inner: Arc<PluginInner<W>>,
}

struct PluginInner<W: World> {
    runtime: Runtime,
    name: Arc<str>,
    pre: W::Pre,
    capabilities: Capabilities,
    config: Arc<PluginConfig>,
    log_sink: Option<LogSink>,
    limits: Limits,
    reuse: InstanceReuse,
    idle: Mutex<Vec<Instance<W>>>,
    instantiations: AtomicU64,
    make_data: Box<dyn Fn() -> W::Data + Send + Sync>,
    exports: Arc<BTreeSet<String>>,
}

// By hand: the configuration and capabilities may hold secrets (keys, environment values),
// so only what names the plugin and bounds it is shown.
impl<W: World> std::fmt::Debug for Plugin<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Plugin")
            .field("name", &inner.name)
            .field("world", &W::NAME)
            .field("limits", &inner.limits)
            .field("reuse", &inner.reuse)
            .field("instantiations", &self.instantiations())
            .finish_non_exhaustive()
    }
}

impl<W: World> std::fmt::Debug for Instance<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("plugin", &self.store.data().plugin())
            .field("world", &W::NAME)
            .field("calls", &self.calls)
            .field("poisoned_by", &self.poisoned_by)
            .finish_non_exhaustive()
    }
}

impl<W: World> Clone for Plugin<W> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<W: World> Plugin<W>
where
    W::Data: Default,
{
    /// Links `component` against `W`; each instance starts with `W::Data::default()`.
    pub async fn new(
        runtime: &Runtime,
        component: &LoadedComponent,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        Self::with_data(runtime, component, options, W::Data::default).await
    }

    /// Reads, compiles and links a component file.
    pub async fn load(
        runtime: &Runtime,
        path: impl AsRef<std::path::Path>,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        let component = LoadedComponent::from_file(runtime, path)?;
        Self::new(runtime, &component, options).await
    }
}

impl<W: World> Plugin<W> {
    /// Links `component` against `W`; `make_data` gives each new instance its host state.
    ///
    /// Imports and the presence of exports are checked against `W` without running
    /// anything; export signatures can only be checked on an instance, so one probe
    /// instance is made (with no capabilities at all) and dropped.
    pub async fn with_data(
        runtime: &Runtime,
        component: &LoadedComponent,
        options: PluginOptions,
        make_data: impl Fn() -> W::Data + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let mismatch = |reason: wasmtime::Error| LoadError::WorldMismatch {
            path: component.path().to_path_buf(),
            world: W::NAME,
            reason: format!("{reason:#}"),
            exports: list_or_nothing(&component.export_names()),
            imports: list_or_nothing(&component.import_names()),
        };
        options.limits.validate()?;
        if options.limits.fuel_per_call.is_some() && !runtime.config().fuel_metering {
            return Err(Error::InvalidLimits(
                "`fuel_per_call` needs a runtime created with `fuel_metering` on",
            ));
        }
        let mut linker = Linker::new(runtime.engine());
        // Failing to build the linker is a bug in witplug or in the world's glue, not in
        // the component; report it as an engine problem.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(Error::Engine)?;
        W::add_to_linker(&mut linker).map_err(Error::Engine)?;
        let instance_pre = match linker.instantiate_pre(component.component()) {
            Ok(instance_pre) => instance_pre,
            Err(imports) => {
                // A component of another world fails on its imports first; what it lacks
                // of the world's exports is the more telling half, so it is said first.
                let reason = match exports_fit::<W>(runtime, component) {
                    Ok(()) => imports,
                    Err(exports) => wasmtime::Error::msg(format!(
                        "{exports:#}; and its imports do not fit either: {imports:#}"
                    )),
                };
                return Err(mismatch(reason).into());
            }
        };
        let pre = W::prepare(instance_pre).map_err(mismatch)?;
        let name: Arc<str> = options
            .name
            .unwrap_or_else(|| {
                component
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "plugin".to_owned())
            })
            .into();
        let plugin = Self {
            inner: Arc::new(PluginInner {
                runtime: runtime.clone(),
                name,
                pre,
                capabilities: options.capabilities,
                config: Arc::new(options.config),
                log_sink: options.log_sink,
                limits: options.limits,
                reuse: options.reuse,
                idle: Mutex::new(Vec::new()),
                instantiations: AtomicU64::new(0),
                make_data: Box::new(make_data),
                exports: Arc::new(component.call_names()),
            }),
        };
        match plugin.instantiate_with(&Capabilities::none(), None).await {
            Ok(_) => Ok(plugin),
            Err(Error::Instantiate { source, .. })
                if source.downcast_ref::<wasmtime::Trap>().is_none() =>
            {
                Err(mismatch(source).into())
            }
            Err(error) => Err(error),
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The limits every instance of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Instances created so far (the load-time probe included), for monitoring.
    pub fn instantiations(&self) -> u64 {
        self.inner.instantiations.load(Ordering::Relaxed)
    }

    /// Creates a new instance with its own store and a fresh WASI context built from the
    /// plugin's capabilities.
    pub async fn instantiate(&self) -> Result<Instance<W>, Error> {
        let inner = &*self.inner;
        self.instantiate_with(&inner.capabilities, inner.log_sink.clone())
            .await
    }

    /// An instance for one call of a stateless world: an idle one when the plugin's
    /// [`InstanceReuse`] allows, else a new one. Give it back with [`Plugin::checkin`].
    pub async fn checkout(&self) -> Result<Instance<W>, Error> {
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(instance) => Ok(instance),
            None => self.instantiate().await,
        }
    }

    /// Takes back an instance after a successful call; keeps it for reuse if the policy
    /// allows and it is healthy, else drops it.
    pub fn checkin(&self, mut instance: Instance<W>) {
        let InstanceReuse::UpTo { max_calls } = self.inner.reuse else {
            return;
        };
        instance.calls += 1;
        if instance.poisoned_by.is_some() || instance.calls >= max_calls {
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock()
            && idle.len() < MAX_IDLE_INSTANCES
        {
            idle.push(instance);
        }
    }

    async fn instantiate_with(
        &self,
        capabilities: &Capabilities,
        log_sink: Option<LogSink>,
    ) -> Result<Instance<W>, Error> {
        let inner = &*self.inner;
        inner.instantiations.fetch_add(1, Ordering::Relaxed);
        let (wasi, captured) = capabilities.build_wasi(&inner.name)?;
        let state = PluginState::new(
            inner.name.clone(),
            inner.config.clone(),
            log_sink,
            wasi,
            captured,
            StoreLimiter::new(inner.limits.clone(), inner.runtime.config().epoch_tick),
            (inner.make_data)(),
        )
        .with_world_grants(capabilities.world_grants());
        let mut store = Store::new(inner.runtime.engine(), state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(StoreLimiter::on_epoch_tick);
        store.set_hostcall_fuel(inner.limits.hostcall_fuel());
        let fuel = inner
            .runtime
            .config()
            .fuel_metering
            .then(|| inner.limits.fuel_per_call.unwrap_or(u64::MAX));
        start_call(&mut store, fuel);
        // Start functions may block in host calls, where no epoch check is reached.
        let instantiation = W::instantiate(&inner.pre, &mut store);
        let bindings = match within_call_timeout(inner.limits.call_timeout, instantiation).await {
            Ok(bindings) => bindings,
            Err(error) => {
                // Limits apply to instantiation too (initial memory, start functions).
                let stderr = None;
                return Err(
                    match Error::from_call(
                        &inner.name,
                        crate::error::INSTANTIATION,
                        error,
                        stderr,
                        &inner.limits,
                    ) {
                        Error::Call { plugin, source, .. } => Error::Instantiate { plugin, source },
                        error => error,
                    },
                );
            }
        };
        Ok(Instance {
            store,
            bindings,
            fuel,
            calls: 0,
            poisoned_by: None,
            capture_stderr: capabilities.stderr_policy() == Stdio::Capture,
            exports: inner.exports.clone(),
        })
    }
}

/// Resets the per-call budget: deadline, epoch check and fuel.
fn start_call<D>(store: &mut PluginStore<D>, fuel: Option<u64>) {
    store.data_mut().limiter.start_call();
    store.set_epoch_deadline(1);
    if let Some(fuel) = fuel {
        // Cannot fail: `fuel` is only `Some` when the engine meters fuel.
        let _ = store.set_fuel(fuel);
    }
}

/// Whether `component` has every export `W` needs, whatever it imports (an import the host
/// does not offer is stubbed with a trap; nothing is instantiated).
fn exports_fit<W: World>(runtime: &Runtime, component: &LoadedComponent) -> wasmtime::Result<()> {
    // The real imports first, so that exports using imported resources type-check; stubs
    // only for what is missing. A failure before `prepare` tells nothing about the exports.
    let mut linker = Linker::<PluginState<W::Data>>::new(runtime.engine());
    let stubbed = wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .and_then(|()| W::add_to_linker(&mut linker))
        .and_then(|()| linker.define_unknown_imports_as_traps(component.component()))
        .and_then(|()| linker.instantiate_pre(component.component()));
    match stubbed {
        Ok(instance_pre) => W::prepare(instance_pre).map(drop),
        Err(_) => Ok(()),
    }
}

/// One instance of a plugin: its bindings and the `Store` that owns its memory and state.
/// Dropping it frees everything the guest held.
pub struct Instance<W: World> {
    store: Store<PluginState<W::Data>>,
    bindings: W,
    /// Fuel each call starts with, when the runtime meters fuel.
    fuel: Option<u64>,
    /// Calls served, for [`InstanceReuse::UpTo`].
    calls: u32,
    /// The export that failed, once one has: a failed instance is never entered again.
    poisoned_by: Option<String>,
    capture_stderr: bool,
    /// What `call` may name: the component's exports (`LoadedComponent::call_names`).
    exports: Arc<BTreeSet<String>>,
}

impl<W: World> Instance<W> {
    /// The wall-clock time one call may take (see [`Limits::call_timeout`]); read it before
    /// [`Instance::parts`] borrows the store.
    pub(crate) fn call_timeout(&self) -> Option<std::time::Duration> {
        self.store.data().limiter.limits().call_timeout
    }

    /// Makes one typed call to `export`: `call` gets the bindings and the store, and the
    /// whole call runs under the plugin's [`Limits::call_timeout`] and fuel. A failure comes
    /// back as a typed [`Error`] naming `export`, and poisons the instance (a guest unwound
    /// mid-call is never entered again). Refused once a call of the instance has failed,
    /// and when the component has no export `export` ([`Error::UnknownExport`]: names are
    /// as [`LoadedComponent::call_names`] lists them). An example is on [`World`].
    ///
    /// The entry point for every call: [`Instance::parts`] and [`Instance::finish`] are its
    /// two halves, for the rare call that needs the store between them.
    pub async fn call<R>(
        &mut self,
        export: &str,
        call: impl AsyncFnOnce(&W, &mut PluginStore<W::Data>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        if !self.exports.contains(export) {
            return Err(Error::UnknownExport {
                plugin: self.store.data().plugin().to_owned(),
                export: export.to_owned(),
                exports: list_or_nothing(&self.exports.iter().cloned().collect::<Vec<_>>()),
            });
        }
        let timeout = self.call_timeout();
        let (bindings, store) = self.parts()?;
        let result = within_call_timeout(timeout, call(bindings, store)).await;
        self.finish(export, result)
    }

    /// The bindings and the store, for one typed call; follow it with [`Instance::finish`].
    /// Prefer [`Instance::call`], which cannot forget the deadline or the `finish`.
    /// Refused once a call of the instance has failed.
    pub fn parts(&mut self) -> Result<(&W, &mut PluginStore<W::Data>), Error> {
        if let Some(export) = &self.poisoned_by {
            return Err(Error::Poisoned {
                plugin: self.store.data().plugin().to_owned(),
                export: export.clone(),
            });
        }
        start_call(&mut self.store, self.fuel);
        Ok((&self.bindings, &mut self.store))
    }

    /// Turns the raw result of a call to `export` into a typed [`Error`]. A failure poisons
    /// the instance. [`Instance::call`] does this for you.
    pub fn finish<R>(&mut self, export: &str, result: wasmtime::Result<R>) -> Result<R, Error> {
        result.map_err(|error| self.fail(export, error))
    }

    /// Classifies a failed call to `export`; see [`Instance::finish`].
    pub fn fail(&mut self, export: &str, error: wasmtime::Error) -> Error {
        let state = self.store.data();
        let stderr = if self.capture_stderr {
            state.captured().stderr()
        } else {
            None
        };
        let error = Error::from_call(
            state.plugin(),
            export,
            error,
            stderr,
            state.limiter.limits(),
        );
        // The guest was unwound mid-call (trap, limit, host error): its state may be
        // half-updated, so it is never entered again.
        self.poisoned_by = Some(export.to_owned());
        error
    }

    /// A contract violation by the guest, attributed to this instance's plugin.
    pub fn contract_error(&self, export: &str, message: impl Into<String>) -> Error {
        Error::Contract {
            plugin: self.store.data().plugin().to_owned(),
            export: export.to_owned(),
            message: message.into(),
        }
    }

    pub fn state(&self) -> &PluginState<W::Data> {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut PluginState<W::Data> {
        self.store.data_mut()
    }
}
