//! Fleet updates through a real OCI registry (Debian's docker-registry):
//! `gatewayctl push bundle --to oci://...` publishes, gateways with `[fleet]
//! source` follow the tag and apply what it points at through the same
//! checks as a push; a wrongly signed artifact is refused by every gateway,
//! once; a registry outage changes nothing on the gateways.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Gateway, OciRegistry, Service, get, ok};

/// A service that trusts `fleet`'s release key and follows `source`.
fn follower(fleet: &Service, source: &str, extra: &str) -> Service {
    let service = Service::new();
    std::fs::copy(
        fleet.path().join("release.pub"),
        service.path().join("release.pub"),
    )
    .unwrap();
    service.append_config(&format!(
        "\n[fleet]\nsource = \"{source}\"\npoll_interval = \"1s\"\ninsecure = true\n{extra}"
    ));
    service
}

/// `gatewayctl push bundle BUNDLE --to TO --insecure [ARGS]`, with `stdin`.
fn publish(dir: &Path, bundle: &Path, to: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(crate::harness::gatewayctl())
        .args([
            "push",
            "bundle",
            bundle.to_str().unwrap(),
            "--to",
            to,
            "--insecure",
        ])
        .args(args)
        .current_dir(dir)
        // No docker login of the machine running the tests.
        .env("DOCKER_CONFIG", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Waits (bounded) until every gateway runs `version`; returns how long it took.
fn wait_for_version(services: &[Service], gateways: &[Gateway], version: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    loop {
        let versions: Vec<String> = services
            .iter()
            .map(|s| s.status()["version"].as_str().unwrap_or("none").to_string())
            .collect();
        if versions.iter().all(|v| v == version) {
            return started.elapsed();
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = gateways.iter().map(|g| g.logs()).collect();
            panic!(
                "not every gateway runs {version}: {versions:?}\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gateways_follow_a_tag_refuse_a_bad_artifact_once_and_outlive_the_registry() {
    let mut registry = OciRegistry::start();
    let source = registry.address("fleet/hello:stable");
    let publisher = Service::new();
    let services: Vec<Service> = (0..3).map(|_| follower(&publisher, &source, "")).collect();
    let gateways: Vec<Gateway> = services.iter().map(|s| s.start()).collect();

    let dir = publisher.path();
    let published = ok(&publish(
        dir,
        &publisher.bundle("1.0.0", "release"),
        &source,
        &[],
        "",
    ));
    assert!(
        published.contains(&format!(
            "published: app \"hello\" version 1.0.0 as {source} (sha256:"
        )),
        "{published}"
    );
    let took = wait_for_version(&services, &gateways, "1.0.0");
    println!("figure: push to all three gateways serving 1.0.0: {took:?} (poll interval 1s)");
    for gw in &gateways {
        assert_eq!(get(&gw.url("/hello")).await.0, 200);
    }

    ok(&publish(
        dir,
        &publisher.bundle("1.1.0", "release"),
        &source,
        &[],
        "",
    ));
    let took = wait_for_version(&services, &gateways, "1.1.0");
    println!("figure: push to all three gateways serving 1.1.0: {took:?}");

    // Signed by a key no gateway trusts: every gateway refuses it, keeps
    // serving 1.1.0, and does not download it again while the tag stays.
    let untrusted = publisher.bundle("1.2.0", "other");
    ok(&publish(dir, &untrusted, &source, &[], ""));
    for (gw, service) in gateways.iter().zip(&services) {
        assert!(
            gw.wait_for_log("not retried until the tag moves", Duration::from_secs(30)),
            "{}",
            gw.logs()
        );
        assert!(gw.logs().contains("does not trust"), "{}", gw.logs());
        assert_eq!(service.status()["version"], "1.1.0");
        assert_eq!(get(&gw.url("/hello")).await.0, 200);
    }
    let log_before = registry.access_log();
    std::thread::sleep(Duration::from_secs(4));
    let log = registry.access_log();
    let window = &log[log_before.len()..];
    assert_eq!(
        window.matches("GET /v2/fleet/hello/blobs/").count(),
        0,
        "a rejected artifact was downloaded again:\n{window}"
    );
    // What an unchanged tag costs a gateway per poll, from the registry's
    // access log over those 4 s, when only polls happened.
    let polls = window
        .lines()
        .filter(|l| l.contains("\"HEAD /v2/fleet/hello/manifests/stable"))
        .count();
    assert!(polls >= 9, "three gateways polled for 4 s:\n{window}");
    println!(
        "figure: requests to the registry per unchanged poll: {:.1} ({} requests, {polls} polls)",
        window.lines().count() as f64 / polls as f64,
        window.lines().count()
    );

    // The registry goes away: nothing changes on the gateways, which say so
    // once and retry; back, the next push reaches them.
    registry.stop();
    for gw in &gateways {
        assert!(
            gw.wait_for_log("serving on, retrying", Duration::from_secs(15)),
            "{}",
            gw.logs()
        );
        assert_eq!(get(&gw.url("/hello")).await.0, 200);
    }
    registry.start_again();
    ok(&publish(
        dir,
        &publisher.bundle("1.3.0", "release"),
        &source,
        &[],
        "",
    ));
    wait_for_version(&services, &gateways, "1.3.0");

    // A restart neither downloads the running bundle again nor changes it.
    drop(gateways);
    let pulls_before = registry
        .access_log()
        .matches("GET /v2/fleet/hello/blobs/")
        .count();
    let gw = services[0].start();
    assert!(
        gw.wait_for_log("fleet: following", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(services[0].status()["version"], "1.3.0");
    assert_eq!(
        registry
            .access_log()
            .matches("GET /v2/fleet/hello/blobs/")
            .count(),
        pulls_before,
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_with_passwords_takes_them_from_publisher_and_gateways() {
    let registry = OciRegistry::start_with_user(Some(("fleet", "s3cret-pass")));
    let source = registry.address("fleet/hello:stable");
    let publisher = Service::new();
    let bundle = publisher.bundle("1.0.0", "release");
    let dir = publisher.path();

    let refused = publish(dir, &bundle, &source, &[], "");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains(&source) && stderr.to_lowercase().contains("unauthorized"),
        "{stderr}"
    );
    ok(&publish(
        dir,
        &bundle,
        &source,
        &["--username", "fleet", "--password-stdin"],
        "s3cret-pass\n",
    ));

    let with = follower(
        &publisher,
        &source,
        "source_username = \"fleet\"\nsource_password = \"s3cret-pass\"\n",
    );
    let without = follower(&publisher, &source, "");
    let gw_with = with.start();
    let gw_without = without.start();
    wait_for_version(
        std::slice::from_ref(&with),
        std::slice::from_ref(&gw_with),
        "1.0.0",
    );
    assert!(
        gw_without.wait_for_log("serving on, retrying", Duration::from_secs(15)),
        "{}",
        gw_without.logs()
    );
    assert!(without.status()["version"].is_null());
    assert_eq!(get(&gw_without.url("/hello")).await.0, 503);
}

/// Rings: canary gateways follow `:canary`, the rest `:stable`; `fleet
/// promote` moves `:stable` to the canary's artifact only once every canary
/// gateway reports it runs it, healthy.
#[tokio::test(flavor = "multi_thread")]
async fn promote_waits_for_healthy_canaries() {
    let registry = OciRegistry::start();
    let broker = crate::harness::MosquittoBroker::start();
    let canary_tag = registry.address("fleet/hello:canary");
    let stable_tag = registry.address("fleet/hello:stable");
    let publisher = Service::new();
    let dir = publisher.path();
    let ring = |source: &str, id: &str| {
        follower(
            &publisher,
            source,
            &format!(
                "status_broker = \"{}\"\ngateway_id = \"{id}\"\nstatus_interval = \"1s\"\n",
                broker.address()
            ),
        )
    };
    let canaries = vec![ring(&canary_tag, "canary-1"), ring(&canary_tag, "canary-2")];
    let stable = vec![ring(&stable_tag, "stable-1")];
    let canary_gateways: Vec<Gateway> = canaries.iter().map(|s| s.start()).collect();
    let stable_gateways: Vec<Gateway> = stable.iter().map(|s| s.start()).collect();
    let promote = |healthy_for: &str| {
        crate::harness::ctl(
            dir,
            &[
                "fleet",
                "promote",
                "--from",
                &canary_tag,
                "--to",
                "stable",
                "--broker",
                &broker.address(),
                "--healthy-for",
                healthy_for,
                "--insecure",
            ],
        )
    };

    for tag in [&canary_tag, &stable_tag] {
        ok(&publish(
            dir,
            &publisher.bundle("1.0.0", "release"),
            tag,
            &[],
            "",
        ));
    }
    wait_for_version(&canaries, &canary_gateways, "1.0.0");
    wait_for_version(&stable, &stable_gateways, "1.0.0");

    // A canary refuses what the tag points at (untrusted key): no promotion.
    ok(&publish(
        dir,
        &publisher.bundle("1.1.0", "other"),
        &canary_tag,
        &[],
        "",
    ));
    for gw in &canary_gateways {
        assert!(
            gw.wait_for_log("not retried until the tag moves", Duration::from_secs(30)),
            "{}",
            gw.logs()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        let out = promote("0s");
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            !out.status.success(),
            "promoted a refused artifact: {stderr}"
        );
        // Until both canaries' reports say so, one may still be "at" the old one.
        if stderr.contains("canary-1: rejected") && stderr.contains("canary-2: rejected")
            || Instant::now() > deadline
        {
            break stderr;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        refused.contains("refused to promote")
            && refused.contains("canary-1: rejected sha256:")
            && refused.contains("does not trust"),
        "{refused}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(stable[0].status()["version"], "1.0.0");

    // A good one: refused while the canaries are younger than --healthy-for,
    // promoted once they vouch, and the stable ring follows.
    ok(&publish(
        dir,
        &publisher.bundle("1.1.1", "release"),
        &canary_tag,
        &[],
        "",
    ));
    wait_for_version(&canaries, &canary_gateways, "1.1.1");
    let young = promote("1h");
    let stderr = String::from_utf8_lossy(&young.stderr);
    assert!(!young.status.success());
    assert!(stderr.contains("less than --healthy-for 1h"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = loop {
        let out = promote("0s");
        if out.status.success() || Instant::now() > deadline {
            break ok(&out);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        promoted.contains(&format!("promoted: {stable_tag} is now sha256:"))
            && promoted.contains("2 canary gateways on it"),
        "{promoted}"
    );
    wait_for_version(&stable, &stable_gateways, "1.1.1");
}

/// The registry dies mid-download: the gateway keeps what arrived, carries
/// on from there (a range request) once the registry is back, and checks
/// the whole against the digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_download_cut_by_the_registry_resumes_where_it_stopped() {
    let mut registry = OciRegistry::start();
    let source = registry.address("fleet/big:stable");
    let publisher = Service::new();
    // An app with a 24 MiB file (random, so the bundle stays that big).
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(
        crate::harness::examples().join("target/wasm32-wasip2/release/hello.wasm"),
        app.path().join("hello.wasm"),
    )
    .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<u8> = (0..24 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(app.path().join("big.bin"), big).unwrap();
    std::fs::write(
        app.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"hello\"\n\
         [[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n\
         [component.hello]\nsource = \"hello.wasm\"\nfiles = [\"big.bin\"]\n",
    )
    .unwrap();
    let bundle = publisher.bundle_app(app.path(), "1.0.0", "release", &[]);
    let bundle_size = std::fs::metadata(&bundle).unwrap().len();
    ok(&publish(publisher.path(), &bundle, &source, &[], ""));

    let service = follower(&publisher, &source, "");
    let gw = service.start();
    // Freeze the registry the moment bytes arrive, then kill it.
    let uploads = service.path().join("state/uploads");
    let deadline = Instant::now() + Duration::from_secs(30);
    let part = loop {
        let part = std::fs::read_dir(&uploads).ok().and_then(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "part"))
        });
        if let Some(part) = part
            && std::fs::metadata(&part).is_ok_and(|m| m.len() > 0)
        {
            break part;
        }
        assert!(
            Instant::now() < deadline,
            "no download began:\n{}",
            gw.logs()
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    registry.signal(libc::SIGSTOP);
    registry.stop();
    assert!(
        gw.wait_for_log("(resumed at the next try)", Duration::from_secs(30)),
        "{}",
        gw.logs()
    );
    let cut = std::fs::metadata(&part).unwrap().len();
    assert!(
        cut > 0 && cut < bundle_size,
        "the download was not cut ({cut} of {bundle_size} bytes)"
    );

    registry.start_again();
    wait_for_version(
        std::slice::from_ref(&service),
        std::slice::from_ref(&gw),
        "1.0.0",
    );
    assert!(
        gw.logs().contains(&format!(
            "resuming the download at byte {cut} of {bundle_size}"
        )),
        "{}",
        gw.logs()
    );
    let log = registry.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("GET /v2/fleet/big/blobs/sha256:") && l.contains("\" 206 ")),
        "no range request:\n{log}"
    );
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    println!("figure: a {bundle_size}-byte download cut at {cut} bytes resumed from there");
}
