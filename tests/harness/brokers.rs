//! Real brokers for the end-to-end tests, started on free loopback ports and
//! stopped when dropped: redis-server and mosquitto, plus small clients the
//! tests use to publish and to watch what the gateway publishes.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::free_port;

/// A real redis-server on a free loopback port, stopped when dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port();
        Self::start_on(port)
    }

    /// Starts on a given port (to restart a server the gateway knew).
    pub fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (apt-get install redis-server)");
        let server = RedisServer {
            child: Some(child),
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn address(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        use std::io::{Read as _, Write as _};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real mosquitto broker on a free loopback port, stopped when dropped. It
/// persists sessions to its own folder, so a restart keeps what a persistent
/// client has not acknowledged, as a production broker would.
pub struct MosquittoBroker {
    child: Option<Child>,
    pub port: u16,
    /// The TLS listener's port, if started with [`MosquittoBroker::start_tls`].
    pub tls_port: u16,
    dir: tempfile::TempDir,
}

impl MosquittoBroker {
    pub fn start() -> MosquittoBroker {
        Self::start_with_listeners(false)
    }

    /// A broker with a second listener, on `tls_port`, speaking TLS with a
    /// certificate for `localhost` / 127.0.0.1 signed by a private CA
    /// (`ca_file`), made with the `openssl` tool.
    pub fn start_tls() -> MosquittoBroker {
        Self::start_with_listeners(true)
    }

    fn start_with_listeners(tls: bool) -> MosquittoBroker {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        // Started as root, mosquitto drops to its own user, which must still
        // be able to write its session file here and read its key.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let mut config = format!(
            "per_listener_settings false\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nsys_interval 1\nlistener {port} 127.0.0.1\n",
            dir.path().display()
        );
        let mut tls_port = 0;
        if tls {
            tls_port = free_port();
            make_certificates(dir.path());
            let d = dir.path().display();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
                 keyfile {d}/server.key\n"
            ));
        }
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = MosquittoBroker {
            child: None,
            port,
            tls_port,
            dir,
        };
        broker.spawn();
        broker
    }

    /// The private CA that signed the TLS listener's certificate.
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mosquitto (apt-get install mosquitto)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready =
            |port: u16| port == 0 || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        while !ready(self.port) || !ready(self.tls_port) {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn address(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Sends a signal to the broker (SIGSTOP freezes it with its sockets open).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// Stops the broker the way a service manager does (SIGTERM: it saves its
    /// sessions), waits `down` and starts it again on the same port.
    pub fn restart(&mut self, down: Duration) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "mosquitto did not stop");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(down);
        self.spawn();
    }

    /// Kills the broker (SIGKILL: its sessions are lost, as in a crash before
    /// it saved them), waits `down` and starts it again on the same port.
    pub fn crash_and_restart(&mut self, down: Duration) {
        self.stop();
        std::thread::sleep(down);
        self.spawn();
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MosquittoBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CA (`ca.pem`) and a server certificate for localhost and 127.0.0.1
/// (`server.pem`, `server.key`) in `dir`.
pub fn make_certificates(dir: &std::path::Path) {
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running openssl");
        assert!(status.success(), "openssl {args:?} failed");
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let run = |line: String| openssl(&line.split_whitespace().collect::<Vec<_>>());
    run(format!(
        "req -x509 {ec} -keyout ca.key -out ca.pem -days 2 -subj /CN=gatewayd-test-CA"
    ));
    run(format!(
        "req {ec} -keyout server.key -out server.csr -subj /CN=localhost"
    ));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
         -days 2 -extfile server.ext"
            .to_string(),
    );
    for file in ["server.key", "ca.key"] {
        std::fs::set_permissions(
            dir.join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
}

/// Waits (bounded) until `done` holds for what `received` holds; returns it.
async fn wait_until(
    received: &Mutex<Vec<Received>>,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    loop {
        let now = received.lock().unwrap().clone();
        if done(&now) || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One message a test client received.
pub type Received = (String, Vec<u8>);

/// A test's own MQTT client: publishes, and collects every message on the
/// filters it subscribed to (resubscribing after a broker restart).
pub struct MqttClient {
    client: rumqttc::AsyncClient,
    received: Arc<Mutex<Vec<Received>>>,
    acked: Arc<AtomicUsize>,
    sent: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl MqttClient {
    pub async fn connect(port: u16, filters: &[&str]) -> MqttClient {
        Self::connect_with(port, filters, false).await
    }

    /// [`MqttClient::connect`] with a persistent session: QoS 1/2 messages
    /// for its filters wait in the broker while it is disconnected (a broker
    /// restart, say).
    pub async fn connect_persistent(port: u16, filters: &[&str]) -> MqttClient {
        Self::connect_with(port, filters, true).await
    }

    async fn connect_with(port: u16, filters: &[&str], persistent: bool) -> MqttClient {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        options.set_max_packet_size(8 << 20, 8 << 20);
        options.set_clean_session(!persistent);
        let (client, mut events) = rumqttc::AsyncClient::new(options, 1000);
        let received = Arc::new(Mutex::new(Vec::new()));
        let acked = Arc::new(AtomicUsize::new(0));
        let subscribed = Arc::new(tokio::sync::Notify::new());
        let filters: Vec<String> = filters.iter().map(|f| f.to_string()).collect();
        let task = {
            let (client, received, acked, subscribed) = (
                client.clone(),
                received.clone(),
                acked.clone(),
                subscribed.clone(),
            );
            tokio::spawn(async move {
                use rumqttc::{Event, Packet};
                loop {
                    match events.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for f in &filters {
                                client
                                    .subscribe(f, rumqttc::QoS::AtLeastOnce)
                                    .await
                                    .unwrap();
                            }
                            if filters.is_empty() {
                                subscribed.notify_one();
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => subscribed.notify_one(),
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            received
                                .lock()
                                .unwrap()
                                .push((p.topic.clone(), p.payload.to_vec()));
                        }
                        Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                            acked.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(10), subscribed.notified())
            .await
            .expect("the test client could not connect and subscribe");
        MqttClient {
            client,
            received,
            acked,
            sent: AtomicUsize::new(0),
            task,
        }
    }

    pub async fn publish(&self, topic: &str, qos: u8, payload: impl Into<Vec<u8>>) {
        let qos = match qos {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        };
        if qos != rumqttc::QoS::AtMostOnce {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        self.client
            .publish(topic, qos, false, payload)
            .await
            .unwrap();
    }

    /// Waits until the broker acknowledged every QoS 1/2 message published.
    pub async fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.acked.load(Ordering::SeqCst) < self.sent.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the broker did not acknowledge our messages"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for what was received; returns it.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        wait_until(&self.received, timeout, done).await
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Collects every message published on some Redis channels.
pub struct RedisWatcher {
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RedisWatcher {
    pub async fn subscribe(address: &str, channels: &[&str]) -> RedisWatcher {
        use futures_util::StreamExt as _;
        let client = redis::Client::open(address).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        for c in channels {
            pubsub.subscribe(*c).await.unwrap();
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let task = {
            let received = received.clone();
            tokio::spawn(async move {
                let mut messages = pubsub.on_message();
                while let Some(m) = messages.next().await {
                    received.lock().unwrap().push((
                        m.get_channel_name().to_string(),
                        m.get_payload_bytes().to_vec(),
                    ));
                }
            })
        };
        RedisWatcher { received, task }
    }

    /// Waits (bounded) until `done` holds for what was received; returns it.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        wait_until(&self.received, timeout, done).await
    }
}

impl Drop for RedisWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PUBLISH `payload` on `channel`; returns how many subscribers got it.
/// The value of `key` in the Redis server at `address`, read directly.
pub async fn redis_get(address: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(address).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

pub async fn redis_publish(address: &str, channel: &str, payload: &[u8]) -> i64 {
    let client = redis::Client::open(address).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut connection)
        .await
        .unwrap()
}
