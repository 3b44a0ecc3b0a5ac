//! The hostile-input benchmark's driver: runs each attack on a running
//! gatewayd for a while, one after another, while a prober asks for a small
//! page every 20 ms on a fresh connection and a sampler reads the daemon's
//! memory and open descriptors from `/proc`. Prints, per attack, the peak
//! resident memory, the most descriptors open against the limit, how many
//! probes were answered and their latency next to the quiet baseline measured
//! first against the same daemon; exits 1 if an attack on the daemon's own resources
//! took it over `--max-rss-mib` or half its descriptor limit, or a probe
//! failed. `benches/attacks.sh` sets the scene (brokers, app, config).
//!
//! Usage: attack --pid PID --http ADDR --admin SOCKET --redis URL --mqtt ADDR
//!        --bomb FILE [--seconds 10] [--only NAME] [--no-header]
//!        attack --list

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncRead, AsyncWrite};

#[derive(Parser)]
struct Args {
    /// The gatewayd process.
    #[arg(long)]
    pid: u32,
    /// Its HTTP listener.
    #[arg(long)]
    http: SocketAddr,
    /// Its admin socket.
    #[arg(long)]
    admin: PathBuf,
    /// The Redis server its app's Redis trigger subscribes to.
    #[arg(long)]
    redis: String,
    /// The MQTT broker its app's MQTT trigger subscribes to.
    #[arg(long)]
    mqtt: SocketAddr,
    /// A hostile bundle (a gzip'd tar whose first record declares gigabytes).
    #[arg(long)]
    bomb: PathBuf,
    /// How long each attack lasts.
    #[arg(long, default_value = "10")]
    seconds: u64,
    /// Run only this attack (after the quiet baseline).
    #[arg(long)]
    only: Option<String>,
    /// Leave out the header lines (for the runs after the first).
    #[arg(long)]
    no_header: bool,
    /// Print the attacks' names and exit.
    #[arg(long)]
    list: bool,
    /// Peak resident memory allowed under attacks on the daemon's own resources.
    #[arg(long, default_value = "64")]
    max_rss_mib: f64,
}

/// What an attack aims at: the daemon's own resources (bounded by the
/// daemon: memory, descriptors) or its guests' (bounded by configuration:
/// instances times the instance memory, the request timeout).
#[derive(Clone, Copy, PartialEq)]
enum Target {
    Daemon,
    Guests,
}

const ATTACKS: &[(&str, Target, &str)] = &[
    ("quiet", Target::Daemon, "no attack: the baseline"),
    (
        "idle-http",
        Target::Daemon,
        "2000 HTTP connections from 127.0.0.2 that never send a byte",
    ),
    (
        "idle-admin",
        Target::Daemon,
        "2000 admin-socket connections that never send a byte",
    ),
    (
        "bundle-bomb",
        Target::Daemon,
        "pushes of a 1 MB bundle declaring a 1 GiB name, 2 at a time",
    ),
    (
        "bodies-over-limit",
        Target::Daemon,
        "8 chunked uploads of 100 MiB at a time (the limit is 32 MiB)",
    ),
    (
        "bodies-unread",
        Target::Daemon,
        "8 uploads of 30 MiB at a time to a component that never reads them",
    ),
    (
        "redis-flood",
        Target::Daemon,
        "1 MiB Redis messages that each trap, published without pause",
    ),
    (
        "mqtt-flood",
        Target::Daemon,
        "256 KiB QoS 1 MQTT messages that each sleep 50 ms, without pause",
    ),
    (
        "looping-guests",
        Target::Guests,
        "2 requests at a time (one per core) that loop until their deadline",
    ),
    (
        "looping-guests-8",
        Target::Guests,
        "8 requests at a time that loop until their deadline",
    ),
    (
        "memory-bombs",
        Target::Guests,
        "4 requests at a time that grow memory until their limit",
    ),
];

