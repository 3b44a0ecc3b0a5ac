//! The wasmtime engines of the process and how they are configured.
//!
//! Every component runs on a primary engine: native code from Cranelift for
//! this CPU, or the Pulley interpreter where Cranelift has no backend (armv7).
//! On 64-bit machines Pulley engines take the components Cranelift crashes on
//! (see [`compile`]). Each target has two engines, one per call style
//! ([`Calls`]): plain for WASI 0.2 components, concurrent for those built on
//! the component model's async ABI. All have the component model, async host
//! calls on fibers and epoch interruption for deadlines. The primary engines
//! use the pooling instance allocator (which makes a fresh instance per
//! request cheap) when the machine can reserve its address space, and fall
//! back to on-demand allocation, saying why.
//!
//! A runtime-only build (without the `compiler` feature: no Cranelift) has the
//! same engines but cannot compile: it loads code precompiled for it on a
//! build host, shipped in bundles (`gatewayctl bundle --target`), and
//! [`compile`] says so for anything else.

pub mod budget;
pub mod cache;
pub mod calls;
pub mod compile;
mod epoch;
pub mod function_cache;
pub mod profile;
pub mod target;

use std::time::Duration;

use anyhow::{Context as _, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use calls::Calls;
pub use epoch::{EpochTicker, Ticking};
pub use profile::CodeProfile;
pub use target::{Arch, CodeTarget};

/// How often the epoch ticks: the granularity of request deadlines, and how
/// often a running guest yields to the scheduler. With 10 ms, a request on a
/// thread with one looping guest waited ~14 ms at the median and 44 ms at p99
/// (one slice per step); with 2 ms, 4 and 10 ms (`benches/attacks.sh`).
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// The wasmtime release compiled code must come from (the workspace pins it;
/// a test checks Cargo.lock agrees). Part of the code cache's keys.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Whether this build can compile components (the `compiler` feature).
pub const CAN_COMPILE: bool = cfg!(feature = "compiler");

/// Bytes of each recycled memory slot kept resident (reset in place).
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// Bytes of each recycled table slot kept resident.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;

/// Whether to use the pooling allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pooling {
    /// Use it if the machine can reserve the address space it needs.
    Auto,
    /// Always use it; fail at start-up if it cannot be set up.
    On,
    /// Allocate every instance's memory on demand.
    Off,
}

/// Engine knobs that come from the command line or the config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// Largest linear memory (bytes) one instance may grow to.
    pub max_instance_memory: u64,
    /// Component instances that may be alive at once with the pooling allocator.
    pub max_instances: u32,
    pub pooling: Pooling,
    /// Recently freed pool slots kept warm (about 1 MiB resident each) so the
    /// next instance starts without page faults.
    pub warm_slots: u32,
    pub profile: CodeProfile,
    /// Bytes of compiled functions kept for later compiles (0: none), see
    /// [`function_cache`].
    pub function_cache_size: u64,
}

impl EngineSettings {
    /// The defaults for this machine.
    pub fn defaults() -> Self {
        Self::defaults_for(Arch::host())
    }

    /// The defaults for a machine of `arch`. Boards other than x86_64 keep
    /// fewer warm slots: 16 MiB resident rather than 64 MiB, which matters
    /// in 256 MiB of RAM.
    pub fn defaults_for(arch: Arch) -> Self {
        Self {
            max_instance_memory: 128 << 20,
            max_instances: 256,
            pooling: Pooling::Auto,
            warm_slots: if arch == Arch::X86_64 { 64 } else { 16 },
            profile: CodeProfile::default_for(arch),
            function_cache_size: function_cache::DEFAULT_SIZE,
        }
    }
}

/// One engine and the code it makes: for a target, with a call style.
pub struct EngineSlot {
    pub engine: Engine,
    pub target: CodeTarget,
    pub calls: Calls,
}

/// The engines of the process.
pub struct Engines {
    /// In order of preference: the primary target's plain and concurrent
    /// engines, then the fallback's (64-bit machines only).
    slots: Vec<EngineSlot>,
    /// The code this machine runs natively (or Pulley on armv7).
    pub primary_target: CodeTarget,
    /// For components Cranelift cannot compile (64-bit machines only).
    pub fallback_target: Option<CodeTarget>,
    /// The code-shaping settings of every engine. Its `cpu_features` are
    /// what native code may use beyond what wasmtime detects (or,
    /// precompiling, beyond the baseline).
    pub profile: CodeProfile,
}

