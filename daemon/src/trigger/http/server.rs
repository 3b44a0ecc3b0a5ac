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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::admission::{Admission, Ticket};
use super::slot::AppSlot;
use crate::liveness::Liveness;
use crate::metrics::Held;
use crate::shutdown::Shutdown;

/// HTTP requests answered since the process started, on every listener
/// (for the service manager's status line).
static REQUESTS_SERVED: AtomicU64 = AtomicU64::new(0);

pub fn requests_served() -> u64 {
    REQUESTS_SERVED.load(Ordering::Relaxed)
}

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

    /// Serves on a socket bound by someone else (the service manager, for
    /// socket activation): every thread accepts from the same socket.
    pub fn from_socket(listener: std::net::TcpListener, threads: usize) -> Result<Self> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let mut sockets = Vec::new();
        for _ in 1..threads.max(1) {
            sockets.push(listener.try_clone()?);
        }
        sockets.push(listener);
        Ok(Self { sockets, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

/// Serves on every listener, one thread each with its own [`AppSlot`] (one
/// per listener, in order), until `shutdown`; returns when every thread has
/// drained (at most `drain_timeout`). With `liveness`, each thread's runtime
/// beats a heart (`http-<n>`), so a wedged thread stops the watchdog.
pub async fn serve(
    listeners: Listeners,
    apps: Vec<Arc<AppSlot>>,
    shutdown: Shutdown,
    drain_timeout: Duration,
    liveness: Option<Liveness>,
) -> Result<()> {
    anyhow::ensure!(
        apps.len() == listeners.sockets.len(),
        "one app per listener is needed"
    );
    let admission = Admission::for_this_process();
    tracing::debug!(
        "serving at most {} connections, {} per client address",
        admission.total(),
        admission.per_client()
    );
    let connections = Arc::new(Semaphore::new(admission.total()));
    let mut done = Vec::new();
    let mut started = Vec::new();
    for (index, (socket, app)) in listeners.sockets.into_iter().zip(apps).enumerate() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let shutdown = shutdown.clone();
        let name = format!("http-{index}");
        let heart = liveness.as_ref().map(|l| l.register(&name));
        let (admission, connections) = (admission.clone(), connections.clone());
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a serving thread's runtime")
                    .and_then(|runtime| {
                        let result = runtime.block_on(async move {
                            let listener = TcpListener::from_std(socket)?;
                            if let Some(heart) = heart {
                                tokio::spawn(heart.beat());
                            }
                            crate::liveness::wedge_if_asked(&name);
                            let _ = started_tx.send(());
                            let limits = Limits {
                                admission,
                                connections,
                            };
                            serve_one(listener, app, limits, shutdown, drain_timeout).await
                        });
                        // Blocking tasks (a DNS lookup, a file read) must not
                        // hold the exit past the drain.
                        runtime.shutdown_timeout(Duration::from_secs(1));
                        result
                    });
                let _ = tx.send(result);
            })
            .context("starting a serving thread")?;
        done.push(rx);
        started.push(started_rx);
    }
    // A thread that cannot start must stop the daemon now, not at shutdown.
    for (started, done) in started.into_iter().zip(done.iter_mut()) {
        if started.await.is_err() {
            return match done.await {
                Ok(Err(e)) => Err(e.context("a serving thread failed to start")),
                _ => Err(anyhow::anyhow!("a serving thread failed to start")),
            };
        }
    }
    for rx in done {
        rx.await.context("a serving thread panicked")??;
    }
    Ok(())
}

/// What every serving thread shares: the connection caps and the permits
/// for the process-wide one.
struct Limits {
    admission: Arc<Admission>,
    connections: Arc<Semaphore>,
}

/// How long a client may take to send a request's headers (also bounds how
/// long an idle keep-alive connection is kept).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One serving thread's accept loop: serves until `shutdown`, then drains
/// in-flight connections for at most `drain_timeout`.
async fn serve_one(
    listener: TcpListener,
    slot: Arc<AppSlot>,
    limits: Limits,
    mut shutdown: Shutdown,
    drain_timeout: Duration,
) -> Result<()> {
    let listen = listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    loop {
        let (held, stream, client) = tokio::select! {
            _ = shutdown.requested() => break,
            accepted = accept(&listener, &limits) => match accepted {
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
        let slot = slot.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = slot.get();
            async move {
                let response = match app {
                    Some(app) => app.handle(request, client, listen).await,
                    None => super::no_app_response(),
                };
                REQUESTS_SERVED.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%client, "connection ended: {e}");
            }
            drop(held);
        });
    }
    drop(listener);
    tracing::debug!("stopped accepting; draining in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("drain timeout ({drain_timeout:?}) reached; closing remaining connections")
        }
    }
    Ok(())
}

/// Waits for a free slot, then accepts the next connection whose client has
/// not used up its share (others are closed as they come).
async fn accept(
    listener: &TcpListener,
    limits: &Limits,
) -> std::io::Result<(
    (OwnedSemaphorePermit, Ticket, Held),
    tokio::net::TcpStream,
    SocketAddr,
)> {
    let permit = limits
        .connections
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    loop {
        let (stream, client) = listener.accept().await?;
        let metrics = &crate::metrics::global().http;
        if let Some(ticket) = limits.admission.admit(client.ip()) {
            let open = Held::on(&metrics.connections_open);
            return Ok(((permit, ticket, open), stream, client));
        }
        metrics.connections_refused.inc();
    }
}
