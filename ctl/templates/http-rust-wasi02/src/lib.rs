//! An HTTP component: gatewayd calls `handle` for every request routed to it
//! (see `[[trigger.http]]` in spin.toml), each time in a fresh instance.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;

#[http_component]
fn handle(_request: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from %%project-name%%!\n")
        .build()
}
