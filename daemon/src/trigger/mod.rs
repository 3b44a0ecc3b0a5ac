//! Triggers turn outside events into component calls through the executor.
//! One module per trigger; none of them knows about host capabilities.

pub mod http;