impl Engines {
    /// Engines producing code for `target` with `profile`, for precompiling
    /// on a build host: nothing is instantiated, so no allocator settings.
    pub fn for_precompiling(target: CodeTarget, profile: &CodeProfile) -> Result<Engines> {
        let fallback_target = target.fallback();
        let mut slots = unpooled_slots(&target, profile)?;
        if let Some(pulley) = &fallback_target {
            slots.extend(unpooled_slots(pulley, profile)?);
        }
        Ok(Engines {
            slots,
            primary_target: target,
            fallback_target,
            profile: profile.clone(),
        })
    }

    /// A new engine making the same code for `target` and `calls` as this
    /// process's engine for them, to compile with and drop (see [`compile`]).
    /// Allocation settings do not shape code, so the pooled engine loads what
    /// it makes.
    /// With `functions`, Cranelift reuses the functions it finds there and
    /// adds those it compiles.
    #[cfg(feature = "compiler")]
    pub fn compiling_engine(
        &self,
        target: &CodeTarget,
        calls: Calls,
        functions: Option<std::sync::Arc<function_cache::FunctionCache>>,
    ) -> Result<Engine> {
        let mut config = self.profile.wasmtime_config(target, calls)?;
        if let Some(functions) = functions {
            config.enable_incremental_compilation(functions)?;
        }
        Engine::new(&config)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("creating a compiling engine for {target} ({calls})"))
    }

    /// Every engine, in order of preference.
    pub fn all(&self) -> impl Iterator<Item = &EngineSlot> {
        self.slots.iter()
    }

    /// The engine for `target` and `calls`.
    pub fn slot(&self, target: &CodeTarget, calls: Calls) -> Option<&EngineSlot> {
        self.slots
            .iter()
            .find(|slot| &slot.target == target && slot.calls == calls)
    }
}

/// Builds this machine's engines; the returned string describes them.
pub fn build(settings: &EngineSettings) -> Result<(Engines, String)> {
    let target = CodeTarget::host();
    let mut slots = Vec::new();
    let mut allocators = Vec::new();
    for calls in Calls::ALL {
        let (engine, allocator) = build_primary(settings, &target, calls)?;
        slots.push(EngineSlot {
            engine,
            target: target.clone(),
            calls,
        });
        allocators.push(allocator);
    }
    allocators.dedup();
    let fallback_target = target.fallback();
    if let Some(pulley) = &fallback_target {
        // On demand: the fallback engines are rarely used, and more pools
        // would reserve more address space.
        slots.extend(unpooled_slots(pulley, &settings.profile)?);
    }
    let mut how = format!("{target}, {}", allocators.join(" / "));
    match &fallback_target {
        Some(pulley) if CAN_COMPILE => how.push_str(&format!(
            "; components Cranelift cannot compile run on the {pulley}"
        )),
        Some(pulley) => how.push_str(&format!("; code precompiled for the {pulley} runs too")),
        None => {}
    }
    if !CAN_COMPILE {
        how.push_str(&format!(
            "; runtime only: cannot compile, runs code precompiled for {} \
             (gatewayctl bundle --target {})",
            target.arch().board_triple(),
            target.arch().board_triple()
        ));
    }
    if !settings.profile.cpu_features.is_empty() && !target.is_pulley() {
        how.push_str(&format!(
            "; extra CPU features: {}",
            settings.profile.cpu_features.join(", ")
        ));
    }
    Ok((
        Engines {
            slots,
            primary_target: target,
            fallback_target,
            profile: settings.profile.clone(),
        },
        how,
    ))
}

/// An engine per call style for `target`, allocating instances on demand.
fn unpooled_slots(target: &CodeTarget, profile: &CodeProfile) -> Result<Vec<EngineSlot>> {
    Calls::ALL
        .into_iter()
        .map(|calls| {
            Ok(EngineSlot {
                engine: engine_for(target, calls, profile, None)?,
                target: target.clone(),
                calls,
            })
        })
        .collect()
}

