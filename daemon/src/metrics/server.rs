//! The metrics endpoint: `GET /metrics` on its own plain-HTTP listener
//! (`[metrics] listen`, `gatewayd up --metrics`), for a Prometheus server or
//! an agent on the board. The admin API serves the same text behind its
//! tokens; this listener has none, so it belongs on loopback or a
//! management network (the default config leaves it off).
//!
//! A scrape is small and rare; the listener takes a few connections at a
//! time and bounds how long a client may take, so a busy or hostile client
//! costs it little and the serving path nothing.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Scrapes served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 8;
/// How long a client may take to send its request, or sit idle between two.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound listener; serving starts with [`Endpoint::spawn`].
pub struct Endpoint {
    listener: TcpListener,
}

impl Endpoint {
    /// Binds `address`; fails naming it (a port in use, an address this
    /// machine does not have).
    pub fn bind(address: SocketAddr) -> Result<Self> {
        let listener = std::net::TcpListener::bind(address)
            .with_context(|| format!("metrics: listening on {address}"))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        tracing::info!(
            "metrics on http://{}/metrics",
            listener.local_addr().unwrap_or(address)
        );
        Ok(Self { listener })
    }

    /// Serves until the returned task is aborted (with the process).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(serve(self.listener))
    }
}

async fn serve(listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                Ok::<_, Infallible>(respond(&request))
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("metrics connection ended: {e}");
            }
            drop(slot);
        });
    }
}

/// The answer to one request: the metrics for `GET /metrics`, else 404/405.
pub fn respond<B>(request: &Request<B>) -> Response<Full<Bytes>> {
    let text = |status, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return text(
            StatusCode::NOT_FOUND,
            "Not Found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let (content_type, body) = super::global().render(accept);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
