//! The service and its updates end to end: `gatewayd serve` with a config,
//! bundles pushed with `gatewayctl push bundle` over the admin socket,
//! rejected ones leaving the running app untouched, rollback, restart, a
//! crash at every step of an update, and twenty pushes under load with no
//! failed request.

use crate::harness;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use harness::{Service, ctl, examples, get, ok, rejected};

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
        same.contains("version 1.0.0 is not newer than 1.0.0, the highest installed"),
        "{same}"
    );
    // A refused bundle whose signature held is named by its version; one
    // whose signature failed is not (its version is anyone's word).
    assert_eq!(service.status()["last_update"]["version"], "1.0.0");
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
    assert!(service.status()["last_update"]["version"].is_null());

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
    // Rolled back to 1.0.0, the gateway still refuses the 1.1.0 bundle it
    // left (and anything older than the highest it ever installed): only the
    // operator's rollback goes back.
    let again = rejected(&service.push(&service.bundle("1.1.0", "release")));
    assert!(
        again.contains("version 1.1.0 is not newer than 1.1.0, the highest installed"),
        "{again}"
    );
    assert_eq!(service.status()["version"], "1.0.0");
    // Another app replaces this one only when the operator says so.
    let probe = service.bundle_app(&examples().join("probe"), "0.1.0", "release", &[]);
    let other = rejected(&service.push(&probe));
    assert!(
        other.contains("this gateway runs app \"hello\"; the bundle is app \"probe\"")
            && other.contains("--replace-app"),
        "{other}"
    );
    ok(&service.push_replacing(&probe));
    assert_eq!(service.status()["app"], "probe");
    // And coming back to hello, its old versions stay refused.
    let hello = rejected(&service.push_replacing(&service.bundle("1.0.5", "release")));
    assert!(hello.contains("not newer than 1.1.0"), "{hello}");
    ok(&service.push_replacing(&service.bundle("1.3.0", "release")));
    drop(gw);

    // A restart serves what was installed last.
    let gw = service.start();
    assert_eq!(service.status()["version"], "1.3.0");
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
    let trapped = rejected(&service.push_replacing(&trap));
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
    service.append_config("[update]\nmax_bundle_size = \"200KiB\"\n");
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
        ok(&service.push_replacing(&bundle));
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

/// SIGHUP rereads trusted_keys: a revoked key stops working without a
/// restart, a new one starts working; a config that does not load leaves
/// the keys as they were.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_trusted_keys() {
    let service = Service::new();
    let gw = service.start();
    ok(&service.push(&service.bundle("1.0.0", "release")));
    let config_path = service.path().join("gatewayd.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, config.replace("release.pub", "other.pub")).unwrap();
    gw.signal(libc::SIGHUP);
    assert!(
        gw.wait_for_log("trusted keys reloaded", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let revoked = rejected(&service.push(&service.bundle("1.1.0", "release")));
    assert!(revoked.contains("does not trust"), "{revoked}");
    ok(&service.push(&service.bundle("1.2.0", "other")));

    std::fs::write(&config_path, "trusted_keys = 7\n").unwrap();
    gw.signal(libc::SIGHUP);
    assert!(
        gw.wait_for_log("trusted keys not reloaded", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    ok(&service.push(&service.bundle("1.3.0", "other")));
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}