/// The engine for `target` and `calls`, with the pooling allocator if the
/// settings ask for it and it can be set up. Each call style has its own
/// pool; the process-wide instance bound (one semaphore) keeps the two
/// together within `max_instances`.
fn build_primary(
    settings: &EngineSettings,
    target: &CodeTarget,
    calls: Calls,
) -> Result<(Engine, String)> {
    if settings.pooling != Pooling::Off {
        match engine_for(target, calls, &settings.profile, Some(settings)) {
            Ok(engine) => {
                let how = format!("pooling allocator, {} instances", settings.max_instances);
                return Ok((engine, how));
            }
            Err(e) if settings.pooling == Pooling::Auto => {
                tracing::warn!(
                    "pooling allocator unavailable for {calls} ({e:#}); allocating instances \
                     on demand (a smaller max_instances or engine.memory_reservation may let \
                     the pool fit this machine's address space)"
                );
            }
            Err(e) => return Err(e.context("setting up the pooling allocator")),
        }
    }
    let engine = engine_for(target, calls, &settings.profile, None)?;
    Ok((engine, "on-demand allocation".to_string()))
}

/// One engine for `target` and `calls`; with `pool`, using the pooling
/// allocator sized by those settings. Code-shaping settings come from
/// `profile` and `calls` only, so engines that differ in allocation still
/// load each other's code.
fn engine_for(
    target: &CodeTarget,
    calls: Calls,
    profile: &CodeProfile,
    pool: Option<&EngineSettings>,
) -> Result<Engine> {
    let mut config = profile.wasmtime_config(target, calls)?;
    if let Some(settings) = pool {
        use_pool(&mut config, settings);
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("creating the wasmtime engine for {target} ({calls})"))
}

fn use_pool(config: &mut Config, settings: &EngineSettings) {
    let instances = settings.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    // SDK-built components (componentize-py in particular) hold many core
    // instances, memories and tables; these per-component ceilings fit them.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(4))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_core_instances_per_component(200)
        .max_memories_per_component(budget::MAX_MEMORIES as u32)
        .max_tables_per_component(budget::MAX_TABLES as u32)
        .max_component_instance_size(10 << 20)
        .max_core_instance_size(10 << 20)
        .max_memory_size(usize::try_from(settings.max_instance_memory).unwrap_or(usize::MAX));
    // Recycling a slot by madvise makes the next instance page-fault its
    // memory back in, and every such change to the page tables costs a
    // TLB shootdown across cores: profiling showed that to be the largest
    // cost per request. Instead keep the first pages of each recycled slot
    // resident and reset only the pages the last instance dirtied
    // (PAGEMAP_SCAN, Linux 6.7+; plain memset/copy elsewhere).
    pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE)
        .max_unused_warm_slots(settings.warm_slots.min(instances))
        .pagemap_scan(Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
}

/// Gives memory the allocator holds free back to the system. Compiling a
/// component leaves tens of MiB free in glibc's heaps, which glibc keeps: a
/// board that compiled at start-up or on an update kept them resident (the
/// attack benchmark started at 61 MiB). Other C libraries: nothing to do.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_names_the_wasmtime_in_cargo_lock() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = format!("name = \"wasmtime\"\nversion = \"{WASMTIME_VERSION}\"\n");
        assert!(
            lock.contains(&entry),
            "Cargo.lock has another wasmtime than WASMTIME_VERSION {WASMTIME_VERSION}"
        );
    }

    #[test]
    fn pooling_falls_back_in_auto_mode_and_fails_when_required() {
        // More instances than the address space can hold: the pool cannot be
        // reserved, as on a board with a 39-bit address space.
        let impossible = EngineSettings {
            max_instance_memory: 1 << 32,
            max_instances: 1 << 20,
            ..EngineSettings::defaults()
        };
        let (_, how) = build(&impossible).unwrap();
        assert!(how.contains("on-demand allocation"), "{how}");
        let required = EngineSettings {
            pooling: Pooling::On,
            ..impossible
        };
        assert!(build(&required).is_err());
        let (engines, how) = build(&EngineSettings::defaults()).unwrap();
        assert!(how.contains("pooling"), "{how}");
        assert_eq!(
            engines.fallback_target.is_some(),
            cfg!(target_pointer_width = "64")
        );
        // Each target has a plain and a concurrent engine, plain first.
        let slots: Vec<_> = engines.all().map(|s| (s.target.clone(), s.calls)).collect();
        let host = CodeTarget::host();
        assert_eq!(
            slots[..2],
            [(host.clone(), Calls::Plain), (host, Calls::Concurrent)]
        );
        assert_eq!(
            slots.len(),
            if engines.fallback_target.is_some() {
                4
            } else {
                2
            }
        );
    }
}
