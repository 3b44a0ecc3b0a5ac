//! An MQTT-triggered component: gatewayd calls `handle_message` for every
//! message matching the topic filter in spin.toml, each time in a fresh
//! instance. An error (or a panic) counts as a failed attempt: see
//! `max_attempts` and `dead_letter_topic` in gatewayd's docs/apps.md
//! (MQTT trigger).

wit_bindgen::generate!({
    world: "spin-mqtt",
    path: "wit",
});

struct Component;

impl Guest for Component {
    async fn handle_message(message: Payload, metadata: Metadata) -> Result<(), Error> {
        // Standard output goes to gatewayd's log, tagged with the component id.
        println!(
            "received {} bytes on {}: {}",
            message.len(),
            metadata.topic,
            String::from_utf8_lossy(&message)
        );
        Ok(())
    }
}

export!(Component);
