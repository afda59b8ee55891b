//! The Rust and the Go build of `http-auth` and `http-geo`, served with the same
//! configuration, answer every request of a shared table identically (status,
//! content-type, location, x-identity, www-authenticate, body); and where the contract
//! fixes the answer, both give exactly that answer (so that both being wrong the same way
//! fails too).
//!
//! Cases the contract leaves open are in tables of their own ("unspecified"): there only
//! the agreement of the two builds is checked, which the contract demands byte for byte.

use std::fmt::Write as _;
use std::net::SocketAddr;

use super::*;

/// The HMAC key of the auth servers: its UTF-8 bytes, non-ASCII included.
const KEY: &str = "s3cret-ключ-🔑";

/// What a response is compared on.
#[derive(Clone, PartialEq, Eq)]
struct Observed {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    x_identity: Option<String>,
    www_authenticate: Option<String>,
    body: Vec<u8>,
}

impl Observed {
    fn of(response: &Response) -> Observed {
        Observed {
            status: response.status,
            content_type: response.header("content-type"),
            location: response.header("location"),
            x_identity: response.header("x-identity"),
            www_authenticate: response.header("www-authenticate"),
            body: response.body.clone(),
        }
    }
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ct={:?}", self.status, self.content_type)?;
        if let Some(l) = &self.location {
            write!(f, " location={l:?}")?;
        }
        if let Some(x) = &self.x_identity {
            write!(f, " x-identity={x:?}")?;
        }
        if let Some(w) = &self.www_authenticate {
            write!(f, " www-authenticate={w:?}")?;
        }
        write!(f, " body={:?}", String::from_utf8_lossy(&self.body))
    }
}

/// The answer the contract fixes. `www_authenticate: None` leaves that header unchecked
/// (the contract only requires it on 401s).
#[derive(Clone, Debug)]
struct Expected {
    status: u16,
    content_type: String,
    location: Option<String>,
    x_identity: Option<String>,
    www_authenticate: Option<Option<String>>,
    body: Vec<u8>,
}

impl Expected {
    fn matches(&self, seen: &Observed) -> bool {
        seen.status == self.status
            && seen.content_type.as_deref() == Some(self.content_type.as_str())
            && seen.location == self.location
            && seen.x_identity == self.x_identity
            && self
                .www_authenticate
                .as_ref()
                .is_none_or(|w| &seen.www_authenticate == w)
            && seen.body == self.body
    }

    fn describe(&self) -> String {
        let mut s = format!("{} ct={:?}", self.status, self.content_type);
        if let Some(l) = &self.location {
            let _ = write!(s, " location={l:?}");
        }
        if let Some(x) = &self.x_identity {
            let _ = write!(s, " x-identity={x:?}");
        }
        if let Some(Some(w)) = &self.www_authenticate {
            let _ = write!(s, " www-authenticate={w:?}");
        }
        let _ = write!(s, " body={:?}", String::from_utf8_lossy(&self.body));
        s
    }
}

/// How a case reaches the server.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// The address the server printed.
    Listening,
    /// 127.0.0.1 at the server's port (on a dual-stack server: an IPv4-mapped peer).
    Ipv4Loopback,
}

struct Case {
    name: String,
    request: Request,
    via: Via,
    expected: Option<Expected>,
}

fn case(name: impl Into<String>, request: Request, expected: Option<Expected>) -> Case {
    Case {
        name: name.into(),
        request,
        via: Via::Listening,
        expected,
    }
}

