//! Compiled-code cache: each component is compiled to native code once and
//! loaded from the state directory afterwards.
//!
//! A cache entry is keyed by the sha256 of the wasm bytes and by the engine's
//! code shape (wasmtime version, target, [`Calls`] and [`CodeProfile`]), so a changed
//! component or engine looks for other entries. The key is ours rather than
//! wasmtime's `precompile_compatibility_hash`, which exists only in builds
//! with Cranelift: a runtime-only gateway and a full one find the same
//! entries, so a board can change flavour without losing its code. wasmtime
//! still checks every entry it loads (version, target, settings, CPU
//! features): a key that matched wrongly costs a compile, never a bad load.
//! Entries are written to a temporary name, fsynced and renamed, so
//! a crash mid-write leaves no truncated entry behind. Loading uses
//! `Component::deserialize_file`, which maps the file: instances share its pages.
//! Code precompiled on a build host and shipped in a verified bundle enters the
//! cache through [`CodeCache::adopt`], once an engine has accepted it.
//! Beside the entries, `functions.sqlite` keeps compiled functions for the
//! next compile of a changed component ([`super::function_cache`]).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use super::compile::compile;
use super::function_cache::{FunctionCache, Reuse};
use super::{Calls, CodeProfile, CodeTarget, EngineSlot, Engines, WASMTIME_VERSION};

/// How a component's code was obtained.
#[derive(Debug)]
pub enum Origin {
    Cached,
    Compiled {
        took: Duration,
        /// Why the fallback engine compiled it, if it did.
        fell_back: Option<String>,
        /// The functions compiled before that it reused, when the function
        /// cache could be used.
        reuse: Option<Reuse>,
    },
}

/// The compiled-code cache in one folder.
pub struct CodeCache {
    dir: PathBuf,
    /// One key per engine, in the order of `Engines::all`.
    engine_keys: Vec<String>,
    /// Bytes of compiled functions kept for later compiles (0: no function cache).
    function_cache_size: u64,
}

