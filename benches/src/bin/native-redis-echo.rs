//! The native baseline for the Redis trigger benchmark: does what gatewayd
//! does with `examples/redis-triggered`, in plain Rust with the same client
//! (the redis crate 1.x): one connection subscribes a channel; for each
//! message, in order, a second (shared, multiplexed) connection publishes
//! `--prefix` + the message on channel `reply` and waits for the server's
//! answer before the next. Prints `subscribed` on stdout once subscribed.
//!
//! Usage: native-redis-echo --server redis://HOST:PORT --channel CH [--prefix native:]

use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

#[derive(Parser)]
struct Args {
    /// redis://host:port of the server.
    #[arg(long)]
    server: String,
    /// Channel to answer.
    #[arg(long)]
    channel: String,
    /// Put before each message in the reply.
    #[arg(long, default_value = "native:")]
    prefix: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let client = redis::Client::open(args.server.as_str())?;
    // As the gateway's outbound Redis: a connection manager with timeouts.
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let mut publisher = client
        .get_connection_manager_with_config(config)
        .await
        .context("connecting to Redis")?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&args.channel).await?;
    println!("subscribed");
    let mut messages = pubsub.into_on_message();
    while let Some(message) = messages.next().await {
        let reply = [args.prefix.as_bytes(), message.get_payload_bytes()].concat();
        publish(&mut publisher, reply).await?;
    }
    Ok(())
}

async fn publish(publisher: &mut ConnectionManager, reply: Vec<u8>) -> Result<()> {
    let _receivers: usize = redis::cmd("PUBLISH")
        .arg("reply")
        .arg(reply)
        .query_async(publisher)
        .await?;
    Ok(())
}
