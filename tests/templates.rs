//! `gatewayctl new`, `gatewayctl build` and `gatewayd up --build` as a developer
//! uses them: every template is created, built with its real toolchain against
//! the published packages it names (crates, PyPI, npm), served by `gatewayd up` and called (an HTTP
//! request, a Redis publish, an MQTT message through real brokers).
//!
//! The templates' cargo builds share one target folder (a `target` symlink in
//! each app), kept between runs, so the SDKs compile once per machine.

use crate::harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use harness::{Gateway, MosquittoBroker, MqttClient, Options, RedisServer, redis_publish};

fn gatewayctl(args: &[&str]) -> Output {
    gatewayctl_with(args, &[])
}

fn gatewayctl_with(args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new(harness::gatewayctl())
        .args(args)
        // One job: these builds run beside the other end-to-end tests.
        .env("CARGO_BUILD_JOBS", "1")
        // CI points cargo at its cache; a template's spin.toml expects ./target.
        .env_remove("CARGO_TARGET_DIR")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `gatewayctl new TEMPLATE NAME`, then `gatewayctl build`: the app's folder.
fn new_and_build(tmp: &Path, template: &str, name: &str, values: &[&str]) -> PathBuf {
    new_and_build_with(tmp, template, name, values, &[], "cargo build")
}

/// [`new_and_build`] with an environment for the build, whose command starts
/// with `command`.
fn new_and_build_with(
    tmp: &Path,
    template: &str,
    name: &str,
    values: &[&str],
    env: &[(&str, String)],
    command: &str,
) -> PathBuf {
    let dir = tmp.join(name);
    let mut args = vec!["new", template, name, "--accept-defaults", "-o"];
    let dir_arg = dir.to_str().unwrap();
    args.push(dir_arg);
    for value in values {
        args.extend(["--value", value]);
    }
    let created = gatewayctl(&args);
    assert!(created.status.success(), "{}", text(&created));
    assert!(
        text(&created).contains("gatewayd up --build"),
        "{}",
        text(&created)
    );

    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-builds");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, dir.join("target")).unwrap();
    let started = std::time::Instant::now();
    let built = gatewayctl_with(&["build", dir_arg], env);
    let out = text(&built);
    assert!(built.status.success(), "{template}: {out}");
    assert!(
        out.contains(&format!("Building component {name} with `{command}")),
        "{out}"
    );
    // The tool's own lines, attributed to the component.
    assert!(out.contains(&format!("\n[{name}] ")), "{out}");
    eprintln!("template {template}: built in {:?}", started.elapsed());
    dir
}

/// Serves the app at `dir` and asks `path`: it must greet as the templates do.
async fn assert_greets(dir: &Path, path: &str, name: &str) -> Gateway {
    let gw = Gateway::start(dir);
    let (status, body) = harness::get(&gw.url(path)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("Hello from {name}!\n").as_str())
    );
    gw
}

