//! `hello`: the README's example app, written against the Spin Rust SDK 7.
//! SDK 7's `#[http_service]` builds a WASI 0.3 component that exports
//! `wasi:http/handler@0.3.0`, so this is the component that exercises the
//! gateway's p3 path (instance reuse, async handler). It answers every request
//! routed to it with a fixed greeting; the `spin.toml` beside it routes `/hello/...`.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    // An explicit content type: the README shows `curl -i` output with it.
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from gatewayd!\n".to_string())
}
