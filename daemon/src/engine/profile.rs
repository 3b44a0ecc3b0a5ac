//! The code-shaping settings: everything compiled code depends on besides the
//! wasmtime version and the target. An engine that loads precompiled code must
//! have been configured exactly like the one that compiled it, so the daemon
//! and `gatewayctl compile` build their engines from this one struct, and the
//! board's config file is where both read it from.

use wasmtime::Config;

use super::calls::Calls;
use super::target::{Arch, CodeTarget};

/// Memory layout and CPU features of compiled code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeProfile {
    /// Virtual address space reserved per linear memory. 4 GiB (with a
    /// 32 MiB guard) lets 64-bit code skip bounds checks; smaller values need
    /// explicit checks but fit many more memories into a small address space.
    pub memory_reservation: u64,
    /// Inaccessible bytes after each linear memory (`None`: wasmtime's choice,
    /// which is none for Pulley).
    pub memory_guard_size: Option<u64>,
    /// Extra space reserved when a memory outgrows its reservation and moves.
    pub memory_reservation_for_growth: u64,
    /// Cranelift ISA flags to enable beyond what the CPU reports (on the
    /// board) or the baseline ISA (compiling elsewhere), e.g. `has_v` for a
    /// riscv64 board with the vector extension. Ignored for Pulley.
    pub cpu_features: Vec<String>,
}

impl CodeProfile {
    /// The defaults for code that runs on `arch`.
    ///
    /// x86_64 machines (servers, the developer's laptop) have 47-bit address
    /// spaces: wasmtime's 4 GiB reservations, no bounds checks. aarch64 and
    /// riscv64 boards often have 39-bit address spaces (512 GiB): 4 GiB per
    /// memory would fit only ~60 pooled instances beside everything else, so
    /// memories reserve 128 MiB (the default `max_instance_memory`) and code
    /// checks bounds; 512 pool slots then take 64 GiB. armv7 has 3 GiB in
    /// all: 16 MiB, grown by moving.
    pub fn default_for(arch: Arch) -> CodeProfile {
        match arch {
            Arch::X86_64 => CodeProfile {
                memory_reservation: 4 << 30,
                memory_guard_size: Some(32 << 20),
                memory_reservation_for_growth: 2 << 30,
                cpu_features: Vec::new(),
            },
            Arch::Aarch64 | Arch::Riscv64 => CodeProfile {
                memory_reservation: 128 << 20,
                memory_guard_size: Some(64 << 10),
                memory_reservation_for_growth: 32 << 20,
                cpu_features: Vec::new(),
            },
            Arch::Arm32 => CodeProfile {
                memory_reservation: 16 << 20,
                memory_guard_size: None,
                memory_reservation_for_growth: 1 << 20,
                cpu_features: Vec::new(),
            },
        }
    }

    /// A wasmtime configuration producing this profile's code for `target`
    /// and `calls`, with the features every gatewayd engine has (component
    /// model, async host calls on fibers, epoch interruption).
    pub fn wasmtime_config(&self, target: &CodeTarget, calls: Calls) -> anyhow::Result<Config> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        calls.configure(&mut config);
        config.epoch_interruption(true);
        if let Some(triple) = target.wasmtime_target() {
            config
                .target(&triple)
                .map_err(|e| anyhow::anyhow!("target {triple}: {e}"))?;
        }
        config.memory_reservation(self.memory_reservation);
        config.memory_reservation_for_growth(self.memory_reservation_for_growth);
        // Pulley cannot use guard pages (no signal handlers): leave its own.
        if let (Some(guard), false) = (self.memory_guard_size, target.is_pulley()) {
            config.memory_guard_size(guard);
        }
        // A runtime-only build has no Cranelift flags to set: the features
        // are recorded in the precompiled code, which wasmtime checks against
        // this CPU when loading it.
        #[cfg(feature = "compiler")]
        if !target.is_pulley() {
            for feature in &self.cpu_features {
                // SAFETY: enabling a feature the CPU lacks makes the code die
                // with SIGILL; the operator asserts the board has it (the
                // config documents this), which is what the flag is for.
                unsafe {
                    config.cranelift_flag_enable(feature);
                }
            }
        }
        Ok(config)
    }
}

// The test sets Cranelift flags: not in a runtime-only build.
#[cfg(all(test, feature = "compiler"))]
mod tests {
    use super::*;

    #[test]
    fn board_profiles_reserve_little_and_checks_unknown_cpu_features() {
        let board = CodeProfile::default_for(Arch::Aarch64);
        assert_eq!(board.memory_reservation, 128 << 20);
        let x86 = CodeProfile::default_for(Arch::X86_64);
        assert_eq!(x86.memory_reservation, 4 << 30);
        let bogus = CodeProfile {
            cpu_features: vec!["has_teleport".into()],
            ..x86
        };
        let config = bogus
            .wasmtime_config(&CodeTarget::host(), Calls::Plain)
            .unwrap();
        let err = wasmtime::Engine::new(&config).err().unwrap().to_string();
        assert!(err.contains("has_teleport"), "{err}");
    }
}
