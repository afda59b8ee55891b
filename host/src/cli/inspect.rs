//! `witplug inspect`: what a component imports and exports, and what it says it is.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::outln;
use clap::Args;
use witplug::{AggregatorPlugin, LoadedComponent, Plugin, PluginOptions, Runtime, TransformPlugin};

/// Show a component's imports and exports, and its description if it is a witplug plugin.
///
/// Example:
///   witplug inspect target/guests/rust-email-normalizer.wasm
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct InspectArgs {
    /// The component file (.wasm).
    component: PathBuf,
}

pub async fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new()?;
    let component = LoadedComponent::from_file(&runtime, &args.component)?;
    outln!("component: {}", args.component.display())?;
    outln!("imports:")?;
    for name in component.import_names() {
        outln!("  {name}")?;
    }
    outln!("exports:")?;
    for name in component.export_names() {
        outln!("  {name}")?;
    }
    let options = PluginOptions::default;
    let info = if let Ok(plugin) = Plugin::new(&runtime, &component, options()).await {
        Some((
            "transform-plugin",
            TransformPlugin::from(plugin).describe().await?,
        ))
    } else if let Ok(plugin) = Plugin::new(&runtime, &component, options()).await {
        Some((
            "aggregator-plugin",
            AggregatorPlugin::from(plugin).describe().await?,
        ))
    } else {
        None
    };
    match info {
        Some((world, info)) => {
            outln!("world: witplug:plugin/{world}@0.1.0")?;
            outln!("plugin: {} {}", info.name, info.version)?;
            outln!("  {}", info.description)?;
        }
        None => outln!("world: not a built-in witplug plugin world")?,
    }
    Ok(ExitCode::SUCCESS)
}
