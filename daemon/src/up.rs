//! `gatewayd up`: load one app from a spin.toml and serve it in the foreground.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};

use crate::cli::UpArgs;
use crate::engine::{self, EngineSettings, EpochTicker, cache::CodeCache};
use crate::executor::{Executor, InstanceLimits};
use crate::shutdown;
use crate::trigger::http::{self, HttpApp, HttpOptions, ReusePolicy};

pub async fn run(args: UpArgs) -> Result<()> {
    let mut app = crate::app::load(&args.path)?;
    if app.http_triggers.is_empty() {
        tracing::warn!(
            "app \"{}\" has no HTTP triggers: every request will get 404",
            app.name
        );
    }
    for component in app.components.values_mut() {
        component.environment.extend(args.env.iter().cloned());
    }
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let max_memory = usize::try_from(args.max_instance_memory)
        .context("--max-instance-memory is larger than this machine's address space")?;

    let settings = EngineSettings {
        max_instance_memory: args.max_instance_memory,
        max_instances: args.max_instances,
        pooling: args.pooling,
    };
    let (engine, allocator) = engine::build(&settings)?;
    tracing::info!("engine ready: {allocator}");
    let _ticker = EpochTicker::start(engine.clone()).context("starting the epoch ticker")?;
    let cache = CodeCache::new(&engine, state_dir.join("cache"))?;
    let limits = InstanceLimits { max_memory };
    // Compiling is CPU-bound; keep it off the async workers' toes.
    let executor =
        tokio::task::block_in_place(|| Executor::load(&engine, &app, &cache, &state_dir, &limits))?;

    let options = HttpOptions {
        request_timeout: args.request_timeout.0,
        reuse: ReusePolicy {
            max_requests: args.max_instance_reuse_count,
            max_concurrent: args.max_instance_concurrent_reuse_count,
            ..ReusePolicy::default()
        },
        max_concurrent_requests: args.max_instances as usize,
    };
    let http_app = Arc::new(HttpApp::new(&app, &executor, &options)?);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let listeners = http::Listeners::bind(args.listen, threads)?;
    let address = listeners.address();
    print_banner(&app.name, address, &http_app);

    let (trigger, shutdown) = shutdown::channel();
    tokio::spawn(async move {
        match shutdown::signal().await {
            Ok(name) => tracing::info!("{name} received: shutting down"),
            Err(e) => tracing::error!("cannot wait for signals ({e}); shutting down"),
        }
        trigger.trigger();
    });
    http::serve(listeners, http_app, shutdown, args.drain_timeout).await
}

fn print_banner(app: &str, address: std::net::SocketAddr, http_app: &HttpApp) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving app \"{app}\" on http://{address}");
    let _ = writeln!(out, "Available routes:");
    for (pattern, target) in http_app.routes() {
        let _ = writeln!(out, "  GET http://{address}{pattern} -> {target}");
    }
    let _ = out.flush();
}

/// `$XDG_STATE_HOME/gatewayd`, else `~/.local/state/gatewayd`, else a folder
/// under the system temp dir.
fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("gatewayd");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(home).join(".local/state/gatewayd");
    }
    std::env::temp_dir().join("gatewayd-state")
}
