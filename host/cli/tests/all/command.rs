//! `wasi:cli/command` guests under the capability policy, in Rust and in Go.
//!
//! Each test runs the `filetool` guest of both languages with a granted directory laid out
//! as `root/secret.txt` (never granted) and `root/data/` (granted as `/data`).

use witplug::{Access, Capabilities, CommandPlugin, Plugin, PluginOptions, Stdio};

use crate::common::{LANGUAGES, SANDBOX_HELLO, Sandbox, component, runtime, sandbox};

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run_filetool(language: &str, caps: Capabilities, args: &[&str]) -> Ran {
    let caps = caps
        .args(std::iter::once("filetool").chain(args.iter().copied()))
        .stdout(Stdio::Capture)
        .stderr(Stdio::Capture);
    let component = component(&format!("{language}-filetool"));
    let plugin: Plugin<_> = Plugin::new(
        runtime(),
        &component,
        PluginOptions::default().capabilities(caps),
    )
    .await
    .expect("filetool links as a command");
    let exit = CommandPlugin::from(plugin)
        .run()
        .await
        .expect("command runs");
    let captured = exit.instance.state().captured();
    Ran {
        code: exit.code,
        stdout: captured.stdout().unwrap_or_default(),
        stderr: captured.stderr().unwrap_or_default(),
    }
}

fn read_only(sandbox: &Sandbox) -> Capabilities {
    Capabilities::none()
        .dir_at(&sandbox.data, "/data", Access::ReadOnly)
        .expect("grant")
}

#[tokio::test]
async fn a_granted_directory_is_readable() {
    for language in LANGUAGES {
        let sandbox = sandbox();
        let ran = run_filetool(language, read_only(&sandbox), &["cat", "/data/hello.txt"]).await;
        assert_eq!(ran.code, 0, "{language}: {}", ran.stderr);
        assert_eq!(ran.stdout, SANDBOX_HELLO, "{language}");

        let ran = run_filetool(language, read_only(&sandbox), &["count", "/data/hello.txt"]).await;
        assert_eq!(ran.stdout.trim(), "2 6 32 /data/hello.txt", "{language}");
    }
}

#[tokio::test]
async fn paths_outside_the_grant_are_refused() {
    for language in LANGUAGES {
        let sandbox = sandbox();
        for path in [
            "/etc/passwd",
            "/data/../secret.txt",
            "../secret.txt",
            "/secret.txt",
        ] {
            let ran = run_filetool(language, read_only(&sandbox), &["cat", path]).await;
            assert_ne!(ran.code, 0, "{language}: reading {path} must fail");
            assert_eq!(ran.stdout, "", "{language}: {path} leaked");
            assert!(
                ran.stderr.starts_with(&format!("filetool: cat {path}: ")),
                "{language}: {path}: {}",
                ran.stderr
            );
        }
    }
}

#[tokio::test]
async fn without_any_grant_nothing_is_readable() {
    for language in LANGUAGES {
        let sandbox = sandbox();
        let path = sandbox.data.join("hello.txt");
        let ran = run_filetool(
            language,
            Capabilities::none(),
            &["cat", &path.to_string_lossy()],
        )
        .await;
        assert_ne!(ran.code, 0, "{language}");
        assert_eq!(ran.stdout, "", "{language}");
    }
}

#[tokio::test]
async fn a_read_only_grant_is_not_writable_and_a_read_write_one_is() {
    for language in LANGUAGES {
        let sandbox = sandbox();
        let ran = run_filetool(
            language,
            read_only(&sandbox),
            &["write", "/data/new.txt", "x"],
        )
        .await;
        assert_ne!(ran.code, 0, "{language}: write into a read-only grant");
        assert!(
            !sandbox.data.join("new.txt").exists(),
            "{language}: file was created"
        );

        let rw = Capabilities::none()
            .dir_at(&sandbox.data, "/data", Access::ReadWrite)
            .expect("grant");
        let ran = run_filetool(
            language,
            rw,
            &["write", "/data/new.txt", "written by the guest"],
        )
        .await;
        assert_eq!(ran.code, 0, "{language}: {}", ran.stderr);
        assert_eq!(
            std::fs::read_to_string(sandbox.data.join("new.txt")).expect("read back"),
            "written by the guest",
            "{language}"
        );
    }
}

#[tokio::test]
async fn only_granted_environment_variables_are_visible() {
    // The test process's own environment must not leak into the guest.
    let host_var = "PATH";
    assert!(std::env::var(host_var).is_ok(), "the test needs PATH set");
    for language in LANGUAGES {
        let ran = run_filetool(language, Capabilities::none(), &["env", host_var]).await;
        assert_eq!(ran.stdout, format!("{host_var} is not set\n"), "{language}");

        let caps = Capabilities::none()
            .env("MODE", "strict")
            .env_spec(host_var)
            .expect("grant");
        let ran = run_filetool(language, caps, &["env", "MODE", host_var, "HOME"]).await;
        let expected = format!(
            "MODE=strict\n{host_var}={}\nHOME is not set\n",
            std::env::var(host_var).expect("PATH")
        );
        assert_eq!(ran.stdout, expected, "{language}");
    }
}

#[tokio::test]
async fn failure_exit_codes_pass_through() {
    for language in LANGUAGES {
        let ran = run_filetool(language, Capabilities::none(), &["no-such-subcommand"]).await;
        // The guest exits with 2, but `wasi:cli/exit` (what Rust's std and Go's preview1
        // adapter call) only says success or failure: every failure arrives as 1.
        assert_eq!(ran.code, 1, "{language}: {}", ran.stderr);
        assert!(ran.stderr.contains("usage"), "{language}: {}", ran.stderr);
    }
}
