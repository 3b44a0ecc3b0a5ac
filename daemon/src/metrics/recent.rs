//! The headline numbers `gatewayctl status` shows: requests, server errors,
//! the 99th-percentile latency, pub/sub messages, traps and timeouts, over
//! the last minute and since the start.
//!
//! Prometheus computes rates from its own history; a gateway asked directly
//! has to keep one. Every [`INTERVAL`] the daemon takes a [`Totals`]
//! snapshot (sums of the counters the families already keep, read from the
//! handles the app loads took) into a short ring; "the last minute" is the
//! difference between now and the snapshot a minute old.
//!
//! Latency needs finer buckets than the exported histogram's (1 ms, 2.5 ms,
//! 5 ms: a p99 from those is a guess within a factor of 2.5): requests are
//! also counted in [`Latencies`], log-spaced buckets 25% wide from 50 µs to
//! about a minute, summed over all components. One extra atomic add per
//! request.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::admin::api::Activity;

/// How often a snapshot is taken.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// The span `gatewayctl status` reports on.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The lowest bucket's upper bound, in seconds.
const FIRST_BOUND: f64 = 50e-6;
/// Each bucket's upper bound is this much larger than the one before.
const GROWTH: f64 = 1.25;
/// 50 µs x 1.25^63 is about 63 s; slower requests share the last bucket.
const BUCKETS: usize = 64;

/// The upper bound of bucket `i`, in seconds.
fn bound(i: usize) -> f64 {
    FIRST_BOUND * GROWTH.powi(i as i32)
}

/// Every HTTP response's latency, in fine log-spaced buckets, and how many
/// were server errors (5xx).
pub struct Latencies {
    buckets: [AtomicU64; BUCKETS],
    server_errors: AtomicU64,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            server_errors: AtomicU64::new(0),
        }
    }
}

impl Latencies {
    pub fn record(&self, took: Duration, server_error: bool) {
        let secs = took.as_secs_f64();
        let i = if secs <= FIRST_BOUND {
            0
        } else {
            ((secs / FIRST_BOUND).ln() / GROWTH.ln()).ceil() as usize
        };
        self.buckets[i.min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        if server_error {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn read(&self) -> ([u64; BUCKETS], u64) {
        (
            std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            self.server_errors.load(Ordering::Relaxed),
        )
    }
}

/// Everything counted since the start, summed over components and
/// triggers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Totals {
    pub latencies: [u64; BUCKETS],
    pub server_errors: u64,
    /// Pub/sub messages handed to a component.
    pub messages: u64,
    /// Pub/sub messages that failed every attempt (dead-lettered or
    /// dropped).
    pub messages_failed: u64,
    pub traps: u64,
    pub timeouts: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Self {
            latencies: [0; BUCKETS],
            server_errors: 0,
            messages: 0,
            messages_failed: 0,
            traps: 0,
            timeouts: 0,
        }
    }
}

impl Totals {
    /// Reads the counters now.
    pub fn read(metrics: &super::Metrics) -> Self {
        let (latencies, server_errors) = metrics.http.latencies.read();
        let (messages, messages_failed) = metrics.pubsub.totals();
        let (traps, timeouts) = metrics.instances.totals();
        Self {
            latencies,
            server_errors,
            messages,
            messages_failed,
            traps,
            timeouts,
        }
    }

    /// What happened between `earlier` and `self`, over `window`.
    pub fn since(&self, earlier: &Totals, window: Option<Duration>) -> Activity {
        let latencies: [u64; BUCKETS] =
            std::array::from_fn(|i| self.latencies[i].saturating_sub(earlier.latencies[i]));
        let requests = latencies.iter().sum();
        Activity {
            window_secs: window.map(|w| w.as_secs()),
            http_requests: requests,
            http_server_errors: self.server_errors.saturating_sub(earlier.server_errors),
            http_p99_ms: quantile(&latencies, 0.99).map(|secs| (secs * 1e5).round() / 100.0),
            messages: self.messages.saturating_sub(earlier.messages),
            messages_failed: self.messages_failed.saturating_sub(earlier.messages_failed),
            traps: self.traps.saturating_sub(earlier.traps),
            timeouts: self.timeouts.saturating_sub(earlier.timeouts),
        }
    }
}

/// The `q` quantile of the counts, in seconds, interpolated linearly within
/// its bucket (as Prometheus's `histogram_quantile` does); `None` without
/// any request.
fn quantile(counts: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, &n) in counts.iter().enumerate() {
        if n > 0 && (below + n) as f64 >= rank {
            let low = if i == 0 { 0.0 } else { bound(i - 1) };
            let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
            return Some(low + (bound(i) - low) * within);
        }
        below += n;
    }
    Some(bound(BUCKETS - 1))
}

