//! Calling an MQTT-triggered component: the root export `handle-message` of
//! `spin:mqtt-trigger@3.0.0` (Spin's MQTT trigger plugin; `sdk/mqtt` builds it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::Semaphore;

use crate::executor::PreparedComponent;
use crate::host::HostState;
use crate::trigger::instance;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "gatewayd:host/mqtt-trigger",
        exports: { default: async | store },
    });
}

use bindings::spin::mqtt_trigger::spin_mqtt_types::{Error, Metadata};

/// A component that handles MQTT messages.
pub struct MqttGuest {
    component: Arc<PreparedComponent>,
    pre: bindings::MqttTriggerPre<HostState>,
    instances: Arc<Semaphore>,
    deadline: Option<Duration>,
}

impl MqttGuest {
    /// Fails if the component does not export `handle-message`.
    pub fn new(
        component: Arc<PreparedComponent>,
        instances: Arc<Semaphore>,
        deadline: Option<Duration>,
    ) -> Result<Self> {
        let pre = bindings::MqttTriggerPre::new(component.pre.clone())
            .map_err(anyhow::Error::from)
            .with_context(|| {
            format!(
                "component \"{}\" exports no MQTT handler: expected the function `handle-message` \
                 of spin:mqtt-trigger@3.0.0 (see sdk/mqtt)",
                component.id
            )
        })?;
        Ok(Self {
            component,
            pre,
            instances,
            deadline,
        })
    }

    /// Handles one message on a fresh instance; a guest error, a trap and a
    /// timeout are all errors.
    pub async fn handle(&self, payload: Vec<u8>, topic: String) -> Result<()> {
        let outcome = instance::run(
            &self.component,
            &self.instances,
            self.deadline,
            async |store| {
                let guest = self.pre.instantiate_async(&mut *store).await?;
                let outcome = store
                    .run_concurrent(async move |accessor| {
                        guest
                            .call_handle_message(accessor, payload, Metadata { topic })
                            .await
                    })
                    .await??;
                Ok(outcome)
            },
        )
        .await?;
        outcome.map_err(|Error::Other(e)| anyhow::anyhow!("the component returned an error: {e}"))
    }
}
