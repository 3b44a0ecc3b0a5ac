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
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::app::App;
use crate::engine::budget::InstanceBudget;
use crate::engine::cache::{CodeCache, Origin};
use crate::engine::{Calls, Engines};
use crate::host::allowed_hosts::AllowedHosts;
use crate::host::wasi::WasiTemplate;
use crate::host::{self, Grantee, Grants, HostResources, HostState};
use crate::metrics::instances::ComponentMetrics;

/// Limits applied to every instance.
#[derive(Clone, Debug)]
pub struct InstanceLimits {
    /// Bytes all linear memories and tables of one instance may use together.
    pub max_memory: usize,
}

/// One component, ready to instantiate.
pub struct PreparedComponent {
    pub id: Arc<str>,
    pub pre: InstancePre<HostState>,
    /// How its engine calls it: plain (WASI 0.2) or through the event loop.
    pub calls: Calls,
    pub code: ComponentCode,
    wasi: WasiTemplate,
    grants: Grants,
    limits: InstanceLimits,
    /// This component's instance counters.
    pub metrics: ComponentMetrics,
}

impl PreparedComponent {
    /// A fresh store for one instance, with its limits and capabilities.
    pub fn new_store(&self) -> Result<Store<HostState>> {
        self.metrics.created.inc();
        let limits =
            InstanceBudget::new(self.limits.max_memory, self.metrics.memory_refused.clone());
        let state = HostState::new(
            self.id.clone(),
            self.wasi.build()?,
            self.grants.clone(),
            limits,
        );
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limits);
        // Yield to the scheduler at every epoch tick, so a busy guest cannot
        // starve other requests and a deadline that fires can stop it. Through
        // tokio's own yield: it has the runtime poll its timers and sockets
        // before the guest runs on. wasmtime's plain yield wakes the task at
        // once, and tokio polls its driver only every 61 task polls: a
        // looping guest then held back deadlines and its thread's other
        // connections for 61 ticks (~0.6 s).
        store.epoch_deadline_callback(|_| {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
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
        let mut compiled_any = false;
        for (id, spec) in &app.components {
            let context = || format!("component \"{id}\"");
            let (component, slot, origin) =
                cache.load(engines, &spec.source).with_context(context)?;
            let target = &slot.target;
            let (from, fallback_reason) = match &origin {
                Origin::Cached => ("cache", None),
                Origin::Compiled { fell_back, .. } => {
                    compiled_any = true;
                    ("compiled", fell_back.clone())
                }
            };
            let metrics = &crate::metrics::global().instances;
            metrics.loaded(match &origin {
                Origin::Cached => None,
                Origin::Compiled { took, .. } => Some(*took),
            });
            let code = ComponentCode {
                runs_on: target.to_string(),
                from,
                fallback_reason,
            };
            let calls = slot.calls;
            match origin {
                Origin::Cached => tracing::info!(
                    component = %id,
                    "loaded precompiled code from the cache ({target}, {calls})"
                ),
                Origin::Compiled {
                    took,
                    fell_back: None,
                    reuse,
                } => tracing::info!(
                    component = %id,
                    "compiled {} to {target} ({calls}) in {took:.2?}{} (cached for the next start)",
                    spec.source.display(),
                    reused_functions(reuse),
                ),
                Origin::Compiled {
                    took,
                    fell_back: Some(reason),
                    ..
                } => tracing::warn!(
                    component = %id,
                    "running on the {target} ({calls}), slower than native code: {reason}; \
                     compiled {} in {took:.2?} (cached for the next start)",
                    spec.source.display(),
                ),
            }
            let engine = component.engine();
            let linker = match linkers.iter().position(|(e, _)| Engine::same(e, engine)) {
                Some(index) => &linkers[index].1,
                None => {
                    linkers.push((engine.clone(), host::base_linker(engine, slot.calls)?));
                    &linkers.last().expect("just pushed").1
                }
            };
            let pre = host::link_component(linker, &component).with_context(context)?;
            let spec_id = id.as_str();
            let id: Arc<str> = Arc::from(spec_id);
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
                    calls,
                    code,
                    wasi,
                    grants,
                    limits: limits.clone(),
                    metrics: metrics.component(spec_id),
                }),
            );
        }
        if compiled_any {
            crate::engine::return_freed_memory();
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

    /// The staged file trees the components' instances see.
    pub fn staged_files(&self) -> impl Iterator<Item = &Path> {
        self.components.values().filter_map(|c| c.wasi.root())
    }
}

