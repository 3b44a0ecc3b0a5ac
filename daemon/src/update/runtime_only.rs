//! The admission rule of a runtime-only gateway (built without the
//! `compiler` feature): an app loads only if code for every component is in
//! the cache, adopted from the bundle's precompiled code; otherwise the
//! bundle is refused with what is missing and how to make it.

use std::path::Path;

use super::bundle::BundleManifest;
use super::controller::{Rejection, RejectionKind, reject};
use crate::runtime::Runtime;

/// A runtime-only gateway runs only code it has: refuses an app with a
/// component the bundle carried no usable code for, naming the components,
/// the code the bundle does carry and the command that makes what is missing.
pub fn check(
    runtime: &Runtime,
    app: &crate::app::App,
    manifest: &BundleManifest,
    root: &Path,
) -> Result<(), Rejection> {
    let mut missing = Vec::new();
    for (id, spec) in &app.components {
        let has = runtime
            .cache
            .has_code_for(&spec.source)
            .map_err(|e| reject(RejectionKind::Internal, "internal", format!("{e:#}")))?;
        if !has {
            let source = spec.source.strip_prefix(root).unwrap_or(&spec.source);
            missing.push(format!("\"{id}\" ({})", source.display()));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let here = &runtime.engines.primary_target;
    let arch = here.arch();
    let mut carried: Vec<&str> = manifest
        .precompiled
        .iter()
        .map(|p| p.target.as_str())
        .collect();
    carried.sort_unstable();
    carried.dedup();
    let for_this_arch: Vec<&str> = carried
        .iter()
        .copied()
        .filter(|t| crate::engine::Arch::from_triple(t) == Ok(arch))
        .collect();
    let carries = if carried.is_empty() {
        "it carries no precompiled code".to_string()
    } else if !for_this_arch.is_empty() {
        format!(
            "its code for {} did not fit this gateway (the log says why)",
            for_this_arch.join(", ")
        )
    } else {
        format!("it carries code for {} only", carried.join(", "))
    };
    Err(reject(
        RejectionKind::Invalid,
        "not_precompiled",
        format!(
            "this gatewayd is a runtime-only build and cannot compile, and the bundle has no \
             code for this gateway ({here}) for {} {}: {carries}; make the bundle with \
             `gatewayctl bundle --target {}`",
            if missing.len() == 1 {
                "component"
            } else {
                "components"
            },
            missing.join(", "),
            arch.board_triple()
        ),
    ))
}
