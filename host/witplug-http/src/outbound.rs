//! Outbound HTTP from handlers: denied unless a grant ([`HttpGrant`]) names the origin.
//!
//! The check runs in `send_request`, on the URI the connection will be made to (scheme,
//! host, port), after wasmtime-wasi-http has built it from the guest's request. The
//! guest cannot aim elsewhere with a `Host` header: `host` is a forbidden header for
//! guests, and the host header sent is derived from the checked authority. A request
//! without an authority is denied.

use std::future::Future;
use std::sync::Arc;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};
use witplug::HttpGrant;

/// The hooks of one handler instance: its route (for the log) and its grants.
pub struct OutboundHooks {
    route: Arc<str>,
    grants: Arc<[HttpGrant]>,
}

impl OutboundHooks {
    pub fn new(route: Arc<str>, grants: Arc<[HttpGrant]>) -> Self {
        Self { route, grants }
    }

    /// Whether the grants allow a request to `uri`.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return false;
        };
        self.grants
            .iter()
            .any(|grant| grant.allows(scheme, host, uri.port_u16()))
    }
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(
                target: "witplug::serve",
                plugin = &*self.route,
                uri = %request.uri(),
                "outbound request denied: no grant for this origin"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        tracing::debug!(target: "witplug::serve", plugin = &*self.route, uri = %request.uri(), "outbound request");
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(grants: &[&str]) -> OutboundHooks {
        let grants: Vec<HttpGrant> = grants.iter().map(|g| g.parse().expect(g)).collect();
        OutboundHooks::new("route".into(), grants.into())
    }

    #[test]
    fn nothing_is_allowed_without_a_grant() {
        let hooks = hooks(&[]);
        assert!(!hooks.allows(&"http://127.0.0.1:80/".parse().expect("uri")));
    }

    #[test]
    fn the_uri_authority_is_what_is_checked() {
        let hooks = hooks(&["http://127.0.0.1:8080"]);
        assert!(hooks.allows(&"http://127.0.0.1:8080/x".parse().expect("uri")));
        assert!(!hooks.allows(&"http://127.0.0.1:8081/x".parse().expect("uri")));
        assert!(!hooks.allows(&"https://127.0.0.1:8080/x".parse().expect("uri")));
        // Origin-form (no authority), as a request with only a `Host` header would be.
        assert!(!hooks.allows(&"/x".parse().expect("uri")));
        // User info does not change the host that is checked.
        assert!(!hooks.allows(&"http://127.0.0.1:8080@evil.net/".parse().expect("uri")));
    }
}