/// Sends every case to both servers; fails listing every disagreement and every
/// departure from the contract.
fn run_table(what: &str, rust: &Server, go: &Server, cases: &[Case]) {
    let mut problems = Vec::new();
    for case in cases {
        let observe = |server: &Server| {
            let addr = match case.via {
                Via::Listening => server.addr(),
                Via::Ipv4Loopback => SocketAddr::from(([127, 0, 0, 1], server.addr().port())),
            };
            Observed::of(&server.send_to(addr, &case.request))
        };
        let (from_rust, from_go) = (observe(rust), observe(go));
        if from_rust != from_go {
            problems.push(format!(
                "[{}] Rust and Go differ:\n      rust {from_rust:?}\n      go   {from_go:?}",
                case.name
            ));
        }
        if let Some(expected) = &case.expected {
            for (language, seen) in [("rust", &from_rust), ("go", &from_go)] {
                if !expected.matches(seen) {
                    problems.push(format!(
                        "[{}] {language} departs from the contract:\n      want {}\n      got  {seen:?}",
                        case.name,
                        expected.describe()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} problems in {} cases:\n  {}",
        problems.len(),
        cases.len(),
        problems.join("\n  ")
    );
}

fn server_args(component: &Path, config: &[(&str, &str)]) -> Vec<String> {
    let mut args = vec![path_text(component)];
    for (key, value) in config {
        args.push("--config".to_owned());
        args.push(format!("{key}={value}"));
    }
    args
}

/// One Rust and one Go server of `job`, each with the same arguments after the component.
fn pair(job: &str, config: &[(&str, &str)]) -> (Server, Server) {
    let mut servers = start_all(vec![
        (
            server_args(&http_guest("rust", job), config),
            ServerOptions::default(),
        ),
        (
            server_args(&http_guest("go", job), config),
            ServerOptions::default(),
        ),
    ]);
    let go = servers.pop().expect("two servers");
    let rust = servers.pop().expect("two servers");
    (rust, go)
}

// ---------------------------------------------------------------------------------------
// http-auth

fn json_error(status: u16, message: &str) -> Expected {
    Expected {
        status,
        content_type: "application/json".to_owned(),
        location: None,
        x_identity: None,
        www_authenticate: if status == 401 {
            Some(Some("Bearer".to_owned()))
        } else {
            None
        },
        body: format!(r#"{{"error":{}}}"#, json_string(message)).into_bytes(),
    }
}

fn unauthorized(message: &str) -> Option<Expected> {
    Some(json_error(401, message))
}

fn authorized(sub: &str, exp: i64) -> Option<Expected> {
    let printable = sub.bytes().all(|b| (0x20..=0x7e).contains(&b));
    Some(Expected {
        status: 200,
        content_type: "application/json".to_owned(),
        location: None,
        x_identity: printable.then(|| sub.to_owned()),
        www_authenticate: None,
        body: format!(r#"{{"sub":{},"exp":{exp}}}"#, json_string(sub)).into_bytes(),
    })
}

fn bearer(value: &str) -> Request {
    Request::get("/auth").header("authorization", &format!("Bearer {value}"))
}

fn with_authorization(value: &[u8]) -> Request {
    Request::get("/auth").header_bytes("authorization", value)
}

/// A valid token whose signature's base64url holds `-` or `_` (so that the same
/// signature in the standard alphabet differs from it).
fn token_with_url_only_chars(future: i64) -> String {
    (0..)
        .map(|n| {
            token(
                KEY.as_bytes(),
                &claims(&json_string(&format!("alice{n}")), &future.to_string()),
            )
        })
        .find(|t| t.rsplit('.').next().is_some_and(|s| s.contains(['-', '_'])))
        .expect("some signature holds - or _")
}

/// Claims for `bob` or `bobb` (whichever), valid until `exp`, whose length is not a
/// multiple of 3: their base64 would need padding and has unused bits.
fn claims_needing_padding(exp: i64) -> Vec<u8> {
    ["bob", "bobb"]
        .iter()
        .map(|sub| claims(&json_string(sub), &exp.to_string()))
        .find(|c| c.len() % 3 != 0)
        .expect("one of two consecutive lengths")
}

fn auth_cases() -> Vec<Case> {
    let key = KEY.as_bytes();
    let now = now_secs();
    let future = now + 3600;
    let past = now - 60;
    let valid = token(key, &claims(r#""alice""#, &future.to_string()));
    let (valid_payload, valid_signature) = valid.split_once('.').expect("a dot");
    let sign = |claims_text: &str| token(key, claims_text.as_bytes());
    let mut signature_bytes = hmac(key, valid_payload.as_bytes());
    signature_bytes[7] ^= 0x01;
    let flipped = format!("{valid_payload}.{}", b64url(&signature_bytes));
    let full_signature = hmac(key, valid_payload.as_bytes());
    let url_token = token_with_url_only_chars(future);
    let standard_alphabet = url_token.replace('-', "+").replace('_', "/");
    // Claims whose base64url needs padding (length not a multiple of 3), padded, signed
    // as sent: still malformed.
    let unpadded_claims = claims_needing_padding(future);
    assert_ne!(
        unpadded_claims.len() % 3,
        0,
        "claims whose base64 needs padding"
    );
    let padded_payload = format!(
        "{}{}",
        b64url(&unpadded_claims),
        "=".repeat(3 - unpadded_claims.len() % 3)
    );

    let mut cases = vec![
        // Rule 2.
        case(
            "no authorization header",
            Request::get("/auth"),
            unauthorized("missing bearer token"),
        ),
        // Rule 3.
        case(
            "basic scheme",
            with_authorization(b"Basic dXNlcjpwYXNz"),
            unauthorized("not a bearer token"),
        ),
        case(
            "scheme alone",
            with_authorization(b"Bearer"),
            unauthorized("not a bearer token"),
        ),
        case(
            "scheme glued to the token",
            with_authorization(format!("Bearer{valid}").as_bytes()),
            unauthorized("not a bearer token"),
        ),
        case(
            "tab instead of the space",
            with_authorization(format!("Bearer\t{valid}").as_bytes()),
            unauthorized("not a bearer token"),
        ),
        case(
            "other scheme",
            with_authorization(format!("Token {valid}").as_bytes()),
            unauthorized("not a bearer token"),
        ),
        case(
            "scheme prefix only",
            with_authorization(format!("Bear {valid}").as_bytes()),
            unauthorized("not a bearer token"),
        ),
        case(
            "non-ASCII before the scheme",
            with_authorization(format!("ÄBearer {valid}").as_bytes()),
            unauthorized("not a bearer token"),
        ),
        // Rule 3: the scheme is case-insensitive.
        case(
            "lower-case scheme",
            with_authorization(format!("bearer {valid}").as_bytes()),
            authorized("alice", future),
        ),
        case(
            "upper-case scheme",
            with_authorization(format!("BEARER {valid}").as_bytes()),
            authorized("alice", future),
        ),
        case(
            "mixed-case scheme",
            with_authorization(format!("bEaReR {valid}").as_bytes()),
            authorized("alice", future),
        ),
        // Rule 4.
        case("no dot", bearer("abcdef"), unauthorized("malformed token")),
        case(
            "two dots",
            bearer(&format!("{valid}.{valid_signature}")),
            unauthorized("malformed token"),
        ),
        case("only a dot", bearer("."), unauthorized("malformed token")),
        case(
            "empty signature",
            bearer(&format!("{valid_payload}.")),
            unauthorized("malformed token"),
        ),
        case(
            "padded signature",
            bearer(&format!("{valid}=")),
            unauthorized("malformed token"),
        ),
        case(
            "padded payload, signed as sent",
            bearer(&token_with_payload(key, &padded_payload)),
            unauthorized("malformed token"),
        ),
        case(
            "standard-alphabet signature",
            bearer(&standard_alphabet),
            unauthorized("malformed token"),
        ),
        case(
            "payload with a character outside base64url",
            bearer(&token_with_payload(key, "eyJzdWIi*")),
            unauthorized("malformed token"),
        ),
        case(
            "payload of impossible length (1 mod 4)",
            bearer(&token_with_payload(key, "abcde")),
            unauthorized("malformed token"),
        ),
        case(
            "signature of 31 bytes",
            bearer(&format!(
                "{valid_payload}.{}",
                b64url(&full_signature[..31])
            )),
            unauthorized("malformed token"),
        ),
        case(
            "signature of 33 bytes",
            bearer(&format!(
                "{valid_payload}.{}",
                b64url(&[full_signature.as_slice(), &[0]].concat())
            )),
            unauthorized("malformed token"),
        ),
        case(
            "space inside the token",
            bearer(&format!("{valid_payload} .{valid_signature}")),
            unauthorized("malformed token"),
        ),
        case(
            "non-ASCII token",
            with_authorization("Bearer é.abc".as_bytes()),
            unauthorized("malformed token"),
        ),
        // Rule 4 before rule 5: a malformed token is malformed whatever its signature.
        case(
            "padded signature of the wrong key",
            bearer(&format!(
                "{}=",
                token(b"other", &claims(r#""alice""#, &future.to_string()))
            )),
            unauthorized("malformed token"),
        ),
        // Rule 5.
        case(
            "wrong key",
            bearer(&token(
                b"another key",
                &claims(r#""alice""#, &future.to_string()),
            )),
            unauthorized("bad signature"),
        ),
        case(
            "key with its last byte dropped",
            bearer(&token(
                &key[..key.len() - 1],
                &claims(r#""alice""#, &future.to_string()),
            )),
            unauthorized("bad signature"),
        ),
        case(
            "one signature bit flipped",
            bearer(&flipped),
            unauthorized("bad signature"),
        ),
        case(
            "signature of another payload",
            bearer(&format!(
                "{}.{valid_signature}",
                b64url(&claims(r#""mallory""#, &future.to_string()))
            )),
            unauthorized("bad signature"),
        ),
        case(
            "empty key",
            bearer(&token(b"", &claims(r#""alice""#, &future.to_string()))),
            unauthorized("bad signature"),
        ),
        // Rule 5 before 6 and 7: a bad signature over bad or expired claims is a bad signature.
        case(
            "bad signature over garbage claims",
            bearer(&token(b"nope", b"not json")),
            unauthorized("bad signature"),
        ),
        case(
            "bad signature over expired claims",
            bearer(&token(b"nope", &claims(r#""alice""#, &past.to_string()))),
            unauthorized("bad signature"),
        ),
        // Rule 6.
        case(
            "claims not JSON",
            bearer(&sign("not json")),
            unauthorized("malformed claims"),
        ),
        case(
            "empty claims",
            bearer(&token_with_payload(key, "")),
            unauthorized("malformed claims"),
        ),
        case(
            "claims an array",
            bearer(&sign(r#"[{"sub":"a","exp":1}]"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "claims a string",
            bearer(&sign(r#""alice""#)),
            unauthorized("malformed claims"),
        ),
        case(
            "claims null",
            bearer(&sign("null")),
            unauthorized("malformed claims"),
        ),
        case(
            "claims with trailing garbage",
            bearer(&sign(&format!(r#"{{"sub":"alice","exp":{future}}} x"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "claims with a second object",
            bearer(&sign(&format!(r#"{{"sub":"alice","exp":{future}}}{{}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "claims not UTF-8",
            bearer(&token(
                key,
                &[
                    br#"{"sub":"al"#.as_slice(),
                    b"\xff\xfe",
                    format!(r#"ice","exp":{future}}}"#).as_bytes(),
                ]
                .concat(),
            )),
            unauthorized("malformed claims"),
        ),
        case(
            "missing sub",
            bearer(&sign(&format!(r#"{{"exp":{future}}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "empty sub",
            bearer(&sign(&format!(r#"{{"sub":"","exp":{future}}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "numeric sub",
            bearer(&sign(&format!(r#"{{"sub":42,"exp":{future}}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "null sub",
            bearer(&sign(&format!(r#"{{"sub":null,"exp":{future}}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "array sub",
            bearer(&sign(&format!(r#"{{"sub":["alice"],"exp":{future}}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "missing exp",
            bearer(&sign(r#"{"sub":"alice"}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "float exp 1.5",
            bearer(&sign(r#"{"sub":"alice","exp":1.5}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "exponent exp 1e3",
            bearer(&sign(r#"{"sub":"alice","exp":1e3}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "future exp written as a float",
            bearer(&sign(&format!(r#"{{"sub":"alice","exp":{future}.0}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "future exp in exponent form",
            bearer(&sign(r#"{"sub":"alice","exp":4E9}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "string exp",
            bearer(&sign(&format!(r#"{{"sub":"alice","exp":"{future}"}}"#))),
            unauthorized("malformed claims"),
        ),
        case(
            "boolean exp",
            bearer(&sign(r#"{"sub":"alice","exp":true}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "null exp",
            bearer(&sign(r#"{"sub":"alice","exp":null}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "exp one past i64::MAX",
            bearer(&sign(r#"{"sub":"alice","exp":9223372036854775808}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "exp u64::MAX",
            bearer(&sign(r#"{"sub":"alice","exp":18446744073709551615}"#)),
            unauthorized("malformed claims"),
        ),
        case(
            "exp far beyond 64 bits",
            bearer(&sign(
                r#"{"sub":"alice","exp":123456789012345678901234567890}"#,
            )),
            unauthorized("malformed claims"),
        ),
        case(
            "exp 1E400",
            bearer(&sign(r#"{"sub":"alice","exp":1E400}"#)),
            unauthorized("malformed claims"),
        ),
        // Rule 6 before 7: bad claims that are also expired are malformed.
        case(
            "expired claims without sub",
            bearer(&sign(&format!(r#"{{"exp":{past}}}"#))),
            unauthorized("malformed claims"),
        ),
        // Rule 7.
        case(
            "expired a minute ago",
            bearer(&sign(&format!(r#"{{"sub":"alice","exp":{past}}}"#))),
            unauthorized("token expired"),
        ),
        case(
            "exp 0",
            bearer(&sign(r#"{"sub":"alice","exp":0}"#)),
            unauthorized("token expired"),
        ),
        case(
            "negative exp",
            bearer(&sign(r#"{"sub":"alice","exp":-5}"#)),
            unauthorized("token expired"),
        ),
        case(
            "exp i64::MIN",
            bearer(&sign(r#"{"sub":"alice","exp":-9223372036854775808}"#)),
            unauthorized("token expired"),
        ),
        // Rule 8.
        case("valid", bearer(&valid), authorized("alice", future)),
        case(
            "exp i64::MAX",
            bearer(&sign(r#"{"sub":"alice","exp":9223372036854775807}"#)),
            authorized("alice", i64::MAX),
        ),
        case(
            "members in the other order",
            bearer(&sign(&format!(r#"{{"exp":{future},"sub":"bob"}}"#))),
            authorized("bob", future),
        ),
        case(
            "other members ignored",
            bearer(&sign(&format!(
                r#"{{"iss":"x","sub":"carol","admin":true,"nested":{{"a":[1,2.5,null]}},"exp":{future}}}"#
            ))),
            authorized("carol", future),
        ),
        case(
            "whitespace in the claims",
            bearer(&sign(&format!(
                " {{ \"sub\" : \"dave\" ,\n\"exp\" : {future} }} "
            ))),
            authorized("dave", future),
        ),
        case(
            "escaped sub",
            bearer(&sign(&format!(
                r#"{{"sub":"\u0041lice\/x","exp":{future}}}"#
            ))),
            authorized("Alice/x", future),
        ),
        case(
            "sub with quote and backslash",
            bearer(&sign(&format!(r#"{{"sub":"a\"b\\c","exp":{future}}}"#))),
            authorized("a\"b\\c", future),
        ),
        case(
            "sub with HTML characters",
            bearer(&sign(&format!(r#"{{"sub":"<b>&amp;'","exp":{future}}}"#))),
            authorized("<b>&amp;'", future),
        ),
        case(
            "sub with spaces and tilde",
            bearer(&sign(&format!(r#"{{"sub":"a b ~","exp":{future}}}"#))),
            authorized("a b ~", future),
        ),
        case(
            "unicode sub",
            bearer(&sign(&format!(r#"{{"sub":"José ☃","exp":{future}}}"#))),
            authorized("José ☃", future),
        ),
        case(
            "sub of an astral character escaped as a surrogate pair",
            bearer(&sign(&format!(
                r#"{{"sub":"x\ud83d\ude00","exp":{future}}}"#
            ))),
            authorized("x😀", future),
        ),
        case(
            "sub with U+2028 and U+2029",
            bearer(&sign(&format!(
                "{{\"sub\":\"a\u{2028}b\u{2029}\",\"exp\":{future}}}"
            ))),
            authorized("a\u{2028}b\u{2029}", future),
        ),
        case(
            "sub with a tab and a newline",
            bearer(&sign(&format!(r#"{{"sub":"a\tb\nc","exp":{future}}}"#))),
            authorized("a\tb\nc", future),
        ),
        case(
            "sub with control characters",
            bearer(&sign(&format!(
                r#"{{"sub":"\u0000\u0001\u001f\b\f\r","exp":{future}}}"#
            ))),
            authorized("\u{0}\u{1}\u{1f}\u{8}\u{c}\r", future),
        ),
        case(
            "sub with DEL",
            bearer(&sign(&format!(r#"{{"sub":"del\u007f","exp":{future}}}"#))),
            authorized("del\u{7f}", future),
        ),
    ];
    cases.push(case(
        "sub of printable ASCII edges",
        bearer(&sign(&format!(r#"{{"sub":"! ~","exp":{future}}}"#))),
        authorized("! ~", future),
    ));
    assert!(cases.len() >= 25);
    cases
}

/// Inputs the contract does not decide; the two builds must still agree.
fn auth_unspecified_cases() -> Vec<Case> {
    let key = KEY.as_bytes();
    let future = now_secs() + 3600;
    let sign = |claims_text: &str| token(key, claims_text.as_bytes());
    let valid = token(key, &claims(r#""alice""#, &future.to_string()));
    let (payload, signature) = valid.split_once('.').expect("a dot");
    // The last character of a 32-byte signature carries 2 unused bits: set one.
    let mut sig_chars: Vec<u8> = signature.bytes().collect();
    let last = sig_chars.pop().expect("a signature");
    let index = B64URL.iter().position(|&c| c == last).expect("base64url");
    assert_eq!(index & 3, 0, "unused bits are zero in a canonical encoding");
    sig_chars.push(B64URL[index | 1]);
    let noncanonical_signature = format!("{payload}.{}", String::from_utf8_lossy(&sig_chars));
    // Same for a payload whose length leaves unused bits.
    let short_claims = claims_needing_padding(future);
    let mut payload_chars: Vec<u8> = b64url(&short_claims).into_bytes();
    let last = payload_chars.pop().expect("a payload");
    let index = B64URL.iter().position(|&c| c == last).expect("base64url");
    payload_chars.push(B64URL[index | 1]);
    let noncanonical_payload = token_with_payload(key, &String::from_utf8_lossy(&payload_chars));
    vec![
        case(
            "two spaces after the scheme",
            with_authorization(format!("Bearer  {valid}").as_bytes()),
            None,
        ),
        case(
            "signature with non-zero unused bits",
            bearer(&noncanonical_signature),
            None,
        ),
        case(
            "payload with non-zero unused bits",
            bearer(&noncanonical_payload),
            None,
        ),
        case(
            "duplicate sub",
            bearer(&sign(&format!(r#"{{"sub":"a","sub":"b","exp":{future}}}"#))),
            None,
        ),
        case(
            "duplicate exp",
            bearer(&sign(&format!(r#"{{"sub":"a","exp":1,"exp":{future}}}"#))),
            None,
        ),
        case("exp -0", bearer(&sign(r#"{"sub":"alice","exp":-0}"#)), None),
        case(
            "lone surrogate in sub",
            bearer(&sign(&format!(r#"{{"sub":"x\ud800","exp":{future}}}"#))),
            None,
        ),
        case(
            "byte-order mark before the claims",
            bearer(&sign(&format!(
                "\u{feff}{{\"sub\":\"a\",\"exp\":{future}}}"
            ))),
            None,
        ),
        case(
            "two authorization headers",
            Request::get("/auth")
                .header("authorization", &format!("Bearer {valid}"))
                .header("authorization", "Basic eA"),
            None,
        ),
        case(
            "sub of spaces only",
            bearer(&sign(&format!(r#"{{"sub":"   ","exp":{future}}}"#))),
            None,
        ),
    ]
}

#[test]
fn serve_auth_rust_and_go_agree_with_each_other_and_the_contract() {
    let (rust, go) = pair("auth", &[("auth-key", KEY)]);
    run_table("http-auth with a key", &rust, &go, &auth_cases());
}

#[test]
fn serve_auth_rust_and_go_agree_where_the_contract_is_silent() {
    let (rust, go) = pair("auth", &[("auth-key", KEY)]);
    run_table(
        "http-auth, unspecified inputs",
        &rust,
        &go,
        &auth_unspecified_cases(),
    );
}

#[test]
fn serve_auth_without_a_key_is_a_500_for_every_request() {
    let (rust, go) = pair("auth", &[("unrelated", "x")]);
    let valid = token(
        KEY.as_bytes(),
        &claims(r#""alice""#, &(now_secs() + 3600).to_string()),
    );
    let cases = vec![
        case(
            "no header",
            Request::get("/auth"),
            Some(json_error(500, "auth-key is not configured")),
        ),
        case(
            "a token",
            bearer(&valid),
            Some(json_error(500, "auth-key is not configured")),
        ),
        case(
            "not bearer",
            with_authorization(b"Basic eA"),
            Some(json_error(500, "auth-key is not configured")),
        ),
    ];
    run_table("http-auth without auth-key", &rust, &go, &cases);
}

// ---------------------------------------------------------------------------------------
// http-geo

fn geo(domain: &str, region: &str, source: &str, target: &str, json: bool) -> Option<Expected> {
    let location = format!("https://{region}.{domain}{target}");
    Some(if json {
        Expected {
            status: 200,
            content_type: "application/json".to_owned(),
            location: None,
            x_identity: None,
            www_authenticate: Some(None),
            body: format!(
                r#"{{"region":{},"source":{},"location":{}}}"#,
                json_string(region),
                json_string(source),
                json_string(&location)
            )
            .into_bytes(),
        }
    } else {
        Expected {
            status: 307,
            content_type: "text/plain; charset=utf-8".to_owned(),
            location: Some(location.clone()),
            x_identity: None,
            www_authenticate: Some(None),
            body: format!("redirecting to {location}\n").into_bytes(),
        }
    })
}

fn bad_entry(entry: &str) -> Option<Expected> {
    let mut expected = json_error(500, &format!("bad ip-ranges entry: {entry}"));
    expected.www_authenticate = Some(None);
    Some(expected)
}

fn country(target: &str, value: &str) -> Request {
    Request::get(target).header("x-geo-country", value)
}

/// The main geo server: ranges with a longest-prefix choice for the peer 127.0.0.1, and
/// whitespace around the entries.
const GEO_DOMAIN: &str = "geo.test";
const GEO_DEFAULT: &str = "ap-south";
const GEO_RANGES: &str =
    " 10.0.0.0/8=us-east , 127.0.0.0/8=sa-east,127.0.0.1/32=eu-west,\t2001:db8::/32=us-east ";

fn geo_cases() -> Vec<Case> {
    let d = GEO_DOMAIN;
    let redirect = |region: &str, source: &str, target: &str| geo(d, region, source, target, false);
    let json = |region: &str, source: &str, target: &str| geo(d, region, source, target, true);
    let mut cases = Vec::new();
    // Rule 1: a country of each region, any case.
    for (code, region) in [
        ("US", "us-east"),
        ("CA", "us-east"),
        ("mx", "us-east"),
        ("BR", "sa-east"),
        ("ar", "sa-east"),
        ("Cl", "sa-east"),
        ("CO", "sa-east"),
        ("PE", "sa-east"),
        ("GB", "eu-west"),
        ("ie", "eu-west"),
        ("fR", "eu-west"),
        ("DE", "eu-west"),
        ("CH", "eu-west"),
        ("AT", "eu-west"),
        ("SE", "eu-west"),
        ("PL", "eu-west"),
        ("FI", "eu-west"),
        ("IN", "ap-south"),
        ("sg", "ap-south"),
        ("JP", "ap-south"),
        ("NZ", "ap-south"),
        ("VN", "ap-south"),
        ("ph", "ap-south"),
    ] {
        cases.push(case(
            format!("country {code}"),
            country("/where", code),
            redirect(region, "country", "/where"),
        ));
    }
    cases.extend([
        // Rule 1 falls through to 2 (the peer 127.0.0.1: the /32 beats the /8).
        case(
            "unlisted country",
            country("/where", "ZZ"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "unlisted country CN",
            country("/where", "CN"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "three letters",
            country("/where", "USA"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "one letter",
            country("/where", "U"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "letter and digit",
            country("/where", "U1"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "empty country",
            country("/where", ""),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "country with inner space",
            country("/where", "U S"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "full-width letters",
            country("/where", "ＵＳ"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "non-UTF-8 country",
            Request::get("/where").header_bytes("x-geo-country", b"\xffS"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "no country",
            Request::get("/where"),
            redirect("eu-west", "address", "/where"),
        ),
        // The client cannot choose its address.
        case(
            "client-sent client ip",
            Request::get("/where").header("x-witplug-client-ip", "10.1.2.3"),
            redirect("eu-west", "address", "/where"),
        ),
        case(
            "two client-sent client ips",
            Request::get("/where")
                .header("x-witplug-client-ip", "10.1.2.3")
                .header("X-Witplug-Client-IP", "2001:db8::1"),
            redirect("eu-west", "address", "/where"),
        ),
        // The location carries the path and query as received.
        case(
            "root path",
            country("/", "US"),
            redirect("us-east", "country", "/"),
        ),
        case(
            "path and query",
            country("/a/b/c?q=a%20b&x=%2F&y", "US"),
            redirect("us-east", "country", "/a/b/c?q=a%20b&x=%2F&y"),
        ),
        case(
            "encoded non-ASCII path",
            country("/caf%C3%A9/%E2%98%83", "BR"),
            redirect("sa-east", "country", "/caf%C3%A9/%E2%98%83"),
        ),
        case(
            "dot segments kept",
            country("/a/./b/../c", "US"),
            redirect("us-east", "country", "/a/./b/../c"),
        ),
        case(
            "POST is routed the same",
            Request::new("POST", "/where")
                .header("x-geo-country", "JP")
                .body(b"ignored".to_vec()),
            redirect("ap-south", "country", "/where"),
        ),
        // JSON or redirect.
        case(
            "format=json",
            country("/where?format=json", "FR"),
            json("eu-west", "country", "/where?format=json"),
        ),
        case(
            "format=json among other pairs",
            country("/where?a=1&format=json&b", "FR"),
            json("eu-west", "country", "/where?a=1&format=json&b"),
        ),
        case(
            "format=json, address source",
            Request::get("/where?format=json"),
            json("eu-west", "address", "/where?format=json"),
        ),
        case(
            "format=jsonx",
            country("/where?format=jsonx", "FR"),
            redirect("eu-west", "country", "/where?format=jsonx"),
        ),
        case(
            "xformat=json",
            country("/where?xformat=json", "FR"),
            redirect("eu-west", "country", "/where?xformat=json"),
        ),
        case(
            "format=JSON",
            country("/where?format=JSON", "FR"),
            redirect("eu-west", "country", "/where?format=JSON"),
        ),
        case(
            "FORMAT=json",
            country("/where?FORMAT=json", "FR"),
            redirect("eu-west", "country", "/where?FORMAT=json"),
        ),
        case(
            "format= empty",
            country("/where?format=", "FR"),
            redirect("eu-west", "country", "/where?format="),
        ),
        case(
            "format=json inside another value",
            country("/where?a=format=json", "FR"),
            redirect("eu-west", "country", "/where?a=format=json"),
        ),
        case(
            "format=json in the path",
            country("/format=json", "FR"),
            redirect("eu-west", "country", "/format=json"),
        ),
        case(
            "accept application/json",
            country("/where", "DE").header("accept", "application/json"),
            json("eu-west", "country", "/where"),
        ),
        case(
            "accept list with application/json",
            country("/where", "DE").header("accept", "text/html, application/json;q=0.9"),
            json("eu-west", "country", "/where"),
        ),
        case(
            "accept text/html",
            country("/where", "DE").header("accept", "text/html"),
            redirect("eu-west", "country", "/where"),
        ),
        case(
            "accept */*",
            country("/where", "DE").header("accept", "*/*"),
            redirect("eu-west", "country", "/where"),
        ),
        case(
            "accept json with format=json",
            country("/where?format=json", "DE").header("accept", "application/json"),
            json("eu-west", "country", "/where?format=json"),
        ),
    ]);
    cases
}

fn geo_unspecified_cases() -> Vec<Case> {
    vec![
        case(
            "long s upper-cases to US in Unicode",
            country("/where", "uſ"),
            None,
        ),
        case("dotless i", country("/where", "ıN"), None),
        case(
            "percent-encoded format=json",
            country("/where?format=%6Ason", "FR"),
            None,
        ),
        case(
            "accept in upper case",
            country("/where", "FR").header("accept", "APPLICATION/JSON"),
            None,
        ),
        case(
            "accept application/jsonp",
            country("/where", "FR").header("accept", "application/jsonp"),
            None,
        ),
        case("empty query", country("/where?", "FR"), None),
        case(
            "format=json twice with a semicolon",
            country("/where?format=json;x", "FR"),
            None,
        ),
        case(
            "two country headers",
            Request::get("/where")
                .header("x-geo-country", "ZZ")
                .header("x-geo-country", "US"),
            None,
        ),
        case(
            "absolute-form request target",
            country("http://elsewhere.example/where?q", "FR"),
            None,
        ),
        case(
            "OPTIONS method",
            Request::new("OPTIONS", "/where").header("x-geo-country", "FR"),
            None,
        ),
    ]
}

fn geo_config() -> Vec<(&'static str, &'static str)> {
    vec![
        ("domain", GEO_DOMAIN),
        ("default-region", GEO_DEFAULT),
        ("ip-ranges", GEO_RANGES),
    ]
}

#[test]
fn serve_geo_rust_and_go_agree_with_each_other_and_the_contract() {
    let (rust, go) = pair("geo", &geo_config());
    let cases = geo_cases();
    assert!(cases.len() >= 15);
    run_table("http-geo", &rust, &go, &cases);
}

#[test]
fn serve_geo_rust_and_go_agree_where_the_contract_is_silent() {
    let (rust, go) = pair("geo", &geo_config());
    run_table(
        "http-geo, unspecified inputs",
        &rust,
        &go,
        &geo_unspecified_cases(),
    );
}

/// An app file of one geo route per `(prefix, config)`, every route with `component`.
pub fn geo_app(dir: &Path, component: &Path, routes: &[(&str, &[(&str, &str)])]) -> PathBuf {
    let mut toml = String::new();
    for (prefix, config) in routes {
        let name = format!("geo{}", prefix.replace('/', "-"));
        let _ = write!(
            toml,
            "[[route]]\nname = {}\nprefix = {}\ncomponent = {}\n[route.policy.config]\n",
            json_string(&name),
            json_string(prefix),
            json_string(&path_text(component))
        );
        for (key, value) in *config {
            let _ = writeln!(toml, "{} = {}", json_string(key), json_string(value));
        }
        toml.push('\n');
    }
    let file = dir.join(format!("{}.toml", stem(component)));
    std::fs::write(&file, toml).expect("write the app file");
    file
}

/// Geo routes with other configurations: defaults, no matching range, longest prefix
/// whatever the order, and a malformed entry of each kind.
const V4_ROUTES: &[(&str, &[(&str, &str)])] = &[
    ("/default", &[]),
    ("/domain", &[("domain", "x.example.org")]),
    ("/wide", &[("ip-ranges", "127.0.0.0/8=sa-east")]),
    (
        "/nomatch",
        &[
            ("default-region", "eu-west"),
            ("ip-ranges", "10.0.0.0/8=us-east, 2001:db8::/32=ap-south"),
        ],
    ),
    (
        "/zero",
        &[("ip-ranges", "0.0.0.0/0=ap-south,127.0.0.0/8=sa-east")],
    ),
    (
        "/order",
        &[(
            "ip-ranges",
            "127.0.0.1/32=eu-west,127.0.0.0/8=sa-east,0.0.0.0/0=us-east",
        )],
    ),
    (
        "/bad-length",
        &[("ip-ranges", "127.0.0.0/8=sa-east, 10.0.0.0/33=us-east")],
    ),
    (
        "/bad-garbage",
        &[("ip-ranges", "127.0.0.1/32=eu-west,garbage ")],
    ),
    ("/bad-octet", &[("ip-ranges", "  300.1.2.3/8=us-east  ")]),
    ("/bad-no-region", &[("ip-ranges", "127.0.0.0/8")]),
    (
        "/bad-v6",
        &[("ip-ranges", "127.0.0.0/8=sa-east,2001:db8::/129=eu-west")],
    ),
    ("/s-empty-region", &[("ip-ranges", "127.0.0.0/8=")]),
    (
        "/s-trailing-comma",
        &[("ip-ranges", "127.0.0.0/8=sa-east,")],
    ),
    ("/s-host-bits", &[("ip-ranges", "127.0.0.5/8=sa-east")]),
    ("/s-v6-any", &[("ip-ranges", "::/0=us-east")]),
    ("/s-no-length", &[("ip-ranges", "127.0.0.1=eu-west")]),
    (
        "/s-space-around-equals",
        &[("ip-ranges", "127.0.0.0/8 = sa-east")],
    ),
    ("/s-empty", &[("ip-ranges", "")]),
    (
        "/s-mapped-range",
        &[("ip-ranges", "::ffff:127.0.0.0/104=eu-west")],
    ),
];

fn v4_cases() -> Vec<Case> {
    let ex = |region: &str, source: &str, target: &str| {
        geo("example.com", region, source, target, false)
    };
    let mut cases = vec![
        case(
            "defaults",
            Request::get("/default"),
            ex("us-east", "default", "/default"),
        ),
        case(
            "defaults, json",
            Request::get("/default?format=json"),
            geo(
                "example.com",
                "us-east",
                "default",
                "/default?format=json",
                true,
            ),
        ),
        case(
            "defaults with a country",
            country("/default/x", "DE"),
            ex("eu-west", "country", "/default/x"),
        ),
        case(
            "defaults, unlisted country",
            country("/default", "ZZ"),
            ex("us-east", "default", "/default"),
        ),
        case(
            "domain",
            Request::get("/domain"),
            geo("x.example.org", "us-east", "default", "/domain", false),
        ),
        case(
            "one range",
            Request::get("/wide"),
            ex("sa-east", "address", "/wide"),
        ),
        case(
            "no range matches",
            Request::get("/nomatch"),
            ex("eu-west", "default", "/nomatch"),
        ),
        case(
            "longest over 0.0.0.0/0",
            Request::get("/zero"),
            ex("sa-east", "address", "/zero"),
        ),
        case(
            "longest, written first",
            Request::get("/order"),
            ex("eu-west", "address", "/order"),
        ),
        case(
            "bad prefix length",
            Request::get("/bad-length"),
            bad_entry("10.0.0.0/33=us-east"),
        ),
        case(
            "bad entry, even after a match",
            Request::get("/bad-garbage"),
            bad_entry("garbage"),
        ),
        case(
            "bad octet, entry trimmed",
            Request::get("/bad-octet?format=json"),
            bad_entry("300.1.2.3/8=us-east"),
        ),
        case(
            "no region",
            country("/bad-no-region", "ZZ"),
            bad_entry("127.0.0.0/8"),
        ),
        case(
            "bad IPv6 length",
            Request::get("/bad-v6"),
            bad_entry("2001:db8::/129=eu-west"),
        ),
        // A country decides before the ranges are consulted: no error.
        case(
            "bad ranges not consulted",
            country("/bad-length", "US"),
            ex("us-east", "country", "/bad-length"),
        ),
        case(
            "bad ranges not consulted, json",
            country("/bad-garbage?format=json", "gb"),
            geo(
                "example.com",
                "eu-west",
                "country",
                "/bad-garbage?format=json",
                true,
            ),
        ),
    ];
    for (prefix, _) in V4_ROUTES.iter().filter(|(p, _)| p.starts_with("/s-")) {
        cases.push(case(
            format!("unspecified {prefix}"),
            Request::get(prefix),
            None,
        ));
    }
    cases
}

const V6_ROUTES: &[(&str, &[(&str, &str)])] = &[
    (
        "/v6",
        &[(
            "ip-ranges",
            "::1/128=ap-south, 127.0.0.0/8=sa-east, 2001:db8::/32=eu-west",
        )],
    ),
    (
        "/v6-longest",
        &[(
            "ip-ranges",
            "::/0=us-east, ::1/128=ap-south, 10.0.0.0/8=eu-west",
        )],
    ),
    (
        "/v6-nomatch",
        &[
            ("default-region", "sa-east"),
            ("ip-ranges", "2001:db8::/32=eu-west,10.0.0.0/8=us-east"),
        ],
    ),
    ("/v6-any", &[("ip-ranges", "::/0=us-east")]),
    (
        "/v6-mapped-range",
        &[("ip-ranges", "::ffff:127.0.0.0/104=eu-west")],
    ),
];

fn v6_cases() -> Vec<Case> {
    let ex = |region: &str, source: &str, target: &str| {
        geo("example.com", region, source, target, false)
    };
    let via_v4 = |mut c: Case| {
        c.via = Via::Ipv4Loopback;
        c
    };
    vec![
        case(
            "::1 exact",
            Request::get("/v6"),
            ex("ap-south", "address", "/v6"),
        ),
        via_v4(case(
            "IPv4-mapped peer matches an IPv4 range",
            Request::get("/v6"),
            ex("sa-east", "address", "/v6"),
        )),
        via_v4(case(
            "IPv4-mapped peer, json",
            Request::get("/v6?format=json"),
            geo("example.com", "sa-east", "address", "/v6?format=json", true),
        )),
        case(
            "::1 longest over ::/0",
            Request::get("/v6-longest"),
            ex("ap-south", "address", "/v6-longest"),
        ),
        case(
            "::1 matches no range",
            Request::get("/v6-nomatch"),
            ex("sa-east", "default", "/v6-nomatch"),
        ),
        via_v4(case(
            "IPv4-mapped peer matches no range",
            Request::get("/v6-nomatch"),
            ex("sa-east", "default", "/v6-nomatch"),
        )),
        case(
            "::1 in ::/0",
            Request::get("/v6-any"),
            ex("us-east", "address", "/v6-any"),
        ),
        case(
            "client-sent address over IPv6",
            Request::get("/v6").header("x-witplug-client-ip", "127.0.0.1"),
            ex("ap-south", "address", "/v6"),
        ),
        via_v4(case(
            "unspecified: mapped peer and ::/0",
            Request::get("/v6-any"),
            None,
        )),
        via_v4(case(
            "unspecified: mapped peer and a mapped range",
            Request::get("/v6-mapped-range"),
            None,
        )),
        case(
            "unspecified: ::1 and a mapped range",
            Request::get("/v6-mapped-range"),
            None,
        ),
    ]
}

#[test]
fn serve_geo_configurations_agree_with_each_other_and_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rust_dir = dir.path().join("rust");
    let go_dir = dir.path().join("go");
    std::fs::create_dir(&rust_dir).expect("mkdir");
    std::fs::create_dir(&go_dir).expect("mkdir");
    let (rust_geo, go_geo) = (http_guest("rust", "geo"), http_guest("go", "geo"));
    let app_args = |file: PathBuf, addr: &str| {
        vec![
            "--app".to_owned(),
            path_text(&file),
            "--addr".to_owned(),
            addr.to_owned(),
        ]
    };
    let v4 = |lang_dir: &Path, component: &Path| {
        app_args(geo_app(lang_dir, component, V4_ROUTES), "127.0.0.1:0")
    };
    let v6_dir = |d: &Path| {
        let v6 = d.join("v6");
        std::fs::create_dir_all(&v6).expect("mkdir");
        v6
    };
    let v6 = |lang_dir: &Path, component: &Path| {
        app_args(geo_app(&v6_dir(lang_dir), component, V6_ROUTES), "[::]:0")
    };
    let mut servers = start_all(vec![
        (v4(&rust_dir, &rust_geo), ServerOptions::default()),
        (v4(&go_dir, &go_geo), ServerOptions::default()),
        (v6(&rust_dir, &rust_geo), ServerOptions::default()),
        (v6(&go_dir, &go_geo), ServerOptions::default()),
    ]);
    let go_v6 = servers.pop().expect("server");
    let rust_v6 = servers.pop().expect("server");
    let go_v4 = servers.pop().expect("server");
    let rust_v4 = servers.pop().expect("server");
    assert!(
        rust_v6.addr().is_ipv6(),
        "a server on [::]:0 is reached over IPv6"
    );
    run_table(
        "http-geo configurations (IPv4)",
        &rust_v4,
        &go_v4,
        &v4_cases(),
    );
    run_table(
        "http-geo configurations (dual stack)",
        &rust_v6,
        &go_v6,
        &v6_cases(),
    );
}
