//! `gatewayctl compile` and the `--target` of `gatewayctl bundle`: compiling
//! components on a build host for a board, so a slow board skips compiling.
//!
//! The code must be shaped exactly as the board's own engine would shape it
//! (memory reservation, guard size, CPU features). Both sides therefore build
//! their engines from the same `CodeProfile`: the defaults for the board's
//! architecture, or the `[engine]` section of the board's gatewayd.toml given
//! with `--config`. Code for a CPU is for its baseline ISA plus the configured
//! `cpu_features`, so it runs on every board of that architecture.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use gatewayd::config::Config;
use gatewayd::engine::compile::compile;
use gatewayd::engine::{CodeProfile, CodeTarget, Engines};

/// The engines a board of `triple` would build, for precompiling.
pub fn engines_for(triple: &str, board_config: Option<&Path>) -> Result<Engines> {
    let target = CodeTarget::for_triple(triple).map_err(|e| anyhow!("--target: {e}"))?;
    let profile = match board_config {
        Some(path) => Config::load_for(path, target.arch())?.engine.profile,
        None => CodeProfile::default_for(target.arch()),
    };
    Engines::for_precompiling(target, &profile).map_err(|e| {
        if cfg!(feature = "all-targets") {
            e
        } else {
            e.context(
                "this gatewayctl was built without the all-targets feature and compiles only \
                 for its own architecture",
            )
        }
    })
}

/// Code for one component: bytes, what it runs on, and a note when Cranelift
/// failed and the code is Pulley bytecode instead.
pub struct Precompiled {
    pub code: Vec<u8>,
    pub runs_on: String,
    /// CPU features beyond the baseline the code uses (none for Pulley).
    pub cpu_features: Vec<String>,
    pub fell_back: Option<String>,
    pub took: Duration,
}

pub fn precompile(engines: &Engines, wasm_path: &Path) -> Result<Precompiled> {
    let wasm =
        std::fs::read(wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let compiled = compile(engines, &wasm, &wasm_path.display().to_string(), None)?;
    Ok(Precompiled {
        runs_on: compiled.slot.target.to_string(),
        cpu_features: if compiled.slot.target.is_pulley() {
            Vec::new()
        } else {
            engines.profile.cpu_features.clone()
        },
        code: compiled.code,
        fell_back: compiled.fell_back,
        took: compiled.took,
    })
}

/// `gatewayctl compile --target TRIPLE COMPONENT.wasm -o OUT.cwasm`.
pub fn run(triple: &str, board_config: Option<&Path>, input: &Path, output: &Path) -> Result<()> {
    let engines = engines_for(triple, board_config)?;
    let compiled = precompile(&engines, input)?;
    if let Some(reason) = &compiled.fell_back {
        eprintln!(
            "gatewayctl: {}: {reason}; compiled for the Pulley interpreter instead",
            input.display()
        );
    }
    gatewayd::engine::cache::write_atomically(output, &compiled.code)
        .with_context(|| format!("writing {}", output.display()))?;
    println!(
        "{}: {} ({} bytes) in {:.2?}",
        output.display(),
        compiled.runs_on,
        compiled.code.len(),
        compiled.took
    );
    Ok(())
}
