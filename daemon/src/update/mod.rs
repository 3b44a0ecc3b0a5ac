//! Signed app bundles: the format (`bundle`), reading one safely — signature
//! and every file's hash checked before anything is written, then unpacked
//! under limits (`reader`) — and the keys a gateway trusts (`keys`).
//! `gatewayctl` writes bundles with the same `bundle` types.

pub mod bundle;
pub mod keys;
pub mod reader;
