//! What the Rust HTTP handlers share: the JSON they write by hand and, with the `handler`
//! feature, the bindings of the handler world and the writing of a response.
//!
//! The JSON part is free of bindings: `guest-rust/http-auth/src/rule.rs`, which uses it, is
//! also compiled natively by `bench/native-http`.

/// The bindings of `witplug:http-handler/handler` (from `target/http-wit/`), generated
/// once here for every handler: a handler implements
/// `bindings::exports::wasi::http::incoming_handler::Guest` and calls
/// `http_common::bindings::export!(Handler);`.
#[cfg(feature = "handler")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../target/http-wit",
        world: "witplug:http-handler/handler",
        generate_all,
        pub_export_macro: true,
        default_bindings_module: "http_common::bindings",
    });
}

#[cfg(feature = "handler")]
mod respond;
#[cfg(feature = "handler")]
pub use respond::respond;

/// Appends `s` as a JSON string: `"` and `\` escaped, control characters as their short
/// escapes or `\u00xx`, everything else (U+2028 and U+2029 included) as is.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `{"error":MESSAGE}`.
pub fn error_body(message: &str) -> String {
    let mut body = String::from("{\"error\":");
    json_string(&mut body, message);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_as_specified() {
        let mut out = String::new();
        json_string(
            &mut out,
            "a\"\\/\u{0}\u{1f}\u{7f}<>&\u{2028}\u{2029}é\u{8}\u{c}\n\r\t",
        );
        assert_eq!(
            out,
            "\"a\\\"\\\\/\\u0000\\u001f\u{7f}<>&\u{2028}\u{2029}é\\b\\f\\n\\r\\t\""
        );
    }

    #[test]
    fn error_bodies_are_json() {
        assert_eq!(error_body("bad \"x\""), r#"{"error":"bad \"x\""}"#);
    }
}
