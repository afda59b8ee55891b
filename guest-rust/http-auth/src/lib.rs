//! `http-auth`: a `wasi:http/proxy` handler that checks an HMAC-signed bearer token.
//!
//! The token is `P.S`: P is the base64url (no padding) claims JSON, S the base64url (no
//! padding) HMAC-SHA256 of P's ASCII text under the config value `auth-key`. The claims
//! need a non-empty string `sub` and an integer `exp` (Unix seconds) in the future. The
//! decision rules, in order, are in `rule::decide`; every answer is JSON.

mod rule;

use http_common::bindings::exports::wasi::http::incoming_handler::Guest;
use http_common::bindings::wasi::clocks::wall_clock;
use http_common::bindings::wasi::config::store;
use http_common::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use rule::{Answer, decide};

struct Auth;

impl Guest for Auth {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let key = store::get("auth-key").ok().flatten();
        let authorization = request.headers().get("authorization").into_iter().next();
        let now = wall_clock::now().seconds;
        let answer = decide(key.as_deref(), authorization.as_deref(), now);
        respond(response_out, answer);
    }
}

fn respond(response_out: ResponseOutparam, answer: Answer) {
    let mut headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
    if answer.status == 401 {
        headers.push(("www-authenticate".to_owned(), b"Bearer".to_vec()));
    }
    if let Some(identity) = answer.identity {
        headers.push(("x-identity".to_owned(), identity.into_bytes()));
    }
    http_common::respond(
        response_out,
        answer.status,
        &headers,
        answer.body.as_bytes(),
    );
}

http_common::bindings::export!(Auth);