#[test]
fn templates_are_listed() {
    let listed = gatewayctl(&["templates"]);
    let out = text(&listed);
    assert!(listed.status.success(), "{out}");
    for id in [
        "http-rust ",
        "http-rust-wasi02 ",
        "redis-rust ",
        "mqtt-rust ",
        "http-python ",
        "http-js ",
    ] {
        assert!(out.lines().any(|l| l.starts_with(id)), "{id}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_template_builds_and_answers_under_gatewayd_up() {
    let tmp = tempfile::tempdir().unwrap();

    for (template, name) in [("http-rust", "hello-p3"), ("http-rust-wasi02", "hello-p2")] {
        let dir = new_and_build(tmp.path(), template, name, &["http-path=/greet/..."]);
        let gw = assert_greets(&dir, "/greet/you", name).await;
        let (status, _) = harness::get(&gw.url("/elsewhere")).await;
        assert_eq!(status, 404, "the route is the one given at `new`");
    }

    // Python: the tools in the virtual environment the example's build makes
    // (the versions requirements.txt pins), active as `new` tells the user.
    let venv = harness::hello_py().join(".venv");
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH", path), ("VIRTUAL_ENV", venv.display().to_string())];
    let dir = new_and_build_with(
        tmp.path(),
        "http-python",
        "hello-py",
        &[],
        &env,
        "componentize-py",
    );
    drop(assert_greets(&dir, "/anything", "hello-py").await);

    // JavaScript: the build command installs its npm packages itself.
    let dir = new_and_build_with(tmp.path(), "http-js", "hello-js", &[], &[], "npm install");
    drop(assert_greets(&dir, "/js", "hello-js").await);

    let redis = RedisServer::start();
    let address = format!("redis-address={}", redis.address());
    let dir = new_and_build(
        tmp.path(),
        "redis-rust",
        "on-jobs",
        &[&address, "redis-channel=jobs"],
    );
    let gw = Gateway::start(&dir);
    assert!(
        gw.wait_for_line(&["channel \"jobs\")", "connected"], Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    redis_publish(&redis.address(), "jobs", b"job 1").await;
    assert!(
        gw.wait_for_log("received 5 bytes: job 1", Duration::from_secs(15)),
        "{}",
        gw.logs()
    );
    drop(gw);

    let broker = MosquittoBroker::start();
    let address = format!("mqtt-address={}", broker.address());
    let dir = new_and_build(
        tmp.path(),
        "mqtt-rust",
        "on-readings",
        &[&address, "mqtt-topic=sensors/+/temp"],
    );
    let gw = Gateway::start(&dir);
    assert!(
        gw.wait_for_line(
            &["MQTT trigger \"trigger-on-readings\"", "subscribed"],
            Duration::from_secs(15)
        ),
        "{}",
        gw.logs()
    );
    let client = MqttClient::connect(broker.port, &[]).await;
    client.publish("sensors/kitchen/temp", 1, "21.5").await;
    client.publish("sensors/kitchen/humidity", 1, "40").await;
    client.flush().await;
    assert!(
        gw.wait_for_log(
            "received 4 bytes on sensors/kitchen/temp: 21.5",
            Duration::from_secs(15)
        ),
        "{}",
        gw.logs()
    );
    assert!(
        !gw.logs().contains("humidity"),
        "outside the topic filter:\n{}",
        gw.logs()
    );
}

/// `up --build` runs the build first and serves what it made; a failed build
/// stops `up` with the component named, before anything serves.
#[test]
fn up_build_builds_then_serves_and_stops_on_a_failed_build() {
    let tmp = tempfile::tempdir().unwrap();
    let wasm = harness::examples().join("target/wasm32-wasip2/release/hello_wstd.wasm");
    std::fs::copy(&wasm, tmp.path().join("prebuilt.wasm")).unwrap();
    let manifest = |command: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"b\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
             [component.web]\nsource = \"out/web.wasm\"\n\
             [component.web.build]\ncommand = {command:?}\n"
        )
    };
    std::fs::write(tmp.path().join("spin.toml"), manifest("exit 7")).unwrap();
    let failed = Gateway::try_start(
        tmp.path(),
        Options {
            args: &["--build"],
            ..Options::default()
        },
    )
    .err()
    .expect("gatewayd up --build served after a failed build");
    assert!(
        failed.contains("component \"web\": build command `exit 7` failed"),
        "{failed}"
    );

    std::fs::write(
        tmp.path().join("spin.toml"),
        manifest("mkdir -p out && cp prebuilt.wasm out/web.wasm && echo copied"),
    )
    .unwrap();
    let gw = Gateway::start_with(
        tmp.path(),
        Options {
            args: &["--build"],
            ..Options::default()
        },
    );
    assert!(gw.logs().contains("[web] copied"), "{}", gw.logs());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (status, _) = rt.block_on(harness::get(&gw.url("/")));
    assert_eq!(status, 200);
}
