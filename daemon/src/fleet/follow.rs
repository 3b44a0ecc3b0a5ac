//! `[fleet] source`: the gateway follows a registry tag. Every
//! `poll_interval` (with jitter, so a fleet does not poll in step) it asks
//! the tag's digest, one small request; when the tag moved, it downloads
//! the bundle and applies it exactly as a push (signature before unpacking,
//! version rules, health check, atomic switch).
//!
//! Each digest is decided once: applied, or rejected and not retried until
//! the tag moves. The decision is kept in the state directory, so a restart
//! neither downloads the running bundle again nor retries a rejected one.
//! A registry outage changes nothing on the gateway: it serves on and
//! retries with backoff.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::registry::{Pull, Registry, auth};
use super::settings::SourceSettings;
use crate::admin::api::FleetSource;
use crate::shutdown::Shutdown;
use crate::update::controller::{Controller, RejectionKind};

/// What the gateway decided about the tag's last digest.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Decided {
    /// The `oci://` address followed when it was decided.
    source: String,
    digest: String,
    /// `applied` or `rejected`.
    outcome: String,
}

const DECIDED_FILE: &str = "fleet-source.toml";
/// The first retry after a failed check or download; doubles up to the
/// poll interval.
const FIRST_RETRY: Duration = Duration::from_secs(2);

pub struct Follower {
    settings: SourceSettings,
    registry: Registry,
    controller: Arc<Controller>,
    state_dir: PathBuf,
    /// Where downloads land (the admin API's upload folder).
    downloads: PathBuf,
    max_bundle_size: u64,
}

impl Follower {
    pub fn new(
        settings: SourceSettings,
        controller: Arc<Controller>,
        state_dir: &Path,
        downloads: &Path,
        max_bundle_size: u64,
    ) -> anyhow::Result<Self> {
        let registry = Registry::new(
            &settings.reference,
            settings.insecure,
            auth(&settings.username, &settings.password),
        )?;
        Ok(Follower {
            settings,
            registry,
            controller,
            state_dir: state_dir.to_path_buf(),
            downloads: downloads.to_path_buf(),
            max_bundle_size,
        })
    }

    /// Checks the tag at once, then every poll interval, until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) {
        let source = self.settings.reference.to_string();
        tracing::info!(
            "fleet: following {source} (every {:?}{})",
            self.settings.poll_interval,
            if self.settings.insecure {
                ", plain HTTP"
            } else {
                ""
            }
        );
        let mut retry = FIRST_RETRY;
        let mut failing = false;
        loop {
            let checked = self.check(&source, &mut shutdown).await;
            self.report(&source, checked.as_ref().err());
            let wait = match checked {
                Ok(()) => {
                    if failing {
                        tracing::info!("fleet: {source} answers again");
                    }
                    (failing, retry) = (false, FIRST_RETRY);
                    jittered(self.settings.poll_interval)
                }
                Err(e) => {
                    // Said once per outage; the gateway serves on regardless.
                    if !failing {
                        tracing::warn!(
                            "fleet: {e}; serving on, retrying with backoff up to {:?}",
                            self.settings.poll_interval
                        );
                    } else {
                        tracing::debug!("fleet: {e}");
                    }
                    failing = true;
                    let wait = retry;
                    retry = (retry * 2).min(self.settings.poll_interval);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.requested() => return,
            }
        }
    }

