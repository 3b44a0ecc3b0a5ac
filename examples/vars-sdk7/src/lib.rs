//! `vars_sdk7`: reads Spin variables through the Spin Rust SDK 7, whose
//! `#[http_service]` builds a WASI 0.3 component that imports
//! `spin:variables/variables@3.0.0`, where `get` is an async function. It tests
//! the gateway's variables capability on the p3 path with the same contract as
//! `vars_sdk5`: the last segment of the request path names a variable, and the
//! response is its value (200) or the error (404 undefined, 400 invalid name,
//! 500 otherwise) as `error=<Debug>`. `examples/vars/spin.toml` routes `/v7/...`.

use guest_util::route_path;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_service;
use spin_sdk::variables::{self, Error};

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    // The gateway puts the part after the route prefix in `spin-path-info`, so the
    // name does not depend on where the app is mounted; the URI path is a fallback
    // for a host that leaves the header out.
    let path = route_path(
        request
            .headers()
            .get("spin-path-info")
            .and_then(|value| value.to_str().ok()),
        request.uri().path(),
    );
    let name = path.rsplit('/').next().unwrap_or_default();

    let (status, body) = match variables::get(name).await {
        Ok(value) => (200, value),
        Err(error) => (status_for(&error), format!("error={error:?}")),
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body)
}

/// Distinct statuses let a test tell the host's error variants apart without
/// parsing the body.
fn status_for(error: &Error) -> u16 {
    match error {
        Error::Undefined(_) => 404,
        Error::InvalidName(_) => 400,
        _ => 500,
    }
}
