//! The embedded key-value store: one SQLite database file per store.
//!
//! SQLite because it is the most tested crash-safe storage there is, builds
//! from source (bundled) for every board target, and its files can be read
//! with the standard `sqlite3` tool when something needs inspecting. The
//! database runs in WAL mode with `synchronous = FULL`: a `set` returns only
//! once its transaction is on disk, so neither a killed process nor a power
//! cut loses a committed value.
//!
//! One connection per file, used from tokio's blocking pool (a write waits for
//! fsync; that must not stall a serving thread).
//!
//! A store is bounded ([`StoreQuota`]): a `set` that would take it past its
//! key count or its size (keys plus values, in bytes) is refused, so a
//! component cannot fill the board's flash. The usage is counted from the
//! file when it is opened and kept by this process; another process writing
//! the same file at the same time is not counted.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension as _, params};

/// How much one store may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreQuota {
    pub max_keys: u64,
    /// Keys plus values, in bytes.
    pub max_bytes: u64,
}

/// Why a `set` did not happen.
#[derive(Debug)]
pub enum SetError {
    /// The store is at its quota; the text is for the guest.
    Full(String),
    Storage(anyhow::Error),
}

/// One store file.
pub struct SqliteStore {
    path: PathBuf,
    quota: StoreQuota,
    inner: Mutex<Inner>,
}

struct Inner {
    connection: Connection,
    keys: u64,
    bytes: u64,
}

/// An entry's size as the quota counts it.
const ENTRY_SIZE: &str = "LENGTH(CAST(key AS BLOB)) + LENGTH(value)";

