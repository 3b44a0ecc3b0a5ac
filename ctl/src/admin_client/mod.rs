//! The transport of gatewayctl's network commands: where gatewayd's admin API
//! is (`--to`, `--token`, `--ca-file`), one HTTP/1.1 request per connection
//! over its unix socket or HTTPS, a request body streamed from a file with
//! progress, and the JSON
//! answer. The commands (`push`, `status`, `rollback`) only build requests and
//! print answers; every connection error is worded here.

use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

/// Where gatewayd listens unless `--to` or `GATEWAYCTL_TO` says otherwise.
pub const DEFAULT_ADDRESS: &str = "unix:///run/gatewayd/admin.sock";

/// Answers longer than this are not gatewayd's admin API.
const MAX_ANSWER: usize = 1024 * 1024;

/// Bytes read from the file per body chunk (and per progress report).
const CHUNK: usize = 128 * 1024;

/// `--to` and `--token`, shared by every network command.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    /// gatewayd's admin API: unix:///PATH (or a bare /PATH) to its socket,
    /// or https://HOST:PORT for its TCP listener (`[admin] listen`).
    #[arg(
        long,
        value_name = "ADDR",
        env = "GATEWAYCTL_TO",
        default_value = DEFAULT_ADDRESS
    )]
    pub to: String,
    /// Admin token, sent as `Authorization: Bearer TOKEN`.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "GATEWAYCTL_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// For https:// addresses: also trust the CA certificates in this PEM
    /// file for gatewayd's admin certificate (public roots are built in).
    #[arg(long, value_name = "PEM", env = "GATEWAYCTL_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// A parsed `--to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    /// gatewayd's TCP admin listener (`[admin] listen`), over TLS.
    Https {
        host: String,
        port: u16,
    },
}

impl Address {
    pub fn parse(to: &str) -> Result<Address> {
        let to = to.trim();
        if to.is_empty() {
            bail!("--to is empty: use unix:///PATH or https://HOST:PORT");
        }
        match to.split_once("://") {
            None => Ok(Address::Unix(PathBuf::from(to))),
            Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
                "unix" if rest.starts_with('/') => Ok(Address::Unix(PathBuf::from(rest))),
                "unix" => bail!(
                    "--to {to}: the socket path must be absolute, as in unix:///run/gatewayd/admin.sock"
                ),
                "https" => {
                    let uri: hyper::Uri = to.parse().map_err(|e| {
                        anyhow!("--to {to}: not an address such as https://gw:7443 ({e})")
                    })?;
                    let host = uri
                        .host()
                        .filter(|h| !h.is_empty())
                        .ok_or_else(|| anyhow!("--to {to}: no host"))?;
                    let host = host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    Ok(Address::Https {
                        host,
                        port: uri.port_u16().unwrap_or(443),
                    })
                }
                "http" => bail!("--to {to}: the TCP admin API speaks HTTPS only: use https://"),
                _ => bail!(
                    "--to {to}: unknown scheme {scheme:?}: use unix:///PATH or https://HOST:PORT"
                ),
            },
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "{}", path.display()),
            Address::Https { host, port } => write!(f, "https://{host}:{port}"),
        }
    }
}

/// Runs one network command on a current-thread runtime.
pub fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

/// What gatewayd answered.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// The body as sent (the daemon's JSON, byte for byte).
    pub body: Bytes,
    /// The body parsed, or `Null` when it is not JSON.
    pub json: serde_json::Value,
}

impl Reply {
    /// The `error` of an `{"ok": false, "error": ...}` answer, or a
    /// description of whatever else came back.
    pub fn error_message(&self) -> String {
        if let Some(error) = self.json.get("error").and_then(|e| e.as_str()) {
            return error.to_string();
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            format!("gatewayd answered {} with no reason", self.status)
        } else {
            format!("gatewayd answered {}: {}", self.status, truncate(text, 300))
        }
    }

