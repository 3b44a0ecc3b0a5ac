//! Board support checked on this machine: precompiling for a board with
//! `gatewayctl compile --target` (and which code each example component gets
//! on each board), bundles that ship precompiled code, used by a gateway whose
//! engine accepts it and ignored, with the reason logged, by one that does
//! not; and the board memory profile fitting a 39-bit address space.
//! The boards themselves, under QEMU, are tests/qemu.rs.

use crate::harness;

use std::path::Path;
use std::time::Duration;

use harness::{Gateway, Options, Program, Service, ctl, examples, get, ok};

const ARM64: &str = "aarch64-unknown-linux-gnu";
const RISCV64: &str = "riscv64gc-unknown-linux-gnu";
const ARMV7: &str = "armv7-unknown-linux-gnueabihf";
const X86_64: &str = "x86_64-unknown-linux-gnu";

/// `gatewayctl compile` of `component` for `target`: (stdout, stderr, code).
/// The output is a bare file name, as in the README (it once wrote the file
/// and then failed to sync its empty parent folder).
fn compile(dir: &Path, component: &str, target: &str) -> (String, String, Vec<u8>) {
    let wasm = examples().join(format!("target/wasm32-wasip2/release/{component}.wasm"));
    let name = format!("{component}-{target}.cwasm");
    let output = ctl(
        dir,
        &[
            "compile",
            "--target",
            target,
            wasm.to_str().unwrap(),
            "-o",
            &name,
        ],
    );
    let stdout = ok(&output);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    (stdout, stderr, std::fs::read(dir.join(&name)).unwrap())
}

/// Which code each example component gets on each board, compiled here.
/// riscv64 falls back to Pulley while wasmtime's Cranelift crashes on
/// baseline RV64GC (wasmtime issue #13959): when a wasmtime release fixes
/// it, this test fails, and the riscv64 expectation becomes native code.
#[test]
fn every_board_gets_the_expected_code_for_every_example_component() {
    let dir = tempfile::tempdir().unwrap();
    for component in ["hello", "hello_sdk5", "probe", "mqtt_trigger"] {
        let expected = [
            (ARM64, format!("native code for {ARM64}")),
            (RISCV64, "Pulley interpreter (pulley64)".to_string()),
            (ARMV7, "Pulley interpreter (pulley32)".to_string()),
            (X86_64, format!("native code for {X86_64}")),
        ];
        for (target, runs_on) in expected {
            let (stdout, stderr, code) = compile(dir.path(), component, target);
            assert!(
                stdout.contains(&runs_on),
                "{component} for {target}: {stdout}{stderr}"
            );
            assert!(code.starts_with(b"\x7fELF"), "{component} for {target}");
            if target == RISCV64 {
                assert!(stderr.contains("Cranelift crashed"), "{stderr}");
            }
        }
    }
}

