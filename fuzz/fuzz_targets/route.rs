#![no_main]
//! `gatewayd::fuzz::route` on arbitrary bytes (see `daemon/src/fuzz.rs`).
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatewayd::fuzz::route(data));
