//! `http-geo`: a `wasi:http/proxy` handler that picks a region for the client and
//! redirects it to `https://REGION.DOMAIN` + the request's path (or says so in JSON).
//!
//! The region comes from, first match wins: the `x-geo-country` header (a fixed table), the
//! client address (`x-witplug-client-ip`, set by the server) against the config value
//! `ip-ranges` (`CIDR=region,...`, longest prefix wins), the config value `default-region`.

use std::net::IpAddr;

use http_common::bindings::exports::wasi::http::incoming_handler::Guest;
use http_common::bindings::wasi::config::store;
use http_common::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use http_common::{error_body, json_string};

const COUNTRIES: [(&str, &[&str]); 4] = [
    ("us-east", &["US", "CA", "MX"]),
    ("sa-east", &["BR", "AR", "CL", "CO", "PE"]),
    (
        "eu-west",
        &[
            "GB", "IE", "FR", "DE", "NL", "BE", "ES", "PT", "IT", "CH", "AT", "SE", "NO", "DK",
            "FI", "PL",
        ],
    ),
    (
        "ap-south",
        &["IN", "SG", "JP", "KR", "AU", "NZ", "ID", "TH", "VN", "PH"],
    ),
];

/// What the handler reads from the request and the config.
struct Input<'a> {
    country: Option<&'a [u8]>,
    client_ip: Option<&'a [u8]>,
    accepts: &'a [Vec<u8>],
    path_with_query: &'a str,
    domain: &'a str,
    default_region: &'a str,
    ip_ranges: Option<&'a str>,
}

struct Answer {
    status: u16,
    content_type: &'static str,
    location: Option<String>,
    body: String,
}

fn decide(input: &Input) -> Answer {
    let (region, source) = match choose(input) {
        Ok(choice) => choice,
        Err(entry) => {
            return Answer {
                status: 500,
                content_type: "application/json",
                location: None,
                body: error_body(&format!("bad ip-ranges entry: {entry}")),
            };
        }
    };
    let location = format!("https://{region}.{}{}", input.domain, input.path_with_query);
    let query = input
        .path_with_query
        .split_once('?')
        .map_or("", |(_, query)| query);
    let json = query.split('&').any(|pair| pair == "format=json")
        || input
            .accepts
            .iter()
            .any(|accept| contains(accept, b"application/json"));
    if json {
        let mut body = String::from("{\"region\":");
        json_string(&mut body, &region);
        body.push_str(",\"source\":");
        json_string(&mut body, source);
        body.push_str(",\"location\":");
        json_string(&mut body, &location);
        body.push('}');
        Answer {
            status: 200,
            content_type: "application/json",
            location: None,
            body,
        }
    } else {
        Answer {
            status: 307,
            content_type: "text/plain; charset=utf-8",
            body: format!("redirecting to {location}\n"),
            location: Some(location),
        }
    }
}

/// The region and its source; a malformed `ip-ranges` entry (trimmed) when the rule of
/// addresses is reached with one.
fn choose(input: &Input) -> Result<(String, &'static str), String> {
    if let Some(region) = input.country.and_then(country_region) {
        return Ok((region.to_owned(), "country"));
    }
    if let Some(ranges) = input.ip_ranges {
        let ranges = parse_ranges(ranges)?;
        let ip = input
            .client_ip
            .and_then(|ip| std::str::from_utf8(ip).ok())
            .and_then(|ip| ip.parse::<IpAddr>().ok())
            .map(|ip: IpAddr| ip.to_canonical());
        if let Some(ip) = ip {
            let mut best: Option<&Range> = None;
            for range in &ranges {
                if range.contains(ip) && best.is_none_or(|b| range.len > b.len) {
                    best = Some(range);
                }
            }
            if let Some(best) = best {
                return Ok((best.region.to_owned(), "address"));
            }
        }
    }
    Ok((input.default_region.to_owned(), "default"))
}

fn country_region(value: &[u8]) -> Option<&'static str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let code = value.to_ascii_uppercase();
    COUNTRIES
        .iter()
        .find(|(_, codes)| codes.contains(&code.as_str()))
        .map(|(region, _)| *region)
}

struct Range<'a> {
    net: IpAddr,
    len: u8,
    region: &'a str,
}

impl Range<'_> {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// `CIDR=region` entries, comma-separated; entries are trimmed and empty ones skipped.
/// Err: the first malformed entry.
fn parse_ranges(text: &str) -> Result<Vec<Range<'_>>, String> {
    let mut ranges = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        ranges.push(parse_range(entry).ok_or_else(|| entry.to_owned())?);
    }
    Ok(ranges)
}

/// `ADDR/LEN=REGION`: LEN decimal without sign or leading zero, at most the address's
/// bits; REGION non-empty. Bits of ADDR past LEN are ignored.
fn parse_range(entry: &str) -> Option<Range<'_>> {
    let (cidr, region) = entry.split_once('=')?;
    let (addr, len) = cidr.split_once('/')?;
    let net: IpAddr = addr.parse().ok()?;
    let canonical_len = len.bytes().all(|b| b.is_ascii_digit())
        && !len.is_empty()
        && (len == "0" || !len.starts_with('0'));
    let len: u8 = if canonical_len {
        len.parse().ok()?
    } else {
        return None;
    };
    let max = if net.is_ipv4() { 32 } else { 128 };
    if len > max || region.is_empty() {
        return None;
    }
    Some(Range { net, len, region })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn config(key: &str) -> Option<String> {
    store::get(key).ok().flatten()
}

