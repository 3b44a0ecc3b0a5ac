//! Tests of the admin client against a fake gatewayd on a temporary unix socket.
use super::*;
use std::sync::Mutex;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::UnixListener;

/// What the fake daemon saw of one request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub content_length: Option<String>,
    pub authorization: Option<String>,
    pub host: Option<String>,
    pub body: Vec<u8>,
}

/// A fake gatewayd on `socket`: records each request, answers `status`
/// and `json`, serves forever (the test's runtime ends it).
pub async fn fake_daemon(
    socket: PathBuf,
    status: u16,
    json: &'static str,
) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = UnixListener::bind(&socket).unwrap();
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let record = record.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let record = record.clone();
                async move {
                    let header = |name| {
                        request
                            .headers()
                            .get(name)
                            .map(|v: &hyper::header::HeaderValue| v.to_str().unwrap().to_string())
                    };
                    let mut seen = Seen {
                        method: request.method().to_string(),
                        path: request.uri().to_string(),
                        content_length: header(CONTENT_LENGTH),
                        authorization: header(AUTHORIZATION),
                        host: header(HOST),
                        body: Vec::new(),
                    };
                    seen.body = request.into_body().collect().await?.to_bytes().to_vec();
                    record.lock().unwrap().push(seen);
                    let response = hyper::Response::builder()
                        .status(status)
                        .header(CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from_static(json.as_bytes())))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    seen
}

pub fn connection(socket: &Path, token: Option<&str>) -> Connection {
    Connection {
        to: format!("unix://{}", socket.display()),
        token: token.map(str::to_string),
        ca_file: None,
    }
}

#[test]
fn addresses() {
    assert_eq!(
        Address::parse("unix:///run/gatewayd/admin.sock").unwrap(),
        Address::Unix("/run/gatewayd/admin.sock".into())
    );
    assert_eq!(
        Address::parse("/tmp/a.sock").unwrap(),
        Address::Unix("/tmp/a.sock".into())
    );
    assert_eq!(
        Address::parse("https://gw.example:8443").unwrap(),
        Address::Https {
            host: "gw.example".into(),
            port: 8443
        }
    );
    let plain = Address::parse("http://gw.example:8443").unwrap_err();
    assert!(plain.to_string().contains("HTTPS only"), "{plain}");
    assert!(Address::parse("unix://relative.sock").is_err());
    assert!(Address::parse("ftp://x").is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn streams_a_file_with_its_length_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let seen = fake_daemon(socket.clone(), 200, r#"{"ok": true}"#).await;

    // Not a multiple of the chunk size, several chunks long.
    let content: Vec<u8> = (0..(3 * CHUNK + 12345)).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("app.bundle");
    std::fs::write(&file, &content).unwrap();

    let reports = Arc::new(Mutex::new(Vec::new()));
    let record = reports.clone();
    let upload = Upload::open(&file)
        .unwrap()
        .on_progress(Box::new(move |sent, total| {
            record.lock().unwrap().push((sent, total))
        }));
    let client = Client::new(&connection(&socket, Some("s3cret"))).unwrap();
    let reply = client
        .upload(Method::POST, "/v1/bundles", upload, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["ok"], true);

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/bundles");
    assert_eq!(
        seen[0].content_length.as_deref(),
        Some(content.len().to_string().as_str())
    );
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer s3cret"));
    assert_eq!(seen[0].host.as_deref(), Some("localhost"));
    assert!(seen[0].body == content, "body differs");

    let reports = reports.lock().unwrap();
    assert_eq!(reports.len(), 4, "{reports:?}");
    assert_eq!(reports[0], (CHUNK as u64, content.len() as u64));
    assert_eq!(
        *reports.last().unwrap(),
        (content.len() as u64, content.len() as u64)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn empty_file_and_get() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let seen = fake_daemon(
        socket.clone(),
        404,
        r#"{"ok": false, "error": "no such path"}"#,
    )
    .await;
    let file = dir.path().join("empty");
    std::fs::write(&file, b"").unwrap();
    let client = Client::new(&connection(&socket, None)).unwrap();
    let reply = client
        .upload(
            Method::POST,
            "/v1/bundles",
            Upload::open(&file).unwrap(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_message(), "no such path");
    let reply = client
        .call(Method::GET, "/v1/status", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(reply.status, 404);

    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].content_length.as_deref(), Some("0"));
    assert_eq!(seen[1].method, "GET");
    assert_eq!(seen[1].path, "/v1/status");
    assert_eq!(seen[1].content_length, None);
    assert_eq!(seen[1].authorization, None);
    assert!(seen[1].body.is_empty());
}

#[tokio::test(flavor = "current_thread")]
async fn unreachable_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("missing.sock");
    let client = Client::new(&connection(&socket, None)).unwrap();
    let error = client
        .call(Method::GET, "/v1/status", Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "cannot reach gatewayd at {}: No such file or directory \
             (is it running? is the path [admin] socket of its config?)",
            socket.display()
        )
    );

    // A socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let error = client
        .call(Method::GET, "/v1/status", Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Connection refused"), "{error}");
}

/// gatewayd may refuse a bundle from its headers alone (too large, a
/// push already running) and answer before reading the body.
#[tokio::test(flavor = "current_thread")]
async fn answer_before_the_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(|request: Request<Incoming>| async {
                // Answer at once, and read the rest of the upload so that
                // the client, still sending, sees the answer.
                tokio::spawn(request.into_body().collect());
                let response = hyper::Response::builder()
                    .status(413)
                    .body(Full::new(Bytes::from_static(
                        br#"{"ok": false, "error": "bundle too large"}"#,
                    )))
                    .unwrap();
                Ok::<_, hyper::Error>(response)
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let file = dir.path().join("big.bundle");
    std::fs::write(&file, vec![7u8; 32 << 20]).unwrap();
    let client = Client::new(&connection(&socket, None)).unwrap();
    let reply = client
        .upload(
            Method::POST,
            "/v1/bundles",
            Upload::open(&file).unwrap(),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error_message(), "bundle too large");
}

/// A daemon that hangs up in the middle of an upload.
#[tokio::test(flavor = "current_thread")]
async fn hang_up_during_the_upload() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = [0; 1024];
            let _ = stream.read(&mut head).await;
            drop(stream);
        }
    });
    let file = dir.path().join("big.bundle");
    std::fs::write(&file, vec![7u8; 32 << 20]).unwrap();
    let client = Client::new(&connection(&socket, None)).unwrap();
    let error = client
        .upload(
            Method::POST,
            "/v1/bundles",
            Upload::open(&file).unwrap(),
            Duration::from_secs(30),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("closed the connection after")
            && error.contains(&format!("of {} bytes of {}", 32 << 20, file.display()))
            && error.contains("did it refuse the upload?"),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn daemon_that_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        }
    });
    let client = Client::new(&connection(&socket, None)).unwrap();
    let error = client
        .call(Method::GET, "/v1/status", Duration::from_secs(5))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("closed the connection without answering GET /v1/status"),
        "{error}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn slow_daemon_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("admin.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    tokio::spawn(async move {
        let mut kept = Vec::new();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            kept.push(stream);
        }
    });
    let client = Client::new(&connection(&socket, None)).unwrap();
    let error = client
        .call(Method::GET, "/v1/status", Duration::from_millis(200))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("did not answer GET /v1/status within 200ms"),
        "{error}"
    );
}
