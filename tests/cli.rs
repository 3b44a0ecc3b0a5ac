//! The command line: start-up errors name the problem and the place, the
//! compiled-code cache makes a second start compile nothing, and `--help`
//! explains with examples.

use crate::harness;

use std::process::Command;
use std::time::Duration;

use harness::{Gateway, Options, examples};

/// Options for a gateway on the private state dir `state`.
fn in_state(state: &tempfile::TempDir) -> Options<'_> {
    Options {
        state_dir: Some(state.path()),
        ..Options::default()
    }
}

fn gatewayd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gatewayd"))
}

#[test]
fn second_start_loads_compiled_code_from_the_cache() {
    let state = tempfile::tempdir().unwrap();
    let app = examples().join("hello");
    let options = || in_state(&state);
    let first = Gateway::start_with(&app, options());
    // Compiling is logged before the banner; the log thread may lag a little.
    assert!(
        first.wait_for_log(": compiled ", Duration::from_secs(5)),
        "{}",
        first.logs()
    );
    drop(first);
    let second = Gateway::start_with(&app, options());
    assert!(
        second.wait_for_log(
            "loaded precompiled code from the cache",
            Duration::from_secs(5)
        ),
        "{}",
        second.logs()
    );
    assert!(
        !second.logs().contains(": compiled "),
        "compiled again:\n{}",
        second.logs()
    );
}

/// `bytes` (a component) with a custom section appended: the same code under
/// another sha256, as a rebuild that changed only metadata gives.
fn with_custom_section(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let name = b"gatewayd-test";
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes only");
    let mut out = bytes.to_vec();
    out.extend([0, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(payload);
    out
}

/// "reusing N of its M functions" of the log's compile line, as (N, M).
fn reused_functions(gw: &Gateway) -> Option<(usize, usize)> {
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains(": compiled "))?;
    let rest = line.split("reusing ").nth(1)?;
    let mut words = rest.split(' ');
    let reused = words.next()?.parse().ok()?;
    let total = words.nth(2)?.parse().ok()?;
    Some((reused, total))
}

#[test]
fn a_changed_component_reuses_the_functions_compiled_before() {
    let state = tempfile::tempdir().unwrap();
    let app = tempfile::tempdir().unwrap();
    let wasm =
        std::fs::read(examples().join("target/wasm32-wasip2/release/hello_wstd.wasm")).unwrap();
    std::fs::write(
        app.path().join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\n\
         route = \"/\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n",
    )
    .unwrap();
    let start = |version: &[u8], args: &'static [&'static str]| {
        std::fs::write(
            app.path().join("c.wasm"),
            with_custom_section(&wasm, version),
        )
        .unwrap();
        let gw = Gateway::start_with(
            app.path(),
            Options {
                args,
                ..in_state(&state)
            },
        );
        assert!(
            gw.wait_for_log(": compiled ", Duration::from_secs(5)),
            "{}",
            gw.logs()
        );
        gw
    };
    let functions = state.path().join("cache/functions.sqlite");
    // A first compile reuses only what the component holds twice.
    let first = start(b"1", &[]);
    assert!(
        reused_functions(&first).is_none_or(|(reused, total)| reused < total),
        "{}",
        first.logs()
    );
    drop(first);
    assert!(functions.exists());
    // Not in the code cache (another sha256), yet its functions are known:
    // about 95 % of them (a few come out of each process with another key),
    // against under 40 % without the first compile's.
    let second = start(b"2", &[]);
    let (reused, total) = reused_functions(&second).unwrap_or_else(|| panic!("{}", second.logs()));
    assert!(total > 100, "{}", second.logs());
    assert!(reused * 10 >= total * 9, "{}", second.logs());
    drop(second);
    // Turned off: compiled from scratch, and the file goes.
    let third = start(b"3", &["--function-cache-size", "0"]);
    assert_eq!(reused_functions(&third), None, "{}", third.logs());
    assert!(!functions.exists());
}