impl CodeCache {
    /// The cache in `dir`, with a function cache of up to
    /// `function_cache_size` bytes (0: none).
    pub fn new(engines: &Engines, dir: PathBuf, function_cache_size: u64) -> Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the code cache folder {}", dir.display()))?;
        let engine_keys = engines
            .all()
            .map(|slot| engine_key(&slot.target, slot.calls, &engines.profile))
            .collect();
        Ok(Self {
            dir,
            engine_keys,
            function_cache_size,
        })
    }

    fn entry(&self, digest: &str, key: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{key}.cwasm"))
    }

    /// Loads the component at `wasm_path`, from the cache when possible.
    /// Returns the engine it runs on.
    pub fn load<'a>(
        &self,
        engines: &'a Engines,
        wasm_path: &Path,
    ) -> Result<(Component, &'a EngineSlot, Origin)> {
        let wasm =
            std::fs::read(wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
        let digest = hex(&Sha256::digest(&wasm));
        for (slot, key) in engines.all().zip(&self.engine_keys) {
            let entry = self.entry(&digest, key);
            if !entry.exists() {
                continue;
            }
            // SAFETY: entries are written only by this cache, from this
            // engine's own compilation or from code of a verified bundle that
            // this engine accepted (`adopt`), into the daemon's private state dir.
            match unsafe { Component::deserialize_file(&slot.engine, &entry) } {
                Ok(component) => return Ok((component, slot, Origin::Cached)),
                Err(e) => tracing::warn!(
                    "ignoring unreadable cache entry {} ({e}); compiling again",
                    entry.display()
                ),
            }
        }
        let functions = self.functions();
        let compiled = compile(
            engines,
            &wasm,
            &wasm_path.display().to_string(),
            functions.clone(),
        )?;
        let reuse = functions.and_then(|functions| {
            functions
                .finish()
                .map_err(|e| tracing::warn!("could not save compiled functions: {e:#}"))
                .ok()
        });
        let index = engines
            .all()
            .position(|slot| std::ptr::eq(slot, compiled.slot))
            .expect("the compiling engine is one of the engines");
        let entry = self.entry(&digest, &self.engine_keys[index]);
        write_atomically(&entry, &compiled.code)
            .with_context(|| format!("writing cache entry {}", entry.display()))?;
        // SAFETY: the bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize_file(&compiled.slot.engine, &entry) }
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading freshly compiled {}", entry.display()))?;
        let origin = Origin::Compiled {
            took: compiled.took,
            fell_back: compiled.fell_back,
            reuse,
        };
        Ok((component, compiled.slot, origin))
    }

    /// The function cache for one compile, if this build compiles and the
    /// file can be opened (without it, the compile starts from scratch).
    fn functions(&self) -> Option<Arc<FunctionCache>> {
        if !super::CAN_COMPILE {
            return None;
        }
        let path = self.dir.join("functions.sqlite");
        if self.function_cache_size == 0 {
            // Turned off: no file left behind taking space either.
            FunctionCache::remove(&path);
            return None;
        }
        FunctionCache::open(&path, self.function_cache_size)
            .map(Arc::new)
            .map_err(|e| tracing::warn!("compiling without the function cache: {e:#}"))
            .ok()
    }

    /// Takes code precompiled elsewhere for the wasm file whose sha256 is
    /// `digest` into the cache, if one of the engines accepts it: wasmtime
    /// checks that it was compiled by the same wasmtime version for this
    /// architecture and call style with the same code-shaping settings, and
    /// only for CPU features this machine has. Returns the engine it will run
    /// on, or why no engine took it.
    ///
    /// Only for code from a verified bundle: loading precompiled code runs
    /// it as native code, with no further checks.
    pub fn adopt<'a>(
        &self,
        engines: &'a Engines,
        digest: &str,
        code: &Path,
    ) -> Result<&'a EngineSlot, String> {
        let mut refusals = Vec::new();
        for (slot, key) in engines.all().zip(&self.engine_keys) {
            let entry = self.entry(digest, key);
            // SAFETY: the caller vouches for the bytes (a verified bundle),
            // and wasmtime checks they fit this engine before mapping them.
            match unsafe { Component::deserialize_file(&slot.engine, code) } {
                Ok(_) => {
                    return std::fs::read(code)
                        .map_err(anyhow::Error::from)
                        .and_then(|bytes| write_atomically(&entry, &bytes))
                        .map(|()| slot)
                        .map_err(|e| format!("cannot copy it into the cache: {e:#}"));
                }
                Err(e) => refusals.push(format!("{} ({}): {e}", slot.target, slot.calls)),
            }
        }
        Err(refusals.join("; "))
    }

    /// Whether code for the wasm file at `wasm_path` is cached for one of
    /// the engines.
    pub fn has_code_for(&self, wasm_path: &Path) -> Result<bool> {
        let wasm =
            std::fs::read(wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
        Ok(self.has(&hex(&Sha256::digest(&wasm))))
    }

    /// Whether code for `digest` is cached for one of the engines.
    pub fn has(&self, digest: &str) -> bool {
        self.engine_keys
            .iter()
            .any(|key| self.entry(digest, key).exists())
    }
}

/// A short stable name for the code an engine for `target` and `calls`
/// with `profile` makes. The engine's other settings (component model, async
/// host calls, epoch interruption) are the same in every gatewayd engine; a
/// change to them in a new gatewayd comes with a new wasmtime or is caught
/// when loading.
fn engine_key(target: &CodeTarget, calls: Calls, profile: &CodeProfile) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "wasmtime {WASMTIME_VERSION}; {target:?}; {calls:?}; {profile:?}"
    ));
    hex(&hasher.finalize()[..8])
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
            let wanted = stem.split_once('-').is_some_and(|(digest, engine)| {
                self.engine_keys.iter().any(|key| key == engine) && keep.contains(digest)
            });
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
    // A bare file name ("c.cwasm") has an empty parent: the current folder.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        Some(_) => Path::new("."),
        None => anyhow::bail!("{} is not a file path", path.display()),
    };
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
        let board = CodeProfile::default_for(super::super::Arch::Aarch64);
        let target = CodeTarget::for_triple("aarch64-unknown-linux-gnu").unwrap();
        let key = engine_key(&target, Calls::Plain, &board);
        assert_eq!(key, engine_key(&target, Calls::Plain, &board.clone()));
        let with_features = CodeProfile {
            cpu_features: vec!["has_lse".into()],
            ..board.clone()
        };
        assert_ne!(key, engine_key(&target, Calls::Plain, &with_features));
        let smaller = CodeProfile {
            memory_reservation: 64 << 20,
            ..board.clone()
        };
        assert_ne!(key, engine_key(&target, Calls::Plain, &smaller));
        assert_ne!(
            key,
            engine_key(&target.fallback().unwrap(), Calls::Plain, &board)
        );
        assert_ne!(key, engine_key(&target, Calls::Concurrent, &board));
    }
}
