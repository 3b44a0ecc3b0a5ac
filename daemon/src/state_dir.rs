//! The state directory: where it is by default, the checks that make it safe
//! to load compiled code from, and the app's key-value stores in it. Shared
//! by `up`, `serve` and the update controller.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::host::key_value::{KeyValueLimits, Stores};
use crate::runtime_config::RuntimeConfig;

/// The app's key-value stores (`<state dir>/kv/<app>/` unless the runtime
/// config places them), with the default store seeded from `--key-value`.
pub async fn open_stores(
    state_dir: &Path,
    app: &str,
    config: &RuntimeConfig,
    limits: KeyValueLimits,
    seed: &[(String, String)],
) -> Result<Arc<Stores>> {
    let stores = Stores::open(
        &state_dir.join("kv").join(folder_name(app)),
        &config.key_value_stores,
        limits,
    )?;
    stores.seed_default(seed).await?;
    Ok(Arc::new(stores))
}

/// The folder an app's state lives in, named after the app when its name is
/// a plain file name (letters, digits, `.`, `_`, `-`, not starting with a
/// dot, at most 64 bytes); otherwise `app-` and a hash of the name. The name
/// comes from a manifest, possibly a pushed bundle's: `"../../tmp/x"` or
/// `"/etc"` must not become a path outside the state dir.
pub fn folder_name(app: &str) -> String {
    let plain = !app.is_empty()
        && app.len() <= 64
        && !app.starts_with('.')
        && app
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if plain {
        return app.to_string();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(app.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("app-{hex}")
}

/// `$XDG_STATE_HOME/gatewayd`, else `~/.local/state/gatewayd`. There is no
/// shared fallback such as /tmp: compiled code is loaded from this folder, so
/// it must belong to us alone.
pub fn default_state_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("gatewayd"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/state/gatewayd"));
    }
    anyhow::bail!("neither XDG_STATE_HOME nor HOME is set: pass --state-dir")
}

/// Creates `dir` (mode 0700) if needed and checks that it is ours and not
/// writable by others: the code cache in it is loaded as native code.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the state dir {}", dir.display()))?;
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("reading the state dir {}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    anyhow::ensure!(
        meta.uid() == uid,
        "state dir {} belongs to uid {}, not to this user ({uid}): refusing to load code from it",
        dir.display(),
        meta.uid()
    );
    anyhow::ensure!(
        meta.mode() & 0o022 == 0,
        "state dir {} is writable by group or others (mode {:o}): refusing to load code from it \
         (chmod go-w it)",
        dir.display(),
        meta.mode() & 0o777
    );
    // Below it, everything code is loaded from: compiled code, and the
    // generations whose bundles may ship some. A sub-folder or file left
    // writable by others (made under a loose umask, or changed since) could
    // have its code swapped.
    for tree in ["cache", "generations"] {
        for entry in walkdir::WalkDir::new(dir.join(tree)).follow_links(false) {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if e.io_error().map(|e| e.kind()) == Some(std::io::ErrorKind::NotFound) => {
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
            };
            let meta = entry
                .metadata()
                .with_context(|| format!("reading {}", entry.path().display()))?;
            anyhow::ensure!(
                meta.uid() == uid && meta.mode() & 0o022 == 0,
                "{} in the state dir belongs to uid {} with mode {:o}: everything the daemon loads \
                 code from must be this user's ({uid}) and not writable by group or others \
                 (chown -R and chmod -R go-w {})",
                entry.path().display(),
                meta.uid(),
                meta.mode() & 0o777,
                dir.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_folders_below_the_state_dir_must_be_private_too() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        ensure_private_dir(&state).unwrap();
        let entry = state.join("cache/x.cwasm");
        std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
        std::fs::write(&entry, b"code").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        ensure_private_dir(&state).unwrap();
        for (path, mode) in [(entry.clone(), 0o666), (state.join("cache"), 0o777)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let error = format!("{:#}", ensure_private_dir(&state).unwrap_err());
            assert!(
                error.contains(&path.display().to_string()) && error.contains("not writable"),
                "{error}"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        ensure_private_dir(&state).unwrap();
    }

    #[test]
    fn an_app_name_never_leaves_the_state_dir() {
        assert_eq!(folder_name("hello"), "hello");
        assert_eq!(folder_name("my-app_2.v1"), "my-app_2.v1");
        for hostile in [
            "../../../tmp/x",
            "/tmp/x",
            "..",
            ".",
            "",
            "a/b",
            "x\0y",
            "名前",
        ] {
            let folder = folder_name(hostile);
            assert!(
                folder.starts_with("app-") && folder.len() == 20,
                "{hostile:?}: {folder}"
            );
        }
        assert_ne!(folder_name("../a"), folder_name("../b"));
        assert_eq!(folder_name(&"x".repeat(64)), "x".repeat(64));
        assert!(folder_name(&"x".repeat(65)).starts_with("app-"));
    }

    #[tokio::test]
    async fn stores_of_a_hostile_name_open_inside_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let config = RuntimeConfig::default();
        open_stores(&state, "../../escaped", &config, Default::default(), &[])
            .await
            .unwrap();
        assert!(!dir.path().join("escaped").exists());
        let kv: Vec<_> = std::fs::read_dir(state.join("kv")).unwrap().collect();
        assert_eq!(kv.len(), 1);
    }
}
