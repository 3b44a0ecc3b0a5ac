//! `vars_sdk5`: reads Spin variables through the Spin Rust SDK 5, whose
//! `#[http_component]` builds a WASI 0.2 component that imports
//! `fermyon:spin/variables@2.0.0`. It tests the gateway's variables capability on
//! the p2 path: the last segment of the request path names a variable, and the
//! response is its value (200) or the error (404 undefined, 400 invalid name,
//! 500 otherwise) as `error=<Debug>`. `examples/vars/spin.toml` routes `/v5/...`.

use guest_util::route_path;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::variables::{self, Error};

#[http_component]
fn handle(request: Request) -> impl IntoResponse {
    // The gateway puts the part after the route prefix in `spin-path-info`, so the
    // name does not depend on where the app is mounted; the URI path is a fallback
    // for a host that leaves the header out.
    let path = route_path(
        request
            .header("spin-path-info")
            .and_then(|value| value.as_str()),
        request.path(),
    );
    let name = path.rsplit('/').next().unwrap_or_default();

    let (status, body) = match variables::get(name) {
        Ok(value) => (200, value),
        Err(error) => (status_for(&error), format!("error={error:?}")),
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain")
        .body(body)
        .build()
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
