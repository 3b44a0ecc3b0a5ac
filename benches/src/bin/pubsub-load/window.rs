//! The measuring loop of `pubsub-load`, independent of the transport: keeps
//! `window` messages outstanding (one per slot), matches replies to messages
//! by sequence number, records latencies, and counts what went wrong. Every
//! wait is bounded: a message without a reply within `timeout` is counted
//! lost and its slot moves on.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tokio::sync::mpsc;

/// Payloads are `bench <seq>`: no prefix the test components give a meaning
/// to (`trap`, `fail`, `sleep:`).
const TAG: &str = "bench ";

/// A reply as the receiving task saw it, stamped on arrival.
pub struct Reply {
    pub payload: Vec<u8>,
    pub at: Instant,
}

/// Sends one message; `slot` (0..window) picks its topic where that matters.
pub trait Transport {
    fn send(&mut self, slot: usize, payload: Vec<u8>) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Default)]
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// No reply within the timeout.
    pub lost: usize,
    /// Replies for a message already answered.
    pub duplicates: usize,
    /// Replies that came after their message was counted lost.
    pub late: usize,
    /// Replies that were not ours (wrong prefix or unparsable).
    pub foreign: usize,
}

pub struct Window<T> {
    transport: T,
    replies: mpsc::UnboundedReceiver<Reply>,
    /// What a reply starts with before the echoed payload (`v7:`, or empty).
    reply_prefix: Vec<u8>,
    window: usize,
    timeout: Duration,
    next_seq: u64,
    /// Sequence number -> (slot, sent at).
    outstanding: HashMap<u64, (usize, Instant)>,
    answered: HashSet<u64>,
    given_up: HashSet<u64>,
}

enum Verdict {
    Matched(usize, Duration),
    Duplicate,
    Late,
    Foreign,
}

impl<T: Transport> Window<T> {
    pub fn new(
        transport: T,
        replies: mpsc::UnboundedReceiver<Reply>,
        reply_prefix: &str,
        window: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            transport,
            replies,
            reply_prefix: reply_prefix.as_bytes().to_vec(),
            window: window.max(1),
            timeout,
            next_seq: 0,
            outstanding: HashMap::new(),
            answered: HashSet::new(),
            given_up: HashSet::new(),
        }
    }

    /// Sends `count` messages, `window` at a time; stops sending early once
    /// more than `max_lost` were lost (the caller reports it).
    pub async fn run(&mut self, count: usize, max_lost: usize) -> Result<Outcome> {
        let mut outcome = Outcome::default();
        let started = Instant::now();
        let mut sent = 0;
        for slot in 0..self.window.min(count) {
            self.send(slot).await?;
            sent += 1;
        }
        while let Some(deadline) = self.outstanding.values().map(|(_, at)| *at).min() {
            let deadline = deadline + self.timeout;
            let freed = match tokio::time::timeout_at(deadline.into(), self.replies.recv()).await {
                Ok(Some(reply)) => match self.classify(reply, &mut outcome) {
                    Some(slot) => vec![slot],
                    None => continue,
                },
                Ok(None) => bail!("the reply stream ended"),
                Err(_) => self.expire(&mut outcome),
            };
            for slot in freed {
                if sent < count && outcome.lost <= max_lost {
                    self.send(slot).await?;
                    sent += 1;
                }
            }
        }
        outcome.elapsed = started.elapsed();
        Ok(outcome)
    }

    /// Keeps listening for `period` after a run, so that duplicates and late
    /// replies still in flight are counted.
    pub async fn linger(&mut self, period: Duration, outcome: &mut Outcome) {
        let until = tokio::time::Instant::now() + period;
        while let Ok(Some(reply)) = tokio::time::timeout_at(until, self.replies.recv()).await {
            self.classify(reply, outcome);
        }
    }

    async fn send(&mut self, slot: usize) -> Result<()> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outstanding.insert(seq, (slot, Instant::now()));
        self.transport
            .send(slot, format!("{TAG}{seq}").into_bytes())
            .await
    }

    /// Returns the slot a matched reply frees.
    fn classify(&mut self, reply: Reply, outcome: &mut Outcome) -> Option<usize> {
        let verdict = match self.sequence(&reply.payload) {
            None => Verdict::Foreign,
            Some(seq) => match self.outstanding.remove(&seq) {
                Some((slot, at)) => {
                    self.answered.insert(seq);
                    Verdict::Matched(slot, reply.at.saturating_duration_since(at))
                }
                None if self.given_up.remove(&seq) => {
                    self.answered.insert(seq);
                    Verdict::Late
                }
                None if self.answered.contains(&seq) => Verdict::Duplicate,
                None => Verdict::Foreign,
            },
        };
        match verdict {
            Verdict::Matched(slot, latency) => {
                outcome.latencies.push(latency);
                return Some(slot);
            }
            Verdict::Duplicate => outcome.duplicates += 1,
            Verdict::Late => outcome.late += 1,
            Verdict::Foreign => outcome.foreign += 1,
        }
        None
    }

    /// Gives up on every message past its timeout; returns their slots.
    fn expire(&mut self, outcome: &mut Outcome) -> Vec<usize> {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, (_, at))| *at + self.timeout <= now)
            .map(|(seq, _)| *seq)
            .collect();
        let mut slots = Vec::new();
        for seq in expired {
            if let Some((slot, _)) = self.outstanding.remove(&seq) {
                self.given_up.insert(seq);
                outcome.lost += 1;
                slots.push(slot);
            }
        }
        slots
    }

    fn sequence(&self, payload: &[u8]) -> Option<u64> {
        let rest = payload.strip_prefix(self.reply_prefix.as_slice())?;
        let rest = rest.strip_prefix(TAG.as_bytes())?;
        std::str::from_utf8(rest).ok()?.parse().ok()
    }
}

/// The `q`-quantile (0..=1) of sorted latencies, nearest rank.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
