//! `gatewayd serve` takes from its config file what `gatewayd up` takes as
//! flags, and honours each key.

use crate::harness;

use std::time::Duration;

use harness::{MosquittoBroker, MqttClient, Service, examples, get, ok};

/// `gatewayd serve` honours the app settings `gatewayd up` takes as flags,
/// from its config file: `[app] runtime_config_file` (a key-value store on a
/// Redis server), `environment`, `variables_file`, `tls_ca_files` (an
/// `mqtts://` broker with a private CA, for the trigger and outbound MQTT),
/// and `[limits] key_value_max_value_size`. Each phase restarts the service
/// with another config, as an operator would.
#[tokio::test(flavor = "multi_thread")]
async fn serve_honours_the_app_settings_of_its_config() {
    let service = Service::new();
    let base = std::fs::read_to_string(service.path().join("gatewayd.toml")).unwrap();
    let configure = |tables: &str| {
        std::fs::write(
            service.path().join("gatewayd.toml"),
            format!("{base}{tables}"),
        )
        .unwrap();
    };
    let d = service.path().display().to_string();

    // Key-value on Redis through a runtime config, a value limit, and an
    // environment variable for every component.
    let redis = harness::RedisServer::start();
    std::fs::write(
        service.path().join("runtime.toml"),
        format!(
            "[key_value_store.other]\ntype = \"redis\"\nurl = \"{}\"\n",
            redis.address()
        ),
    )
    .unwrap();
    configure(&format!(
        "[limits]\nkey_value_max_value_size = \"1KiB\"\n\
         [app]\nruntime_config_file = \"{d}/runtime.toml\"\nenvironment = {{ GREETING = \"from-config\" }}\n"
    ));
    let gw = service.start();
    let kv = examples().join("kv");
    ok(&service.push(&service.bundle_app(&kv, "1.0.0", "release", &[])));
    let put = |path: &str, body: Vec<u8>| {
        let url = gw.url(path);
        async move {
            let response = harness::client().put(url).body(body).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        put("/v5/other/set/colour", b"green".to_vec()).await,
        (200, "ok".into())
    );
    assert_eq!(
        harness::redis_get(&redis.address(), "colour")
            .await
            .as_deref(),
        Some("green"),
        "the store is in Redis"
    );
    let (status, body) = put("/v5/default/set/big", vec![b'x'; 1025]).await;
    assert_ne!(status, 200, "a value over key_value_max_value_size: {body}");
    assert!(body.contains("1024"), "{body}");
    let probe = examples().join("probe");
    ok(&service.push_replacing(&service.bundle_app(&probe, "2.0.0", "release", &[])));
    assert_eq!(
        get(&gw.url("/probe/env/GREETING")).await,
        (200, "from-config".into())
    );
    drop(gw);

    // Variables from a file.
    std::fs::write(
        service.path().join("variables.toml"),
        "api_key = \"from-the-file\"\n",
    )
    .unwrap();
    configure(&format!("[app]\nvariables_file = \"{d}/variables.toml\"\n"));
    let gw = service.start();
    let vars = examples().join("vars");
    ok(&service.push_replacing(&service.bundle_app(&vars, "3.0.0", "release", &[])));
    assert_eq!(
        get(&gw.url("/v7/api_key")).await,
        (200, "from-the-file".into())
    );
    assert!(!gw.logs().contains("from-the-file"), "a value was logged");
    drop(gw);

    // A broker whose certificate comes from a private CA.
    let broker = MosquittoBroker::start_tls();
    std::fs::write(
        service.path().join("variables.toml"),
        format!("broker = \"mqtts://localhost:{}\"\n", broker.tls_port),
    )
    .unwrap();
    configure(&format!(
        "[app]\nvariables_file = \"{d}/variables.toml\"\ntls_ca_files = [\"{}\"]\n",
        broker.ca_file().display()
    ));
    let gw = service.start();
    let triggered = examples().join("mqtt-triggered");
    ok(&service.push_replacing(&service.bundle_app(&triggered, "4.0.0", "release", &[])));
    let replies = MqttClient::connect(broker.port, &["reply/#"]).await;
    // The trigger's first session: what is published before it subscribes
    // is not kept for it.
    assert!(
        gw.wait_for_log("\"sensors/+/temp\"): subscribed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    replies.publish("sensors/tls/temp", 1, "over tls").await;
    let received = replies
        .wait_until(Duration::from_secs(15), |r| {
            r.iter()
                .any(|(topic, payload)| topic == "reply/sensors/tls/temp" && payload == b"over tls")
        })
        .await;
    assert!(
        received
            .iter()
            .any(|(topic, _)| topic == "reply/sensors/tls/temp"),
        "{received:?}\n{}",
        gw.logs()
    );
}
