//! The HTTP trigger: accepts connections, routes each request by the
//! manifest's `[[trigger.http]]` routes, and answers it with a static response
//! or a component call.
//!
//! Faults stay inside one request: a trap is a 500, a request past its deadline
//! a 504, a guest over its memory limit fails its own request only; the server
//! keeps serving. On shutdown it stops accepting, lets in-flight requests
//! finish (bounded by the drain timeout) and returns.

mod admission;
mod handler;
mod headers;
pub mod path;
mod plain;
pub mod probe;
pub mod router;
mod server;
mod slot;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use std::sync::Arc;

use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError, TrapOrPanicError};

use crate::app::{App, HttpHandler, StaticResponse};
use crate::executor::Executor;
use crate::metrics::http::{HttpRoute, STATIC, UNROUTED};
pub use handler::{Handler, HttpExport, ReusePolicy};
use router::Router;
pub use server::{Listeners, requests_served, serve};
pub use slot::AppSlot;

/// Options of the HTTP trigger.
#[derive(Clone, Debug)]
pub struct HttpOptions {
    /// Deadline of one request, from dispatch to the end of the handler.
    pub request_timeout: Option<Duration>,
    pub reuse: ReusePolicy,
    /// Largest request body given to a component.
    pub max_request_body_size: u64,
}

/// One app as one serving thread sees it: routes and a handler per component.
/// Each thread has its own, so a thread's instances serve only its requests
/// and draining one thread never cuts off another's.
pub struct HttpApp {
    router: Router,
    handlers: BTreeMap<String, Handler>,
    exports: BTreeMap<String, HttpExport>,
    request_timeout: Option<Duration>,
    max_body: u64,
    /// Per component, and for static and unrouted answers.
    metrics: BTreeMap<String, HttpRoute>,
    static_metrics: HttpRoute,
    unrouted_metrics: HttpRoute,
}

impl HttpApp {
    /// `instances` bounds the instances alive at once, across all threads.
    pub fn new(
        app: &App,
        executor: &Executor,
        options: &HttpOptions,
        instances: Arc<Semaphore>,
    ) -> Result<Self> {
        let mut handlers = BTreeMap::new();
        let mut exports = BTreeMap::new();
        for trigger in &app.http_triggers {
            let HttpHandler::Component(id) = &trigger.handler else {
                continue;
            };
            if handlers.contains_key(id) {
                continue;
            }
            let component = executor.component(id).ok_or_else(|| {
                anyhow::anyhow!("trigger \"{}\": no component \"{id}\"", trigger.id)
            })?;
            let (handler, export) = Handler::new(
                component.clone(),
                instances.clone(),
                &options.reuse,
                options.request_timeout,
            )?;
            handlers.insert(id.clone(), handler);
            exports.insert(id.clone(), export);
        }
        let http = &crate::metrics::global().http;
        Ok(Self {
            router: Router::new(&app.http_base, &app.http_triggers),
            metrics: handlers
                .keys()
                .map(|id| (id.clone(), http.route(id)))
                .collect(),
            handlers,
            exports,
            request_timeout: options.request_timeout,
            max_body: options.max_request_body_size,
            static_metrics: http.route(STATIC),
            unrouted_metrics: http.route(UNROUTED),
        })
    }

    /// Every route with what serves it, for the start-up banner.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.router
            .routes()
            .map(|(pattern, trigger)| {
                let target = match &trigger.handler {
                    HttpHandler::Component(id) => match self.exports.get(id) {
                        Some(HttpExport::P3) => format!("{id} (wasi:http 0.3)"),
                        _ => id.clone(),
                    },
                    HttpHandler::Static(r) => format!("static response {}", r.status),
                };
                (pattern.to_string(), target)
            })
            .collect()
    }

    /// Answers one request, and counts it (by what answered it, its status
    /// class and the time to its response headers).
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: SocketAddr,
        listen: SocketAddr,
    ) -> Response<WasiBody> {
        let started = Instant::now();
        let _in_flight = crate::metrics::Held::on(&crate::metrics::global().http.in_flight);
        let (response, metrics) = self.answer(request, client, listen, started).await;
        metrics.record(response.status(), started.elapsed());
        response
    }

    async fn answer(
        &self,
        mut request: Request<Incoming>,
        client: SocketAddr,
        listen: SocketAddr,
        started: Instant,
    ) -> (Response<WasiBody>, &HttpRoute) {
        let unrouted = |response| (response, &self.unrouted_metrics);
        let Ok(normal) = path::normalize(request.uri().path()) else {
            return unrouted(text_response(
                StatusCode::BAD_REQUEST,
                "Bad Request: path above the root\n",
            ));
        };
        let Some(route) = self.router.route(&normal) else {
            return unrouted(text_response(StatusCode::NOT_FOUND, "Not Found\n"));
        };
        let component_id = match &route.trigger.handler {
            HttpHandler::Static(response) => {
                return (static_response(response), &self.static_metrics);
            }
            HttpHandler::Component(id) => id,
        };
        let (Some(handler), Some(metrics)) = (
            self.handlers.get(component_id),
            self.metrics.get(component_id),
        ) else {
            return unrouted(text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error\n",
            ));
        };
        if declared_length(&request).is_some_and(|length| length > self.max_body) {
            let response = text_response(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n");
            return (response, metrics);
        }
        let uri = request.uri().clone();
        headers::set_spin_headers(request.headers_mut(), &uri, &route, client, listen);
        let limit = self.max_body;
        let request = request.map(|body| {
            http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
                .map_err(move |e| match e.downcast::<hyper::Error>() {
                    Ok(e) => wasmtime_wasi_http::Error::from(*e),
                    // Only the limit is left: Limited's own error.
                    Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(limit)),
                })
                .boxed_unsync()
        });
        let response = match handler.handle(request).await {
            Ok(response) => response,
            Err(error) => {
                let past_deadline = self.request_timeout.is_some_and(|t| started.elapsed() >= t);
                error_response(component_id, &uri, error, past_deadline)
            }
        };
        (response, metrics)
    }
}

