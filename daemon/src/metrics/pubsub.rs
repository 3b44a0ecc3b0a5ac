//! The Redis and MQTT triggers' metrics, per trigger of the manifest:
//! messages received, handled, retried, dead-lettered or dropped, messages
//! held now, and the broker link (up, reconnects).

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    /// "redis" or "mqtt".
    trigger: &'static str,
    /// The trigger's id in the manifest.
    id: String,
    component: String,
}

pub struct PubSubMetrics {
    received: Family<TriggerLabels, Counter>,
    handled: Family<TriggerLabels, Counter>,
    retries: Family<TriggerLabels, Counter>,
    dead_lettered: Family<TriggerLabels, Counter>,
    dropped: Family<TriggerLabels, Counter>,
    queued: Family<TriggerLabels, Gauge>,
    connected: Family<TriggerLabels, Gauge>,
    reconnects: Family<TriggerLabels, Counter>,
    /// The series handed out, for sums over all triggers.
    handed_out: Mutex<HashMap<TriggerLabels, TriggerMetrics>>,
}

impl PubSubMetrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            received: Family::default(),
            handled: Family::default(),
            retries: Family::default(),
            dead_lettered: Family::default(),
            dropped: Family::default(),
            queued: Family::default(),
            connected: Family::default(),
            reconnects: Family::default(),
            handed_out: Mutex::default(),
        };
        let families = [
            (
                "messages_received",
                "Pub/sub messages handed to a trigger's component (a message the broker \
                 delivers again counts again)",
                &metrics.received,
            ),
            (
                "messages_handled",
                "Pub/sub messages the component handled successfully",
                &metrics.handled,
            ),
            (
                "message_retries",
                "Attempts at a message after a failed one",
                &metrics.retries,
            ),
            (
                "messages_dead_lettered",
                "Messages that failed every attempt and went to the dead-letter channel or topic",
                &metrics.dead_lettered,
            ),
            (
                "messages_dropped",
                "Messages that failed every attempt with no dead-letter destination, or \
                 were larger than the trigger accepts",
                &metrics.dropped,
            ),
            (
                "trigger_reconnects",
                "Times a trigger's broker connection was lost or could not be made",
                &metrics.reconnects,
            ),
        ];
        for (name, help, family) in families {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "messages_queued",
            "Messages a trigger holds now, running or waiting for their turn",
            metrics.queued.clone(),
        );
        registry.register(
            "trigger_connected",
            "1 while a trigger's broker connection is up, 0 while it is down (2 for a \
             moment while an update hands a Redis subscription over)",
            metrics.connected.clone(),
        );
        metrics
    }

    /// The series of one trigger, looked up once when its app loads.
    pub fn trigger(&self, kind: &'static str, id: &str, component: &str) -> TriggerMetrics {
        let labels = TriggerLabels {
            trigger: kind,
            id: id.to_string(),
            component: component.to_string(),
        };
        let series = TriggerMetrics {
            received: self.received.get_or_create_owned(&labels),
            handled: self.handled.get_or_create_owned(&labels),
            retries: self.retries.get_or_create_owned(&labels),
            dead_lettered: self.dead_lettered.get_or_create_owned(&labels),
            dropped: self.dropped.get_or_create_owned(&labels),
            queued: self.queued.get_or_create_owned(&labels),
            connected: self.connected.get_or_create_owned(&labels),
            reconnects: self.reconnects.get_or_create_owned(&labels),
        };
        super::lock(&self.handed_out).insert(labels, series.clone());
        series
    }

    /// Messages received, and messages that failed every attempt
    /// (dead-lettered or dropped), summed over triggers.
    pub fn totals(&self) -> (u64, u64) {
        super::lock(&self.handed_out)
            .values()
            .fold((0, 0), |(received, failed), t| {
                (
                    received + t.received.get(),
                    failed + t.dead_lettered.get() + t.dropped.get(),
                )
            })
    }
}

/// One trigger's series.
#[derive(Clone, Debug, Default)]
pub struct TriggerMetrics {
    pub received: Counter,
    pub handled: Counter,
    pub retries: Counter,
    pub dead_lettered: Counter,
    pub dropped: Counter,
    pub queued: Gauge,
    pub connected: Gauge,
    pub reconnects: Counter,
}