#[derive(Default)]
struct Figures {
    rss_before_mib: f64,
    peak_rss_mib: f64,
    peak_fds: usize,
    probes: Vec<Option<Duration>>,
    /// Requests, connections or messages the attack made.
    attack_ops: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    // Before parsing: the other arguments are required for a run, not here.
    if std::env::args().any(|a| a == "--list") {
        for (name, ..) in ATTACKS.iter().skip(1) {
            println!("{name}");
        }
        return Ok(());
    }
    let args = Arc::new(Args::parse());
    let fd_limit = open_file_limit(args.pid)?;
    if !args.no_header {
        println!(
            "open-file limit {fd_limit}, {} s per attack; probe: GET /probe/ok every 20 ms on a fresh connection",
            args.seconds
        );
    }
    println!(
        "gatewayd started: RSS {:.1} MiB = {:.1} anonymous + {:.1} file-backed (binary, compiled code) + {:.1} shared",
        memory_mib(args.pid, "VmRSS:")?,
        memory_mib(args.pid, "RssAnon:")?,
        memory_mib(args.pid, "RssFile:")?,
        memory_mib(args.pid, "RssShmem:")?,
    );
    if !args.no_header {
        println!(
            "{:<18} {:>10} {:>9} {:>10} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "attack",
            "RSS before",
            "peak RSS",
            "peak fds",
            "probes",
            "p50 ms",
            "p99 ms",
            "max ms",
            "p99/quiet",
            "attack ops"
        );
    }
    let mut quiet_p99 = None;
    let mut failures = Vec::new();
    for &(name, target, what) in ATTACKS {
        if let Some(only) = &args.only
            && name != "quiet"
            && name != only
        {
            continue;
        }
        let figures = run(&args, name).await?;
        let mut answered: Vec<Duration> = figures.probes.iter().flatten().copied().collect();
        answered.sort();
        let quantile = |q: f64| {
            answered
                .get(((answered.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
        };
        let (p50, p99, max) = (quantile(0.5), quantile(0.99), quantile(1.0));
        if name == "quiet" {
            quiet_p99 = Some(p99);
        }
        println!(
            "{name:<18} {:>6.1} MiB {:>5.1} MiB {:>4}/{:<5} {:>4}/{:<4} {p50:>8.2} {p99:>8.2} {max:>8.1} {:>8.1}x {:>9}",
            figures.rss_before_mib,
            figures.peak_rss_mib,
            figures.peak_fds,
            fd_limit,
            answered.len(),
            figures.probes.len(),
            p99 / quiet_p99.unwrap_or(p99),
            figures.attack_ops,
        );
        if !args.no_header || name != "quiet" {
            println!("{:<18} ({what})", "");
        }
        if answered.len() < figures.probes.len() {
            failures.push(format!(
                "{name}: {} probes unanswered",
                figures.probes.len() - answered.len()
            ));
        }
        if target == Target::Daemon && figures.peak_rss_mib > args.max_rss_mib {
            failures.push(format!(
                "{name}: peak RSS {:.1} MiB over {} MiB",
                figures.peak_rss_mib, args.max_rss_mib
            ));
        }
        if figures.peak_fds * 2 >= fd_limit {
            failures.push(format!(
                "{name}: {} descriptors open, half the limit is {}",
                figures.peak_fds,
                fd_limit / 2
            ));
        }
    }
    if !failures.is_empty() {
        bail!("bounds not kept:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

/// Runs one attack with the prober and the sampler beside it.
async fn run(args: &Arc<Args>, name: &str) -> Result<Figures> {
    tokio::time::sleep(Duration::from_secs(1)).await; // let the last one wind down
    // Writing 5 to clear_refs resets the peak (VmHWM) to the current RSS.
    std::fs::write(format!("/proc/{}/clear_refs", args.pid), "5")
        .context("resetting the peak RSS (needs the daemon's user or root)")?;
    let rss_before_mib = memory_mib(args.pid, "VmRSS:")?;
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe(args.http, stop.clone()));
    let sampler = tokio::spawn(sample_fds(args.pid, stop.clone()));
    let attack = tokio::spawn(attack(args.clone(), name.to_string(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let attack_ops = tokio::time::timeout(Duration::from_secs(30), attack)
        .await
        .context("the attack did not stop")???;
    Ok(Figures {
        rss_before_mib,
        peak_rss_mib: memory_mib(args.pid, "VmHWM:")?,
        peak_fds: sampler.await?,
        probes: prober.await?,
        attack_ops,
    })
}

/// One attack until `stop`; returns how many operations it got through.
async fn attack(args: Arc<Args>, name: String, stop: Arc<AtomicBool>) -> Result<u64> {
    let many = |count: usize, op: fn(Arc<Args>) -> Op| {
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let (args, stop) = (args.clone(), stop.clone());
                tokio::spawn(async move {
                    // Attempts, answered or not: an upload cut at the body
                    // limit ends in a reset, which is the point.
                    let mut attempts = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = op(args.clone()).await;
                        attempts += 1;
                    }
                    attempts
                })
            })
            .collect();
        async move {
            let mut total = 0;
            for task in tasks {
                total += task.await?;
            }
            Ok::<u64, anyhow::Error>(total)
        }
    };
    match name.as_str() {
        "quiet" => {
            wait(&stop).await;
            Ok(0)
        }
        "idle-http" => {
            let mut held = Vec::new();
            for _ in 0..2000 {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind("127.0.0.2:0".parse()?)?;
                match tokio::time::timeout(Duration::from_millis(200), socket.connect(args.http))
                    .await
                {
                    Ok(Ok(stream)) => held.push(stream),
                    _ => break,
                }
            }
            wait(&stop).await;
            Ok(held.len() as u64)
        }
        "idle-admin" => {
            let mut held = Vec::new();
            for _ in 0..2000 {
                let connecting = tokio::net::UnixStream::connect(&args.admin);
                match tokio::time::timeout(Duration::from_millis(200), connecting).await {
                    Ok(Ok(stream)) => held.push(stream),
                    _ => break,
                }
            }
            wait(&stop).await;
            Ok(held.len() as u64)
        }
        "bundle-bomb" => many(2, |args| Box::pin(push_bomb(args))).await,
        "bodies-over-limit" => many(8, |args| Box::pin(upload_over_limit(args))).await,
        "bodies-unread" => many(8, |args| Box::pin(upload_unread(args))).await,
        "looping-guests" => many(2, |args| Box::pin(get_status(args, "/probe/loop"))).await,
        "looping-guests-8" => many(8, |args| Box::pin(get_status(args, "/probe/loop"))).await,
        "memory-bombs" => many(4, |args| Box::pin(get_status(args, "/probe/membomb"))).await,
        "redis-flood" => redis_flood(&args, &stop).await,
        "mqtt-flood" => mqtt_flood(&args, &stop).await,
        other => bail!("no attack named {other}"),
    }
}

type Op = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

async fn wait(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn push_bomb(args: Arc<Args>) -> Result<()> {
    let bomb = Bytes::from(tokio::fs::read(&args.bomb).await?);
    let stream = tokio::net::UnixStream::connect(&args.admin).await?;
    let status = send(stream, "POST", "/v1/bundles", Full::new(bomb)).await?;
    anyhow::ensure!(status.is_client_error(), "the bomb was answered {status}");
    Ok(())
}

async fn upload_over_limit(args: Arc<Args>) -> Result<()> {
    let chunk = Bytes::from(vec![b'x'; 1 << 20]);
    let chunks = futures_util::stream::iter(
        (0..100).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let stream = tokio::net::TcpStream::connect(args.http).await?;
    send(stream, "POST", "/probe/echo", StreamBody::new(chunks)).await?;
    Ok(())
}

async fn upload_unread(args: Arc<Args>) -> Result<()> {
    static BODY: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let body = BODY
        .get_or_init(|| Bytes::from(vec![b'x'; 30 << 20]))
        .clone();
    let stream = tokio::net::TcpStream::connect(args.http).await?;
    send(stream, "POST", "/hello", Full::new(body)).await?;
    Ok(())
}

async fn get_status(args: Arc<Args>, path: &'static str) -> Result<()> {
    let stream = tokio::net::TcpStream::connect(args.http).await?;
    send(stream, "GET", path, Full::new(Bytes::new())).await?;
    Ok(())
}

async fn redis_flood(args: &Args, stop: &AtomicBool) -> Result<u64> {
    let mut payload = b"trap".to_vec();
    payload.resize(1 << 20, b'.');
    let client = redis::Client::open(args.redis.as_str())?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut sent = 0;
    while !stop.load(Ordering::Relaxed) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("flood")
            .arg(&payload)
            .query_async(&mut connection)
            .await?;
        sent += 1;
    }
    Ok(sent)
}

async fn mqtt_flood(args: &Args, stop: &AtomicBool) -> Result<u64> {
    let mut options = rumqttc::MqttOptions::new(
        format!("attack-{}", std::process::id()),
        args.mqtt.ip().to_string(),
        args.mqtt.port(),
    );
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 16);
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = acked.clone();
    let poller = tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    counting.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let mut payload = b"sleep:50:".to_vec();
    payload.resize(256 << 10, b'.');
    let mut topic = 0u32;
    while !stop.load(Ordering::Relaxed) {
        topic = (topic + 1) % 64;
        let publishing = client.publish(
            format!("flood/{topic}/temp"),
            rumqttc::QoS::AtLeastOnce,
            false,
            payload.clone(),
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), publishing).await;
    }
    poller.abort();
    Ok(acked.load(Ordering::Relaxed))
}

/// Sends one request on a fresh connection and reads the whole response.
async fn send<S, B>(stream: S, method: &str, path: &str, body: B) -> Result<http::StatusCode>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(connection);
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gatewayd")
        .body(body)?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    response.into_body().collect().await?;
    Ok(status)
}

/// GET /probe/ok every 20 ms until `stop`, each on a fresh connection with a
/// 5 s bound; the latency of each, or `None` for a failure.
async fn probe(http: SocketAddr, stop: Arc<AtomicBool>) -> Vec<Option<Duration>> {
    let mut results = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let started = Instant::now();
        let asking = async {
            let stream = tokio::net::TcpStream::connect(http).await?;
            send(stream, "GET", "/probe/ok", Full::new(Bytes::new())).await
        };
        results.push(
            match tokio::time::timeout(Duration::from_secs(5), asking).await {
                Ok(Ok(status)) if status.is_success() => Some(started.elapsed()),
                _ => None,
            },
        );
    }
    results
}

/// The most descriptors the process had open, sampled every 20 ms until `stop`.
async fn sample_fds(pid: u32, stop: Arc<AtomicBool>) -> usize {
    let mut peak = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            peak = peak.max(entries.count());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    peak
}

/// A memory figure of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in MiB.
fn memory_mib(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("gatewayd is gone (crashed or killed?)")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/PID/status"))?;
    Ok(kib / 1024.0)
}

fn open_file_limit(pid: u32) -> Result<usize> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .context("no open-file limit in /proc/PID/limits")
}
