//! Triggers turn outside events into component calls through the executor.
//! One module per trigger; none of them knows about host capabilities.
//! The pub/sub triggers share `dispatch` (concurrency, per-key order,
//! backpressure) and `reconnect` (backoff, state-change logs).

mod dispatch;
pub mod http;
mod instance;
pub mod mqtt;
pub mod reconnect;
pub mod redis;
mod retry;
