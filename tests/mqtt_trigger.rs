//! The MQTT trigger end to end, against a real mosquitto: routing by topic
//! filter, replies through outbound MQTT, poison messages, a broker restart and
//! a gateway killed mid-message (at least once: nothing is lost).

use crate::harness;

use std::time::Duration;

use harness::{Gateway, MosquittoBroker, MqttClient, Options, Received, examples};

fn app() -> std::path::PathBuf {
    examples().join("mqtt-triggered")
}

/// Starts the gateway on `broker` and waits until every trigger subscribed
/// (or, with `resumed`, resumed its session).
fn start(broker: &MosquittoBroker, resumed: bool) -> Gateway {
    let variable = format!("broker={}", broker.address());
    start_with(&["--variable", &variable], resumed)
}

fn start_with(args: &[&str], resumed: bool) -> Gateway {
    let gw = Gateway::start_with(
        &app(),
        Options {
            args,
            // Each message's arrival is logged ("...: received"), so a test
            // that expects nothing to happen can first prove what did.
            env: &[("RUST_LOG", "info,gatewayd::trigger=debug")],
            ..Options::default()
        },
    );
    let ready = if resumed {
        "resumed its session"
    } else {
        "subscribed"
    };
    for id in ["sensors", "alerts", "work"] {
        let line = format!("MQTT trigger \"{id}\"");
        assert!(
            gw.wait_for_line(&[&line, ready], Duration::from_secs(15)),
            "trigger {id} not {ready}:\n{}",
            gw.logs()
        );
    }
    gw
}

fn has(received: &[Received], topic: &str, payload: &str) -> bool {
    received
        .iter()
        .any(|(t, p)| t == topic && p == payload.as_bytes())
}

/// Waits until the gateway's log shows the component handled `topic`.
fn handled(gw: &Gateway, topic: &str, timeout: Duration) -> bool {
    gw.wait_for_log(&format!("mqtt-trigger: handled {topic} "), timeout)
}

