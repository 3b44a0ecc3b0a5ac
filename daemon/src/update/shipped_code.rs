//! Code precompiled for boards and shipped in a bundle (`gatewayctl bundle
//! --target`): taken into the code cache when this gateway's engine accepts
//! it, so the board skips compiling; otherwise the gateway compiles, and the
//! log says which happened and why.
//!
//! Only code from a verified bundle comes through here: its bytes are covered
//! by the signed manifest, and loading it runs it as native code.

use std::path::Path;

use crate::engine::Engines;
use crate::engine::cache::CodeCache;

use super::bundle::BundleManifest;

/// Adopts the shipped code of the generation unpacked at `root` (its `app/`
/// folder) for every component the cache has no code for yet.
pub fn adopt(engines: &Engines, cache: &CodeCache, manifest: &BundleManifest, root: &Path) {
    for entry in &manifest.precompiled {
        let Some(source) = manifest.files.iter().find(|f| f.path == entry.source) else {
            continue; // the manifest check makes this impossible
        };
        if cache.has(&source.sha256) {
            continue; // adopted earlier, or compiled here before
        }
        // wasmtime checks CPU features at load, except on riscv64 (wasmtime
        // 48), where code using a missing extension would load and later die
        // with SIGILL: so also require that this gateway was configured with
        // every feature the code was compiled for.
        if let Some(missing) = entry
            .cpu_features
            .iter()
            .find(|f| !engines.profile.cpu_features.contains(f))
        {
            tracing::warn!(
                "{}: the bundle's code precompiled for {} uses CPU feature {missing}, which \
                 this gateway's [engine] cpu_features does not list; compiling here instead",
                entry.source,
                entry.target
            );
            continue;
        }
        match cache.adopt(engines, &source.sha256, &root.join(&entry.code)) {
            Ok(slot) => tracing::info!(
                "{}: using the code precompiled for {} shipped in the bundle ({}, {}); \
                 no compiling here",
                entry.source,
                entry.target,
                slot.target,
                slot.calls
            ),
            Err(reason) => tracing::warn!(
                "{}: the bundle's code precompiled for {} does not fit this gateway \
                 ({reason}); compiling here instead",
                entry.source,
                entry.target
            ),
        }
    }
}
