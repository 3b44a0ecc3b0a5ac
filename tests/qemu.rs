//! gatewayd built for the boards (aarch64, riscv64, armv7) and run under QEMU
//! user-mode emulation, checked from this machine over loopback:
//! - the probe app answers, with every component compiled on the emulated
//!   CPU to the code expected there (native, or Pulley), and a trap and an
//!   endless loop stay inside their requests; a restart loads from the cache;
//! - a bundle carrying code precompiled here with `gatewayctl bundle
//!   --target` is served without compiling on the board;
//! - an MQTT-triggered component handles messages from a real mosquitto;
//! - riscv64 with the vector extension, opted into with `has_v`, runs native
//!   code where baseline riscv64 falls back to Pulley.
//!
//! `cross/test.sh` builds the board binaries (profile `qemu`) and runs these
//! with `--ignored`, passing the cargo target folder in GATEWAYD_BOARD_BUILDS.

use crate::harness;

use std::path::PathBuf;
use std::time::Duration;

use harness::{Gateway, MosquittoBroker, MqttClient, Options, Program, Service, examples, get, ok};

struct Board {
    triple: &'static str,
    qemu: &'static str,
    /// How the log names the code the probe app's components get.
    code: &'static str,
}

const AARCH64: Board = Board {
    triple: "aarch64-unknown-linux-gnu",
    qemu: "qemu-aarch64-static",
    code: "to native aarch64 code",
};

/// wasmtime 48's Cranelift crashes on these components for baseline RV64GC
/// (wasmtime issue #13959): they run on Pulley. When a wasmtime release fixes
/// it, this expectation fails; make it native code then.
const RISCV64: Board = Board {
    triple: "riscv64gc-unknown-linux-gnu",
    qemu: "qemu-riscv64-static",
    code: "running on the Pulley interpreter (pulley64)",
};

const ARMV7: Board = Board {
    triple: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm-static",
    code: "to Pulley interpreter (pulley32)",
};

/// Deadline for one request under emulation: long enough for a slow
/// emulated response, short enough that the endless loop test is quick.
const REQUEST_TIMEOUT: &str = "3s";

fn program(board: &Board, cpu: &[&str]) -> Program {
    let builds = std::env::var_os("GATEWAYD_BOARD_BUILDS").expect(
        "GATEWAYD_BOARD_BUILDS is not set: run these tests with cross/test.sh, \
         which builds gatewayd for the boards first",
    );
    let binary = PathBuf::from(builds)
        .join(board.triple)
        .join("qemu")
        .join("gatewayd");
    assert!(binary.exists(), "{} is missing", binary.display());
    // The builds are static: no sysroot (`-L`), as on a board whose libc is
    // not the one they were built against.
    let mut runner = vec![board.qemu.to_string()];
    runner.extend(cpu.iter().map(|s| s.to_string()));
    Program {
        runner,
        binary: Some(binary),
    }
}

async fn serves_the_probe_app_contains_faults_and_caches_code(board: &Board) {
    let program = program(board, &[]);
    let state = tempfile::tempdir().unwrap();
    let start = || {
        Gateway::start_with(
            &examples().join("probe"),
            Options {
                program: Some(&program),
                state_dir: Some(state.path()),
                args: &["--request-timeout", REQUEST_TIMEOUT],
                ..Options::default()
            },
        )
    };
    let gw = start();
    let logs = gw.logs();
    for component in ["probe", "hello-sdk5", "hello"] {
        let line = logs
            .lines()
            .find(|l| l.ends_with(&format!("component={component}")))
            .unwrap_or_else(|| panic!("no load line for {component}:\n{logs}"));
        assert!(line.contains(board.code), "{component}: {line}");
    }
    assert_eq!(get(&gw.url("/probe/ok")).await.0, 200, "{}", gw.logs());
    assert_eq!(get(&gw.url("/p3/")).await.0, 200, "{}", gw.logs());
    assert_eq!(get(&gw.url("/probe/trap")).await.0, 500);
    assert_eq!(get(&gw.url("/probe/loop")).await.0, 504);
    assert_eq!(get(&gw.url("/probe/ok")).await.0, 200);
    drop(gw);

    let gw = start();
    let logs = gw.logs();
    assert_eq!(
        logs.matches("loaded precompiled code from the cache")
            .count(),
        3,
        "{logs}"
    );
    assert!(!logs.contains(" compiled "), "{logs}");
    assert_eq!(get(&gw.url("/sdk5/")).await.0, 200);
}

