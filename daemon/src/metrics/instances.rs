//! Component instances: created, failed (traps), stopped at a deadline,
//! refused memory, per component; slots in use and waits for one; and the
//! compiled-code cache.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabel {
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

pub struct InstanceMetrics {
    created: Family<ComponentLabel, Counter>,
    traps: Family<ComponentLabel, Counter>,
    timeouts: Family<ComponentLabel, Counter>,
    memory_refused: Family<ComponentLabel, Counter>,
    /// Set when scraped, from the instance semaphore.
    pub active: Gauge,
    pub slots: Gauge,
    pub waits: Counter,
    cache_lookups: Family<ResultLabel, Counter>,
    pub compile_seconds: Counter<f64, AtomicU64>,
    /// The series handed out, by component, for sums over all components.
    handed_out: Mutex<HashMap<String, ComponentMetrics>>,
}

impl InstanceMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            created: Family::default(),
            traps: Family::default(),
            timeouts: Family::default(),
            memory_refused: Family::default(),
            active: Gauge::default(),
            slots: Gauge::default(),
            waits: Counter::default(),
            cache_lookups: Family::default(),
            compile_seconds: Counter::default(),
            handed_out: Mutex::default(),
        };
        let per_component = [
            (
                "instances_created",
                "Component instances created (each HTTP request to a WASI 0.2 component, \
                 each pub/sub message attempt, each health check), by component",
                &metrics.created,
            ),
            (
                "instance_traps",
                "Instances that failed (a trap, or a host error that ended the call), by component",
                &metrics.traps,
            ),
            (
                "instance_timeouts",
                "Instances stopped at the request deadline, by component",
                &metrics.timeouts,
            ),
            (
                "instance_memory_refusals",
                "Memory or table growths refused because the instance reached \
                 max_instance_memory, by component",
                &metrics.memory_refused,
            ),
        ];
        for (name, help, family) in per_component {
            registry.register(name, help, family.clone());
        }
        for (name, help, gauge) in [
            (
                "instances_active",
                "Instances alive now (they hold one of the instance slots)",
                &metrics.active,
            ),
            (
                "instance_slots",
                "Instances that may be alive at once (max_instances)",
                &metrics.slots,
            ),
        ] {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "instance_slot_waits",
            "Instances that had to wait for a free slot (all max_instances were in use)",
            metrics.waits.clone(),
        );
        registry.register(
            "code_cache_lookups",
            "Components loaded: compiled code found in the cache (hit) or compiled now (miss)",
            metrics.cache_lookups.clone(),
        );
        registry.register_with_unit(
            "compile",
            "Time spent compiling components",
            Unit::Seconds,
            metrics.compile_seconds.clone(),
        );
        // Both start at 0, so increase() sees the first load of each kind.
        for result in ["hit", "miss"] {
            let _ = metrics.cache_lookups.get_or_create(&ResultLabel { result });
        }
        metrics
    }

    /// The series of one component, looked up once when it loads.
    pub fn component(&self, id: &str) -> ComponentMetrics {
        let label = ComponentLabel {
            component: id.to_string(),
        };
        let series = ComponentMetrics {
            created: self.created.get_or_create_owned(&label),
            traps: self.traps.get_or_create_owned(&label),
            timeouts: self.timeouts.get_or_create_owned(&label),
            memory_refused: self.memory_refused.get_or_create_owned(&label),
        };
        super::lock(&self.handed_out).insert(label.component, series.clone());
        series
    }

    /// Traps and timeouts, summed over components.
    pub fn totals(&self) -> (u64, u64) {
        super::lock(&self.handed_out)
            .values()
            .fold((0, 0), |(traps, timeouts), c| {
                (traps + c.traps.get(), timeouts + c.timeouts.get())
            })
    }

    /// One component loaded: from the cache, or compiled in `compiled`.
    pub fn loaded(&self, compiled: Option<std::time::Duration>) {
        let result = if compiled.is_some() { "miss" } else { "hit" };
        self.cache_lookups
            .get_or_create(&ResultLabel { result })
            .inc();
        if let Some(took) = compiled {
            self.compile_seconds.inc_by(took.as_secs_f64());
        }
    }
}

/// One component's instance counters.
#[derive(Clone, Debug, Default)]
pub struct ComponentMetrics {
    pub created: Counter,
    pub traps: Counter,
    pub timeouts: Counter,
    pub memory_refused: Counter,
}
