//! Load generator for `benches/pubsub.sh`: publishes numbered messages to an
//! MQTT broker or a Redis server, keeps `--window` of them outstanding, waits
//! for each one's reply from whatever echoes them (a gateway component or a
//! native baseline), and prints one line: `msgs_per_s p50_us p99_us lost
//! duplicates`. Details (late and foreign replies, a cut-short run) go to
//! stderr. It owns the connections and the command line; the measuring loop
//! is in `window.rs`.
//!
//! MQTT: message `k` of a window goes to `sensors/<k>/temp` at QoS 1; the
//! reply is the same payload on `reply/sensors/<k>/temp`.
//! Redis: every message goes to `--channel`; the reply is `--reply-prefix`
//! followed by the payload on channel `reply`.

mod window;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use futures_util::StreamExt as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use window::{Reply, Transport, Window, quantile};

#[derive(Parser)]
struct Args {
    /// Messages measured (after the warm-up).
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Messages sent and answered first, not measured.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Messages outstanding at once.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// How long to wait for a reply before counting the message lost.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// Stop sending after this many losses (the run then exits with status 2).
    #[arg(long, default_value_t = 10)]
    max_lost: usize,
    #[command(subcommand)]
    target: Target,
}

#[derive(Subcommand)]
enum Target {
    /// Through an MQTT broker.
    Mqtt {
        /// host:port of the broker.
        #[arg(long)]
        broker: String,
    },
    /// Through a Redis server's pub/sub.
    Redis {
        /// redis://host:port of the server.
        #[arg(long)]
        server: String,
        /// Channel the echo subscribes.
        #[arg(long)]
        channel: String,
        /// What the echo puts before the payload in its reply (`v7:`).
        #[arg(long, default_value = "")]
        reply_prefix: String,
    },
}

/// "5s", "500ms" or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let parse = |n: &str| n.parse::<u64>().map_err(|e| e.to_string());
    if let Some(ms) = text.strip_suffix("ms") {
        Ok(Duration::from_millis(parse(ms)?))
    } else {
        Ok(Duration::from_secs(parse(text.trim_end_matches('s'))?))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let code = match &args.target {
        Target::Mqtt { broker } => {
            let (transport, replies) = Mqtt::connect(broker).await?;
            measure(
                Window::new(transport, replies, "", args.window, args.timeout),
                &args,
            )
            .await?
        }
        Target::Redis {
            server,
            channel,
            reply_prefix,
        } => {
            let (transport, replies) = Redis::connect(server, channel).await?;
            let window = Window::new(transport, replies, reply_prefix, args.window, args.timeout);
            measure(window, &args).await?
        }
    };
    std::process::exit(code)
}

/// Warm-up, measured run, a short linger for stragglers; prints the line.
async fn measure<T: Transport>(mut window: Window<T>, args: &Args) -> Result<i32> {
    let warmup = window.run(args.warmup, args.max_lost).await?;
    if warmup.lost > 0 {
        eprintln!("pubsub-load: {} warm-up messages lost", warmup.lost);
    }
    let mut outcome = window.run(args.count, args.max_lost).await?;
    window
        .linger(Duration::from_millis(300), &mut outcome)
        .await;
    outcome.latencies.sort();
    let received = outcome.latencies.len();
    let rate = received as f64 / outcome.elapsed.as_secs_f64();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{rate:.0} {:.0} {:.0} {} {}",
        us(quantile(&outcome.latencies, 0.50)),
        us(quantile(&outcome.latencies, 0.99)),
        outcome.lost,
        outcome.duplicates
    );
    if outcome.late + outcome.foreign > 0 {
        eprintln!(
            "pubsub-load: {} replies came after their timeout, {} replies were not ours",
            outcome.late, outcome.foreign
        );
    }
    if outcome.lost > args.max_lost {
        eprintln!(
            "pubsub-load: gave up after {} lost messages ({received} answered)",
            outcome.lost
        );
        return Ok(2);
    }
    Ok(0)
}

/// One MQTT connection: publishes at QoS 1, subscribed to the replies.
struct Mqtt {
    client: AsyncClient,
}

impl Mqtt {
    async fn connect(broker: &str) -> Result<(Self, mpsc::UnboundedReceiver<Reply>)> {
        let (host, port) = broker
            .rsplit_once(':')
            .context("--broker must be host:port")?;
        let mut options = MqttOptions::new(
            format!("pubsub-load-{}", std::process::id()),
            host,
            port.parse()?,
        );
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(options, 256);
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        client
            .subscribe("reply/sensors/+/temp", QoS::AtLeastOnce)
            .await?;
        let (to_main, replies) = mpsc::unbounded_channel();
        let (subscribed, is_subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let mut subscribed = Some(subscribed);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::Publish(message))) => {
                        let at = Instant::now();
                        let payload = message.payload.to_vec();
                        if to_main.send(Reply { payload, at }).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = subscribed.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("pubsub-load: MQTT connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(5), is_subscribed)
            .await
            .context("no SUBACK from the broker within 5 s")??;
        Ok((Self { client }, replies))
    }
}

impl Transport for Mqtt {
    async fn send(&mut self, slot: usize, payload: Vec<u8>) -> Result<()> {
        let topic = format!("sensors/{slot}/temp");
        Ok(self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?)
    }
}

/// A Redis publishing connection; a second one, subscribed to `reply`,
/// feeds the replies.
struct Redis {
    connection: redis::aio::MultiplexedConnection,
    channel: String,
}

impl Redis {
    async fn connect(
        server: &str,
        channel: &str,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Reply>)> {
        let client = redis::Client::open(server)?;
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_multiplexed_async_connection(),
        )
        .await
        .context("connecting to Redis")??;
        let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
            .await
            .context("connecting to Redis")??;
        pubsub.subscribe("reply").await?;
        let mut messages = pubsub.into_on_message();
        let (to_main, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                let at = Instant::now();
                let payload = message.get_payload_bytes().to_vec();
                if to_main.send(Reply { payload, at }).is_err() {
                    return;
                }
            }
            eprintln!("pubsub-load: the Redis subscription ended");
        });
        let transport = Self {
            connection,
            channel: channel.to_string(),
        };
        Ok((transport, replies))
    }
}

impl Transport for Redis {
    async fn send(&mut self, _slot: usize, payload: Vec<u8>) -> Result<()> {
        let receivers: usize = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut self.connection)
            .await?;
        if receivers == 0 {
            bail!("nobody is subscribed to channel {:?}", self.channel);
        }
        Ok(())
    }
}
