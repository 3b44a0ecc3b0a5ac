//! Compiled-code cache: each component is compiled to native code once and
//! loaded from the state directory afterwards.
//!
//! A cache entry is keyed by the sha256 of the wasm bytes and by the engine's
//! `precompile_compatibility_hash` (wasmtime version, target, CPU features and
//! every code-shaping setting), so a changed component or engine never loads
//! stale code. Entries are written to a temporary name, fsynced and renamed, so
//! a crash mid-write leaves no truncated entry behind. Loading uses
//! `Component::deserialize_file`, which maps the file: instances share its pages.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// How a component's code was obtained.
#[derive(Debug)]
pub enum Origin {
    Cached,
    Compiled(Duration),
}

/// The compiled-code cache in one folder.
pub struct CodeCache {
    dir: PathBuf,
    engine_key: String,
}

impl CodeCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the code cache folder {}", dir.display()))?;
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_key })
    }

    /// Loads the component at `wasm_path`, from the cache when possible.
    pub fn load(&self, engine: &Engine, wasm_path: &Path) -> Result<(Component, Origin)> {
        let wasm =
            std::fs::read(wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
        let digest = hex(&Sha256::digest(&wasm));
        let entry = self.dir.join(format!("{digest}-{}.cwasm", self.engine_key));
        if entry.exists() {
            // SAFETY: entries are written only by `compile_into` below, from this
            // engine's own compilation, into the daemon's private state dir.
            match unsafe { Component::deserialize_file(engine, &entry) } {
                Ok(component) => return Ok((component, Origin::Cached)),
                Err(e) => tracing::warn!(
                    "ignoring unreadable cache entry {} ({e}); compiling again",
                    entry.display()
                ),
            }
        }
        let started = Instant::now();
        // Cranelift can panic on inputs it mishandles (e.g. wasmtime 48 on
        // baseline riscv64): that must fail this component's load with an
        // error, never take the daemon down.
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            engine.precompile_component(&wasm)
        }));
        let code = match compiled {
            Ok(result) => result
                .map_err(anyhow::Error::from)
                .with_context(|| format!("compiling {}", wasm_path.display()))?,
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                anyhow::bail!(
                    "compiling {}: the code generator crashed ({reason}); \
                     this is a compiler bug for this CPU, not a problem with the component",
                    wasm_path.display()
                );
            }
        };
        let took = started.elapsed();
        write_atomically(&entry, &code)
            .with_context(|| format!("writing cache entry {}", entry.display()))?;
        // SAFETY: the bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize_file(engine, &entry) }
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading freshly compiled {}", entry.display()))?;
        Ok((component, Origin::Compiled(took)))
    }
}

impl CodeCache {
    /// Deletes every entry but this engine's code for the wasm files whose
    /// sha256 (lower-case hex) is in `keep`: code for components no longer
    /// installed, and code from other engine versions or settings, which this
    /// engine could never load. Returns how many entries were removed.
    pub fn retain(&self, keep: &std::collections::BTreeSet<String>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Some(stem) = name.strip_suffix(".cwasm") else {
                continue;
            };
            let wanted = stem
                .split_once('-')
                .is_some_and(|(digest, engine)| engine == self.engine_key && keep.contains(digest));
            if !wanted && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

/// Writes `bytes` to `path` so that `path` is either absent or complete, even
/// across power loss: temporary file, fsync, rename, fsync of the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent folder")?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `Hash` output into sha256, which (unlike std's hasher) is stable
/// across Rust versions and processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    /// Unused: the digest is read through `self.0`.
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.cwasm");
        write_atomically(&path, b"first").unwrap();
        write_atomically(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("entry.cwasm")]);
    }

    #[test]
    fn engines_with_different_code_shaping_settings_get_different_keys() {
        let dir = tempfile::tempdir().unwrap();
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let with_epochs = Engine::new(&config).unwrap();
        let a = CodeCache::new(&plain, dir.path().to_path_buf()).unwrap();
        let b = CodeCache::new(&with_epochs, dir.path().to_path_buf()).unwrap();
        let again = CodeCache::new(&plain, dir.path().to_path_buf()).unwrap();
        assert_ne!(a.engine_key, b.engine_key);
        assert_eq!(a.engine_key, again.engine_key);
    }
}
