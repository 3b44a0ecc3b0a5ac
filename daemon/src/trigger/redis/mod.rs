//! The Redis trigger (Spin-compatible): each `[[trigger.redis]]` subscribes to
//! its channel and hands every message to a fresh instance of its component.
//!
//! Redis pub/sub keeps nothing for absent subscribers, so delivery is at most
//! once: messages published while the link is down are lost (use MQTT QoS 1
//! for at least once). A failed handler is retried up to `max_attempts`, then
//! the message goes to `dead_letter_channel` if set.

mod guest;
mod resp;
mod subscription;

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::PubSubContext;
use crate::app::App;
use crate::executor::Executor;
pub use guest::RedisGuest;
pub use subscription::Subscription;

/// One subscription per `[[trigger.redis]]`, not started yet. Fails if a
/// component does not export a Redis handler.
pub fn prepare(
    app: &App,
    executor: &Executor,
    context: &PubSubContext,
) -> Result<Vec<Subscription>> {
    let mut subscriptions = Vec::new();
    for trigger in &app.redis_triggers {
        let component = executor.component(&trigger.component).with_context(|| {
            format!(
                "Redis trigger \"{}\": no component \"{}\"",
                trigger.id, trigger.component
            )
        })?;
        let guest = RedisGuest::new(
            component.clone(),
            context.instances.clone(),
            context.deadline,
        )
        .with_context(|| format!("Redis trigger \"{}\"", trigger.id))?;
        subscriptions.push(Subscription::new(
            trigger,
            Arc::new(guest),
            context.redis_max_message_size,
            context.threads.place()?,
        )?);
    }
    Ok(subscriptions)
}
