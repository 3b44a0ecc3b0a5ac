//! Compiles a plain `fn` handler through `#[mqtt_component]` on the host (its
//! own test crate: a component has one `handle-message` export).

use gatewayd_mqtt_sdk::{Metadata, Payload, mqtt_component};

#[mqtt_component]
fn on_message(_message: Payload, _metadata: Metadata) -> Result<(), std::fmt::Error> {
    Ok(())
}
