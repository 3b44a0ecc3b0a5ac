//! What components send out: calls and failed calls per capability and
//! host, and the broker and server connections open now.
//!
//! The host is the one label a guest chooses (a component granted
//! `https://*` may call any host), so only the first [`MAX_HOSTS`] hosts
//! seen get their own series; later ones count under `(other)`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Distinct hosts with their own series, across capabilities.
pub const MAX_HOSTS: usize = 32;
pub const OTHER_HOST: &str = "(other)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    /// "http", "redis" or "mqtt".
    capability: &'static str,
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapabilityLabel {
    capability: &'static str,
}

pub struct OutboundMetrics {
    calls: Family<CallLabels, Counter>,
    errors: Family<CallLabels, Counter>,
    connections: Family<CapabilityLabel, Gauge>,
    hosts: Mutex<HashSet<String>>,
}

impl OutboundMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            calls: Family::default(),
            errors: Family::default(),
            connections: Family::default(),
            hosts: Mutex::default(),
        };
        registry.register(
            "outbound_calls",
            "Calls components made to the outside (HTTP requests, Redis commands, MQTT \
             publishes), by capability and host (the first 32 hosts; the rest as \"(other)\")",
            metrics.calls.clone(),
        );
        registry.register(
            "outbound_errors",
            "Outbound calls that failed or were denied, by capability and host",
            metrics.errors.clone(),
        );
        registry.register(
            "outbound_connections",
            "Redis and MQTT connections components' calls hold open now",
            metrics.connections.clone(),
        );
        metrics
    }

    /// One call by `capability` to `host`, and whether it succeeded.
    pub fn call(&self, capability: &'static str, host: &str, ok: bool) {
        let labels = CallLabels {
            capability,
            host: self.bounded(host),
        };
        self.calls.get_or_create(&labels).inc();
        // The error series starts at 0 with the first call: rate() cannot
        // see the first error of a series born at 1.
        let errors = self.errors.get_or_create(&labels);
        if !ok {
            errors.inc();
        }
    }

    /// Sets the open connections of `capability` (when scraped).
    pub fn set_connections(&self, capability: &'static str, open: usize) {
        self.connections
            .get_or_create(&CapabilityLabel { capability })
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    fn bounded(&self, host: &str) -> String {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        if hosts.contains(host) {
            return host.to_string();
        }
        if hosts.len() < MAX_HOSTS {
            hosts.insert(host.to_string());
            return host.to_string();
        }
        OTHER_HOST.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_past_the_cap_share_one_series() {
        let metrics = OutboundMetrics::register(&mut Registry::default());
        for n in 0..1000 {
            metrics.call("http", &format!("h{n}.example"), n % 2 == 0);
        }
        metrics.call("http", "h0.example", true);
        assert_eq!(metrics.hosts.lock().unwrap().len(), MAX_HOSTS);
        let other = CallLabels {
            capability: "http",
            host: OTHER_HOST.into(),
        };
        assert_eq!(
            metrics.calls.get(&other).unwrap().get(),
            1000 - MAX_HOSTS as u64
        );
        let first = CallLabels {
            capability: "http",
            host: "h0.example".into(),
        };
        assert_eq!(metrics.calls.get(&first).unwrap().get(), 2);
        assert_eq!(
            metrics.errors.get(&first).unwrap().get(),
            0,
            "h0 never failed"
        );
        let failed = CallLabels {
            capability: "http",
            host: "h1.example".into(),
        };
        assert_eq!(metrics.errors.get(&failed).unwrap().get(), 1);
    }
}
