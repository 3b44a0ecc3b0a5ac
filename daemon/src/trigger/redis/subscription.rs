//! One Redis trigger's subscription: connect (and reconnect forever),
//! SUBSCRIBE, read messages and dispatch them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures_util::{FutureExt as _, StreamExt as _};
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::{OnceCell, oneshot};

use super::RedisGuest;
use crate::app::RedisTrigger;
use crate::shutdown::Shutdown;
use crate::trigger::dispatch::Dispatcher;
use crate::trigger::reconnect::{Reconnect, redact};
use crate::trigger::retry;

/// How long a stopping subscription waits for its UNSUBSCRIBE to be confirmed.
const HAND_OFF_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Subscription {
    name: String,
    channel: String,
    client: redis::Client,
    dispatcher: Dispatcher<Vec<u8>>,
}

impl Subscription {
    pub fn new(trigger: &RedisTrigger, guest: Arc<RedisGuest>) -> Result<Self> {
        let client = redis::Client::open(trigger.address.as_str()).with_context(|| {
            format!(
                "Redis trigger \"{}\": address {}",
                trigger.id,
                redact(&trigger.address)
            )
        })?;
        let name = format!(
            "Redis trigger \"{}\" ({}, channel {:?})",
            trigger.id,
            redact(&trigger.address),
            trigger.channel
        );
        tracing::debug!("{name}: calls {}", guest.export_name());
        let handler = Arc::new(Handler {
            name: name.clone(),
            guest,
            max_attempts: trigger.delivery.max_attempts,
            dead_letter_channel: trigger.dead_letter_channel.clone(),
            client: client.clone(),
            publisher: OnceCell::new(),
        });
        let dispatcher = Dispatcher::new(trigger.delivery.concurrency, move |payload| {
            let handler = handler.clone();
            async move { handler.handle(payload).await }
        });
        Ok(Self {
            name,
            channel: trigger.channel.clone(),
            client,
            dispatcher,
        })
    }

    /// Reads and dispatches until `shutdown`, then drains. `confirmed`
    /// completes once the first SUBSCRIBE is confirmed: an update starts the
    /// new generation's subscription and stops the old one only then.
    pub async fn run(
        self,
        mut shutdown: Shutdown,
        drain_timeout: Duration,
        mut confirmed: Option<oneshot::Sender<()>>,
    ) {
        let mut link = Reconnect::new(self.name.clone());
        'connect: loop {
            let subscribed = tokio::select! {
                subscribed = self.subscribe() => subscribed,
                _ = shutdown.requested() => break,
            };
            let pubsub = match subscribed {
                Ok(pubsub) => pubsub,
                Err(e) => {
                    let pause = link.failed(&e);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue,
                        _ = shutdown.requested() => break,
                    }
                }
            };
            link.connected();
            if let Some(tx) = confirmed.take() {
                let _ = tx.send(());
            }
            let (mut sink, mut messages) = pubsub.split();
            loop {
                let message = tokio::select! {
                    message = messages.next() => message,
                    _ = shutdown.requested() => {
                        self.hand_off(&mut sink, &mut messages).await;
                        break 'connect;
                    }
                };
                let Some(message) = message else {
                    let pause = link.failed(&"the server closed the connection");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => continue 'connect,
                        _ = shutdown.requested() => break 'connect,
                    }
                };
                // A message in hand is dispatched even if shutdown comes
                // meanwhile: it was received, and the drain covers it.
                let payload = message.get_payload_bytes().to_vec();
                self.dispatcher.dispatch(&self.channel, payload).await;
            }
        }
        let in_flight = self.dispatcher.in_flight();
        if in_flight > 0 {
            tracing::info!("{}: waiting for {in_flight} in-flight messages", self.name);
        }
        if !self.dispatcher.drain(drain_timeout).await {
            tracing::warn!(
                "{}: drain timeout reached with messages unfinished",
                self.name
            );
        }
    }

    /// Stops taking messages without losing one: UNSUBSCRIBE, then dispatch
    /// every message that arrived before the server confirmed it (the
    /// confirmation comes after them on the connection). During an update
    /// the next generation is already subscribed, so messages published from
    /// then on are its.
    async fn hand_off(&self, sink: &mut PubSubSink, messages: &mut PubSubStream) {
        let unsubscribed = tokio::time::timeout(HAND_OFF_TIMEOUT, sink.unsubscribe(&self.channel));
        if !matches!(unsubscribed.await, Ok(Ok(()))) {
            tracing::warn!("{}: could not unsubscribe; stopping anyway", self.name);
        }
        while let Some(Some(message)) = messages.next().now_or_never() {
            let payload = message.get_payload_bytes().to_vec();
            self.dispatcher.dispatch(&self.channel, payload).await;
        }
    }

    async fn subscribe(&self) -> redis::RedisResult<redis::aio::PubSub> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub)
    }
}

/// What happens to one message.
struct Handler {
    name: String,
    guest: Arc<RedisGuest>,
    max_attempts: u32,
    dead_letter_channel: Option<String>,
    client: redis::Client,
    /// For dead letters; connected on first use.
    publisher: OnceCell<ConnectionManager>,
}

impl Handler {
    async fn handle(&self, payload: Vec<u8>) {
        let what = format!("{}: message", self.name);
        let handled = retry::with_retries(self.max_attempts, &what, |_| {
            self.guest.handle(payload.clone())
        })
        .await;
        let Err(e) = handled else {
            tracing::debug!("{what}: handled");
            return;
        };
        let Some(dead) = &self.dead_letter_channel else {
            tracing::error!(
                "{what}: failed {} times ({e:#}); dropped (set dead_letter_channel to keep such messages)",
                self.max_attempts
            );
            return;
        };
        tracing::error!(
            "{what}: failed {} times ({e:#}); moved to the dead-letter channel {dead:?}",
            self.max_attempts
        );
        if let Err(e) = self.publish(dead, payload).await {
            tracing::error!("{what}: could not publish to {dead:?}: {e}");
        }
    }

    async fn publish(&self, channel: &str, payload: Vec<u8>) -> redis::RedisResult<()> {
        let publisher = self
            .publisher
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await?;
        let mut publisher = publisher.clone();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut publisher)
            .await
            .map(drop)
    }
}
