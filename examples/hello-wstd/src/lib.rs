//! `hello_wstd`: the benchmark's hello component. A plain `wasi:http/proxy`
//! (WASI 0.2) component built with `wstd`, with nothing but a fixed answer, so a
//! benchmark measures the gateway's per-request cost (fresh instance, routing,
//! body plumbing) rather than guest work. Keep it that way: any feature added
//! here shows up in every figure compared with the baseline.

use wstd::http::{Body, Request, Response, Result};

// The macro insists on the name `main`; as a cdylib the component exports only
// the HTTP handler, not `wasi:cli/run`.
#[wstd::http_server]
async fn main(_request: Request<Body>) -> Result<Response<Body>> {
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body("Hello from wstd\n".into())?)
}
