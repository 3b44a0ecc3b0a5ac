//! The service and its updates end to end: `gatewayd serve` with a config,
//! bundles pushed with `gatewayctl push bundle` over the admin socket,
//! rejected ones leaving the running app untouched, rollback, restart, a
//! crash at every step of an update, and twenty pushes under load with no
//! failed request.

use crate::harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{MosquittoBroker, MqttClient, Service, ctl, examples, get, ok, rejected};

#[tokio::test(flavor = "multi_thread")]
async fn push_status_rejections_and_rollback() {
    let service = Service::new();
    let gw = service.start();
    assert_eq!(
        get(&gw.url("/hello")).await,
        (503, "No app installed\n".into())
    );
    assert!(service.status()["app"].is_null());

    let pushed = ok(&service.push(&service.bundle("1.0.0", "release")));
    assert!(
        pushed.contains("1.0.0") && pushed.contains("generation 1"),
        "{pushed}"
    );
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    let status = service.status();
    assert_eq!(
        (status["app"].as_str(), status["version"].as_str()),
        (Some("hello"), Some("1.0.0"))
    );
    assert_eq!(status["triggers"]["http"], 1);

    // Refused, each with its reason; 1.0.0 keeps serving.
    let wrong_key = rejected(&service.push(&service.bundle("1.1.0", "other")));
    assert!(wrong_key.contains("does not trust"), "{wrong_key}");
    let same = rejected(&service.push(&service.bundle("1.0.0", "release")));
    assert!(
        same.contains("not newer than the installed 1.0.0"),
        "{same}"
    );
    let flipped = service.bundle("1.2.0", "release");
    let mut bytes = std::fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&flipped, &bytes).unwrap();
    let damaged = rejected(&service.push(&flipped));
    assert!(damaged.contains("rejected"), "{damaged}");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(service.status()["last_update"]["result"], "rejected");

    ok(&service.push(&service.bundle("1.1.0", "release")));
    assert_eq!(service.status()["version"], "1.1.0");
    let back = ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    assert!(back.contains("1.0.0"), "{back}");
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    // Rollback swaps current and previous (the README says so): a second one
    // returns to 1.1.0, a third to 1.0.0.
    ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    assert_eq!(service.status()["version"], "1.1.0");
    ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    assert_eq!(service.status()["version"], "1.0.0");
    drop(gw);

    // A restart serves what was installed last.
    let gw = service.start();
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_whose_component_does_not_compile_is_rejected() {
    let service = Service::new();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));
    let app = service.path().join("broken");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("bad.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    std::fs::write(
        app.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"hello\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"bad\"\n[component.bad]\nsource = \"bad.wasm\"\n",
    )
    .unwrap();
    let broken = service.bundle_app(&app, "2.0.0", "release", &[]);
    let refused = rejected(&service.push(&broken));
    assert!(
        refused.contains("does not load") && refused.contains("bad"),
        "{refused}"
    );
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert_eq!(service.status()["version"], "1.0.0");
}

/// Killed at every step of an update, the service comes back serving a
/// complete generation, the old or the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_any_step_of_an_update_leaves_a_complete_generation() {
    for (i, step) in ["verified", "unpacked", "loaded", "checked", "switched"]
        .iter()
        .enumerate()
    {
        let service = Service::new();
        {
            let gw = service.start();
            ok(&service.push(&service.bundle("1.0.0", "release")));
            drop(gw);
        }
        let paused = service.start_with(&[("GATEWAYD_TEST_PAUSE_AT", step)]);
        let bundle = service.bundle(&format!("1.0.{}", i + 1), "release");
        let mut push = Command::new(harness::gatewayctl())
            .args([
                "push",
                "bundle",
                bundle.to_str().unwrap(),
                "--to",
                &service.to(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        assert!(
            paused.wait_for_log(&format!("test pause at {step}"), Duration::from_secs(30)),
            "{step}: {}",
            paused.logs()
        );
        paused.signal(libc::SIGKILL);
        drop(paused);
        let _ = push.kill();
        let _ = push.wait();

        let gw = service.start();
        let version = service.status()["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            version == "1.0.0" || version == format!("1.0.{}", i + 1),
            "{step}: serving {version:?}\n{}",
            gw.logs()
        );
        assert_eq!(get(&gw.url("/hello")).await.0, 200, "{step}");
        let leftovers: Vec<_> = std::fs::read_dir(service.path().join("state/generations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("tmp-") || n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{step}: {leftovers:?}");
        // And the next update goes through.
        ok(&service.push(&service.bundle("2.0.0", "release")));
        assert_eq!(service.status()["version"], "2.0.0");
    }
}

/// Twenty pushes while clients keep requesting: not one request fails.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_pushes_under_load_drop_no_request() {
    let service = Service::new();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));
    let bundles: Vec<PathBuf> = (1..=20)
        .map(|i| service.bundle(&format!("1.0.{i}"), "release"))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = gw.url("/hello");
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, url) = (stop.clone(), url.clone());
            tokio::spawn(async move {
                let client = harness::client();
                let (mut done, mut failed) = (0u32, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match client.get(&url).send().await {
                        Ok(r) if r.status() == 200 => done += 1,
                        Ok(r) => failed.push(format!("status {}", r.status())),
                        Err(e) => failed.push(e.to_string()),
                    }
                }
                (done, failed)
            })
        })
        .collect();
    for bundle in &bundles {
        ok(&service.push(bundle));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (done, failed) = client.await.unwrap();
        assert!(
            failed.is_empty(),
            "{} failed requests: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
        total += done;
    }
    assert!(total > 100, "only {total} requests ran during the pushes");
    assert_eq!(service.status()["version"], "1.0.20");
}

