//! `probe`: the end-to-end tests' component. One plain `wasi:http/proxy` (WASI 0.2)
//! component built with `wstd`, whose behaviour is picked by the request path, so
//! the tests can reach every host capability and every failure mode (trap,
//! timeout, memory limit) through one build. The path is taken from Spin's
//! `spin-path-info` header when the gateway sets it (the part after the route
//! prefix), else from the URI, so the same endpoints work under `/probe/...` and
//! at the root. See `examples/probe/spin.toml` for the routes and grants.

use futures_lite::stream;
use std::hint::black_box;
use wstd::http::body::Bytes;
use wstd::http::{Body, Client, Request, Response, Result, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>> {
    let path = effective_path(&request);
    let method = request.method().to_string();

    if path == "/echo" {
        // Handing the incoming body to the response makes wstd copy stream to
        // stream in bounded chunks: a 10 MiB upload never sits in guest memory.
        let (_parts, body) = request.into_parts();
        return Ok(Response::builder()
            .header("x-echo-method", method)
            .body(body)?);
    }
    if path == "/headers" {
        // Sorted so tests can compare against a fixed expectation; a repeated
        // header keeps one line per value.
        let mut lines: Vec<String> = request
            .headers()
            .iter()
            .map(|(k, v)| format!("{}: {}\n", k, String::from_utf8_lossy(v.as_bytes())))
            .collect();
        lines.sort();
        return text(StatusCode::OK, lines.concat());
    }
    if let Some(name) = path.strip_prefix("/env/") {
        return match std::env::var(name) {
            Ok(v) => text(StatusCode::OK, v),
            Err(_) => text(StatusCode::NOT_FOUND, "unset".into()),
        };
    }
    if let Some(file) = path.strip_prefix("/file/") {
        // Only what the manifest's `files` preopened is visible; anything else
        // must fail here, and the error text tells the test why.
        return match std::fs::read(format!("/{file}")) {
            Ok(data) => Ok(Response::new(data.into())),
            Err(e) => text(StatusCode::NOT_FOUND, e.to_string()),
        };
    }
    if path == "/outbound" {
        let query = request.uri().query().unwrap_or("");
        let url = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("url="))
            .map(percent_decode)
            .unwrap_or_default();
        return outbound(&url).await;
    }
    if let Some(file) = path.strip_prefix("/write/") {
        // The gateway grants files read-only: this must fail.
        return match std::fs::write(format!("/{file}"), b"written by the guest") {
            Ok(()) => text(StatusCode::OK, "written".into()),
            Err(e) => text(StatusCode::FORBIDDEN, e.to_string()),
        };
    }
    if path == "/outbound-raw" {
        let query = request.uri().query().unwrap_or("");
        let url = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("url="))
            .map(percent_decode)
            .unwrap_or_default();
        return text(StatusCode::OK, outbound_raw(&url));
    }
    if path == "/trap" {
        panic!("probe: deliberate trap");
    }
    if path == "/loop" {
        // black_box keeps the optimiser from proving the loop useless, so only
        // the gateway's deadline (epoch interruption) can end this request.
        let mut n: u64 = 0;
        loop {
            n = black_box(n).wrapping_add(1);
        }
    }
    if path == "/membomb" {
        return membomb();
    }
    if let Some(n) = path.strip_prefix("/work/") {
        // CPU work with memory traffic, for comparing code generators
        // (native vs Pulley): N rounds over a 64 KiB table.
        let Ok(rounds) = n.parse::<u32>() else {
            return text(StatusCode::BAD_REQUEST, "bad rounds".into());
        };
        return text(StatusCode::OK, format!("{}\n", work(rounds)));
    }
    if let Some(n) = path.strip_prefix("/big/") {
        let Ok(n) = n.parse::<u64>() else {
            return text(StatusCode::BAD_REQUEST, "bad size".into());
        };
        return Ok(Response::new(big_body(n)));
    }
    if path == "/log" {
        // Written through wasi:cli stdout/stderr, which the gateway must route to
        // its logs tagged with the component.
        println!("probe: to stdout");
        eprintln!("probe: to stderr");
        return text(StatusCode::OK, "logged".into());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return match code
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => Ok(Response::builder().status(status).body(Body::empty())?),
            None => text(StatusCode::BAD_REQUEST, "bad status".into()),
        };
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        // A slow but well-behaved request: for graceful-shutdown tests.
        let Ok(ms) = ms.parse::<u64>() else {
            return text(StatusCode::BAD_REQUEST, "bad duration".into());
        };
        // Logged so a test knows the request reached the guest.
        println!("probe: sleeping {ms} ms");
        wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await;
        return text(StatusCode::OK, format!("slept {ms} ms"));
    }
    // The fallback also lists the spin-* headers, so routing tests can check
    // what the gateway told the component about the match.
    let mut spin_headers: Vec<String> = request
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("spin-"))
        .map(|(k, v)| format!("{}: {}\n", k, String::from_utf8_lossy(v.as_bytes())))
        .collect();
    spin_headers.sort();
    text(
        StatusCode::OK,
        format!("probe {method} {path}\n{}", spin_headers.concat()),
    )
}

