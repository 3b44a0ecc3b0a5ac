//! The one wasmtime `Engine` of the process and how it is configured.
//!
//! Every component of every app runs on this engine: component model, async
//! calls on fibers, epoch interruption for deadlines, and the pooling instance
//! allocator (which makes a fresh instance per request cheap). The pool reserves
//! a lot of virtual address space up front, which some aarch64 and riscv64
//! boards (39-bit address spaces) or a `ulimit -v` cannot give; we try it and
//! fall back to on-demand allocation, saying why.

pub mod cache;
mod epoch;

use std::time::Duration;

use anyhow::{Context as _, Result};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use epoch::EpochTicker;

/// How often the epoch ticks: the granularity of request deadlines, and how
/// often a running guest yields to the scheduler.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of each recycled memory slot kept resident (reset in place).
const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// Bytes of each recycled table slot kept resident.
const KEEP_RESIDENT_TABLE: usize = 64 << 10;
/// Recently freed slots kept warm for reuse. With the two values above this
/// bounds the memory kept resident for speed to about 68 MiB worst case.
const WARM_SLOTS: u32 = 64;

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
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Largest linear memory (bytes) one instance may grow to.
    pub max_instance_memory: u64,
    /// Component instances that may be alive at once with the pooling allocator.
    pub max_instances: u32,
    pub pooling: Pooling,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instance_memory: 128 << 20,
            max_instances: 256,
            pooling: Pooling::Auto,
        }
    }
}

/// Builds the engine; the returned string says which allocator is in use.
pub fn build(settings: &EngineSettings) -> Result<(Engine, String)> {
    if settings.pooling != Pooling::Off {
        match Engine::new(&config(settings, true)) {
            Ok(engine) => {
                let how = format!("pooling allocator, {} instances", settings.max_instances);
                return Ok((engine, how));
            }
            Err(e) if settings.pooling == Pooling::Auto => {
                tracing::warn!(
                    "pooling allocator unavailable ({e}); allocating instances on demand \
                     (a smaller --max-instances may let the pool fit this machine's address space)"
                );
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context("setting up the pooling allocator"));
            }
        }
    }
    let engine = Engine::new(&config(settings, false))
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")?;
    Ok((engine, "on-demand allocation".to_string()))
}

/// The engine configuration. Code-shaping settings here must be identical in
/// every engine that precompiles for another (see `cache`), so there is one
/// function that makes them.
fn config(settings: &EngineSettings, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    if pooling {
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
            .max_memories_per_component(32)
            .max_tables_per_component(64)
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
            .max_unused_warm_slots(WARM_SLOTS.min(instances))
            .pagemap_scan(Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_falls_back_in_auto_mode_and_fails_when_required() {
        // More instances than the address space can hold: the pool cannot be
        // reserved, as on a board with a 39-bit address space.
        let impossible = EngineSettings {
            max_instance_memory: 1 << 32,
            max_instances: 1 << 20,
            pooling: Pooling::Auto,
        };
        let (_, how) = build(&impossible).unwrap();
        assert_eq!(how, "on-demand allocation");
        let required = EngineSettings {
            pooling: Pooling::On,
            ..impossible
        };
        assert!(build(&required).is_err());
        let (_, how) = build(&EngineSettings::default()).unwrap();
        assert!(how.starts_with("pooling"), "{how}");
    }
}
