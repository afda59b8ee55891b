//! The server's own behaviour: the concurrency limit, graceful shutdown, the stdout
//! lines, and command lines it must refuse.

use std::sync::Barrier;
use std::time::Duration;

use super::hostile::{hostile, hostile_server};
use super::*;

#[test]
fn serve_sheds_requests_over_max_concurrent_with_a_503() {
    const SLEEP_MS: u64 = 3000;
    let server = hostile_server(&["--max-concurrent", "2"]);
    let target = format!("/sleep?ms={SLEEP_MS}");
    let barrier = Barrier::new(6);
    let responses: Vec<Response> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    server.get(&target)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect()
    });
    let served: Vec<&Response> = responses.iter().filter(|r| r.status == 200).collect();
    let shed: Vec<&Response> = responses.iter().filter(|r| r.status == 503).collect();
    assert!(
        served.len() == 2 && shed.len() == 4,
        "6 concurrent requests under --max-concurrent 2: want 2 x 200 and 4 x 503, got {:?}",
        responses.iter().map(Response::summary).collect::<Vec<_>>()
    );
    for response in served {
        assert_eq!(response.text(), format!("slept {SLEEP_MS}\n"));
    }
    for response in shed {
        assert_eq!(
            response.header("retry-after").as_deref(),
            Some("1"),
            "a 503 says retry-after: 1: {}",
            response.summary()
        );
        assert!(
            response.elapsed < Duration::from_millis(SLEEP_MS),
            "a 503 comes at once, not after a slot frees ({:?})",
            response.elapsed
        );
    }
    server.assert_ok("the 503s");
    // The slots are free again: two at once are both served.
    std::thread::sleep(Duration::from_millis(200));
    std::thread::scope(|scope| {
        let both: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| server.get("/sleep?ms=300")))
            .collect();
        for handle in both {
            let response = handle.join().expect("request thread");
            assert_eq!(
                response.status,
                200,
                "after the wave: {}",
                response.summary()
            );
        }
    });
}

#[test]
fn serve_releases_concurrency_slots_after_failures_and_disconnects() {
    let server = hostile_server(&["--max-concurrent", "1", "--timeout-ms", "1500"]);
    // Each failure must give its slot back; with one slot a leak shows at once.
    for target in ["/panic", "/loop", "/memory", "/no-such-path", "/ok"] {
        let _ = server.get(target);
        wait_until(
            &format!("/ok to be served after {target} (its slot released)"),
            Duration::from_secs(5),
            || {
                let response = server.get("/ok");
                if response.status == 200 {
                    Ok(())
                } else {
                    Err(response.summary())
                }
            },
        );
    }
    // A client that goes away mid-request.
    for _ in 0..2 {
        let request = Request::get("/sleep?ms=1000");
        let mut conn = request.open(server.addr()).expect("connect");
        conn.write_all(
            format!(
                "GET /sleep?ms=1000 HTTP/1.1\r\nhost: {}\r\n\r\n",
                server.addr()
            )
            .as_bytes(),
        )
        .expect("send");
        std::thread::sleep(Duration::from_millis(200));
        drop(conn);
    }
    wait_until(
        "/ok to be served after clients went away (their slots released)",
        Duration::from_secs(10),
        || {
            let response = server.get("/ok");
            if response.status == 200 {
                Ok(())
            } else {
                Err(response.summary())
            }
        },
    );
    for n in 0..5 {
        let response = server.get("/ok");
        assert_eq!(
            response.status,
            200,
            "sequential request {n}: {}",
            response.summary()
        );
    }
}

#[test]
fn serve_sigterm_finishes_requests_in_flight_then_exits_0() {
    const SLEEP_MS: u64 = 2500;
    let mut server = hostile_server(&[]);
    let addr = server.addr();
    let target = format!("/sleep?ms={SLEEP_MS}");
    let (in_flight, late) = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..5)
            .map(|_| scope.spawn(|| Request::get(&target).send(addr)))
            .collect();
        // Accepted and running by now.
        std::thread::sleep(Duration::from_millis(400));
        server.sigterm();
        std::thread::sleep(Duration::from_millis(300));
        // While the five still run, a new connection is not served.
        let late = Request::get("/ok")
            .timeout(Duration::from_secs(15))
            .send(addr);
        let in_flight: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("request thread"))
            .collect();
        (in_flight, late)
    });
    for (n, result) in in_flight.iter().enumerate() {
        match result {
            Ok(response) => assert_eq!(
                (response.status, response.text()),
                (200, format!("slept {SLEEP_MS}\n")),
                "request {n} in flight at SIGTERM"
            ),
            Err(e) => panic!(
                "request {n} in flight at SIGTERM failed: {e}; stderr:\n{}",
                server.stderr_tail()
            ),
        }
    }
    if let Ok(response) = &late {
        panic!(
            "a connection made after SIGTERM was served: {}",
            response.summary()
        );
    }
    let status = server.wait_exit(Duration::from_secs(35));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; stderr:\n{}",
        server.stderr_tail()
    );
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    assert!(refused.is_err(), "the port still accepts after the exit");
}

#[test]
fn serve_sigint_exits_0() {
    let mut server = hostile_server(&[]);
    server.assert_ok("start");
    server.sigint();
    let status = server.wait_exit(Duration::from_secs(35));
    assert!(
        status.success(),
        "exit after SIGINT: {status}; stderr:\n{}",
        server.stderr_tail()
    );
}

