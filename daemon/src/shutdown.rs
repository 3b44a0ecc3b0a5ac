//! Graceful shutdown as a value: one [`Shutdown`] per process, cloned into
//! every task that must stop accepting work when SIGINT or SIGTERM arrives.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

/// Whether the process is on its way out (a stop signal came, or the
/// command returned): what is dropped unfinished from then on was stopped,
/// it did not fail.
static STOPPING: AtomicBool = AtomicBool::new(false);

pub fn mark_process_stopping() {
    STOPPING.store(true, Ordering::Relaxed);
}

pub fn process_is_stopping() -> bool {
    STOPPING.load(Ordering::Relaxed)
}

#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a shutdown; dropping it does not.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        // Kept even with no one listening yet: a later `subscribe` sees it.
        self.tx.send_replace(true);
    }

    /// One more [`Shutdown`] that this trigger stops.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has been requested.
    pub async fn requested(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// SIGINT and SIGTERM, caught from the moment this is created (create it
/// before announcing readiness: a supervisor may signal right after).
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// The next SIGINT or SIGTERM.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// Requests a graceful shutdown on the first signal; a second signal ends
    /// the process at once, for an operator who does not want to wait.
    pub async fn drive(mut self, trigger: ShutdownTrigger) {
        let name = self.next().await;
        tracing::info!("{name} received: stopping (send it again to exit at once)");
        crate::systemd::notify("STOPPING=1\nSTATUS=stopping: finishing in-flight work");
        mark_process_stopping();
        trigger.trigger();
        let name = self.next().await;
        tracing::warn!("{name} received again: exiting without waiting for in-flight requests");
        std::process::exit(1);
    }
}
