//! What makes many gateways one fleet, built on servers a fleet already has.
//! Today: status over the MQTT broker the devices already use ([`status`]);
//! each gateway keeps a retained message saying what it runs, and
//! `gatewayctl fleet status` reads them all.

pub mod settings;
pub mod status;
