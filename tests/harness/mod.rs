//! Test harness for the end-to-end tests: builds the example components,
//! starts `gatewayd` as a real process on a free loopback port, and gives the
//! tests its address and its log.
//!
//! Every wait here is bounded, so a broken gateway fails a test instead of
//! hanging it.

mod brokers;
mod registry;
mod scrape;
mod service;

pub use brokers::*;
pub use registry::*;
pub use scrape::*;
pub use service::*;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a gateway may take to become ready (includes compiling components
/// on a cold cache in a debug build).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The examples folder, with every example component built (once per test
/// binary; `examples/build.sh` is a no-op when they are up to date).
pub fn examples() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = repo_root().join("examples");
    BUILT.get_or_init(|| {
        run_bounded(
            Command::new("bash").arg(dir.join("build.sh")),
            BUILD_TIMEOUT,
        )
    });
    dir
}

/// examples/hello-py, built (once per test binary: its build makes the
/// virtual environment with componentize-py and Spin's Python SDK, which two
/// tests building at once would race on).
pub fn hello_py() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let dir = repo_root().join("examples/hello-py");
    BUILT.get_or_init(|| {
        run_bounded(
            Command::new("bash").arg(dir.join("build.sh")),
            BUILD_TIMEOUT,
        )
    });
    dir
}

/// The `gatewayctl` to drive the gateway with: its own package, so cargo
/// does not build it for this package's tests. Built here the first time a
/// test asks (cargo's no-op check after that), in the target folder and
/// profile of the `gatewayd` under test.
pub fn gatewayctl() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        run_bounded(
            Command::new(cargo)
                .args(["build", "-q", "-p", "gatewayctl", "--bin", "gatewayctl"])
                .current_dir(repo_root()),
            BUILD_TIMEOUT,
        );
        let path = Path::new(env!("CARGO_BIN_EXE_gatewayd")).with_file_name("gatewayctl");
        assert!(
            path.exists(),
            "{} is missing after building gatewayctl (is CARGO_TARGET_DIR the one gatewayd was built in?)",
            path.display()
        );
        path
    })
}

/// How long building the example components may take (a cold build with the
/// SDKs' dependencies, or a Python component with pip installing its tools).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs a build command to completion, failing the test if it fails or takes
/// longer than `timeout`.
pub fn run_bounded(command: &mut Command, timeout: Duration) {
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{command:?} failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{command:?} took longer than {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running `gatewayd up` or `gatewayd serve`. Killed when dropped.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    /// The threads that copy its stdout and stderr into `log`.
    log_readers: Vec<JoinHandle<()>>,
    /// What gatewayd sent on its sd_notify socket since the last look; a
    /// thread drains the socket as a service manager does (a full queue
    /// would make gatewayd drop messages).
    notifications: Arc<Mutex<Vec<String>>>,
    /// Holds the socket's folder.
    _notify_dir: tempfile::TempDir,
}

/// The state dir shared by the gateways of one test binary.
pub fn shared_state_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// How to run gatewayd: this build, or a board build under an emulator.
#[derive(Clone, Debug, Default)]
pub struct Program {
    /// Command line prefix, e.g. `qemu-aarch64-static -L /usr/aarch64-linux-gnu`.
    pub runner: Vec<String>,
    /// The gatewayd binary; by default the one cargo built for these tests.
    pub binary: Option<PathBuf>,
}

impl Program {
    pub fn command(&self) -> Command {
        let binary = self
            .binary
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_gatewayd")));
        match self.runner.split_first() {
            Some((runner, args)) => {
                let mut command = Command::new(runner);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        }
    }
}

/// Options for [`Gateway::start_with`].
#[derive(Default)]
pub struct Options<'a> {
    /// What to run; by default this build of gatewayd.
    pub program: Option<&'a Program>,
    pub args: &'a [&'a str],
    /// State dir to use; by default one shared by every gateway of this test
    /// binary, so components are compiled once per binary, not once per test.
    pub state_dir: Option<&'a Path>,
    /// Extra environment variables for the gateway process.
    pub env: &'a [(&'a str, &'a str)],
}

impl Gateway {
    pub fn start(app: &Path) -> Gateway {
        Self::start_with(app, Options::default())
    }

    pub fn start_with(app: &Path, options: Options<'_>) -> Gateway {
        Self::try_start(app, options).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Starts gatewayd; on failure returns its exit status and log.
    pub fn try_start(app: &Path, options: Options<'_>) -> Result<Gateway, String> {
        let state_dir = options
            .state_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| shared_state_dir().to_path_buf());
        let mut command = options.program.cloned().unwrap_or_default().command();
        command
            .arg("up")
            .arg(app)
            .args(["--listen", "127.0.0.1:0", "--state-dir"])
            .arg(&state_dir)
            .args(options.args)
            .envs(options.env.iter().copied());
        Self::launch(command)
    }

