//! The end-to-end tests: `gatewayd` and `gatewayctl` as processes, real HTTP
//! over loopback sockets, real redis-server and mosquitto brokers started on
//! free ports, real minisign signatures. One test binary whose modules are
//! the areas, so the harness is compiled and the binary linked once.
//!
//! `cargo test --workspace` runs them all except `qemu::`, which needs the
//! board builds (`cross/test.sh` builds those and runs it), and `packages::`,
//! which needs the packages (tests/all.sh builds those and runs it).

mod harness;

mod boards;
mod bundle;
mod cli;
mod faults;
mod fleet;
mod fleet_registry;
mod fuzz_corpus;
mod guide;
mod http;
mod key_value;
mod metrics;
mod mqtt;
mod mqtt_trigger;
mod packages;
mod packaging;
mod qemu;
mod redis;
mod redis_trigger;
mod service_config;
mod service_limits;
mod startup_order;
mod systemd;
mod templates;
mod update;
mod update_pubsub;
mod variables;
