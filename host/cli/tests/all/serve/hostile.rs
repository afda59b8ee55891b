//! `http-hostile` behind `witplug serve`: each attack gets the status the contract names,
//! reaches nothing it was not granted, and the server answers `/ok` afterwards.

use std::time::{Duration, Instant};

use super::*;

pub fn hostile() -> PathBuf {
    http_guest("rust", "hostile")
}

/// `witplug serve HOSTILE FLAGS...`.
pub fn hostile_server(flags: &[&str]) -> Server {
    let mut args = vec![path_text(&hostile())];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    Server::start(&args)
}

/// A host-made answer: this status, text/plain, one line naming the route.
pub fn assert_host_answer(response: &Response, status: u16, route: &str, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.summary());
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "{what}: a host-made body is text/plain, got content-type {content_type:?}"
    );
    let text = response.text();
    assert_eq!(
        text.trim_end_matches('\n').lines().count(),
        1,
        "{what}: a host-made body is one line: {text:?}"
    );
    assert!(
        text.contains(route),
        "{what}: the host-made body names the route `{route}`: {text:?}"
    );
}

fn outbound(url: &str) -> String {
    format!("/outbound?url={}", percent_encode(url))
}

/// Lets any connection the server might still be making arrive before counting.
fn settle() {
    std::thread::sleep(Duration::from_millis(400));
}

#[test]
fn serve_hostile_loop_is_stopped_at_the_deadline_while_others_answer() {
    const TIMEOUT_MS: u64 = 3000;
    let server = hostile_server(&["--timeout-ms", "3000"]);
    let route = stem(&hostile());
    std::thread::scope(|scope| {
        // As many runaway handlers as there are cores here.
        let loops: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| server.get("/loop")))
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let mut answered_during_loops = 0;
        let mut oks = 0;
        while loops.iter().any(|l| !l.is_finished()) {
            let response = server.get("/ok");
            assert!(
                response.status == 200 && response.body == b"ok\n",
                "GET /ok while /loop runs: {}",
                response.summary()
            );
            oks += 1;
            if loops.iter().any(|l| !l.is_finished()) {
                answered_during_loops += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for handle in loops {
            let response = handle.join().expect("loop thread");
            assert_host_answer(&response, 504, &route, "GET /loop");
            let elapsed = response.elapsed;
            assert!(
                elapsed >= Duration::from_millis(TIMEOUT_MS - 100),
                "/loop answered before its deadline, after {elapsed:?}"
            );
            assert!(
                elapsed <= Duration::from_millis(TIMEOUT_MS + 5000),
                "/loop answered only after {elapsed:?} (deadline {TIMEOUT_MS} ms)"
            );
        }
        assert!(
            answered_during_loops > 0,
            "no /ok was answered while two /loop handlers ran ({oks} answered after them)"
        );
    });
    server.assert_ok("/loop");
}

#[test]
fn serve_hostile_memory_limit_is_a_500() {
    let server = hostile_server(&["--max-memory", "32"]);
    let route = stem(&hostile());
    for attempt in 0..2 {
        let response = server.get("/memory");
        assert_host_answer(&response, 500, &route, &format!("GET /memory #{attempt}"));
        server.assert_ok("/memory");
    }
}

#[test]
fn serve_hostile_panic_is_a_500() {
    let server = hostile_server(&[]);
    let route = stem(&hostile());
    for attempt in 0..3 {
        let response = server.get("/panic");
        assert_host_answer(&response, 500, &route, &format!("GET /panic #{attempt}"));
        server.assert_ok("/panic");
    }
    let response = server.get("/no-such-path");
    assert_eq!(
        (response.status, response.body.as_slice()),
        (404, &b"not found\n"[..]),
        "the guest's own 404: {}",
        response.summary()
    );
}

#[test]
fn serve_hostile_response_body_over_the_limit_is_a_500() {
    let server = hostile_server(&["--max-response-body-kib", "1024"]);
    let route = stem(&hostile());
    // Exactly at the limit is not over it.
    let response = server.get("/huge?mib=1");
    assert_eq!(
        response.status,
        200,
        "1 MiB under a 1024 KiB limit: {}",
        response.summary()
    );
    assert_eq!(response.body.len(), 1 << 20, "the whole MiB arrives");
    for target in ["/huge?mib=2", "/huge"] {
        let response = server.get(target);
        assert_host_answer(&response, 500, &route, &format!("GET {target}"));
        server.assert_ok(target);
    }
}

