//! What a compiled component runs on: native code from Cranelift for one CPU
//! architecture, or bytecode for wasmtime's Pulley interpreter.
//!
//! Cranelift has backends for x86_64, aarch64 and riscv64 only. A 32-bit ARM
//! board therefore always runs Pulley (`pulley32`); a 64-bit board runs native
//! code and keeps `pulley64` as the fallback for a component Cranelift fails to
//! compile (wasmtime 48 crashes on real components for baseline riscv64).

use std::fmt;

/// A CPU architecture gatewayd runs on, as far as code generation cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
    Riscv64,
    /// 32-bit ARM (armv7): Pulley only.
    Arm32,
}

/// The code an engine produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeTarget {
    /// Cranelift machine code for `triple`; `None` is this machine's CPU, with
    /// the CPU features wasmtime detects on it.
    Native { arch: Arch, triple: Option<String> },
    /// Pulley bytecode for 32- or 64-bit hosts.
    Pulley { bits: u8, arch: Arch },
}

impl Arch {
    /// The architecture this binary was built for.
    pub fn host() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else if cfg!(target_arch = "riscv64") {
            Arch::Riscv64
        } else {
            // armv7 and anything else without a Cranelift backend.
            Arch::Arm32
        }
    }

    /// Reads the architecture of a Rust/GNU target triple such as
    /// `aarch64-unknown-linux-gnu` or `armv7-unknown-linux-gnueabihf`.
    pub fn from_triple(triple: &str) -> Result<Arch, String> {
        let arch = triple.split('-').next().unwrap_or_default();
        match arch {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            a if a.starts_with("riscv64") => Ok(Arch::Riscv64),
            a if a.starts_with("armv7") || a == "arm" => Ok(Arch::Arm32),
            _ => Err(format!(
                "unsupported target {triple:?}: gatewayd runs on x86_64, aarch64, riscv64gc and \
                 armv7 Linux (e.g. aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu, \
                 armv7-unknown-linux-gnueabihf)"
            )),
        }
    }

    /// The usual target triple of a Linux board of this architecture, for
    /// `gatewayctl bundle --target` (code for it runs on any libc).
    pub fn board_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
            Arch::Riscv64 => "riscv64gc-unknown-linux-gnu",
            Arch::Arm32 => "armv7-unknown-linux-gnueabihf",
        }
    }

    fn has_cranelift_backend(self) -> bool {
        self != Arch::Arm32
    }
}

impl CodeTarget {
    /// What this machine runs: native code where Cranelift has a backend,
    /// Pulley otherwise.
    pub fn host() -> CodeTarget {
        Self::primary(Arch::host(), None)
    }

    /// What a board with `triple` runs, compiled elsewhere: the baseline ISA
    /// of the architecture (no CPU features beyond those configured).
    pub fn for_triple(triple: &str) -> Result<CodeTarget, String> {
        let arch = Arch::from_triple(triple)?;
        Ok(Self::primary(arch, Some(triple.to_string())))
    }

    fn primary(arch: Arch, triple: Option<String>) -> CodeTarget {
        if arch.has_cranelift_backend() {
            CodeTarget::Native { arch, triple }
        } else {
            CodeTarget::Pulley { bits: 32, arch }
        }
    }

    /// Where a component goes when Cranelift fails on it: Pulley of the same
    /// pointer width. `None` when this target already is Pulley.
    pub fn fallback(&self) -> Option<CodeTarget> {
        match self {
            CodeTarget::Native { arch, .. } => Some(CodeTarget::Pulley {
                bits: 64,
                arch: *arch,
            }),
            CodeTarget::Pulley { .. } => None,
        }
    }

    pub fn arch(&self) -> Arch {
        match self {
            CodeTarget::Native { arch, .. } | CodeTarget::Pulley { arch, .. } => *arch,
        }
    }

    pub fn is_pulley(&self) -> bool {
        matches!(self, CodeTarget::Pulley { .. })
    }

    /// The triple to give `wasmtime::Config::target`, or `None` for the host.
    pub fn wasmtime_target(&self) -> Option<String> {
        match self {
            CodeTarget::Native { triple, .. } => triple.clone(),
            CodeTarget::Pulley { bits, .. } => Some(format!("pulley{bits}")),
        }
    }
}

impl fmt::Display for CodeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeTarget::Native { triple: None, .. } => {
                write!(f, "native {} code", std::env::consts::ARCH)
            }
            CodeTarget::Native {
                triple: Some(triple),
                ..
            } => write!(f, "native code for {triple}"),
            CodeTarget::Pulley { bits, .. } => write!(f, "Pulley interpreter (pulley{bits})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boards_get_native_code_with_a_pulley_fallback_and_armv7_gets_pulley32() {
        let aarch64 = CodeTarget::for_triple("aarch64-unknown-linux-gnu").unwrap();
        assert!(!aarch64.is_pulley());
        assert_eq!(
            aarch64.fallback().unwrap().wasmtime_target().as_deref(),
            Some("pulley64")
        );
        let riscv = CodeTarget::for_triple("riscv64gc-unknown-linux-gnu").unwrap();
        assert_eq!(riscv.arch(), Arch::Riscv64);
        let armv7 = CodeTarget::for_triple("armv7-unknown-linux-gnueabihf").unwrap();
        assert_eq!(armv7.wasmtime_target().as_deref(), Some("pulley32"));
        assert_eq!(armv7.fallback(), None);
        let err = CodeTarget::for_triple("mips-unknown-linux-gnu").unwrap_err();
        assert!(err.contains("unsupported target \"mips"), "{err}");
        assert_eq!(CodeTarget::host().wasmtime_target(), None);
    }
}
