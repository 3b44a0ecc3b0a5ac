//! The running generation and the only ways it changes: start what is
//! installed, apply a bundle, roll back. One change at a time.
//!
//! Applying: verify (signature and every file, nothing written yet), refuse
//! a version that is not newer, unpack into a staging folder and commit it as
//! generation N, load it (compile every component for this CPU), health-check
//! it (every component instantiates), switch (new requests and messages go to
//! N, in-flight ones finish on the old generation), then persist the pointers
//! (current N, previous the old one) and delete older generations. A failure
//! before the switch leaves the running app untouched.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::bundle::{BundleManifest, Limits};
use super::generations::is_newer;
use super::generations::{Generations, Pointers};
use super::keys::TrustedKeys;
use super::reader;
use crate::admin::api::{Applied, FleetSource, LastUpdate, Timings};
use crate::runtime::{Loaded, Runtime, Triggers};

mod status;

/// Test hook: `GATEWAYD_TEST_PAUSE_AT=<step>` stops an update at that step
/// (for a crash test to kill the process there).
const PAUSE_ENV: &str = "GATEWAYD_TEST_PAUSE_AT";

/// The `[update]` rules a bundle must meet.
pub struct UpdatePolicy {
    /// Accept a version not greater than the installed one.
    pub allow_downgrade: bool,
    /// How long a generation's health check may take (a start function
    /// that loops must not wedge the update lock).
    pub health_timeout: Duration,
    /// Take code precompiled in a bundle into the cache. Such code runs as
    /// native code, so with it a signing key is code execution on the
    /// board; without it the gateway compiles every component itself.
    pub accept_precompiled: bool,
}

pub struct Controller {
    runtime: Runtime,
    generations: Generations,
    /// Replaced as a whole by [`Controller::reload_keys`].
    keys: std::sync::RwLock<TrustedKeys>,
    limits: Limits,
    policy: UpdatePolicy,
    triggers: Triggers,
    started: Instant,
    state: tokio::sync::Mutex<State>,
    /// Told after every update or rollback, refused ones included, and
    /// when the followed registry tag's state changes.
    changes: tokio::sync::watch::Sender<()>,
    /// What the fleet follower last reported (`[fleet] source`).
    fleet_source: std::sync::Mutex<Option<FleetSource>>,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    last_update: Option<LastUpdate>,
}

struct Running {
    generation: u64,
    manifest: BundleManifest,
    loaded: Arc<Loaded>,
}

/// A change that was refused; the running app is untouched.
#[derive(Debug)]
pub struct Rejection {
    pub kind: RejectionKind,
    /// One word for metrics (`gatewayd_updates_total{reason}`).
    pub reason: &'static str,
    pub message: String,
}

/// Why a change was refused (the admin API maps each to an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The bundle is not acceptable: signature, files, app, health check.
    Invalid,
    /// Acceptable on its own, not now: a downgrade, no previous generation.
    Conflict,
    /// This gateway failed (disk, state dir); the bundle may be fine.
    Internal,
}

pub(super) fn reject(
    kind: RejectionKind,
    reason: &'static str,
    message: impl std::fmt::Display,
) -> Rejection {
    Rejection {
        kind,
        reason,
        message: message.to_string(),
    }
}

impl Controller {
    pub fn new(
        runtime: Runtime,
        generations: Generations,
        keys: TrustedKeys,
        policy: UpdatePolicy,
        triggers: Triggers,
    ) -> Self {
        Self {
            runtime,
            generations,
            keys: std::sync::RwLock::new(keys),
            limits: Limits::default(),
            policy,
            triggers,
            started: Instant::now(),
            state: tokio::sync::Mutex::default(),
            changes: tokio::sync::watch::Sender::new(()),
            fleet_source: std::sync::Mutex::default(),
        }
    }

