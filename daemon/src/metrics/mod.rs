//! What the daemon counts, for Prometheus: one process-wide [`Metrics`]
//! (reached through [`global`]), its families grouped by concern, and the
//! endpoint that serves them (`[metrics] listen`, `gatewayd up --metrics`).
//!
//! Recording is on the request path, so it must cost next to nothing: the
//! series a request or a message touches are looked up once, when its app
//! loads ([`http::HttpRoute`], [`instances::ComponentMetrics`],
//! [`pubsub::TriggerMetrics`]), and recording is then an atomic add or, for
//! a latency, one short uncontended lock. Labels come from the manifest
//! (component ids, trigger ids) or from small fixed sets (status classes,
//! outcomes); never from a request path, a topic or a payload, so a client
//! cannot grow the output. The one label a guest chooses, an outbound host,
//! is capped ([`outbound`]).
//!
//! Values the process already keeps (instances alive, open connections,
//! memory, descriptors) are read when scraped rather than kept twice.

pub mod exposition;
pub mod http;
pub mod instances;
pub mod outbound;
pub mod process;
pub mod pubsub;
pub mod recent;
pub mod server;
pub mod updates;

use std::sync::{LazyLock, Mutex, MutexGuard};

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every family the daemon records, registered once.
pub struct Metrics {
    registry: Registry,
    pub process: process::ProcessMetrics,
    pub http: http::HttpMetrics,
    pub instances: instances::InstanceMetrics,
    pub pubsub: pubsub::PubSubMetrics,
    pub outbound: outbound::OutboundMetrics,
    pub updates: updates::UpdateMetrics,
    /// Snapshots of the last minute, for `gatewayctl status`.
    pub recent: recent::Recent,
    /// Run before each scrape: they copy values kept elsewhere into gauges.
    samplers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let process = process::ProcessMetrics::register(&mut registry);
        let ours = registry.sub_registry_with_prefix("gatewayd");
        Self {
            process,
            http: http::HttpMetrics::register(ours),
            instances: instances::InstanceMetrics::register(ours),
            pubsub: pubsub::PubSubMetrics::register(ours),
            outbound: outbound::OutboundMetrics::register(ours),
            updates: updates::UpdateMetrics::register(ours),
            recent: recent::Recent::default(),
            registry,
            samplers: Mutex::default(),
        }
    }

    /// Adds `sample`, run before every scrape to refresh gauges from the
    /// values the process keeps anyway.
    pub fn on_scrape(&self, sample: impl Fn() + Send + Sync + 'static) {
        self.lock_samplers().push(Box::new(sample));
    }

    /// Everything, in the format `accept` asks for: OpenMetrics when it
    /// names it, else the Prometheus text format. Returns the content type
    /// and the text.
    pub fn render(&self, accept: Option<&str>) -> (&'static str, String) {
        for sample in self.lock_samplers().iter() {
            sample();
        }
        exposition::render(&self.registry, accept)
    }

    /// Activity in the last minute and since the start, as of now.
    pub fn activity(&self) -> (crate::admin::api::Activity, crate::admin::api::Activity) {
        let now = recent::Totals::read(self);
        let last_minute = self.recent.last_minute(std::time::Instant::now(), &now);
        (last_minute, now.since(&recent::Totals::default(), None))
    }

    fn lock_samplers(&self) -> MutexGuard<'_, Vec<Box<dyn Fn() + Send + Sync>>> {
        lock(&self.samplers)
    }
}

/// Locks `mutex`, also after a panic elsewhere: what it guards (counter
/// handles, snapshots) stays valid whatever a holder did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts one in a gauge while it lives: a request in flight, an open
/// connection (a request whose client went away is dropped, not finished,
/// and still leaves the count).
pub struct Held(Gauge);

impl Held {
    pub fn on(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}