    /// Starts `gatewayd serve --config CONFIG` with `program` (the config
    /// should listen on 127.0.0.1:0).
    pub fn serve_with(
        program: &Program,
        config: &Path,
        env: &[(&str, &str)],
    ) -> Result<Gateway, String> {
        let mut command = program.command();
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied());
        Self::launch(command)
    }

    /// Runs `command` until it notifies readiness the way systemd hears it
    /// (`READY=1` on `NOTIFY_SOCKET`, with the address in `STATUS=`): the
    /// app is loaded and every listener bound.
    fn launch(mut command: Command) -> Result<Gateway, String> {
        let notify_dir = tempfile::tempdir().expect("temp dir");
        let notify_path = notify_dir.path().join("notify");
        let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
        // Reachable by a gateway that runs as another user (the installed
        // package's test runs it as user gatewayd).
        use std::os::unix::fs::PermissionsExt as _;
        for (path, mode) in [(notify_dir.path(), 0o755), (notify_path.as_path(), 0o777)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        notify
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        if !command.get_envs().any(|(name, _)| name == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child = command
            .env("NOTIFY_SOCKET", &notify_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting gatewayd");

        let log = Arc::new(Mutex::new(String::new()));
        // Both pipes are drained by threads for the whole life of the process,
        // so a chatty gateway never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log_readers = vec![
            copy_lines(stdout, log.clone()),
            copy_lines(stderr, log.clone()),
        ];

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut buffer = [0u8; 4096];
        loop {
            if let Ok(n) = notify.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).to_string();
                if message.lines().any(|l| l == "READY=1") {
                    let address = message
                        .split("http://")
                        .nth(1)
                        .and_then(|rest| rest.split_whitespace().next())
                        .and_then(|address| address.parse().ok());
                    let Some(addr) = address else {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(format!("READY=1 without an address: {message:?}"));
                    };
                    let notifications = Arc::new(Mutex::new(Vec::new()));
                    std::thread::spawn({
                        let notifications = Arc::downgrade(&notifications);
                        move || {
                            // Ends with the Gateway (and its socket folder).
                            while let Some(received) = notifications.upgrade() {
                                if let Ok(n) = notify.recv(&mut buffer) {
                                    let text = String::from_utf8_lossy(&buffer[..n]).to_string();
                                    received.lock().unwrap().push(text);
                                }
                            }
                        }
                    });
                    return Ok(Gateway {
                        child: Some(child),
                        addr,
                        log,
                        log_readers,
                        notifications,
                        _notify_dir: notify_dir,
                    });
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                finish_reading(&log_readers);
                return Err(format!(
                    "gatewayd exited with {status} before it was ready:\n{}",
                    log.lock().unwrap()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "gatewayd not ready after {READY_TIMEOUT:?}:\n{}",
                    log.lock().unwrap()
                ));
            }
        }
    }

    /// The sd_notify messages not looked at yet, and those gatewayd sends
    /// during the next `window`.
    pub fn notifications_during(&self, window: Duration) -> Vec<String> {
        std::thread::sleep(window);
        std::mem::take(&mut *self.notifications.lock().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn logs(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.logs().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (bounded) until one line of the log contains every one of
    /// `parts` (a trigger's name and the state it reached, say).
    pub fn wait_for_line(&self, parts: &[&str], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let logs = self.logs();
            if logs.lines().any(|l| parts.iter().all(|p| l.contains(p))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid() as i32, signal) };
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                finish_reading(&self.log_readers);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A thread that appends each line `pipe` gives to `log` until it closes.
fn copy_lines(
    pipe: impl std::io::Read + Send + 'static,
    log: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            log.lock().unwrap().push_str(&format!("{line}\n"));
        }
    })
}

/// Once the process has exited, waits (bounded) for its last lines to reach
/// the log, so a test that looks at the log after an exit sees all of it.
fn finish_reading(readers: &[JoinHandle<()>]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && !readers.iter().all(JoinHandle::is_finished) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A capability's connection pool refused a new connection: the example
/// component answered 502 with the guest error, and the log says why.
pub fn assert_too_many_connections(gw: &Gateway, (status, body): (u16, String)) {
    assert_eq!(
        (status, body.as_str()),
        (502, "error=Error::TooManyConnections"),
        "{}",
        gw.logs()
    );
    // The log is read by another thread: the line may land just after the
    // response does.
    assert!(
        gw.wait_for_log("too many open connections", Duration::from_secs(5)),
        "{}",
        gw.logs()
    );
}

/// An HTTP client with a bounded timeout per request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// GET `url` and return (status, body).
pub async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.expect("request failed");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