impl SqliteStore {
    pub fn open(path: &Path, quota: StoreQuota) -> Result<Arc<Self>> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let connection = Connection::open(path)
            .with_context(|| format!("opening key-value store {}", path.display()))?;
        // Another gatewayd on the same state dir may hold the write lock for a
        // moment (opening, or mid-transaction): wait for it rather than fail.
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .with_context(|| format!("configuring key-value store {}", path.display()))?;
        // Switching to WAL needs the database to itself and SQLite does not
        // wait for that (busy_timeout does not apply), so when several
        // processes open a new store at once, retry briefly.
        let mut attempts = 0;
        loop {
            match connection.execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS entries (
                     key TEXT PRIMARY KEY NOT NULL,
                     value BLOB NOT NULL
                 ) WITHOUT ROWID;",
            ) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempts < 100 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e)
                        .context(format!("preparing key-value store {}", path.display())));
                }
            }
        }
        let (keys, bytes): (u64, u64) = connection
            .query_row(
                &format!("SELECT COUNT(*), COALESCE(SUM({ENTRY_SIZE}), 0) FROM entries"),
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
            .with_context(|| format!("measuring key-value store {}", path.display()))?;
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            quota,
            inner: Mutex::new(Inner {
                connection,
                keys,
                bytes,
            }),
        }))
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        f(&inner.connection).with_context(|| format!("key-value store {}", self.path.display()))
    }

    fn context(&self, e: rusqlite::Error) -> anyhow::Error {
        anyhow::Error::from(e).context(format!("key-value store {}", self.path.display()))
    }

    /// The size of the entry at `key`, if there is one.
    fn entry_size(&self, connection: &Connection, key: &str) -> Result<Option<u64>> {
        connection
            .prepare_cached(&format!("SELECT {ENTRY_SIZE} FROM entries WHERE key = ?1"))
            .and_then(|mut s| {
                s.query_row(params![key], |row| row.get::<_, i64>(0))
                    .optional()
            })
            .map(|size| size.map(|n| n as u64))
            .map_err(|e| self.context(e))
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM entries WHERE key = ?1")?
                .query_row(params![key], |row| row.get(0))
                .optional()
        })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), SetError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let old = self
            .entry_size(&inner.connection, key)
            .map_err(SetError::Storage)?;
        let size = (key.len() + value.len()) as u64;
        let keys = inner.keys + u64::from(old.is_none());
        let bytes = inner.bytes - old.unwrap_or(0) + size;
        let quota = self.quota;
        if keys > quota.max_keys {
            return Err(SetError::Full(format!(
                "the store is full: it holds {} keys, its limit",
                quota.max_keys
            )));
        }
        if bytes > quota.max_bytes && bytes > inner.bytes {
            return Err(SetError::Full(format!(
                "the store is full: this value would take it to {bytes} bytes of keys and \
                 values; its limit is {}",
                quota.max_bytes
            )));
        }
        inner
            .connection
            .prepare_cached(
                "INSERT INTO entries (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![key, value]))
            .map_err(|e| SetError::Storage(self.context(e)))?;
        inner.keys = keys;
        inner.bytes = bytes;
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(size) = self.entry_size(&inner.connection, key)? else {
            return Ok(());
        };
        inner
            .connection
            .prepare_cached("DELETE FROM entries WHERE key = ?1")
            .and_then(|mut s| s.execute(params![key]))
            .map_err(|e| self.context(e))?;
        inner.keys -= 1;
        inner.bytes -= size;
        Ok(())
    }

    pub fn exists(&self, key: &str) -> Result<bool> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM entries WHERE key = ?1")?
                .exists(params![key])
        })
    }

    pub fn keys(&self) -> Result<Vec<String>> {
        self.with(|c| {
            let mut statement = c.prepare_cached("SELECT key FROM entries ORDER BY key")?;
            let keys = statement.query_map([], |row| row.get(0))?;
            keys.collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kv/default.db");
        let store = SqliteStore::open(&path, UNBOUNDED).unwrap();
        store.set("a", b"1").unwrap();
        store.set("b", b"").unwrap();
        store.set("a", b"2").unwrap();
        assert!(store.exists("b").unwrap());
        store.delete("b").unwrap();
        store.delete("never-there").unwrap();
        drop(store);
        let store = SqliteStore::open(&path, UNBOUNDED).unwrap();
        assert_eq!(store.get("a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(store.get("b").unwrap(), None);
        assert_eq!(store.keys().unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn many_processes_may_open_a_new_store_at_once() {
        // Separate connections behave like separate processes to SQLite.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = SqliteStore::open(&path, UNBOUNDED).unwrap();
                    store.set(&format!("k{i}"), b"v").unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            SqliteStore::open(&path, UNBOUNDED)
                .unwrap()
                .keys()
                .unwrap()
                .len(),
            8
        );
    }

    const UNBOUNDED: StoreQuota = StoreQuota {
        max_keys: u64::MAX,
        max_bytes: u64::MAX,
    };

    fn full(result: Result<(), SetError>) -> String {
        match result {
            Err(SetError::Full(why)) => why,
            other => panic!("not refused as full: {other:?}"),
        }
    }

    #[test]
    fn a_store_stays_within_its_quota_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let quota = StoreQuota {
            max_keys: 3,
            max_bytes: 20,
        };
        let store = SqliteStore::open(&path, quota).unwrap();
        store.set("a", b"12345").unwrap(); // 6 bytes
        store.set("b", b"12345").unwrap(); // 12
        assert!(full(store.set("c", b"123456789")).contains("20"));
        store.set("c", b"1234").unwrap(); // 17, 3 keys
        assert!(full(store.set("d", b"")).contains("3 keys"));
        // Replacing a value counts the difference; shrinking always works.
        store.set("a", b"12345678").unwrap(); // 20
        assert!(full(store.set("a", b"123456789")).contains("21 bytes"));
        store.set("a", b"").unwrap(); // 12
        store.delete("b").unwrap(); // 6, 2 keys
        store.delete("b").unwrap();
        drop(store);
        // Reopened, it counts what the file holds.
        let store = SqliteStore::open(&path, quota).unwrap();
        store.set("d", b"1234567").unwrap(); // 14, 3 keys
        assert!(full(store.set("e", b"")).contains("3 keys"));
        assert!(full(store.set("d", b"12345678901234")).contains("21 bytes"));
    }
}
