//! `witplug publish`: make a component the active version of a plugin for every worker.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use witplug::Runtime;
use witplug_nats::Registry;
use witplug_nats::jetstream as js;

use crate::output::outln;

/// Publish a transform plugin to the fleet: store it in the JetStream Object Store under
/// its SHA-256 and make it the active version of NAME. Workers started with
/// `nats:NAME` load it between batches. The component is loaded and type-checked first;
/// nothing is stored if that fails. Rolling back is publishing the old file again.
/// Prints the digest.
///
/// Example:
///   witplug publish email-normalizer.wasm --nats nats://127.0.0.1:4222 --name normalizer
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct PublishArgs {
    /// The transform plugin (.wasm).
    component: PathBuf,

    /// The plugin's name in the registry (letters, digits, `-`, `_`).
    #[arg(long)]
    name: String,

    /// NATS server URL.
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

pub async fn run(args: PublishArgs) -> anyhow::Result<ExitCode> {
    witplug_nats::registry::check_name(&args.name)?;
    let bytes = witplug::component::read_wasm_file(&args.component)?;
    let runtime = Runtime::new()?;
    let client = js::connect(&args.nats).await?;
    let registry = Registry::open(&async_nats::jetstream::new(client)).await?;
    let origin = args.component.display().to_string();
    let active = registry
        .publish(&runtime, &args.name, &bytes, &origin)
        .await?;
    tracing::info!(name = %args.name, plugin = %active.name, version = %active.version, "published");
    outln!("{}", active.digest)?;
    Ok(ExitCode::SUCCESS)
}
