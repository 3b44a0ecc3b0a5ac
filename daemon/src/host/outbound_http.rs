//! Outbound `wasi:http` (0.2 and 0.3): requests a component sends, allowed only
//! to the hosts its manifest lists in `allowed_outbound_hosts`.
//!
//! wasmtime-wasi-http does the protocol work; this module is the policy hook it
//! calls before sending: deny what was not granted (the guest gets
//! `HTTP-request-denied`, the log says which component tried which URL), and
//! bound how long a connection or a first byte may take. (`self`, a request to
//! the app itself, is parsed but not routed yet: such requests are denied.)

use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::allowed_hosts::AllowedHosts;

/// Defaults for a request whose guest set no timeouts; wasmtime's own default
/// (600 s) would let one slow upstream pin an instance for ten minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The per-instance outbound HTTP policy.
#[derive(Clone)]
pub struct OutboundHttp {
    component_id: Arc<str>,
    allowed: Arc<AllowedHosts>,
}

impl OutboundHttp {
    pub fn new(component_id: Arc<str>, allowed: Arc<AllowedHosts>) -> Self {
        Self {
            component_id,
            allowed,
        }
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        if !self.allowed.allows_url(request.uri()) {
            tracing::warn!(
                component = &*self.component_id,
                url = %request.uri(),
                "outbound HTTP request denied: not granted by allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
