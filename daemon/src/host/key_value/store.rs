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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension as _, params};

/// One store file.
pub struct SqliteStore {
    path: PathBuf,
    connection: Mutex<Connection>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Arc<Self>> {
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
        Ok(Arc::new(Self {
            path: path.to_path_buf(),
            connection: Mutex::new(connection),
        }))
    }

    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        f(&connection).with_context(|| format!("key-value store {}", self.path.display()))
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c| {
            c.prepare_cached("SELECT value FROM entries WHERE key = ?1")?
                .query_row(params![key], |row| row.get(0))
                .optional()
        })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.with(|c| {
            c.prepare_cached(
                "INSERT INTO entries (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])
            .map(drop)
        })
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        self.with(|c| {
            c.prepare_cached("DELETE FROM entries WHERE key = ?1")?
                .execute(params![key])
                .map(drop)
        })
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
        let store = SqliteStore::open(&path).unwrap();
        store.set("a", b"1").unwrap();
        store.set("b", b"").unwrap();
        store.set("a", b"2").unwrap();
        assert!(store.exists("b").unwrap());
        store.delete("b").unwrap();
        store.delete("never-there").unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
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
                    let store = SqliteStore::open(&path).unwrap();
                    store.set(&format!("k{i}"), b"v").unwrap();
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(SqliteStore::open(&path).unwrap().keys().unwrap().len(), 8);
    }
}
