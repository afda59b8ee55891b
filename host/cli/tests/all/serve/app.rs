//! `witplug serve --app FILE`: routes by longest prefix, each with its own component,
//! policy and limits; and `--watch`, which swaps a route's component without failing a
//! request.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::hostile::{assert_host_answer, hostile};
use super::*;

fn copy_into(dir: &Path, from: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    to
}

fn ok_token(key: &str, sub: &str, exp: i64) -> String {
    format!(
        "Bearer {}",
        token(key.as_bytes(), &claims(&json_string(sub), &exp.to_string()))
    )
}

#[test]
fn serve_app_routes_by_longest_prefix_with_their_own_policies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let components = dir.path().join("components");
    std::fs::create_dir(&components).expect("mkdir");
    copy_into(&components, &http_guest("rust", "auth"), "auth.wasm");
    copy_into(&components, &http_guest("go", "geo"), "geo.wasm");
    copy_into(&components, &http_guest("rust", "hello"), "hello.wasm");
    copy_into(&components, &hostile(), "hostile.wasm");
    let upstream = Upstream::start();
    let denied = Upstream::start();
    // The file's address is taken: --addr must win over it.
    let held = TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let held_port = held.local_addr().expect("address").port();

    let mut toml = format!("addr = \"127.0.0.1:{held_port}\"\nmax-concurrent = 50\n\n");
    let hostile_route = |name: &str, prefix: &str, extra: &str| {
        format!(
            "[[route]]\nname = \"{name}\"\nprefix = \"{prefix}\"\ncomponent = \"components/hostile.wasm\"\n{extra}\n"
        )
    };
    let _ = write!(
        toml,
        r#"[[route]]
name = "auth"
prefix = "/auth"
component = "components/auth.wasm"
[route.policy.config]
auth-key = "key-one"

[[route]]
name = "auth2"
prefix = "/auth2"
component = "components/auth.wasm"
[route.policy.config]
auth-key = "key-two"

[[route]]
prefix = "/geo"
component = "components/geo.wasm"
[route.policy.config]
domain = "app.test"

[[route]]
name = "deep"
prefix = "/geo/deep"
component = "components/hello.wasm"

[[route]]
prefix = "/print"
component = "components/hostile.wasm"

"#
    );
    toml.push_str(&hostile_route("ok", "/ok", ""));
    toml.push_str(&hostile_route("counter", "/count", "reuse = 5"));
    toml.push_str(&hostile_route(
        "config-probe",
        "/block-config",
        "[route.policy.config]\nx = \"route-value\"",
    ));
    toml.push_str(&hostile_route(
        "small-echo",
        "/echo",
        "max-request-body-kib = 1",
    ));
    toml.push_str(&hostile_route("big", "/huge", "max-response-body-kib = 64"));
    toml.push_str(&hostile_route(
        "out",
        "/outbound",
        &format!(
            "[route.policy.grants]\nhttp = [\"http://127.0.0.1:{}\"]",
            upstream.port()
        ),
    ));
    toml.push_str(&hostile_route(
        "slow",
        "/loop",
        "[route.policy.limits]\ntimeout-ms = 1000",
    ));
    let app = dir.path().join("app.toml");
    std::fs::write(&app, &toml).expect("write the app file");

    // Started elsewhere: relative paths are the file's, not the working directory's.
    let server = Server::start_with(
        &["--app".to_owned(), path_text(&app)],
        &ServerOptions {
            cwd: Some(PathBuf::from("/")),
            ..Default::default()
        },
    );
    assert_ne!(
        server.addr().port(),
        held_port,
        "--addr wins over the file's addr"
    );
    drop(held);

    let future = now_secs() + 3600;
    let auth_ok = |target: &str, key: &str| {
        let response = server
            .send(&Request::get(target).header("authorization", &ok_token(key, "alice", future)));
        (response.status, response.text())
    };
    let alice = format!(r#"{{"sub":"alice","exp":{future}}}"#);
    let bad_signature = r#"{"error":"bad signature"}"#.to_owned();
    assert_eq!(
        auth_ok("/auth", "key-one"),
        (200, alice.clone()),
        "/auth with its key"
    );
    assert_eq!(
        auth_ok("/auth/sub/path?q", "key-one"),
        (200, alice.clone()),
        "/auth/..."
    );
    assert_eq!(
        auth_ok("/auth", "key-two"),
        (401, bad_signature.clone()),
        "/auth with the other route's key"
    );
    assert_eq!(
        auth_ok("/auth2", "key-two"),
        (200, alice.clone()),
        "/auth2 with its key"
    );
    assert_eq!(
        auth_ok("/auth2/x", "key-one"),
        (401, bad_signature),
        "/auth2 with the other route's key"
    );

    for target in [
        "/authz",
        "/aut",
        "/",
        "/auth2x",
        "/geography",
        "/nothing/auth",
    ] {
        let response = server.get(target);
        assert_eq!(
            response.status,
            404,
            "{target} matches no route: {}",
            response.summary()
        );
        let content_type = response.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("text/plain"),
            "{target}: {content_type:?}"
        );
        assert_eq!(
            response.text().trim_end_matches('\n').lines().count(),
            1,
            "{target}: one line"
        );
    }

    let response = server.get("/geo?format=json");
    assert_eq!(
        (response.status, response.text().as_str()),
        (
            200,
            r#"{"region":"us-east","source":"default","location":"https://us-east.app.test/geo?format=json"}"#
        ),
        "/geo with its domain, the full path reaching it"
    );
    let response = server.send(&Request::get("/geo/x?y=1").header("x-geo-country", "JP"));
    assert_eq!(
        (response.status, response.header("location")),
        (307, Some("https://ap-south.app.test/geo/x?y=1".to_owned())),
        "{}",
        response.summary()
    );
    for target in ["/geo/deep", "/geo/deep/er", "/geo/deep?x"] {
        let response = server.get(target);
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "hello from witplug\n"),
            "{target}: the longer prefix wins"
        );
    }
    let response = server.get("/geo/deeper");
    assert_eq!(
        (response.status, response.header("location")),
        (307, Some("https://us-east.app.test/geo/deeper".to_owned())),
        "/geo/deeper is not under /geo/deep: {}",
        response.summary()
    );

    let counts: Vec<String> = (0..4).map(|_| server.get("/count").text()).collect();
    assert!(
        counts.iter().any(|c| c != "1\n")
            && counts
                .iter()
                .all(|c| ["1\n", "2\n", "3\n", "4\n", "5\n"].contains(&c.as_str())),
        "reuse = 5 on its route: {counts:?}"
    );

    for (key, expected) in [
        ("x", "route-value\n"),
        ("auth-key", "none\n"),
        ("domain", "none\n"),
    ] {
        let response = server.get(&format!("/block-config?key={key}"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, expected),
            "config {key} of the config-probe route"
        );
    }

    let response = server.send(&Request::new("POST", "/echo").body(vec![7; 512]));
    assert_eq!(
        (response.status, response.body.len()),
        (200, 512),
        "{}",
        response.summary()
    );
    let response = server.send(&Request::new("POST", "/echo").body(vec![7; 2048]));
    assert_host_answer(&response, 413, "small-echo", "2 KiB to a 1 KiB route");

    let response = server.get("/huge?mib=1");
    assert_host_answer(&response, 500, "big", "1 MiB from a 64 KiB route");

    let response = server.get(&format!(
        "/outbound?url={}",
        percent_encode(&format!("http://127.0.0.1:{}/", upstream.port()))
    ));
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "upstream 200\n"),
        "the route's grant"
    );
    let response = server.get(&format!(
        "/outbound?url={}",
        percent_encode(&format!("http://127.0.0.1:{}/", denied.port()))
    ));
    assert_eq!(
        (response.status, response.text().as_str()),
        (502, "error HTTP-request-denied\n"),
        "not in the route's grant"
    );

    let response = server.get("/loop");
    assert_host_answer(
        &response,
        504,
        "slow",
        "/loop under the route's timeout-ms = 1000",
    );
    assert!(
        response.elapsed >= Duration::from_millis(900)
            && response.elapsed <= Duration::from_secs(6),
        "the route's own deadline (1 s), not the default: {:?}",
        response.elapsed
    );

    assert_eq!(server.get("/print").status, 200);
    server.wait_for_log_line(
        "`hostile stdout line` attributed to the default route name `hostile`",
        Duration::from_secs(10),
        |line| {
            line.contains("hostile stdout line")
                && line.contains("witplug::guest")
                && (line.contains("plugin=hostile") || line.contains("plugin=\"hostile\""))
        },
    );
    server.wait_for_log_line(
        "an access line of route auth2",
        Duration::from_secs(10),
        |line| {
            line.contains("witplug::access") && line.contains("auth2") && line.contains("/auth2")
        },
    );
    server.assert_ok("the app routes");
    settle_and_check(&denied);
}

