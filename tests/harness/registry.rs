//! A real OCI registry for the fleet tests: Debian's `docker-registry` (the
//! CNCF distribution registry) on a free loopback port, plain HTTP, storage
//! in a temporary folder, optionally with htpasswd (bcrypt) users. Stopped
//! when dropped; `stop` and `start` keep the port and the stored artifacts.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::free_port;

pub struct OciRegistry {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// The access log (one line per request), across restarts.
    access: Arc<Mutex<String>>,
}

impl OciRegistry {
    pub fn start() -> OciRegistry {
        Self::start_with_user(None)
    }

    /// A registry that asks every request for `user`'s password.
    pub fn start_with_user(user: Option<(&str, &str)>) -> OciRegistry {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {d}/data\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: tests-only\n"
        );
        if let Some((name, password)) = user {
            // The registry takes bcrypt only; cost 4 keeps each request fast
            // (it checks the hash on every one).
            let hashed = Command::new("/usr/bin/python3")
                .args([
                    "-W",
                    "ignore",
                    "-c",
                    "import crypt, sys; print(crypt.crypt(sys.argv[1], \
                     crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))",
                    password,
                ])
                .output()
                .expect("python3 for the htpasswd file");
            let hashed = String::from_utf8(hashed.stdout).unwrap();
            std::fs::write(
                dir.path().join("htpasswd"),
                format!("{name}:{}\n", hashed.trim()),
            )
            .unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: gatewayd-tests\n    path: {d}/htpasswd\n"
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut registry = OciRegistry {
            child: None,
            port,
            dir,
            access: Arc::default(),
        };
        registry.spawn();
        registry
    }

    fn spawn(&mut self) {
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting docker-registry (apt-get install docker-registry)");
        let stdout = child.stdout.take().unwrap();
        let access = self.access.clone();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut log = access.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `oci://127.0.0.1:PORT/REPOSITORY:TAG`.
    pub fn address(&self, repository_and_tag: &str) -> String {
        format!("oci://127.0.0.1:{}/{repository_and_tag}", self.port)
    }

    /// The requests so far, one access-log line each.
    pub fn access_log(&self) -> String {
        self.access.lock().unwrap().clone()
    }

    /// Sends a signal (SIGSTOP freezes it mid-answer, sockets open).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`OciRegistry::stop`], same port and artifacts.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the registry is running");
        self.spawn();
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
