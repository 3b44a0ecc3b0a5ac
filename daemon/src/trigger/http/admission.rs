//! Who may hold an HTTP connection: a process-wide cap sized from the
//! open-file limit, and a share of it per client address.
//!
//! A connection costs a file descriptor and a buffer for as long as the
//! client keeps it, and hyper only drops a silent one after the header read
//! timeout. Without a cap tied to the descriptor limit, 1024 idle connections
//! (the default soft limit a service gets) left no descriptor for the admin
//! socket, broker reconnects or the key-value store; without a per-client
//! share, one host holding every slot shut every other client out for as long
//! as it liked. Now the connections stay under a quarter of the limit, and one
//! address holds at most a quarter of those: it gets its connections closed
//! at once beyond that, while the others keep being served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at once, whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 1024;

/// The connection caps for this process.
#[derive(Debug)]
pub struct Admission {
    total: usize,
    per_client: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
    /// When a refusal was last logged (one line per [`REFUSAL_LOG_INTERVAL`]).
    last_logged: Mutex<Option<Instant>>,
}

const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One admitted connection; gives its client's share back when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    /// Caps sized from this process's soft open-file limit.
    pub fn for_this_process() -> Arc<Self> {
        Arc::new(Self::sized(open_file_limit()))
    }

    fn sized(open_file_limit: usize) -> Self {
        let total = (open_file_limit / 4).clamp(4, MAX_CONNECTIONS);
        Self {
            total,
            per_client: (total / 4).max(1),
            held: Mutex::new(HashMap::new()),
            last_logged: Mutex::new(None),
        }
    }

    /// Connections the process serves at once (the rest wait in the kernel's
    /// accept queue, costing no descriptor).
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// Admits one more connection from `client`, or `None` when that address
    /// already holds its share.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<Ticket> {
        let client = client.to_canonical();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(client).or_insert(0);
        if *count >= self.per_client {
            drop(held);
            self.log_refusal(client);
            return None;
        }
        *count += 1;
        Some(Ticket {
            admission: self.clone(),
            client,
        })
    }

    /// A flood of refusals is one warning per interval, not one per connection.
    fn log_refusal(&self, client: IpAddr) {
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                %client,
                "closing connections from {client}: it already holds {} (the most one client may; \
                 {} in all)",
                self.per_client,
                self.total
            );
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut held = self
            .admission
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.client);
            }
        }
    }
}

/// The soft `RLIMIT_NOFILE`, or 1024 (the usual default) if it cannot be read.
fn open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct, which `limit` is.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        let default = Admission::sized(1024);
        assert_eq!((default.total(), default.per_client()), (256, 64));
        let raised = Admission::sized(1 << 20);
        assert_eq!((raised.total(), raised.per_client()), (1024, 256));
        let tiny = Admission::sized(8);
        assert_eq!((tiny.total(), tiny.per_client()), (4, 1));
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let admission = Arc::new(Admission::sized(64));
        let greedy: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let held: Vec<_> = (0..4).map(|_| admission.admit(greedy).unwrap()).collect();
        assert!(admission.admit(greedy).is_none());
        // The same address written as IPv4-mapped IPv6 is the same client.
        assert!(
            admission
                .admit("::ffff:192.0.2.1".parse().unwrap())
                .is_none()
        );
        assert!(admission.admit(other).is_some());
        drop(held);
        assert!(admission.admit(greedy).is_some());
        assert!(admission.held.lock().unwrap().is_empty());
    }
}
