//! Reconnecting to a broker forever, politely: capped exponential backoff with
//! jitter, and a log line per state change (lost, back) rather than per retry.

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::metrics::pubsub::TriggerMetrics;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(30);

/// The connection state of one trigger's broker link.
pub struct Reconnect {
    what: String,
    delay: Duration,
    failures: u32,
    ever_connected: bool,
    down_since: Option<Instant>,
    metrics: TriggerMetrics,
    /// Whether this link counts in the trigger's `trigger_connected` gauge.
    counted_up: bool,
}

impl Reconnect {
    /// `what` names the link in logs, e.g. `MQTT trigger "t" (mqtt://h:1883)`.
    /// `metrics` are the trigger's: its connection state and reconnects.
    pub fn new(what: String, metrics: TriggerMetrics) -> Self {
        Self {
            what,
            delay: FIRST_DELAY,
            failures: 0,
            ever_connected: false,
            down_since: None,
            metrics,
            counted_up: false,
        }
    }

    fn count_up(&mut self, up: bool) {
        if up != self.counted_up {
            if up {
                self.metrics.connected.inc();
            } else {
                self.metrics.connected.dec();
            }
            self.counted_up = up;
        }
    }

    /// The link is up (again).
    pub fn connected(&mut self) {
        self.count_up(true);
        match self.down_since.take() {
            Some(since) if self.ever_connected => tracing::info!(
                "{}: reconnected after {:.1?} ({} failed attempts)",
                self.what,
                since.elapsed(),
                self.failures
            ),
            _ => tracing::info!("{}: connected", self.what),
        }
        self.ever_connected = true;
        self.failures = 0;
        self.delay = FIRST_DELAY;
    }

    /// The link failed or could not be made: logs the change of state once,
    /// and returns how long to wait before the next attempt.
    pub fn failed(&mut self, error: &dyn Display) -> Duration {
        self.count_up(false);
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            self.metrics.reconnects.inc();
            if self.ever_connected {
                tracing::warn!("{}: connection lost ({error}); reconnecting", self.what);
            } else {
                tracing::warn!("{}: cannot connect ({error}); retrying", self.what);
            }
        } else {
            tracing::debug!(
                "{}: attempt {} failed: {error}",
                self.what,
                self.failures + 1
            );
        }
        self.failures += 1;
        let delay = jitter(self.delay);
        self.delay = (self.delay * 2).min(MAX_DELAY);
        delay
    }
}

impl Drop for Reconnect {
    /// A stopped trigger's link is no longer up.
    fn drop(&mut self) {
        self.count_up(false);
    }
}

/// `address` without its credentials (`redis://:secret@h:6379` -> `redis://h:6379`),
/// for logs.
pub fn redact(address: &str) -> String {
    match address.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, path)) => format!("{scheme}://{}/{path}", host_of(authority)),
            None => format!("{scheme}://{}", host_of(rest)),
        },
        None => address.to_string(),
    }
}

fn host_of(authority: &str) -> &str {
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// `delay` ± 20%, so that gateways cut off together do not return together.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.8 + f64::from(nanos % 1000) / 1000.0 * 0.4;
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redact("redis://:pw@h:6379/0"), "redis://h:6379/0");
        assert_eq!(redact("mqtt://u:p@h:1883"), "mqtt://h:1883");
        assert_eq!(redact("mqtt://h"), "mqtt://h");
    }

    #[test]
    fn delays_grow_to_the_cap_and_reset() {
        let mut r = Reconnect::new("test".into(), TriggerMetrics::default());
        let first = r.failed(&"down");
        assert!(first <= FIRST_DELAY.mul_f64(1.2) && first >= FIRST_DELAY.mul_f64(0.8));
        let mut last = first;
        for _ in 0..20 {
            last = r.failed(&"down");
        }
        assert!(last <= MAX_DELAY.mul_f64(1.2) && last >= MAX_DELAY.mul_f64(0.8));
        r.connected();
        assert!(r.failed(&"down") <= FIRST_DELAY.mul_f64(1.2));
    }
}
