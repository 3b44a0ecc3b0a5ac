//! WASI for one component: environment, read-only files, stdio to the log, and
//! no network sockets.
//!
//! The manifest's `files` are staged once, at load, into a folder of the state
//! directory (hard links where possible, copies otherwise) that every instance
//! gets as a read-only preopen at `/`. Staging keeps the guest's view to exactly
//! the granted files, whatever else lives beside them. The folder is named by a
//! digest of the mounts (paths, sizes, modification times) and created by
//! renaming a finished temporary folder, so gateways sharing a state dir never
//! see each other's half-staged files, and an unchanged app stages nothing.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use sha2::{Digest as _, Sha256};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::log_stream::{LogStream, Stream};
use crate::app::FileMount;

/// What every instance of one component gets from WASI, prepared at load.
pub struct WasiTemplate {
    component_id: Arc<str>,
    environment: Vec<(String, String)>,
    root: Option<PathBuf>,
}

impl WasiTemplate {
    /// Prepares WASI for a component, staging its `files` under `files_dir`.
    pub fn new(
        component_id: Arc<str>,
        environment: Vec<(String, String)>,
        files: &[FileMount],
        files_dir: &Path,
    ) -> Result<Self> {
        let root = if files.is_empty() {
            None
        } else {
            let root = stage_files(files, files_dir).with_context(|| {
                format!(
                    "component \"{component_id}\": staging files into {}",
                    files_dir.display()
                )
            })?;
            Some(root)
        };
        Ok(Self {
            component_id,
            environment,
            root,
        })
    }

    /// A fresh WASI context for one instance.
    pub fn build(&self) -> Result<WasiCtx> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .envs(&self.environment)
            .stdout(LogStream::new(self.component_id.clone(), Stream::Stdout))
            .stderr(LogStream::new(self.component_id.clone(), Stream::Stderr))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        if let Some(root) = &self.root {
            builder
                .preopened_dir(root, "/", FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("opening {} for the guest", root.display()))?;
        }
        Ok(builder.build())
    }
}

impl WasiTemplate {
    /// The staged tree this component's instances see as `/`, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }
}

/// Removes the staged trees in `files_dir` that are not in `keep` (trees of
/// generations no longer kept; staging folders in progress are left alone);
/// returns how many went.
pub fn remove_staged_except(files_dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> usize {
    let Ok(entries) = std::fs::read_dir(files_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
        .filter(|entry| !keep.contains(&entry.path()))
        .filter(|entry| std::fs::remove_dir_all(entry.path()).is_ok())
        .count()
}

/// Stages `files` into `<files_dir>/<digest>/` unless already there; returns it.
fn stage_files(files: &[FileMount], files_dir: &Path) -> Result<PathBuf> {
    let mut digest = Sha256::new();
    for mount in files {
        let meta = std::fs::metadata(&mount.source)
            .with_context(|| format!("reading {}", mount.source.display()))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        digest.update(mount.source.as_os_str().as_encoded_bytes());
        digest.update([0]);
        digest.update(mount.destination.as_bytes());
        digest.update([0]);
        digest.update(meta.len().to_le_bytes());
        digest.update(modified.as_nanos().to_le_bytes());
        // The change time cannot be set back by `cp -p`, `tar -x` or `rsync
        // -t` the way the modification time can, and the inode number changes
        // when a file is replaced.
        digest.update(meta.ino().to_le_bytes());
        digest.update(meta.ctime().to_le_bytes());
        digest.update(meta.ctime_nsec().to_le_bytes());
    }
    let name: String = digest.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let root = files_dir.join(&name);
    if root.is_dir() {
        return Ok(root);
    }
    std::fs::create_dir_all(files_dir)?;
    let staging = files_dir.join(format!(".{name}.tmp-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    std::fs::create_dir_all(&staging)?;
    for mount in files {
        let relative = mount.destination.trim_start_matches('/');
        let target = staging.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // A symlink (the manifest may grant one that stays inside the app)
        // would dangle in the guest's root: stage what it points to.
        let source = mount
            .source
            .canonicalize()
            .with_context(|| format!("resolving {}", mount.source.display()))?;
        if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target)
                .with_context(|| format!("copying {} to {}", source.display(), target.display()))?;
        }
    }
    // Another gateway may have staged the same files meanwhile: theirs is as
    // good as ours.
    if std::fs::rename(&staging, &root).is_err() && root.is_dir() {
        let _ = std::fs::remove_dir_all(&staging);
    } else if !root.is_dir() {
        anyhow::bail!("could not create {}", root.display());
    }
    Ok(root)
}
