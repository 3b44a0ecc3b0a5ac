//! One component's request handler. A component compiled for concurrent
//! calls is served by wasmtime-wasi-http's `ProxyHandler`, fed with instances
//! from the executor; a WASI 0.2 component compiled for plain calls by the
//! direct path in [`super::plain`].
//!
//! A WASI 0.2 component gets a fresh instance for every request (isolation is
//! the contract). A WASI 0.3 component may serve several requests, bounded in
//! count, concurrency and idle time, as Spin does.
//!
//! Every live instance holds a permit of one process-wide semaphore sized to
//! the instance pool, from instantiation until it is dropped (a WASI 0.2
//! instance may still be streaming its body after the response headers went
//! out). So requests beyond the pool's capacity wait for an instance instead of
//! failing on an exhausted pool.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};

use http::{Request, Response};
use wasmtime_wasi_http::WasiBody;

use super::plain::PlainHandler;
use crate::engine::Calls;
use crate::executor::PreparedComponent;
use crate::host::HostState;
use crate::metrics::instances::ComponentMetrics;

/// How instances of WASI 0.3 components are reused.
#[derive(Clone, Debug)]
pub struct ReusePolicy {
    /// Requests one instance may serve before it is dropped.
    pub max_requests: usize,
    /// Requests one instance may serve at the same time.
    pub max_concurrent: usize,
    /// How long an idle instance is kept for the next request.
    pub idle_timeout: Duration,
}

impl Default for ReusePolicy {
    fn default() -> Self {
        Self {
            max_requests: 128,
            max_concurrent: 16,
            idle_timeout: Duration::from_secs(1),
        }
    }
}

/// Which `wasi:http` generation a component exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpExport {
    P2,
    P3,
}

/// How a component's requests are served.
pub enum Handler {
    /// wasmtime-wasi-http's handler, on an engine with concurrent calls.
    Worker(ProxyHandler<ComponentHandler>),
    /// A WASI 0.2 component compiled for plain calls.
    Plain(PlainHandler),
}

impl Handler {
    /// The handler for a prepared component; fails if it exports no
    /// `wasi:http` handler.
    pub fn new(
        component: Arc<PreparedComponent>,
        instances: Arc<Semaphore>,
        reuse: &ReusePolicy,
        request_timeout: Option<Duration>,
    ) -> Result<(Handler, HttpExport)> {
        if component.calls == Calls::Concurrent {
            let (handler, export) =
                ComponentHandler::new(component, instances, reuse, request_timeout)?;
            return Ok((Handler::Worker(handler), export));
        }
        // A plain engine refuses WASI 0.3 components: only 0.2 is left.
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(component.pre.clone())
            .map_err(|_| no_http_export(&component.id))?;
        let handler = PlainHandler::new(component, pre, instances, request_timeout);
        Ok((Handler::Plain(handler), HttpExport::P2))
    }

    /// Answers one request.
    pub async fn handle(&self, request: Request<WasiBody>) -> wasmtime::Result<Response<WasiBody>> {
        match self {
            Handler::Worker(handler) => handler.handle((), request).await,
            Handler::Plain(handler) => handler.handle(request).await,
        }
    }
}

fn no_http_export(id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "component \"{id}\" exports no HTTP handler: expected \
         wasi:http/incoming-handler@0.2.x or wasi:http/handler@0.3.x"
    )
}

pub struct ComponentHandler {
    component: Arc<PreparedComponent>,
    pre: ProxyPre<HostState>,
    instances: Arc<Semaphore>,
    max_requests: usize,
    max_concurrent: usize,
    idle_timeout: Duration,
    request_timeout: Duration,
}

