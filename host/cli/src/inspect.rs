//! `witplug inspect`: what a component imports and exports, and what it says it is.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::output::outln;
use clap::Args;
use witplug::component::{is_core_module, read_wasm_file};
use witplug::worlds::preview1;
use witplug::{
    AggregatorPlugin, BuiltinWorld, LoadedComponent, Plugin, PluginOptions, Runtime,
    TransformPlugin,
};

/// Show a component's (or a preview1 program's) imports and exports, the built-in world
/// it implements and, for a witplug plugin, its description.
///
/// Example:
///   witplug inspect target/guests/rust-email-normalizer.wasm
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct InspectArgs {
    /// The component or preview1 program (.wasm).
    #[arg(value_name = "FILE")]
    component: PathBuf,
}

pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new()?;
    let bytes = read_wasm_file(&args.component)?;
    if is_core_module(&bytes) {
        return inspect_module(&runtime, &bytes, &args.component);
    }
    let component = LoadedComponent::from_bytes(&runtime, &bytes, &args.component)?;
    outln!("component: {}", args.component.display())?;
    list("imports", &component.import_names())?;
    list("exports", &component.export_names())?;
    let options = PluginOptions::default;
    let world = BuiltinWorld::of(&component);
    // The names fit a world; whether the signatures do too shows only when linking.
    let described = match world {
        Some(BuiltinWorld::Transform) => {
            match TransformPlugin::new(&runtime, &component, options()).await {
                Ok(plugin) => Some(plugin.describe().await),
                Err(error) => Some(Err(error)),
            }
        }
        Some(BuiltinWorld::Aggregator) => {
            match Plugin::new(&runtime, &component, options()).await {
                Ok(plugin) => Some(AggregatorPlugin::from(plugin).describe().await),
                Err(error) => Some(Err(error)),
            }
        }
        Some(BuiltinWorld::Command) | None => None,
    };
    let (info, failure) = match described {
        Some(Ok(info)) => (Some(info), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    match world {
        Some(world) if failure.is_some() => {
            outln!(
                "world: looks like {}, but does not implement it",
                world.name_of(&component)
            )?;
            if let Some(error) = &failure {
                outln!("  {}", witplug::error_chain(error))?;
            }
        }
        Some(world) => {
            outln!("world: {}", world.name_of(&component))?;
            outln!("  runs with {}", world.runner())?;
        }
        None => {
            outln!("world: none of the built-in worlds")?;
            for world in BuiltinWorld::ALL {
                let reasons = world.mismatches(&component).join("; ");
                outln!("  not {}: {reasons}", world.name())?;
            }
        }
    }
    if let Some(info) = info {
        outln!("plugin: {} {}", info.name, info.version)?;
        outln!("  {}", info.description)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A core module: a preview1 program if it links against WASI preview1 and has `_start`.
fn inspect_module(
    runtime: &Runtime,
    bytes: &[u8],
    path: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let module = wasmtime::Module::new(runtime.engine(), bytes).map_err(|e| {
        witplug::LoadError::Invalid {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        }
    })?;
    outln!("core module: {}", path.display())?;
    list("imports", &preview1::import_names(&module))?;
    list("exports", &preview1::export_names(&module))?;
    match witplug::Preview1Program::from_bytes(runtime, bytes, path, PluginOptions::default()) {
        Ok(_) => {
            outln!("world: {}", preview1::WORLD)?;
            outln!("  runs with `witplug run` (not as a plugin: plugins are components)")?;
        }
        Err(error) => outln!(
            "world: not a preview1 program: {}",
            witplug::error::error_chain(&error)
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

fn list(title: &str, names: &[String]) -> std::io::Result<()> {
    outln!("{title}:")?;
    for name in names {
        outln!("  {name}")?;
    }
    Ok(())
}
