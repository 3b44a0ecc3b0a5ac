//! The MQTT trigger (compatible with Spin's MQTT trigger plugin): each
//! `[[trigger.mqtt]]` subscribes to its topic filter at the app's broker and
//! hands every message to a fresh instance of its component.
//!
//! Delivery is at least once for QoS 1 and 2: each trigger keeps a persistent
//! session (clean session off, a stable client id `<client_id>-<trigger id>`)
//! and acknowledges a message only after its handler succeeded, or gave up
//! after `max_attempts` (then the message goes to `dead_letter_topic` if set).
//! A gateway that dies mid-message gets it again from the broker.

mod guest;
mod session;

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::PubSubContext;
use crate::app::App;
use crate::executor::Executor;
pub use guest::MqttGuest;
pub use session::Session;

/// One session per `[[trigger.mqtt]]`, not started yet. Fails if a
/// component does not export the MQTT handler.
pub fn prepare(app: &App, executor: &Executor, context: &PubSubContext) -> Result<Vec<Session>> {
    let Some(broker) = &app.mqtt_broker else {
        return Ok(Vec::new());
    };
    let mut sessions = Vec::new();
    for trigger in &app.mqtt_triggers {
        let component = executor.component(&trigger.component).with_context(|| {
            format!(
                "MQTT trigger \"{}\": no component \"{}\"",
                trigger.id, trigger.component
            )
        })?;
        let guest = MqttGuest::new(
            component.clone(),
            context.instances.clone(),
            context.deadline,
        )
        .with_context(|| format!("MQTT trigger \"{}\"", trigger.id))?;
        sessions.push(Session::new(
            broker,
            trigger,
            Arc::new(guest),
            &context.tls,
            context.threads.place()?,
        )?);
    }
    Ok(sessions)
}
