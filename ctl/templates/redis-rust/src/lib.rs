//! A Redis-triggered component: gatewayd calls `on_message` for every message
//! published on the channel in spin.toml, each time in a fresh instance. An
//! error (or a panic) counts as a failed attempt: see `max_attempts` and
//! `dead_letter_channel` in gatewayd's docs/apps.md (Redis trigger).

use bytes::Bytes;
use spin_sdk::redis_subscriber;

#[redis_subscriber]
async fn on_message(message: Bytes) -> anyhow::Result<()> {
    // Standard output goes to gatewayd's log, tagged with the component id.
    println!(
        "received {} bytes: {}",
        message.len(),
        String::from_utf8_lossy(&message)
    );
    Ok(())
}