    /// Starts the installed generation; if it does not load, the previous
    /// one (and says so); with neither, serves 503 until a bundle arrives.
    pub async fn start_installed(&self) -> Result<()> {
        let pointers = self.generations.pointers()?;
        let mut state = self.state.lock().await;
        let mut failures = Vec::new();
        for n in [pointers.current, pointers.previous].into_iter().flatten() {
            match self.prepare(n).await {
                Ok((manifest, loaded)) => {
                    if !failures.is_empty() {
                        // Said in the log and in `status` (last_update), so an
                        // operator who only asks the gateway learns it too.
                        let message = format!(
                            "at start-up {}; fell back to the previous generation {n} \
                             (app \"{}\" version {})",
                            failures.join("; "),
                            manifest.app,
                            manifest.version
                        );
                        tracing::error!("{message}");
                        self.generations.set_pointers(Pointers {
                            current: Some(n),
                            previous: None,
                        })?;
                        state.last_update = Some(last_update(
                            "fell back",
                            &message,
                            Some(manifest.version.clone()),
                        ));
                    }
                    tracing::info!(
                        "serving generation {n}: app \"{}\" version {}",
                        manifest.app,
                        manifest.version
                    );
                    self.switch(&mut state, n, manifest, loaded);
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!("generation {n} does not start: {}", e.message);
                    failures.push(format!("generation {n} did not start: {}", e.message));
                }
            }
        }
        if !failures.is_empty() {
            state.last_update = Some(last_update(
                "failed",
                &format!("at start-up {}", failures.join("; ")),
                None,
            ));
        }
        tracing::warn!("no app installed: HTTP requests get 503 until a bundle is pushed");
        Ok(())
    }

    /// Replaces the trusted keys (SIGHUP after an operator edited
    /// `trusted_keys` or a key file): a revoked key stops working without a
    /// restart. Waits for an update in progress to finish; returns how many
    /// keys are trusted now.
    pub async fn reload_keys(&self, keys: TrustedKeys) -> usize {
        let _update = self.state.lock().await;
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
        count
    }

    /// Applies the bundle at `bundle` (uploaded in `upload`). A bundle of
    /// another app than the running one is refused unless `replace_app`.
    pub async fn apply(
        &self,
        bundle: &Path,
        upload: Duration,
        replace_app: bool,
    ) -> Result<Applied, Rejection> {
        let mut state = self.state.lock().await;
        // The version of a bundle whose signature held, so that `status`
        // says which version a later step refused.
        let mut verified_version = None;
        let result = self
            .apply_locked(
                &mut state,
                bundle,
                upload,
                replace_app,
                &mut verified_version,
            )
            .await;
        state.last_update = Some(match &result {
            Ok(applied) => last_update("ok", &applied.message, applied.version.clone()),
            Err(rejection) => last_update("rejected", &rejection.message, verified_version),
        });
        self.changes.send_replace(());
        let metrics = &crate::metrics::global().updates;
        match &result {
            Ok(applied) => {
                metrics.applied();
                tracing::info!("update applied: {}", applied.message)
            }
            Err(rejection) => {
                metrics.rejected(rejection.reason);
                tracing::warn!("update rejected: {}", rejection.message)
            }
        }
        result
    }

