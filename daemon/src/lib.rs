//! `gatewayd` runs Spin WebAssembly apps on small Linux boards.
//!
//! An app is a `spin.toml` manifest plus components. Data flows one way:
//!
//! ```text
//! trigger ──> executor ──> component ──> host capability
//! (trigger/)  (executor)   (wasm)        (host/)
//! ```
//!
//! - [`app`] parses and validates the manifest into an [`app::App`].
//! - [`engine`] owns the wasmtime engines (native code for this CPU or Pulley,
//!   plus a Pulley fallback; pooling, epochs), compiling, and the compiled-code
//!   cache.
//! - [`executor`] compiles, links and pre-instantiates each component, and
//!   makes a fresh `Store` per event.
//! - [`host`] holds one module per capability a component can be granted.
//! - [`trigger`] turns events (HTTP requests) into component calls.
//! - [`up`] wires these together for `gatewayd up`; [`cli`] parses arguments.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod executor;
pub mod host;

pub mod runtime;
pub mod runtime_config;
pub mod serve;
pub mod shutdown;
pub mod state_dir;
pub mod systemd;
pub mod tls;
pub mod trigger;
pub mod up;
pub mod update;
