//! Fleet status over MQTT, with a real mosquitto: gateways with `[fleet]
//! status_broker` keep a retained status message there, which `gatewayctl
//! fleet status` lists; a killed gateway shows offline through its last
//! will, a stopped one says so, and a broker restart during an update only
//! delays the report.

use std::time::{Duration, Instant};

use crate::harness::{Gateway, MosquittoBroker, Service, ctl, ok};

fn fleet_service(broker: &MosquittoBroker, id: &str) -> Service {
    let service = Service::new();
    service.append_config(&format!(
        "\n[fleet]\nstatus_broker = \"{}\"\ngateway_id = \"{id}\"\nstatus_interval = \"1s\"\n",
        broker.address()
    ));
    service
}

/// `gatewayctl fleet status --json`, as (gateway, state, version) sorted.
fn fleet(dir: &std::path::Path, broker: &MosquittoBroker) -> Vec<(String, String, String)> {
    let out = ok(&ctl(
        dir,
        &["fleet", "status", "--broker", &broker.address(), "--json"],
    ));
    let messages: Vec<serde_json::Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    messages
        .iter()
        .map(|m| {
            let field = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
            (
                field(&m["gateway"]),
                field(&m["state"]),
                field(&m["status"]["version"]),
            )
        })
        .collect()
}

/// Polls `fleet status` (bounded) until it is `expected`.
fn wait_for_fleet(
    dir: &std::path::Path,
    broker: &MosquittoBroker,
    expected: &[(&str, &str, &str)],
    gateways: &[&Gateway],
) {
    wait_for_fleet_within(dir, broker, expected, gateways, Duration::from_secs(20));
}

fn wait_for_fleet_within(
    dir: &std::path::Path,
    broker: &MosquittoBroker,
    expected: &[(&str, &str, &str)],
    gateways: &[&Gateway],
    within: Duration,
) {
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(g, s, v)| (g.to_string(), s.to_string(), v.to_string()))
        .collect();
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = fleet(dir, broker);
        if seen == expected {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs: Vec<String> = gateways.iter().map(|g| g.logs()).collect();
    panic!(
        "fleet status is {seen:?}, not {expected:?}\n{}",
        logs.join("\n----\n")
    );
}

#[test]
fn gateways_report_to_the_broker_and_show_offline_through_their_last_will() {
    let mut broker = MosquittoBroker::start();
    let services: Vec<Service> = ["gw-1", "gw-2", "gw-3"]
        .iter()
        .map(|id| fleet_service(&broker, id))
        .collect();
    let mut gateways: Vec<Gateway> = services.iter().map(|s| s.start()).collect();
    for service in &services {
        ok(&service.push(&service.bundle("1.0.0", "release")));
    }
    ok(&services[0].push(&services[0].bundle("1.1.0", "release")));
    let dir = services[0].path();
    let all: Vec<&Gateway> = gateways.iter().collect();
    wait_for_fleet(
        dir,
        &broker,
        &[
            ("gw-1", "online", "1.1.0"),
            ("gw-2", "online", "1.0.0"),
            ("gw-3", "online", "1.0.0"),
        ],
        &all,
    );

    // The table an operator reads: one line per gateway, then the counts.
    let table = ok(&ctl(
        dir,
        &["fleet", "status", "--broker", &broker.address()],
    ));
    assert!(
        table.contains("3 gateways: 3 online; hello 1.0.0: 2, hello 1.1.0: 1"),
        "{table}"
    );

    // A broker restart while gw-1 takes an update: the report catches up
    // once the broker is back, and the gateway served throughout.
    let port = broker.port;
    std::thread::scope(|scope| {
        let bundle = services[0].bundle("1.2.0", "release");
        let restarted = scope.spawn(|| broker.restart(Duration::from_secs(3)));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "the broker did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        ok(&services[0].push(&bundle));
        restarted.join().unwrap();
    });
    wait_for_fleet(
        dir,
        &broker,
        &[
            ("gw-1", "online", "1.2.0"),
            ("gw-2", "online", "1.0.0"),
            ("gw-3", "online", "1.0.0"),
        ],
        &all,
    );

    // gw-3 loses power (SIGKILL: no goodbye): its last will says offline,
    // with what it ran; gw-2 stops cleanly and says so.
    gateways[2].signal(libc::SIGKILL);
    gateways[1].signal(libc::SIGTERM);
    assert!(gateways[1].wait(Duration::from_secs(30)).is_some());
    let all: Vec<&Gateway> = gateways.iter().collect();
    wait_for_fleet(
        dir,
        &broker,
        &[
            ("gw-1", "online", "1.2.0"),
            ("gw-2", "stopped", "1.0.0"),
            ("gw-3", "offline", "1.0.0"),
        ],
        &all,
    );
    gateways.clear();
}

#[test]
fn a_gateway_whose_broker_is_down_serves_and_reports_once_it_is_up() {
    let mut broker = MosquittoBroker::start();
    let service = fleet_service(&broker, "gw-late");
    broker.stop();
    let gateway = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));
    assert!(
        gateway.wait_for_log("fleet status: ", Duration::from_secs(10)),
        "{}",
        gateway.logs()
    );
    assert!(
        gateway
            .logs()
            .contains("retrying (the gateway serves on regardless)"),
        "{}",
        gateway.logs()
    );
    broker.restart(Duration::ZERO);
    // On a loaded machine the broker can be down long enough for the
    // publisher's next try to be its longest backoff away.
    wait_for_fleet_within(
        service.path(),
        &broker,
        &[("gw-late", "online", "1.0.0")],
        &[&gateway],
        gatewayd::fleet::status::MAX_RETRY_BACKOFF + Duration::from_secs(15),
    );
}

#[test]
fn fleet_status_names_a_broker_it_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::harness::free_port();
    let out = ctl(
        dir.path(),
        &[
            "fleet",
            "status",
            "--broker",
            &format!("mqtt://127.0.0.1:{port}"),
            "--wait",
            "2s",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("gatewayctl: mqtt://127.0.0.1:{port}: ")),
        "{stderr}"
    );
    let out = ctl(dir.path(), &["fleet", "status", "--broker", "http://x"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--broker \"http://x\": the scheme must be mqtt:// or mqtts://"),
        "{stderr}"
    );
}
