//! The Redis trigger end to end, against a real redis-server: both component
//! generations, replies through outbound Redis, poison messages and a server
//! restart.

use crate::harness;

use std::time::Duration;

use harness::{Gateway, Options, Received, RedisServer, RedisWatcher, examples, redis_publish};

fn start(redis: &RedisServer) -> Gateway {
    let variable = format!("redis={}", redis.address());
    let gw = Gateway::start_with(
        &examples().join("redis-triggered"),
        Options {
            args: &["--variable", &variable],
            ..Options::default()
        },
    );
    for channel in ["v5", "v7"] {
        let line = format!("channel \"{channel}\")");
        assert!(
            gw.wait_for_line(&[&line, "connected"], Duration::from_secs(15)),
            "channel {channel} not subscribed:\n{}",
            gw.logs()
        );
    }
    gw
}

fn has(received: &[Received], channel: &str, payload: &str) -> bool {
    received
        .iter()
        .any(|(c, p)| c == channel && p == payload.as_bytes())
}

#[tokio::test(flavor = "multi_thread")]
async fn sdk5_and_sdk7_subscribers_handle_their_channels() {
    let redis = RedisServer::start();
    let watcher = RedisWatcher::subscribe(&redis.address(), &["reply"]).await;
    let gw = start(&redis);
    assert_eq!(redis_publish(&redis.address(), "v5", b"hello").await, 1);
    assert_eq!(redis_publish(&redis.address(), "v7", b"hello").await, 1);
    let received = watcher
        .wait_until(Duration::from_secs(15), |r| {
            has(r, "reply", "v5:hello") && has(r, "reply", "v7:hello")
        })
        .await;
    assert!(
        has(&received, "reply", "v5:hello"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        has(&received, "reply", "v7:hello"),
        "{received:?}\n{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_ends_in_the_dead_letter_channel() {
    let redis = RedisServer::start();
    let watcher = RedisWatcher::subscribe(&redis.address(), &["reply", "dead"]).await;
    let gw = start(&redis);
    for channel in ["v5", "v7"] {
        redis_publish(&redis.address(), channel, b"trap").await;
        redis_publish(&redis.address(), channel, b"next").await;
    }
    let received = watcher
        .wait_until(Duration::from_secs(20), |r| {
            r.iter().filter(|(c, _)| c == "dead").count() == 2
                && has(r, "reply", "v5:next")
                && has(r, "reply", "v7:next")
        })
        .await;
    let dead = received
        .iter()
        .filter(|(c, p)| c == "dead" && p == b"trap")
        .count();
    assert_eq!(dead, 2, "{received:?}\n{}", gw.logs());
    assert!(has(&received, "reply", "v5:next"), "{received:?}");
    assert!(has(&received, "reply", "v7:next"), "{received:?}");
    assert!(
        gw.wait_for_log("moved to the dead-letter channel", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscription_comes_back_after_a_server_restart() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let gw = start(&redis);
    redis.stop();
    assert!(
        gw.wait_for_log("connection lost", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let redis = RedisServer::start_on(port);
    assert!(
        gw.wait_for_log("reconnected after", Duration::from_secs(20)),
        "{}",
        gw.logs()
    );
    let watcher = RedisWatcher::subscribe(&redis.address(), &["reply"]).await;
    let mut received = Vec::new();
    // Both subscriptions reconnect on their own schedule; publish until both answered.
    for _ in 0..50 {
        redis_publish(&redis.address(), "v5", b"back").await;
        redis_publish(&redis.address(), "v7", b"back").await;
        received = watcher
            .wait_until(Duration::from_millis(200), |r| {
                has(r, "reply", "v5:back") && has(r, "reply", "v7:back")
            })
            .await;
        if has(&received, "reply", "v5:back") && has(&received, "reply", "v7:back") {
            break;
        }
    }
    assert!(
        has(&received, "reply", "v5:back"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        has(&received, "reply", "v7:back"),
        "{received:?}\n{}",
        gw.logs()
    );
    // Lost once, back once: no log line per retry.
    assert_eq!(
        gw.logs().matches("\"v5\"): connection lost").count(),
        1,
        "{}",
        gw.logs()
    );
}

/// The gateway's peak resident memory so far, in MiB.
fn peak_rss_mib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_is_read_no_faster_than_it_is_handled() {
    let redis = RedisServer::start();
    let watcher = RedisWatcher::subscribe(&redis.address(), &["reply"]).await;
    let gw = start(&redis);
    redis_publish(&redis.address(), "v7", b"warm").await;
    watcher
        .wait_until(Duration::from_secs(20), |r| has(r, "reply", "v7:warm"))
        .await;
    // Peak RSS from here on (writing 5 to clear_refs resets it; where that is
    // not allowed the start-up's peak stays, which only makes the test laxer).
    let _ = std::fs::write(format!("/proc/{}/clear_refs", gw.pid()), "5");
    let before = peak_rss_mib(&gw);

    // 200 MiB of messages that each take a trap and a retry pause (100 ms or
    // more) to handle: far faster than the trigger can take them.
    let mut payload = b"trap".to_vec();
    payload.resize(1024 * 1024, b'.');
    let client = redis::Client::open(redis.address()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    for _ in 0..200 {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("v7")
            .arg(&payload)
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    let after = peak_rss_mib(&gw);
    eprintln!("redis flood: peak RSS {before} MiB before, {after} MiB after");
    // Held at once: the trigger's 4 messages and two being read, 1 MiB each,
    // besides the instances handling them. Reading ahead would hold 200.
    assert!(
        after < before + 40,
        "peak RSS grew from {before} MiB to {after} MiB during the flood\n{}",
        gw.logs()
    );
    // Redis dropped the subscriber that fell behind (its pubsub output
    // buffer limit); the trigger reconnects and goes on.
    let mut received = Vec::new();
    for _ in 0..60 {
        redis_publish(&redis.address(), "v7", b"after").await;
        received = watcher
            .wait_until(Duration::from_millis(500), |r| has(r, "reply", "v7:after"))
            .await;
        if has(&received, "reply", "v7:after") {
            break;
        }
    }
    assert!(
        has(&received, "reply", "v7:after"),
        "the trigger did not recover\n{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_size_limit_is_skipped_unread() {
    let redis = RedisServer::start();
    let watcher = RedisWatcher::subscribe(&redis.address(), &["reply"]).await;
    let variable = format!("redis={}", redis.address());
    let gw = Gateway::start_with(
        &examples().join("redis-triggered"),
        Options {
            args: &["--variable", &variable, "--redis-max-message-size", "64KiB"],
            ..Options::default()
        },
    );
    assert!(
        gw.wait_for_log("channel \"v7\"): connected", Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let big = vec![b'x'; 65 * 1024];
    redis_publish(&redis.address(), "v7", &big).await;
    redis_publish(&redis.address(), "v7", &vec![b'y'; 64 * 1024]).await;
    redis_publish(&redis.address(), "v7", b"next").await;
    let received = watcher
        .wait_until(Duration::from_secs(20), |r| has(r, "reply", "v7:next"))
        .await;
    let replies: Vec<usize> = received.iter().map(|(_, p)| p.len()).collect();
    // The 64 KiB message (at the limit) and "next" were handled; the larger one not.
    assert_eq!(replies, vec![3 + 64 * 1024, 3 + 4], "{}", gw.logs());
    assert!(
        gw.logs()
            .contains("dropped a message of 66560 bytes: the limit is 65536"),
        "{}",
        gw.logs()
    );
}
