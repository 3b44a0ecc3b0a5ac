//! An app made runnable, the part `up` and `serve` share: every component
//! compiled (or taken from the cache), linked and pre-instantiated, one
//! `HttpApp` per serving thread, and the app's pub/sub triggers started on
//! demand. `serve` builds one per generation and switches between them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::app::App;
use crate::engine::Engines;
use crate::engine::cache::CodeCache;
use crate::executor::{Executor, HostResources, InstanceLimits};
use crate::host::key_value::Stores;
use crate::host::mqtt::MqttConnections;
use crate::host::redis::RedisConnections;
use crate::host::outbound_http::SelfAddress;
use crate::shutdown::Shutdown;
use crate::trigger::PubSubContext;
use crate::trigger::http::{HttpApp, HttpOptions};

/// What every app loaded by this process shares.
pub struct Shared {
    pub engines: Engines,
    pub cache: CodeCache,
    pub state_dir: std::path::PathBuf,
    pub limits: InstanceLimits,
    /// Instances alive at once, across apps and triggers.
    pub instances: Arc<Semaphore>,
    pub tls: Arc<rustls::ClientConfig>,
    /// Outbound Redis and MQTT connections, shared by every generation.
    pub redis: Arc<RedisConnections>,
    pub mqtt: Arc<MqttConnections>,
    pub self_address: SelfAddress,
    pub http: HttpOptions,
    /// Serving threads (one `HttpApp` each).
    pub threads: usize,
    pub drain_timeout: Duration,
}

pub struct Loaded {
    pub app: App,
    pub executor: Executor,
    /// One per serving thread.
    pub http_apps: Vec<Arc<HttpApp>>,
}

impl Loaded {
    /// Compiles, links and prepares `app` (blocking: compiling is CPU work).
    pub fn load(shared: &Shared, app: App, stores: Arc<Stores>) -> Result<Self> {
        let resources = HostResources {
            stores,
            self_address: shared.self_address.clone(),
            redis: shared.redis.clone(),
            mqtt: shared.mqtt.clone(),
        };
        let executor = Executor::load(
            &shared.engines,
            &app,
            &shared.cache,
            &shared.state_dir,
            &resources,
            &shared.limits,
        )?;
        let http_apps = (0..shared.threads)
            .map(|_| {
                HttpApp::new(&app, &executor, &shared.http, shared.instances.clone()).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            app,
            executor,
            http_apps,
        })
    }

    /// Starts the app's Redis and MQTT triggers; they stop after `shutdown`
    /// once their in-flight messages are done.
    pub fn start_pubsub(&self, shared: &Shared, shutdown: Shutdown) -> Result<JoinSet<()>> {
        let context = PubSubContext {
            instances: shared.instances.clone(),
            deadline: shared.http.request_timeout,
            shutdown,
            drain_timeout: shared.drain_timeout,
            tls: shared.tls.clone(),
        };
        let mut tasks = JoinSet::new();
        for start in [crate::trigger::redis::start, crate::trigger::mqtt::start] {
            start(&self.app, &self.executor, &context, &mut tasks)?;
        }
        Ok(tasks)
    }

    /// Every component instantiates (its imports resolve, its start
    /// functions run, it fits its limits).
    pub async fn health_check(&self) -> Result<()> {
        for id in self.app.components.keys() {
            let component = self
                .executor
                .component(id)
                .with_context(|| format!("component \"{id}\" is not loaded"))?;
            let mut store = component.new_store()?;
            component
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(anyhow::Error::from)
                .with_context(|| format!("component \"{id}\" does not instantiate"))?;
        }
        Ok(())
    }
}