/// Snapshots of the last minute, oldest first.
#[derive(Default)]
pub struct Recent {
    ring: Mutex<VecDeque<(Instant, Totals)>>,
}

impl Recent {
    /// Keeps `totals` as of `now`, forgetting what is older than the window
    /// needs.
    pub fn keep(&self, now: Instant, totals: Totals) {
        let mut ring = self.lock();
        ring.push_back((now, totals));
        // The oldest kept snapshot is the newest one at least a window old.
        while ring
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW)
        {
            ring.pop_front();
        }
    }

    /// Activity in the last minute (or since the first snapshot, when the
    /// daemon is younger than that) as of `now` with `totals`.
    pub fn last_minute(&self, now: Instant, totals: &Totals) -> Activity {
        let ring = self.lock();
        // The newest snapshot at least a window old; else the oldest.
        let base = ring
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= WINDOW)
            .or(ring.front());
        match base {
            Some((at, earlier)) => totals.since(earlier, Some(now.duration_since(*at))),
            None => totals.since(&Totals::default(), Some(Duration::ZERO)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Totals)>> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes a snapshot every [`INTERVAL`], for as long as the task runs.
pub async fn sample(metrics: &'static super::Metrics) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        metrics.recent.keep(Instant::now(), Totals::read(metrics));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(latencies: &[(Duration, u64)]) -> Totals {
        let recorded = Latencies::default();
        for &(took, n) in latencies {
            for _ in 0..n {
                recorded.record(took, false);
            }
        }
        Totals {
            latencies: recorded.read().0,
            ..Totals::default()
        }
    }

    #[test]
    fn buckets_cover_a_microsecond_to_beyond_a_minute() {
        let l = Latencies::default();
        l.record(Duration::from_nanos(1), false);
        l.record(Duration::from_micros(50), false);
        l.record(Duration::from_secs(3600), true);
        let (counts, errors) = l.read();
        assert_eq!((counts[0], counts[BUCKETS - 1], errors), (2, 1, 1));
        assert!(bound(BUCKETS - 1) > 60.0, "{}", bound(BUCKETS - 1));
        // Each bound holds what it names: 1 ms lands in the bucket whose
        // upper bound is the first one at or above 1 ms.
        let l = Latencies::default();
        l.record(Duration::from_millis(1), false);
        let i = l.read().0.iter().position(|&n| n == 1).unwrap();
        assert!(bound(i) >= 0.001 && bound(i - 1) < 0.001, "{i}");
    }

    #[test]
    fn p99_is_within_a_bucket_of_the_truth() {
        // 990 fast requests and 10 slow ones: the 99th percentile is at the
        // edge of the fast ones; 980 + 20 puts it among the slow ones.
        let fast = Duration::from_millis(2);
        let slow = Duration::from_millis(300);
        let edge = requests(&[(fast, 990), (slow, 10)]).since(&Totals::default(), None);
        let p99 = edge.http_p99_ms.unwrap();
        assert!((1.6..=2.5).contains(&p99), "{p99}");
        let tail = requests(&[(fast, 980), (slow, 20)]).since(&Totals::default(), None);
        let p99 = tail.http_p99_ms.unwrap();
        assert!((240.0..=300.0).contains(&p99), "{p99}");
        assert_eq!(tail.http_requests, 1000);
        let none = Totals::default().since(&Totals::default(), None);
        assert_eq!((none.http_requests, none.http_p99_ms), (0, None));
    }

    #[test]
    fn the_last_minute_is_the_difference_with_the_snapshot_a_minute_old() {
        let start = Instant::now();
        let recent = Recent::default();
        let at = |secs| start + Duration::from_secs(secs);
        let with = |traps| Totals {
            traps,
            ..Totals::default()
        };
        // Younger than a minute: everything since the first snapshot.
        recent.keep(at(0), with(0));
        recent.keep(at(5), with(3));
        let young = recent.last_minute(at(7), &with(4));
        assert_eq!((young.traps, young.window_secs), (4, Some(7)));
        // One trap every 5 s for two minutes: 12 in any minute.
        for i in 2..=24 {
            recent.keep(at(i * 5), with(i + 1));
        }
        let minute = recent.last_minute(at(120), &with(25));
        assert_eq!((minute.traps, minute.window_secs), (12, Some(60)));
        // Between snapshots the window stretches to the snapshot before.
        let between = recent.last_minute(at(123), &with(25));
        assert_eq!((between.traps, between.window_secs), (12, Some(63)));
        assert!(recent.lock().len() <= 14, "{}", recent.lock().len());
        // Nothing kept yet: no window.
        let fresh = Recent::default().last_minute(at(0), &with(2));
        assert_eq!((fresh.traps, fresh.window_secs), (2, Some(0)));
    }
}
