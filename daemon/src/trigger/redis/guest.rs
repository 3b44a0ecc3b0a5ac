//! Calling a Redis-triggered component: the two exports Spin's SDKs emit,
//! `fermyon:spin/inbound-redis` (Rust SDK 5.x `#[redis_component]`, a plain
//! function) and `spin:redis/inbound-redis@3.0.0` (SDK 6/7
//! `#[redis_subscriber]`, an async function of the component model).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use tokio::sync::Semaphore;

use crate::executor::PreparedComponent;
use crate::host::HostState;
use crate::trigger::instance;

mod v2 {
    wasmtime::component::bindgen!({
        path: "../wit/legacy",
        world: "gatewayd:legacy/redis-trigger-v2",
        exports: { default: async },
    });
}

mod v3 {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "gatewayd:host/redis-trigger-v3",
        exports: { default: async | store },
    });
}

enum Export {
    V2(v2::RedisTriggerV2Pre<HostState>),
    V3(v3::RedisTriggerV3Pre<HostState>),
}

/// A component that handles Redis messages.
pub struct RedisGuest {
    component: Arc<PreparedComponent>,
    export: Export,
    instances: Arc<Semaphore>,
    deadline: Option<Duration>,
}

impl RedisGuest {
    /// Fails if the component exports no Redis handler.
    pub fn new(
        component: Arc<PreparedComponent>,
        instances: Arc<Semaphore>,
        deadline: Option<Duration>,
    ) -> Result<Self> {
        let export = if let Ok(pre) = v3::RedisTriggerV3Pre::new(component.pre.clone()) {
            Export::V3(pre)
        } else if let Ok(pre) = v2::RedisTriggerV2Pre::new(component.pre.clone()) {
            Export::V2(pre)
        } else {
            bail!(
                "component \"{}\" exports no Redis handler: expected spin:redis/inbound-redis@3.0.0 \
                 (Spin SDK 6/7 #[redis_subscriber]) or fermyon:spin/inbound-redis (SDK 5 #[redis_component])",
                component.id
            );
        };
        Ok(Self {
            component,
            export,
            instances,
            deadline,
        })
    }

    /// Which export is called, for logs.
    pub fn export_name(&self) -> &'static str {
        match self.export {
            Export::V2(_) => "fermyon:spin/inbound-redis",
            Export::V3(_) => "spin:redis/inbound-redis@3.0.0",
        }
    }

    /// Handles one message on a fresh instance; a guest error, a trap and a
    /// timeout are all errors.
    pub async fn handle(&self, payload: Vec<u8>) -> Result<()> {
        let result = instance::run(
            &self.component,
            &self.instances,
            self.deadline,
            async |store| match &self.export {
                Export::V2(pre) => {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    let outcome = guest
                        .fermyon_spin_inbound_redis()
                        .call_handle_message(&mut *store, &payload)
                        .await?;
                    Ok(outcome.map_err(|e| format!("{e:?}")))
                }
                Export::V3(pre) => {
                    let guest = pre.instantiate_async(&mut *store).await?;
                    let outcome = store
                        .run_concurrent(async move |accessor| {
                            guest
                                .spin_redis_inbound_redis()
                                .call_handle_message(accessor, payload)
                                .await
                        })
                        .await??;
                    Ok(outcome.map_err(|e| format!("{e:?}")))
                }
            },
        )
        .await?;
        result.map_err(|e| anyhow::anyhow!("the component returned an error: {e}"))
    }
}