/// ", reusing N of M functions compiled before" when the function cache
/// gave something, for the line that says a component was compiled.
fn reused_functions(reuse: Option<crate::engine::function_cache::Reuse>) -> String {
    match reuse {
        Some(reuse) if reuse.reused > 0 => format!(
            ", reusing {} of its {} functions compiled before",
            reuse.reused, reuse.functions
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineSettings;
    use crate::host::key_value::{KeyValueLimits, Stores};
    use crate::host::mqtt::MqttConnections;

    /// A component that imports an interface no capability implements and
    /// exports `run`, which calls it.
    const CALLS_THE_UNIMPLEMENTED: &str = r#"
        (component
          (import "wasi:keyvalue/store@0.2.0-draft2" (instance $kv (export "ping" (func))))
          (core func $ping (canon lower (func $kv "ping")))
          (core module $m
            (import "kv" "ping" (func $ping))
            (func (export "run") call $ping))
          (core instance $i (instantiate $m (with "kv" (instance (export "ping" (func $ping))))))
          (func (export "run") (canon lift (core func $i "run"))))
    "#;

    /// Writes an app of one component `c` (the WAT above).
    fn app_folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let wasm = wat::parse_str(CALLS_THE_UNIMPLEMENTED).unwrap();
        std::fs::write(dir.path().join("c.wasm"), wasm).unwrap();
        std::fs::write(
            dir.path().join("spin.toml"),
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n\
             [component.c]\nsource = \"c.wasm\"\n",
        )
        .unwrap();
        dir
    }

    /// Loads the app in `dir` as a generation would, its code cache in `dir`.
    fn load(dir: &Path, max_memory: usize) -> Executor {
        let app = crate::app::load(&dir.join("spin.toml")).unwrap();
        let (engines, _) = crate::engine::build(&EngineSettings::defaults()).unwrap();
        let cache = CodeCache::new(&engines, dir.join("cache"), 0).unwrap();
        let stores = Stores::open(
            &dir.join("kv"),
            &Default::default(),
            KeyValueLimits::default(),
        )
        .unwrap();
        let resources = HostResources {
            stores: Arc::new(stores),
            self_address: Default::default(),
            redis: Default::default(),
            mqtt: Arc::new(MqttConnections::new(
                crate::tls::client_config(&[]).unwrap(),
            )),
        };
        let limits = InstanceLimits { max_memory };
        Executor::load(&engines, &app, &cache, dir, &resources, &limits).unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unimplemented_import_links_and_traps_naming_itself() {
        let dir = app_folder();
        let executor = load(dir.path(), 16 << 20);
        let component = executor.component("c").unwrap();
        assert_eq!(component.code.from, "compiled");
        let mut store = component.new_store().unwrap();
        let instance = component.pre.instantiate_async(&mut store).await.unwrap();
        let run = instance
            .get_typed_func::<(), ()>(&mut store, "run")
            .unwrap();
        let trap = run.call_async(&mut store, ()).await.unwrap_err();
        let text = format!("{trap:?}");
        assert!(
            text.contains("wasi:keyvalue/store@0.2.0-draft2#ping")
                && text.contains("not implemented by gatewayd"),
            "{text}"
        );
    }

    /// A second load of the same component (the next generation, a restart)
    /// takes its code from the cache; every store is the component's own.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_load_uses_the_cache_and_stores_are_fresh() {
        let dir = app_folder();
        let first = load(dir.path(), 16 << 20);
        assert_eq!(first.component("c").unwrap().code.from, "compiled");
        let second = load(dir.path(), 16 << 20);
        let component = second.component("c").unwrap();
        assert_eq!(component.code.from, "cache");
        let (a, b) = (
            component.new_store().unwrap(),
            component.new_store().unwrap(),
        );
        assert_eq!(&*a.data().component_id, "c");
        assert_eq!(&*b.data().component_id, "c");
    }
}