struct Geo;

impl Guest for Geo {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let headers = request.headers();
        let country = headers.get("x-geo-country").into_iter().next();
        let client_ip = headers.get("x-witplug-client-ip").into_iter().next();
        let accepts = headers.get("accept");
        let path_with_query = request.path_with_query().unwrap_or_default();
        let domain = config("domain").unwrap_or_else(|| "example.com".to_owned());
        let default_region = config("default-region").unwrap_or_else(|| "us-east".to_owned());
        let ip_ranges = config("ip-ranges");
        let answer = decide(&Input {
            country: country.as_deref(),
            client_ip: client_ip.as_deref(),
            accepts: &accepts,
            path_with_query: &path_with_query,
            domain: &domain,
            default_region: &default_region,
            ip_ranges: ip_ranges.as_deref(),
        });
        respond(response_out, answer);
    }
}

fn respond(response_out: ResponseOutparam, answer: Answer) {
    let mut headers = vec![(
        "content-type".to_owned(),
        answer.content_type.as_bytes().to_vec(),
    )];
    if let Some(location) = answer.location {
        headers.push(("location".to_owned(), location.into_bytes()));
    }
    http_common::respond(
        response_out,
        answer.status,
        &headers,
        answer.body.as_bytes(),
    );
}

http_common::bindings::export!(Geo);

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(path: &'a str, ranges: Option<&'a str>) -> Input<'a> {
        Input {
            country: None,
            client_ip: None,
            accepts: &[],
            path_with_query: path,
            domain: "example.com",
            default_region: "us-east",
            ip_ranges: ranges,
        }
    }

    fn json(input: &Input) -> String {
        let answer = decide(input);
        assert_eq!(
            (answer.status, answer.content_type),
            (200, "application/json")
        );
        answer.body
    }

    #[test]
    fn countries_then_addresses_then_default() {
        let mut i = input(
            "/a?format=json",
            Some(" 10.0.0.0/8=eu-west , 10.1.0.0/16=ap-south,::/0=sa-east"),
        );
        assert_eq!(
            json(&i),
            r#"{"region":"us-east","source":"default","location":"https://us-east.example.com/a?format=json"}"#
        );
        i.country = Some(b" de ");
        assert!(json(&i).starts_with(r#"{"region":"eu-west","source":"country""#));
        i.country = Some(b"XX");
        i.client_ip = Some(b"10.1.2.3");
        assert!(json(&i).starts_with(r#"{"region":"ap-south","source":"address""#));
        i.client_ip = Some(b"::ffff:10.9.2.3");
        assert!(json(&i).starts_with(r#"{"region":"eu-west","source":"address""#));
        i.client_ip = Some(b"2001:db8::1");
        assert!(json(&i).starts_with(r#"{"region":"sa-east","source":"address""#));
        i.client_ip = Some(b"192.168.0.1");
        assert!(json(&i).starts_with(r#"{"region":"us-east","source":"default""#));
        for (country, listed) in [
            (&b"jp"[..], true),
            (b"\tJp\t", true),
            (b"J P", false),
            (b"JPN", false),
            ("ſe".as_bytes(), false),
            (b"\xff\xfe", false),
        ] {
            i.country = Some(country);
            let region = json(&i);
            assert_eq!(
                region.contains(r#""source":"country""#),
                listed,
                "{country:?}: {region}"
            );
        }
    }

    #[test]
    fn redirects_unless_json_is_asked_for() {
        let mut i = input("/x/y?a=1&format=jsonp", None);
        let answer = decide(&i);
        assert_eq!(answer.status, 307);
        assert_eq!(answer.content_type, "text/plain; charset=utf-8");
        let location = "https://us-east.example.com/x/y?a=1&format=jsonp";
        assert_eq!(answer.location.as_deref(), Some(location));
        assert_eq!(answer.body, format!("redirecting to {location}\n"));
        let accepts = [
            b"text/html".to_vec(),
            b"text/x, application/json;q=0.9".to_vec(),
        ];
        i.accepts = &accepts;
        assert_eq!(decide(&i).status, 200);
    }

    #[test]
    fn bad_entries_are_reported_when_consulted() {
        for (ranges, bad) in [
            ("10.0.0.0/8=a, 10.0.0.0/33=b ,", "10.0.0.0/33=b"),
            ("10.0.0.0=a", "10.0.0.0=a"),
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.0/8=", "10.0.0.0/8="),
            ("10.0.0.0/08=a", "10.0.0.0/08=a"),
            ("10.0.0.0/+8=a", "10.0.0.0/+8=a"),
            ("010.0.0.0/8=a", "010.0.0.0/8=a"),
            ("::/129=a", "::/129=a"),
            ("10.0.0.0 /8=a", "10.0.0.0 /8=a"),
        ] {
            let mut i = input("/", Some(ranges));
            let answer = decide(&i);
            assert_eq!(answer.status, 500, "{ranges}");
            assert_eq!(
                answer.body,
                format!(r#"{{"error":"bad ip-ranges entry: {bad}"}}"#)
            );
            i.country = Some(b"FR");
            assert_eq!(decide(&i).status, 307, "{ranges}");
        }
        let i = input("/", Some(" , 10.1.2.3/8=a,, "));
        assert_eq!(decide(&i).status, 307);
    }
}
