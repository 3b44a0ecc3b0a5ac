//! `redis_trigger_sdk7`: a Redis-triggered component built with the Spin Rust
//! SDK 7's `#[redis_subscriber]` (a WASI 0.3 component exporting
//! `spin:redis/inbound-redis@3.0.0`), for the gateway's Redis trigger tests.
//! Same contract as `redis_trigger_sdk5`, with the prefix `v7:` and the async
//! outbound `spin:redis/redis@3.0.0`: a message starting with `trap` panics;
//! any other is answered by publishing `v7:` + the message on channel `reply`
//! of the server in the `redis_address` variable, then printing
//! `redis-trigger-sdk7: handled <len> bytes`.

use anyhow::anyhow;
use bytes::Bytes;
use spin_sdk::redis::Connection;
use spin_sdk::{redis_subscriber, variables};

#[redis_subscriber]
async fn on_message(message: Bytes) -> anyhow::Result<()> {
    if message.starts_with(b"trap") {
        panic!("redis-trigger-sdk7: deliberate trap");
    }
    let address = variables::get("redis_address")
        .await
        .map_err(|e| anyhow!("redis-trigger-sdk7: variable redis_address: {e:?}"))?;
    let conn = Connection::open(&address)
        .await
        .map_err(|e| anyhow!("redis-trigger-sdk7: connecting to {address}: {e:?}"))?;
    let reply = [&b"v7:"[..], &message].concat();
    conn.publish("reply", reply)
        .await
        .map_err(|e| anyhow!("redis-trigger-sdk7: publishing on reply: {e:?}"))?;
    println!("redis-trigger-sdk7: handled {} bytes", message.len());
    Ok(())
}
