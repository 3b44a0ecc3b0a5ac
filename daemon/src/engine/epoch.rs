//! The epoch ticker: a thread that advances the engines' epochs every
//! [`super::EPOCH_TICK`] while guest stores exist, so running guests yield
//! and deadlines can fire.
//!
//! The tick is the slice a computing guest gets before its thread's other
//! requests run: each step of a neighbouring request (accept, read, call,
//! write) may wait one slice, so the slice is short. While no store exists
//! nothing can run, and the ticker sleeps rather than wake an idle board
//! hundreds of times a second.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// Guest stores alive in the process.
static LIVE_STORES: AtomicUsize = AtomicUsize::new(0);

/// The ticker threads to wake when the first store appears.
static TICKERS: Mutex<Vec<Thread>> = Mutex::new(Vec::new());

/// Held by every guest store: the ticker ticks while one exists.
#[derive(Debug)]
pub struct Ticking(());

impl Ticking {
    pub fn start() -> Self {
        if LIVE_STORES.fetch_add(1, Ordering::SeqCst) == 0 {
            // An unpark before the ticker parks is kept: no wake-up is lost.
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
                    while !stop.load(Ordering::Relaxed) {
                        if LIVE_STORES.load(Ordering::SeqCst) == 0 {
                            std::thread::park_timeout(Duration::from_secs(1));
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
