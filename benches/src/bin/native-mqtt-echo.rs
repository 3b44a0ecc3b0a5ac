//! The native baseline for the MQTT trigger benchmark: does what gatewayd
//! does with `examples/mqtt-triggered`, in plain Rust with the same MQTT
//! client (rumqttc 0.25, default options, as the daemon uses it). One
//! connection subscribes the filter at QoS 1 with manual acknowledgements;
//! for each message a second connection publishes the same payload on
//! `reply/<topic>` at QoS 1, and once the broker acknowledged that (PUBACK),
//! the original is acknowledged. Prints `subscribed` on stdout when the
//! broker granted the subscription.
//!
//! Differences from the gateway, on purpose: a clean session (so that nothing
//! stays at the broker after the run), no per-topic ordering or concurrency
//! cap (the load never has more than one message per topic outstanding) and
//! no log line per message.
//!
//! Usage: native-mqtt-echo --broker HOST:PORT [--filter sensors/+/temp]

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS};
use tokio::sync::mpsc;

#[derive(Parser)]
struct Args {
    /// host:port of the broker.
    #[arg(long)]
    broker: String,
    /// Topic filter to answer.
    #[arg(long, default_value = "sensors/+/temp")]
    filter: String,
}

/// What the two connections report to the main loop.
enum Step {
    Message(Publish),
    /// The reply connection sent a publish with this packet id.
    Sent(u16),
    /// The broker acknowledged the reply with this packet id.
    Acked(u16),
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (host, port) = args
        .broker
        .rsplit_once(':')
        .context("--broker must be host:port")?;
    let port: u16 = port.parse()?;
    let id = std::process::id();

    let mut options = MqttOptions::new(format!("native-mqtt-echo-{id}-sub"), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_manual_acks(true);
    let (subscriber, sub_events) = AsyncClient::new(options, 64);
    let mut options = MqttOptions::new(format!("native-mqtt-echo-{id}-pub"), host, port);
    options.set_keep_alive(Duration::from_secs(30));
    let (publisher, pub_events) = AsyncClient::new(options, 1000);

    subscriber.subscribe(&args.filter, QoS::AtLeastOnce).await?;
    let (steps, mut next) = mpsc::unbounded_channel();
    tokio::spawn(forward(sub_events, steps.clone()));
    tokio::spawn(forward(pub_events, steps));

    // Replies queued but not sent yet (rumqttc sends in queue order), and
    // replies sent but not acknowledged, by packet id: the originals.
    let mut queued: VecDeque<Publish> = VecDeque::new();
    let mut in_flight: HashMap<u16, Publish> = HashMap::new();
    while let Some(step) = next.recv().await {
        match step {
            Step::Message(message) => {
                let topic = format!("reply/{}", message.topic);
                let payload = message.payload.clone();
                queued.push_back(message);
                publisher
                    .publish_bytes(topic, QoS::AtLeastOnce, false, payload)
                    .await?;
            }
            Step::Sent(pkid) => {
                if let Some(original) = queued.pop_front() {
                    in_flight.insert(pkid, original);
                }
            }
            Step::Acked(pkid) => {
                if let Some(original) = in_flight.remove(&pkid) {
                    subscriber.ack(&original).await?;
                }
            }
        }
    }
    Ok(())
}

/// Polls one connection forever, passing on what the main loop needs.
async fn forward(mut events: EventLoop, steps: mpsc::UnboundedSender<Step>) {
    loop {
        let step = match events.poll().await {
            Ok(Event::Incoming(Packet::Publish(message))) => Step::Message(message),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Step::Sent(pkid),
            Ok(Event::Incoming(Packet::PubAck(ack))) => Step::Acked(ack.pkid),
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                println!("subscribed");
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                eprintln!("native-mqtt-echo: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if steps.send(step).is_err() {
            return;
        }
    }
}
