//! gatewayd under a service manager, as systemd drives it: readiness and
//! the watchdog over `NOTIFY_SOCKET` (the harness plays the manager).

use std::time::Duration;

use crate::harness::{Gateway, MosquittoBroker, Options, Program, Service, ctl, examples, get, ok};

fn count(messages: &[String], line: &str) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == line))
        .count()
}

/// With `WatchdogSec=` (WATCHDOG_USEC, here 400 ms), `WATCHDOG=1` comes every
/// half interval while every serving thread answers; when one is wedged
/// (test hook), the pings stop and the log names it, so systemd restarts
/// the service.
#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_is_fed_only_while_every_serving_thread_answers() {
    let gw = wedged_after_3s("http-0", &examples().join("hello"), &[]);
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    the_watchdog_stops(&gw, "http-0");
}

/// The same for the threads the pub/sub triggers run on (started with the
/// first pub/sub trigger).
#[tokio::test(flavor = "multi_thread")]
async fn the_watchdog_is_fed_only_while_every_pubsub_thread_answers() {
    let broker = MosquittoBroker::start();
    let variable = format!("broker=mqtt://127.0.0.1:{}", broker.port);
    let app = examples().join("mqtt-triggered");
    let gw = wedged_after_3s("pubsub-0", &app, &["--variable", &variable]);
    assert!(
        gw.wait_for_log("subscribed", Duration::from_secs(10)),
        "{}",
        gw.logs()
    );
    the_watchdog_stops(&gw, "pubsub-0");
}

/// `app` under a 400 ms watchdog, with `thread` wedged (test hook) 3 s
/// after it started.
fn wedged_after_3s(thread: &str, app: &std::path::Path, args: &[&str]) -> Gateway {
    let wedge = format!("{thread}:3000");
    Gateway::start_with(
        app,
        Options {
            args,
            env: &[("WATCHDOG_USEC", "400000"), ("GATEWAYD_TEST_WEDGE", &wedge)],
            ..Options::default()
        },
    )
}

