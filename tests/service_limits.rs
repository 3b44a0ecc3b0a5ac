//! What a pushed bundle or a client may not make the service do: starve it
//! with idle admin or HTTP connections, fill its state dir with staged files, wedge
//! its update path with a start function that never returns, or reach files
//! outside the bundle.

use crate::harness;

use std::time::Duration;

use harness::{Service, ctl, examples, get, ok, rejected};

/// Admin connections that never send a byte cannot starve the daemon: the
/// admin API serves 16 at once (the rest wait in the kernel's queue, costing
/// no descriptor) and drops one silent for 10 s. With 200 file descriptors
/// and 300 idle admin connections, HTTP keeps answering, and the admin API
/// answers once they are gone. (Before, every one took a descriptor and the
/// HTTP port could no longer accept.)
#[tokio::test(flavor = "multi_thread")]
async fn idle_admin_connections_do_not_starve_the_daemon() {
    let service = Service::new();
    let gw = service.start_program(&descriptor_limited(200), &[]);
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

/// A host that opens HTTP connections and never sends a byte holds at most a
/// quarter of the connection slots, which are a quarter of the descriptor
/// limit: the daemon keeps descriptors for everything else and other clients
/// keep being answered. (Before, the cap was 1024 whatever the limit: with 200
/// descriptors, 300 idle connections took them all, and neither the admin API
/// nor new HTTP clients could get in.)
#[tokio::test(flavor = "multi_thread")]
async fn idle_http_connections_take_neither_descriptors_nor_other_clients_slots() {
    let service = Service::new();
    let gw = service.start_program(&descriptor_limited(200), &[]);
    ok(&service.push(&service.bundle("1.0.0", "release")));
    // From another loopback address, so the test's own requests are another
    // client.
    let mut idle = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        match tokio::time::timeout(Duration::from_millis(500), socket.connect(gw.addr)).await {
            Ok(Ok(stream)) => idle.push(stream),
            _ => break,
        }
    }
    assert_eq!(idle.len(), 300, "the kernel queues what is not accepted");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", gw.pid()))
        .unwrap()
        .count();
    assert!(descriptors < 100, "{descriptors} descriptors of 200 in use");
    for _ in 0..5 {
        let started = std::time::Instant::now();
        assert_eq!(get(&gw.url("/hello")).await.0, 200, "{}", gw.logs());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(service.status()["version"], "1.0.0");
    assert!(
        gw.wait_for_log("closing connections from 127.0.0.2", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// Runs gatewayd with `limit` open files.
fn descriptor_limited(limit: u32) -> harness::Program {
    harness::Program {
        runner: vec![
            "bash".into(),
            "-c".into(),
            format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
        ],
        binary: None,
    }
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
    service.append_config("[update]\nhealth_timeout = \"1s\"\n");
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