/// The path the component was asked for, relative to its route. An exact route
/// (`/exact`, `/users/:id`) gets an empty `spin-path-info`; the full path is
/// more useful to a test then.
fn effective_path(request: &Request<Body>) -> String {
    match request
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
    {
        Some(info) if !info.is_empty() => info.to_string(),
        _ => request.uri().path().to_string(),
    }
}

fn text(status: StatusCode, body: String) -> Result<Response<Body>> {
    Ok(Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body.into())?)
}

/// A GET through the bare `wasi:http/outgoing-handler` binding, reporting the
/// exact `error-code` the host returned (wstd folds some of them into I/O
/// errors). Only `http://host[:port]/path` URLs; this is a test probe.
fn outbound_raw(url: &str) -> String {
    use wasip2::http::{outgoing_handler, types};
    let Some(rest) = url.strip_prefix("http://") else {
        return "error=only http:// urls".into();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let request = types::OutgoingRequest::new(types::Fields::new());
    let _ = request.set_scheme(Some(&types::Scheme::Http));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let future = match outgoing_handler::handle(request, None) {
        Ok(future) => future,
        Err(code) => return format!("error={code:?}"),
    };
    future.subscribe().block();
    match future.get() {
        Some(Ok(Ok(response))) => format!("status={}", response.status()),
        Some(Ok(Err(code))) => format!("error={code:?}"),
        other => format!("error=unexpected {}", other.is_some()),
    }
}

async fn outbound(url: &str) -> Result<Response<Body>> {
    let result = async {
        let request = Request::get(url).body(Body::empty())?;
        let mut response = Client::new().send(request).await?;
        let status = response.status().as_u16();
        let body = response.body_mut().contents().await?.to_vec();
        Ok::<_, wstd::http::Error>((status, body))
    }
    .await;
    match result {
        Ok((status, body)) => {
            let mut out = format!("status={status}\n").into_bytes();
            out.extend_from_slice(&body);
            Ok(Response::new(out.into()))
        }
        // `{:#}` keeps the whole cause chain on one line, including the WASI
        // error code (e.g. HttpRequestDenied) that a denial test looks for.
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("error={e:#}")),
    }
}

/// Grows the heap 1 MiB at a time until the gateway's memory limit refuses.
/// `try_reserve` turns the refusal into an error instead of an abort, so the
/// test sees how far it got; the chunks are freed before answering so the
/// answer itself can be allocated.
/// A xorshift walk over a table: loads, stores and arithmetic.
fn work(rounds: u32) -> u64 {
    let mut table = vec![0u64; 8192];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..rounds {
        for slot in 0..table.len() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % table.len();
            table[slot] = table[slot].wrapping_add(table[i] ^ x);
        }
    }
    black_box(table.iter().fold(0, |a, b| a ^ b))
}

fn membomb() -> Result<Response<Body>> {
    const MIB: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk: Vec<u8> = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() || chunks.try_reserve(1).is_err() {
            break;
        }
        // Touch every page so the memory is really committed, not just reserved.
        chunk.resize(MIB, 1);
        chunks.push(black_box(chunk));
    }
    let got = chunks.len();
    drop(chunks);
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("membomb: allocation failed after {got} MiB\n"),
    )
}

/// `n` bytes of `x`, produced 64 KiB at a time as the body is sent; every chunk
/// shares one buffer, so memory stays flat whatever `n` is.
fn big_body(n: u64) -> Body {
    const CHUNK: u64 = 64 * 1024;
    let buf = Bytes::from(vec![b'x'; CHUNK as usize]);
    let chunks = (0..n.div_ceil(CHUNK)).map(move |i| {
        let len = CHUNK.min(n - i * CHUNK) as usize;
        buf.slice(..len)
    });
    Body::from_stream(stream::iter(chunks))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (pair, bytes[i]) {
            (Some(b), _) => {
                out.push(b);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, b) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
