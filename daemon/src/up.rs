//! `gatewayd up`: load one app from a spin.toml and serve it in the foreground.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::app::App;
use crate::cli::UpArgs;
use crate::host::outbound_http::publish_self_address;
use crate::runtime::{Runtime, RuntimeOptions, Triggers};
use crate::shutdown::{self, Signals};
use crate::trigger::http::{self, AppSlot, HttpApp};
use crate::trigger::reconnect::redact;

pub async fn run(args: UpArgs) -> Result<()> {
    if args.build {
        let path = args.path.clone();
        tokio::task::spawn_blocking(move || {
            crate::app::build::run(&crate::app::build::plan(&path)?, &[])
        })
        .await
        .context("the build stopped")??;
    }
    let app = crate::app::load(&args.path)?;
    let has_pubsub = !app.redis_triggers.is_empty() || !app.mqtt_triggers.is_empty();
    if app.http_triggers.is_empty() && !has_pubsub {
        tracing::warn!(
            "app \"{}\" has no HTTP triggers: every request will get 404",
            app.name
        );
    }
    let runtime = Runtime::start(RuntimeOptions::from_up(&args)?)?;
    let loaded = Arc::new(runtime.load_app(app, &args.key_value).await?);
    let mut activated = crate::systemd::take_listen_fds();
    let listeners = runtime.http_listeners(args.listen, &mut activated)?;
    publish_self_address(&runtime.self_address, listeners.address());
    let signals = Signals::install().context("installing signal handlers")?;
    let (trigger, shutdown) = shutdown::channel();
    let slots: Vec<_> = (0..runtime.threads).map(|_| AppSlot::new(None)).collect();
    let triggers = Triggers::new(slots.clone());
    triggers.switch(&loaded);
    let version = loaded.app.version.as_deref().unwrap_or("");
    crate::metrics::global()
        .updates
        .running(&loaded.app.name, version, 0);
    print_banner(&loaded.app, listeners.address(), &loaded.http_apps[0]);
    crate::systemd::notify_serving(
        "READY=1\n",
        format!("app \"{}\"", loaded.app.name),
        Some(listeners.address()),
    );
    crate::systemd::refresh_status();

    tokio::spawn(signals.drive(trigger));
    let liveness = crate::systemd::watchdog();
    if let Some(liveness) = &liveness {
        runtime.pubsub_threads.watch(liveness);
    }
    let served = http::serve(listeners, slots, shutdown, args.drain_timeout, liveness).await;
    triggers.stop().await;
    served?;
    tracing::info!("stopped");
    Ok(())
}

pub fn print_banner(app: &App, address: std::net::SocketAddr, http_app: &HttpApp) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving app \"{}\" on http://{address}", app.name);
    let _ = writeln!(out, "Available routes:");
    for (pattern, target) in http_app.routes() {
        let _ = writeln!(out, "  GET http://{address}{pattern} -> {target}");
    }
    if !app.redis_triggers.is_empty() || !app.mqtt_triggers.is_empty() {
        let _ = writeln!(out, "Subscriptions:");
    }
    for t in &app.redis_triggers {
        let _ = writeln!(
            out,
            "  {} channel {:?} -> {}",
            redact(&t.address),
            t.channel,
            t.component
        );
    }
    if let Some(broker) = &app.mqtt_broker {
        for t in &app.mqtt_triggers {
            let _ = writeln!(
                out,
                "  {} topic {:?} (QoS {}) -> {}",
                redact(&broker.address),
                t.topic,
                t.qos,
                t.component
            );
        }
    }
    let _ = out.flush();
}
