//! `gatewayd up`: load one app from a spin.toml and serve it in the foreground.

use std::io::Write as _;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::Semaphore;

use crate::app::App;
use crate::app::variables::CommandLineValues;
use crate::cli::UpArgs;
use crate::engine::{self, EngineSettings, EpochTicker, cache::CodeCache};
use crate::executor::InstanceLimits;
use crate::host::key_value::KeyValueLimits;
use crate::host::outbound_http::{SelfAddress, publish_self_address};
use crate::loaded::{Loaded, Shared};
use crate::runtime_config::RuntimeConfig;
use crate::shutdown::{self, Signals};
use crate::state_dir::{default_state_dir, ensure_private_dir, open_stores};
use crate::trigger::http::{self, AppSlot, HttpApp, HttpOptions, ReusePolicy};
use crate::trigger::reconnect::redact;

pub async fn run(args: UpArgs) -> Result<()> {
    let mut app = crate::app::load(&args.path)?;
    let has_pubsub = !app.redis_triggers.is_empty() || !app.mqtt_triggers.is_empty();
    if app.http_triggers.is_empty() && !has_pubsub {
        tracing::warn!(
            "app \"{}\" has no HTTP triggers: every request will get 404",
            app.name
        );
    }
    let values = CommandLineValues::parse(&args.variables)?;
    crate::app::variables::resolve(&mut app, &values, |name| std::env::var(name).ok())?;
    for component in app.components.values_mut() {
        component.environment.extend(args.env.iter().cloned());
    }
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => default_state_dir()?,
    };
    ensure_private_dir(&state_dir)?;
    let max_memory = usize::try_from(args.max_instance_memory)
        .context("--max-instance-memory is larger than this machine's address space")?;

    let mut settings = EngineSettings {
        max_instance_memory: args.max_instance_memory,
        max_instances: args.max_instances,
        pooling: args.pooling,
        ..EngineSettings::defaults()
    };
    if let Some(bytes) = args.memory_reservation {
        settings.profile.memory_reservation = bytes;
    }
    settings.profile.cpu_features = args.cpu_features.clone();
    let (engines, description) = engine::build(&settings)?;
    tracing::info!("engine ready: {description}");
    let _ticker = EpochTicker::start(engines.all().map(|(e, _)| e.clone()).collect())
        .context("starting the epoch ticker")?;
    let cache = CodeCache::new(&engines, state_dir.join("cache"))?;
    let limits = InstanceLimits { max_memory };
    let runtime_config = match &args.runtime_config_file {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    let kv_limits = KeyValueLimits {
        max_value_size: usize::try_from(args.key_value_max_value_size).unwrap_or(usize::MAX),
    };
    let stores = open_stores(
        &state_dir,
        &app.name,
        &runtime_config,
        kv_limits,
        &args.key_value,
    )
    .await?;
    let tls = crate::tls::client_config(&args.tls_ca_files)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let shared = Shared {
        engines,
        cache,
        state_dir,
        limits,
        instances: Arc::new(Semaphore::new(args.max_instances as usize)),
        tls: tls.clone(),
        redis: Arc::default(),
        mqtt: Arc::new(crate::host::mqtt::MqttConnections::new(tls)),
        self_address: SelfAddress::default(),
        http: HttpOptions {
            request_timeout: args.request_timeout.0,
            reuse: ReusePolicy {
                max_requests: args.max_instance_reuse_count,
                max_concurrent: args.max_instance_concurrent_reuse_count,
                ..ReusePolicy::default()
            },
        },
        threads,
        drain_timeout: args.drain_timeout,
    };
    // Compiling is CPU-bound; keep it off the async workers' toes.
    let loaded = tokio::task::block_in_place(|| Loaded::load(&shared, app, stores))?;
    let listeners = http::Listeners::bind(args.listen, threads)?;
    publish_self_address(&shared.self_address, listeners.address());
    let signals = Signals::install().context("installing signal handlers")?;
    let (trigger, shutdown) = shutdown::channel();
    let mut pubsub = loaded.start_pubsub(&shared, shutdown.clone())?;
    print_banner(&loaded.app, listeners.address(), &loaded.http_apps[0]);

    tokio::spawn(signals.drive(trigger));
    let slots = loaded
        .http_apps
        .iter()
        .map(|a| AppSlot::new(Some(a.clone())))
        .collect();
    http::serve(listeners, slots, shutdown, args.drain_timeout).await?;
    while pubsub.join_next().await.is_some() {}
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
