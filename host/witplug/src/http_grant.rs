//! Outbound HTTP grants: which origins a plugin may send `wasi:http` requests to.
//!
//! A grant is `SCHEME://HOST[:PORT]`: scheme `http` or `https`; host exact (compared
//! case-insensitively, a trailing dot ignored), `*.SUFFIX` for any subdomain of SUFFIX (not
//! SUFFIX itself), or `*` for any host; port a number or `*`, the scheme's default when
//! absent. Nothing else is accepted (no path, query, user info or other scheme), so that a
//! grant never means more than it says. No grant: no outbound request at all.
//!
//! Only the server of `wasi:http` handlers (`witplug-http`) links outbound HTTP; the
//! grants are parsed here so that one policy file schema covers every plugin.

use std::fmt;
use std::str::FromStr;

/// One allowed origin pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGrant {
    scheme: HttpScheme,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HttpScheme {
    Http,
    Https,
}

impl HttpScheme {
    fn name(self) -> &'static str {
        match self {
            HttpScheme::Http => "http",
            HttpScheme::Https => "https",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            HttpScheme::Http => 80,
            HttpScheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: stored without the `*.`.
    Subdomains(String),
    Any,
}

/// Why an outbound HTTP grant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid outbound HTTP grant `{grant}`: {reason} (expected SCHEME://HOST[:PORT], e.g. `https://api.example.com` or `http://*.internal:8080`)"
)]
pub struct HttpGrantError {
    pub grant: String,
    pub reason: &'static str,
}

impl FromStr for HttpGrant {
    type Err = HttpGrantError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| HttpGrantError {
            grant: text.to_owned(),
            reason,
        };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| fail("no `://`"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => HttpScheme::Http,
            "https" => HttpScheme::Https,
            _ => return Err(fail("the scheme must be `http` or `https`")),
        };
        if rest.contains(['/', '?', '#']) {
            return Err(fail("a grant names an origin: no path, query or fragment"));
        }
        if rest.contains('@') {
            return Err(fail("no user info"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| fail("malformed host or port"))?;
        let port = match port {
            None => Some(scheme.default_port()),
            Some("*") => None,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(
                    digits
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| fail("the port must be 1 to 65535 or `*`"))?,
                )
            }
            Some(_) => return Err(fail("the port must be 1 to 65535 or `*`")),
        };
        let written = host;
        let host = normalize_host(host);
        // `*.` is a wildcard missing its suffix, not "any host" with a trailing dot.
        if host == "*" && written != "*" {
            return Err(fail("`*.` must be followed by a host name"));
        }
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if !is_host_name(suffix) {
                return Err(fail("`*.` must be followed by a host name"));
            }
            HostPattern::Subdomains(suffix.to_owned())
        } else if is_host_name(&host) || is_bracketed_ipv6(&host) {
            HostPattern::Exact(host)
        } else {
            return Err(fail(
                "the host must be a name, an IP address, `*.SUFFIX` or `*`",
            ));
        };
        Ok(Self { scheme, host, port })
    }
}

/// `host[:port]`, where host may be a bracketed IPv6 address.
fn split_host_port(text: &str) -> Option<(&str, Option<&str>)> {
    if text.starts_with('[') {
        let end = text.find(']')?;
        let (host, rest) = text.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => rest.strip_prefix(':').map(|port| (host, Some(port))),
        };
    }
    match text.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((text, None)),
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.to_ascii_lowercase();
    match host.strip_suffix('.') {
        Some(stripped) if !stripped.is_empty() => stripped.to_owned(),
        _ => host,
    }
}

fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn is_bracketed_ipv6(host: &str) -> bool {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|inner| inner.parse::<std::net::Ipv6Addr>().is_ok())
}

impl HttpGrant {
    /// Whether a request to `scheme://host:port` is allowed by this grant. `host` is the
    /// request URI's host as written (a bracketed IPv6 address included); `port` is the
    /// explicit port, or `None` for the scheme's default.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        if !scheme.eq_ignore_ascii_case(self.scheme.name()) {
            return false;
        }
        let port = port.unwrap_or(self.scheme.default_port());
        if self.port.is_some_and(|granted| granted != port) {
            return false;
        }
        let host = normalize_host(host);
        match &self.host {
            HostPattern::Any => !host.is_empty(),
            HostPattern::Exact(exact) => host == *exact,
            HostPattern::Subdomains(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|prefix| prefix.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty()),
        }
    }
}

impl fmt::Display for HttpGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme.name())?;
        match &self.host {
            HostPattern::Exact(host) => write!(f, "{host}")?,
            HostPattern::Subdomains(suffix) => write!(f, "*.{suffix}")?,
            HostPattern::Any => write!(f, "*")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => write!(f, ":*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(text: &str) -> HttpGrant {
        text.parse().expect(text)
    }

    #[test]
    fn exact_hosts_match_only_themselves_on_the_default_port() {
        let g = grant("https://API.example.com");
        assert!(g.allows("https", "api.example.com", None));
        assert!(g.allows("HTTPS", "api.example.com.", Some(443)));
        assert!(!g.allows("http", "api.example.com", None));
        assert!(!g.allows("https", "api.example.com", Some(8443)));
        assert!(!g.allows("https", "api.example.com.evil.net", None));
        assert!(!g.allows("https", "evilapi.example.com", None));
        assert_eq!(g.to_string(), "https://api.example.com:443");
    }

    #[test]
    fn subdomain_wildcards_exclude_the_bare_suffix_and_lookalikes() {
        let g = grant("http://*.internal:*");
        assert!(g.allows("http", "a.internal", Some(8080)));
        assert!(g.allows("http", "a.b.internal", None));
        assert!(!g.allows("http", "internal", None));
        assert!(!g.allows("http", "evilinternal", None));
        assert!(!g.allows("http", ".internal", None));
    }

    #[test]
    fn ip_literals_match_literally() {
        let g = grant("http://127.0.0.1:8080");
        assert!(g.allows("http", "127.0.0.1", Some(8080)));
        assert!(!g.allows("http", "127.0.0.2", Some(8080)));
        let g = grant("http://[::1]:9000");
        assert!(g.allows("http", "[::1]", Some(9000)));
        assert!(!g.allows("http", "::1", Some(9000)));
    }

    #[test]
    fn anything_beyond_an_origin_is_refused() {
        for bad in [
            "",
            "api.example.com",
            "ftp://example.com",
            "https://example.com/path",
            "https://example.com?q",
            "https://user@example.com",
            "https://",
            "https://exa mple.com",
            "https://ex*ample.com",
            "https://*example.com",
            "https://*.",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example.com:",
            "https://example.com:80:81",
            "https://[::1",
            "https://[not-ip]",
        ] {
            let error = bad.parse::<HttpGrant>().expect_err(bad);
            assert_eq!(error.grant, bad);
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn any_host_still_checks_scheme_and_port() {
        let g = grant("https://*");
        assert!(g.allows("https", "x.y", None));
        assert!(!g.allows("https", "x.y", Some(80)));
        assert!(!g.allows("http", "x.y", None));
        assert!(!g.allows("https", "", None));
    }
}
