//! `gatewayd` runs Spin WebAssembly apps on small Linux boards.
//!
//! An app is a `spin.toml` manifest plus components. Data flows one way:
//!
//! ```text
//! trigger ──> executor ──> component ──> host capability
//! (trigger/)  (executor)   (wasm)        (host/)
//! ```
//!
//! The map:
//! - [`app`] parses and validates the manifest into an [`app::App`], and
//!   resolves its variables.
//! - [`engine`] owns the wasmtime engines (native code for this CPU or
//!   Pulley, plus a Pulley fallback; pooling, epochs), compiling, and the
//!   compiled-code cache.
//! - [`executor`] compiles, links and pre-instantiates each component, and
//!   makes a fresh `Store` per event.
//! - [`host`] holds one module per capability a component can be granted;
//!   each implements [`host::Capability`], and one list in `host/mod.rs`
//!   names them.
//! - [`trigger`] turns events (HTTP requests, Redis and MQTT messages) into
//!   component calls; it knows the executor, never a capability.
//! - [`runtime`] is the one wiring layer: [`runtime::RuntimeOptions`] (from
//!   `up`'s flags or `serve`'s config file), the process-wide
//!   [`runtime::Runtime`], an app made runnable ([`runtime::Loaded`]), and
//!   the running app's triggers with their one owner ([`runtime::Triggers`]).
//! - [`up`] and [`serve`] are the two front doors; [`cli`] and [`config`]
//!   read their arguments and config file.
//! - [`update`] verifies, unpacks and applies signed bundles, keeps the
//!   generations, rolls back; it hands a loaded app to the triggers' owner
//!   and knows no trigger.
//! - [`admin`] serves the admin API (unix socket, optional HTTPS); its
//!   messages ([`admin::api`]) are shared with gatewayctl.
//! - [`metrics`] counts what happens (requests, instances, messages,
//!   updates) and serves it to Prometheus.
//! - [`fuzz`] feeds arbitrary bytes to each parser of outside input (for
//!   `fuzz/` and the corpus replay test).
//! - [`logging`] formats log lines (text, journald priorities, JSON);
//!   [`manpages`] writes man pages from the command-line definitions.
//! - [`systemd`] speaks sd_notify and feeds the watchdog while every heart
//!   of [`liveness`] beats; [`shutdown`] is graceful shutdown as a
//!   value; [`state_dir`], [`runtime_config`] and [`tls`] are what their
//!   names say.

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod executor;
pub mod fleet;
pub mod fuzz;
pub mod host;
pub mod liveness;
pub mod logging;
pub mod manpages;
pub mod metrics;
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
