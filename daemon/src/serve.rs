//! `gatewayd serve`: the service. Reads the config, serves the installed
//! generation (or 503 with none), and takes updates over the admin socket.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::admin::{self, Admin};
use crate::config::{self, Config};
use crate::host::outbound_http::publish_self_address;
use crate::runtime::{Runtime, RuntimeOptions, Triggers};
use crate::shutdown::{self, Signals};
use crate::trigger::http::{self, AppSlot};
use crate::update::controller::{Controller, UpdatePolicy};
use crate::update::generations::Generations;
use crate::update::keys::TrustedKeys;

pub async fn run(config_path: Option<PathBuf>) -> Result<()> {
    let explicit = config_path.is_some();
    let path = config_path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let config = Config::load(&path, explicit)?;
    let keys = TrustedKeys::load(&config.trusted_keys)?;
    if keys.is_empty() {
        tracing::warn!(
            "{}: no trusted_keys: every pushed bundle will be refused",
            path.display()
        );
    }
    let runtime = Runtime::start(RuntimeOptions::from_config(&config)?)?;
    // The brokers' TLS settings ([app] tls_ca_files), made once at start.
    let tls = runtime.tls.clone();
    let generations = Generations::open(&config.state_dir)?;
    let mut activated = crate::systemd::take_listen_fds();
    let listeners = runtime.http_listeners(config.listen, &mut activated)?;
    publish_self_address(&runtime.self_address, listeners.address());
    let slots: Vec<_> = (0..runtime.threads).map(|_| AppSlot::new(None)).collect();
    let pubsub_threads = runtime.pubsub_threads.clone();
    let controller = Arc::new(Controller::new(
        runtime,
        generations,
        keys,
        UpdatePolicy {
            allow_downgrade: config.allow_downgrade,
            health_timeout: config.health_timeout,
            accept_precompiled: config.accept_precompiled,
        },
        Triggers::new(slots.clone()),
    ));
    controller.start_installed().await?;

    tokio::spawn(reload_keys_on_sighup(
        controller.clone(),
        path.clone(),
        explicit,
    ));

    let signals = Signals::install().context("installing signal handlers")?;
    let (trigger, shutdown) = shutdown::channel();
    let admin = Arc::new(Admin::new(
        controller.clone(),
        config.max_bundle_size,
        config.state_dir.join("uploads"),
    ));
    admin.prepare_uploads()?;
    // Every listener is bound before READY=1: a supervisor (or a test) that
    // sees it can push at once.
    let (socket, bound_at) = match crate::systemd::take_named(&mut activated, "admin") {
        Some(fd) => (admin::from_activated(fd)?, None),
        None => (
            admin::bind(&config.admin_socket, config.admin_socket_mode)?,
            Some(config.admin_socket.clone()),
        ),
    };
    let tcp = match &config.admin_tcp {
        Some(tcp) => Some(admin::bind_tcp(tcp).await?),
        None => None,
    };
    let admin_task = tokio::spawn({
        let (shutdown, admin) = (shutdown.clone(), admin.clone());
        async move { admin::serve(socket, bound_at, admin, shutdown).await }
    });
    let admin_tcp = tcp.map(|tcp| {
        let shutdown = shutdown.clone();
        tokio::spawn(async move { admin::serve_tcp(tcp, admin, shutdown).await })
    });
    // Without the `oci` feature the config parser has already refused a source.
    #[cfg(feature = "oci")]
    let follower = match config.fleet.source.clone() {
        Some(settings) => {
            let follower = crate::fleet::follow::Follower::new(
                settings,
                controller.clone(),
                &config.state_dir,
                &config.state_dir.join("uploads"),
                config.max_bundle_size,
            )?;
            Some(tokio::spawn(follower.run(shutdown.clone())))
        }
        None => None,
    };
    #[cfg(not(feature = "oci"))]
    let follower: Option<tokio::task::JoinHandle<()>> = None;
    let fleet_status = match config.fleet.status.clone() {
        Some(settings) => {
            let (controller, shutdown) = (controller.clone(), shutdown.clone());
            Some(tokio::spawn(crate::fleet::status::publish(
                settings, controller, tls, shutdown,
            )))
        }
        None => None,
    };
    println!(
        "gatewayd serving on http://{} (admin socket {})",
        listeners.address(),
        config.admin_socket.display()
    );
    let status = controller.status().await;
    let serving = match (&status.app, &status.version, status.generation) {
        (Some(app), Some(version), Some(n)) => {
            format!("app \"{app}\" version {version} (generation {n})")
        }
        _ => "no app installed".to_string(),
    };
    crate::systemd::notify_serving("READY=1\n", serving, Some(listeners.address()));
    crate::systemd::refresh_status();
    tokio::spawn(signals.drive(trigger));
    let liveness = crate::systemd::watchdog();
    if let Some(liveness) = &liveness {
        pubsub_threads.watch(liveness);
    }
    let served = http::serve(listeners, slots, shutdown, config.drain_timeout, liveness).await;
    if let Some(task) = follower {
        // Between checks it stops at once; an update in progress finishes.
        let _ = task.await;
    }
    if let Some(task) = fleet_status {
        // Says "stopped" at the broker (bounded inside) before the process ends.
        let _ = task.await;
    }
    controller.stop().await;
    for task in std::iter::once(admin_task).chain(admin_tcp) {
        match task.await {
            Ok(Err(e)) => return Err(e),
            Err(e) => tracing::error!("an admin API task failed: {e}"),
            Ok(Ok(())) => {}
        }
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP (`systemctl reload gatewayd`) rereads `trusted_keys` from the
/// config file and the key files it names, so a key can be revoked (or
/// added) without a restart. A config or key that does not load leaves the
/// trusted keys as they were. Other settings take effect at the next start.
async fn reload_keys_on_sighup(controller: Arc<Controller>, path: PathBuf, explicit: bool) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP (trusted_keys reload): {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let loaded = Config::load(&path, explicit)
            .and_then(|config| TrustedKeys::load(&config.trusted_keys));
        match loaded {
            Ok(keys) => {
                let count = controller.reload_keys(keys).await;
                tracing::info!(
                    "SIGHUP: trusted keys reloaded from {}: {count} key(s) trusted \
                     (other settings take effect at the next start)",
                    path.display()
                );
            }
            Err(e) => {
                tracing::error!("SIGHUP: trusted keys not reloaded, the previous ones stay: {e:#}")
            }
        }
    }
}