    /// The body parsed as `T`, or an error naming the request.
    pub fn parse<T: for<'de> Deserialize<'de>>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            anyhow!(
                "gatewayd's answer to {what} is not what this gatewayctl understands ({e}): {}",
                truncate(String::from_utf8_lossy(&self.body).trim(), 300)
            )
        })
    }

    /// Prints the daemon's JSON as is, with a final newline.
    pub fn print_raw(&self) {
        use std::io::Write as _;
        let mut out = io::stdout().lock();
        let _ = out.write_all(&self.body);
        if !self.body.ends_with(b"\n") {
            let _ = out.write_all(b"\n");
        }
        let _ = out.flush();
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// One admin API endpoint: the address and the token.
pub struct Client {
    address: Address,
    token: Option<String>,
    ca_files: Vec<PathBuf>,
}

impl Client {
    pub fn new(connection: &Connection) -> Result<Client> {
        let address = Address::parse(&connection.to)?;
        let token = match connection.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(token) => {
                hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| anyhow!("--token holds characters a header cannot carry"))?;
                Some(token.to_string())
            }
        };
        Ok(Client {
            address,
            token,
            ca_files: connection.ca_file.iter().cloned().collect(),
        })
    }

    /// `method path` with no body; waits at most `timeout` for the answer.
    pub async fn call(&self, method: Method, path: &str, timeout: Duration) -> Result<Reply> {
        let body = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync();
        self.send(method, path, body, None, timeout).await
    }

    /// `method path` with `upload` as the body, streamed.
    pub async fn upload(
        &self,
        method: Method,
        path: &str,
        upload: Upload,
        timeout: Duration,
    ) -> Result<Reply> {
        let sending = Sending {
            path: upload.path.clone(),
            len: upload.len,
            sent: upload.shared_sent.clone(),
        };
        self.send(method, path, upload.boxed_unsync(), Some(sending), timeout)
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: UnsyncBoxBody<Bytes, io::Error>,
        upload: Option<Sending>,
        timeout: Duration,
    ) -> Result<Reply> {
        let (mut sender, connection) = match &self.address {
            Address::Unix(socket) => {
                let stream = UnixStream::connect(socket)
                    .await
                    .map_err(|e| unreachable_error(socket, &e))?;
                self.handshake(stream).await?
            }
            Address::Https { host, port } => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| {
                        anyhow!(
                            "cannot reach gatewayd at {}: {}",
                            self.address,
                            os_message(&e)
                        )
                    })?;
                let tls = gatewayd::tls::client_config(&self.ca_files)?;
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| anyhow!("--to {}: {e}", self.address))?;
                let stream = tokio_rustls::TlsConnector::from(tls)
                    .connect(name, stream)
                    .await
                    .map_err(|e| anyhow!("TLS with gatewayd at {} failed: {e} (its certificate from a private CA? pass --ca-file)", self.address))?;
                self.handshake(stream).await?
            }
        };

        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(HOST, "localhost")
            .header(
                USER_AGENT,
                concat!("gatewayctl/", env!("CARGO_PKG_VERSION")),
            )
            .header(ACCEPT, "application/json");
        if let Some(upload) = &upload {
            request = request
                .header(CONTENT_LENGTH, upload.len)
                .header(CONTENT_TYPE, "application/octet-stream");
        } else if method == Method::POST {
            // An empty POST still says so, as HTTP/1.1 asks.
            request = request.header(CONTENT_LENGTH, 0);
        }
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(body).context("building the request")?;

        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.exchange_error(&method, path, upload.as_ref(), e))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| anyhow!("reading gatewayd's answer to {method} {path}: {e}"))?
                .to_bytes();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            Ok::<_, anyhow::Error>(Reply { status, body, json })
        };
        let reply = tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            anyhow!(
                "gatewayd at {} did not answer {method} {path} within {}",
                self.address,
                humantime::format_duration(timeout)
            )
        });
        connection.abort();
        reply?
    }

    /// HTTP/1.1 over `io`; the connection is driven by a task of its own.
    async fn handshake<IO>(
        &self,
        io: IO,
    ) -> Result<(
        hyper::client::conn::http1::SendRequest<UnsyncBoxBody<Bytes, io::Error>>,
        tokio::task::JoinHandle<Result<(), hyper::Error>>,
    )>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| anyhow!("cannot talk HTTP with gatewayd at {}: {e}", self.address))?;
        Ok((sender, tokio::spawn(connection)))
    }

    fn exchange_error(
        &self,
        method: &Method,
        path: &str,
        upload: Option<&Sending>,
        e: hyper::Error,
    ) -> anyhow::Error {
        let mut hung_up = e.is_incomplete_message() || e.is_canceled();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
        while let Some(cause) = source {
            // An upload that failed on our side (the file) says so itself.
            if let Some(upload) = cause.downcast_ref::<UploadError>() {
                return anyhow!("{upload}");
            }
            if let Some(io) = cause.downcast_ref::<io::Error>() {
                hung_up |= matches!(
                    io.kind(),
                    io::ErrorKind::BrokenPipe
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::UnexpectedEof
                );
            }
            source = cause.source();
        }
        let sent = upload.map(|u| (u, u.sent.load(Ordering::Relaxed)));
        match sent {
            // gatewayd refused the upload from its headers (too large, say)
            // and hung up without reading the rest: its answer is lost.
            Some((upload, sent)) if hung_up && sent < upload.len => {
                return anyhow!(
                    "gatewayd at {} closed the connection after {sent} of {} bytes of {}, \
                     without an answer (did it refuse the upload? see its log)",
                    self.address,
                    upload.len,
                    upload.path.display()
                );
            }
            _ => {}
        }
        if hung_up {
            anyhow!(
                "gatewayd at {} closed the connection without answering {method} {path} (see its log)",
                self.address
            )
        } else {
            anyhow!("{method} {path} to gatewayd at {}: {e}", self.address)
        }
    }
}

