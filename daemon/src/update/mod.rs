//! Signed app bundles: the format (`bundle`), reading one safely — signature
//! and every file's hash checked before anything is written, then unpacked
//! under limits (`reader`) — the keys a gateway trusts (`keys`), and the
//! generations of installed apps in the state dir (`generations`), and code
//! precompiled for boards that a bundle may carry (`shipped_code`).
//! `gatewayctl` writes bundles with the same `bundle` types.

pub mod bundle;
pub mod controller;
pub mod generations;

pub mod keys;
pub mod reader;
mod runtime_only;
pub mod shipped_code;