fn the_watchdog_stops(gw: &Gateway, thread: &str) {
    let _ = gw.notifications_during(Duration::ZERO);
    let healthy = gw.notifications_during(Duration::from_millis(1200));
    let pings = count(&healthy, "WATCHDOG=1");
    // Every 200 ms: 6 in 1.2 s, give or take scheduling.
    assert!((4..=7).contains(&pings), "{pings} pings: {healthy:?}");

    assert!(
        gw.wait_for_log(&format!("not answering: {thread}"), Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
    let _ = gw.notifications_during(Duration::from_millis(50));
    let wedged = gw.notifications_during(Duration::from_millis(1200));
    assert_eq!(
        count(&wedged, "WATCHDOG=1"),
        0,
        "pinged with {thread} wedged: {wedged:?}\n{}",
        gw.logs()
    );
}

/// Without WATCHDOG_USEC nothing beats and nothing is pinged; READY=1 came
/// with the address (the harness waited for it), and SIGTERM says STOPPING=1.
#[tokio::test(flavor = "multi_thread")]
async fn no_watchdog_unless_asked_and_stopping_is_announced() {
    let mut gw = Gateway::start(&examples().join("hello"));
    let quiet = gw.notifications_during(Duration::from_millis(600));
    assert_eq!(count(&quiet, "WATCHDOG=1"), 0, "{quiet:?}");
    gw.signal(libc::SIGTERM);
    let stopping = gw.notifications_during(Duration::from_millis(500));
    assert_eq!(count(&stopping, "STOPPING=1"), 1, "{stopping:?}");
    assert!(
        gw.wait(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
}

/// An update's switch is announced as systemd expects of a reload:
/// `RELOADING=1`, then `READY=1` with the new version in `STATUS=`; a
/// rollback too.
#[tokio::test(flavor = "multi_thread")]
async fn an_update_is_announced_as_a_reload() {
    let service = Service::new();
    let gw = service.start();
    // READY=1 came once, at start-up (the harness waited for it); nothing
    // more before a push.
    let startup = gw.notifications_during(Duration::from_millis(100));
    assert!(startup.is_empty(), "{startup:?}");
    ok(&service.push(&service.bundle("1.0.0", "release")));
    ok(&service.push(&service.bundle("1.1.0", "release")));
    let pushed = gw.notifications_during(Duration::from_millis(300));
    let lines: Vec<&str> = pushed.iter().flat_map(|m| m.lines()).collect();
    assert_eq!(
        lines,
        [
            "RELOADING=1",
            "READY=1",
            &format!(
                "STATUS=serving app \"hello\" version 1.0.0 (generation 1) on http://{}",
                gw.addr
            ),
            "RELOADING=1",
            "READY=1",
            &format!(
                "STATUS=serving app \"hello\" version 1.1.0 (generation 2) on http://{}",
                gw.addr
            ),
        ]
    );
    ok(&ctl(service.path(), &["rollback", "--to", &service.to()]));
    let rolled = gw.notifications_during(Duration::from_millis(300));
    assert!(
        rolled
            .concat()
            .contains("STATUS=serving app \"hello\" version 1.0.0 (generation 1)"),
        "{rolled:?}"
    );

    // The status line counts the requests answered, refreshed within 2 s.
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/hello")).await.0, 200);
    }
    let counted = gw.notifications_during(Duration::from_millis(2500));
    // One line, or two if a refresh fell between the requests.
    assert!((1..=2).contains(&counted.len()), "{counted:?}");
    assert_eq!(
        counted.last().unwrap(),
        &format!(
            "STATUS=serving app \"hello\" version 1.0.0 (generation 1) on http://{}; 3 requests served",
            gw.addr
        )
    );
}

/// Under journald (stderr is the stream JOURNAL_STREAM names), each line
/// starts with its syslog priority and has no timestamp of its own; with a
/// JOURNAL_STREAM inherited from elsewhere, lines stay plain.
#[test]
fn under_journald_lines_carry_their_priority() {
    use std::os::unix::fs::MetadataExt as _;
    let run = |journal: bool| -> String {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let meta = stderr.metadata().unwrap();
        let stream = if journal {
            format!("{}:{}", meta.dev(), meta.ino())
        } else {
            "1:1".to_string()
        };
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gatewayd"))
            .arg("up")
            .arg(examples().join("hello"))
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(crate::harness::shared_state_dir())
            .env("JOURNAL_STREAM", stream)
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut text = String::new();
        while std::time::Instant::now() < deadline && !text.contains("engine ready") {
            std::thread::sleep(Duration::from_millis(20));
            text = std::fs::read_to_string(&stderr_path).unwrap();
        }
        let _ = child.kill();
        let _ = child.wait();
        text
    };
    let journal = run(true);
    let line = journal
        .lines()
        .find(|l| l.contains("engine ready"))
        .unwrap_or_else(|| panic!("{journal}"));
    assert!(line.starts_with("<6>"), "{line}");
    assert!(!line.contains("202"), "journald adds the time: {line}");
    let plain = run(false);
    let line = plain
        .lines()
        .find(|l| l.contains("engine ready"))
        .unwrap_or_else(|| panic!("{plain}"));
    assert!(!line.starts_with('<'), "{line}");
}

/// `--log-format json` (or GATEWAYD_LOG_FORMAT=json): one JSON object per
/// log line, with its level and message.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_are_one_object_per_line() {
    let gw = Gateway::start_with(
        &examples().join("hello"),
        Options {
            env: &[("GATEWAYD_LOG_FORMAT", "json")],
            ..Options::default()
        },
    );
    assert!(gw.wait_for_log("engine ready", Duration::from_secs(5)));
    let logs = gw.logs();
    let objects: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let ready = objects
        .iter()
        .find(|o| {
            o["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("engine ready"))
        })
        .unwrap_or_else(|| panic!("{logs}"));
    assert_eq!(ready["level"], "INFO", "{ready}");
}

/// Socket activation: a listening socket passed as systemd passes it (fd 3,
/// LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID of the daemon itself) is served,
/// and the configured address is not bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_socket_passed_by_the_service_manager_is_served() {
    use std::os::fd::AsRawFd as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let fd = listener.as_raw_fd();
    // Inheritable for the moment of the spawn. bash moves it to 3 and
    // execs gatewayd in its own process, so LISTEN_PID=$$ is gatewayd's.
    // SAFETY: fcntl on our own open descriptor.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let program = Program {
        runner: vec![
            "bash".into(),
            "-c".into(),
            format!("exec 3<&{fd} {fd}<&-; LISTEN_PID=$$ exec \"$0\" \"$@\""),
        ],
        binary: None,
    };
    let gw = Gateway::start_with(
        &examples().join("hello"),
        Options {
            program: Some(&program),
            env: &[("LISTEN_FDS", "1"), ("LISTEN_FDNAMES", "http")],
            ..Options::default()
        },
    );
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    drop(listener);
    assert_eq!(gw.addr, address, "{}", gw.logs());
    assert_eq!(get(&gw.url("/hello")).await.0, 200);
    assert!(
        gw.wait_for_log("socket activation", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );

    // LISTEN_PID of another process: not ours, so gatewayd binds its own.
    let other = Gateway::start_with(
        &examples().join("hello"),
        Options {
            env: &[("LISTEN_FDS", "1"), ("LISTEN_PID", "1")],
            ..Options::default()
        },
    );
    assert!(!other.logs().contains("socket activation"));
    assert_eq!(get(&other.url("/hello")).await.0, 200);
}
