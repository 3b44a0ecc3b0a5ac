//! `gatewayd_mqtt_sdk`: write a component that gatewayd's MQTT trigger (or
//! Spin's MQTT trigger plugin) runs once per message. Owns the bindings for the
//! `spin:mqtt-trigger/spin-mqtt@3.0.0` world (in `wit/`) and re-exports what
//! `#[mqtt_component]` expands to.
//!
//! ```ignore
//! use gatewayd_mqtt_sdk::{mqtt_component, Metadata, Payload};
//!
//! #[mqtt_component]
//! async fn handle_message(message: Payload, metadata: Metadata) -> anyhow::Result<()> {
//!     println!("{} bytes on {}", message.len(), metadata.topic);
//!     Ok(())
//! }
//! ```
//!
//! The crate must be a `cdylib` built for `wasm32-wasip2`. The export is
//! component-model async, so the handler may await spin-sdk 7 calls (outbound
//! MQTT, key-value, variables): both use wit-bindgen 0.57, hence one runtime.

// Lets the generated bindings name this crate the way user crates do.
extern crate self as gatewayd_mqtt_sdk;

pub use gatewayd_mqtt_sdk_macro::mqtt_component;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "spin-mqtt",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_spin_mqtt",
        default_bindings_module: "::gatewayd_mqtt_sdk::bindings",
        runtime_path: "::gatewayd_mqtt_sdk::__private::wit_bindgen::rt",
    });
}

/// The message body: raw bytes, not necessarily UTF-8.
pub use bindings::Payload;

/// What is known about a message besides its payload: `topic`, the topic it
/// was published on.
pub use bindings::Metadata;

/// What `#[mqtt_component]` expands to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// The handler's result as the world's `result<_, error>`. The alternate
    /// form (`{:#}`) keeps an `anyhow` error's causes (`context: cause`).
    pub fn into_wit_result<E: core::fmt::Display>(
        result: Result<(), E>,
    ) -> Result<(), crate::bindings::Error> {
        result.map_err(|error| crate::bindings::Error::Other(format!("{error:#}")))
    }
}
