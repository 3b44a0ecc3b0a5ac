//! An app made runnable: every component compiled (or taken from the cache),
//! linked and pre-instantiated, one `HttpApp` per serving thread, and the
//! app's pub/sub triggers started on demand. `up` builds one; `serve` builds
//! one per generation and switches between them.

use std::sync::Arc;

use anyhow::{Context as _, Result};

use super::Runtime;
use crate::app::App;
use crate::executor::Executor;
use crate::host::HostResources;
use crate::host::key_value::Stores;
use crate::trigger::http::HttpApp;
use crate::trigger::{PubSub, PubSubContext};

pub struct Loaded {
    pub app: App,
    pub executor: Executor,
    /// One per serving thread.
    pub http_apps: Vec<Arc<HttpApp>>,
    /// The pub/sub triggers, checked, until they are started (once).
    pubsub: std::sync::Mutex<Option<PubSub>>,
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
        let context = PubSubContext {
            instances: runtime.instances.clone(),
            deadline: runtime.http.request_timeout,
            drain_timeout: runtime.options.drain_timeout,
            tls: runtime.tls.clone(),
            redis_max_message_size: runtime.options.redis_max_message_size,
            threads: runtime.pubsub_threads.clone(),
        };
        let pubsub = PubSub::prepare(&app, &executor, &context)?;
        Ok(Self {
            app,
            executor,
            http_apps,
            pubsub: std::sync::Mutex::new(Some(pubsub)),
        })
    }

    /// The pub/sub triggers, the first time it is asked (they run once).
    pub fn take_pubsub(&self) -> Option<PubSub> {
        self.pubsub.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Every component instantiates (its imports resolve, its start
    /// functions run, it fits its limits), and `route`, if given, answers a
    /// real GET with 2xx.
    pub async fn health_check(&self, route: Option<&str>) -> Result<()> {
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
        if let Some(route) = route {
            crate::trigger::http::probe::check_route(self.http_apps[0].clone(), route).await?;
        }
        Ok(())
    }
}
