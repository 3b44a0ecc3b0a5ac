//! Broker and server connections shared across app generations.
//!
//! A capability that talks to a server (outbound Redis, outbound MQTT) keeps
//! one [`Pool`] for the whole process, so an update does not open a second
//! connection beside the first (two MQTT connections of one process used to
//! share a client id, and the broker kept closing one for the other). Each
//! loaded generation takes a [`Lease`]: the connections it opened stay open
//! while it lives, and a connection closes (its owner drops it) once no live
//! generation holds it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The process-wide connections of one capability, by what makes two of them
/// interchangeable (address, credentials, ...). Holds them weakly: leases keep
/// them alive.
pub struct Pool<K, V> {
    by_key: Mutex<HashMap<K, Weak<V>>>,
}

impl<K, V> Default for Pool<K, V> {
    fn default() -> Self {
        Self {
            by_key: Mutex::default(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Pool<K, V> {
    /// The live connection for `key`, if any generation holds one.
    pub fn get(&self, key: &K) -> Option<Arc<V>> {
        self.lock().get(key).and_then(Weak::upgrade)
    }

    /// Adds a connection just made. If another caller raced and added a live
    /// one first, that one is returned and `made` is dropped (closed).
    pub fn insert(&self, key: K, made: Arc<V>) -> Arc<V> {
        let mut map = self.lock();
        map.retain(|_, weak| weak.strong_count() > 0);
        if let Some(existing) = map.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        map.insert(key, Arc::downgrade(&made));
        made
    }

    /// Connections alive now.
    #[cfg(test)]
    fn live(&self) -> usize {
        self.lock()
            .values()
            .filter(|weak| weak.strong_count() > 0)
            .count()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Weak<V>>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner())
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
    /// from `pool`, else a new one from `connect`, added to the pool.
    pub async fn get_or_connect<E, F>(
        &self,
        pool: &Pool<K, V>,
        key: K,
        connect: impl FnOnce() -> F,
    ) -> Result<Arc<V>, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(held) = self.lock().get(&key) {
            return Ok(held.clone());
        }
        let connection = match pool.get(&key) {
            Some(live) => live,
            None => pool.insert(key.clone(), Arc::new(connect().await?)),
        };
        self.lock().insert(key, connection.clone());
        Ok(connection)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<V>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Connection(&'static str);

    #[tokio::test]
    async fn generations_share_a_connection_that_closes_with_the_last_of_them() {
        let pool = Pool::<&str, Connection>::default();
        let (old, new) = (Lease::default(), Lease::default());
        let made = std::sync::atomic::AtomicUsize::new(0);
        let connect = || async {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok::<_, ()>(Connection("broker"))
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

    #[tokio::test]
    async fn a_racing_second_connection_is_dropped_for_the_first() {
        let pool = Pool::<&str, Connection>::default();
        let first = pool.insert("k", Arc::new(Connection("first")));
        let second = pool.insert("k", Arc::new(Connection("second")));
        assert_eq!(second.0, "first");
        assert!(Arc::ptr_eq(&first, &second));
    }
}
