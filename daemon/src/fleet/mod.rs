//! What makes many gateways one fleet, built on servers a fleet already has:
//! updates through an OCI registry ([`registry`] carries signed bundles as
//! artifacts, [`follow`] makes a gateway follow a tag), and status over the
//! MQTT broker the devices already use ([`status`]: each gateway keeps a
//! retained message saying what it runs; `gatewayctl fleet status` reads
//! them all).
//!
//! The registry side is the `oci` cargo feature: a build without it parses
//! `[fleet] source` only to refuse it by name.

#[cfg(feature = "oci")]
pub mod follow;
pub mod reference;
#[cfg(feature = "oci")]
pub mod registry;
pub mod settings;
pub mod status;
