//! `witplug run`: a `wasi:cli/command` component, like `wasmtime run`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use witplug::{Capabilities, CommandPlugin, DirGrant, PluginOptions, Stdio};

/// Run a `wasi:cli/command` component; its exit code and stdio pass through.
///
/// Examples:
///   witplug run filetool.wasm --dir ./data::/data:ro -- count /data/notes.txt
///   witplug run app.wasm --env HOME --env MODE=fast -- --flag value
///   witplug run app.wasm --max-memory 64 --timeout-ms 2000
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The component file (.wasm).
    component: PathBuf,

    /// Grant a host directory: HOST[::GUEST][:ro|:rw] (read-write unless `:ro`).
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    dirs: Vec<DirGrant>,

    /// Grant an environment variable: NAME passes the host's value, NAME=VALUE sets one.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    envs: Vec<String>,

    #[command(flatten)]
    engine: super::engine_args::EngineArgs,

    /// Arguments for the component (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let program = args
        .component
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut capabilities = Capabilities::none()
        .args(std::iter::once(program).chain(args.args))
        .stdin(Stdio::Inherit)
        .stdout(Stdio::Inherit)
        .stderr(Stdio::Inherit);
    for grant in args.dirs {
        capabilities = capabilities.dir(grant)?;
    }
    for spec in &args.envs {
        capabilities = capabilities.env_spec(spec)?;
    }
    let runtime = args.engine.runtime()?;
    let command = CommandPlugin::load(
        &runtime,
        &args.component,
        PluginOptions::default()
            .capabilities(capabilities)
            .limits(args.engine.limits()),
    )
    .await?;
    let exit = command
        .run()
        .await
        .with_context(|| format!("running {}", args.component.display()))?;
    // Exit statuses are 0..=255 on Unix; anything else is reported as plain failure.
    Ok(u8::try_from(exit.code)
        .map(ExitCode::from)
        .unwrap_or(ExitCode::FAILURE))
}
