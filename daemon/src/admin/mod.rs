//! The admin API: HTTP/1.1 on a unix socket that only the owner and group may
//! open (`[admin] socket`, `socket_mode`). `gatewayctl` speaks it:
//!
//! - `GET /v1/status`: the running app, its version and generation, uptime,
//!   trigger counts, the last update's outcome;
//! - `POST /v1/bundles[?replace_app=true]`: the body is a bundle; answers once it is applied
//!   (200) or rejected (4xx, with the reason), the running app untouched;
//! - `POST /v1/rollback`: back to the previous generation.
//!
//! Every answer is JSON; errors are `{"ok": false, "error": "..."}`.
//!
//! With `[admin] listen`, the same API is also served over HTTPS on TCP for
//! remote operators (`tcp`), where every request needs a bearer token.

pub mod api;
mod tcp;

pub use tcp::{bind_tcp, serve_tcp};

use std::convert::Infallible;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::UnixListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::shutdown::Shutdown;
use crate::update::controller::{Controller, Rejection, RejectionKind};

type Body = Full<Bytes>;

pub struct Admin {
    controller: Arc<Controller>,
    /// Largest bundle accepted.
    max_bundle_size: u64,
    /// Where uploads are staged (`<state dir>/uploads`, this module's alone:
    /// each is removed after its update, and at start-up if a crash left one).
    uploads: PathBuf,
    /// Connections served at once, socket and TCP together; more wait in
    /// the kernel's accept queue, costing the daemon no file descriptor.
    connections: Arc<Semaphore>,
}

/// Admin connections at once: a few operators and scripts, never a crowd.
const MAX_CONNECTIONS: usize = 16;

/// How long a client may take to send a request's headers (and how long an
/// idle connection is kept): a connection that sends nothing goes away.
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Admin {
    pub fn new(controller: Arc<Controller>, max_bundle_size: u64, uploads: PathBuf) -> Self {
        Self {
            controller,
            max_bundle_size,
            uploads,
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
        }
    }

    /// A connection slot, waiting while all are taken (or `None` at shutdown).
    async fn slot(&self, shutdown: &mut Shutdown) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            permit = self.connections.clone().acquire_owned() => permit.ok(),
            _ = shutdown.requested() => None,
        }
    }

    /// Creates the uploads folder (private) and removes what a crash left.
    pub fn prepare_uploads(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.uploads)
            .with_context(|| format!("creating {}", self.uploads.display()))?;
        for entry in std::fs::read_dir(&self.uploads)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(())
    }
}

/// Binds the admin socket (replacing a stale one) with permission bits `mode`.
pub fn bind(path: &Path, mode: u32) -> Result<UnixListener> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        anyhow::ensure!(
            meta.file_type().is_socket(),
            "admin socket {} exists and is not a socket: refusing to replace it",
            path.display()
        );
        std::fs::remove_file(path)?;
    }
    // Bound under a private name, given its mode, then renamed into place:
    // no client can reach it while it has the looser bits the umask left.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let staging = path.with_file_name(format!(".{name}.{}", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)
        .with_context(|| format!("binding the admin socket {}", staging.display()))?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(e).with_context(|| format!("placing the admin socket at {}", path.display()));
    }
    tracing::info!("admin API on {} (mode {mode:o})", path.display());
    Ok(listener)
}

/// The admin socket the service manager passed (socket activation, named
/// `admin`), ready to serve; it stays the manager's to remove.
pub fn from_activated(fd: std::os::fd::OwnedFd) -> Result<UnixListener> {
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    tracing::info!(
        "admin API on {} (passed by the service manager)",
        address
            .as_pathname()
            .map_or_else(|| "an unnamed socket".into(), |p| p.display().to_string())
    );
    Ok(UnixListener::from_std(listener)?)
}