#[test]
fn serve_hostile_request_body_over_the_limit_is_a_413() {
    let server = hostile_server(&["--max-request-body-kib", "4"]);
    let route = stem(&hostile());
    let limit = 4 * 1024;
    let pattern = |n: usize| (0..n).map(|i| (i % 251) as u8).collect::<Vec<u8>>();
    for (what, request, expected) in [
        (
            "empty",
            Request::new("POST", "/echo").body(Vec::new()),
            Some(Vec::new()),
        ),
        (
            "small",
            Request::new("POST", "/echo").body(b"hello\0\xff".to_vec()),
            Some(b"hello\0\xff".to_vec()),
        ),
        (
            "at the limit",
            Request::new("POST", "/echo").body(pattern(limit)),
            Some(pattern(limit)),
        ),
        (
            "at the limit, chunked",
            Request::new("POST", "/echo").chunked(pattern(limit), 1000),
            Some(pattern(limit)),
        ),
        (
            "one byte over",
            Request::new("POST", "/echo").body(pattern(limit + 1)),
            None,
        ),
        (
            "far over",
            Request::new("POST", "/echo").body(pattern(256 * 1024)),
            None,
        ),
        (
            "over, chunked",
            Request::new("POST", "/echo").chunked(pattern(64 * 1024), 1024),
            None,
        ),
        (
            "one byte over, chunked",
            Request::new("POST", "/echo").chunked(pattern(limit + 1), 4096),
            None,
        ),
    ] {
        let response = server.send(&request);
        match expected {
            Some(body) => {
                assert_eq!(response.status, 200, "{what}: {}", response.summary());
                assert_eq!(
                    response.header("content-type").as_deref(),
                    Some("application/octet-stream"),
                    "{what}"
                );
                assert!(
                    response.body == body,
                    "{what}: the echo differs ({} bytes back)",
                    response.body.len()
                );
            }
            None => assert_host_answer(&response, 413, &route, what),
        }
        server.assert_ok(what);
    }
}

#[test]
fn serve_hostile_outbound_requests_follow_the_allowlist() {
    let allowed = Upstream::start();
    let denied = Upstream::start();
    let refused_port = free_port();
    let allow_allowed = format!("http://127.0.0.1:{}", allowed.port());
    let allow_refused = format!("http://127.0.0.1:{refused_port}");
    let server = hostile_server(&[
        "--allow-http",
        &allow_allowed,
        "--allow-http",
        &allow_refused,
    ]);

    let response = server.get(&outbound(&format!(
        "http://127.0.0.1:{}/hello?x=1",
        allowed.port()
    )));
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "upstream 200\n"),
        "an allowed request: {}",
        response.summary()
    );
    assert_eq!(
        allowed.connections(),
        1,
        "the allowed upstream got the request"
    );
    assert!(
        allowed
            .heads()
            .iter()
            .any(|h| h.starts_with("GET /hello?x=1 HTTP/1.1\r\n")),
        "the upstream saw {:?}",
        allowed.heads()
    );

    let before = allowed.connections();
    for (what, url) in [
        (
            "a port not granted",
            format!("http://127.0.0.1:{}/", denied.port()),
        ),
        (
            "https where http is granted",
            format!("https://127.0.0.1:{}/", allowed.port()),
        ),
        (
            "another name of the same host",
            format!("http://localhost:{}/", allowed.port()),
        ),
        (
            "the default port of a granted host",
            "http://127.0.0.1/".to_owned(),
        ),
        ("a public host", "http://example.com/".to_owned()),
    ] {
        let response = server.get(&outbound(&url));
        assert_eq!(
            (response.status, response.text().as_str()),
            (502, "error HTTP-request-denied\n"),
            "{what} ({url}): {}",
            response.summary()
        );
        server.assert_ok(what);
    }
    settle();
    assert_eq!(
        denied.connections(),
        0,
        "a denied upstream is never connected to"
    );
    assert_eq!(
        allowed.connections(),
        before,
        "denied requests made no connection"
    );

    let response = server.get(&outbound(&format!("http://127.0.0.1:{refused_port}/")));
    assert_eq!(
        (response.status, response.text().as_str()),
        (502, "error connection-refused\n"),
        "an allowed port nobody listens on: {}",
        response.summary()
    );
    server.assert_ok("outbound requests");
}

