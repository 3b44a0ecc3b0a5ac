//! Updates while pub/sub traffic flows: MQTT messages answered through
//! outbound MQTT across pushes (and a broker restart), with the broker's and
//! the daemon's connection and thread counts where they were; Redis messages
//! published every 2 ms through pushes, none without a subscriber, none
//! unhandled.

use crate::harness;

use std::time::Duration;

use harness::{MosquittoBroker, MqttClient, Service, examples, ok};

/// Threads of process `pid` whose name starts with `prefix` (Linux names
/// threads by their first 15 bytes).
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// The broker's own count of connected clients, from its `$SYS` topic
/// (retained, refreshed every second: see the harness's `sys_interval`).
fn connected_clients(sys: &MqttClient) -> Option<u64> {
    let received = sys.received();
    let (_, payload) = received.last()?;
    std::str::from_utf8(payload).ok()?.trim().parse().ok()
}

/// TCP connections process `pid` has established to `port` on loopback (its
/// sockets, matched by inode in /proc/net/tcp).
fn connections_to(pid: u32, port: u16) -> usize {
    let sockets: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().to_string();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 9
                && fields[3] == "01"
                && fields[2].ends_with(&format!(":{port:04X}"))
                && sockets.contains(fields[9])
        })
        .count()
}

/// Polls `probe` (bounded) until it equals `want`; returns the last value.
async fn settles_at<T: PartialEq + Copy>(want: T, mut probe: impl FnMut() -> T) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = probe();
        if now == want || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An MQTT-triggered component that answers through outbound MQTT, under a
/// steady stream of messages while six updates are pushed: every message is
/// answered, and the broker sees as many gatewayd connections after the last
/// update as after the first (one outbound connection shared by every
/// generation, one trigger session), as does the daemon's thread list. Before
/// outbound connections were process-wide, each generation opened its own
/// with the same client id and the broker kept closing one for the other.
#[tokio::test(flavor = "multi_thread")]
async fn updates_under_mqtt_load_answer_every_message_and_keep_one_connection() {
    mqtt_updates_under_load(false).await;
}

/// The same with the broker restarted in the middle of the updates: once it
/// is back, every message is still answered (trigger sessions and the
/// outbound connection reconnect; nothing fights over a client id).
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_during_updates_under_load_loses_no_message() {
    mqtt_updates_under_load(true).await;
}