    async fn apply_locked(
        &self,
        state: &mut State,
        bundle: &Path,
        upload: Duration,
        replace_app: bool,
        verified_version: &mut Option<String>,
    ) -> Result<Applied, Rejection> {
        let mut timings = Timings {
            upload: Some(upload.as_millis() as u64),
            ..Timings::default()
        };
        let mut clock = Instant::now();
        let mut lap = |step: fn(&mut Timings) -> &mut Option<u64>, timings: &mut Timings| {
            *step(timings) = Some(clock.elapsed().as_millis() as u64);
            clock = Instant::now();
        };

        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        if keys.is_empty() {
            return Err(reject(
                RejectionKind::Invalid,
                "no_trusted_keys",
                "no trusted_keys are configured: every bundle is refused",
            ));
        }
        let verified = blocking({
            let (bundle, keys, limits) = (bundle.to_path_buf(), keys.clone(), self.limits.clone());
            move || reader::verify(&bundle, &keys, &limits)
        })
        .await
        .map_err(|e| reject(RejectionKind::Invalid, "verification", format!("{e:#}")))?;
        lap(|t| &mut t.verify, &mut timings);
        pause_point("verified").await;
        let manifest = verified.manifest;
        *verified_version = Some(manifest.version.clone());
        if let Some(running) = &state.running
            && running.manifest.app != manifest.app
            && !replace_app
        {
            return Err(reject(
                RejectionKind::Conflict,
                "other_app",
                format!(
                    "this gateway runs app \"{}\"; the bundle is app \"{}\": to replace \
                     one app by another, push with --replace-app",
                    running.manifest.app, manifest.app
                ),
            ));
        }
        // Newer than the highest version of this app ever installed here,
        // not only than the running one: a rollback, or a turn with another
        // app, must not reopen the door to an old signed bundle.
        let highest = self
            .generations
            .highest_installed(&manifest.app)
            .map_err(|e| reject(RejectionKind::Internal, "internal", format!("{e:#}")))?;
        let running = state
            .running
            .as_ref()
            .filter(|r| r.manifest.app == manifest.app)
            .map(|r| r.manifest.version.clone());
        if let Some(floor) = highest_of(highest, running) {
            check_version(&floor, &manifest.version, self.policy.allow_downgrade)?;
        }

        let n = self
            .generations
            .next_number()
            .map_err(|e| reject(RejectionKind::Internal, "internal", format!("{e:#}")))?;
        let staging = self.generations.staging(n);
        let unpacked = blocking({
            let (bundle, keys, limits) = (bundle.to_path_buf(), keys, self.limits.clone());
            let staging = staging.clone();
            let text = manifest.to_toml();
            move || -> Result<()> {
                std::fs::create_dir(&staging)?;
                reader::unpack(&bundle, &keys, &limits, &staging.join("app"))?;
                let path = staging.join(super::bundle::MANIFEST);
                std::fs::write(&path, text)?;
                std::fs::File::open(&path)?.sync_all()?;
                Ok(())
            }
        })
        .await;
        if let Err(e) = unpacked.and_then(|()| self.generations.commit(n).map(drop)) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(reject(
                RejectionKind::Invalid,
                "unpack",
                format!("unpacking: {e:#}"),
            ));
        }
        lap(|t| &mut t.unpack, &mut timings);
        pause_point("unpacked").await;

        let prepared = self.prepare(n).await;
        lap(|t| &mut t.compile, &mut timings);
        pause_point("loaded").await;
        let (manifest, loaded) = match prepared {
            Ok(prepared) => prepared,
            Err(rejection) => {
                let _ = std::fs::remove_dir_all(self.generations.path(n));
                return Err(rejection);
            }
        };
        if let Err(e) = self.health_check(&loaded, &manifest).await {
            let _ = std::fs::remove_dir_all(self.generations.path(n));
            return Err(reject(
                RejectionKind::Invalid,
                "health_check",
                format!("health check failed: {e:#}"),
            ));
        }
        lap(|t| &mut t.health, &mut timings);
        pause_point("checked").await;

