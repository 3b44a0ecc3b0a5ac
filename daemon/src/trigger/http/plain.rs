//! Requests to a WASI 0.2 component compiled for plain calls (see
//! `engine::calls`): a fresh instance per request, whose
//! `wasi:http/incoming-handler.handle` is called directly on a task of the
//! serving thread.
//!
//! wasmtime-wasi-http's `ProxyHandler` runs its workers in wasmtime's event
//! loop, which only an engine with concurrency support has; this path needs
//! neither, and makes about 30 % fewer allocations per request. It keeps the
//! handler's contract: the instance holds one of the process-wide instance
//! slots until it is dropped (the guest may still stream its body after the
//! response headers went out), the request deadline stops it at the guest's
//! next epoch yield, and its failures are counted and logged the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::handler::ExpirationError;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::handler::record_failure;
use crate::executor::PreparedComponent;
use crate::host::HostState;

/// The component could not be instantiated (a 503, as with the handler).
#[derive(Debug)]
pub struct NotInstantiated(pub wasmtime::Error);

impl std::fmt::Display for NotInstantiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not instantiate: {:?}", self.0)
    }
}

impl std::error::Error for NotInstantiated {}

pub struct PlainHandler {
    component: Arc<PreparedComponent>,
    pre: ProxyPre<HostState>,
    instances: Arc<Semaphore>,
    request_timeout: Option<Duration>,
}

impl PlainHandler {
    pub fn new(
        component: Arc<PreparedComponent>,
        pre: ProxyPre<HostState>,
        instances: Arc<Semaphore>,
        request_timeout: Option<Duration>,
    ) -> Self {
        Self {
            component,
            pre,
            instances,
            request_timeout,
        }
    }

    /// Answers `request` on a fresh instance.
    pub async fn handle(&self, request: Request<WasiBody>) -> wasmtime::Result<Response<WasiBody>> {
        let deadline = self
            .request_timeout
            .and_then(|t| Instant::now().checked_add(t));
        let permit = crate::trigger::instance::slot(&self.instances)
            .await
            .map_err(wasmtime::Error::from_anyhow)?;
        let mut store = self
            .component
            .new_store()
            .map_err(|e| NotInstantiated(wasmtime::Error::from_anyhow(e)))?;
        let proxy = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(NotInstantiated)?;
        let (sender, response) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let incoming = http.new_incoming_request(Scheme::Http, request)?;
        let outparam = http.new_response_outparam(sender)?;
        let component = self.component.clone();
        let call = tokio::spawn(async move {
            let handle = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam);
            let outcome = match deadline {
                None => handle.await,
                Some(deadline) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    match tokio::time::timeout_at(deadline, handle).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(wasmtime::Error::new(ExpirationError)),
                    }
                }
            };
            drop(store);
            drop(permit);
            if let Err(e) = &outcome {
                let timed_out = e.is::<ExpirationError>();
                record_failure(&component.id, &component.metrics, timed_out, e);
            }
            outcome
        });
        match response.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(code.into()),
            // The guest returned, trapped or ran out of time without a
            // response: the call's own outcome says which.
            Err(_) => match call.await {
                Ok(Ok(())) => Err(wasmtime::format_err!(
                    "the component returned without setting a response"
                )),
                Ok(Err(e)) => Err(e),
                Err(join) => Err(wasmtime::format_err!("the request's task failed: {join}")),
            },
        }
    }
}