/// A bundle's health route must answer 2xx on the new app before the switch.
#[tokio::test(flavor = "multi_thread")]
async fn the_health_route_decides_the_switch() {
    let service = Service::new();
    let gw = service.start();
    let hello = examples().join("hello");
    let bundle = |version: &str, route: &str| {
        service.bundle_app(&hello, version, "release", &["--health-route", route])
    };
    ok(&service.push(&bundle("1.0.0", "/hello")));
    let unhealthy = rejected(&service.push(&bundle("1.1.0", "/nowhere")));
    assert!(
        unhealthy.contains("health check failed: GET /nowhere answered 404"),
        "{unhealthy}"
    );
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);

    // A component that traps on its health route is refused the same way.
    let probe = examples().join("probe");
    let trap = service.bundle_app(
        &probe,
        "3.0.0",
        "release",
        &["--health-route", "/probe/trap"],
    );
    let trapped = rejected(&service.push(&trap));
    assert!(
        trapped.contains("GET /probe/trap answered 500"),
        "{trapped}"
    );
    assert_eq!(service.status()["version"], "1.0.0");
}

/// The TCP admin listener: HTTPS with the configured certificate, and a
/// bearer token on every request; the token never reaches the log.
#[tokio::test(flavor = "multi_thread")]
async fn the_tcp_admin_api_needs_tls_and_a_token() {
    let service = Service::new();
    let d = service.path();
    harness::make_certificates(d);
    let port = harness::free_port();
    let token = "s3cr3t-admin-token-0123";
    let mut config = std::fs::read_to_string(d.join("gatewayd.toml")).unwrap();
    config.push_str(&format!(
        "listen = \"127.0.0.1:{port}\"\ntokens = [\"{token}\"]\ntls_cert = \"{0}/server.pem\"\ntls_key = \"{0}/server.key\"\n",
        d.display()
    ));
    std::fs::write(d.join("gatewayd.toml"), config).unwrap();
    let gw = service.start();
    assert!(
        gw.wait_for_log("admin API on https://", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    let to = format!("https://localhost:{port}");
    let remote = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--to", &to, "--ca-file", "ca.pem"]);
        ctl(d, &all)
    };
    let anonymous = rejected(&remote(&["status"]));
    assert!(anonymous.contains("valid token is required"), "{anonymous}");
    let wrong = rejected(&remote(&["status", "--token", "s3cr3t-admin-token-0124"]));
    assert!(wrong.contains("valid token is required"), "{wrong}");
    let bundle = service.bundle("1.0.0", "release");
    ok(&remote(&[
        "push",
        "bundle",
        bundle.to_str().unwrap(),
        "--token",
        token,
    ]));
    let status = ok(&remote(&["status", "--token", token, "--json"]));
    assert!(status.contains("\"version\":\"1.0.0\""), "{status}");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    // The gateway's certificate comes from a private CA: without it, no talk.
    let untrusted = rejected(&ctl(d, &["status", "--to", &to, "--token", token]));
    assert!(untrusted.contains("--ca-file"), "{untrusted}");
    assert!(!gw.logs().contains(token), "{}", gw.logs());
}

/// A current generation that no longer loads (its files damaged on disk):
/// the service starts the previous one and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_broken_current_generation_falls_back_to_the_previous() {
    let service = Service::new();
    {
        let _gw = service.start();
        ok(&service.push(&service.bundle("1.0.0", "release")));
        ok(&service.push(&service.bundle("1.1.0", "release")));
        assert_eq!(service.status()["generation"], 2);
    }
    let wasm = service
        .path()
        .join("state/generations/2/app/target/wasm32-wasip2/release/hello.wasm");
    std::fs::write(&wasm, b"\0asm damaged by a bad sector").unwrap();
    let gw = service.start();
    let status = service.status();
    assert_eq!(status["version"], "1.0.0");
    assert!(
        gw.wait_for_log(
            "fell back to the previous generation 1",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    // `status` says so too, with the reason.
    assert_eq!(status["last_update"]["result"], "fell back", "{status}");
    let message = status["last_update"]["message"].as_str().unwrap();
    assert!(
        message.contains("generation 2 did not start") && message.contains("generation 1"),
        "{message}"
    );
    let human = ok(&ctl(service.path(), &["status", "--to", &service.to()]));
    assert!(human.contains("last update: fell back 1.0.0"), "{human}");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}

/// Uploads refused before or while they are read: too large (413, decided
/// from the length the client announces, the rest of the upload drained so
/// the client gets the answer), cut short, or not a bundle at all; the app
/// keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn oversize_truncated_and_junk_uploads_are_refused() {
    let service = Service::new();
    let mut config = std::fs::read_to_string(service.path().join("gatewayd.toml")).unwrap();
    config.push_str("[update]\nmax_bundle_size = \"200KiB\"\n");
    std::fs::write(service.path().join("gatewayd.toml"), config).unwrap();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));

    let probe = examples().join("probe");
    let big = service.bundle_app(&probe, "2.0.0", "release", &[]);
    assert!(std::fs::metadata(&big).unwrap().len() > 200 << 10);
    let big = rejected(&service.push(&big));
    assert!(
        big.contains("larger than [update] max_bundle_size"),
        "{big}"
    );

    let whole = std::fs::read(service.bundle("1.1.0", "release")).unwrap();
    std::fs::write(service.path().join("cut.bundle"), &whole[..whole.len() / 2]).unwrap();
    let cut = rejected(&service.push(&service.path().join("cut.bundle")));
    assert!(cut.contains("truncated"), "{cut}");
    std::fs::write(service.path().join("junk.bundle"), b"not a bundle at all").unwrap();
    let junk = rejected(&service.push(&service.path().join("junk.bundle")));
    assert!(junk.contains("not a gatewayd bundle"), "{junk}");

    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}

