//! The `transform-plugin` world: a business rule applied to batches of records.
//!
//! Two versions are hosted side by side, one frozen module each, as Zed's extension host
//! keeps its `since_vX_Y_Z` modules:
//! - [`since_v0_1_0`]: a batch is a `list<record>` (the host's record model itself);
//! - [`since_v0_2_0`]: the flat shape (names once, spans into one text), about twice as
//!   fast to cross; [`latest`] names it.
//!
//! [`TransformPlugin`] tells which one a component implements from its exports and
//! dispatches; callers see one API in the host's model ([`Record`](crate::Record) in,
//! [`Outcome`] out) whatever the version, so a pipeline can swap a 0.1.0 plugin for a
//! 0.2.0 one and back.
//!
//! The world is stateless from the host's point of view, so every call gets a fresh
//! instance unless the host opted into reuse: a trap, a leak or a corrupted heap in one
//! batch cannot reach the next.

use std::path::Path;

use super::PluginInfo;
use crate::component::LoadedComponent;
use crate::engine::Runtime;
use crate::error::Error;
use crate::limits::Limits;
use crate::plugin::{Plugin, PluginOptions};

pub mod since_v0_1_0;
pub mod since_v0_2_0;

/// The newest version of the world.
pub use since_v0_2_0 as latest;

/// The outcome of one record, in the host's model (0.1.0's types, which every version is
/// converted into).
pub use super::bindings::transform::exports::witplug::plugin::transformer::{Outcome, RecordError};

/// The 0.1.0 world type, under the name it had before 0.2.0 existed.
pub use since_v0_1_0::TransformWorld;

const PROCESS_BATCH: &str = "witplug:plugin/transformer#process-batch";

/// Which version of the world a component implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransformVersion {
    V0_1_0,
    V0_2_0,
}

impl TransformVersion {
    /// Every version this host runs, oldest first.
    pub const ALL: [TransformVersion; 2] = [TransformVersion::V0_1_0, TransformVersion::V0_2_0];

    /// The world's full name, e.g. `witplug:plugin/transform-plugin@0.2.0`.
    pub fn world_name(self) -> &'static str {
        use crate::plugin::World as _;
        match self {
            TransformVersion::V0_1_0 => since_v0_1_0::TransformWorld::NAME,
            TransformVersion::V0_2_0 => since_v0_2_0::TransformWorld::NAME,
        }
    }

    fn transformer_export(self) -> &'static str {
        match self {
            TransformVersion::V0_1_0 => since_v0_1_0::TRANSFORMER,
            TransformVersion::V0_2_0 => since_v0_2_0::TRANSFORMER,
        }
    }

    /// The version whose `transformer` interface `component` exports. A component that
    /// exports none (of another world, or broken) is taken as 0.1.0, so that what it
    /// lacks is reported against the world most plugins implement.
    pub fn of(component: &LoadedComponent) -> TransformVersion {
        let exports = component.raw_export_names();
        Self::ALL
            .into_iter()
            .rev()
            .find(|version| exports.iter().any(|e| e == version.transformer_export()))
            .unwrap_or(TransformVersion::V0_1_0)
    }
}

impl std::fmt::Display for TransformVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world_name())
    }
}

/// A loaded transform plugin of any version.
#[derive(Clone, Debug)]
pub struct TransformPlugin {
    version: Versioned,
}

#[derive(Clone, Debug)]
enum Versioned {
    V0_1_0(Plugin<since_v0_1_0::TransformWorld>),
    V0_2_0(Plugin<since_v0_2_0::TransformWorld>),
}

/// `$body` with `$plugin` bound to the generic plugin of whichever version it is.
macro_rules! each_version {
    ($self:expr, $plugin:ident => $body:expr) => {
        match &$self.version {
            Versioned::V0_1_0($plugin) => $body,
            Versioned::V0_2_0($plugin) => $body,
        }
    };
}

impl TransformPlugin {
    /// Reads, compiles and links a component file of any supported version.
    pub async fn load(
        runtime: &Runtime,
        path: impl AsRef<Path>,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        let component = LoadedComponent::from_file(runtime, path)?;
        Self::new(runtime, &component, options).await
    }

    /// Links `component` against the version of the world it implements
    /// ([`TransformVersion::of`]).
    pub async fn new(
        runtime: &Runtime,
        component: &LoadedComponent,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        Ok(match TransformVersion::of(component) {
            TransformVersion::V0_1_0 => {
                Plugin::<since_v0_1_0::TransformWorld>::new(runtime, component, options)
                    .await?
                    .into()
            }
            TransformVersion::V0_2_0 => {
                Plugin::<since_v0_2_0::TransformWorld>::new(runtime, component, options)
                    .await?
                    .into()
            }
        })
    }

    pub fn name(&self) -> &str {
        each_version!(self, plugin => plugin.name())
    }

    /// The version of the world the plugin implements.
    pub fn version(&self) -> TransformVersion {
        match self.version {
            Versioned::V0_1_0(_) => TransformVersion::V0_1_0,
            Versioned::V0_2_0(_) => TransformVersion::V0_2_0,
        }
    }

    /// Instances created so far (the load-time probe included), for monitoring.
    pub fn instantiations(&self) -> u64 {
        each_version!(self, plugin => plugin.instantiations())
    }

    /// The limits every instance of this plugin runs under.
    pub fn limits(&self) -> &Limits {
        each_version!(self, plugin => plugin.limits())
    }

    /// The plugin's own description.
    pub async fn describe(&self) -> Result<PluginInfo, Error> {
        each_version!(self, plugin => describe_via!(plugin))
    }

    /// Runs one batch through the rule, in a fresh instance unless reuse was granted.
    /// Returns one outcome per input record, in order; a guest that answers otherwise
    /// (or, on 0.2.0, whose answer points anywhere it may not) gets [`Error::Contract`].
    pub async fn process_batch(&self, batch: &[super::Record]) -> Result<Vec<Outcome>, Error> {
        match &self.version {
            Versioned::V0_1_0(plugin) => {
                let mut instance = plugin.checkout().await?;
                let outcomes = since_v0_1_0::process_batch(&mut instance, batch).await?;
                plugin.checkin(instance);
                Ok(outcomes)
            }
            Versioned::V0_2_0(plugin) => {
                let mut instance = plugin.checkout().await?;
                let max_answer_bytes = plugin.limits().max_transfer_bytes;
                let outcomes =
                    since_v0_2_0::process_batch(&mut instance, batch, max_answer_bytes).await?;
                plugin.checkin(instance);
                Ok(outcomes)
            }
        }
    }
}

impl From<Plugin<since_v0_1_0::TransformWorld>> for TransformPlugin {
    fn from(plugin: Plugin<since_v0_1_0::TransformWorld>) -> Self {
        Self {
            version: Versioned::V0_1_0(plugin),
        }
    }
}

impl From<Plugin<since_v0_2_0::TransformWorld>> for TransformPlugin {
    fn from(plugin: Plugin<since_v0_2_0::TransformWorld>) -> Self {
        Self {
            version: Versioned::V0_2_0(plugin),
        }
    }
}
