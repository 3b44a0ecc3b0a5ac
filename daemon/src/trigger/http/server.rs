//! The HTTP server: one accept loop per core.
//!
//! Each serving thread runs its own single-threaded tokio runtime with its own
//! listening socket bound to the same address (`SO_REUSEPORT`: the kernel
//! spreads connections over them). A request is then handled start to finish on
//! one thread. With one shared work-stealing runtime, profiling showed cross-
//! thread wake-ups and rescheduling IPIs among the largest costs per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};

use super::HttpApp;
use crate::shutdown::Shutdown;

/// The listening sockets, bound and listening before any thread serves, so
/// connections are queued from the moment the banner is printed.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    address: SocketAddr,
}

impl Listeners {
    /// Binds `threads` sockets to `address` (port 0 picks one port for all).
    /// Must be called inside a tokio runtime.
    pub fn bind(address: SocketAddr, threads: usize) -> Result<Self> {
        // SO_REUSEPORT would let this process silently share a port with
        // another server of the same user (say, a gatewayd left running):
        // first make sure nobody listens there, with a plain bind.
        if address.port() != 0 {
            let probe = if address.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            probe.set_reuseaddr(true)?;
            probe
                .bind(address)
                .and_then(|()| probe.listen(1).map(drop))
                .with_context(|| format!("listening on {address}"))?;
        }
        let mut sockets = Vec::new();
        let mut address = address;
        for _ in 0..threads.max(1) {
            let socket = if address.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket
                .bind(address)
                .with_context(|| format!("listening on {address}"))?;
            let listener = socket.listen(1024)?;
            address = listener.local_addr()?;
            sockets.push(listener.into_std()?);
        }
        Ok(Self { sockets, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Serves `app` on every listener, one thread each, until `shutdown`; returns
/// when every thread has drained (at most `drain_timeout`).
pub async fn serve(
    listeners: Listeners,
    app: Arc<HttpApp>,
    shutdown: Shutdown,
    drain_timeout: Duration,
) -> Result<()> {
    let mut done = Vec::new();
    for (index, socket) in listeners.sockets.into_iter().enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let app = app.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name(format!("http-{index}"))
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a serving thread's runtime")
                    .and_then(|runtime| {
                        runtime.block_on(async move {
                            let listener = TcpListener::from_std(socket)?;
                            serve_one(listener, app, shutdown, drain_timeout).await
                        })
                    });
                let _ = tx.send(result);
            })
            .context("starting a serving thread")?;
        done.push(rx);
    }
    for rx in done {
        rx.await.context("a serving thread panicked")??;
    }
    Ok(())
}

/// One serving thread's accept loop: serves until `shutdown`, then drains
/// in-flight connections for at most `drain_timeout`.
async fn serve_one(
    listener: TcpListener,
    app: Arc<HttpApp>,
    mut shutdown: Shutdown,
    drain_timeout: Duration,
) -> Result<()> {
    let listen = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, client) = tokio::select! {
            _ = shutdown.requested() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request, client, listen).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    tracing::info!("stopped accepting; draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain timeout ({drain_timeout:?}) reached; closing remaining connections")
        }
    }
    Ok(())
}
