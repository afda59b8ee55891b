//! `witplug run`: a `wasi:cli/command` component or a preview1 program, like `wasmtime run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use witplug::component::{is_core_module, read_wasm_file};
use witplug::{
    BuiltinWorld, CommandPlugin, Error, LoadedComponent, Plugin, PluginOptions, Preview1Program,
    Stdio,
};

use crate::output::errln;
use crate::policy_args::{PolicyArgs, Streams, USAGE_EXIT, is_usage_error};

/// Exit status when the program trapped, hit a limit or its deadline, or failed otherwise
/// once it had started (as `wasmtime run` does for a trap: 128 + SIGABRT).
const RUN_FAILED_EXIT: u8 = 134;

/// Exit status when witplug could not load, link or grant what it was asked to.
const LOAD_FAILED_EXIT: u8 = 1;

/// Run a `wasi:cli/command` component or a preview1 program; its exit status and stdio
/// pass through.
///
/// FILE is either a component (built for wasm32-wasip2) or a preview1 core module (built
/// for wasm32-wasip1, e.g. `GOOS=wasip1 GOARCH=wasm go build`); the latter runs on
/// wasmtime-wasi's own preview1 implementation, as `wasmtime run` runs it. Both get nothing
/// but what the flags grant: no files, no environment, no network.
///
/// Defaults differ from `wasmtime run`'s: 256 MiB of linear memory and a 10 s deadline
/// (`--max-memory`, `--timeout-ms`). The deadline is wall-clock time of the program's run,
/// time it spends blocked (reading stdin, sleeping) included: a blocked program is stopped
/// too. Its stdin, stdout and stderr are inherited unless `--stdin`/`--stdout`/`--stderr`
/// or the policy file say otherwise.
///
/// `--policy FILE` reads grants and limits from a TOML file ([grants] dirs, env, stdin,
/// stdout, stderr; [limits] max-memory-mib, timeout-ms, fuel, max-transfer-mib; see the
/// README). Flags add to its grants (a guest path or variable in both is an error) and
/// replace its limits. A command takes no plugin configuration: `--config` or [config]
/// is refused.
///
/// Exit status:
///   N     the program's own status: a component's `exit-with-code(N)` (WASI 0.2.12), or 0/1
///         for its `exit(ok/err)` (Rust's std and the preview1 adapter, through which Go
///         components run, use this one: every failure arrives as 1); a preview1 program's
///         `proc_exit(N)` (0..=125, what preview1 allows)
///   134   the program trapped, ran out of time, memory or fuel, or failed once started
///   1     witplug could not read, compile, link or grant it (nothing ran)
///   2     bad command line, or a policy file that is not a valid policy
///
/// Examples:
///   witplug run filetool.wasm --dir ./data::/data:ro -- count /data/notes.txt
///   witplug run app.wasm --env HOME --env MODE=fast -- --flag value
///   witplug run app.wasm --max-memory 64 --timeout-ms 2000
///   witplug run app.wasm --policy app-policy.toml -- --flag value
#[derive(Args)]
#[command(verbatim_doc_comment)]
pub struct RunArgs {
    /// The component or preview1 program (.wasm).
    #[arg(value_name = "FILE")]
    component: PathBuf,

    #[command(flatten)]
    policy: PolicyArgs,

    #[command(flatten)]
    engine: crate::engine_args::EngineArgs,

    /// Arguments for the program (after `--`).
    #[arg(last = true)]
    args: Vec<String>,
}

/// Why a run did not give the program's own exit status.
enum Failure {
    Usage(anyhow::Error),
    Load(anyhow::Error),
    Run(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error {
            Error::Load(_) | Error::Grant(_) | Error::Engine(_) | Error::Cache(_) => {
                Failure::Load(error.into())
            }
            error => Failure::Run(error),
        }
    }
}

impl From<witplug::GrantError> for Failure {
    fn from(error: witplug::GrantError) -> Self {
        Failure::Load(error.into())
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let path = args.component.clone();
    match run_file(args).await {
        // Exit statuses are 0..=255 on Unix; anything else is reported as plain failure.
        Ok(code) => Ok(u8::try_from(code)
            .map(ExitCode::from)
            .unwrap_or(ExitCode::FAILURE)),
        Err(Failure::Usage(error)) => {
            errln!("witplug: {error:#}");
            Ok(ExitCode::from(USAGE_EXIT))
        }
        Err(Failure::Load(error)) => {
            errln!("witplug: {error:#}");
            Ok(ExitCode::from(LOAD_FAILED_EXIT))
        }
        Err(Failure::Run(error)) => {
            let error = anyhow::Error::from(error);
            errln!("witplug: running {}: {error:#}", path.display());
            Ok(ExitCode::from(RUN_FAILED_EXIT))
        }
    }
}

async fn run_file(args: RunArgs) -> Result<i32, Failure> {
    let program = args
        .component
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inherited = Streams {
        stdin: Stdio::Inherit,
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
    };
    let resolved = args
        .policy
        .resolve(&args.engine, None, inherited)
        .map_err(|error| {
            if is_usage_error(&error) {
                Failure::Usage(error)
            } else {
                Failure::Load(error)
            }
        })?;
    if let Some((key, _)) = resolved.config.entries().next() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "configuration `{key}` given: a wasi:cli command or preview1 program cannot read \
             plugin configuration (--config, [config]); pass arguments after `--` or \
             environment variables (--env)"
        )));
    }
    let runtime = resolved.runtime(&args.engine)?;
    let options = PluginOptions::default()
        .capabilities(
            resolved
                .capabilities
                .args(std::iter::once(program).chain(args.args)),
        )
        .limits(resolved.limits);
    crate::log_grants(&options);
    let bytes = read_wasm_file(&args.component).map_err(Error::from)?;
    if is_core_module(&bytes) {
        let program = Preview1Program::from_bytes(&runtime, &bytes, &args.component, options)?;
        return Ok(program.run().await?.code);
    }
    let component =
        LoadedComponent::from_bytes(&runtime, &bytes, &args.component).map_err(Error::from)?;
    if let Some(world) = BuiltinWorld::of(&component)
        && world != BuiltinWorld::Command
    {
        return Err(Failure::Load(anyhow::anyhow!(
            "{} implements world `{}`, not `{}`: run it with {}",
            args.component.display(),
            world.name_of(&component),
            BuiltinWorld::Command.name(),
            world.runner()
        )));
    }
    let command = CommandPlugin::from(Plugin::new(&runtime, &component, options).await?);
    Ok(command.run().await?.code)
}