fn unreachable_error(socket: &Path, e: &io::Error) -> anyhow::Error {
    let reason = os_message(e);
    let hint = match e.kind() {
        io::ErrorKind::NotFound => "is it running? is the path [admin] socket of its config?",
        io::ErrorKind::PermissionDenied => {
            "run as root or as a member of the socket's group, or pass another --to"
        }
        io::ErrorKind::ConnectionRefused => {
            "is it running? a socket file stays behind when gatewayd is killed"
        }
        _ => "is it running? is the path [admin] socket of its config?",
    };
    anyhow!(
        "cannot reach gatewayd at {}: {reason} ({hint})",
        socket.display()
    )
}

/// An io::Error's text without the " (os error N)" suffix.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// An upload under way, as the error messages see it.
struct Sending {
    path: PathBuf,
    len: u64,
    sent: Arc<AtomicU64>,
}

/// Called with (bytes handed to the connection, total) after every chunk.
pub type Progress = Box<dyn FnMut(u64, u64) + Send>;

/// A file as a request body: read in chunks of [`CHUNK`] as the connection
/// takes them, never whole, with an exact length (`content-length`).
pub struct Upload {
    path: PathBuf,
    file: tokio::fs::File,
    len: u64,
    sent: u64,
    shared_sent: Arc<AtomicU64>,
    buf: Vec<u8>,
    progress: Option<Progress>,
}

impl Upload {
    pub fn open(path: &Path) -> Result<Upload> {
        let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let meta = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a file", path.display());
        }
        Ok(Upload {
            path: path.to_path_buf(),
            file: tokio::fs::File::from_std(file),
            len: meta.len(),
            sent: 0,
            shared_sent: Arc::default(),
            buf: vec![0; CHUNK],
            progress: None,
        })
    }

    pub fn on_progress(mut self, progress: Progress) -> Upload {
        self.progress = Some(progress);
        self
    }
}

/// The file changed or failed while being sent.
#[derive(Debug)]
struct UploadError(String);

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UploadError {}

impl Body for Upload {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let remaining = this.len - this.sent;
        if remaining == 0 {
            return Poll::Ready(None);
        }
        let want = remaining.min(CHUNK as u64) as usize;
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(io::Error::other(UploadError(format!(
                "reading {}: {e}",
                this.path.display()
            )))))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                Poll::Ready(Some(Err(io::Error::other(UploadError(format!(
                    "{} shrank while being sent ({} of {} bytes)",
                    this.path.display(),
                    this.sent,
                    this.len
                ))))))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.sent += chunk.len() as u64;
                this.shared_sent.store(this.sent, Ordering::Relaxed);
                if let Some(progress) = &mut this.progress {
                    progress(this.sent, this.len);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len - self.sent)
    }
}

#[cfg(test)]
mod tests;
