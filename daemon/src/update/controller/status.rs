//! What the controller reports: `GET /v1/status` ([`Controller::status`]),
//! and the changes that make it worth asking again (the fleet's status
//! messages follow them).

use super::Controller;
use crate::admin::api::{ComponentStatus, EngineStatus, FleetSource, Status, TriggerCounts};

impl Controller {
    pub async fn status(&self) -> Status {
        let state = self.state.lock().await;
        let running = state.running.as_ref();
        let triggers = running.map_or_else(TriggerCounts::default, |r| TriggerCounts {
            http: r.loaded.app.http_triggers.len() as u64,
            redis: r.loaded.app.redis_triggers.len() as u64,
            mqtt: r.loaded.app.mqtt_triggers.len() as u64,
            other: Default::default(),
        });
        let (last_minute, since_start) = crate::metrics::global().activity();
        Status {
            app: running.map(|r| r.manifest.app.clone()),
            version: running.map(|r| r.manifest.version.clone()),
            generation: running.map(|r| r.generation),
            uptime_secs: self.started.elapsed().as_secs(),
            triggers,
            components: running.map_or_else(Vec::new, |r| {
                r.loaded
                    .executor
                    .components()
                    .map(|c| ComponentStatus {
                        id: c.id.to_string(),
                        runs_on: c.code.runs_on.clone(),
                        from: c.code.from.to_string(),
                        fallback_reason: c.code.fallback_reason.clone(),
                    })
                    .collect()
            }),
            last_update: state.last_update.clone(),
            engine: Some(EngineStatus {
                runs: self.runtime.engines.primary_target.to_string(),
                compiles: crate::engine::CAN_COMPILE,
                target: self
                    .runtime
                    .engines
                    .primary_target
                    .arch()
                    .board_triple()
                    .to_string(),
            }),
            last_minute: Some(last_minute),
            since_start: Some(since_start),
            fleet_source: self
                .fleet_source
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Marked changed after every update or rollback (what `status` says
    /// moved on).
    pub fn changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// The fleet follower's view of its tag, for `status`; a change is
    /// announced like an update.
    pub fn report_fleet_source(&self, report: FleetSource) {
        let mut current = self.fleet_source.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref() != Some(&report) {
            *current = Some(report);
            self.changes.send_replace(());
        }
    }
}