fn settle_and_check(denied: &Upstream) {
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        denied.connections(),
        0,
        "an upstream outside the grant was reached"
    );
}

/// Replaces `path` atomically (write beside it, then rename over it).
fn replace(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).expect("write the new version");
    std::fs::rename(&tmp, path).expect("rename over the old version");
}

#[test]
fn serve_watch_swaps_a_component_without_failing_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = copy_into(dir.path(), &hostile(), "live.wasm");
    let hello_bytes = std::fs::read(http_guest("rust", "hello")).expect("read hello");
    let hostile_bytes = std::fs::read(hostile()).expect("read hostile");
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        "[[route]]\nname = \"live\"\nprefix = \"/ok\"\ncomponent = \"live.wasm\"\n\n\
         [[route]]\nname = \"sleepy\"\nprefix = \"/sleep\"\ncomponent = \"live.wasm\"\n",
    )
    .expect("write the app file");
    let server = Server::start(&["--app".to_owned(), path_text(&app), "--watch".to_owned()]);
    const OLD: &str = "ok\n";
    const NEW: &str = "hello from witplug\n";
    assert_eq!(server.get("/ok").text(), OLD);

    let stop = AtomicBool::new(false);
    let seen: Mutex<Vec<(Instant, u16, String)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let looper = scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let response = Request::get("/ok").send(server.addr());
                let entry = match response {
                    Ok(r) => (Instant::now(), r.status, r.text()),
                    Err(e) => (Instant::now(), 0, e),
                };
                seen.lock().expect("lock").push(entry);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let in_flight = scope.spawn(|| server.get("/sleep?ms=3000"));
        std::thread::sleep(Duration::from_millis(300));

        let wait_for = |body: &str, since: Instant| {
            wait_until(
                &format!("responses to switch to {body:?}"),
                Duration::from_secs(60),
                || {
                    let seen = seen.lock().expect("lock");
                    let last = seen.iter().rev().find(|(t, _, _)| *t > since);
                    match last {
                        Some((_, 200, text)) if text == body => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
        };

        // A new version by atomic rename.
        let swapped = Instant::now();
        replace(&live, &hello_bytes);
        wait_for(NEW, swapped);
        // The request in flight during the swap finished on the old version.
        let response = in_flight.join().expect("sleep thread");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "slept 3000\n"),
            "the request in flight at the swap"
        );
        assert_eq!(
            server.get("/sleep?ms=10").text(),
            NEW,
            "the other route on the same file"
        );

        // A version that fails to load: logged, the last good one keeps serving.
        let broken = Instant::now();
        replace(&live, b"\0asm this is not a component");
        server.wait_for_log_line(
            "a warning or error naming live.wasm after the broken version",
            Duration::from_secs(30),
            |line| line.contains("live.wasm") && (line.contains("WARN") || line.contains("ERROR")),
        );
        std::thread::sleep(Duration::from_secs(1));
        {
            let seen = seen.lock().expect("lock");
            let after: Vec<_> = seen.iter().filter(|(t, _, _)| *t > broken).collect();
            assert!(!after.is_empty(), "requests ran after the broken version");
            assert!(
                after
                    .iter()
                    .all(|(_, status, text)| *status == 200 && text == NEW),
                "the last good version serves after a broken one: {:?}",
                after
                    .iter()
                    .find(|(_, status, text)| *status != 200 || text != NEW)
            );
        }

        // The watch goes on: back to the first version.
        let back = Instant::now();
        replace(&live, &hostile_bytes);
        wait_for(OLD, back);

        // Written in place (truncated, then written), not renamed.
        let in_place = Instant::now();
        std::fs::write(&live, &hello_bytes).expect("overwrite in place");
        wait_for(NEW, in_place);

        // Removed for a while: the version loaded keeps serving; then a new file.
        let removed = Instant::now();
        std::fs::remove_file(&live).expect("remove the component");
        std::thread::sleep(Duration::from_millis(1500));
        {
            let seen = seen.lock().expect("lock");
            assert!(
                seen.iter()
                    .filter(|(t, _, _)| *t > removed)
                    .all(|(_, status, text)| *status == 200 && text == NEW),
                "the loaded version serves while its file is gone"
            );
        }
        let recreated = Instant::now();
        replace(&live, &hostile_bytes);
        wait_for(OLD, recreated);
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::SeqCst);
        looper.join().expect("loop thread");
    });
    let seen = seen.into_inner().expect("lock");
    let failures: Vec<_> = seen
        .iter()
        .filter(|(_, status, text)| *status != 200 || (text != OLD && text != NEW))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} requests failed or got a third answer during the swaps, first: {:?}; stderr:\n{}",
        failures.len(),
        seen.len(),
        failures.first(),
        server.stderr_tail()
    );
    // Each switch happens once: old, then new, then old again.
    let mut runs: Vec<&str> = Vec::new();
    for (_, _, text) in &seen {
        if runs.last() != Some(&text.as_str()) {
            runs.push(text);
        }
    }
    assert_eq!(
        runs,
        [OLD, NEW, OLD, NEW, OLD],
        "the versions served, in order"
    );
}

