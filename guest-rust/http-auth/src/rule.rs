//! The bearer-token decision, free of bindings: the guest calls it, and the serve
//! benchmark's native baseline (`bench/native-http`) compiles this same file natively.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use http_common::{error_body, json_string};
use serde_json::value::RawValue;
use sha2::Sha256;

/// A decision: status, JSON body, and the identity for `x-identity` when it is printable.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub identity: Option<String>,
}

impl Answer {
    fn error(status: u16, message: &str) -> Answer {
        Answer {
            status,
            body: error_body(message),
            identity: None,
        }
    }
}

/// The checks of the token, first failure wins. `key` is the config value `auth-key`,
/// `authorization` the first `authorization` header, `now` the wall clock in seconds.
pub fn decide(key: Option<&str>, authorization: Option<&[u8]>, now: u64) -> Answer {
    let Some(key) = key else {
        return Answer::error(500, "auth-key is not configured");
    };
    let Some(value) = authorization else {
        return Answer::error(401, "missing bearer token");
    };
    let token = match value.split_at_checked(7) {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case(b"bearer ")
                && !rest.is_empty()
                && !rest.starts_with(b" ") =>
        {
            rest
        }
        _ => return Answer::error(401, "not a bearer token"),
    };

    let mut parts = token.split(|&b| b == b'.');
    let (Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next()) else {
        return Answer::error(401, "malformed token");
    };
    let (Ok(claims), Ok(signature)) = (
        URL_SAFE_NO_PAD.decode(payload),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return Answer::error(401, "malformed token");
    };
    if signature.len() != 32 {
        return Answer::error(401, "malformed token");
    }

    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        // HMAC takes keys of any length.
        return Answer::error(500, "auth-key is not configured");
    };
    mac.update(payload);
    // Constant time.
    if mac.verify_slice(&signature).is_err() {
        return Answer::error(401, "bad signature");
    }

    let Some((sub, exp)) = parse_claims(&claims) else {
        return Answer::error(401, "malformed claims");
    };
    if i128::from(exp) <= i128::from(now) {
        return Answer::error(401, "token expired");
    }

    let mut body = String::from("{\"sub\":");
    json_string(&mut body, &sub);
    body.push_str(",\"exp\":");
    body.push_str(&exp.to_string());
    body.push('}');
    let printable = sub.bytes().all(|b| (0x20..=0x7e).contains(&b));
    Answer {
        status: 200,
        body,
        identity: printable.then_some(sub),
    }
}

/// `sub` and `exp` of a claims object: `sub` a non-empty string, `exp` a JSON integer
/// (no fraction, no exponent) that fits i64. Other members are ignored; of repeated
/// members the last counts.
fn parse_claims(claims: &[u8]) -> Option<(String, i64)> {
    let members: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(claims).ok()?;
    let sub: String = serde_json::from_str(members.get("sub")?.get()).ok()?;
    if sub.is_empty() {
        return None;
    }
    let exp = members.get("exp")?.get();
    // Valid JSON already: an integer is an optional `-` and digits only.
    let digits = exp.strip_prefix('-').unwrap_or(exp);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((sub, exp.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "secret";
    const NOW: u64 = 1_700_000_000;

    fn token(key: &str, claims: &str) -> String {
        let payload = URL_SAFE_NO_PAD.encode(claims);
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("Bearer {payload}.{signature}")
    }

    fn check(header: Option<&str>) -> (u16, String, Option<String>) {
        let answer = decide(Some(KEY), header.map(str::as_bytes), NOW);
        (answer.status, answer.body, answer.identity)
    }

    fn error(header: &str) -> String {
        let (status, body, identity) = check(Some(header));
        assert_eq!(status, 401, "{header}: {body}");
        assert_eq!(identity, None);
        body
    }

    #[test]
    fn valid_tokens_pass() {
        let good = token(KEY, r#"{"exp":1700000001,"sub":"alice","x":[1.5]}"#);
        assert_eq!(
            check(Some(&good)),
            (
                200,
                r#"{"sub":"alice","exp":1700000001}"#.into(),
                Some("alice".into())
            )
        );
        let lower = good.replacen("Bearer", "bEARER", 1);
        assert_eq!(check(Some(&lower)).0, 200);
        // Not printable: no identity; JSON escapes as specified, U+2028 kept raw.
        let odd = token(
            KEY,
            r#"{"sub":"é\"\\\n\u0001\u2028","exp":9223372036854775807}"#,
        );
        assert_eq!(
            check(Some(&odd)),
            (
                200,
                "{\"sub\":\"é\\\"\\\\\\n\\u0001\u{2028}\",\"exp\":9223372036854775807}".into(),
                None
            )
        );
    }

    #[test]
    fn rules_apply_in_order() {
        assert_eq!(decide(None, None, NOW).status, 500);
        assert_eq!(
            decide(None, None, NOW).body,
            r#"{"error":"auth-key is not configured"}"#
        );
        assert_eq!(check(None).1, r#"{"error":"missing bearer token"}"#);
        let not_bearer = r#"{"error":"not a bearer token"}"#;
        for header in [
            "Basic abc",
            "Bearer ",
            "Bearer",
            "Bearer  x.y",
            "Bearerx.y",
            "",
        ] {
            assert_eq!(error(header), not_bearer, "{header:?}");
        }
        let malformed = r#"{"error":"malformed token"}"#;
        let good = token(KEY, r#"{"sub":"a","exp":1700000001}"#);
        let (payload, signature) = good["Bearer ".len()..].split_once('.').expect("a dot");
        for header in [
            "Bearer abc".to_owned(),
            format!("Bearer {payload}.{signature}.x"),
            format!("Bearer {payload}={signature}"),
            format!("Bearer {payload}.{signature}="),
            format!("Bearer {payload}.{}", &signature[1..]),
            format!("Bearer {payload}+.{signature}"),
            format!("Bearer {payload}.{signature}AA"),
        ] {
            assert_eq!(error(&header), malformed, "{header}");
        }
        assert_eq!(
            error(&token("other", r#"{"sub":"a","exp":1700000001}"#)),
            r#"{"error":"bad signature"}"#
        );
        let bad_claims = r#"{"error":"malformed claims"}"#;
        for claims in [
            "",
            "[]",
            r#"{"sub":"","exp":1700000001}"#,
            r#"{"sub":1,"exp":1700000001}"#,
            r#"{"exp":1700000001}"#,
            r#"{"sub":"a"}"#,
            r#"{"sub":"a","exp":1.5}"#,
            r#"{"sub":"a","exp":1e12}"#,
            r#"{"sub":"a","exp":"1700000001"}"#,
            r#"{"sub":"a","exp":9223372036854775808}"#,
            r#"{"sub":"a","exp":1700000001} x"#,
        ] {
            assert_eq!(error(&token(KEY, claims)), bad_claims, "{claims}");
        }
        let expired = r#"{"error":"token expired"}"#;
        for exp in ["1700000000", "-0", "-9223372036854775808"] {
            let claims = format!(r#"{{"sub":"a","exp":{exp}}}"#);
            assert_eq!(error(&token(KEY, &claims)), expired, "{exp}");
        }
    }
}