#[test]
fn a_corrupt_cache_entry_is_recompiled_not_fatal() {
    let state = tempfile::tempdir().unwrap();
    let app = examples().join("hello");
    let options = || in_state(&state);
    drop(Gateway::start_with(&app, options())); // fills the cache
    for entry in std::fs::read_dir(state.path().join("cache")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::write(&path, b"not a compiled component").unwrap();
    }
    let gw = Gateway::start_with(&app, options());
    assert!(
        gw.wait_for_log("ignoring unreadable cache entry", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// Compiled code is loaded only from folders nobody else can write: a cache
/// entry made writable by others (after a first start made it) stops the
/// next start, naming the file; the daemon makes its own files private.
#[test]
fn a_code_file_others_can_write_stops_the_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let state = tempfile::tempdir().unwrap();
    let app = examples().join("hello");
    let options = || in_state(&state);
    drop(Gateway::start_with(&app, options())); // fills the cache
    let entry = std::fs::read_dir(state.path().join("cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "cache entry made with mode {mode:o}");
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let error = Gateway::try_start(&app, options())
        .err()
        .expect("started with a cache entry others can write");
    assert!(
        error.contains(&entry.display().to_string())
            && error.contains("not writable by group or others"),
        "{error}"
    );
}

/// Runs `gatewayd up` on a manifest written from `toml` and returns its stderr.
fn start_error(toml: &str, files: &[(&str, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), toml).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let output = gatewayd()
        .arg("up")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "started despite a bad app");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const HEAD: &str = "spin_manifest_version = 2\n[application]\nname = \"bad\"\n";

#[test]
fn a_missing_component_file_is_named() {
    let err = start_error(
        &format!(
            "{HEAD}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
             [component.hello]\nsource = \"target/x.wasm\"\n"
        ),
        &[],
    );
    assert!(err.contains("component \"hello\""), "{err}");
    assert!(err.contains("target/x.wasm"), "{err}");
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let err = start_error(&format!("{HEAD}colour = \"blue\"\n"), &[]);
    assert!(err.contains("spin.toml"), "{err}");
    assert!(err.contains("colour"), "{err}");
    assert!(err.contains("line 4"), "{err}");
}

#[test]
fn a_file_that_is_not_a_component_is_a_clear_error() {
    let err = start_error(
        &format!(
            "{HEAD}[[trigger.http]]\nroute = \"/...\"\ncomponent = \"junk\"\n\
             [component.junk]\nsource = \"junk.wasm\"\n"
        ),
        &[("junk.wasm", b"\0asm\x01\0\0\0")],
    );
    assert!(err.contains("component \"junk\""), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_missing_app_says_what_to_pass() {
    let dir = tempfile::tempdir().unwrap();
    let output = gatewayd().arg("up").arg(dir.path()).output().unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("no spin.toml found"), "{err}");
}

#[test]
fn help_explains_with_examples() {
    let output = gatewayd().args(["up", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in [
        "--listen",
        "--state-dir",
        "--max-instance-memory",
        "--request-timeout",
        "--env",
        "Examples:",
    ] {
        assert!(help.contains(needle), "missing {needle} in:\n{help}");
    }
    // Every network command says both forms of --to.
    for command in [&["status"][..], &["rollback"], &["push", "bundle"]] {
        let output = std::process::Command::new(harness::gatewayctl())
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(
            help.contains("unix:///PATH") && help.contains("https://HOST:PORT"),
            "gatewayctl {command:?} --help:\n{help}"
        );
    }
}

#[test]
fn a_taken_port_is_an_error_not_a_shared_port() {
    let first = Gateway::start(&examples().join("hello"));
    let state = tempfile::tempdir().unwrap();
    let output = gatewayd()
        .arg("up")
        .arg(examples().join("hello"))
        .args(["--listen", &first.addr.to_string(), "--state-dir"])
        .arg(state.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "a second gateway shares the port");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("listening on {}", first.addr)),
        "{err}"
    );
    assert!(err.contains("in use"), "{err}");
}
