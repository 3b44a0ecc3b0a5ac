//! End-to-end tests of the HTTP trigger: gatewayd as a process, a real HTTP
//! client over loopback, components built from examples/.

use crate::harness;

use std::time::Duration;

use harness::{Gateway, Options, client, examples, get};

fn probe_app() -> std::path::PathBuf {
    examples().join("probe")
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_components_from_every_toolchain() {
    let gw = Gateway::start(&probe_app());
    // wstd (WASI 0.2)
    let (status, body) = get(&gw.url("/probe/")).await;
    assert_eq!(status, 200, "{body}");
    // Spin Rust SDK 5 (WASI 0.2, imports the whole Spin platform world)
    let (status, body) = get(&gw.url("/sdk5/anything")).await;
    assert_eq!((status, body.as_str()), (200, "Hello from Spin SDK 5\n"));
    // Spin Rust SDK 7 (WASI 0.3, wasi:http/handler@0.3.0)
    let (status, body) = get(&gw.url("/p3/x")).await;
    assert_eq!((status, body.as_str()), (200, "Hello from gatewayd!\n"));
    let banner = gw.logs();
    assert!(banner.contains("/users/:id -> probe"), "{banner}");
    assert!(
        banner.contains("/p3/... -> hello (wasi:http 0.3)"),
        "{banner}"
    );
    // WASI 0.2 components run on the plain engine (served without
    // wasmtime's event loop), the WASI 0.3 one on the concurrent engine.
    for (component, calls) in [
        ("probe", "plain calls)"),
        ("hello-sdk5", "plain calls)"),
        ("hello", "async calls)"),
    ] {
        // "compiled ... (plain calls) in ..." or, from a code cache another
        // test filled, "loaded precompiled code from the cache (..., plain calls)".
        let load_line = banner
            .lines()
            .find(|l| l.contains(" calls)") && l.ends_with(&format!("component={component}")));
        assert!(
            load_line.is_some_and(|l| l.contains(calls)),
            "{component}: {calls}:\n{banner}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_example_app_answers() {
    let gw = Gateway::start(&examples().join("hello"));
    let (status, body) = get(&gw.url("/hello")).await;
    assert_eq!((status, body.as_str()), (200, "Hello from gatewayd!\n"));
    let (status, _) = get(&gw.url("/hello/deeper/path")).await;
    assert_eq!(status, 200);
    let (status, _) = get(&gw.url("/elsewhere")).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn routes_parameters_wildcards_and_404() {
    let gw = Gateway::start(&probe_app());
    let (status, body) = get(&gw.url("/users/42")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("spin-path-match-id: 42\n"), "{body}");
    assert!(body.contains("spin-matched-route: /users/:id\n"), "{body}");

    let (status, body) = get(&gw.url("/users/42/posts/7")).await;
    assert_eq!(status, 200);
    assert!(body.contains("spin-path-match-id: 42\n"), "{body}");
    assert!(body.contains("spin-path-match-post: 7\n"), "{body}");

    let (status, body) = get(&gw.url("/probe/a/b/c?q=1")).await;
    assert_eq!(status, 200);
    assert!(body.contains("spin-path-info: /a/b/c\n"), "{body}");
    assert!(body.contains("spin-matched-route: /probe/...\n"), "{body}");
    assert!(body.contains("spin-component-route: /probe\n"), "{body}");

    let (status, _) = get(&gw.url("/exact")).await;
    assert_eq!(status, 200);
    for missing in ["/exact/more", "/users", "/users/1/posts", "/nowhere"] {
        let (status, _) = get(&gw.url(missing)).await;
        assert_eq!(status, 404, "{missing}");
    }
}

/// One request with `target` sent byte for byte (HTTP/1.0, so the body is not chunked; a client library would
/// resolve `..` or re-encode first); the status and body of the answer.
async fn raw_get(gw: &Gateway, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let address = gw.url("").trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(address.trim_end_matches('/'))
        .await
        .unwrap();
    let request = format!("GET {target} HTTP/1.0\r\nHost: gw\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_are_matched_in_their_normal_form() {
    let gw = Gateway::start(&probe_app());
    // Empty segments, encoded unreserved characters and dot segments reach the
    // route their normal form names (the component sees the URI as sent).
    for target in [
        "//users/42",
        "/users//42",
        "/%75sers/%34%32",
        "/probe/../users/42",
        "/users/./42",
    ] {
        let (status, body) = raw_get(&gw, target).await;
        assert_eq!(status, 200, "{target}: {body}");
        assert!(
            body.contains("spin-matched-route: /users/:id\n"),
            "{target}: {body}"
        );
        assert!(
            body.contains("spin-path-match-id: 42\n"),
            "{target}: {body}"
        );
    }
    let (status, body) = raw_get(&gw, "/probe//a/%62/./c").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("spin-path-info: /a/b/c\n"), "{body}");
    // A reserved character stays encoded: %2F is not a separator.
    let (status, body) = raw_get(&gw, "/users/a%2fb").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("spin-path-match-id: a%2Fb\n"), "{body}");
    // Above the root is refused, not clamped to it.
    for target in ["/../exact", "/probe/../../exact", "/%2e%2e/exact"] {
        let (status, _) = raw_get(&gw, target).await;
        assert_eq!(status, 400, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn static_response_needs_no_component() {
    let gw = Gateway::start(&probe_app());
    let response = client().get(gw.url("/static/hello")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["x-static"], "yes");
    assert_eq!(response.text().await.unwrap(), "static hello\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_headers_are_set_and_cannot_be_forged() {
    let gw = Gateway::start(&probe_app());
    let response = client()
        .get(gw.url("/probe/headers?x=1"))
        .header("spin-path-info", "/forged")
        .header("spin-path-match-admin", "true")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    let expected_url = format!("spin-full-url: http://{}/probe/headers?x=1\n", gw.addr);
    assert!(body.contains(&expected_url), "{body}");
    assert!(body.contains("spin-path-info: /headers\n"), "{body}");
    assert!(body.contains("spin-base-path: /\n"), "{body}");
    assert!(
        body.contains("spin-raw-component-route: /probe/...\n"),
        "{body}"
    );
    assert!(body.contains("spin-client-addr: 127.0.0.1:"), "{body}");
    assert!(body.contains("x-custom: kept\n"), "{body}");
    assert!(!body.contains("forged"), "{body}");
    assert!(!body.contains("spin-path-match-admin"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn large_request_and_response_bodies_stream() {
    let gw = Gateway::start(&probe_app());
    let payload: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let response = client()
        .post(gw.url("/probe/echo"))
        .body(payload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-echo-method"], "POST");
    let echoed = response.bytes().await.unwrap();
    assert!(
        echoed == payload,
        "echoed body differs ({} bytes)",
        echoed.len()
    );

    // A body streamed in chunks by the guest.
    let response = client()
        .get(gw.url("/probe/big/5000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), 5_000_000);
    assert!(body.iter().all(|&b| b == b'x'));
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_over_the_limit_never_reach_the_component_whole() {
    let gw = Gateway::start_with(
        &probe_app(),
        Options {
            args: &["--max-request-body-size", "1MiB"],
            ..Options::default()
        },
    );
    let limit = 1024 * 1024;
    // At the limit: echoed whole.
    let response = client()
        .post(gw.url("/probe/echo"))
        .body(vec![b'a'; limit])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), limit);
    // A declared length over it: 413, the component is not called.
    let response = client()
        .post(gw.url("/probe/echo"))
        .body(vec![b'a'; limit + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // A chunked body over it is cut: the component never sees all of it.
    let chunks = (0..4).map(move |_| Ok::<_, std::io::Error>(vec![b'b'; limit / 2]));
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let echoed = match client().post(gw.url("/probe/echo")).body(body).send().await {
        Ok(response) if response.status() == 200 => response.bytes().await.map_or(0, |b| b.len()),
        Ok(_) | Err(_) => 0,
    };
    assert!(echoed <= limit, "{echoed} bytes echoed");
    assert_eq!(get(&gw.url("/probe/ok")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_from_manifest_and_command_line() {
    let gw = Gateway::start_with(
        &probe_app(),
        Options {
            args: &["-e", "EXTRA=from the command line"],
            ..Options::default()
        },
    );
    assert_eq!(
        get(&gw.url("/probe/env/GREETING")).await,
        (200, "hi from env".into())
    );
    assert_eq!(
        get(&gw.url("/probe/env/EXTRA")).await,
        (200, "from the command line".into())
    );
    assert_eq!(
        get(&gw.url("/probe/env/HOME")).await.0,
        404,
        "host env leaked"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_read_only_and_limited_to_the_grant() {
    let gw = Gateway::start(&probe_app());
    assert_eq!(
        get(&gw.url("/probe/file/assets/greeting.txt")).await,
        (200, "hello from a file\n".into())
    );
    let (status, _) = get(&gw.url("/probe/file/etc/passwd")).await;
    assert_eq!(status, 404);
    let (status, _) = get(&gw.url("/probe/file/spin.toml")).await;
    assert_eq!(
        status, 404,
        "files next to the granted ones must not be visible"
    );
    for target in ["assets/greeting.txt", "assets/new.txt", "new.txt"] {
        let (status, body) = get(&gw.url(&format!("/probe/write/{target}"))).await;
        assert_eq!(status, 403, "writing {target}: {body}");
    }
    let original = std::fs::read_to_string(probe_app().join("assets/greeting.txt")).unwrap();
    assert_eq!(original, "hello from a file\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_http_only_to_allowed_hosts() {
    // A real upstream on loopback: a tiny HTTP/1 server answering "upstream ok".
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = upstream.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        for _ in 0..4 {
            let Ok((mut stream, _)) = upstream.accept().await else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\nupstream ok")
                .await;
        }
    });
    let gw = Gateway::start(&probe_app());
    let allowed = format!("http://127.0.0.1:{port}/");
    let (status, body) = get(&gw.url(&format!("/probe/outbound?url={}", encode(&allowed)))).await;
    assert_eq!((status, body.as_str()), (200, "status=200\nupstream ok"));

    // Same server, but by a name the manifest did not grant: the guest gets
    // wasi:http's `HTTP-request-denied` error code, and the log says who tried.
    let denied = format!("http://localhost:{port}/");
    let (status, body) =
        get(&gw.url(&format!("/probe/outbound-raw?url={}", encode(&denied)))).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "error=ErrorCode::HttpRequestDenied")
    );
    assert!(gw.wait_for_log("outbound HTTP request denied", Duration::from_secs(5)));
    // `http://self` (granted) reaches the app's own routes.
    let (status, body) = get(&gw.url(&format!(
        "/probe/outbound-raw?url={}",
        encode("http://self/static/hello")
    )))
    .await;
    assert_eq!((status, body.as_str()), (200, "status=201"));
    let (status, body) = get(&gw.url(&format!(
        "/probe/outbound?url={}",
        encode("http://self/sdk5/x")
    )))
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "status=200\nHello from Spin SDK 5\n")
    );
    // Through wstd's client, the request fails too (wstd reports it as an I/O error).
    let (status, _) = get(&gw.url(&format!("/probe/outbound?url={}", encode(&denied)))).await;
    assert_eq!(status, 502);
}

/// wstd finishes a GET's (empty) body after starting the request, and hyper
/// drops the body of a GET at once: the guest's finish used to fail with
/// "connection reset" whenever the answer came first, which a fast server
/// made 7 requests in 100. 100 in a row catch that almost surely.
#[tokio::test(flavor = "multi_thread")]
async fn outbound_gets_to_a_fast_server_do_not_race_their_own_body() {
    let gw = Gateway::start(&probe_app());
    let url = gw.url(&format!(
        "/probe/outbound?url={}",
        encode(&gw.url("/static/hello"))
    ));
    for n in 0..100 {
        let (status, body) = get(&url).await;
        assert_eq!(
            (status, body.lines().next()),
            (200, Some("status=201")),
            "request {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guest_stdout_goes_to_the_log_with_the_component_id() {
    let gw = Gateway::start(&probe_app());
    assert_eq!(get(&gw.url("/probe/log")).await.0, 200);
    for needle in ["probe: to stdout", "probe: to stderr"] {
        assert!(
            gw.wait_for_log(needle, Duration::from_secs(5)),
            "no {needle:?} in:\n{}",
            gw.logs()
        );
    }
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("probe: to stderr"))
        .unwrap();
    assert!(
        line.contains("component=\"probe\"") || line.contains("component=probe"),
        "{line}"
    );
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// componentize-py's component carries CPython and imports the whole Spin
/// platform (99 imports, most of which the gateway does not implement yet):
/// it must still load, and answer, because unknown imports trap only if called.
#[tokio::test(flavor = "multi_thread")]
async fn a_python_component_importing_the_whole_spin_platform_runs() {
    let app = harness::hello_py();
    let gw = Gateway::start(&app);
    assert_eq!(get(&gw.url("/")).await, (200, "Hello from Python\n".into()));
}
