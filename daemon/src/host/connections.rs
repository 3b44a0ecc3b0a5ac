//! Broker and server connections shared across app generations.
//!
//! A capability that talks to a server (outbound Redis, outbound MQTT) keeps
//! one [`Pool`] for the whole process, so an update does not open a second
//! connection beside the first (two MQTT connections of one process used to
//! share a client id, and the broker kept closing one for the other). Each
//! loaded generation takes a [`Lease`]: the connections it opened stay open
//! while it lives, and a connection closes (its owner drops it) once no live
//! generation holds it.
//!
//! A pool is bounded: components choose addresses and credentials, so without
//! a limit one component could open a socket (and, for MQTT, a thread) per
//! request. Connections being made count against the limit too.
//!
//! A pooled entry may hold one connection per thread ([`PerThread`]): a
//! connection's driver task runs on the thread that made it, and an instance
//! on another thread would wake that thread for every command it sends.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

/// The process-wide connections of one capability, by what makes two of them
/// interchangeable (address, credentials, ...). Holds them weakly: leases keep
/// them alive.
pub struct Pool<K, V> {
    state: Mutex<PoolState<K, V>>,
    limit: usize,
}

struct PoolState<K, V> {
    by_key: HashMap<K, Weak<V>>,
    /// Connections being made now.
    connecting: usize,
}

/// A new connection was refused: the pool holds `limit` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolFull {
    pub limit: usize,
}

impl std::fmt::Display for PoolFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many open connections: the gateway connects to at most {} servers per \
             capability (a server being one address and identity)",
            self.limit
        )
    }
}

impl<K: Eq + Hash + Clone, V> Pool<K, V> {
    /// A pool of at most `limit` connections, live or being made.
    pub fn new(limit: usize) -> Self {
        Self {
            state: Mutex::new(PoolState {
                by_key: HashMap::new(),
                connecting: 0,
            }),
            limit,
        }
    }

    /// The live connection for `key`, if any generation holds one.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().by_key.get(key).and_then(Weak::upgrade)
    }

    /// Reserves room for one connection to be made; the reservation ends when
    /// the returned guard drops (after `insert`, or when connecting failed).
    fn reserve(&self) -> Result<Reservation<'_, K, V>, PoolFull> {
        let mut state = self.lock();
        state.by_key.retain(|_, weak| weak.strong_count() > 0);
        if state.by_key.len() + state.connecting >= self.limit {
            return Err(PoolFull { limit: self.limit });
        }
        state.connecting += 1;
        Ok(Reservation { pool: self })
    }

    /// Adds a connection just made. If another caller raced and added a live
    /// one first, that one is returned and `made` is dropped (closed).
    pub fn insert(&self, key: K, made: Arc<V>) -> Arc<V> {
        let mut state = self.lock();
        state.by_key.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = state.by_key.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        state.by_key.insert(key, Arc::downgrade(&made));
        made
    }

    /// Connections alive now.
    pub fn live(&self) -> usize {
        self.live_values().len()
    }

    /// The connections alive now.
    pub fn live_values(&self) -> Vec<Arc<V>> {
        self.lock()
            .by_key
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, PoolState<K, V>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Room for one connection being made.
struct Reservation<'p, K: Eq + Hash + Clone, V> {
    pool: &'p Pool<K, V>,
}

impl<K: Eq + Hash + Clone, V> Drop for Reservation<'_, K, V> {
    fn drop(&mut self) {
        self.pool.lock().connecting -= 1;
    }
}

/// The connections one app generation uses: they stay open while it lives.
pub struct Lease<K, V> {
    held: Mutex<HashMap<K, Arc<V>>>,
}

