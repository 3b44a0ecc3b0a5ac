//! Triggers turn outside events into component calls through the executor.
//! One module per trigger; none of them knows about host capabilities.
//! The pub/sub triggers share `dispatch` (concurrency, per-key order,
//! backpressure) and `reconnect` (backoff, state-change logs).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::shutdown::Shutdown;

mod dispatch;
pub mod http;
mod instance;
pub mod mqtt;
pub mod reconnect;
pub mod redis;
mod retry;

/// What the daemon gives every pub/sub trigger.
#[derive(Clone)]
pub struct PubSubContext {
    /// The process-wide instance slots, shared with HTTP.
    pub instances: Arc<Semaphore>,
    /// Deadline of one attempt at one message.
    pub deadline: Option<Duration>,
    pub shutdown: Shutdown,
    /// How long in-flight messages may take after `shutdown`.
    pub drain_timeout: Duration,
    /// For `mqtts://` brokers.
    pub tls: Arc<rustls::ClientConfig>,
}
