//! The runtime both front doors start: `gatewayd up` (a spin.toml, options
//! from the command line) and `gatewayd serve` (signed generations, options
//! from the config file). One options type, [`RuntimeOptions`], is built from
//! either source; one start path, [`Runtime::start`], turns it into the
//! process-wide parts (engines and their epoch ticker, the code cache, the
//! instance budget, TLS roots, outbound connection pools); one load path,
//! [`Runtime::load_app`], turns an app into a runnable [`Loaded`] (variables
//! resolved, key-value stores opened, components compiled and linked).
//!
//! A setting added here reaches both commands, so they cannot drift apart.

mod loaded;
mod options;
mod triggers;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::sync::Semaphore;

pub use loaded::Loaded;
pub use options::RuntimeOptions;
pub use triggers::Triggers;

use crate::app::App;
use crate::engine::cache::CodeCache;
use crate::engine::{self, Engines, EpochTicker};
use crate::executor::InstanceLimits;
use crate::host::mqtt::MqttConnections;
use crate::host::outbound_http::SelfAddress;
use crate::host::redis::RedisConnections;
use crate::trigger::http::{HttpOptions, Listeners};
use crate::trigger::pubsub_threads::PubSubThreads;

/// Tells the metrics what runs components, and how to read the instance
/// slots and outbound connections in use when scraped.
fn record_in_metrics(
    engines: &Engines,
    instances: &Arc<Semaphore>,
    redis: &Arc<RedisConnections>,
    mqtt: &Arc<MqttConnections>,
) {
    let metrics = crate::metrics::global();
    let pulley = engines.primary_target.is_pulley();
    metrics.process.engine_built(pulley);
    let slots = instances.available_permits();
    metrics.instances.slots.set(slots as i64);
    let (instances, redis, mqtt) = (
        Arc::downgrade(instances),
        Arc::downgrade(redis),
        Arc::downgrade(mqtt),
    );
    metrics.on_scrape(move || {
        if let Some(instances) = instances.upgrade() {
            let active = slots.saturating_sub(instances.available_permits());
            metrics.instances.active.set(active as i64);
        }
        if let Some(redis) = redis.upgrade() {
            metrics
                .outbound
                .set_connections("redis", redis.open_count());
        }
        if let Some(mqtt) = mqtt.upgrade() {
            metrics.outbound.set_connections("mqtt", mqtt.open_count());
        }
    });
}

/// What every app loaded by this process shares.
pub struct Runtime {
    pub options: RuntimeOptions,
    pub engines: Engines,
    pub cache: CodeCache,
    pub limits: InstanceLimits,
    /// Instances alive at once, across apps and triggers.
    pub instances: Arc<Semaphore>,
    /// Roots for TLS connections to brokers (public roots plus CA files).
    pub tls: Arc<rustls::ClientConfig>,
    /// Outbound Redis and MQTT connections, shared by every generation.
    pub redis: Arc<RedisConnections>,
    pub mqtt: Arc<MqttConnections>,
    /// The HTTP listener's address, for `http://self` (set once bound).
    pub self_address: SelfAddress,
    pub http: HttpOptions,
    /// Serving threads (one `HttpApp` each).
    pub threads: usize,
    /// The pub/sub triggers' threads, as many as the serving threads (started
    /// with the first app that has a pub/sub trigger).
    pub pubsub_threads: Arc<PubSubThreads>,
    _ticker: EpochTicker,
    /// The metrics endpoint's task, if one is configured.
    _metrics: Option<AbortOnDrop>,
    /// Snapshots of the counters for "the last minute".
    _recent: AbortOnDrop,
}

