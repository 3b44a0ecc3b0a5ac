//! An HTTP component: gatewayd calls `handle` for every request routed to it
//! (see `[[trigger.http]]` in spin.toml).

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body("Hello from %%project-name%%!\n".to_string())
}
