//! The executor: "make a fresh, isolated instance of component X for one event".
//!
//! At load every component of the app is compiled (or fetched from the code
//! cache), linked against the host capabilities it was granted, and
//! pre-instantiated. Per event, a trigger asks for a new [`Store`] and
//! instantiates from the prepared [`InstancePre`]: no compiling or linking on
//! the request path. Triggers depend on the executor; the executor knows no
//! trigger.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store, StoreLimitsBuilder};

use crate::app::App;
use crate::engine::Engines;
use crate::engine::cache::{CodeCache, Origin};
use crate::host::allowed_hosts::AllowedHosts;
use crate::host::wasi::WasiTemplate;
use crate::host::{self, Grantee, Grants, HostResources, HostState};

/// Ceilings per instance, matching the pooling allocator's per-component ones.
const MAX_MEMORIES: usize = 32;
const MAX_TABLES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_CORE_INSTANCES: usize = 200;

/// Limits applied to every instance.
#[derive(Clone, Debug)]
pub struct InstanceLimits {
    /// Largest size, in bytes, any one linear memory of an instance may grow to.
    pub max_memory: usize,
}

/// One component, ready to instantiate.
pub struct PreparedComponent {
    pub id: Arc<str>,
    pub pre: InstancePre<HostState>,
    pub code: ComponentCode,
    wasi: WasiTemplate,
    grants: Grants,
    limits: InstanceLimits,
}

impl PreparedComponent {
    /// A fresh store for one instance, with its limits and capabilities.
    pub fn new_store(&self) -> Result<Store<HostState>> {
        // Memory is the limit users set; the others bound what a guest could
        // otherwise grow without limit when instances are allocated on demand
        // (the pool has its own fixed ceilings).
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory)
            .memories(MAX_MEMORIES)
            .tables(MAX_TABLES)
            .table_elements(MAX_TABLE_ELEMENTS)
            .instances(MAX_CORE_INSTANCES)
            .build();
        let state = HostState::new(
            self.id.clone(),
            self.wasi.build()?,
            self.grants.clone(),
            limits,
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Yield to the scheduler at every epoch tick: a busy guest cannot starve
        // other requests, and a deadline that fires can stop it.
        store.epoch_deadline_async_yield_and_update(1);
        store.set_epoch_deadline(1);
        Ok(store)
    }
}

/// Which code a component runs and where it came from, for status reports
/// (the load log line says the same).
#[derive(Clone, Debug)]
pub struct ComponentCode {
    /// e.g. "native aarch64 code", "Pulley interpreter (pulley64)".
    pub runs_on: String,
    /// "cache" (compiled earlier, or shipped in the bundle) or "compiled".
    pub from: &'static str,
    /// Why the component runs on the fallback engine, when it was just
    /// compiled there.
    pub fallback_reason: Option<String>,
}

/// All components of one loaded app.
pub struct Executor {
    components: BTreeMap<String, Arc<PreparedComponent>>,
}

impl Executor {
    /// Compiles (or loads from `cache`), links and pre-instantiates every
    /// component of `app`. `state_dir` holds per-component staged files.
    pub fn load(
        engines: &Engines,
        app: &App,
        cache: &CodeCache,
        state_dir: &Path,
        resources: &HostResources,
        limits: &InstanceLimits,
    ) -> Result<Self> {
        // One linker per engine, built when a component first needs it.
        let mut linkers: Vec<(Engine, wasmtime::component::Linker<HostState>)> = Vec::new();
        // What the capabilities keep for this generation (connection leases:
        // what it opens stays open while it lives).
        let generation = host::Generation::default();
        let mut components = BTreeMap::new();
        for (id, spec) in &app.components {
            let context = || format!("component \"{id}\"");
            let (component, target, origin) =
                cache.load(engines, &spec.source).with_context(context)?;
            let (from, fallback_reason) = match &origin {
                Origin::Cached => ("cache", None),
                Origin::Compiled { fell_back, .. } => ("compiled", fell_back.clone()),
            };
            let code = ComponentCode {
                runs_on: target.to_string(),
                from,
                fallback_reason,
            };
            match origin {
                Origin::Cached => tracing::info!(
                    component = %id,
                    "loaded precompiled code from the cache ({target})"
                ),
                Origin::Compiled {
                    took,
                    fell_back: None,
                } => tracing::info!(
                    component = %id,
                    "compiled {} to {target} in {took:.2?} (cached for the next start)",
                    spec.source.display(),
                ),
                Origin::Compiled {
                    took,
                    fell_back: Some(reason),
                } => tracing::warn!(
                    component = %id,
                    "running on the {target}, slower than native code: {reason}; \
                     compiled {} in {took:.2?} (cached for the next start)",
                    spec.source.display(),
                ),
            }
            let engine = component.engine();
            let linker = match linkers.iter().position(|(e, _)| Engine::same(e, engine)) {
                Some(index) => &linkers[index].1,
                None => {
                    linkers.push((engine.clone(), host::base_linker(engine)?));
                    &linkers.last().expect("just pushed").1
                }
            };
            let pre = host::link_component(linker, &component).with_context(context)?;
            let id: Arc<str> = Arc::from(id.as_str());
            let environment = spec
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let files_dir = state_dir.join("files");
            let wasi = WasiTemplate::new(id.clone(), environment, &spec.files, &files_dir)?;
            let allowed_hosts = Arc::new(
                AllowedHosts::parse(&spec.allowed_outbound_hosts)
                    .with_context(|| format!("component \"{id}\": allowed_outbound_hosts"))?,
            );
            let grantee = Grantee {
                id: &id,
                spec,
                allowed_hosts: &allowed_hosts,
                resources,
            };
            let grants = Grants::for_component(&grantee, &generation)?;
            components.insert(
                id.to_string(),
                Arc::new(PreparedComponent {
                    id,
                    pre,
                    code,
                    wasi,
                    grants,
                    limits: limits.clone(),
                }),
            );
        }
        Ok(Self { components })
    }

    pub fn component(&self, id: &str) -> Option<&Arc<PreparedComponent>> {
        self.components.get(id)
    }

    /// Every component, by id.
    pub fn components(&self) -> impl Iterator<Item = &Arc<PreparedComponent>> {
        self.components.values()
    }
}