#[test]
fn serve_outbound_patterns_ports_and_wildcards() {
    let a = Upstream::start();
    let b = Upstream::start();
    // Absent port = the scheme's default; `*.suffix` is not the bare suffix.
    let strict = hostile_server(&[
        "--allow-http",
        "http://127.0.0.1",
        "--allow-http",
        "http://*.localhost:*",
    ]);
    for url in [
        format!("http://127.0.0.1:{}/", a.port()),
        format!("http://localhost:{}/", a.port()),
    ] {
        let response = strict.get(&outbound(&url));
        assert_eq!(
            (response.status, response.text().as_str()),
            (502, "error HTTP-request-denied\n"),
            "{url} under http://127.0.0.1 and http://*.localhost:*: {}",
            response.summary()
        );
    }
    settle();
    assert_eq!(a.connections(), 0, "nothing reached the upstream");

    // Port `*`, host `*`, and a host matched case-insensitively.
    let any_port = hostile_server(&[
        "--allow-http",
        "http://127.0.0.1:*",
        "--allow-http",
        &format!("http://LOCALHOST:{}", b.port()),
    ]);
    let any_host = hostile_server(&["--allow-http", &format!("http://*:{}", b.port())]);
    for (server, url) in [
        (&any_port, format!("http://127.0.0.1:{}/", a.port())),
        (&any_port, format!("http://localhost:{}/", b.port())),
        (&any_host, format!("http://127.0.0.1:{}/", b.port())),
        (&any_host, format!("http://localhost:{}/", b.port())),
    ] {
        let response = server.get(&outbound(&url));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "upstream 200\n"),
            "{url} via {}: {}",
            server.label(),
            response.summary()
        );
    }
    for (server, url) in [
        (&any_port, format!("https://127.0.0.1:{}/", a.port())),
        (&any_port, format!("http://localhost:{}/", a.port())),
        (&any_host, format!("http://127.0.0.1:{}/", a.port())),
    ] {
        let response = server.get(&outbound(&url));
        assert_eq!(
            (response.status, response.text().as_str()),
            (502, "error HTTP-request-denied\n"),
            "{url} via {}: {}",
            server.label(),
            response.summary()
        );
    }
    settle();
    assert_eq!(
        a.connections(),
        1,
        "the upstream on the any-port grant only"
    );
    assert_eq!(
        b.connections(),
        3,
        "one connection per allowed request to the second upstream"
    );
}

#[test]
fn serve_hostile_host_header_reaches_nothing() {
    let target = Upstream::start();
    let granted = Upstream::start();
    let with_grant = hostile_server(&[
        "--allow-http",
        &format!("http://127.0.0.1:{}", granted.port()),
    ]);
    let without = hostile_server(&[]);
    for server in [&with_grant, &without] {
        let response = server.get(&format!("/host-trick?target=127.0.0.1:{}", target.port()));
        assert_eq!(
            response.status,
            502,
            "{}: {}",
            server.label(),
            response.summary()
        );
        assert!(
            response.text().starts_with("error "),
            "answered as /outbound's errors: {}",
            response.summary()
        );
        server.assert_ok("/host-trick");
    }
    settle();
    assert_eq!(
        target.connections(),
        0,
        "the host-header target got connections: {:?}",
        target.heads()
    );
    assert_eq!(
        granted.connections(),
        0,
        "the granted upstream got connections: {:?}",
        granted.heads()
    );
}