        let previous = state.running.as_ref().map(|r| r.generation);
        let (app, version) = (manifest.app.clone(), manifest.version.clone());
        self.switch_announced(state, n, manifest, loaded);
        pause_point("switched").await;
        self.persist(n, previous)?;
        lap(|t| &mut t.switch, &mut timings);
        Ok(Applied {
            ok: true,
            generation: Some(n),
            message: format!("app \"{app}\" version {version} is generation {n}"),
            app: Some(app),
            version: Some(version),
            timings_ms: timings,
        })
    }

    /// Switches back to the previous generation.
    pub async fn rollback(&self) -> Result<Applied, Rejection> {
        let mut state = self.state.lock().await;
        let pointers = self
            .generations
            .pointers()
            .map_err(|e| reject(RejectionKind::Internal, "internal", format!("{e:#}")))?;
        let Some(previous) = pointers.previous else {
            return Err(reject(
                RejectionKind::Conflict,
                "no_previous",
                "no previous generation",
            ));
        };
        let started = Instant::now();
        let (manifest, loaded) = self.prepare(previous).await?;
        self.health_check(&loaded, &manifest).await.map_err(|e| {
            reject(
                RejectionKind::Invalid,
                "health_check",
                format!("the previous generation fails its health check: {e:#}"),
            )
        })?;
        let (app, version) = (manifest.app.clone(), manifest.version.clone());
        self.switch_announced(&mut state, previous, manifest, loaded);
        self.persist(previous, pointers.current)?;
        let message =
            format!("rolled back: app \"{app}\" version {version} is generation {previous} again");
        tracing::info!("{message}");
        crate::metrics::global().updates.rollbacks.inc();
        state.last_update = Some(last_update("ok", &message, Some(version.clone())));
        self.changes.send_replace(());
        Ok(Applied {
            ok: true,
            generation: Some(previous),
            app: Some(app),
            version: Some(version),
            message,
            timings_ms: Timings {
                switch: Some(started.elapsed().as_millis() as u64),
                ..Timings::default()
            },
        })
    }

    /// Stops the running generation's pub/sub triggers (at shutdown).
    pub async fn stop(&self) {
        self.triggers.stop().await;
    }

    /// Loads generation `n` (compiling what the cache lacks).
    async fn prepare(&self, n: u64) -> Result<(BundleManifest, Arc<Loaded>), Rejection> {
        let manifest = self
            .generations
            .manifest(n)
            .map_err(|e| reject(RejectionKind::Internal, "internal", format!("{e:#}")))?;
        let root = self.generations.path(n).join("app");
        let app = crate::app::load(&root.join(&manifest.manifest)).map_err(|e| {
            reject(
                RejectionKind::Invalid,
                "load",
                format!("the app does not load: {e:#}"),
            )
        })?;
        confine_to_bundle(&app, &root).map_err(|e| reject(RejectionKind::Invalid, "load", e))?;
        let runtime = &self.runtime;
        if self.policy.accept_precompiled {
            tokio::task::block_in_place(|| {
                super::shipped_code::adopt(&runtime.engines, &runtime.cache, &manifest, &root)
            });
        } else if !manifest.precompiled.is_empty() {
            tracing::info!(
                "not using the code precompiled in the bundle ([update] accept_precompiled = \
                 false): compiling every component here"
            );
        }
        if !crate::engine::CAN_COMPILE {
            tokio::task::block_in_place(|| {
                super::runtime_only::check(runtime, &app, &manifest, &root)
            })?;
        }
        let loaded = runtime.load_app(app, &[]).await.map_err(|e| {
            reject(
                RejectionKind::Invalid,
                "load",
                format!("the app does not load: {e:#}"),
            )
        })?;
        Ok((manifest, Arc::new(loaded)))
    }

    /// Makes `loaded` the running generation: the triggers' owner swaps HTTP
    /// at once and moves pub/sub over in the background (see
    /// `runtime::triggers`), so the update lock is not held while old
    /// messages drain.
    fn switch(
        &self,
        state: &mut State,
        generation: u64,
        manifest: BundleManifest,
        loaded: Arc<Loaded>,
    ) {
        self.triggers.switch(&loaded);
        crate::metrics::global()
            .updates
            .running(&manifest.app, &manifest.version, generation);
        // The staged file trees of the new and the replaced generation stay
        // (requests still in flight on the old one open its tree); older ones
        // would pile up, one per update.
        let mut keep: std::collections::HashSet<std::path::PathBuf> = loaded
            .executor
            .staged_files()
            .map(Path::to_path_buf)
            .collect();
        if let Some(old) = &state.running {
            keep.extend(old.loaded.executor.staged_files().map(Path::to_path_buf));
        }
        if let Err(e) = self
            .generations
            .record_installed(&manifest.app, &manifest.version)
        {
            tracing::error!("could not record the installed version: {e:#}");
        }
        state.running = Some(Running {
            generation,
            manifest,
            loaded,
        });
        let files = self.runtime.options.state_dir.join("files");
        let removed = crate::host::wasi::remove_staged_except(&files, &keep);
        if removed > 0 {
            tracing::info!("removed {removed} staged file trees no kept generation uses");
        }
    }

    /// The generation's health check (every component instantiates; the
    /// bundle's health route answers 2xx), within `health_timeout`.
    async fn health_check(&self, loaded: &Loaded, manifest: &BundleManifest) -> Result<()> {
        let route = manifest.health_route.as_deref();
        tokio::time::timeout(self.policy.health_timeout, loaded.health_check(route))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "it took longer than [update] health_timeout ({:?}): a start function \
                     that does not return?",
                    self.policy.health_timeout
                )
            })?
    }

    /// [`Controller::switch`] while running, told to the service manager:
    /// `RELOADING=1`, then `READY=1` with the new status line. (At start-up
    /// the serve command announces readiness itself, once all is bound.)
    fn switch_announced(
        &self,
        state: &mut State,
        generation: u64,
        manifest: BundleManifest,
        loaded: Arc<Loaded>,
    ) {
        crate::systemd::notify("RELOADING=1");
        let serving = format!(
            "app \"{}\" version {} (generation {generation})",
            manifest.app, manifest.version
        );
        self.switch(state, generation, manifest, loaded);
        crate::systemd::notify_serving("READY=1\n", serving, None);
    }

    fn persist(&self, current: u64, previous: Option<u64>) -> Result<(), Rejection> {
        self.generations
            .set_pointers(Pointers {
                current: Some(current),
                previous,
            })
            .map_err(|e| {
                reject(
                    RejectionKind::Internal,
                    "internal",
                    format!("persisting the switch: {e:#}"),
                )
            })?;
        let keep: Vec<u64> = [Some(current), previous].into_iter().flatten().collect();
        self.generations.remove_others(&keep);
        // Compiled code of components no kept generation has: on a board's
        // flash, every update would otherwise leave megabytes behind.
        let mut digests = std::collections::BTreeSet::new();
        for n in &keep {
            match self.generations.manifest(*n) {
                Ok(manifest) => digests.extend(manifest.files.into_iter().map(|f| f.sha256)),
                // Without the full picture, keep everything.
                Err(_) => return Ok(()),
            }
        }
        let removed = self.runtime.cache.retain(&digests);
        if removed > 0 {
            tracing::info!("removed {removed} compiled-code cache entries no kept generation uses");
        }
        Ok(())
    }
}

