//! An app made runnable: every component compiled (or taken from the cache),
//! linked and pre-instantiated, one `HttpApp` per serving thread, and the
//! app's pub/sub triggers started on demand. `up` builds one; `serve` builds
//! one per generation and switches between them.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use tokio::task::JoinSet;

use super::Runtime;
use crate::app::App;
use crate::executor::{Executor, HostResources};
use crate::host::key_value::Stores;
use crate::shutdown::Shutdown;
use crate::trigger::PubSubContext;
use crate::trigger::http::HttpApp;

pub struct Loaded {
    pub app: App,
    pub executor: Executor,
    /// One per serving thread.
    pub http_apps: Vec<Arc<HttpApp>>,
}

impl Loaded {
    /// Compiles, links and prepares `app` (blocking: compiling is CPU work).
    pub(super) fn load(runtime: &Runtime, app: App, stores: Arc<Stores>) -> Result<Self> {
        let resources = HostResources {
            stores,
            self_address: runtime.self_address.clone(),
            redis: runtime.redis.clone(),
            mqtt: runtime.mqtt.clone(),
        };
        let executor = Executor::load(
            &runtime.engines,
            &app,
            &runtime.cache,
            &runtime.options.state_dir,
            &resources,
            &runtime.limits,
        )?;
        let http_apps = (0..runtime.threads)
            .map(|_| {
                HttpApp::new(&app, &executor, &runtime.http, runtime.instances.clone())
                    .map(Arc::new)
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
    pub fn start_pubsub(&self, runtime: &Runtime, shutdown: Shutdown) -> Result<JoinSet<()>> {
        let context = PubSubContext {
            instances: runtime.instances.clone(),
            deadline: runtime.http.request_timeout,
            shutdown,
            drain_timeout: runtime.options.drain_timeout,
            tls: runtime.tls.clone(),
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