#[test]
fn serve_client_ip_header_is_always_the_peer() {
    for language in ["rust", "go"] {
        let server = Server::start(&[
            path_text(&http_guest(language, "geo")),
            "--config".to_owned(),
            "ip-ranges=127.0.0.1/32=eu-west,10.0.0.0/8=us-east,192.0.2.0/24=sa-east,::/0=ap-south"
                .to_owned(),
        ]);
        for (what, request) in [
            ("none sent", Request::get("/?format=json")),
            (
                "one sent",
                Request::get("/?format=json").header("x-witplug-client-ip", "10.9.8.7"),
            ),
            (
                "two sent, differently spelt",
                Request::get("/?format=json")
                    .header("X-Witplug-Client-Ip", "192.0.2.1")
                    .header("x-witplug-client-ip", "::1"),
            ),
            (
                "garbage sent",
                Request::get("/?format=json").header("x-witplug-client-ip", "not an address"),
            ),
        ] {
            let response = server.send(&request);
            assert_eq!(
                (response.status, response.text().as_str()),
                (
                    200,
                    r#"{"region":"eu-west","source":"address","location":"https://eu-west.example.com/?format=json"}"#
                ),
                "{language}, {what}"
            );
        }
    }
}

#[test]
fn serve_hostile_each_request_gets_a_fresh_instance() {
    let server = hostile_server(&[]);
    for n in 0..3 {
        let response = server.get("/count");
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, "1\n"),
            "request {n} on a fresh instance"
        );
    }
}

fn count(server: &Server) -> u64 {
    let response = server.get("/count");
    assert_eq!(response.status, 200, "/count: {}", response.summary());
    response
        .text()
        .trim_end()
        .parse()
        .unwrap_or_else(|e| panic!("/count answers a number: {e}: {}", response.summary()))
}

#[test]
fn serve_hostile_reuse_serves_up_to_n_requests_per_instance() {
    let server = hostile_server(&["--reuse", "3", "--timeout-ms", "2000"]);
    let counts: Vec<u64> = (0..9).map(|_| count(&server)).collect();
    assert!(
        counts.iter().all(|&c| (1..=3).contains(&c)),
        "an instance serves at most 3 requests: {counts:?}"
    );
    assert!(
        counts.iter().any(|&c| c > 1),
        "instances are reused: {counts:?}"
    );
    // A trap or a timeout does not poison the route.
    assert_eq!(server.get("/panic").status, 500);
    let after_panic = count(&server);
    assert!(
        (1..=3).contains(&after_panic),
        "after /panic: {after_panic}"
    );
    assert_eq!(server.get("/loop").status, 504);
    let after_loop = count(&server);
    assert!((1..=3).contains(&after_loop), "after /loop: {after_loop}");
    server.assert_ok("reuse");

    let many = hostile_server(&["--reuse", "10"]);
    let counts: Vec<u64> = (0..5).map(|_| count(&many)).collect();
    assert!(
        counts.windows(2).any(|w| w[1] > w[0]) && counts.iter().all(|&c| c <= 10),
        "with --reuse 10 the count increases: {counts:?}"
    );
}

#[test]
fn serve_hostile_output_goes_to_the_log_attributed_to_the_route() {
    let mut server = hostile_server(&[]);
    let route = stem(&hostile());
    let response = server.get("/print");
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "printed\n"),
        "{}",
        response.summary()
    );
    let attributed = |line: &str| {
        line.contains("witplug::guest")
            && (line.contains(&format!("plugin={route}"))
                || line.contains(&format!("plugin=\"{route}\"")))
    };
    for text in ["hostile stdout line", "hostile stderr line"] {
        server.wait_for_log_line(
            &format!("`{text}` of target witplug::guest, plugin={route}"),
            Duration::from_secs(10),
            |line| line.contains(text) && attributed(line),
        );
    }
    server.wait_for_log_line(
        "of target witplug::access for GET /print 200",
        Duration::from_secs(10),
        |line| {
            line.contains("witplug::access")
                && line.contains("/print")
                && line.contains("200")
                && line.contains(&route)
                && line.contains("GET")
        },
    );
    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "SIGTERM: {status}; stderr:\n{}",
        server.stderr_tail()
    );
    let stdout = server.stdout_lines();
    assert_eq!(
        stdout.len(),
        1,
        "stdout holds the listening line alone: {stdout:?}"
    );
    assert!(stdout[0].starts_with("listening on http://"), "{stdout:?}");
}

