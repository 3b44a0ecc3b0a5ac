//! Hands pub/sub messages to their handlers: at most `concurrency` messages of
//! one trigger are held at once (running or queued), and the messages of one
//! key (an MQTT topic, a Redis channel) are handled one after the other, in
//! the order they arrived, while different keys run side by side.
//!
//! `dispatch` waits while the trigger is at its limit. The caller is the loop
//! that reads from the broker, so a full trigger stops reading instead of
//! buffering without bound: backpressure reaches the broker.
//!
//! A key's messages run on the trigger's home thread when it is the only key
//! in hand, else on the next of the pub/sub threads ([`Placement`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Held;
use crate::trigger::pubsub_threads::Placement;

type Handler<M> = dyn Fn(M) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// Messages waiting behind a running one, per key.
type Queues<M> = HashMap<String, VecDeque<(M, Slot)>>;

/// A message's place in the trigger: its permit, and its count in the
/// trigger's `messages_queued` gauge.
struct Slot {
    _permit: OwnedSemaphorePermit,
    _counted: Held,
}

pub struct Dispatcher<M> {
    inner: Arc<Inner<M>>,
}

struct Inner<M> {
    concurrency: u32,
    permits: Arc<Semaphore>,
    /// Messages held, for metrics.
    queued: Gauge,
    /// A key is present while a worker runs its messages.
    queues: Mutex<Queues<M>>,
    handler: Box<Handler<M>>,
    placement: Placement,
}

impl<M: Send + 'static> Dispatcher<M> {
    /// `queued` counts the messages held (running or waiting); handlers run
    /// where `placement` says.
    pub fn new<F, Fut>(concurrency: usize, queued: Gauge, placement: Placement, handler: F) -> Self
    where
        F: Fn(M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let concurrency = u32::try_from(concurrency.max(1)).unwrap_or(u32::MAX);
        Self {
            inner: Arc::new(Inner {
                concurrency,
                permits: Arc::new(Semaphore::new(concurrency as usize)),
                queued,
                queues: Mutex::new(HashMap::new()),
                handler: Box::new(move |m| Box::pin(handler(m))),
                placement,
            }),
        }
    }

    /// Queues `message` under `key`, waiting first while the trigger holds
    /// `concurrency` messages.
    pub async fn dispatch(&self, key: &str, message: M) {
        let Ok(permit) = self.inner.permits.clone().acquire_owned().await else {
            return; // never closed
        };
        self.enqueue(key, message, permit);
    }

    /// Queues `message` if the trigger has room now; gives it back if not.
    pub fn try_dispatch(&self, key: &str, message: M) -> Result<(), M> {
        match self.inner.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.enqueue(key, message, permit);
                Ok(())
            }
            Err(_) => Err(message),
        }
    }

    /// Completes when the trigger has room for a message (it may be taken by
    /// another caller first). Cancel-safe.
    pub async fn room(&self) {
        let _ = self.inner.permits.acquire().await;
    }

    fn enqueue(&self, key: &str, message: M, permit: OwnedSemaphorePermit) {
        let permit = Slot {
            _permit: permit,
            _counted: Held::on(&self.inner.queued),
        };
        let alone = {
            let mut queues = self.inner.lock();
            if let Some(queue) = queues.get_mut(key) {
                queue.push_back((message, permit));
                return;
            }
            let alone = queues.is_empty();
            queues.insert(key.to_string(), VecDeque::new());
            alone
        };
        let worker = self.inner.clone().run(key.to_string(), message, permit);
        if alone {
            self.inner.placement.home().spawn(worker);
        } else {
            self.inner.placement.spare().spawn(worker);
        }
    }

    /// Waits, at most `timeout`, until every dispatched message was handled;
    /// false if some were still running.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let all = self.inner.permits.acquire_many(self.inner.concurrency);
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    /// The trigger's home thread, where its reading loop belongs.
    pub fn home(&self) -> tokio::runtime::Handle {
        self.inner.placement.home().clone()
    }

    /// Messages held (running or queued) right now.
    pub fn in_flight(&self) -> usize {
        self.inner.concurrency as usize - self.inner.permits.available_permits()
    }
}

