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
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !gw
            .logs()
            .lines()
            .any(|l| l.contains(&line) && l.contains("connected"))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "channel {channel} not subscribed:\n{}",
                gw.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
    assert!(gw.logs().contains("moved to the dead-letter channel"));
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