async fn loads_code_precompiled_on_this_machine_without_compiling(board: &Board) {
    let service = Service::new();
    let gw = service.start_program(&program(board, &[]), &[]);
    let bundle = service.bundle_with("1.0.0", "release", &["--target", board.triple]);
    ok(&service.push(&bundle));
    let (status, body) = get(&gw.url("/hello")).await;
    assert_eq!((status, body.as_str()), (200, "Hello from gatewayd!\n"));
    let shipped = format!(
        "using the code precompiled for {} shipped in the bundle",
        board.triple
    );
    assert!(
        gw.wait_for_log(&shipped, Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains(" compiled "), "{}", gw.logs());
    // The status names the same code as the log (whose line ends with it).
    let status = service.status();
    let component = &status["components"][0];
    assert_eq!(component["from"], "cache", "{status}");
    let runs_on = component["runs_on"].as_str().unwrap_or("?");
    assert!(board.code.ends_with(runs_on), "{status}");
}

async fn handles_mqtt_messages_from_the_host_broker(board: &Board) {
    let program = program(board, &[]);
    let broker = MosquittoBroker::start();
    let client = MqttClient::connect(broker.port, &["reply/#"]).await;
    let variable = format!("broker={}", broker.address());
    let gw = Gateway::start_with(
        &examples().join("mqtt-triggered"),
        Options {
            program: Some(&program),
            args: &["--variable", &variable],
            ..Options::default()
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !gw
        .logs()
        .lines()
        .any(|l| l.contains("MQTT trigger \"sensors\"") && l.contains("subscribed"))
    {
        assert!(std::time::Instant::now() < deadline, "{}", gw.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in 0..5 {
        client
            .publish(&format!("sensors/board{n}/temp"), 1, format!("reading {n}"))
            .await;
    }
    let want = |r: &[(String, Vec<u8>)]| {
        (0..5).all(|n| {
            r.iter().any(|(t, p)| {
                *t == format!("reply/sensors/board{n}/temp")
                    && *p == format!("reading {n}").as_bytes()
            })
        })
    };
    let received = client.wait_until(Duration::from_secs(60), want).await;
    assert!(want(&received), "{received:?}\n{}", gw.logs());
}

macro_rules! board_tests {
    ($module:ident, $board:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs the board builds: run cross/test.sh"]
            async fn serves_the_probe_app_contains_faults_and_caches_code() {
                super::serves_the_probe_app_contains_faults_and_caches_code(&$board).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs the board builds: run cross/test.sh"]
            async fn loads_code_precompiled_on_this_machine_without_compiling() {
                super::loads_code_precompiled_on_this_machine_without_compiling(&$board).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            #[ignore = "needs the board builds: run cross/test.sh"]
            async fn handles_mqtt_messages_from_the_host_broker() {
                super::handles_mqtt_messages_from_the_host_broker(&$board).await;
            }
        }
    };
}

board_tests!(aarch64, AARCH64);
board_tests!(riscv64, RISCV64);
board_tests!(armv7, ARMV7);

/// A riscv64 board with the vector extension, declared with `has_v`, gets
/// native code: Cranelift's crash is on baseline RV64GC only.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the board builds: run cross/test.sh"]
async fn riscv64_with_the_vector_extension_runs_native_code() {
    let program = program(&RISCV64, &["-cpu", "rv64,v=true"]);
    let state = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with(
        &examples().join("hello"),
        Options {
            program: Some(&program),
            args: &["--cpu-feature", "has_v"],
            state_dir: Some(state.path()),
            ..Options::default()
        },
    );
    let logs = gw.logs();
    assert!(logs.contains("to native riscv64 code"), "{logs}");
    assert!(logs.contains("extra CPU features: has_v"), "{logs}");
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
}
