//! Outbound `wasi:http` (0.2 and 0.3): requests a component sends, allowed only
//! to the hosts its manifest lists in `allowed_outbound_hosts`.
//!
//! wasmtime-wasi-http does the protocol work; this module is the policy hook it
//! calls before sending: deny what was not granted (the guest gets
//! `HTTP-request-denied`, the log says which component tried which URL), and
//! bound how long a connection or a first byte may take.
//!
//! `self` in `allowed_outbound_hosts` lets a component call its own app:
//! a request to `http://self/...` goes to the gateway's own listener (the
//! address is known once the listener is bound, hence the shared cell).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use super::allowed_hosts::AllowedHosts;
use super::{Capability, Grantee, HostState};

/// Defaults for a request whose guest set no timeouts; wasmtime's own default
/// (600 s) would let one slow upstream pin an instance for ten minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// The address the app is served on, set once the listener is bound.
pub type SelfAddress = Arc<OnceLock<SocketAddr>>;

/// Records the app's own listener for `http://self`: on loopback when the
/// gateway listens on every address.
pub fn publish_self_address(cell: &SelfAddress, mut listen: SocketAddr) {
    if listen.ip().is_unspecified() {
        listen.set_ip(if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let _ = cell.set(listen);
}

/// wasi:http itself is linked with the rest of WASI (a component's incoming
/// handler needs its types too); this capability is the policy wasmtime-wasi-
/// http consults before each outgoing request.
impl Capability for OutboundHttp {
    const INTERFACES: &'static [&'static str] = &[];
    type Generation = ();

    fn grant(component: &Grantee<'_>, _: &Arc<()>) -> anyhow::Result<Self> {
        Ok(Self::new(
            component.id.clone(),
            component.allowed_hosts.clone(),
            component.resources.self_address.clone(),
        ))
    }

    fn add_to_linker(_: &mut wasmtime::component::Linker<HostState>) -> anyhow::Result<()> {
        Ok(())
    }

    fn add_async_to_linker(_: &mut wasmtime::component::Linker<HostState>) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The per-instance outbound HTTP policy.
#[derive(Clone)]
pub struct OutboundHttp {
    component_id: Arc<str>,
    allowed: Arc<AllowedHosts>,
    self_address: SelfAddress,
}

impl OutboundHttp {
    fn new(component_id: Arc<str>, allowed: Arc<AllowedHosts>, self_address: SelfAddress) -> Self {
        Self {
            component_id,
            allowed,
            self_address,
        }
    }

    /// Points a granted request to `http://self/...` at the app's listener.
    fn route_to_self(&self, request: &mut http::Request<WasiBody>) -> bool {
        if request.uri().host() != Some("self") || !self.allowed.allows_self() {
            return false;
        }
        let Some(address) = self.self_address.get() else {
            return false;
        };
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        match http::Uri::builder()
            .scheme("http")
            .authority(address.to_string())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => {
                *request.uri_mut() = uri;
                true
            }
            Err(_) => false,
        }
    }
}

/// The headers a guest may not set: wasmtime-wasi-http's default list.
/// hyper sends no body with a GET, HEAD or CONNECT whose length is not
/// declared (no `content-length`, no `transfer-encoding`), and drops the body
/// as soon as the request is out. A guest still finishing its body, which is
/// what a client library does even for an empty one (wstd flushes and
/// finishes it after starting the request), then finds its stream closed and
/// fails the whole request ("connection reset"), depending only on whether
/// hyper's task ran first: to a fast server that was 7 requests in 100. So
/// such a body goes to a task that reads and drops it (what hyper would have
/// sent of it: nothing), and the guest's writes and finish succeed. The task
/// ends when the guest finishes the body or its instance is gone.
fn drain_body_hyper_would_drop(request: &mut http::Request<WasiBody>) {
    use http_body_util::BodyExt as _;
    let sends_no_body = matches!(
        *request.method(),
        http::Method::GET | http::Method::HEAD | http::Method::CONNECT
    ) && !request.headers().contains_key(http::header::CONTENT_LENGTH)
        && !request
            .headers()
            .contains_key(http::header::TRANSFER_ENCODING);
    if !sends_no_body || hyper::body::Body::is_end_stream(request.body()) {
        return;
    }
    let empty = http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut body = std::mem::replace(request.body_mut(), empty);
    tokio::spawn(async move { while let Some(Ok(_)) = body.frame().await {} });
}

fn is_forbidden(name: &http::HeaderName) -> bool {
    DEFAULT_FORBIDDEN_HEADERS.contains(name)
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for OutboundHttp {
    // wasmtime-wasi-http's default rule, without its default methods' cost:
    // they build a new `Arc` closure for every header a guest sets or reads
    // (several per request). These allocate nothing.
    fn is_forbidden_header(&mut self, name: &http::HeaderName) -> bool {
        is_forbidden(name)
    }

    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        static FILTER: OnceLock<ForbiddenHeaderFilter> = OnceLock::new();
        FILTER.get_or_init(|| Arc::new(is_forbidden)).clone()
    }

    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let metrics = &crate::metrics::global().outbound;
        let host = request.uri().host().unwrap_or_default().to_string();
        if !self.route_to_self(&mut request) && !self.allowed.allows_url(request.uri()) {
            metrics.call("http", &host, false);
            tracing::warn!(
                component = &*self.component_id,
                url = %request.uri(),
                "outbound HTTP request denied: not granted by allowed_outbound_hosts"
            );
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        drain_body_hyper_would_drop(&mut request);
        let mut options = options.unwrap_or_default();
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.first_byte_timeout.get_or_insert(FIRST_BYTE_TIMEOUT);
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let sent = wasmtime_wasi_http::default_send_request(request, Some(options)).await;
            metrics.call("http", &host, sent.is_ok());
            let (response, io) = sent?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}
