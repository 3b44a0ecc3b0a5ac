//! The threads the pub/sub triggers run on: one single-threaded runtime per
//! core, as HTTP's serving threads are. Each trigger (a Redis subscription,
//! an MQTT session) has a home thread where it reads, and a message it
//! dispatches runs there too while it is the trigger's only key in hand, so
//! a message's whole path (read, fresh instance, outbound call, reply,
//! acknowledgement) stays on one thread with no wake-up of another. A trigger
//! with several keys in hand at once (MQTT topics under a wildcard) sends the
//! others round the threads, so concurrent messages still use every core.
//!
//! Why not the main multi-threaded runtime: its work stealing moved each
//! message between the two cores several times, and every move is a
//! sleeping thread woken; see the pub/sub section of docs/benchmarks.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::liveness::Liveness;

/// The threads, started with the first trigger placed (an app with none
/// runs no thread for them), running until this is dropped.
pub struct PubSubThreads {
    count: usize,
    started: Mutex<Started>,
    /// Round robin over the threads.
    next: AtomicUsize,
}

#[derive(Default)]
struct Started {
    threads: Vec<Thread>,
    /// The hearts to beat, once a watchdog asked (see [`PubSubThreads::watch`]).
    liveness: Option<Liveness>,
}

struct Thread {
    name: String,
    handle: Handle,
    /// Dropping it ends the thread (once its tasks are done: triggers are
    /// stopped and drained before the runtime goes).
    _stop: oneshot::Sender<()>,
}

impl PubSubThreads {
    /// `count` threads (at least one), named `pubsub-<n>`, started when the
    /// first trigger is placed.
    pub fn new(count: usize) -> Arc<Self> {
        Arc::new(Self {
            count: count.max(1),
            started: Mutex::default(),
            next: AtomicUsize::new(0),
        })
    }

    /// Where a new trigger runs: its home is the next thread in turn.
    pub fn place(self: &Arc<Self>) -> Result<Placement> {
        Ok(Placement {
            home: self.next_thread()?,
            threads: self.clone(),
        })
    }

    /// Each thread, now and once started, beats a heart of `liveness`, so a
    /// thread wedged by a blocking call stops the watchdog.
    pub fn watch(&self, liveness: &Liveness) {
        let mut started = self.lock();
        for thread in &started.threads {
            thread.beat(liveness);
        }
        started.liveness = Some(liveness.clone());
    }

    fn next_thread(&self) -> Result<Handle> {
        let mut started = self.lock();
        if started.threads.is_empty() {
            for index in 0..self.count {
                let thread = Thread::start(format!("pubsub-{index}"))?;
                if let Some(liveness) = &started.liveness {
                    thread.beat(liveness);
                }
                started.threads.push(thread);
            }
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % started.threads.len();
        Ok(started.threads[index].handle.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Started> {
        self.started.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Thread {
    fn start(name: String) -> Result<Self> {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread_name = name.clone();
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    crate::liveness::wedge_if_asked(&thread_name);
                    let _ = stopped.await;
                });
                // A blocking task (a DNS lookup) must not hold the exit.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .with_context(|| format!("starting the thread {name}"))?;
        let handle = handle_rx
            .recv()
            .with_context(|| format!("the thread {name} stopped while starting"))?
            .with_context(|| format!("starting the runtime of the thread {name}"))?;
        Ok(Self {
            name,
            handle,
            _stop: stop,
        })
    }

    fn beat(&self, liveness: &Liveness) {
        self.handle.spawn(liveness.register(&self.name).beat());
    }
}

/// One trigger's threads: its home, and the others in turn.
#[derive(Clone)]
pub struct Placement {
    home: Handle,
    threads: Arc<PubSubThreads>,
}

impl Placement {
    /// Where the trigger reads, and handles a message while it has one key
    /// in hand.
    pub fn home(&self) -> &Handle {
        &self.home
    }

    /// Where a message of a further key runs: the next thread in turn (the
    /// home, should that fail, which it cannot once the threads started).
    pub fn spare(&self) -> Handle {
        self.threads
            .next_thread()
            .unwrap_or_else(|_| self.home.clone())
    }
}