impl<K, V> Default for Lease<K, V> {
    fn default() -> Self {
        Self {
            held: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Lease<K, V> {
    /// The connection for `key`: one this generation holds, else a live one
    /// from `pool`, else a new one from `connect`, added to the pool if it
    /// has room.
    pub async fn get_or_connect<E, F>(
        &self,
        pool: &Pool<K, V>,
        key: K,
        connect: impl FnOnce() -> F,
    ) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
        E: From<PoolFull>,
    {
        if let Some(held) = self.lock().get(&key) {
            return Ok(held.clone());
        }
        let connection = match pool.get(&key) {
            Some(live) => live,
            None => {
                let _room = pool.reserve()?;
                pool.insert(key.clone(), Arc::new(connect().await?))
            }
        };
        self.lock().insert(key, connection.clone());
        Ok(connection)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<V>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One value per thread that asked for one, made on that thread's first use:
/// a server's connections, one for each thread whose instances use the
/// server. Those threads are few and fixed (a serving and a pub/sub thread per
/// core, and the main runtime's workers, where update health checks run), so
/// this stays small; a thread's value lives as long as the entry.
pub struct PerThread<V> {
    by_thread: Mutex<HashMap<ThreadId, V>>,
}

impl<V: Clone> PerThread<V> {
    /// Holds `first`, made on the current thread.
    pub fn new(first: V) -> Self {
        let by_thread = HashMap::from([(std::thread::current().id(), first)]);
        Self {
            by_thread: Mutex::new(by_thread),
        }
    }

    /// The current thread's value, made by `make` if it has none yet. Two
    /// tasks of one thread racing to make it keep the first one made.
    pub async fn get_or_make<E, F>(&self, make: impl FnOnce() -> F) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        let thread = std::thread::current().id();
        if let Some(value) = self.lock().get(&thread) {
            return Ok(value.clone());
        }
        let made = make().await?;
        Ok(self.lock().entry(thread).or_insert(made).clone())
    }

    /// Values held, one per thread.
    pub fn count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ThreadId, V>> {
        self.by_thread.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Connection(&'static str);

    #[derive(Debug, PartialEq)]
    struct Full(usize);

    impl From<PoolFull> for Full {
        fn from(e: PoolFull) -> Self {
            Full(e.limit)
        }
    }

    #[tokio::test]
    async fn generations_share_a_connection_that_closes_with_the_last_of_them() {
        let pool = Pool::<&str, Connection>::new(4);
        let (old, new) = (Lease::default(), Lease::default());
        let made = std::sync::atomic::AtomicUsize::new(0);
        let connect = || async {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, Full>(Connection("broker"))
        };
        let a = old.get_or_connect(&pool, "k", connect).await.unwrap();
        let b = new.get_or_connect(&pool, "k", connect).await.unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "the new generation reuses the connection"
        );
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
        drop((a, b));
        drop(old);
        assert_eq!(pool.live(), 1, "the new generation still holds it");
        drop(new);
        assert_eq!(pool.live(), 0, "no generation holds it: closed");
        let lease = Lease::default();
        let c = lease.get_or_connect(&pool, "k", connect).await.unwrap();
        assert_eq!(c.0, "broker");
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn each_thread_makes_its_own_value_once() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        let make = |name: &'static str| {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { Ok::<_, Full>(name) }
        };
        let on_this_thread = |per_thread: &PerThread<&'static str>, name| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(per_thread.get_or_make(|| make(name)))
        };
        let per_thread = PerThread::new("main");
        assert_eq!(on_this_thread(&per_thread, "again"), Ok("main"));
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 0);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                assert_eq!(on_this_thread(&per_thread, "other"), Ok("other"));
                assert_eq!(on_this_thread(&per_thread, "twice"), Ok("other"));
            });
        });
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert_eq!(per_thread.count(), 2);
        assert_eq!(on_this_thread(&per_thread, "again"), Ok("main"));
    }

    #[tokio::test]
    async fn a_racing_second_connection_is_dropped_for_the_first() {
        let pool = Pool::<&str, Connection>::new(4);
        let first = pool.insert("k", Arc::new(Connection("first")));
        let second = pool.insert("k", Arc::new(Connection("second")));
        assert_eq!(second.0, "first");
        assert!(Arc::ptr_eq(&first, &second));
    }

    #[tokio::test]
    async fn the_pool_is_bounded_and_frees_room_as_connections_close() {
        let pool = Pool::<&str, Connection>::new(2);
        let lease = Lease::default();
        let connect = || async { Ok::<_, Full>(Connection("c")) };
        lease.get_or_connect(&pool, "a", connect).await.unwrap();
        lease.get_or_connect(&pool, "b", connect).await.unwrap();
        assert_eq!(
            lease.get_or_connect(&pool, "c", connect).await.err(),
            Some(Full(2))
        );
        // A key already open is not a new connection.
        assert!(lease.get_or_connect(&pool, "a", connect).await.is_ok());
        // A failed attempt gives its room back.
        let other = Lease::default();
        drop(lease);
        let failing = || async { Err::<Connection, _>(Full(0)) };
        assert_eq!(
            other.get_or_connect(&pool, "x", failing).await.err(),
            Some(Full(0))
        );
        other.get_or_connect(&pool, "x", connect).await.unwrap();
        other.get_or_connect(&pool, "y", connect).await.unwrap();
    }
}