/// Waits until the gateway's log shows a message on `topic` arrived.
fn arrived(gw: &Gateway, topic: &str, timeout: Duration) -> bool {
    gw.wait_for_log(&format!("message on {topic:?}: received"), timeout)
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_reach_their_trigger_and_replies_come_back() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &["reply/#", "dead/#"]).await;
    let gw = start(&broker, false);
    client.publish("sensors/kitchen/temp", 1, "21.5").await;
    client.publish("alerts/fire/floor/2", 0, "smoke").await;
    client.publish("sensors/kitchen/humidity", 1, "40").await;
    client.publish("work/7", 2, "job").await;
    let received = client
        .wait_until(Duration::from_secs(15), |r| {
            has(r, "reply/sensors/kitchen/temp", "21.5")
                && has(r, "reply/alerts/fire/floor/2", "smoke")
                && has(r, "reply/work/7", "job")
        })
        .await;
    assert!(
        has(&received, "reply/sensors/kitchen/temp", "21.5"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        has(&received, "reply/alerts/fire/floor/2", "smoke"),
        "{received:?}"
    );
    assert!(has(&received, "reply/work/7", "job"), "{received:?}");
    // No filter matches sensors/+/humidity. A message published after it on
    // a topic the sensors trigger takes arrives after it would have (one
    // publisher, one session: in order), so once that one arrived, nothing
    // more can come.
    client.publish("sensors/sentinel/temp", 1, "last").await;
    assert!(
        arrived(&gw, "sensors/sentinel/temp", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("humidity"), "{}", gw.logs());
    assert!(
        !client
            .received()
            .iter()
            .any(|(t, _)| t.contains("humidity")),
        "{:?}",
        client.received()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_ends_in_the_dead_letter_topic_and_the_topic_moves_on() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &["reply/#", "dead/#"]).await;
    let gw = start(&broker, false);
    client.publish("sensors/p/temp", 1, "trap").await;
    client.publish("sensors/p/temp", 1, "fail").await;
    client.publish("sensors/p/temp", 1, "after").await;
    let received = client
        .wait_until(Duration::from_secs(20), |r| {
            has(r, "dead/sensors", "trap")
                && has(r, "dead/sensors", "fail")
                && has(r, "reply/sensors/p/temp", "after")
        })
        .await;
    assert!(
        has(&received, "dead/sensors", "trap"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        has(&received, "dead/sensors", "fail"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        has(&received, "reply/sensors/p/temp", "after"),
        "{received:?}"
    );
    // In order: the poison messages did not let "after" overtake them.
    let order: Vec<&[u8]> = received
        .iter()
        .filter(|(t, _)| t == "dead/sensors" || t == "reply/sensors/p/temp")
        .map(|(_, p)| p.as_slice())
        .collect();
    assert_eq!(order, [&b"trap"[..], b"fail", b"after"]);
    let logs = gw.logs();
    assert!(logs.contains("attempt 1 of 2 failed"), "{logs}");
    assert!(logs.contains("moved to the dead-letter topic"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_topic_is_handled_in_order_under_a_flood() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &["reply/#"]).await;
    let gw = start(&broker, false);
    const N: usize = 200;
    for i in 0..N {
        client.publish("work/flood", 1, format!("{i}")).await;
    }
    let received = client
        .wait_until(Duration::from_secs(60), |r| r.len() >= N)
        .await;
    let got: Vec<usize> = received
        .iter()
        .map(|(_, p)| String::from_utf8_lossy(p).parse().unwrap())
        .collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_loses_no_qos1_message() {
    let mut broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &[]).await;
    let gw = start(&broker, false);
    // Slow messages, so some are in the gateway's hands, unacknowledged, when
    // the broker goes away.
    for i in 0..10 {
        client
            .publish(&format!("sensors/{i}/temp"), 1, "sleep:300")
            .await;
    }
    client.flush().await;
    broker.restart(Duration::from_millis(500));
    assert!(
        gw.wait_for_log("reconnected after", Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let client = MqttClient::connect(broker.port, &[]).await;
    for i in 10..20 {
        client
            .publish(&format!("sensors/{i}/temp"), 1, "after")
            .await;
    }
    client.flush().await;
    for i in 0..20 {
        assert!(
            handled(&gw, &format!("sensors/{i}/temp"), Duration::from_secs(30)),
            "message {i} never handled:\n{}",
            gw.logs()
        );
    }
    // The broker kept the session: nothing had to be subscribed again.
    assert!(
        gw.logs().contains("MQTT trigger \"sensors\" (")
            && gw.logs().contains("resumed its session"),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_in_flight_when_the_gateway_is_killed_are_handled_after_restart() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &[]).await;
    let first = start(&broker, false);
    for i in 0..6 {
        client
            .publish(&format!("sensors/k{i}/temp"), 1, "sleep:2000")
            .await;
    }
    client.flush().await;
    // Messages are in the gateway's hands (being handled, the rest queued
    // behind the trigger's concurrency) when it is killed.
    assert!(
        first.wait_for_log("message on \"sensors/k", Duration::from_secs(10)),
        "{}",
        first.logs()
    );
    first.signal(libc::SIGKILL);
    let before = first.logs();
    drop(first);
    assert!(!before.contains("mqtt-trigger: handled"), "{before}");
    let second = start(&broker, true);
    for i in 0..6 {
        assert!(
            handled(
                &second,
                &format!("sensors/k{i}/temp"),
                Duration::from_secs(30)
            ),
            "message {i} lost with the killed gateway:\n{}",
            second.logs()
        );
    }
}

/// The README's demo: votes over HTTP become MQTT messages, an MQTT-triggered
/// component counts them in key-value, another HTTP route reads the counts.
#[tokio::test(flavor = "multi_thread")]
async fn the_whiskers_demo_counts_votes() {
    let broker = MosquittoBroker::start();
    let variable = format!("mqtt_address={}", broker.address());
    let gw = Gateway::start_with(
        &examples().join("whiskers"),
        Options {
            args: &["--variable", &variable],
            ..Options::default()
        },
    );
    assert!(
        gw.wait_for_log("subscribed", Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let client = harness::client();
    for animal in ["cat", "cat", "dog", "cat", "chicken"] {
        let response = client
            .post(gw.url(&format!("/vote/{animal}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", gw.logs());
    }
    let bad = client.post(gw.url("/vote/unicorn")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let want = r#"{"cat":3,"dog":1,"rabbit":0,"chicken":1}"#;
    let mut scores = String::new();
    for _ in 0..100 {
        scores = harness::get(&gw.url("/scores")).await.1;
        if scores.trim() == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scores.trim(), want, "{}", gw.logs());
}

/// SIGTERM: the message being handled finishes and is acknowledged (a later
/// gateway does not get it again), and the process exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_the_message_in_hand_finish() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &[]).await;
    let mut first = start(&broker, false);
    client.publish("sensors/drain/temp", 1, "sleep:1000").await;
    client.flush().await;
    assert!(
        arrived(&first, "sensors/drain/temp", Duration::from_secs(10)),
        "{}",
        first.logs()
    );
    first.signal(libc::SIGTERM);
    let exit = first
        .wait(Duration::from_secs(15))
        .expect("gatewayd did not exit");
    assert!(exit.success(), "{exit}\n{}", first.logs());
    assert!(
        first.logs().contains("handled sensors/drain/temp"),
        "{}",
        first.logs()
    );
    assert!(
        first.logs().contains("waiting for 1 in-flight messages"),
        "{}",
        first.logs()
    );
    // Acknowledged before the goodbye: the session holds nothing for the
    // next one. The broker delivers what a session holds before what is
    // published later, so once a later message arrived, the old one would have.
    let second = start(&broker, true);
    client.publish("sensors/sentinel/temp", 1, "later").await;
    assert!(
        arrived(&second, "sensors/sentinel/temp", Duration::from_secs(10)),
        "{}",
        second.logs()
    );
    assert!(
        !second.logs().contains("sensors/drain/temp"),
        "{}",
        second.logs()
    );
}

/// A trigger whose component does not export the MQTT handler stops the
/// start, naming the trigger, the component and what was expected.
#[test]
fn a_component_without_the_handler_is_a_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let hello = examples().join("target/wasm32-wasip2/release/hello.wasm");
    std::fs::write(
        dir.path().join("spin.toml"),
        format!(
            r#"spin_manifest_version = 2
[application]
name = "wrong-export"
[application.trigger.mqtt]
address = "mqtt://127.0.0.1:1"
[[trigger.mqtt]]
id = "t"
component = "web"
topic = "a/b"
qos = "1"
[component.web]
source = "{}"
"#,
            hello.display()
        ),
    )
    .unwrap();
    let failure = match Gateway::try_start(dir.path(), Options::default()) {
        Ok(_) => panic!("started with a component that cannot handle MQTT messages"),
        Err(failure) => failure,
    };
    assert!(
        failure.contains("MQTT trigger \"t\"")
            && failure.contains("component \"web\" exports no MQTT handler"),
        "{failure}"
    );
}

/// mqtts://: the trigger and the component's outbound MQTT both reach a
/// broker whose certificate a private CA signed, given with --tls-ca-file.
/// Without it, the gateway refuses the broker (and keeps retrying).
#[tokio::test(flavor = "multi_thread")]
async fn brokers_behind_tls_with_a_private_ca() {
    let broker = MosquittoBroker::start_tls();
    let client = MqttClient::connect(broker.port, &["reply/#"]).await;
    let variable = format!("broker=mqtts://localhost:{}", broker.tls_port);
    let ca = broker.ca_file().display().to_string();
    let gw = start_with(&["--variable", &variable, "--tls-ca-file", &ca], false);
    client.publish("sensors/tls/temp", 1, "secret").await;
    let received = client
        .wait_until(Duration::from_secs(15), |r| {
            has(r, "reply/sensors/tls/temp", "secret")
        })
        .await;
    assert!(
        has(&received, "reply/sensors/tls/temp", "secret"),
        "{received:?}\n{}",
        gw.logs()
    );
    drop(gw);

    let untrusting = Gateway::start_with(
        &app(),
        Options {
            args: &["--variable", &variable],
            ..Options::default()
        },
    );
    assert!(
        untrusting.wait_for_log("cannot connect", Duration::from_secs(10)),
        "{}",
        untrusting.logs()
    );
    let logs = untrusting.logs();
    assert!(logs.to_lowercase().contains("certificate"), "{logs}");
    assert!(!logs.contains("subscribed"), "{logs}");
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alives_go_out_while_the_trigger_is_full() {
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &["reply/#"]).await;
    let gw = start(&broker, false);
    // `work` handles one message at a time and its broker keep-alive is 5 s,
    // so mosquitto drops a client that sends nothing for 1.5 keep-alives (it
    // checks coarsely: a silent client went after 10.5 s). A 14 s message with
    // another behind it keeps the trigger full for 14 s.
    client.publish("work/slow", 1, "sleep:14000").await;
    client.publish("work/slow", 1, "next").await;
    let received = client
        .wait_until(Duration::from_secs(30), |r| {
            has(r, "reply/work/slow", "next")
        })
        .await;
    assert!(
        has(&received, "reply/work/slow", "next"),
        "{received:?}\n{}",
        gw.logs()
    );
    assert!(
        !gw.logs().contains("connection lost"),
        "the broker dropped the trigger while it was full:\n{}",
        gw.logs()
    );
}

/// An acknowledgement is sent only on the connection its message came in on.
/// Message A is being handled when the broker crashes and comes back without
/// its sessions; on the new connection message B gets A's packet id (both
/// are the first of their session). A's acknowledgement, sent when its
/// handler ends, would name B on the new connection and the broker would
/// forget B before it was handled; the gateway then killed mid-B, B was lost.
/// Dropped instead, so B stays with the broker and the next gateway gets it.
#[tokio::test(flavor = "multi_thread")]
async fn an_acknowledgement_never_reaches_a_later_connection() {
    let mut broker = MosquittoBroker::start();
    let gw = start(&broker, false);
    let client = MqttClient::connect(broker.port, &[]).await;
    client.publish("sensors/a/temp", 1, "sleep:4000").await;
    assert!(
        arrived(&gw, "sensors/a/temp", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    drop(client);
    tokio::task::block_in_place(|| broker.crash_and_restart(Duration::from_millis(200)));
    // The trigger subscribes again in a fresh session.
    let resubscribed = || {
        gw.logs()
            .lines()
            .filter(|l| l.contains("MQTT trigger \"sensors\"") && l.contains("subscribed"))
            .count()
            >= 2
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !resubscribed() {
        assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = MqttClient::connect(broker.port, &[]).await;
    client.publish("sensors/b/temp", 1, "sleep:10000").await;
    assert!(
        arrived(&gw, "sensors/b/temp", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    // A ends (its acknowledgement is due now) while B is still running.
    assert!(
        handled(&gw, "sensors/a/temp", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !gw.logs().contains("handled sensors/b/temp"),
        "{}",
        gw.logs()
    );
    drop(gw); // killed mid-B

    let next = start(&broker, true);
    assert!(
        handled(&next, "sensors/b/temp", Duration::from_secs(20)),
        "B was acknowledged before it was handled, and is lost:\n{}",
        next.logs()
    );
}
