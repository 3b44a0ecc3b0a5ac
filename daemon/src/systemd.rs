//! systemd's notification protocol (sd_notify), spoken only when the service
//! manager sets `NOTIFY_SOCKET`: `READY=1` once the app is loaded and every
//! listener is bound, `STATUS=` lines a person reads in `systemctl status`,
//! `RELOADING=1` ... `READY=1` around an update's switch, `STOPPING=1` at
//! shutdown, and `WATCHDOG=1` while every part of the daemon answers (with
//! `WatchdogSec=`). Unset, nothing is sent. Also socket activation: sockets
//! the manager bound and passed (`LISTEN_FDS`), so a port below 1024 needs
//! no capability in the daemon.
//!
//! Pure Rust on std's unix datagram sockets, not libsystemd: the same binary
//! runs on boards without systemd (procd, BusyBox init). The test harness
//! listens on such a socket too, so tests wait for the same readiness a
//! supervisor does.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::Duration;

use crate::liveness::Liveness;

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the service
/// manager, if there is one. Failures are logged, never fatal: a daemon must
/// not stop serving because its supervisor went away.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&path, state) {
        tracing::warn!(
            "cannot notify the service manager at {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// The line `systemctl status` shows: what is served (set at start-up and
/// by every switch), where, and how many HTTP requests have been answered.
struct StatusLine {
    serving: String,
    address: Option<SocketAddr>,
}

static STATUS: Mutex<StatusLine> = Mutex::new(StatusLine {
    serving: String::new(),
    address: None,
});

impl StatusLine {
    fn render(&self) -> String {
        let mut line = format!("serving {}", self.serving);
        if let Some(address) = self.address {
            line.push_str(&format!(" on http://{address}"));
        }
        let served = crate::trigger::http::requests_served();
        if served > 0 {
            line.push_str(&format!("; {served} requests served"));
        }
        line
    }
}

/// Sends `state` (assignments, each ending in a newline, or nothing) with
/// the status line, which now says it serves `serving` (and on `address`,
/// if given: it stays for later lines).
pub fn notify_serving(state: &str, serving: String, address: Option<SocketAddr>) {
    let line = {
        let mut status = STATUS.lock().unwrap_or_else(|e| e.into_inner());
        status.serving = serving;
        if address.is_some() {
            status.address = address;
        }
        status.render()
    };
    notify(&format!("{state}STATUS={line}"));
}

/// With a service manager listening, repeats the status line every 2 s
/// while the request count moves, so `systemctl status` shows it.
pub fn refresh_status() {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    tokio::spawn(async {
        let mut reported = crate::trigger::http::requests_served();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let served = crate::trigger::http::requests_served();
            if served != reported {
                reported = served;
                let line = STATUS.lock().unwrap_or_else(|e| e.into_inner()).render();
                notify(&format!("STATUS={line}"));
            }
        }
    });
}

/// systemd's watchdog, if the unit asks for one (`WatchdogSec=`, which sets
/// `WATCHDOG_USEC` and `WATCHDOG_PID`): `WATCHDOG=1` every half interval,
/// but only while every heart of `liveness` beat within that half. A part
/// that stops answering makes the pings stop, and systemd restarts the
/// service. The interval, or `None` with no watchdog (or one for another
/// process).
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// With a watchdog asked for, the hearts it watches (the calling runtime's
/// own, "main", is registered and beating; serving and pub/sub threads add
/// theirs) and
/// the thread that feeds it. `None` without one: nothing beats.
pub fn watchdog() -> Option<Liveness> {
    let interval = watchdog_interval()?;
    let liveness = Liveness::new(interval / 4);
    tokio::spawn(liveness.register("main").beat());
    start_watchdog(interval, liveness.clone());
    tracing::info!(
        "watchdog: pinging every {:?} while every part answers",
        interval / 2
    );
    Some(liveness)
}

/// Starts the watchdog thread for `interval` (from [`watchdog_interval`]).
fn start_watchdog(interval: Duration, liveness: Liveness) {
    let ping = interval / 2;
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut withheld = false;
            loop {
                std::thread::sleep(ping);
                let stale = liveness.stale(ping);
                if stale.is_empty() {
                    if withheld {
                        tracing::info!("every part answers again: watchdog pings resume");
                        withheld = false;
                    }
                    notify("WATCHDOG=1");
                } else if !withheld {
                    let parts: Vec<String> = stale
                        .iter()
                        .map(|(name, ago)| format!("{name} (silent for {ago:.1?})"))
                        .collect();
                    tracing::error!(
                        "not answering: {}; withholding the watchdog ping, so the service \
                         manager restarts gatewayd",
                        parts.join(", ")
                    );
                    withheld = true;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the watchdog thread: {e}");
    }
}

/// The sockets the service manager passed (socket activation), each with
/// its `FileDescriptorName=` ("unknown" when unnamed). Only for this process
/// (`LISTEN_PID`); call it once, at start-up: the descriptors are taken.
pub fn take_listen_fds() -> Vec<(String, OwnedFd)> {
    /// The first passed descriptor, by the protocol.
    const FIRST: i32 = 3;
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    let count: i32 = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if !ours || count <= 0 {
        return Vec::new();
    }
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    let mut names = names.split(':');
    (FIRST..FIRST + count)
        .map(|fd| {
            // Not for any process this one might start.
            // SAFETY: fcntl on a descriptor number; harmless if it is closed.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            let name = names
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("unknown")
                .to_string();
            // SAFETY: the manager passed `fd` to this process (LISTEN_PID)
            // for it to own, and nothing else in it uses these numbers.
            (name, unsafe { OwnedFd::from_raw_fd(fd) })
        })
        .collect()
}

/// Takes the passed socket named `name` out of `sockets`.
pub fn take_named(sockets: &mut Vec<(String, OwnedFd)>, name: &str) -> Option<OwnedFd> {
    let index = sockets.iter().position(|(n, _)| n == name)?;
    Some(sockets.remove(index).1)
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    // A manager that does not read (its queue full) must not stall an
    // update or the watchdog thread: the message is dropped, and logged.
    socket.set_nonblocking(true)?;
    let bytes = path.as_encoded_bytes();
    // "@name" is a socket in the abstract namespace (systemd uses those).
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt as _;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &address)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), "READY=1\nSTATUS=up").unwrap();
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=up");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("gatewayd-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&address).unwrap();
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = abstract_listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1");
    }

    /// A manager that stops reading must not stall the daemon: once its
    /// queue is full, messages are dropped (an error), never waited on.
    #[test]
    fn a_full_queue_drops_messages_instead_of_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let _never_read = UnixDatagram::bind(&path).unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let refused = (0..1000)
                .filter(|_| send(path.as_os_str(), "WATCHDOG=1").is_err())
                .count();
            let _ = done_tx.send(refused);
        });
        let refused = done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("sending blocked on a full queue");
        assert!(refused > 0, "the queue never filled");
    }
}
