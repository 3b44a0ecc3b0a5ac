//! `redis_trigger_sdk5`: a Redis-triggered component built with the Spin Rust
//! SDK 5's `#[redis_component]` (a WASI 0.2 component exporting
//! `fermyon:spin/inbound-redis`), for the gateway's Redis trigger tests. A
//! message starting with `trap` panics; any other is answered by publishing
//! `v5:` + the message on channel `reply` of the server in the `redis_address`
//! variable (outbound `fermyon:spin/redis@2.0.0`), then printing
//! `redis-trigger-sdk5: handled <len> bytes`.

use anyhow::anyhow;
use bytes::Bytes;
use spin_sdk::redis::Connection;
use spin_sdk::{redis_component, variables};

#[redis_component]
fn on_message(message: Bytes) -> anyhow::Result<()> {
    if message.starts_with(b"trap") {
        panic!("redis-trigger-sdk5: deliberate trap");
    }
    let address = variables::get("redis_address")
        .map_err(|e| anyhow!("redis-trigger-sdk5: variable redis_address: {e:?}"))?;
    let conn = Connection::open(&address)
        .map_err(|e| anyhow!("redis-trigger-sdk5: connecting to {address}: {e:?}"))?;
    let reply = [&b"v5:"[..], &message].concat();
    conn.publish("reply", &reply)
        .map_err(|e| anyhow!("redis-trigger-sdk5: publishing on reply: {e:?}"))?;
    println!("redis-trigger-sdk5: handled {} bytes", message.len());
    Ok(())
}
