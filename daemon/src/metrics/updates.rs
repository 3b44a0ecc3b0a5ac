//! Updates: attempts by outcome and reason, rollbacks, the app running now
//! (an info metric) and when the last update succeeded.

use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// "applied" or "rejected".
    outcome: &'static str,
    /// For a rejection, why; "none" when applied.
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabels {
    app: String,
    version: String,
    generation: String,
}

/// Every reason an update is refused for (`Rejection::reason`).
pub const REJECTION_REASONS: [&str; 9] = [
    "verification",
    "downgrade",
    "other_app",
    "unpack",
    "load",
    // A runtime-only gateway given a bundle without code for it.
    "not_precompiled",
    "health_check",
    "no_trusted_keys",
    "internal",
];

pub struct UpdateMetrics {
    updates: Family<OutcomeLabels, Counter>,
    pub rollbacks: Counter,
    app: Family<AppLabels, Gauge>,
    last_success: Gauge<f64, AtomicU64>,
}

impl UpdateMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            updates: Family::default(),
            rollbacks: Counter::default(),
            app: Family::default(),
            last_success: Gauge::default(),
        };
        registry.register(
            "updates",
            "Bundles pushed, by outcome (applied, rejected) and the reason of a rejection",
            metrics.updates.clone(),
        );
        registry.register(
            "rollbacks",
            "Switches back to the previous generation asked for (gatewayctl rollback)",
            metrics.rollbacks.clone(),
        );
        registry.register(
            "app_info",
            "The app running now: 1, with its name, version and generation as labels \
             (gatewayd up runs generation 0)",
            metrics.app.clone(),
        );
        registry.register_with_unit(
            "last_update_success_timestamp",
            "When the last update was applied (Unix time)",
            Unit::Seconds,
            metrics.last_success.clone(),
        );
        // Every outcome starts at 0: Prometheus's increase() cannot see the
        // first event of a series that is born at 1, so a board's first
        // refused push would never show on a dashboard.
        metrics.count("applied", "none", 0);
        for reason in REJECTION_REASONS {
            metrics.count("rejected", reason, 0);
        }
        metrics
    }

    /// A pushed bundle was applied.
    pub fn applied(&self) {
        self.count("applied", "none", 1);
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_success.set(now.as_secs_f64());
    }

    /// A pushed bundle was refused, for `reason` (one of a few fixed words).
    pub fn rejected(&self, reason: &'static str) {
        debug_assert!(REJECTION_REASONS.contains(&reason), "{reason}");
        self.count("rejected", reason, 1);
    }

    fn count(&self, outcome: &'static str, reason: &'static str, by: u64) {
        self.updates
            .get_or_create(&OutcomeLabels { outcome, reason })
            .inc_by(by);
    }

    /// `app` `version` is the one serving now, as generation `generation`.
    pub fn running(&self, app: &str, version: &str, generation: u64) {
        // One series at a time: the old one goes.
        self.app.clear();
        self.app
            .get_or_create(&AppLabels {
                app: app.to_string(),
                version: version.to_string(),
                generation: generation.to_string(),
            })
            .set(1);
    }
}
