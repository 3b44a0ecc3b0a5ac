//! One Redis trigger's subscription: connect (and reconnect forever),
//! SUBSCRIBE, read messages (no faster than they are handled, see `resp`) and
//! dispatch them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use redis::aio::ConnectionManager;
use tokio::sync::{OnceCell, oneshot};

use super::RedisGuest;
use super::resp::{Event, Subscriber, Target};
use crate::app::RedisTrigger;
use crate::metrics::pubsub::TriggerMetrics;
use crate::shutdown::Shutdown;
use crate::trigger::dispatch::Dispatcher;
use crate::trigger::pubsub_threads::Placement;
use crate::trigger::reconnect::{Reconnect, redact};
use crate::trigger::retry;

/// How long a stopping subscription waits for its UNSUBSCRIBE to be confirmed.
const HAND_OFF_TIMEOUT: Duration = Duration::from_secs(2);
/// A connection that brought nothing for this long is asked for a PING; if the
/// answer does not come within the same time, it is taken for lost. Without
/// it, a link that died silently (a board's Wi-Fi, a NAT that forgot it) would
/// wait for messages forever.
const IDLE_PING: Duration = Duration::from_secs(30);
/// How long connecting, authenticating and subscribing may take.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Subscription {
    name: String,
    channel: String,
    target: Target,
    max_message_size: usize,
    dispatcher: Dispatcher<Vec<u8>>,
    metrics: TriggerMetrics,
}

impl Subscription {
    pub fn new(
        trigger: &RedisTrigger,
        guest: Arc<RedisGuest>,
        max_message_size: usize,
        placement: Placement,
    ) -> Result<Self> {
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
        let metrics =
            crate::metrics::global()
                .pubsub
                .trigger("redis", &trigger.id, &trigger.component);
        let handler = Arc::new(Handler {
            name: name.clone(),
            metrics: metrics.clone(),
            guest,
            max_attempts: trigger.delivery.max_attempts,
            dead_letter_channel: trigger.dead_letter_channel.clone(),
            client: client.clone(),
            publisher: OnceCell::new(),
        });
        let queued = metrics.queued.clone();
        let dispatcher = Dispatcher::new(
            trigger.delivery.concurrency,
            queued,
            placement,
            move |payload| {
                let handler = handler.clone();
                async move { handler.handle(payload).await }
            },
        );
        Ok(Self {
            name,
            channel: trigger.channel.clone(),
            target: Target::of(&client),
            max_message_size,
            dispatcher,
            metrics,
        })
    }

    /// The thread [`Subscription::run`] belongs on (see `pubsub_threads`).
    pub fn home(&self) -> tokio::runtime::Handle {
        self.dispatcher.home()
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
        let mut link = Reconnect::new(self.name.clone(), self.metrics.clone());
        'connect: loop {
            let subscribe =
                Subscriber::subscribe(&self.target, &self.channel, self.max_message_size);
            let subscribed = tokio::select! {
                subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, subscribe) => subscribed
                    .unwrap_or_else(|_| Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no subscription within {SUBSCRIBE_TIMEOUT:?}"),
                    ))),
                _ = shutdown.requested() => break,
            };
            let mut subscriber = match subscribed {
                Ok(subscriber) => subscriber,
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
            let mut pinged = false;
            let lost = loop {
                let event = tokio::select! {
                    event = tokio::time::timeout(IDLE_PING, subscriber.next()) => event,
                    _ = shutdown.requested() => {
                        self.hand_off(&mut subscriber).await;
                        break 'connect;
                    }
                };
                let event = match event {
                    Ok(Ok(event)) => event,
                    Ok(Err(e)) => break e.to_string(),
                    Err(_idle) if pinged => {
                        break format!("no answer to a PING within {IDLE_PING:?}");
                    }
                    Err(_idle) => match subscriber.ping().await {
                        Ok(()) => {
                            pinged = true;
                            continue;
                        }
                        Err(e) => break e.to_string(),
                    },
                };
                pinged = false;
                // A message in hand is dispatched even if shutdown comes
                // meanwhile: it was received, and the drain covers it.
                self.take(event).await;
            };
            let pause = link.failed(&lost);
            tokio::select! {
                () = tokio::time::sleep(pause) => continue 'connect,
                _ = shutdown.requested() => break 'connect,
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

    async fn take(&self, event: Event) {
        match event {
            Event::Message(payload) => self.dispatcher.dispatch(&self.channel, payload).await,
            Event::TooLarge(size) => {
                self.metrics.dropped.inc();
                tracing::warn!(
                    "{}: dropped a message of {size} bytes: the limit is {} (redis_max_message_size)",
                    self.name,
                    self.max_message_size
                )
            }
            Event::Subscribed | Event::Unsubscribed | Event::Pong => {}
        }
    }

    /// Stops taking messages without losing one: UNSUBSCRIBE, then dispatch
    /// every message that arrived before the server confirmed it (the
    /// confirmation comes after them on the connection). During an update
    /// the next generation is already subscribed, so messages published from
    /// then on are its.
    async fn hand_off(&self, subscriber: &mut Subscriber) {
        let confirmed = tokio::time::timeout(HAND_OFF_TIMEOUT, async {
            subscriber.unsubscribe(&self.channel).await?;
            loop {
                match subscriber.next().await? {
                    Event::Unsubscribed => return Ok::<_, std::io::Error>(()),
                    event => self.take(event).await,
                }
            }
        });
        if !matches!(confirmed.await, Ok(Ok(()))) {
            tracing::warn!("{}: could not unsubscribe; stopping anyway", self.name);
        }
    }
}

/// What happens to one message.
struct Handler {
    name: String,
    metrics: TriggerMetrics,
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
        self.metrics.received.inc();
        let handled = retry::with_retries(self.max_attempts, &what, |attempt| {
            if attempt > 1 {
                self.metrics.retries.inc();
            }
            self.guest.handle(payload.clone())
        })
        .await;
        let Err(e) = handled else {
            self.metrics.handled.inc();
            tracing::debug!("{what}: handled");
            return;
        };
        let Some(dead) = &self.dead_letter_channel else {
            self.metrics.dropped.inc();
            tracing::error!(
                "{what}: failed {} times ({e:#}); dropped (set dead_letter_channel to keep such messages)",
                self.max_attempts
            );
            return;
        };
        self.metrics.dead_lettered.inc();
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
