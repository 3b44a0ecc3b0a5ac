//! Spin variables end to end: app `[variables]` resolved from the command
//! line, the environment and defaults, rendered into component variables,
//! and read by components built with Spin SDK 5 (fermyon:spin/variables@2.0.0)
//! and SDK 7 (spin:variables/variables@3.0.0, async).

use crate::harness;

use std::process::Command;

use harness::{Gateway, Options, examples, get};

fn vars_app() -> std::path::PathBuf {
    examples().join("vars")
}

#[tokio::test(flavor = "multi_thread")]
async fn both_sdk_generations_read_their_variables() {
    let gw = Gateway::start_with(
        &vars_app(),
        Options {
            args: &["--variable", "api_key=s3cr3t-value"],
            ..Options::default()
        },
    );
    for sdk in ["v5", "v7"] {
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/greeting"))).await,
            (200, "hello".into()),
            "{sdk}"
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/api_key"))).await,
            (200, "s3cr3t-value".into()),
            "{sdk}"
        );
        assert_eq!(
            get(&gw.url(&format!("/{sdk}/location"))).await,
            (200, "region=eu".into()),
            "{sdk}"
        );
        // App variables are not visible unless the component maps them.
        let (status, body) = get(&gw.url(&format!("/{sdk}/region"))).await;
        assert_eq!(status, 404, "{sdk}: {body}");
        assert!(body.contains("Undefined"), "{sdk}: {body}");
        let (status, body) = get(&gw.url(&format!("/{sdk}/Not-A-Name"))).await;
        assert_eq!(status, 400, "{sdk}: {body}");
        assert!(body.contains("InvalidName"), "{sdk}: {body}");
    }
    assert!(
        !gw.logs().contains("s3cr3t-value"),
        "a secret reached the log:\n{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environment_provides_and_the_command_line_overrides() {
    let env = [
        ("SPIN_VARIABLE_API_KEY", "from-env"),
        ("SPIN_VARIABLE_REGION", "us"),
    ];
    let gw = Gateway::start_with(
        &vars_app(),
        Options {
            env: &env,
            ..Options::default()
        },
    );
    assert_eq!(get(&gw.url("/v5/api_key")).await, (200, "from-env".into()));
    assert_eq!(
        get(&gw.url("/v7/location")).await,
        (200, "region=us".into())
    );
    drop(gw);

    let gw = Gateway::start_with(
        &vars_app(),
        Options {
            env: &env,
            args: &["--variable", "region=ap"],
            ..Options::default()
        },
    );
    assert_eq!(
        get(&gw.url("/v7/location")).await,
        (200, "region=ap".into())
    );
}

#[test]
fn a_missing_required_variable_stops_the_start_naming_it() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatewayd"))
        .arg("up")
        .arg(vars_app())
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .env_remove("SPIN_VARIABLE_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("variable \"api_key\" is required"), "{err}");
    assert!(err.contains("--variable api_key="), "{err}");
}

#[test]
fn an_undeclared_command_line_variable_is_an_error() {
    let state = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_gatewayd"))
        .arg("up")
        .arg(vars_app())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--variable",
            "api_key=x",
            "--variable",
            "apikey=typo",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("--variable apikey"), "{err}");
}
