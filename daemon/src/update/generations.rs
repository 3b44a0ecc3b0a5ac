//! The generation store in the state dir: `generations/<n>/` holds one
//! unpacked bundle (`bundle.toml` and `app/`), and `generations/state.toml`
//! names the current and the previous generation; `generations/installed.toml`
//! keeps the highest version ever installed of each app. A generation folder appears
//! under its number only once it is complete (it is filled as `tmp-<n>` and
//! renamed), and the pointers change by writing a new file, fsyncing it and
//! renaming it over the old one, so after a power cut the state is the old or
//! the new one, never a mixture.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::bundle::BundleManifest;

const STATE_FILE: &str = "state.toml";
const INSTALLED_FILE: &str = "installed.toml";

/// The highest version ever installed, per app: a gateway does not take an
/// older signed bundle of an app again (after a rollback, or once it was
/// replaced by another app), unless downgrades are allowed (TUF's rule).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Installed {
    #[serde(default)]
    highest: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pointers {
    pub current: Option<u64>,
    pub previous: Option<u64>,
}

pub struct Generations {
    dir: PathBuf,
}

impl Generations {
    /// Opens (creating) `<state_dir>/generations`, removing what an
    /// interrupted update left behind.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("generations");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("tmp-") || name.ends_with(".tmp") {
                tracing::info!("removing {name}, left by an interrupted update");
                let path = entry.path();
                let _ = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
            }
        }
        Ok(Self { dir })
    }

    pub fn pointers(&self) -> Result<Pointers> {
        let path = self.dir.join(STATE_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{}: unreadable", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Pointers::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Replaces the pointers atomically and durably.
    pub fn set_pointers(&self, pointers: Pointers) -> Result<()> {
        self.replace_file(STATE_FILE, &toml::to_string(&pointers)?)
    }

    fn installed(&self) -> Result<Installed> {
        let path = self.dir.join(INSTALLED_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str(&text).with_context(|| format!("{}: unreadable", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Installed::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The highest version of `app` this gateway ever installed.
    pub fn highest_installed(&self, app: &str) -> Result<Option<String>> {
        Ok(self.installed()?.highest.remove(app))
    }

    /// Records that `version` of `app` is installed, if it is the highest
    /// so far (semver; a version that does not parse is never higher).
    pub fn record_installed(&self, app: &str, version: &str) -> Result<()> {
        let mut installed = self.installed()?;
        let higher = installed
            .highest
            .get(app)
            .is_none_or(|known| is_newer(version, known));
        if higher {
            installed
                .highest
                .insert(app.to_string(), version.to_string());
            self.replace_file(INSTALLED_FILE, &toml::to_string(&installed)?)?;
        }
        Ok(())
    }

    /// Writes `name` in the generations folder atomically and durably.
    fn replace_file(&self, name: &str, text: &str) -> Result<()> {
        let temporary = self.dir.join(format!("{name}.tmp"));
        let mut file = File::create(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, self.dir.join(name))?;
        sync_dir(&self.dir)
    }

    /// A number no generation has used.
    pub fn next_number(&self) -> Result<u64> {
        let mut highest = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let number = name.strip_prefix("tmp-").unwrap_or(&name);
            if let Ok(n) = number.parse::<u64>() {
                highest = highest.max(n);
            }
        }
        let pointers = self.pointers()?;
        Ok(highest
            .max(pointers.current.unwrap_or(0))
            .max(pointers.previous.unwrap_or(0))
            + 1)
    }

    /// Where generation `n` is filled before it is complete.
    pub fn staging(&self, n: u64) -> PathBuf {
        self.dir.join(format!("tmp-{n}"))
    }

    pub fn path(&self, n: u64) -> PathBuf {
        self.dir.join(n.to_string())
    }

    /// A staging folder becomes generation `n`: its files reach the disk,
    /// then it is renamed into place.
    pub fn commit(&self, n: u64) -> Result<PathBuf> {
        let staging = self.staging(n);
        sync_tree(&staging)?;
        let path = self.path(n);
        std::fs::rename(&staging, &path)
            .with_context(|| format!("renaming {} to {}", staging.display(), path.display()))?;
        sync_dir(&self.dir)?;
        Ok(path)
    }

    /// The signed manifest generation `n` was unpacked from.
    pub fn manifest(&self, n: u64) -> Result<BundleManifest> {
        let path = self.path(n).join(super::bundle::MANIFEST);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{}: unreadable", path.display()))
    }

    /// Deletes every generation but `keep`.
    pub fn remove_others(&self, keep: &[u64]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if let Ok(n) = name.to_string_lossy().parse::<u64>()
                && !keep.contains(&n)
                && let Err(e) = std::fs::remove_dir_all(entry.path())
            {
                tracing::warn!("could not remove old generation {n}: {e}");
            }
        }
    }
}

/// Whether `new` is a higher semver version than `old`; a version that
/// does not parse is never newer (bundles are checked to parse).
pub fn is_newer(new: &str, old: &str) -> bool {
    let parse = |v: &str| semver::Version::parse(v).ok();
    matches!((parse(new), parse(old)), (Some(new), Some(old)) if new > old)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// fsyncs every folder under `root` (files are synced as they are written).
fn sync_tree(root: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry?;
        if entry.file_type().is_dir() {
            sync_dir(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_numbers_and_leftovers() {
        let state = tempfile::tempdir().unwrap();
        let g = Generations::open(state.path()).unwrap();
        assert_eq!(g.pointers().unwrap(), Pointers::default());
        assert_eq!(g.next_number().unwrap(), 1);
        std::fs::create_dir(g.staging(1)).unwrap();
        std::fs::write(g.staging(1).join("x"), b"x").unwrap();
        let path = g.commit(1).unwrap();
        assert!(path.join("x").is_file());
        g.set_pointers(Pointers {
            current: Some(1),
            previous: None,
        })
        .unwrap();
        assert_eq!(g.pointers().unwrap().current, Some(1));
        assert_eq!(g.highest_installed("a").unwrap(), None);
        for (version, highest) in [
            ("1.2.0", "1.2.0"),
            ("1.10.0", "1.10.0"),
            ("1.9.0", "1.10.0"),
        ] {
            g.record_installed("a", version).unwrap();
            assert_eq!(g.highest_installed("a").unwrap().as_deref(), Some(highest));
        }
        g.record_installed("b", "0.1.0").unwrap();
        assert_eq!(g.highest_installed("a").unwrap().as_deref(), Some("1.10.0"));
        std::fs::create_dir(g.staging(2)).unwrap();
        assert_eq!(g.next_number().unwrap(), 3);
        // An interrupted update's folder is gone at the next open.
        let g = Generations::open(state.path()).unwrap();
        assert!(!g.staging(2).exists());
        assert_eq!(g.pointers().unwrap().current, Some(1));
        g.remove_others(&[]);
        assert!(!g.path(1).exists());
    }
}