/// Stops a task when the runtime goes.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Runtime {
    /// Builds the engines (and starts their epoch ticker), opens the code
    /// cache in the state dir, and makes the process-wide resources.
    pub fn start(options: RuntimeOptions) -> Result<Self> {
        // What the daemon creates is its own: compiled code, app files,
        // key-value stores (the admin socket's mode is set explicitly).
        // SAFETY: umask has no preconditions and cannot fail.
        unsafe { libc::umask(0o077) };
        crate::state_dir::ensure_private_dir(&options.state_dir)?;
        let (engines, description) = engine::build(&options.engine)?;
        tracing::info!("engine ready: {description}");
        let ticker = EpochTicker::start(engines.all().map(|slot| slot.engine.clone()).collect())
            .context("starting the epoch ticker")?;
        let cache = CodeCache::new(
            &engines,
            options.state_dir.join("cache"),
            options.engine.function_cache_size,
        )?;
        let max_memory = usize::try_from(options.engine.max_instance_memory)
            .context("the instance memory limit is larger than this machine's address space")?;
        let tls = crate::tls::client_config(&options.tls_ca_files)?;
        let instances = Arc::new(Semaphore::new(options.engine.max_instances as usize));
        let redis = Arc::<RedisConnections>::default();
        let mqtt = Arc::new(MqttConnections::new(tls.clone()));
        let metrics = match options.metrics_listen {
            Some(address) => Some(AbortOnDrop(
                crate::metrics::server::Endpoint::bind(address)?.spawn(),
            )),
            None => None,
        };
        record_in_metrics(&engines, &instances, &redis, &mqtt);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            engines,
            cache,
            limits: InstanceLimits { max_memory },
            instances,
            redis,
            mqtt,
            tls,
            self_address: SelfAddress::default(),
            http: HttpOptions {
                request_timeout: options.request_timeout,
                reuse: options.reuse.clone(),
                max_request_body_size: options.max_request_body_size,
            },
            threads,
            pubsub_threads: PubSubThreads::new(threads),
            _ticker: ticker,
            _metrics: metrics,
            _recent: AbortOnDrop(tokio::spawn(crate::metrics::recent::sample(
                crate::metrics::global(),
            ))),
            options,
        })
    }

    /// The HTTP listeners: the socket the service manager passed (socket
    /// activation: named `http`, or the one unnamed socket), else sockets
    /// bound to `configured`.
    pub fn http_listeners(
        &self,
        configured: std::net::SocketAddr,
        activated: &mut Vec<(String, std::os::fd::OwnedFd)>,
    ) -> Result<Listeners> {
        let passed = crate::systemd::take_named(activated, "http")
            .or_else(|| crate::systemd::take_named(activated, "unknown"));
        let Some(fd) = passed else {
            return Listeners::bind(configured, self.threads);
        };
        let listener = std::net::TcpListener::from(fd);
        let address = listener.local_addr().context(
            "the socket the service manager passed for HTTP (LISTEN_FDS) is not a TCP socket",
        )?;
        tracing::info!(
            "serving HTTP on {address}, the socket the service manager passed \
             (socket activation; the configured {configured} is not used)"
        );
        Listeners::from_socket(listener, self.threads)
    }

    /// Makes `app` runnable: its variables resolved (from the options, then
    /// `SPIN_VARIABLE_*`, then defaults), the options' environment added to
    /// every component, its key-value stores opened (the default one seeded
    /// with `seed`), every component compiled or taken from the cache, linked
    /// and pre-instantiated. Blocks while compiling.
    pub async fn load_app(&self, mut app: App, seed: &[(String, String)]) -> Result<Loaded> {
        crate::app::variables::resolve(&mut app, &self.options.variables, |name| {
            std::env::var(name).ok()
        })?;
        for component in app.components.values_mut() {
            component
                .environment
                .extend(self.options.environment.iter().cloned());
        }
        let stores = crate::state_dir::open_stores(
            &self.options.state_dir,
            &app.name,
            &self.options.runtime_config,
            self.options.key_value_limits.clone(),
            seed,
        )
        .await?;
        // Compiling is CPU-bound; keep it off the async workers' toes.
        tokio::task::block_in_place(|| Loaded::load(self, app, stores))
    }
}