#[test]
fn serve_watch_reloads_a_single_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let live = copy_into(dir.path(), &hostile(), "single.wasm");
    let server = Server::start(&[path_text(&live), "--watch".to_owned()]);
    assert_eq!(server.get("/ok").text(), "ok\n");
    replace(
        &live,
        &std::fs::read(http_guest("go", "hello")).expect("read hello"),
    );
    wait_until("the Go hello to serve", Duration::from_secs(90), || {
        let response = server.get("/ok");
        match (response.status, response.text().as_str()) {
            (200, "hello from witplug\n") => Ok(()),
            (200, "ok\n") => Err("still the old version".to_owned()),
            _ => panic!("a request failed during the swap: {}", response.summary()),
        }
    });
}

#[test]
fn serve_app_max_concurrent_holds_across_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_into(dir.path(), &hostile(), "hostile.wasm");
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        "max-concurrent = 1\n\n[[route]]\nname = \"a\"\nprefix = \"/sleep\"\ncomponent = \"hostile.wasm\"\n\n\
         [[route]]\nname = \"b\"\nprefix = \"/ok\"\ncomponent = \"hostile.wasm\"\n",
    )
    .expect("write the app file");
    let server = Server::start(&["--app".to_owned(), path_text(&app)]);
    std::thread::scope(|scope| {
        let sleeping = scope.spawn(|| server.get("/sleep?ms=2500"));
        std::thread::sleep(Duration::from_millis(500));
        let response = server.get("/ok");
        assert_eq!(
            (response.status, response.header("retry-after")),
            (503, Some("1".to_owned())),
            "a second request in flight under the app's max-concurrent = 1: {}",
            response.summary()
        );
        let slept = sleeping.join().expect("sleep thread");
        assert_eq!(slept.status, 200, "{}", slept.summary());
    });
    wait_until("/ok once the slot is free", Duration::from_secs(5), || {
        let response = server.get("/ok");
        if response.status == 200 {
            Ok(())
        } else {
            Err(response.summary())
        }
    });
}
