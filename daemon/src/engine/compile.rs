//! Compiling one component, with the Pulley fallback.
//!
//! Cranelift can panic on inputs it mishandles (wasmtime 48 on baseline
//! riscv64: wasmtime issue #13959). A compiler crash must never take the daemon
//! down: it fails this component's compile, and where a Pulley engine exists
//! the component is compiled to Pulley bytecode instead, with the reason
//! logged. A component Cranelift rejects with an error (invalid wasm, an
//! unsupported proposal) is not retried: Pulley would reject it too.
//!
//! Each compile runs on a short-lived engine of the same code shape as the
//! one that will load the code, dropped afterwards: Cranelift keeps its
//! working memory (a context per compiling thread, with every buffer grown to
//! the largest function it saw) in the engine for reuse, and in the serving
//! engines that memory would stay for the life of the process.
//!
//! A runtime-only build has no compiler: [`compile`] fails, naming the code
//! the gateway needs and how to make it.

use std::time::Duration;

use anyhow::{Result, anyhow};
use wasmtime::Engine;

use super::{CodeTarget, Engines};

/// Code for one component.
pub struct Compiled<'a> {
    pub code: Vec<u8>,
    /// The engine that produced (and can load) `code`.
    pub engine: &'a Engine,
    pub target: &'a CodeTarget,
    /// Why the primary engine was not used, when it was not.
    pub fell_back: Option<String>,
    pub took: Duration,
}

/// In a runtime-only build: fails, saying why `what` cannot run here and
/// what would let it.
#[cfg(not(feature = "compiler"))]
pub fn compile<'a>(engines: &'a Engines, _wasm: &[u8], what: &str) -> Result<Compiled<'a>> {
    let triple = engines.primary_target.arch().board_triple();
    Err(anyhow!(
        "{what} has no code precompiled for this gateway ({}), and this gatewayd is a \
         runtime-only build, which cannot compile: it runs apps pushed in bundles made with \
         `gatewayctl bundle --target {triple}`; the full gatewayd compiles app folders and \
         plain bundles",
        engines.primary_target
    ))
}

/// Compiles `wasm` (named `what` in errors) with the primary engine, or the
/// fallback one if Cranelift crashes on it.
#[cfg(feature = "compiler")]
pub fn compile<'a>(engines: &'a Engines, wasm: &[u8], what: &str) -> Result<Compiled<'a>> {
    let started = std::time::Instant::now();
    let crash = match precompile(engines, &engines.primary_target, wasm) {
        Ok(Ok(code)) => {
            return Ok(Compiled {
                code,
                engine: &engines.primary,
                target: &engines.primary_target,
                fell_back: None,
                took: started.elapsed(),
            });
        }
        Ok(Err(e)) => return Err(e.context(format!("compiling {what}"))),
        Err(crash) => crash,
    };
    let reason = format!(
        "Cranelift crashed making {} of it ({crash}), a compiler bug, not a problem with the \
         component",
        engines.primary_target
    );
    let Some((engine, target)) = &engines.fallback else {
        return Err(anyhow!("compiling {what}: {reason}"));
    };
    match precompile(engines, target, wasm) {
        Ok(Ok(code)) => Ok(Compiled {
            code,
            engine,
            target,
            fell_back: Some(reason),
            took: started.elapsed(),
        }),
        Ok(Err(e)) => Err(e.context(format!("compiling {what} for the {target} after {reason}"))),
        Err(again) => Err(anyhow!(
            "compiling {what}: {reason}; the {target} crashed too ({again})"
        )),
    }
}

/// `Ok(result)` of the compiler (on an engine for `target` made for this
/// compile), or `Err(message)` of its panic.
#[cfg(feature = "compiler")]
fn precompile(
    engines: &Engines,
    target: &CodeTarget,
    wasm: &[u8],
) -> Result<Result<Vec<u8>>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let compiler = engines.compiling_engine(target)?;
        compiler
            .precompile_component(wasm)
            .map_err(anyhow::Error::from)
    }))
    .map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    })
}