async fn mqtt_updates_under_load(restart_broker: bool) {
    let mut broker = MosquittoBroker::start();
    let service = Service::new();
    let gw = service.start_with(&[("SPIN_VARIABLE_BROKER", &broker.address())]);
    let app = examples().join("mqtt-triggered");
    ok(&service.push(&service.bundle_app(&app, "1.0.0", "release", &[])));
    // Persistent: replies wait in the broker while this client reconnects.
    let replies = MqttClient::connect_persistent(broker.port, &["reply/#"]).await;
    let sys = MqttClient::connect(broker.port, &["$SYS/broker/clients/connected"]).await;
    // A message answered by generation 2 opens its outbound connection.
    ok(&service.push(&service.bundle_app(&app, "1.1.0", "release", &[])));
    // Persistent too: a publish in flight when the broker restarts is sent
    // again with the session (a clean-session client may drop it, and did).
    let sender = MqttClient::connect_persistent(broker.port, &[]).await;
    sender.publish("sensors/first/temp", 1, "first").await;
    replies
        .wait_until(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    // gatewayd: three trigger sessions and one outbound connection (its own
    // sockets, and the broker's count with the test's three clients).
    const GATEWAYD: usize = 4;
    const CLIENTS: Option<u64> = Some(7);
    assert_eq!(
        settles_at(GATEWAYD, || connections_to(gw.pid(), broker.port)).await,
        GATEWAYD,
        "{}",
        gw.logs()
    );
    assert_eq!(
        settles_at(CLIENTS, || connected_clients(&sys)).await,
        CLIENTS,
        "{}",
        gw.logs()
    );
    assert_eq!(
        threads_named(gw.pid(), "mqtt "),
        1,
        "one outbound connection, one owner thread"
    );

    const MESSAGES: usize = 300;
    let load = tokio::spawn(async move {
        for i in 0..MESSAGES {
            sender
                .publish(&format!("sensors/s{i}/temp"), 1, format!("m{i}"))
                .await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        sender.flush().await;
    });
    for minor in 2..=6 {
        let bundle = service.bundle_app(&app, &format!("1.{minor}.0"), "release", &[]);
        ok(&service.push(&bundle));
        if restart_broker && minor == 4 {
            tokio::task::block_in_place(|| broker.restart(Duration::from_millis(500)));
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    load.await.unwrap();
    let answered_all = |r: &[harness::Received]| {
        let answered: std::collections::BTreeSet<String> = r
            .iter()
            .map(|(_, payload)| String::from_utf8_lossy(payload).to_string())
            .collect();
        (0..MESSAGES).all(|i| answered.contains(&format!("m{i}")))
    };
    let received = replies
        .wait_until(Duration::from_secs(30), answered_all)
        .await;
    let answered: std::collections::BTreeSet<String> = received
        .iter()
        .map(|(_, payload)| String::from_utf8_lossy(payload).to_string())
        .collect();
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|i| !answered.contains(&format!("m{i}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {MESSAGES} messages never answered: {missing:?}\n{}",
        missing.len(),
        gw.logs()
    );
    assert_eq!(service.status()["version"], "1.6.0");
    assert_eq!(
        settles_at(GATEWAYD, || connections_to(gw.pid(), broker.port)).await,
        GATEWAYD,
        "{}",
        gw.logs()
    );
    // The broker sees no connection of an old generation left over (the
    // test's publisher may be gone by now, so at most what it saw first).
    let clients = settles_at(CLIENTS, || connected_clients(&sys)).await;
    assert!(clients <= CLIENTS, "{clients:?}\n{}", gw.logs());
    assert_eq!(settles_at(1, || threads_named(gw.pid(), "mqtt ")).await, 1);
}

/// Redis messages published steadily while three updates are pushed are all
/// handled: the new generation subscribes before the old one lets go, so
/// there is no moment without a subscriber (Redis keeps nothing for absent
/// ones). A message published in the overlap may be handled twice, never
/// zero times.
#[tokio::test(flavor = "multi_thread")]
async fn updates_under_redis_load_leave_no_message_unhandled() {
    let redis = harness::RedisServer::start();
    let service = Service::new();
    let gw = service.start_with(&[("SPIN_VARIABLE_REDIS", &redis.address())]);
    let app = examples().join("redis-triggered");
    ok(&service.push(&service.bundle_app(&app, "1.0.0", "release", &[])));
    let watcher = harness::RedisWatcher::subscribe(&redis.address(), &["reply"]).await;
    assert!(
        gw.wait_for_log("channel \"v7\"): connected", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );

    // A message every 2 ms from before the first push to after the last,
    // each one checked for a subscriber the moment it is published.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn({
        let (address, done) = (redis.address(), done.clone());
        async move {
            let client = redis::Client::open(address).unwrap();
            let mut connection = client.get_multiplexed_async_connection().await.unwrap();
            let mut unheard = Vec::new();
            let mut sent = 0usize;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let receivers: i64 = redis::cmd("PUBLISH")
                    .arg("v7")
                    .arg(format!("m{sent}"))
                    .query_async(&mut connection)
                    .await
                    .unwrap();
                if receivers == 0 {
                    unheard.push(sent);
                }
                sent += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (sent, unheard)
        }
    });
    for minor in 1..=3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let bundle = service.bundle_app(&app, &format!("1.{minor}.0"), "release", &[]);
        ok(&service.push(&bundle));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, unheard) = load.await.unwrap();
    assert!(
        unheard.is_empty(),
        "{} of {sent} messages were published while no generation subscribed: {unheard:?}",
        unheard.len()
    );
    let expected = |i: usize| format!("v7:m{i}").into_bytes();
    let received = watcher
        .wait_until(Duration::from_secs(30), |r| {
            let handled: std::collections::HashSet<&Vec<u8>> = r.iter().map(|(_, p)| p).collect();
            (0..sent).all(|i| handled.contains(&expected(i)))
        })
        .await;
    let handled: std::collections::HashSet<&Vec<u8>> = received.iter().map(|(_, p)| p).collect();
    let missing: Vec<usize> = (0..sent)
        .filter(|i| !handled.contains(&expected(*i)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {sent} messages never handled: {missing:?}\n{}",
        missing.len(),
        gw.logs()
    );
    assert_eq!(service.status()["version"], "1.3.0");
}
