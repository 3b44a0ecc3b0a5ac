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
//! Each target is tried for plain calls first and for concurrent calls if
//! the plain engine refuses the component (it uses async features, see
//! [`Calls`]): that refusal comes from validation, before any code is made.
//!
//! A runtime-only build has no compiler: [`compile`] fails, naming the code
//! the gateway needs and how to make it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::function_cache::FunctionCache;

#[cfg(feature = "compiler")]
use super::{Calls, CodeTarget};
use super::{EngineSlot, Engines};

/// Code for one component.
pub struct Compiled<'a> {
    pub code: Vec<u8>,
    /// The engine whose code `code` is (and which loads it).
    pub slot: &'a EngineSlot,
    /// Why the primary target was not used, when it was not.
    pub fell_back: Option<String>,
    pub took: Duration,
}

/// In a runtime-only build: fails, saying why `what` cannot run here and
/// what would let it.
#[cfg(not(feature = "compiler"))]
pub fn compile<'a>(
    engines: &'a Engines,
    _wasm: &[u8],
    what: &str,
    _functions: Option<Arc<FunctionCache>>,
) -> Result<Compiled<'a>> {
    let triple = engines.primary_target.arch().board_triple();
    Err(anyhow!(
        "{what} has no code precompiled for this gateway ({}), and this gatewayd is a \
         runtime-only build, which cannot compile: it runs apps pushed in bundles made with \
         `gatewayctl bundle --target {triple}`; the full gatewayd compiles app folders and \
         plain bundles",
        engines.primary_target
    ))
}

/// Compiles `wasm` (named `what` in errors) for the primary target, or the
/// fallback one if Cranelift crashes on it; reusing the functions found in
/// `functions` and adding the others there.
#[cfg(feature = "compiler")]
pub fn compile<'a>(
    engines: &'a Engines,
    wasm: &[u8],
    what: &str,
    functions: Option<Arc<FunctionCache>>,
) -> Result<Compiled<'a>> {
    let started = std::time::Instant::now();
    let compiled = |(code, calls), target: &CodeTarget, fell_back| {
        let slot = engines
            .slot(target, calls)
            .ok_or_else(|| anyhow!("no engine for {target} ({calls})"))?;
        Ok(Compiled {
            code,
            slot,
            fell_back,
            took: started.elapsed(),
        })
    };
    let primary = &engines.primary_target;
    let crash = match compile_for(engines, primary, wasm, &functions) {
        Ok(Ok(code)) => return compiled(code, primary, None),
        Ok(Err(e)) => return Err(e.context(format!("compiling {what}"))),
        Err(crash) => crash,
    };
    let reason = format!(
        "Cranelift crashed making {primary} of it ({crash}), a compiler bug, not a problem with \
         the component"
    );
    let Some(target) = &engines.fallback_target else {
        return Err(anyhow!("compiling {what}: {reason}"));
    };
    match compile_for(engines, target, wasm, &functions) {
        Ok(Ok(code)) => compiled(code, target, Some(reason)),
        Ok(Err(e)) => Err(e.context(format!("compiling {what} for the {target} after {reason}"))),
        Err(again) => Err(anyhow!(
            "compiling {what}: {reason}; the {target} crashed too ({again})"
        )),
    }
}

/// Code for `target`, for plain calls if the component allows them, else
/// for concurrent ones; `Err` is a compiler crash.
#[cfg(feature = "compiler")]
fn compile_for(
    engines: &Engines,
    target: &CodeTarget,
    wasm: &[u8],
    functions: &Option<Arc<FunctionCache>>,
) -> Result<Result<(Vec<u8>, Calls)>, String> {
    match precompile(engines, target, Calls::Plain, wasm, functions)? {
        Ok(code) => Ok(Ok((code, Calls::Plain))),
        // Uses async features, or is not valid at all: the concurrent
        // engine's answer (code, or the error to report) is the one.
        Err(_) => Ok(
            precompile(engines, target, Calls::Concurrent, wasm, functions)?
                .map(|code| (code, Calls::Concurrent)),
        ),
    }
}

/// `Ok(result)` of the compiler (on an engine for `target` and `calls` made
/// for this compile), or `Err(message)` of its panic.
#[cfg(feature = "compiler")]
fn precompile(
    engines: &Engines,
    target: &CodeTarget,
    calls: Calls,
    wasm: &[u8],
    functions: &Option<Arc<FunctionCache>>,
) -> Result<Result<Vec<u8>>, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let compiler = engines.compiling_engine(target, calls, functions.clone())?;
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