#[test]
fn serve_prints_the_listening_and_metrics_lines() {
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut server = hostile_server(&["--metrics", &metrics_addr]);
    let line = server.next_stdout_line(Duration::from_secs(30), "the metrics line");
    assert_eq!(line, format!("metrics on http://{metrics_addr}/metrics"));
    let listening = server.stdout_lines();
    assert!(
        listening[0] == format!("listening on http://{}", server.addr()),
        "{listening:?}"
    );
    server.assert_ok("start");
    let addr: SocketAddr = metrics_addr.parse().expect("address");
    let response = Request::get("/metrics").send(addr).expect("scrape");
    assert_eq!(response.status, 200, "{}", response.summary());
    assert!(!response.body.is_empty(), "metrics are served");
    assert_eq!(
        server.get("/metrics").text(),
        "not found\n",
        "the handler, not the metrics, answers on the main port"
    );
}

#[test]
fn serve_on_a_named_port() {
    let port = free_port();
    let server = Server::start(&[
        path_text(&hostile()),
        "--addr".to_owned(),
        format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(server.addr().port(), port);
    server.assert_ok("start");
}

/// Runs `witplug serve ARGS` expecting it to refuse them: a non-zero exit, nothing
/// served, and stderr naming `named`.
fn assert_refused(args: &[String], named: &str) {
    let finished = run_serve(args, Duration::from_secs(120));
    let Some(status) = finished.status else {
        panic!(
            "`witplug serve {}` kept running (stdout {:?}); stderr:\n{}",
            args.join(" "),
            finished.stdout,
            finished.stderr
        );
    };
    assert!(
        !status.success(),
        "`witplug serve {}` exited {status}; stderr:\n{}",
        args.join(" "),
        finished.stderr
    );
    assert!(
        !finished.stdout.contains("listening on"),
        "`witplug serve {}` listened: {:?}",
        args.join(" "),
        finished.stdout
    );
    assert!(
        finished.stderr.contains(named),
        "`witplug serve {}`: the message does not name `{named}`:\n{}",
        args.join(" "),
        finished.stderr
    );
}

#[test]
fn serve_refuses_a_missing_component() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-handler.wasm");
    assert_refused(&[path_text(&missing)], "no-such-handler.wasm");
    let not_wasm = dir.path().join("not-a-component.wasm");
    std::fs::write(&not_wasm, "plain text").expect("write");
    assert_refused(&[path_text(&not_wasm)], "not-a-component.wasm");
}

#[test]
fn serve_refuses_bad_outbound_patterns() {
    let component = path_text(&hostile());
    for pattern in [
        "http://example.com/path",
        "http://user@example.com",
        "http://user:secret@example.com",
        "ftp://example.com",
        "example.com",
        "http://",
        "http://example.com:99999",
        "http://example.com:port",
    ] {
        assert_refused(
            &[
                component.clone(),
                "--allow-http".to_owned(),
                pattern.to_owned(),
            ],
            pattern,
        );
    }
    assert_refused(
        &[component.clone(), "--allow-http".to_owned(), String::new()],
        "allow-http",
    );
    // The same in a policy file.
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[grants]\nhttp = [\"https://api.example.com/v1\"]\n",
    )
    .expect("write");
    assert_refused(
        &[component, "--policy".to_owned(), path_text(&policy)],
        "https://api.example.com/v1",
    );
}

#[test]
fn serve_refuses_bad_addresses_and_app_files() {
    let component = path_text(&hostile());
    assert_refused(
        &[
            component.clone(),
            "--addr".to_owned(),
            "not-an-address".to_owned(),
        ],
        "not-an-address",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let app = dir.path().join("app.toml");
    std::fs::write(
        &app,
        "[[route]]\nprefix = \"/a\"\ncomponent = \"missing-route-component.wasm\"\n",
    )
    .expect("write");
    assert_refused(
        &["--app".to_owned(), path_text(&app)],
        "missing-route-component.wasm",
    );
    std::fs::write(
        &app,
        format!(
            "[[route]]\nprefix = \"/a\"\ncomponent = {}\n[route.policy.grants]\nhttp = [\"http://u@x.example\"]\n",
            json_string(&component)
        ),
    )
    .expect("write");
    assert_refused(&["--app".to_owned(), path_text(&app)], "http://u@x.example");
    // Neither a component nor an app file.
    assert_refused(&[], "");
}

#[test]
fn serve_sigterm_does_not_wait_for_idle_connections() {
    let mut server = hostile_server(&[]);
    let addr = server.addr();
    // A keep-alive connection that served one request and stays open, idle.
    let mut idle = Request::get("/ok").open(addr).expect("connect");
    idle.write_all(format!("GET /ok HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .expect("send");
    let response = read_response(&mut idle, "GET", Duration::from_secs(30)).expect("a response");
    assert_eq!(response.status, 200, "{}", response.summary());
    // And one that never finished its request head.
    let mut partial = Request::get("/ok").open(addr).expect("connect");
    partial
        .write_all(b"GET /ok HTTP/1.1\r\nhost: x\r\n")
        .expect("send");
    std::thread::sleep(Duration::from_millis(200));
    server.sigterm();
    // Nothing is in flight: well before the 30 s allowed for requests in flight.
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(
        status.success(),
        "exit after SIGTERM: {status}; stderr:\n{}",
        server.stderr_tail()
    );
    drop((idle, partial));
}
