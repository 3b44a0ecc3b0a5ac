//! One instance's memory budget: every linear memory and every table of a
//! component instance draws from one allowance (`max_instance_memory`).
//!
//! wasmtime's `StoreLimits` bounds each linear memory on its own, and tables
//! not at all in bytes: a component may hold up to 32 memories and 64 tables,
//! so a limit of 128 MiB "per instance" let one instance take 4 GiB of memory
//! plus 512 MiB of table elements. Here a growth is allowed only while the
//! total stays within the budget; a refused growth makes `memory.grow` return
//! -1 (the guest sees an allocation failure) or instantiation fail, as before.

use prometheus_client::metrics::counter::Counter;
use wasmtime::{ResourceLimiter, Result};

/// What one table element costs the host (wasmtime keeps a pointer per element).
const TABLE_ELEMENT_SIZE: usize = std::mem::size_of::<usize>();

/// Ceilings besides the byte budget, matching the pooling allocator's
/// per-component ones.
pub const MAX_MEMORIES: usize = 32;
pub const MAX_TABLES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_CORE_INSTANCES: usize = 200;

pub struct InstanceBudget {
    /// Bytes all memories and tables together may use.
    limit: usize,
    /// Bytes in use now.
    used: usize,
    /// The last growth allowed, taken back if wasmtime then fails it.
    last_growth: usize,
    /// Counts growths refused for the budget (the component's series).
    refusals: Counter,
}

impl InstanceBudget {
    pub fn new(limit: usize, refusals: Counter) -> Self {
        Self {
            limit,
            used: 0,
            last_growth: 0,
            refusals,
        }
    }

    fn grow(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> bool {
        if maximum.is_some_and(|max| desired > max) {
            return false;
        }
        let growth = desired.saturating_sub(current);
        match self.used.checked_add(growth) {
            Some(total) if total <= self.limit => {
                self.used = total;
                self.last_growth = growth;
                true
            }
            _ => {
                self.refusals.inc();
                false
            }
        }
    }

    fn undo_last_growth(&mut self) {
        self.used -= std::mem::take(&mut self.last_growth);
    }
}

impl ResourceLimiter for InstanceBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        Ok(self.grow(current, desired, maximum))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        let maximum = maximum.map(|m| m.saturating_mul(TABLE_ELEMENT_SIZE));
        Ok(self.grow(
            current.saturating_mul(TABLE_ELEMENT_SIZE),
            desired.saturating_mul(TABLE_ELEMENT_SIZE),
            maximum,
        ))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> Result<()> {
        self.undo_last_growth();
        Ok(())
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

// The tests compile wasm: not in a runtime-only build.
#[cfg(all(test, feature = "compiler"))]
mod tests {
    use super::*;
    use wasmtime::{Config, Engine, Instance, Module, Store};

    const MIB: usize = 1 << 20;

    /// A core module with `memories` memories of `pages` 64 KiB pages each, and
    /// a function `grow(memory 0 by n pages) -> old size or -1`.
    fn module(engine: &Engine, memories: usize, pages: u32, table: u32) -> Module {
        let mut wat = String::from("(module\n");
        for _ in 0..memories {
            wat.push_str(&format!("(memory {pages})\n"));
        }
        wat.push_str(&format!("(table {table} funcref)\n"));
        wat.push_str(
            "(func (export \"grow\") (param i32) (result i32) (memory.grow 0 (local.get 0))))",
        );
        Module::new(engine, wat::parse_str(&wat).unwrap()).unwrap()
    }

    fn store(engine: &Engine, limit: usize) -> Store<InstanceBudget> {
        let mut store = Store::new(engine, InstanceBudget::new(limit, Counter::default()));
        store.limiter(|budget| budget);
        store
    }

    fn engine() -> Engine {
        let mut config = Config::new();
        config.wasm_multi_memory(true);
        Engine::new(&config).unwrap()
    }

    #[test]
    fn memories_share_one_budget() {
        let engine = engine();
        // Two memories of 25 MiB fit a 64 MiB budget, three do not (each would
        // fit alone, which is all a per-memory limit checked).
        let two = module(&engine, 2, 400, 1);
        let three = module(&engine, 3, 400, 1);
        Instance::new(&mut store(&engine, 64 * MIB), &two, &[]).unwrap();
        assert!(Instance::new(&mut store(&engine, 64 * MIB), &three, &[]).is_err());
    }

    #[test]
    fn growth_stops_at_the_budget_and_the_guest_sees_minus_one() {
        let engine = engine();
        let m = module(&engine, 2, 160, 0); // 2 x 10 MiB, no table elements
        let mut store = store(&engine, 32 * MIB);
        let instance = Instance::new(&mut store, &m, &[]).unwrap();
        let grow = instance
            .get_typed_func::<i32, i32>(&mut store, "grow")
            .unwrap();
        // 12 MiB left: 11 MiB fit, another 2 MiB do not.
        assert_eq!(grow.call(&mut store, 176).unwrap(), 160);
        assert_eq!(grow.call(&mut store, 32).unwrap(), -1);
        assert_eq!(grow.call(&mut store, 16).unwrap(), 336);
        assert_eq!(store.data().used, 32 * MIB);
    }

    #[test]
    fn tables_count_against_the_budget() {
        let engine = engine();
        // 1 Mi elements are 8 MiB of host memory on a 64-bit host.
        let elements = 1 << 20;
        let m = module(&engine, 1, 16, elements); // 1 MiB memory
        let need = MIB + elements as usize * TABLE_ELEMENT_SIZE;
        Instance::new(&mut store(&engine, need), &m, &[]).unwrap();
        assert!(Instance::new(&mut store(&engine, need - 64 * 1024), &m, &[]).is_err());
        // Past the element ceiling whatever the budget.
        let huge = module(&engine, 1, 1, elements + 1);
        assert!(Instance::new(&mut store(&engine, usize::MAX), &huge, &[]).is_err());
    }

    #[test]
    fn a_growth_wasmtime_refuses_is_given_back() {
        let refusals = Counter::default();
        let mut budget = InstanceBudget::new(10 * MIB, refusals.clone());
        assert!(budget.grow(0, 4 * MIB, None));
        assert!(budget.grow(4 * MIB, 8 * MIB, None));
        budget.undo_last_growth();
        assert_eq!(budget.used, 4 * MIB);
        // Past the memory's own maximum: not the budget's refusal.
        assert!(!budget.grow(4 * MIB, 8 * MIB, Some(6 * MIB)));
        assert_eq!(budget.used, 4 * MIB);
        assert_eq!(refusals.get(), 0);
        assert!(!budget.grow(4 * MIB, 11 * MIB, None));
        assert_eq!(refusals.get(), 1);
    }
}