/// The request's `content-length`, if it has a valid one.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn error_response(
    component: &str,
    uri: &http::Uri,
    error: wasmtime::Error,
    past_deadline: bool,
) -> Response<WasiBody> {
    // Decided from types and our own clock, never from wasmtime's error text
    // (a patch release may reword it). A guest stopped from outside its
    // instance (a busy loop blocks the instance's own deadline) reaches us as
    // "no response" with no type to tell; our clock does: a request that
    // failed at or past its deadline timed out.
    if let Some(e) = error.downcast_ref::<InstantiationError<()>>() {
        tracing::error!(component, %uri, "could not instantiate: {:?}", e.error);
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
    }
    if let Some(e) = error.downcast_ref::<plain::NotInstantiated>() {
        tracing::error!(component, %uri, "{e}");
        return text_response(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
    }
    if error.is::<ExpirationError>() || past_deadline {
        tracing::warn!(component, %uri, "request timed out; instance stopped");
        return text_response(StatusCode::GATEWAY_TIMEOUT, "Gateway Timeout\n");
    }
    let trapped = error.is::<TrapOrPanicError>() || error.chain().any(|e| e.is::<wasmtime::Trap>());
    if trapped {
        tracing::error!(component, %uri, "request failed: the component trapped");
    } else {
        tracing::error!(component, %uri, "request failed: {error:#}");
    }
    text_response(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n")
}

/// The answer of a service with no app installed yet (counted as unrouted).
fn no_app_response() -> Response<WasiBody> {
    let response = text_response(StatusCode::SERVICE_UNAVAILABLE, "No app installed\n");
    crate::metrics::global()
        .http
        .route(UNROUTED)
        .record(response.status(), Duration::ZERO);
    response
}

fn static_response(spec: &StaticResponse) -> Response<WasiBody> {
    let mut builder = Response::builder().status(spec.status);
    for (name, value) in &spec.headers {
        builder = builder.header(name, value);
    }
    let body = spec.body.clone().unwrap_or_default();
    builder
        .body(full_body(Bytes::from(body)))
        .unwrap_or_else(|_| {
            text_response(StatusCode::INTERNAL_SERVER_ERROR, "bad static response\n")
        })
}

fn text_response(status: StatusCode, text: &'static str) -> Response<WasiBody> {
    let mut response = Response::new(full_body(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn full_body(bytes: Bytes) -> WasiBody {
    Full::new(bytes)
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(error: wasmtime::Error, past_deadline: bool) -> StatusCode {
        let uri = http::Uri::from_static("/x");
        error_response("c", &uri, error, past_deadline).status()
    }

    /// What a client gets is decided by types and our own clock: these are
    /// the cases wasmtime-wasi-http reports without a type of its own.
    #[test]
    fn failures_map_to_statuses_without_reading_error_text() {
        assert_eq!(
            status(wasmtime::Error::new(ExpirationError), false),
            StatusCode::GATEWAY_TIMEOUT
        );
        // A guest stopped from outside its instance: "no response", past
        // the deadline by our clock.
        let no_response = || wasmtime::Error::msg("some text a patch release may reword");
        assert_eq!(status(no_response(), true), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            status(no_response(), false),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let trap = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached)
            .context("guest never invoked `response-outparam::set` method");
        assert_eq!(status(trap, false), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            status(wasmtime::Error::new(TrapOrPanicError), false),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
