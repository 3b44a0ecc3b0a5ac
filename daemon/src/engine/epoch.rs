//! The epoch ticker: a thread that advances the engines' epochs every
//! [`super::EPOCH_TICK`] while guest stores exist, so running guests yield
//! and deadlines can fire.
//!
//! The tick is the slice a computing guest gets before its thread's other
//! requests run: each step of a neighbouring request (accept, read, call,
//! write) may wait one slice, so the slice is short. When no store has
//! existed for a second, nothing can run, and the ticker sleeps rather than
//! wake an idle board hundreds of times a second. Not sooner: waking it for
//! every request of a light load cost 10% of the requests per second at one
//! connection (a futex wake and a thread switch each).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// Guest stores alive in the process.
static LIVE_STORES: AtomicUsize = AtomicUsize::new(0);

/// Set while the tickers sleep (or are about to): only then does a new store
/// wake them.
static PARKED: AtomicBool = AtomicBool::new(false);

/// Ticks without a store before the tickers sleep (one second).
const IDLE_TICKS_BEFORE_PARKING: u32 = 500;

/// The ticker threads to wake when a store appears while they sleep.
static TICKERS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());

/// Held by every guest store: the ticker ticks while one exists.
#[derive(Debug)]
pub struct Ticking(());

impl Ticking {
    pub fn start() -> Self {
        LIVE_STORES.fetch_add(1, Ordering::SeqCst);
        // The ticker sets PARKED before it looks at LIVE_STORES a last time,
        // and this reads PARKED after counting the store: one of the two sees
        // the other (both SeqCst), and an unpark before the park is kept.
        if PARKED.load(Ordering::SeqCst) {
            for ticker in TICKERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                ticker.unpark();
            }
        }
        Ticking(())
    }
}

impl Drop for Ticking {
    fn drop(&mut self) {
        LIVE_STORES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Ticks until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engines: Vec<Engine>) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let mut idle_ticks: u32 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if LIVE_STORES.load(Ordering::SeqCst) == 0 {
                            idle_ticks = idle_ticks.saturating_add(1);
                        } else {
                            idle_ticks = 0;
                        }
                        if idle_ticks >= IDLE_TICKS_BEFORE_PARKING {
                            PARKED.store(true, Ordering::SeqCst);
                            if LIVE_STORES.load(Ordering::SeqCst) == 0 {
                                std::thread::park_timeout(Duration::from_secs(1));
                            }
                            PARKED.store(false, Ordering::SeqCst);
                            // Still idle: park again at once (the count stays).
                            continue;
                        }
                        std::thread::sleep(super::EPOCH_TICK);
                        for engine in &engines {
                            engine.increment_epoch();
                        }
                    }
                }
            })?;
        TICKERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(thread.thread().clone());
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let id = thread.thread().id();
            TICKERS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|t| t.id() != id);
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
