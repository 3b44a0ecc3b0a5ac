//! Outbound MQTT end to end, against a real mosquitto on a free port:
//! Spin SDK 5 (fermyon:spin/mqtt@2.0.0) and SDK 7 (spin:mqtt/mqtt@3.0.0)
//! components publish at QoS 0, 1 and 2 and a subscriber receives every
//! message; grants; a broker that is down.

use crate::harness;

use std::time::Duration;

use harness::{Gateway, MosquittoBroker, client, examples};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn mqtt_app() -> std::path::PathBuf {
    examples().join("mqtt")
}

async fn publish(
    gw: &Gateway,
    sdk: &str,
    qos: u8,
    topic: &str,
    broker: &str,
    body: &[u8],
) -> (u16, String) {
    let response = client()
        .post(gw.url(&format!("/{sdk}/publish/{qos}/{topic}")))
        .header("x-mqtt-address", broker)
        .body(body.to_vec())
        .send()
        .await
        .expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn both_generations_publish_at_every_qos() {
    let broker = MosquittoBroker::start();
    let gw = Gateway::start(&mqtt_app());

    // A subscriber on the same broker, collecting what arrives.
    let mut options = MqttOptions::new("test-subscriber", "127.0.0.1", broker.port);
    options.set_keep_alive(Duration::from_secs(30));
    let (subscriber, mut events) = AsyncClient::new(options, 100);
    subscriber
        .subscribe("gw/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send(None);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(Some((p.topic.clone(), p.payload.to_vec())));
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    let subscribed = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert!(matches!(subscribed, Ok(Some(None))), "no SUBACK");

    let mut expected = Vec::new();
    for sdk in ["v5", "v7"] {
        for qos in [0u8, 1, 2] {
            let topic = format!("gw/{sdk}/q{qos}");
            let payload = format!("hello from {sdk} at qos {qos}");
            let (status, body) =
                publish(&gw, sdk, qos, &topic, &broker.address(), payload.as_bytes()).await;
            assert_eq!((status, body.as_str()), (200, "ok"), "{sdk} qos {qos}");
            expected.push((topic, payload.into_bytes()));
        }
    }
    let mut received = Vec::new();
    while received.len() < expected.len() {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(Some(message))) => received.push(message),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    received.sort();
    expected.sort();
    assert_eq!(received, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn only_granted_brokers_and_a_down_broker_is_a_guest_error() {
    let mut broker = MosquittoBroker::start();
    let gw = Gateway::start(&mqtt_app());
    let denied = format!("mqtt://localhost:{}", broker.port);
    for sdk in ["v5", "v7"] {
        let (status, body) = publish(&gw, sdk, 1, "gw/x", &denied, b"x").await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("InvalidAddress"), "{sdk}: {body}");
    }
    let address = broker.address();
    broker.stop();
    for sdk in ["v5", "v7"] {
        let (status, body) = publish(&gw, sdk, 1, "gw/x", &address, b"x").await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("ConnectionFailed"), "{sdk}: {body}");
    }
    assert!(
        gw.wait_for_log("MQTT connection denied", std::time::Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// QoS 1 returns only once the broker acknowledged: with the broker frozen
/// (connection open, no PUBACK) the publish fails after the acknowledgement
/// timeout, while QoS 0 (fire and forget) still succeeds at once.
#[tokio::test(flavor = "multi_thread")]
async fn qos_1_waits_for_the_broker_acknowledgement() {
    let broker = MosquittoBroker::start();
    let gw = Gateway::start(&mqtt_app());
    let address = broker.address();
    assert_eq!(publish(&gw, "v5", 1, "gw/a", &address, b"1").await.0, 200);
    broker.signal(libc::SIGSTOP);
    let started = std::time::Instant::now();
    let (status, _) = publish(&gw, "v5", 0, "gw/a", &address, b"2").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let started = std::time::Instant::now();
    let (status, body) = publish(&gw, "v5", 1, "gw/a", &address, b"3").await;
    let waited = started.elapsed();
    broker.signal(libc::SIGCONT);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("did not acknowledge"), "{body}");
    assert!(
        waited >= Duration::from_secs(9),
        "returned after {waited:?}"
    );
}

/// Messages past rumqttc's default 10 KiB packet limit are published, up to
/// gatewayd's own limit; a larger one is an error for the guest naming the
/// limit, and the connection keeps working for the next message (a QoS 1
/// publish that could not be encoded used to wedge it).
#[tokio::test(flavor = "multi_thread")]
async fn large_messages_publish_up_to_the_limit_and_beyond_is_an_error() {
    let broker = MosquittoBroker::start();
    let gw = Gateway::start(&mqtt_app());
    let address = broker.address();
    for sdk in ["v5", "v7"] {
        let (status, body) = publish(&gw, sdk, 1, "gw/big", &address, &[b'x'; 20 << 10]).await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{sdk}: 20 KiB");
        let (status, body) =
            publish(&gw, sdk, 1, "gw/big", &address, &vec![b'x'; (1 << 20) + 1]).await;
        assert_eq!(status, 502, "{sdk}: {body}");
        assert!(body.contains("the limit is 1048576"), "{sdk}: {body}");
        let (status, body) = publish(&gw, sdk, 1, "gw/after", &address, b"small").await;
        assert_eq!((status, body.as_str()), (200, "ok"), "{sdk}: after");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_connections_are_capped_per_process() {
    let broker = MosquittoBroker::start();
    let gw = Gateway::start(&mqtt_app());
    // Each username is another identity, so another connection (the broker
    // takes anyone): sixteen are kept, a seventeenth is refused.
    let as_user = |user: String| {
        let url = gw.url("/v5/publish/1/gw/capped");
        let address = broker.address();
        async move {
            let response = client()
                .post(url)
                .header("x-mqtt-address", address)
                .header("x-mqtt-username", user)
                .body("x")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    };
    for i in 0..16 {
        let (status, body) = as_user(format!("user{i}")).await;
        assert_eq!(status, 200, "user{i}: {body}");
    }
    harness::assert_too_many_connections(&gw, as_user("user16".into()).await);
    // An identity already connected still publishes.
    assert_eq!(as_user("user3".into()).await.0, 200);
}
