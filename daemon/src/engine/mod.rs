//! The wasmtime engines of the process and how they are configured.
//!
//! Every component runs on the primary engine: native code from Cranelift for
//! this CPU, or the Pulley interpreter where Cranelift has no backend (armv7).
//! On 64-bit machines a second, Pulley engine takes the components Cranelift
//! crashes on (see [`compile`]). Both have the component model, async calls on
//! fibers and epoch interruption for deadlines. The primary engine uses the
//! pooling instance allocator (which makes a fresh instance per request cheap)
//! when the machine can reserve its address space, and falls back to
//! on-demand allocation, saying why.
//!
//! A runtime-only build (without the `compiler` feature: no Cranelift) has the
//! same engines but cannot compile: it loads code precompiled for it on a
//! build host, shipped in bundles (`gatewayctl bundle --target`), and
//! [`compile`] says so for anything else.

pub mod budget;
pub mod cache;
pub mod compile;
mod epoch;
pub mod profile;
pub mod target;

use std::time::Duration;

use anyhow::{Context as _, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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
        }
    }
}

/// The engines of the process.
pub struct Engines {
    pub primary: Engine,
    pub primary_target: CodeTarget,
    /// For components Cranelift cannot compile (64-bit machines only).
    pub fallback: Option<(Engine, CodeTarget)>,
    /// The code-shaping settings of both engines. Its `cpu_features` are
    /// what native code may use beyond what wasmtime detects (or,
    /// precompiling, beyond the baseline).
    pub profile: CodeProfile,
}

impl Engines {
    /// Engines producing code for `target` with `profile`, for precompiling
    /// on a build host: nothing is instantiated, so no allocator settings.
    pub fn for_precompiling(target: CodeTarget, profile: &CodeProfile) -> Result<Engines> {
        let primary = engine_for(&target, profile, None)?;
        let fallback = match target.fallback() {
            Some(pulley) => Some((engine_for(&pulley, profile, None)?, pulley)),
            None => None,
        };
        Ok(Engines {
            primary,
            primary_target: target,
            fallback,
            profile: profile.clone(),
        })
    }

    /// A new engine making the same code for `target` (the primary's or the
    /// fallback's) as this process's engine for it, to compile with and
    /// drop (see [`compile`]). Allocation settings do not shape code, so the
    /// pooled engine loads what it makes.
    #[cfg(feature = "compiler")]
    pub fn compiling_engine(&self, target: &CodeTarget) -> Result<Engine> {
        engine_for(target, &self.profile, None)
    }

    /// Every engine, primary first.
    pub fn all(&self) -> impl Iterator<Item = (&Engine, &CodeTarget)> {
        std::iter::once((&self.primary, &self.primary_target))
            .chain(self.fallback.as_ref().map(|(e, t)| (e, t)))
    }
}

/// Builds this machine's engines; the returned string describes them.
pub fn build(settings: &EngineSettings) -> Result<(Engines, String)> {
    let target = CodeTarget::host();
    let (primary, allocator) = build_primary(settings, &target)?;
    let fallback = match target.fallback() {
        // On demand: the fallback engine is rarely used, and a second pool
        // would double the address space reserved.
        Some(pulley) => Some((engine_for(&pulley, &settings.profile, None)?, pulley)),
        None => None,
    };
    let mut how = format!("{target}, {allocator}");
    match &fallback {
        Some((_, pulley)) if CAN_COMPILE => how.push_str(&format!(
            "; components Cranelift cannot compile run on the {pulley}"
        )),
        Some((_, pulley)) => how.push_str(&format!("; code precompiled for the {pulley} runs too")),
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
            primary,
            primary_target: target,
            fallback,
            profile: settings.profile.clone(),
        },
        how,
    ))
}

fn build_primary(settings: &EngineSettings, target: &CodeTarget) -> Result<(Engine, String)> {
    if settings.pooling != Pooling::Off {
        match engine_for(target, &settings.profile, Some(settings)) {
            Ok(engine) => {
                let how = format!("pooling allocator, {} instances", settings.max_instances);
                return Ok((engine, how));
            }
            Err(e) if settings.pooling == Pooling::Auto => {
                tracing::warn!(
                    "pooling allocator unavailable ({e:#}); allocating instances on demand \
                     (a smaller max_instances or engine.memory_reservation may let the pool fit \
                     this machine's address space)"
                );
            }
            Err(e) => return Err(e.context("setting up the pooling allocator")),
        }
    }
    let engine = engine_for(target, &settings.profile, None)?;
    Ok((engine, "on-demand allocation".to_string()))
}

/// One engine for `target`; with `pool`, using the pooling allocator sized
/// by those settings. Code-shaping settings come from `profile` only, so
/// engines that differ in allocation still load each other's code.
fn engine_for(
    target: &CodeTarget,
    profile: &CodeProfile,
    pool: Option<&EngineSettings>,
) -> Result<Engine> {
    let mut config = profile.wasmtime_config(target)?;
    if let Some(settings) = pool {
        use_pool(&mut config, settings);
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("creating the wasmtime engine for {target}"))
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
            engines.fallback.is_some(),
            cfg!(target_pointer_width = "64")
        );
    }
}
