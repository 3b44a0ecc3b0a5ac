//! Liveness: the parts of the daemon that must keep answering (each HTTP
//! serving thread's runtime, each pub/sub thread's, the main runtime that
//! runs the admin API and updates) beat a heart; a watchdog (systemd's, see
//! [`crate::systemd::start_watchdog`]) is fed only while every heart beats.
//! A serving thread wedged by a blocking call or a runaway host function
//! stops its heart, the watchdog goes quiet, and the supervisor restarts
//! the daemon.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A part's name and when its heart last beat (ms since the epoch).
type Registered = Vec<(String, Arc<AtomicU64>)>;

/// The registered hearts. Cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    hearts: Arc<Mutex<Registered>>,
    epoch: Instant,
    /// How often hearts beat.
    period: Duration,
}

impl Liveness {
    /// Hearts beat every `period`.
    pub fn new(period: Duration) -> Self {
        Self {
            hearts: Arc::default(),
            epoch: Instant::now(),
            period,
        }
    }

    /// A heart for the part called `name`, beating from now on while
    /// [`Liveness::beat`] runs on that part's runtime.
    pub fn register(&self, name: &str) -> Heart {
        let last = Arc::new(AtomicU64::new(self.now_ms()));
        self.hearts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_string(), last.clone()));
        Heart {
            last,
            epoch: self.epoch,
            period: self.period,
        }
    }

    /// The parts whose heart has not beaten within `within`, with how long
    /// ago it last did.
    pub fn stale(&self, within: Duration) -> Vec<(String, Duration)> {
        let now = self.now_ms();
        self.hearts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(name, last)| {
                let ago = Duration::from_millis(now.saturating_sub(last.load(Ordering::Relaxed)));
                (ago > within).then(|| (name.clone(), ago))
            })
            .collect()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// One part's heart: [`Heart::beat`] runs as a task on that part's runtime,
/// so it stops when the runtime stops making progress.
pub struct Heart {
    last: Arc<AtomicU64>,
    epoch: Instant,
    period: Duration,
}

impl Heart {
    pub async fn beat(self) {
        loop {
            self.last
                .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            tokio::time::sleep(self.period).await;
        }
    }
}

/// Test hook: `GATEWAYD_TEST_WEDGE=<thread>:<ms>` blocks the named runtime
/// (e.g. `http-0`) for good after `ms`, as a runaway blocking call would.
pub const WEDGE_ENV: &str = "GATEWAYD_TEST_WEDGE";

/// Spawns, on the current runtime, the wedge the test hook asks for `name`.
pub fn wedge_if_asked(name: &str) {
    let Some((target, after)) = std::env::var(WEDGE_ENV).ok().and_then(|v| {
        v.split_once(':')
            .map(|(t, ms)| (t.to_string(), ms.parse().ok()))
    }) else {
        return;
    };
    let (true, Some(after)) = (target == name, after) else {
        return;
    };
    tracing::warn!("test hook: wedging {name} after {after} ms");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        std::thread::sleep(Duration::from_secs(3600));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_heart_that_stops_beating_is_named() {
        let liveness = Liveness::new(Duration::from_millis(10));
        let beating = tokio::spawn(liveness.register("main").beat());
        let _stopped = liveness.register("http-0");
        assert!(liveness.stale(Duration::from_millis(50)).is_empty());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stale = liveness.stale(Duration::from_millis(50));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert_eq!(stale[0].0, "http-0");
        beating.abort();
    }
}
