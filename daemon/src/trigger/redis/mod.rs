//! The Redis trigger (Spin-compatible): each `[[trigger.redis]]` subscribes to
//! its channel and hands every message to a fresh instance of its component.
//!
//! Redis pub/sub keeps nothing for absent subscribers, so delivery is at most
//! once: messages published while the link is down are lost (use MQTT QoS 1
//! for at least once). A failed handler is retried up to `max_attempts`, then
//! the message goes to `dead_letter_channel` if set.

mod guest;
mod subscription;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::task::JoinSet;

use super::PubSubContext;
use crate::app::App;
use crate::executor::Executor;
pub use guest::RedisGuest;

/// Starts one subscription per `[[trigger.redis]]`. Fails before anything
/// starts if a component does not export a Redis handler. The tasks end after
/// `shutdown`, once in-flight messages are handled (at most `drain_timeout`).
pub fn start(
    app: &App,
    executor: &Executor,
    context: &PubSubContext,
    tasks: &mut JoinSet<()>,
) -> Result<()> {
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
        subscriptions.push(subscription::Subscription::new(trigger, Arc::new(guest))?);
    }
    for subscription in subscriptions {
        tasks.spawn(subscription.run(context.shutdown.clone(), context.drain_timeout));
    }
    Ok(())
}
