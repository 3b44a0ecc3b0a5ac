//! Host capabilities: what a component can reach outside its sandbox.
//!
//! Each capability is one module with the same shape (the Spin "factors"
//! idea, see [`capability::Capability`]): the interfaces it implements, what
//! the manifest granted a component, what it keeps per app generation, and
//! its host functions. They are listed once, in `capabilities!` below; a new
//! capability is a new module and one line there. Capabilities know nothing
//! about triggers.
//!
//! Imports that no capability provides are linked as traps (see
//! [`link_component`]), so SDK components that import the whole Spin platform
//! world still instantiate and only fail if they call what is missing.

pub mod allowed_hosts;
mod bindings;
pub mod capability;
pub mod connections;
pub mod key_value;
pub mod log_stream;
pub mod mqtt;
pub mod outbound_http;
pub mod redis;
mod unimplemented;
pub mod variables;
pub mod wasi;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use wasmtime::Engine;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};

use crate::engine::Calls;
use crate::engine::budget::InstanceBudget;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use capability::{Capability, Grantee, HostResources};

/// Declares the capabilities: `field: GrantType` each. Generates [`Grants`]
/// (one field per capability, in every instance), [`Generation`] (what each
/// keeps per app generation), the linking of all of them, and the list of
/// interfaces they implement.
macro_rules! capabilities {
    ($($field:ident: $grant:ty),* $(,)?) => {
        /// What one component was granted, one field per capability, cloned
        /// cheaply into every instance.
        #[derive(Clone)]
        pub struct Grants {
            $(pub $field: $grant,)*
        }

        /// What the capabilities keep for one app generation.
        #[derive(Default)]
        pub struct Generation {
            $($field: Arc<<$grant as Capability>::Generation>,)*
        }

        impl Grants {
            /// Every capability's grant for `component`.
            pub fn for_component(component: &Grantee<'_>, generation: &Generation) -> Result<Self> {
                Ok(Self {
                    $($field: <$grant as Capability>::grant(component, &generation.$field)
                        .with_context(|| format!("component \"{}\": {}", component.id, stringify!($field)))?,)*
                })
            }
        }

        fn link_capabilities(linker: &mut Linker<HostState>, calls: Calls) -> Result<()> {
            $(<$grant as Capability>::add_to_linker(linker)
                .with_context(|| format!("linking {}", stringify!($field)))?;)*
            if calls == Calls::Concurrent {
                $(<$grant as Capability>::add_async_to_linker(linker)
                    .with_context(|| format!("linking {} (async)", stringify!($field)))?;)*
            }
            Ok(())
        }

        /// Every interface a capability implements.
        fn capability_interfaces() -> impl Iterator<Item = &'static str> {
            [$(<$grant as Capability>::INTERFACES),*].into_iter().flatten().copied()
        }
    };
}

capabilities! {
    outbound_http: outbound_http::OutboundHttp,
    variables: variables::Variables,
    key_value: key_value::KeyValue,
    redis: redis::Redis,
    mqtt: mqtt::Mqtt,
}

/// The data of one component instance's `Store`: everything the host keeps for
/// one call (or, for reused WASI 0.3 instances, one instance's lifetime).
pub struct HostState {
    pub component_id: Arc<str>,
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    grants: Grants,
    pub(crate) limits: InstanceBudget,
    /// Keeps the epoch ticking while this store exists.
    _ticking: crate::engine::Ticking,
}

impl HostState {
    pub fn new(
        component_id: Arc<str>,
        wasi: WasiCtx,
        grants: Grants,
        limits: InstanceBudget,
    ) -> Self {
        Self {
            component_id,
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            grants,
            limits,
            _ticking: crate::engine::Ticking::start(),
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.grants.outbound_http,
        }
    }
}

/// The linker with every capability the gateway implements for an engine
/// making `calls`, shared by all components of all apps (built once per
/// engine). WASI 0.3 and the async generation of Spin's interfaces need
/// concurrent calls: a plain engine's components cannot import them anyway.
pub fn base_linker(engine: &Engine, calls: Calls) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    // WASI 0.2: the whole CLI world (filesystem, clocks, random, stdio, and
    // sockets, which the per-instance WasiCtx denies), plus outbound wasi:http.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking WASI 0.2")?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)
        .context("linking wasi:http 0.2")?;
    if calls == Calls::Concurrent {
        // WASI 0.3 for components built with Spin SDK 7 / wasip3.
        wasmtime_wasi::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking WASI 0.3")?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("linking wasi:http 0.3")?;
    }
    link_capabilities(&mut linker, calls)?;
    Ok(linker)
}

/// Resolves a component's imports against `base`, turning every import the
/// gateway does not implement into a function that traps with a message
/// naming it, and pre-instantiates it so no linking happens per request.
pub fn link_component(
    base: &Linker<HostState>,
    component: &Component,
) -> Result<InstancePre<HostState>> {
    let mut linker = base.clone();
    unimplemented::stub_missing_imports(&mut linker, component.engine(), component)?;
    Ok(linker.instantiate_pre(component)?)
}