impl ComponentHandler {
    /// Wraps a prepared component; fails if it exports no `wasi:http` handler.
    fn new(
        component: Arc<PreparedComponent>,
        instances: Arc<Semaphore>,
        reuse: &ReusePolicy,
        request_timeout: Option<Duration>,
    ) -> Result<(ProxyHandler<Self>, HttpExport)> {
        let (pre, export) =
            match wasmtime_wasi_http::p3::bindings::ServicePre::new(component.pre.clone()) {
                Ok(pre) => (ProxyPre::P3(pre), HttpExport::P3),
                Err(_) => {
                    match wasmtime_wasi_http::p2::bindings::ProxyPre::new(component.pre.clone()) {
                        Ok(pre) => (ProxyPre::P2(pre), HttpExport::P2),
                        Err(_) => return Err(no_http_export(&component.id)),
                    }
                }
            };
        let (max_requests, max_concurrent) = match export {
            HttpExport::P2 => (1, 1),
            HttpExport::P3 => (reuse.max_requests.max(1), reuse.max_concurrent.max(1)),
        };
        let handler = ComponentHandler {
            component,
            pre,
            instances,
            max_requests,
            max_concurrent,
            idle_timeout: reuse.idle_timeout,
            request_timeout: request_timeout.unwrap_or(Duration::MAX),
        };
        Ok((ProxyHandler::new(handler), export))
    }
}

impl HandlerState for ComponentHandler {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let permit = crate::trigger::instance::slot(&self.instances)
            .await
            .map_err(wasmtime::Error::from_anyhow)?;
        let mut store = self
            .component
            .new_store()
            .map_err(wasmtime::Error::from_anyhow)?;
        let proxy = self.pre.instantiate_async(&mut store).await?;
        let expired = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy,
            view: HostState::http,
            expiration: Expiration {
                idle_timeout: self.idle_timeout,
                request_timeout: self.request_timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
                expired: expired.clone(),
            },
            state: Worker {
                expired,
                component_id: self.component.id.clone(),
                metrics: self.component.metrics.clone(),
                max_requests: self.max_requests,
                max_concurrent: self.max_concurrent,
                request_timeout: self.request_timeout,
                _instance_permit: permit,
            },
        })
    }
}

/// Decides when an instance is dropped: idle too long, or busy past the
/// request deadline (which also stops a guest that ignores its timeout).
pub struct Expiration {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when this stops the instance at a request deadline, for the
    /// worker's report (our own state, not wasmtime's error text).
    expired: Arc<AtomicBool>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // A guest stuck in a busy loop blocks the instance's event loop, so the
        // per-request deadline inside it cannot fire; this one, polled outside,
        // stops the instance at the deadline (at the guest's next epoch yield).
        let (timeout, busy) = match status {
            WorkerStatus::Idle => (self.idle_timeout, false),
            WorkerStatus::Requests | WorkerStatus::PostReturn => (self.request_timeout, true),
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let fired = self.sleep.as_mut().poll(cx);
        if fired.is_ready() && busy {
            self.expired.store(true, Ordering::Relaxed);
        }
        fired
    }
}

pub struct Worker {
    /// Shared with the instance's [`Expiration`].
    expired: Arc<AtomicBool>,
    component_id: Arc<str>,
    metrics: ComponentMetrics,
    max_requests: usize,
    max_concurrent: usize,
    request_timeout: Duration,
    /// Released when the worker, and with it the instance, is gone.
    _instance_permit: OwnedSemaphorePermit,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_requests {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<HostState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let timeout = self.request_timeout;
        Box::pin(async move {
            if timeout == Duration::MAX {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep(timeout).await
            }
        })
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        // A trap surfaces here, with the guest's backtrace; the request that
        // hit it has already been answered with a 500.
        if let Err(e) = result {
            let timed_out = self.expired.load(Ordering::Relaxed) || e.is::<ExpirationError>();
            if !timed_out && !std::thread::panicking() && crate::shutdown::process_is_stopping() {
                // wasmtime-wasi-http reports a worker dropped unfinished as a
                // failure, panic or not: an idle reused instance dropped with
                // its runtime at shutdown is none.
                tracing::debug!(
                    component = &*self.component_id,
                    "instance dropped unfinished (shutting down)"
                );
            } else {
                record_failure(&self.component_id, &self.metrics, timed_out, &e);
            }
        }
        drop(store);
    }
}

/// Counts and logs an instance that ended in failure (with either handler);
/// the request, if it was still unanswered, gets its own line.
pub(super) fn record_failure(
    component: &str,
    metrics: &ComponentMetrics,
    timed_out: bool,
    error: &wasmtime::Error,
) {
    if timed_out {
        metrics.timeouts.inc();
        tracing::warn!(
            component,
            "instance stopped: it ran past the request deadline"
        );
    } else {
        metrics.traps.inc();
        tracing::error!(component, "instance failed: {}", error.root_cause());
        tracing::debug!(component, "instance failure in full: {error:?}");
    }
}
