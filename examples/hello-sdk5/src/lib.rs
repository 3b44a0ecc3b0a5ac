//! `hello_sdk5`: a greeting built with the Spin Rust SDK 5, the last WASI 0.2
//! line of the SDK. Its `#[http_component]` exports
//! `wasi:http/incoming-handler@0.2.0` and pulls in the bindings of the whole Spin
//! platform world, so it checks that the gateway links components written for
//! older Spin releases, not only plain `wasi:http/proxy` ones.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from Spin SDK 5\n")
        .build()
}