#[test]
fn serve_hostile_config_reaches_the_guest() {
    let server = hostile_server(&["--config", "colour=blue", "--config", "empty="]);
    for (key, expected) in [("colour", "blue\n"), ("missing", "none\n")] {
        let response = server.get(&format!("/block-config?key={key}"));
        assert_eq!(
            (response.status, response.text().as_str()),
            (200, expected),
            "config {key}"
        );
    }
}

#[test]
fn serve_hostile_sleep_runs_concurrently() {
    let server = hostile_server(&[]);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let sleeps: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| server.get("/sleep?ms=2000")))
            .collect();
        for sleep in sleeps {
            let response = sleep.join().expect("sleep thread");
            assert_eq!(
                (response.status, response.text().as_str()),
                (200, "slept 2000\n"),
                "{}",
                response.summary()
            );
        }
    });
    // Four 2 s sleeps one after the other would take 8 s.
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(7500),
        "four sleeps of 2 s took {elapsed:?}: serialised"
    );
}

#[test]
fn serve_hostile_content_length_over_the_limit_is_refused_before_the_handler_runs() {
    let server = hostile_server(&["--max-request-body-kib", "1"]);
    let route = stem(&hostile());
    for target in ["/print", "/ok"] {
        let response = server.send(&Request::new("POST", target).body(vec![b'x'; 8 * 1024]));
        assert_host_answer(&response, 413, &route, &format!("POST {target} with 8 KiB"));
    }
    settle();
    assert!(
        !server.stderr().contains("hostile stdout line"),
        "the handler ran for a request refused by its content-length:\n{}",
        server.stderr_tail()
    );
    server.assert_ok("the refusals");
}

#[test]
fn serve_hostile_deadline_covers_async_waits_and_slow_request_bodies() {
    let server = hostile_server(&["--timeout-ms", "1500"]);
    let route = stem(&hostile());
    let bound = Duration::from_millis(1500 + 5000);
    // A handler waiting on a host timer.
    let response = server.get("/sleep?ms=20000");
    assert_host_answer(
        &response,
        504,
        &route,
        "/sleep?ms=20000 under a 1.5 s deadline",
    );
    assert!(
        response.elapsed <= bound,
        "answered after {:?}",
        response.elapsed
    );
    // A handler waiting on a request body that never comes.
    let request = Request::new("POST", "/echo");
    let mut conn = request.open(server.addr()).expect("connect");
    let head = format!(
        "POST /echo HTTP/1.1\r\nhost: {}\r\ncontent-length: 100\r\nconnection: close\r\n\r\n0123456789",
        server.addr()
    );
    conn.write_all(head.as_bytes()).expect("send");
    let response = read_response(&mut conn, "POST", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("a stalled body gets an answer: {e}"));
    assert_host_answer(&response, 504, &route, "/echo whose body stalls");
    assert!(
        response.elapsed <= bound,
        "answered after {:?}",
        response.elapsed
    );
    server.assert_ok("the deadlines");
}

/// `*.suffix` matches whole labels only. Names under `.invalid` never resolve (RFC 6761),
/// so an allowed request fails at DNS and a denied one with `HTTP-request-denied`: the
/// two are told apart without any network.
#[test]
fn serve_outbound_wildcards_match_whole_labels() {
    let server = hostile_server(&["--allow-http", "http://*.example.invalid"]);
    for url in [
        "http://a.example.invalid/",
        "http://a.b.example.invalid/x",
        "http://A.Example.INVALID/",
    ] {
        let response = server.get(&outbound(url));
        let text = response.text();
        assert!(
            response.status == 502
                && text.starts_with("error ")
                && text != "error HTTP-request-denied\n",
            "{url} is under *.example.invalid (it may only fail to resolve): {}",
            response.summary()
        );
    }
    for url in [
        "http://example.invalid/",
        "http://xexample.invalid/",
        "http://a.example.invalid.evil.invalid/",
        "http://a.example.invalid:8080/",
        "https://a.example.invalid/",
    ] {
        let response = server.get(&outbound(url));
        assert_eq!(
            (response.status, response.text().as_str()),
            (502, "error HTTP-request-denied\n"),
            "{url} is not under http://*.example.invalid"
        );
    }
}