impl<M: Send + 'static> Inner<M> {
    /// One key's worker: handles its messages until none are queued.
    async fn run(self: Arc<Self>, key: String, mut message: M, mut permit: Slot) {
        loop {
            // A handler that panics loses its own message only, not the key.
            let handled = tokio::spawn((self.handler)(message)).await;
            if let Err(e) = handled {
                tracing::error!(key, "message handler failed: {e}");
            }
            // The key leaves the map before its permit goes, so a trigger
            // with no message held has no key in hand either.
            let next = {
                let mut queues = self.lock();
                let next = queues.get_mut(&key).and_then(VecDeque::pop_front);
                if next.is_none() {
                    queues.remove(&key);
                }
                next
            };
            drop(permit);
            let Some(next) = next else {
                return;
            };
            (message, permit) = next;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues<M>> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::pubsub_threads::PubSubThreads;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn two_threads() -> Placement {
        PubSubThreads::new(2).place().unwrap()
    }

    #[tokio::test]
    async fn one_key_in_order_keys_side_by_side_bounded() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let dispatcher = {
            let (log, running, peak) = (log.clone(), running.clone(), peak.clone());
            let handler = move |(key, n): (&'static str, u32)| {
                let (log, running, peak) = (log.clone(), running.clone(), peak.clone());
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    log.lock().unwrap().push((key, n));
                    running.fetch_sub(1, Ordering::SeqCst);
                }
            };
            Dispatcher::new(3, Gauge::default(), two_threads(), handler)
        };
        for n in 0..20 {
            let key = if n % 2 == 0 { "a" } else { "b" };
            dispatcher.dispatch(key, (key, n)).await;
            assert!(dispatcher.in_flight() <= 3);
        }
        assert!(dispatcher.drain(Duration::from_secs(5)).await);
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 20);
        for key in ["a", "b"] {
            let order: Vec<u32> = log
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, n)| *n)
                .collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "key {key} out of order");
        }
        // Two keys: both ran at once, never more than the two workers.
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_panicking_handler_does_not_block_its_key() {
        let done = Arc::new(AtomicUsize::new(0));
        let dispatcher = {
            let done = done.clone();
            Dispatcher::new(2, Gauge::default(), two_threads(), move |n: u32| {
                let done = done.clone();
                async move {
                    assert!(n != 0, "poison");
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        for n in 0..3 {
            dispatcher.dispatch("k", n).await;
        }
        assert!(dispatcher.drain(Duration::from_secs(5)).await);
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    /// A key alone in hand runs on the trigger's home thread, message after
    /// message; keys in hand at the same time run on both threads.
    #[tokio::test]
    async fn a_lone_key_runs_at_home_and_more_keys_spread() {
        let placement = two_threads();
        let home = {
            let (tx, rx) = tokio::sync::oneshot::channel();
            placement.home().spawn(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_string));
            });
            rx.await.unwrap().unwrap()
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let dispatcher = {
            let seen = seen.clone();
            Dispatcher::new(
                4,
                Gauge::default(),
                placement,
                move |(key, pause): (&'static str, u64)| {
                    let seen = seen.clone();
                    async move {
                        let thread = std::thread::current().name().unwrap_or("").to_string();
                        seen.lock().unwrap().push((key, thread));
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                },
            )
        };
        for _ in 0..3 {
            dispatcher.dispatch("alone", ("alone", 0)).await;
            assert!(dispatcher.drain(Duration::from_secs(5)).await);
        }
        for key in ["a", "b", "c"] {
            dispatcher.dispatch(key, (key, 200)).await;
        }
        assert!(dispatcher.drain(Duration::from_secs(5)).await);
        let seen = seen.lock().unwrap();
        let threads_of = |keys: &[&str]| {
            let mut names: Vec<&str> = seen
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(_, t)| t.as_str())
                .collect();
            names.sort();
            names.dedup();
            names
        };
        assert_eq!(threads_of(&["alone"]), [home.as_str()], "{seen:?}");
        assert_eq!(threads_of(&["a"]), [home.as_str()], "{seen:?}");
        assert_eq!(
            threads_of(&["a", "b", "c"]),
            ["pubsub-0", "pubsub-1"],
            "{seen:?}"
        );
    }
}
