//! Host side of the interfaces witplug gives to its plugins: `logging` and `config`.
//!
//! Implemented once on [`PluginState`] for any world data `D`, so every world that imports
//! them (built-in or a framework author's, through `with:`) shares this code.

use crate::state::{LogLevel, PluginState};

/// `logging` and `config` of one package version: every version declares the same two
/// interfaces, and each gets its own generated traits.
macro_rules! host_services {
    ($package:path) => {
        use $package::{config, logging, types};

        impl<D: Send> logging::Host for PluginState<D> {
            fn log(
                &mut self,
                level: logging::Level,
                message: String,
                fields: Vec<(String, String)>,
            ) {
                let level = match level {
                    logging::Level::Trace => LogLevel::Trace,
                    logging::Level::Debug => LogLevel::Debug,
                    logging::Level::Info => LogLevel::Info,
                    logging::Level::Warn => LogLevel::Warn,
                    logging::Level::Error => LogLevel::Error,
                };
                PluginState::log(self, level, message, fields);
            }
        }

        impl<D: Send> config::Host for PluginState<D> {
            fn get(&mut self, key: String) -> Option<String> {
                self.config().get(&key).map(str::to_owned)
            }

            fn entries(&mut self) -> Vec<(String, String)> {
                self.config()
                    .entries()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            }
        }

        impl<D: Send> types::Host for PluginState<D> {}
    };
}

mod v0_1_0 {
    use super::*;
    host_services!(crate::worlds::bindings::transform::witplug::plugin);
}

mod v0_2_0 {
    use super::*;
    host_services!(crate::worlds::bindings::transform_v0_2_0::witplug::plugin);
}