    /// One check of the tag: nothing when its digest is decided, else
    /// download and apply. Err: try again sooner than the poll interval.
    async fn check(&self, source: &str, shutdown: &mut Shutdown) -> Result<(), String> {
        let digest = self
            .registry
            .tag_digest()
            .await
            .map_err(|e| format!("{e:#}"))?;
        let decided = self.decided();
        if decided.source == source && decided.digest == digest {
            tracing::debug!("fleet: {source} is still {digest} ({})", decided.outcome);
            return Ok(());
        }
        tracing::info!("fleet: {source} is now {digest}: downloading");
        let started = Instant::now();
        let file = self.downloads.join(format!(
            "fleet-{}.bundle",
            digest.trim_start_matches("sha256:")
        ));
        // What an earlier digest left half-downloaded is of no more use.
        if let Ok(entries) = std::fs::read_dir(&self.downloads) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with("fleet-") && entry.path() != file.with_extension("part") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        // A stop ends a download; an update, once applying, finishes.
        let pulled = tokio::select! {
            pulled = self.registry.pull_bundle(&digest, self.max_bundle_size, &file) => pulled,
            _ = shutdown.requested() => return Ok(()),
        };
        let outcome = match pulled {
            Err(Pull::Unreachable(e)) => return Err(format!("{e:#}")),
            Err(Pull::NotABundle(e)) => {
                tracing::warn!("fleet: rejected {digest}: {e:#}; not retried until the tag moves");
                "rejected"
            }
            Ok(size) => {
                tracing::info!(
                    "fleet: downloaded {digest} ({size} bytes in {:?}): applying",
                    started.elapsed()
                );
                let applied = self.controller.apply(&file, started.elapsed(), false).await;
                let _ = std::fs::remove_file(&file);
                match applied {
                    // The controller logged it (update applied: ...).
                    Ok(_) => "applied",
                    // The gateway's own failure (disk, state): the bundle may
                    // be fine, so it is tried again.
                    Err(rejection) if rejection.kind == RejectionKind::Internal => {
                        return Err(format!("applying {digest}: {}", rejection.message));
                    }
                    Err(_) => {
                        tracing::warn!(
                            "fleet: {source} at {digest} was rejected (above); not retried \
                             until the tag moves"
                        );
                        "rejected"
                    }
                }
            }
        };
        self.remember(&Decided {
            source: source.to_string(),
            digest,
            outcome: outcome.to_string(),
        });
        Ok(())
    }

    /// What `status` (and the fleet's status messages) say about the tag.
    fn report(&self, source: &str, error: Option<&String>) {
        let decided = self.decided();
        let known = decided.source == source;
        self.controller.report_fleet_source(FleetSource {
            source: source.to_string(),
            digest: known.then(|| decided.digest.clone()),
            outcome: known.then(|| decided.outcome.clone()),
            error: error.cloned(),
        });
    }

    fn decided(&self) -> Decided {
        std::fs::read_to_string(self.state_dir.join(DECIDED_FILE))
            .ok()
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    /// Kept durably: written aside, synced, renamed.
    fn remember(&self, decided: &Decided) {
        let path = self.state_dir.join(DECIDED_FILE);
        let temporary = path.with_extension("toml.tmp");
        let written = toml::to_string(decided)
            .map_err(std::io::Error::other)
            .and_then(|text| {
                use std::io::Write as _;
                let mut file = std::fs::File::create(&temporary)?;
                file.write_all(text.as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&temporary, &path)
            });
        if let Err(e) = written {
            // Only costs a second download and decision after a restart.
            tracing::warn!("fleet: {}: not written: {e}", path.display());
        }
    }
}

/// `interval` ± 10%, so gateways started together drift apart.
fn jittered(interval: Duration) -> Duration {
    use std::hash::{BuildHasher as _, Hasher as _};
    // A fresh random seed per call from the standard library's hasher keys.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(interval.as_nanos() as u64);
    let unit = (hasher.finish() % 2001) as f64 / 1000.0 - 1.0; // -1.0 ..= 1.0
    interval.mul_f64(1.0 + 0.1 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let interval = Duration::from_secs(300);
        let waits: Vec<Duration> = (0..50).map(|_| jittered(interval)).collect();
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(270) && *w <= Duration::from_secs(330)),
            "{waits:?}"
        );
        assert!(waits.iter().any(|w| *w != waits[0]), "{waits:?}");
    }
}
