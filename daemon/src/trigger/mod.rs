//! Triggers turn outside events into component calls through the executor.
//! One module per trigger; none of them knows about host capabilities.
//! The pub/sub triggers share `dispatch` (concurrency, per-key order,
//! backpressure) and `reconnect` (backoff, state-change logs).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;

use crate::app::App;
use crate::executor::Executor;
use crate::shutdown::Shutdown;

mod dispatch;
pub mod http;
pub(crate) mod instance;
pub mod mqtt;
pub mod pubsub_threads;
pub mod reconnect;
pub mod redis;
mod retry;

/// What the daemon gives every pub/sub trigger.
#[derive(Clone)]
pub struct PubSubContext {
    /// The process-wide instance slots, shared with HTTP.
    pub instances: Arc<Semaphore>,
    /// Deadline of one attempt at one message.
    pub deadline: Option<Duration>,
    /// How long in-flight messages may take after shutdown.
    pub drain_timeout: Duration,
    /// For `mqtts://` brokers.
    pub tls: Arc<rustls::ClientConfig>,
    /// Largest Redis trigger message handled; larger ones are dropped unread.
    pub redis_max_message_size: usize,
    /// Where the triggers run.
    pub threads: Arc<pubsub_threads::PubSubThreads>,
}

/// An app's Redis and MQTT triggers, checked and ready to run: every
/// component exists and exports its handler, every address parses. Made when
/// the app loads, so a bad trigger rejects an update before the switch.
pub struct PubSub {
    redis: Vec<redis::Subscription>,
    mqtt: Vec<mqtt::Session>,
    drain_timeout: Duration,
}

impl PubSub {
    pub fn prepare(app: &App, executor: &Executor, context: &PubSubContext) -> Result<Self> {
        Ok(Self {
            redis: redis::prepare(app, executor, context)?,
            mqtt: mqtt::prepare(app, executor, context)?,
            drain_timeout: context.drain_timeout,
        })
    }

    /// Starts the Redis subscriptions, each on its home thread; each task
    /// ends after `shutdown`, once its in-flight messages are handled (at
    /// most the drain timeout). The receivers complete as each subscription
    /// is first subscribed.
    pub fn start_redis(
        &mut self,
        shutdown: &Shutdown,
        tasks: &mut JoinSet<()>,
    ) -> Vec<oneshot::Receiver<()>> {
        self.redis
            .drain(..)
            .map(|subscription| {
                let (tx, rx) = oneshot::channel();
                let home = subscription.home();
                let run = subscription.run(shutdown.clone(), self.drain_timeout, Some(tx));
                tasks.spawn_on(run, &home);
                rx
            })
            .collect()
    }

    /// Starts the MQTT sessions, as [`PubSub::start_redis`] does.
    pub fn start_mqtt(&mut self, shutdown: &Shutdown, tasks: &mut JoinSet<()>) {
        for session in self.mqtt.drain(..) {
            let home = session.home();
            tasks.spawn_on(session.run(shutdown.clone(), self.drain_timeout), &home);
        }
    }
}
