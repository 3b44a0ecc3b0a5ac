#![no_main]
//! `gatewayd::fuzz::allowed_hosts` on arbitrary bytes (see `daemon/src/fuzz.rs`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatewayd::fuzz::allowed_hosts(data));
