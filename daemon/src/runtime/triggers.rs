//! The running app's triggers, with one owner and one way to change them:
//! [`Triggers::switch`]. The HTTP apps of every serving thread are swapped at
//! once (in-flight requests finish on the old ones); then, in a background
//! task and outside any update lock, the pub/sub triggers move over:
//!
//! - Redis: the new generation subscribes first, and the old one stops
//!   reading once every new subscription is confirmed (or after
//!   [`SUBSCRIBE_WAIT`], if the server is down), then drains. There is no
//!   moment with no subscriber; a message published in the overlap (a few
//!   milliseconds) reaches both and may be handled by both generations.
//! - MQTT: a persistent session has one owner at a time (one client id), so
//!   the old sessions finish their in-flight messages and disconnect first,
//!   then the new ones resume the same sessions. QoS 1 and 2 messages
//!   published meanwhile wait in the broker for the session; QoS 0 ones
//!   published in that window are lost, as QoS 0 allows.
//!
//! Switches that come while one is in progress coalesce: only the newest
//! generation's pub/sub triggers start.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::Loaded;
use crate::shutdown::{self, ShutdownTrigger};
use crate::trigger::http::AppSlot;

/// How long the old generation's Redis subscriptions wait for the new ones.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(5);

pub struct Triggers {
    slots: Vec<Arc<AppSlot>>,
    desired: watch::Sender<Desired>,
    mover: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

#[derive(Clone)]
enum Desired {
    Nothing,
    Run(Arc<Loaded>),
    Stop,
}

impl Triggers {
    /// One slot per serving thread; none serves anything yet.
    pub fn new(slots: Vec<Arc<AppSlot>>) -> Self {
        let (desired, watching) = watch::channel(Desired::Nothing);
        Self {
            slots,
            desired,
            mover: tokio::sync::Mutex::new(Some(tokio::spawn(move_pubsub(watching)))),
        }
    }

    /// Makes `loaded` the app that serves: HTTP at once, pub/sub next.
    pub fn switch(&self, loaded: &Arc<Loaded>) {
        for (slot, app) in self.slots.iter().zip(&loaded.http_apps) {
            slot.set(Some(app.clone()));
        }
        let _ = self.desired.send(Desired::Run(loaded.clone()));
    }

    /// Stops the pub/sub triggers and waits for their in-flight messages
    /// (each at most the drain timeout). HTTP stops with its listeners.
    pub async fn stop(&self) {
        let _ = self.desired.send(Desired::Stop);
        if let Some(mover) = self.mover.lock().await.take() {
            let _ = mover.await;
        }
    }
}

/// One generation's running pub/sub triggers.
struct Running {
    stop_redis: ShutdownTrigger,
    stop_mqtt: ShutdownTrigger,
    redis: JoinSet<()>,
    mqtt: JoinSet<()>,
}

/// The background task that moves pub/sub triggers from one generation to
/// the next, as `desired` says.
async fn move_pubsub(mut desired: watch::Receiver<Desired>) {
    let mut running: Option<Running> = None;
    // Old generations' Redis subscriptions, finishing their messages.
    let mut draining: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            changed = desired.changed() => if changed.is_err() { break },
            Some(_) = draining.join_next(), if !draining.is_empty() => continue,
        }
        let loaded = match desired.borrow_and_update().clone() {
            Desired::Nothing => continue,
            Desired::Stop => break,
            Desired::Run(loaded) => loaded,
        };
        let Some(mut pubsub) = loaded.take_pubsub() else {
            continue;
        };
        let mut next = Running::new();
        let ready = pubsub.start_redis(&next.redis_shutdown(), &mut next.redis);
        if !ready.is_empty() {
            let confirmed = futures_util::future::join_all(ready);
            if tokio::time::timeout(SUBSCRIBE_WAIT, confirmed)
                .await
                .is_err()
            {
                tracing::warn!(
                    "the new generation's Redis subscriptions are not confirmed after \
                     {SUBSCRIBE_WAIT:?}; stopping the old ones anyway"
                );
            }
        }
        if let Some(mut old) = running.take() {
            old.stop_redis.trigger();
            let mut old_redis = std::mem::take(&mut old.redis);
            draining.spawn(async move { while old_redis.join_next().await.is_some() {} });
            old.stop_mqtt.trigger();
            while old.mqtt.join_next().await.is_some() {}
        }
        pubsub.start_mqtt(&next.mqtt_shutdown(), &mut next.mqtt);
        running = Some(next);
    }
    if let Some(mut last) = running {
        last.stop_redis.trigger();
        last.stop_mqtt.trigger();
        while last.redis.join_next().await.is_some() {}
        while last.mqtt.join_next().await.is_some() {}
    }
    while draining.join_next().await.is_some() {}
}

impl Running {
    fn new() -> Self {
        let (stop_redis, _) = shutdown::channel();
        let (stop_mqtt, _) = shutdown::channel();
        Self {
            stop_redis,
            stop_mqtt,
            redis: JoinSet::new(),
            mqtt: JoinSet::new(),
        }
    }

    fn redis_shutdown(&self) -> shutdown::Shutdown {
        self.stop_redis.subscribe()
    }

    fn mqtt_shutdown(&self) -> shutdown::Shutdown {
        self.stop_mqtt.subscribe()
    }
}
