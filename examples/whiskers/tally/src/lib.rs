//! `whiskers_tally`: the whiskers demo's counter, run by the MQTT trigger (via
//! `sdk/mqtt`'s `#[mqtt_component]`) for each message on `whiskers/votes/+`.
//! The animal is the topic's last segment; its count, key `tally:<animal>` in
//! the default key-value store, goes up by one (a decimal string; missing is 0).

#[path = "../../animals.rs"]
mod animals;

use anyhow::{anyhow, bail};
use gatewayd_mqtt_sdk::{mqtt_component, Metadata, Payload};
use spin_sdk::key_value::Store;

#[mqtt_component]
async fn count_vote(_message: Payload, metadata: Metadata) -> anyhow::Result<()> {
    let topic = &metadata.topic;
    let animal = topic.rsplit('/').next().unwrap_or_default();
    if !animals::ANIMALS.contains(&animal) {
        bail!("whiskers-tally: no animal in topic {topic:?}");
    }
    let kv_error = |e| anyhow!("whiskers-tally: default store: {e:?}");
    let store = Store::open_default().await.map_err(kv_error)?;
    let key = animals::tally_key(animal);
    // Read-modify-write without an atomic increment is safe here: gatewayd's
    // MQTT trigger handles one topic's messages one at a time, and the topic
    // names the animal. (At least once delivery may still count a vote twice
    // after a crash.)
    let count = match store.get(&key).await.map_err(kv_error)? {
        None => 0,
        Some(value) => animals::parse_count(&value)
            .ok_or_else(|| anyhow!("whiskers-tally: {key} does not hold a count"))?,
    };
    store
        .set(&key, (count + 1).to_string())
        .await
        .map_err(kv_error)
}