/// After each switch the compiled-code cache keeps only the code of the
/// current and the previous generation.
#[tokio::test(flavor = "multi_thread")]
async fn the_code_cache_keeps_only_the_kept_generations() {
    let service = Service::new();
    let gw = service.start();
    for (version, app) in [
        ("1.0.0", "hello"),
        ("1.1.0", "hello-sdk5"),
        ("1.2.0", "hello-wstd"),
    ] {
        let bundle = service.bundle_app(&examples().join(app), version, "release", &[]);
        ok(&service.push(&bundle));
    }
    let entries: Vec<String> = std::fs::read_dir(service.path().join("state/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}\n{}", gw.logs());
    // The daemon logs it before it answers the push; our reader of its
    // stderr may not have caught up yet.
    assert!(
        gw.wait_for_log(
            "removed 1 compiled-code cache entries",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    // The previous generation still starts from the cache after a rollback.
    ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    assert_eq!(service.status()["version"], "1.1.0");
    assert!(
        gw.wait_for_log("from the cache (", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("from the cache ("))
        .unwrap();
    assert!(line.contains("component=hello-sdk5"), "{line}");
}

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
    let sender = MqttClient::connect(broker.port, &[]).await;
    sender.publish("sensors/first/temp", 1, "first").await;
    replies
        .wait_until(Duration::from_secs(10), |r| !r.is_empty())
        .await;
    // gatewayd: three trigger sessions and one outbound connection; the
    // test: three clients.
    const CLIENTS: Option<u64> = Some(7);
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
        settles_at(CLIENTS, || connected_clients(&sys)).await,
        CLIENTS,
        "{}",
        gw.logs()
    );
    assert_eq!(settles_at(1, || threads_named(gw.pid(), "mqtt ")).await, 1);
}

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
    ok(&service.push(&service.bundle_app(&probe, "2.0.0", "release", &[])));
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
    ok(&service.push(&service.bundle_app(&vars, "3.0.0", "release", &[])));
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
    ok(&service.push(&service.bundle_app(&triggered, "4.0.0", "release", &[])));
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

/// Admin connections that never send a byte cannot starve the daemon: the
/// admin API serves 16 at once (the rest wait in the kernel's queue, costing
/// no descriptor) and drops one silent for 10 s. With 200 file descriptors
/// and 300 idle admin connections, HTTP keeps answering, and the admin API
/// answers once they are gone. (Before, every one took a descriptor and the
/// HTTP port could no longer accept.)
#[tokio::test(flavor = "multi_thread")]
async fn idle_admin_connections_do_not_starve_the_daemon() {
    let service = Service::new();
    let limited = harness::Program {
        runner: vec![
            "bash".into(),
            "-c".into(),
            "ulimit -n 200 && exec \"$0\" \"$@\"".into(),
        ],
        binary: None,
    };
    let gw = service.start_program(&limited, &[]);
    ok(&service.push(&service.bundle("1.0.0", "release")));
    let socket = service.path().join("admin.sock");
    let mut idle = Vec::new();
    for _ in 0..300 {
        let connecting = tokio::net::UnixStream::connect(&socket);
        match tokio::time::timeout(Duration::from_millis(200), connecting).await {
            Ok(Ok(stream)) => idle.push(stream),
            _ => break,
        }
    }
    assert!(idle.len() > 200, "only {} connections", idle.len());
    for _ in 0..5 {
        assert_eq!(get(&gw.url("/hello")).await.0, 200, "{}", gw.logs());
    }
    drop(idle);
    assert_eq!(service.status()["version"], "1.0.0");
}

/// Each generation stages the files its components see; updates keep the
/// trees of the current and the replaced generation only (before, every
/// update left one behind: a bundle with an 8 MiB asset grew the state dir
/// by 8 MiB per update).
#[tokio::test(flavor = "multi_thread")]
async fn updates_keep_two_staged_file_trees() {
    let service = Service::new();
    let gw = service.start();
    let probe = examples().join("probe");
    let trees = || {
        std::fs::read_dir(service.path().join("state/files"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    for minor in 0..5 {
        let bundle = service.bundle_app(&probe, &format!("1.{minor}.0"), "release", &[]);
        ok(&service.push(&bundle));
        let (status, body) = get(&gw.url("/probe/file/assets/greeting.txt")).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            trees() <= 2,
            "{} staged trees after update {minor}",
            trees()
        );
    }
    assert!(
        gw.wait_for_log("removed 1 staged file trees", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    // A rollback's generation still finds its files.
    ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    assert_eq!(get(&gw.url("/probe/file/assets/greeting.txt")).await.0, 200);
}

/// A component whose start function never returns cannot wedge the update
/// path: the health check gives up after `[update] health_timeout`, the
/// bundle is rejected, and the gateway keeps serving and answering status.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_function_that_loops_is_rejected_within_the_health_timeout() {
    let service = Service::new();
    let mut config = std::fs::read_to_string(service.path().join("gatewayd.toml")).unwrap();
    config.push_str("[update]\nhealth_timeout = \"1s\"\n");
    std::fs::write(service.path().join("gatewayd.toml"), config).unwrap();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));

    let app = service.path().join("looping");
    std::fs::create_dir(&app).unwrap();
    let wasm = wat::parse_str(
        r#"(component
             (core module $m (func $spin (loop $forever (br $forever))) (start $spin))
             (core instance (instantiate $m)))"#,
    )
    .unwrap();
    std::fs::write(app.join("loop.wasm"), wasm).unwrap();
    std::fs::write(
        app.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"hello\"\n\
         [component.spin]\nsource = \"loop.wasm\"\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let refused = rejected(&service.push(&service.bundle_app(&app, "2.0.0", "release", &[])));
    assert!(refused.contains("health_timeout"), "{refused}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}

/// A signed bundle's manifest may name a component outside the bundle (an
/// absolute path, `../..`): the gateway refuses it rather than load the
/// board's own file.
#[tokio::test(flavor = "multi_thread")]
async fn a_component_outside_the_bundle_is_refused() {
    let service = Service::new();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));
    let elsewhere = examples().join("target/wasm32-wasip2/release/hello.wasm");
    let app = service.path().join("reaching-out");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(
        app.join("spin.toml"),
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"hello\"\n\
             [[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n\
             [component.hello]\nsource = \"{}\"\n",
            elsewhere.display()
        ),
    )
    .unwrap();
    let refused = rejected(&service.push(&service.bundle_app(&app, "2.0.0", "release", &[])));
    assert!(refused.contains("is outside the bundle"), "{refused}");
    assert_eq!(service.status()["version"], "1.0.0");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}
