//! The shape every host capability has (Spin's "factors" are the model).
//!
//! A capability is one module whose grant type implements [`Capability`]:
//! - `INTERFACES`: the WIT interfaces it implements, exactly as components
//!   import them (the list of what is *not* implemented, linked as traps, is
//!   derived from these);
//! - `Generation`: what it keeps for one loaded app generation (connection
//!   leases, say), made once per generation;
//! - `grant`: what one component was granted, from its manifest entry and
//!   the process-wide [`HostResources`], cloned cheaply into each instance;
//! - `add_to_linker`: its host functions of the Spin SDK 5 generation
//!   (`fermyon:spin`, plain functions), and `add_async_to_linker`: those of
//!   the SDK 6/7 generation (`async func`s), which only engines for
//!   concurrent calls can link.
//!
//! `host/mod.rs` lists the capabilities once (`capabilities!`); the executor
//! iterates over that list and imports none of them.

use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::Linker;

use super::HostState;
use super::allowed_hosts::AllowedHosts;
use super::key_value::Stores;
use super::mqtt::MqttConnections;
use super::outbound_http::SelfAddress;
use super::redis::RedisConnections;
use crate::app::Component;

pub trait Capability: Clone + Send + Sync + Sized + 'static {
    /// Interfaces implemented, as `package:namespace/interface@version`.
    const INTERFACES: &'static [&'static str];
    /// Kept for one app generation, shared by its components.
    type Generation: Default + Send + Sync + 'static;
    /// What `component` may do.
    fn grant(component: &Grantee<'_>, generation: &Arc<Self::Generation>) -> Result<Self>;
    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()>;
    fn add_async_to_linker(linker: &mut Linker<HostState>) -> Result<()>;
}

/// What the process gives capabilities, for every generation.
#[derive(Clone)]
pub struct HostResources {
    /// The app's key-value stores (opened per generation by the runtime).
    pub stores: Arc<Stores>,
    /// The app's own HTTP listener, for `http://self`.
    pub self_address: SelfAddress,
    /// Process-wide outbound connection pools.
    pub redis: Arc<RedisConnections>,
    pub mqtt: Arc<MqttConnections>,
}

/// One component being granted its capabilities.
pub struct Grantee<'a> {
    pub id: &'a Arc<str>,
    pub spec: &'a Component,
    /// Its `allowed_outbound_hosts`, parsed once for every capability.
    pub allowed_hosts: &'a Arc<AllowedHosts>,
    pub resources: &'a HostResources,
}