/// Serves the socket `listener` until `shutdown`, then removes the socket
/// file `bound_at` (the one [`bind`] made, if it made it).
pub async fn serve(
    listener: UnixListener,
    bound_at: Option<PathBuf>,
    admin: Arc<Admin>,
    mut shutdown: Shutdown,
) -> Result<()> {
    loop {
        let Some(slot) = admin.slot(&mut shutdown).await else {
            break;
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.requested() => break,
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            serve_connection(stream, admin, None).await;
            drop(slot);
        });
    }
    if let Some(path) = bound_at {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Serves one connection; with `tokens`, a request without one of them as
/// its bearer token gets 401.
async fn serve_connection<IO>(io: IO, admin: Arc<Admin>, tokens: Option<Arc<Vec<String>>>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let admin = admin.clone();
        let allowed = tokens
            .as_ref()
            .is_none_or(|tokens| tcp::authorized(&request, tokens));
        async move {
            Ok::<_, Infallible>(if allowed {
                admin.route(request).await
            } else {
                discard(request.into_body());
                error(
                    StatusCode::UNAUTHORIZED,
                    "a valid token is required: gatewayctl --token (or GATEWAYCTL_TOKEN)",
                )
            })
        }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .await
    {
        tracing::debug!("admin connection ended: {e}");
    }
}

impl Admin {
    async fn route(&self, request: Request<Incoming>) -> Response<Body> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/v1/status") => json(StatusCode::OK, &self.controller.status().await),
            (&Method::GET, "/metrics") => crate::metrics::server::respond(&request),
            (&Method::POST, "/v1/bundles") => self.push(request).await,
            (&Method::POST, "/v1/rollback") => match self.controller.rollback().await {
                Ok(applied) => json(StatusCode::OK, &applied),
                Err(rejection) => rejected(rejection),
            },
            (_, path) => error(StatusCode::NOT_FOUND, &format!("no such endpoint: {path}")),
        }
    }

    async fn push(&self, request: Request<Incoming>) -> Response<Body> {
        // `?replace_app=true`: the operator means to replace the running app
        // by another one.
        let replace_app = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "replace_app=true"));
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let mut body = request.into_body();
        if declared.is_some_and(|n| n > self.max_bundle_size) {
            discard(body);
            return error(StatusCode::PAYLOAD_TOO_LARGE, &self.too_large());
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let file = self.uploads.join(format!(
            "upload-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let started = Instant::now();
        let response = match self.receive(&mut body, &file).await {
            Ok(()) => match self
                .controller
                .apply(&file, started.elapsed(), replace_app)
                .await
            {
                Ok(applied) => json(StatusCode::OK, &applied),
                Err(rejection) => rejected(rejection),
            },
            Err(response) => {
                discard(body);
                response
            }
        };
        let _ = tokio::fs::remove_file(&file).await;
        response
    }

    /// Streams the upload to `file`, stopping at the size limit.
    async fn receive(&self, body: &mut Incoming, file: &Path) -> Result<(), Response<Body>> {
        let internal = |e: std::io::Error| {
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("staging the upload: {e}"),
            )
        };
        let mut out = tokio::fs::File::create(file).await.map_err(internal)?;
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame
                .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("reading the upload: {e}")))?;
            if let Ok(data) = frame.into_data() {
                size += data.len() as u64;
                if size > self.max_bundle_size {
                    return Err(error(StatusCode::PAYLOAD_TOO_LARGE, &self.too_large()));
                }
                out.write_all(&data).await.map_err(internal)?;
            }
        }
        out.sync_all().await.map_err(internal)?;
        Ok(())
    }

    fn too_large(&self) -> String {
        format!(
            "the bundle is larger than [update] max_bundle_size ({} bytes)",
            self.max_bundle_size
        )
    }
}

/// Reads and drops the rest of a refused upload (for at most a minute), so
/// the client, still sending, gets to read the answer instead of a reset.
fn discard(mut body: Incoming) {
    tokio::spawn(async move {
        let rest = async { while let Some(Ok(_)) = body.frame().await {} };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), rest).await;
    });
}

fn rejected(rejection: Rejection) -> Response<Body> {
    let status = match rejection.kind {
        RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        RejectionKind::Conflict => StatusCode::CONFLICT,
        RejectionKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, &rejection.message)
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        &api::Refusal {
            ok: false,
            error: message.to_string(),
        },
    )
}

fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The update controller says why; the admin API picks the status.
    #[test]
    fn rejection_kinds_map_to_statuses() {
        for (kind, status) in [
            (RejectionKind::Invalid, StatusCode::UNPROCESSABLE_ENTITY),
            (RejectionKind::Conflict, StatusCode::CONFLICT),
            (RejectionKind::Internal, StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let response = rejected(Rejection {
                kind,
                reason: "test",
                message: "why".into(),
            });
            assert_eq!(response.status(), status, "{kind:?}");
        }
    }

    /// The socket appears at its path with its mode already set, replaces a
    /// stale one, and leaves no staging name behind.
    #[tokio::test]
    async fn the_socket_appears_with_its_mode() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        for _ in 0..2 {
            let listener = bind(&path, 0o660).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o660);
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["admin.sock"]);
            drop(listener);
        }
    }
}
