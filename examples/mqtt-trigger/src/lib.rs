//! `mqtt_trigger`: an MQTT-triggered component (the `handle-message` root
//! export of `spin:mqtt-trigger/spin-mqtt@3.0.0`, built with `sdk/mqtt`'s
//! `#[mqtt_component]`) for the gateway's MQTT trigger tests. A payload
//! starting with `trap` panics, `fail` returns an error, and `sleep:<ms>` waits
//! that long first; every other message is printed as
//! `mqtt-trigger: handled <topic> (<len> bytes)` and published unchanged to
//! `reply/<topic>` at QoS 1, through Spin SDK 7's outbound MQTT, on the broker
//! in the `reply_address` variable.

use std::time::Duration;

use anyhow::anyhow;
use gatewayd_mqtt_sdk::{mqtt_component, Metadata, Payload};
use spin_sdk::mqtt::{Connection, Qos};

#[mqtt_component]
async fn handle_message(message: Payload, metadata: Metadata) -> anyhow::Result<()> {
    if message.starts_with(b"trap") {
        panic!("mqtt-trigger: deliberate trap");
    }
    if message.starts_with(b"fail") {
        return Err(anyhow!("mqtt-trigger: deliberate failure"));
    }
    if let Some(ms) = sleep_ms(&message) {
        spin_sdk::time::sleep(Duration::from_millis(ms)).await;
    }
    let topic = &metadata.topic;
    println!("mqtt-trigger: handled {topic} ({} bytes)", message.len());
    let address = spin_sdk::variables::get("reply_address")
        .await
        .map_err(|e| anyhow!("mqtt-trigger: variable reply_address: {e}"))?;
    let conn = Connection::open(&address, "", "", 30)
        .await
        .map_err(|e| anyhow!("mqtt-trigger: connecting to {address}: {e}"))?;
    conn.publish(format!("reply/{topic}"), message, Qos::AtLeastOnce)
        .await
        .map_err(|e| anyhow!("mqtt-trigger: publishing to reply/{topic}: {e}"))
}

/// The `<ms>` of a `sleep:<ms>[:rest]` payload.
fn sleep_ms(message: &[u8]) -> Option<u64> {
    let rest = message.strip_prefix(b"sleep:")?;
    let digits = rest.split(|&b| b == b':').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}
