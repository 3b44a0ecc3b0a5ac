//! The HTTP trigger's metrics: requests by component and status class, their
//! latency, requests in flight, and connections open and turned away.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::recent::Latencies;

/// The `component` label of requests a static response answered.
pub const STATIC: &str = "(static)";
/// The `component` label of requests no route matched (or that were bad).
pub const UNROUTED: &str = "(none)";

/// Latency buckets, in seconds: 1 ms to 10 s.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    component: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

type Histograms = Family<ComponentLabel, Histogram, fn() -> Histogram>;

pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histograms,
    pub in_flight: Gauge,
    pub connections_open: Gauge,
    pub connections_refused: Counter,
    /// Every response again, summed over components, in finer buckets:
    /// for `gatewayctl status`.
    pub latencies: Arc<Latencies>,
}

impl HttpMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let requests = Family::default();
        let duration: Histograms = Family::new_with_constructor(|| Histogram::new(BUCKETS));
        let (in_flight, connections_open, connections_refused) = Default::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by component (\"(static)\": a static response, \
             \"(none)\": no route) and status class",
            requests.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response headers, by component",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being handled now",
            Gauge::clone(&in_flight),
        );
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            Gauge::clone(&connections_open),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once: their client address held its share of \
             the connection slots",
            Counter::clone(&connections_refused),
        );
        Self {
            requests,
            duration,
            in_flight,
            connections_open,
            connections_refused,
            latencies: Arc::default(),
        }
    }

    /// The series of one route target, looked up once.
    pub fn route(&self, component: &str) -> HttpRoute {
        let label = |status| RequestLabels {
            component: component.to_string(),
            status,
        };
        HttpRoute {
            by_class: ["1xx", "2xx", "3xx", "4xx", "5xx"]
                .map(|class| self.requests.get_or_create_owned(&label(class))),
            duration: self.duration.get_or_create_owned(&ComponentLabel {
                component: component.to_string(),
            }),
            latencies: self.latencies.clone(),
        }
    }
}

/// The request counters and latency histogram of one component (or of the
/// static and unrouted answers).
#[derive(Clone)]
pub struct HttpRoute {
    by_class: [Counter; 5],
    duration: Histogram,
    latencies: Arc<Latencies>,
}

impl HttpRoute {
    pub fn record(&self, status: ::http::StatusCode, took: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].inc();
        self.duration.observe(took.as_secs_f64());
        self.latencies.record(took, status.is_server_error());
    }
}
