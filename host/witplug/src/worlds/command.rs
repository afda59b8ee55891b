//! Standard `wasi:cli/command` components, run like `wasmtime run`.

use std::path::Path;

use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::{Command, CommandPre};

use crate::engine::Runtime;
use crate::error::Error;
use crate::limits::within_wall_clock;
use crate::plugin::{Instance, Plugin, PluginOptions};
use crate::state::PluginState;

builtin_world!(
    Command,
    CommandPre<PluginState>,
    "wasi:cli/command@0.2",
    // A command imports nothing beyond WASI, which witplug always links.
    link: |_linker| Ok(())
);

const RUN: &str = "wasi:cli/run#run";

/// A loaded command component. Its arguments, environment, directories and stdio are the
/// capabilities granted in its [`PluginOptions`].
#[derive(Clone)]
pub struct CommandPlugin {
    plugin: Plugin<Command>,
}

impl From<Plugin<Command>> for CommandPlugin {
    fn from(plugin: Plugin<Command>) -> Self {
        Self { plugin }
    }
}

/// How a command run ended.
#[derive(Debug)]
pub struct CommandExit {
    /// 0 for success. Exact for a guest calling `wasi:cli/exit.exit-with-code`; through
    /// `exit(err)` (Rust's std, the preview1 adapter of Go guests) every failure is 1.
    pub code: i32,
    /// The finished instance, to read captured output from.
    pub instance: Instance<Command>,
}

impl CommandPlugin {
    pub async fn load(
        runtime: &Runtime,
        path: impl AsRef<Path>,
        options: PluginOptions,
    ) -> Result<Self, Error> {
        Plugin::load(runtime, path, options).await.map(Self::from)
    }

    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Runs the command's `wasi:cli/run` export in a fresh instance.
    pub async fn run(&self) -> Result<CommandExit, Error> {
        // The deadline is wall-clock time of the whole run, instantiation and blocked host
        // calls included: one budget, as for preview1 programs.
        let timeout = self.plugin.limits().call_timeout;
        match within_wall_clock(timeout, self.instantiate_and_run()).await {
            Ok(exit) => exit,
            Err(timeout) => Err(Error::Timeout {
                plugin: self.name().to_owned(),
                export: RUN.to_owned(),
                timeout,
            }),
        }
    }

    async fn instantiate_and_run(&self) -> Result<CommandExit, Error> {
        let mut instance = self.plugin.instantiate().await?;
        let (bindings, store) = instance.parts()?;
        let result = bindings.wasi_cli_run().call_run(store).await;
        let code = match result {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            // `exit(n)` unwinds the guest with this error: not a fault, just the status.
            Err(error) => match error.downcast_ref::<I32Exit>() {
                Some(exit) => exit.0,
                None => return Err(instance.fail(RUN, error)),
            },
        };
        Ok(CommandExit { code, instance })
    }
}