#[test]
fn unknown_targets_and_bad_board_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = examples().join("target/wasm32-wasip2/release/hello.wasm");
    let wasm = wasm.to_str().unwrap();
    let failed = |args: &[&str]| {
        let output = ctl(dir.path(), args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&output.stderr).to_string()
    };
    let err = failed(&[
        "compile",
        "--target",
        "mips-unknown-linux-gnu",
        wasm,
        "-o",
        "x",
    ]);
    assert!(
        err.contains("unsupported target \"mips-unknown-linux-gnu\""),
        "{err}"
    );
    for (engine, problem) in [
        ("memory_reservation = \"huge\"", "engine.memory_reservation"),
        ("cpu_features = [\"has_warp\"]", "has_warp"),
    ] {
        std::fs::write(
            dir.path().join("board.toml"),
            format!("[engine]\n{engine}\n"),
        )
        .unwrap();
        let err = failed(&[
            "compile",
            "--target",
            ARM64,
            "--config",
            "board.toml",
            wasm,
            "-o",
            "x",
        ]);
        assert!(err.contains(problem), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shipped_code_that_fits_is_used_without_compiling() {
    let service = Service::new();
    let gw = service.start();
    let bundle = service.bundle_with("1.0.0", "release", &["--target", X86_64]);
    ok(&service.push(&bundle));
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert!(
        gw.wait_for_log(
            &format!("using the code precompiled for {X86_64} shipped in the bundle"),
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    let logs = gw.logs();
    assert!(
        logs.contains("loaded precompiled code from the cache"),
        "{logs}"
    );
    assert!(
        !logs.contains(" compiled "),
        "compiled on the gateway:\n{logs}"
    );
    // The operator sees the same in the status.
    let status = service.status();
    assert_eq!(
        status["components"],
        serde_json::json!([{"id": "hello", "runs_on": "native x86_64 code", "from": "cache"}]),
        "{status}"
    );
    let line = ok(&ctl(service.path(), &["status", "--to", &service.to()]));
    assert!(
        line.contains("component \"hello\": native x86_64 code, from the cache"),
        "{line}"
    );
}

/// `[update] accept_precompiled = false`: a signing key then cannot bring
/// native code; the gateway compiles the bundle's WebAssembly itself.
#[tokio::test(flavor = "multi_thread")]
async fn a_gateway_told_to_refuse_shipped_code_compiles_instead() {
    let service = Service::new();
    service.append_config("[update]\naccept_precompiled = false\n");
    let gw = service.start();
    let bundle = service.bundle_with("1.0.0", "release", &["--target", X86_64]);
    ok(&service.push(&bundle));
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert!(
        gw.wait_for_log(
            "not using the code precompiled in the bundle ([update] accept_precompiled = false)",
            Duration::from_secs(5)
        ),
        "{}",
        gw.logs()
    );
    assert!(!gw.logs().contains("using the code precompiled for"));
    assert_eq!(service.status()["components"][0]["from"], "compiled");
}

#[tokio::test(flavor = "multi_thread")]
async fn code_for_another_board_is_refused_with_the_reason_and_compiled_here() {
    let service = Service::new();
    let gw = service.start();
    let bundle = service.bundle_with("1.0.0", "release", &["--target", ARM64, "--target", ARMV7]);
    ok(&service.push(&bundle));
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    for target in [ARM64, ARMV7] {
        assert!(
            gw.wait_for_log(
                &format!("the bundle's code precompiled for {target} does not fit this gateway"),
                Duration::from_secs(5)
            ),
            "{}",
            gw.logs()
        );
    }
    assert!(
        gw.wait_for_log(" compiled ", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert_eq!(service.status()["components"][0]["from"], "compiled");
}

/// A 39-bit address space (512 GiB, common on aarch64 and riscv64 boards),
/// imitated with RLIMIT_AS: the x86_64 profile's 4 GiB reservations do not
/// fit a pool of 256 instances there, the boards' 128 MiB ones do.
#[tokio::test(flavor = "multi_thread")]
async fn the_board_memory_profile_pools_in_a_39_bit_address_space() {
    let limited = Program {
        runner: vec![
            "prlimit".into(),
            format!("--as={}", 512u64 << 30),
            "--".into(),
        ],
        binary: None,
    };
    let start = |args: &'static [&'static str]| {
        Gateway::start_with(
            &examples().join("hello"),
            Options {
                program: Some(&limited),
                args,
                ..Options::default()
            },
        )
    };
    let big = start(&["--memory-reservation", "4GiB"]);
    assert!(
        big.logs().contains("pooling allocator unavailable"),
        "{}",
        big.logs()
    );
    assert_eq!(get(&big.url("/hello")).await.0, 200);
    drop(big);
    let board = start(&["--memory-reservation", "128MiB"]);
    let logs = board.logs();
    assert!(logs.contains("pooling allocator, 256 instances"), "{logs}");
    assert!(!logs.contains("unavailable"), "{logs}");
    assert_eq!(get(&board.url("/hello")).await.0, 200);
}

/// Code compiled for CPU features the gateway's config does not list is not
/// taken, even where wasmtime would load it (on riscv64 wasmtime does not
/// check extensions at load, and such code would die with SIGILL).
#[tokio::test(flavor = "multi_thread")]
async fn shipped_code_using_cpu_features_the_gateway_does_not_list_is_refused() {
    let service = Service::new();
    let gw = service.start();
    std::fs::write(
        service.path().join("board.toml"),
        "[engine]\ncpu_features = [\"has_avx\"]\n",
    )
    .unwrap();
    let bundle = service.bundle_with(
        "1.0.0",
        "release",
        &["--target", X86_64, "--config", "board.toml"],
    );
    ok(&service.push(&bundle));
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert!(
        gw.wait_for_log("uses CPU feature has_avx", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    assert!(gw.logs().contains(" compiled "), "{}", gw.logs());
}
