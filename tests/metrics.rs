//! Metrics end to end: a real gateway serves `/metrics` while real requests,
//! traps, timeouts, memory refusals, outbound calls, Redis and MQTT messages
//! and updates happen; every scrape is read by the Prometheus project's own
//! parser, in both formats, and each counter must move by exactly what
//! happened. Clients sending thousands of distinct paths, hosts and topics
//! must not add series.

use crate::harness;

use std::time::Duration;

use harness::{
    Gateway, MosquittoBroker, MqttClient, Options, RedisServer, Scrape, Service, examples,
    free_port, get, ok, redis_publish, rejected,
};

fn metrics_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/metrics")
}

/// Scrapes in both formats; checks they agree on every counter, returns one.
async fn scrape(port: u16) -> Scrape {
    let text = Scrape::get(&metrics_url(port), false).await;
    let open = Scrape::get(&metrics_url(port), true).await;
    for name in [
        "gatewayd_http_requests_total",
        "gatewayd_instances_created_total",
    ] {
        assert_eq!(text.value(name, &[]), open.value(name, &[]), "{name}");
    }
    text
}

/// Scrapes until `done` holds (a handler counts its message just after the
/// reply it sent is seen), at most `timeout`; returns the last scrape.
async fn scrape_until(port: u16, timeout: Duration, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let now = scrape(port).await;
        if done(&now) || std::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How much `name{labels}` grew from `before` to `after`.
fn grew(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_instance_counters_move_by_exactly_what_happened() {
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let gw = Gateway::start_with(
        &examples().join("probe"),
        Options {
            args: &[
                "--metrics",
                &address,
                "--request-timeout",
                "1s",
                "--max-instance-memory",
                "16MiB",
            ],
            ..Options::default()
        },
    );
    let before = scrape(port).await;
    for n in 0..5 {
        assert_eq!(get(&gw.url(&format!("/probe/hi{n}"))).await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/static/hello")).await.0, 201);
    }
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/missing")).await.0, 404);
    }
    assert_eq!(get(&gw.url("/probe/trap")).await.0, 500);
    assert_eq!(get(&gw.url("/probe/loop")).await.0, 504);
    assert_eq!(get(&gw.url("/probe/membomb")).await.0, 500);
    let upstream = gw.url("/static/hello");
    let (status, body) = get(&gw.url(&format!("/probe/outbound?url={upstream}"))).await;
    assert_eq!((status, body.lines().next()), (200, Some("status=201")));
    let denied = "http://denied.example/";
    assert_eq!(
        get(&gw.url(&format!("/probe/outbound?url={denied}")))
            .await
            .0,
        502
    );
    // The instance stopped at its deadline is counted when it is dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = scrape(port).await;

    let requests = "gatewayd_http_requests_total";
    let probe = ("component", "probe");
    for (labels, expected) in [
        (vec![probe, ("status", "2xx")], 6.0),
        (vec![probe, ("status", "5xx")], 4.0),
        (vec![("component", "(static)"), ("status", "2xx")], 3.0),
        (vec![("component", "(none)"), ("status", "4xx")], 3.0),
        (vec![("component", "(none)"), ("status", "2xx")], 0.0),
    ] {
        assert_eq!(
            grew(&before, &after, requests, &labels),
            expected,
            "{labels:?}"
        );
    }
    let latency = "gatewayd_http_request_duration_seconds_count";
    assert_eq!(grew(&before, &after, latency, &[probe]), 10.0);
    // The looping request took its whole 1 s deadline.
    let slow = [probe, ("le", "0.5")];
    let slower = [probe, ("le", "+Inf")];
    assert!(
        grew(
            &before,
            &after,
            "gatewayd_http_request_duration_seconds_bucket",
            &slower
        ) - grew(
            &before,
            &after,
            "gatewayd_http_request_duration_seconds_bucket",
            &slow
        ) >= 1.0
    );
    for (name, expected) in [
        ("gatewayd_instances_created_total", 10.0),
        ("gatewayd_instance_traps_total", 1.0),
        ("gatewayd_instance_timeouts_total", 1.0),
    ] {
        assert_eq!(grew(&before, &after, name, &[probe]), expected, "{name}");
    }
    let refusals = grew(
        &before,
        &after,
        "gatewayd_instance_memory_refusals_total",
        &[probe],
    );
    assert!(refusals >= 1.0, "memory refusals: {refusals}");
    let outbound = [("capability", "http"), ("host", "127.0.0.1")];
    assert_eq!(
        grew(&before, &after, "gatewayd_outbound_calls_total", &outbound),
        1.0
    );
    assert_eq!(
        grew(&before, &after, "gatewayd_outbound_errors_total", &outbound),
        0.0
    );
    let refused = [("capability", "http"), ("host", "denied.example")];
    assert_eq!(
        grew(&before, &after, "gatewayd_outbound_errors_total", &refused),
        1.0
    );
    assert_eq!(after.value("gatewayd_http_requests_in_flight", &[]), 0.0);
    assert_eq!(after.value("gatewayd_instances_active", &[]), 0.0);
    assert!(after.value("gatewayd_instance_slots", &[]) >= 1.0);
    assert_eq!(
        after.value(
            "gatewayd_app_info",
            &[("app", "probe"), ("version", "0.1.0")]
        ),
        1.0
    );
    let build = after.count("gatewayd_build_info", &[("wasmtime", "48.0.8")]);
    assert_eq!(build, 1, "{}", after.text);
    let rss = after.value("process_resident_memory_bytes", &[]);
    assert!(rss > 1e6 && rss < 1e9, "resident memory {rss}");
    assert!(after.value("process_open_fds", &[]) >= 3.0);
    assert!(after.value("process_cpu_seconds_total", &[]) > 0.0);

    // Clients choose paths and outbound hosts; the series stay as they are.
    let client = harness::client();
    let mut sends = Vec::new();
    for task in 0..8 {
        let (client, url) = (client.clone(), gw.url(""));
        sends.push(tokio::spawn(async move {
            for n in (task..10_000).step_by(8) {
                let response = client.get(format!("{url}/missing/{n}")).send().await;
                assert_eq!(response.unwrap().status(), 404);
            }
        }));
    }
    for send in sends {
        send.await.unwrap();
    }
    for n in 0..40 {
        let url = format!("/probe/outbound?url=http://h{n}.denied.example/");
        assert_eq!(get(&gw.url(&url)).await.0, 502);
    }
    let last = scrape(port).await;
    let unrouted = [("component", "(none)"), ("status", "4xx")];
    assert_eq!(grew(&after, &last, requests, &unrouted), 10_000.0);
    assert!(!last.text.contains("/missing/"), "a path became a label");
    let hosts = last.count("gatewayd_outbound_calls_total", &[("capability", "http")]);
    assert!(hosts <= 32 + 1, "{hosts} outbound host series");
    assert_eq!(
        last.value("gatewayd_outbound_calls_total", &[("host", "(other)")]),
        40.0 + 2.0 - 32.0,
        "the first 32 hosts have their own series, the rest share one"
    );
    let http_series = |s: &Scrape| {
        let http = s
            .samples
            .iter()
            .filter(|(n, ..)| n.starts_with("gatewayd_http"));
        http.count()
    };
    assert_eq!(http_series(&last), http_series(&after), "HTTP series grew");
}

#[tokio::test(flavor = "multi_thread")]
async fn pubsub_counters_follow_messages_retries_dead_letters_and_reconnects() {
    let mut broker = MosquittoBroker::start();
    let redis = RedisServer::start();
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let broker_variable = format!("broker={}", broker.address());
    let mqtt_gw = Gateway::start_with(
        &examples().join("mqtt-triggered"),
        Options {
            args: &["--variable", &broker_variable, "--metrics", &metrics],
            ..Options::default()
        },
    );
    for id in ["sensors", "alerts", "work"] {
        let line = format!("MQTT trigger \"{id}\"");
        let subscribed = mqtt_gw.wait_for_line(&[&line, "subscribed"], Duration::from_secs(15));
        assert!(subscribed, "{}", mqtt_gw.logs());
    }
    let sensors = [("trigger", "mqtt"), ("id", "sensors")];
    let connected = |s: &Scrape| s.value("gatewayd_trigger_connected", &sensors);
    let before = scrape(port).await;
    assert_eq!(connected(&before), 1.0, "{}", before.text);

    let client = MqttClient::connect(broker.port, &["reply/#", "dead/#"]).await;
    for n in 0..3 {
        client.publish("sensors/a/temp", 1, format!("{n}")).await;
    }
    client.publish("sensors/a/temp", 1, "fail").await;
    // Many distinct topics through one wildcard trigger: no new series.
    for n in 0..200 {
        client.publish(&format!("alerts/{n}"), 1, "x").await;
    }
    client
        .wait_until(Duration::from_secs(30), |r| {
            r.iter()
                .filter(|(t, _)| t.starts_with("reply/alerts/"))
                .count()
                == 200
                && r.iter().any(|(t, _)| t == "dead/sensors")
                && r.iter()
                    .filter(|(t, _)| t == "reply/sensors/a/temp")
                    .count()
                    == 3
        })
        .await;
    let handled = "gatewayd_messages_handled_total";
    let alerts = [("trigger", "mqtt"), ("id", "alerts")];
    let after = scrape_until(port, Duration::from_secs(10), |now| {
        grew(&before, now, handled, &alerts) >= 200.0
            && grew(
                &before,
                now,
                "gatewayd_messages_dead_lettered_total",
                &sensors,
            ) >= 1.0
            && grew(&before, now, handled, &sensors) >= 3.0
    })
    .await;
    for (name, expected) in [
        ("gatewayd_messages_received_total", 4.0),
        ("gatewayd_messages_handled_total", 3.0),
        ("gatewayd_message_retries_total", 1.0),
        ("gatewayd_messages_dead_lettered_total", 1.0),
        ("gatewayd_messages_dropped_total", 0.0),
    ] {
        assert_eq!(grew(&before, &after, name, &sensors), expected, "{name}");
    }
    assert_eq!(grew(&before, &after, handled, &alerts), 200.0);
    assert!(!after.text.contains("alerts/1"), "a topic became a label");
    let echo = [("component", "echo")];
    // 4 sensor messages (the failing one twice) and 200 alerts.
    assert_eq!(
        grew(&before, &after, "gatewayd_instances_created_total", &echo),
        205.0
    );
    assert_eq!(
        grew(&before, &after, "gatewayd_instance_traps_total", &echo),
        0.0
    );
    let replies = [("capability", "mqtt")];
    assert_eq!(
        grew(&before, &after, "gatewayd_outbound_calls_total", &replies),
        203.0
    );
    assert_eq!(after.value("gatewayd_messages_queued", &sensors), 0.0);
    assert_eq!(after.value("gatewayd_outbound_connections", &replies), 1.0);
    let pubsub_series = |s: &Scrape| {
        let pubsub = s.samples.iter().filter(|(n, ..)| {
            n.starts_with("gatewayd_message") || n.starts_with("gatewayd_trigger")
        });
        pubsub.count()
    };
    assert_eq!(
        pubsub_series(&after),
        pubsub_series(&before),
        "series appeared"
    );

    // The broker goes away and comes back: down, one reconnect, up.
    broker.restart(Duration::from_secs(2));
    let back = |now: &Scrape| {
        now.value("gatewayd_trigger_reconnects_total", &sensors) >= 1.0 && connected(now) == 1.0
    };
    let reconnected = scrape_until(port, Duration::from_secs(30), back).await;
    assert!(
        back(&reconnected),
        "no reconnect in the metrics:\n{}",
        mqtt_gw.logs()
    );
    assert_eq!(
        grew(
            &before,
            &reconnected,
            "gatewayd_trigger_reconnects_total",
            &sensors
        ),
        1.0
    );
    drop(mqtt_gw);

    // Redis: a trapping message is tried twice, then dead-lettered.
    let port = free_port();
    let metrics = format!("127.0.0.1:{port}");
    let redis_variable = format!("redis={}", redis.address());
    let redis_gw = Gateway::start_with(
        &examples().join("redis-triggered"),
        Options {
            args: &["--variable", &redis_variable, "--metrics", &metrics],
            ..Options::default()
        },
    );
    let v7 = [("trigger", "redis"), ("component", "sdk7")];
    let up = |now: &Scrape| now.value("gatewayd_trigger_connected", &v7) == 1.0;
    let subscribed = scrape_until(port, Duration::from_secs(15), up).await;
    assert!(up(&subscribed), "not subscribed:\n{}", redis_gw.logs());
    let watcher = harness::RedisWatcher::subscribe(&redis.address(), &["dead", "reply"]).await;
    assert_eq!(redis_publish(&redis.address(), "v7", b"hello").await, 1);
    assert_eq!(redis_publish(&redis.address(), "v7", b"trap").await, 1);
    watcher
        .wait_until(Duration::from_secs(15), |r| {
            r.iter().any(|(c, _)| c == "dead") && r.iter().any(|(c, _)| c == "reply")
        })
        .await;
    let after = scrape_until(port, Duration::from_secs(10), |now| {
        grew(
            &subscribed,
            now,
            "gatewayd_messages_dead_lettered_total",
            &v7,
        ) >= 1.0
            && grew(&subscribed, now, "gatewayd_messages_handled_total", &v7) >= 1.0
    })
    .await;
    for (name, expected) in [
        ("gatewayd_messages_received_total", 2.0),
        ("gatewayd_messages_handled_total", 1.0),
        ("gatewayd_message_retries_total", 1.0),
        ("gatewayd_messages_dead_lettered_total", 1.0),
    ] {
        assert_eq!(grew(&subscribed, &after, name, &v7), expected, "{name}");
    }
    let sdk7 = [("component", "sdk7")];
    assert_eq!(
        grew(&subscribed, &after, "gatewayd_instance_traps_total", &sdk7),
        2.0
    );
    assert_eq!(
        grew(
            &subscribed,
            &after,
            "gatewayd_instances_created_total",
            &sdk7
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn update_counters_and_the_running_app_follow_pushes_and_rollbacks() {
    let service = Service::new();
    let port = free_port();
    service.append_config(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"));
    let one = service.bundle("1.0.0", "release");
    let two = service.bundle("2.0.0", "release");
    let untrusted = service.bundle("3.0.0", "other");
    let _gw = service.start();
    let empty = scrape(port).await;
    assert_eq!(empty.count("gatewayd_app_info", &[]), 0, "no app yet");

    ok(&service.push(&one));
    rejected(&service.push(&one));
    rejected(&service.push(&untrusted));
    ok(&service.push(&two));
    let pushed = scrape(port).await;
    let updates = "gatewayd_updates_total";
    for (labels, expected) in [
        (vec![("outcome", "applied")], 2.0),
        (vec![("outcome", "rejected"), ("reason", "downgrade")], 1.0),
        (
            vec![("outcome", "rejected"), ("reason", "verification")],
            1.0,
        ),
    ] {
        assert_eq!(
            grew(&empty, &pushed, updates, &labels),
            expected,
            "{labels:?}"
        );
    }
    let running = [("app", "hello"), ("version", "2.0.0"), ("generation", "2")];
    assert_eq!(pushed.value("gatewayd_app_info", &running), 1.0);
    assert_eq!(pushed.count("gatewayd_app_info", &[]), 1, "one running app");
    let applied_at = pushed.value("gatewayd_last_update_success_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - applied_at).abs() < 120.0, "{applied_at} vs {now}");
    let lookups = pushed.value("gatewayd_code_cache_lookups_total", &[]);
    assert_eq!(lookups, 2.0, "one component per applied generation");

    ok(&harness::ctl(
        service.path(),
        &["rollback", "--to", &service.to()],
    ));
    let rolled = scrape(port).await;
    assert_eq!(grew(&pushed, &rolled, "gatewayd_rollbacks_total", &[]), 1.0);
    let back = [("version", "1.0.0"), ("generation", "1")];
    assert_eq!(rolled.value("gatewayd_app_info", &back), 1.0);
    assert_eq!(rolled.count("gatewayd_app_info", &[]), 1);
}

/// `gatewayctl status` reports the last minute from the same counters:
/// requests, server errors, p99, traps, timeouts, exactly as they happened.
#[tokio::test(flavor = "multi_thread")]
async fn status_reports_what_happened_in_the_last_minute() {
    let service = Service::new();
    service.append_config("[limits]\nrequest_timeout = \"1s\"\n");
    let probe = service.bundle_app(&examples().join("probe"), "1.0.0", "release", &[]);
    let gw = service.start();
    ok(&service.push(&probe));
    let before = service.status();
    for n in 0..5 {
        assert_eq!(get(&gw.url(&format!("/probe/hi{n}"))).await.0, 200);
    }
    assert_eq!(get(&gw.url("/missing")).await.0, 404);
    assert_eq!(get(&gw.url("/probe/trap")).await.0, 500);
    assert_eq!(get(&gw.url("/probe/loop")).await.0, 504);
    // The instance stopped at its deadline is counted when it is dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = service.status();

    let grew = |span: &str, key: &str| {
        after[span][key].as_u64().unwrap() - before[span][key].as_u64().unwrap()
    };
    for span in ["since_start", "last_minute"] {
        let moved =
            ["http_requests", "http_server_errors", "traps", "timeouts"].map(|key| grew(span, key));
        assert_eq!(moved, [8, 2, 1, 1], "{span}: {after}");
        assert_eq!(grew(span, "messages"), 0, "{span}");
    }
    // The looping request took the 1 s deadline: it is the slowest of 8,
    // above the 99th percentile's rank, so the p99 lies between the fast
    // ones and it.
    let p99 = after["last_minute"]["http_p99_ms"].as_f64().unwrap();
    assert!((700.0..=1500.0).contains(&p99), "p99 {p99} ms: {after}");
    let window = after["last_minute"]["window_secs"].as_u64().unwrap();
    assert!(window <= 65, "{window}");

    let text = ok(&harness::ctl(
        service.path(),
        &["status", "--to", &service.to()],
    ));
    let line = text.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("last ") && line.contains("2 server errors") && line.contains("1 trap,"),
        "{text}"
    );
}

/// The packaged Grafana dashboard queries only metrics a gateway exports:
/// a renamed family would otherwise leave a panel silently empty.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_queries_only_exported_metrics() {
    let path = harness::repo_root().join("packaging/grafana/gatewayd-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            queried.extend(metric_names(expr));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        queried.extend(metric_names(variable["query"]["query"].as_str().unwrap()));
    }
    assert!(queried.len() >= 20, "{queried:?}");

    // The whiskers demo has every kind of series: HTTP routes, an MQTT
    // trigger, outbound MQTT; one vote makes its outbound series (the
    // others exist from the start).
    let broker = MosquittoBroker::start();
    let variable = format!("mqtt_address={}", broker.address());
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    // A state dir of its own: the vote must not land in the key-value store
    // the whiskers demo test counts in.
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(
        &examples().join("whiskers"),
        Options {
            args: &["--metrics", &address, "--variable", &variable],
            state_dir: Some(state.path()),
            ..Options::default()
        },
    );
    assert!(
        gw.wait_for_log("subscribed", Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    let vote = harness::client()
        .post(gw.url("/vote/cat"))
        .send()
        .await
        .unwrap();
    assert_eq!(vote.status(), 202, "{}", gw.logs());
    // Counted once the tally handler is done with the vote's message.
    let mut scrape = Scrape::get(&metrics_url(port), false).await;
    for _ in 0..100 {
        if scrape.value("gatewayd_messages_handled_total", &[]) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        scrape = Scrape::get(&metrics_url(port), false).await;
    }
    let families: std::collections::BTreeSet<&str> = scrape
        .text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    let missing: Vec<_> = queried
        .iter()
        .filter(|name| {
            let family = ["_bucket", "_count", "_sum", "_total"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            !families.contains(name.as_str()) && !families.contains(family)
        })
        .collect();
    assert!(missing.is_empty(), "{missing:?} not in {families:?}");
}

/// The metric names a PromQL expression reads (ours and the process ones).
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("gatewayd_") || word.starts_with("process_"))
        .map(str::to_string)
        .collect()
}
