//! The HTTP trigger's health probe: a bundle may name a route
//! (`health_route`) that a new generation must answer with 2xx before the
//! gateway switches to it. The request is real HTTP, to the new app served on a throwaway
//! loopback listener, so it takes the path every request takes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use super::HttpApp;

/// How long the health route may take.
const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn check_route(app: Arc<HttpApp>, route: &str) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let address = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let (stream, client) = listener.accept().await?;
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request, client, address).await) }
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service)
            .await
            .map_err(anyhow::Error::from)
    });
    let ask = async {
        let stream = TcpStream::connect(address).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(route)
            .header(http::header::HOST, address.to_string())
            .body(Empty::<Bytes>::new())?;
        anyhow::Ok(sender.send_request(request).await?.status())
    };
    let status = tokio::time::timeout(TIMEOUT, ask)
        .await
        .with_context(|| format!("GET {route} took longer than {TIMEOUT:?}"))?
        .with_context(|| format!("GET {route}"))?;
    server.abort();
    if !status.is_success() {
        bail!("GET {route} answered {status}");
    }
    Ok(())
}