/// A pushed app may use only what its bundle brought: every component
/// source and every file it mounts must resolve inside the generation's
/// `app/` folder. A signed manifest naming `/usr/lib/x.wasm` or
/// `../../../etc/shadow` would otherwise reach the board's own files.
fn confine_to_bundle(app: &crate::app::App, root: &Path) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    for component in app.components.values() {
        let paths = std::iter::once(&component.source)
            .chain(component.files.iter().map(|mount| &mount.source));
        for path in paths {
            let inside = path
                .canonicalize()
                .is_ok_and(|resolved| resolved.starts_with(&root));
            if !inside {
                return Err(format!(
                    "component \"{}\": {} is outside the bundle; a pushed app may only use \
                     files it brings",
                    component.id,
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// The higher (semver) of two versions.
fn highest_of(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if is_newer(&b, &a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// A bundle must be newer (semver) than the installed one, unless downgrades
/// are allowed; a version that does not parse is never newer.
fn check_version(running: &str, new: &str, allow_downgrade: bool) -> Result<(), Rejection> {
    if !is_newer(new, running) && !allow_downgrade {
        return Err(reject(
            RejectionKind::Conflict,
            "downgrade",
            format!(
                "version {new} is not newer than {running}, the highest installed (set [update] allow_downgrade = true to allow)"
            ),
        ));
    }
    Ok(())
}

fn last_update(result: &str, message: &str, version: Option<String>) -> LastUpdate {
    LastUpdate {
        result: result.to_string(),
        message: message.to_string(),
        version,
        at_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("a blocking task failed")?
}

async fn pause_point(step: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|at| at == step) {
        tracing::warn!("test pause at {step}");
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_versions_unless_downgrades_are_allowed() {
        assert!(check_version("1.0.0", "1.0.1", false).is_ok());
        assert!(
            check_version("1.9.0", "1.10.0", false).is_ok(),
            "semver, not text"
        );
        assert!(check_version("1.0.0-rc.1", "1.0.0", false).is_ok());
        for (running, new) in [("1.0.0", "1.0.0"), ("1.1.0", "1.0.9"), ("1.0.0", "one")] {
            let refused = check_version(running, new, false).unwrap_err();
            assert_eq!(refused.kind, RejectionKind::Conflict, "{running} -> {new}");
            assert!(
                refused.message.contains("allow_downgrade"),
                "{}",
                refused.message
            );
            assert!(check_version(running, new, true).is_ok());
        }
    }

    #[test]
    fn a_last_update_carries_its_time() {
        let last = last_update("fell back", "why", Some("1.0.0".into()));
        assert_eq!(last.result, "fell back");
        assert!(last.at_unix.is_some_and(|t| t > 1_700_000_000));
    }
}
