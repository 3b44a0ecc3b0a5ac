//! The admin API's messages, defined once: gatewayd serializes them,
//! gatewayctl deserializes them. Reading is lenient (missing fields take
//! defaults, unknown trigger kinds are kept), so a gatewayctl can talk to a
//! gatewayd older or newer than itself.
//!
//! `GET /v1/status` answers [`Status`]; `POST /v1/bundles` and
//! `POST /v1/rollback` answer [`Applied`], or [`Refusal`] with a 4xx/5xx.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What gatewayd runs.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Status {
    pub app: Option<String>,
    pub version: Option<String>,
    pub generation: Option<u64>,
    #[serde(default)]
    pub uptime_secs: u64,
    #[serde(default)]
    pub triggers: TriggerCounts,
    /// The running app's components and the code each runs (older gateways
    /// do not report them).
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
    pub last_update: Option<LastUpdate>,
    /// The code this gateway runs and whether it can compile (older
    /// gateways do not report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineStatus>,
    /// What the gateway did in the last minute (older gateways do not
    /// report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_minute: Option<Activity>,
    /// What it did since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_start: Option<Activity>,
    /// The registry tag it follows (`[fleet] source`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_source: Option<FleetSource>,
}

/// A gateway's view of the registry tag it follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetSource {
    /// `oci://HOST/REPOSITORY:TAG`.
    pub source: String,
    /// The last digest of the tag it decided about, and how: `applied` or
    /// `rejected` (a rejected one is not retried until the tag moves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why the last check failed (registry unreachable, refused, ...), while
    /// it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The gateway's engine.
#[derive(Debug, Serialize, Deserialize)]
pub struct EngineStatus {
    /// What components run as, e.g. "native aarch64 code".
    pub runs: String,
    /// False for a runtime-only build: it runs only code precompiled in
    /// bundles for `target`.
    pub compiles: bool,
    /// The `gatewayctl bundle --target` triple of code made for it.
    pub target: String,
}

/// What the gateway did over a span: HTTP requests answered (any status,
/// static and unrouted answers included), server errors among them (5xx:
/// traps, timeouts, failed guests), the 99th-percentile time to response
/// headers, pub/sub messages, and failed instances.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// The span in seconds: a minute, or less when the gateway is younger;
    /// absent for "since the start".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    #[serde(default)]
    pub http_requests: u64,
    #[serde(default)]
    pub http_server_errors: u64,
    /// Estimated from log-spaced buckets 25% wide; absent without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_p99_ms: Option<f64>,
    /// Pub/sub messages handed to a component.
    #[serde(default)]
    pub messages: u64,
    /// Messages that failed every attempt (dead-lettered or dropped).
    #[serde(default)]
    pub messages_failed: u64,
    /// Instances that trapped or failed with a host error.
    #[serde(default)]
    pub traps: u64,
    /// Instances stopped at their deadline.
    #[serde(default)]
    pub timeouts: u64,
}

/// How many triggers of each kind the app has.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TriggerCounts {
    #[serde(default)]
    pub http: u64,
    #[serde(default)]
    pub redis: u64,
    #[serde(default)]
    pub mqtt: u64,
    /// Kinds newer than the reader.
    #[serde(flatten)]
    pub other: BTreeMap<String, u64>,
}

/// One component of the running app and the code it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub id: String,
    /// e.g. "native aarch64 code", "Pulley interpreter (pulley64)".
    pub runs_on: String,
    /// "cache" (compiled earlier, or shipped in the bundle) or "compiled".
    pub from: String,
    /// Why the component runs on the fallback engine, when it was just
    /// compiled there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// The outcome of the last change (update, rollback, start-up fallback).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LastUpdate {
    /// "ok", "rejected", "fell back", "failed".
    pub result: String,
    #[serde(default)]
    pub message: String,
    pub version: Option<String>,
    pub at_unix: Option<u64>,
}

/// A change that took effect.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    #[serde(default)]
    pub ok: bool,
    pub generation: Option<u64>,
    pub app: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub timings_ms: Timings,
}

/// How long each step of a change took, in milliseconds; steps a change did
/// not go through (a rollback uploads nothing) are absent.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Timings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpack: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switch: Option<u64>,
}

impl Timings {
    /// The steps in the order an update goes through them.
    pub fn steps(&self) -> [(&'static str, Option<u64>); 6] {
        [
            ("upload", self.upload),
            ("verify", self.verify),
            ("unpack", self.unpack),
            ("compile", self.compile),
            ("health", self.health),
            ("switch", self.switch),
        ]
    }
}

/// A refused request: `{"ok": false, "error": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Refusal {
    #[serde(default)]
    pub ok: bool,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What gatewayd writes, gatewayctl reads back unchanged; what an older
    /// or newer peer writes still reads.
    #[test]
    fn messages_round_trip_and_read_leniently() {
        let status = Status {
            app: Some("hello".into()),
            generation: Some(3),
            components: vec![ComponentStatus {
                id: "c".into(),
                runs_on: "native x86_64 code".into(),
                from: "cache".into(),
                fallback_reason: None,
            }],
            ..Status::default()
        };
        let text = serde_json::to_string(&status).unwrap();
        assert!(!text.contains("fallback_reason"), "{text}");
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back.app.as_deref(), Some("hello"));
        assert_eq!(back.components[0].from, "cache");

        let old: Status = serde_json::from_str(r#"{"app": null, "last_update": null}"#).unwrap();
        assert!(old.components.is_empty());
        let newer: Status =
            serde_json::from_str(r#"{"app": "a", "triggers": {"http": 1, "cron": 2}}"#).unwrap();
        assert_eq!(newer.triggers.other["cron"], 2);

        let applied = Applied {
            ok: true,
            timings_ms: Timings {
                switch: Some(1),
                ..Timings::default()
            },
            ..Applied::default()
        };
        let text = serde_json::to_string(&applied).unwrap();
        assert_eq!(
            text,
            r#"{"ok":true,"generation":null,"app":null,"version":null,"message":"","timings_ms":{"switch":1}}"#
        );
    }
}
