//! Compiled functions kept across compiles (Cranelift's incremental cache).
//!
//! The code cache ([`super::cache`]) saves a compile only when the very same
//! component comes back. A new version of a component usually changes a few
//! of its functions, and the components of one app share many (the standard
//! library, the SDK's bindings), yet each was compiled from scratch: on a
//! board that is most of an update's time and of a cold start. Cranelift can
//! reuse a function it compiled before: it keys each function by a sha256 of
//! its body and the compiler's settings (target, flags, CPU features,
//! Cranelift's version) and asks a store for the code. This module is that
//! store: one SQLite file beside the code cache, so thousands of small
//! entries cost one file, and a crash leaves either a whole transaction or
//! none (WAL).
//!
//! A [`FunctionCache`] lives for one compile: lookups read the file, new
//! functions are kept in memory and written in one transaction by
//! [`FunctionCache::finish`], which also marks what was used and drops the
//! least recently used functions past a size limit. The file is a cache:
//! one that cannot be read is deleted and started again, and a failure to
//! write costs only the next compile's time. Its entries are trusted as the
//! code cache's are (the daemon's private state folder); Cranelift checks
//! each entry's version before using it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result};
use rusqlite::{Connection, OptionalExtension as _, params};

/// Bytes of compiled functions kept by default (`[engine]
/// function_cache_size`); past the limit the least recently used go until
/// three quarters remain.
pub const DEFAULT_SIZE: u64 = 64 << 20;

/// The functions of one compile, read from and added to the file at `path`.
pub struct FunctionCache {
    path: PathBuf,
    /// Bytes of code kept (see [`DEFAULT_SIZE`]).
    limit: u64,
    db: Mutex<Connection>,
    /// Functions compiled now, by key, written by `finish` (and found by
    /// later lookups of this compile: a component may hold a function twice).
    added: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    /// Keys of the functions found in the file, marked as used by `finish`.
    touched: Mutex<Vec<Vec<u8>>>,
    lookups: AtomicUsize,
    found: AtomicUsize,
}

/// What one compile took from and gave to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    /// Functions the compile looked up.
    pub functions: usize,
    /// Of those, how many were found (not compiled again).
    pub reused: usize,
}

impl std::fmt::Debug for FunctionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FunctionCache({})", self.path.display())
    }
}

impl FunctionCache {
    /// Opens (or creates) the cache file at `path`, to hold up to `limit`
    /// bytes of code; a file that is not a readable cache is replaced by an
    /// empty one.
    pub fn open(path: &Path, limit: u64) -> Result<Self> {
        let db = match connect(path) {
            Ok(db) => db,
            Err(e) => {
                tracing::warn!(
                    "the function cache {} is unreadable ({e:#}); starting it again",
                    path.display()
                );
                Self::remove(path);
                connect(path)?
            }
        };
        Ok(Self {
            path: path.to_owned(),
            limit,
            db: Mutex::new(db),
            added: Mutex::default(),
            touched: Mutex::default(),
            lookups: AtomicUsize::new(0),
            found: AtomicUsize::new(0),
        })
    }

    /// Deletes the cache file at `path` (and SQLite's files beside it).
    pub fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(&name);
        }
    }

    /// Writes the functions compiled since `open`, marks those reused, and
    /// keeps the file within its limit. Returns what the compile reused.
    pub fn finish(&self) -> Result<Reuse> {
        let added = std::mem::take(&mut *self.added.lock().unwrap_or_else(|e| e.into_inner()));
        let touched = std::mem::take(&mut *self.touched.lock().unwrap_or_else(|e| e.into_inner()));
        let reuse = Reuse {
            functions: self.lookups.swap(0, Ordering::Relaxed),
            reused: self.found.swap(0, Ordering::Relaxed),
        };
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let now = unix_seconds();
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO functions (key, code, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET code = excluded.code, used = excluded.used",
            )?;
            for (key, code) in &added {
                insert.execute(params![key, code, now])?;
            }
            let mut touch = tx.prepare("UPDATE functions SET used = ?2 WHERE key = ?1")?;
            for key in &touched {
                touch.execute(params![key, now])?;
            }
        }
        tx.commit()?;
        prune(&db, self.limit).with_context(|| format!("pruning {}", self.path.display()))?;
        Ok(reuse)
    }
}

#[cfg(feature = "compiler")]
impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        self.lookup(key).map(std::borrow::Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        self.add(key, value);
        true
    }
}

impl FunctionCache {
    /// The code of the function keyed `key`, if a compile made it.
    pub fn lookup(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let added = self.added.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(code) = added.get(key) {
            self.found.fetch_add(1, Ordering::Relaxed);
            return Some(code.clone());
        }
        drop(added);
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let code: Option<Vec<u8>> = db
            .prepare_cached("SELECT code FROM functions WHERE key = ?1")
            .and_then(|mut select| select.query_row([key], |row| row.get(0)).optional())
            .unwrap_or_else(|e| {
                tracing::debug!("function cache lookup failed: {e}");
                None
            });
        drop(db);
        if code.is_some() {
            self.found.fetch_add(1, Ordering::Relaxed);
            self.touched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key.to_vec());
        }
        code
    }

    /// Keeps the code of a function just compiled, for `finish` to write.
    pub fn add(&self, key: &[u8], code: Vec<u8>) {
        self.added
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_vec(), code);
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    // A cache: losing the last transaction to a power cut costs a compile,
    // so no fsync per commit (NORMAL in WAL mode still never corrupts).
    // auto_vacuum takes effect only on a new file, which is when it is set.
    db.execute_batch(
        "PRAGMA auto_vacuum = INCREMENTAL;
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS functions (
             key BLOB PRIMARY KEY,
             code BLOB NOT NULL,
             used INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS functions_by_use ON functions (used);",
    )?;
    // Reading one row proves the file is a database of ours.
    db.query_row("SELECT count(*) FROM functions", [], |row| {
        row.get::<_, i64>(0)
    })?;
    Ok(db)
}

/// Past `limit` bytes of code, deletes the least recently used functions
/// until three quarters of it remain, and gives the pages back.
fn prune(db: &Connection, limit: u64) -> Result<()> {
    let total: i64 = db.query_row(
        "SELECT coalesce(sum(length(code)), 0) FROM functions",
        [],
        |row| row.get(0),
    )?;
    let total = u64::try_from(total).unwrap_or(0);
    if total <= limit {
        return Ok(());
    }
    let mut to_free = total - limit / 4 * 3;
    let mut oldest = db.prepare("SELECT rowid, length(code) FROM functions ORDER BY used")?;
    let mut doomed = Vec::new();
    let mut rows = oldest.query([])?;
    while to_free > 0
        && let Some(row) = rows.next()?
    {
        let (rowid, length): (i64, i64) = (row.get(0)?, row.get(1)?);
        doomed.push(rowid);
        to_free = to_free.saturating_sub(u64::try_from(length).unwrap_or(0));
    }
    drop(rows);
    let tx = db.unchecked_transaction()?;
    {
        let mut delete = tx.prepare("DELETE FROM functions WHERE rowid = ?1")?;
        for rowid in doomed {
            delete.execute([rowid])?;
        }
    }
    tx.commit()?;
    db.execute_batch("PRAGMA incremental_vacuum;")?;
    Ok(())
}

fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_come_back_after_finish_and_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("functions.sqlite");
        let cache = FunctionCache::open(&path, DEFAULT_SIZE).unwrap();
        assert!(cache.lookup(b"k1").is_none());
        cache.add(b"k1", b"code one".to_vec());
        // A second copy of a function in the same compile is found.
        assert_eq!(cache.lookup(b"k1").as_deref(), Some(&b"code one"[..]));
        assert_eq!(
            cache.finish().unwrap(),
            Reuse {
                functions: 2,
                reused: 1
            }
        );
        let cache = FunctionCache::open(&path, DEFAULT_SIZE).unwrap();
        assert_eq!(cache.lookup(b"k1").as_deref(), Some(&b"code one"[..]));
        assert!(cache.lookup(b"k2").is_none());
        assert_eq!(
            cache.finish().unwrap(),
            Reuse {
                functions: 2,
                reused: 1
            }
        );
    }

    #[test]
    fn a_file_that_is_not_a_cache_is_started_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("functions.sqlite");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let cache = FunctionCache::open(&path, DEFAULT_SIZE).unwrap();
        assert!(cache.lookup(b"k").is_none());
        cache.add(b"k", b"v".to_vec());
        cache.finish().unwrap();
        let cache = FunctionCache::open(&path, DEFAULT_SIZE).unwrap();
        assert_eq!(cache.lookup(b"k").as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn past_the_limit_the_least_recently_used_go() {
        let dir = tempfile::tempdir().unwrap();
        let db = connect(&dir.path().join("functions.sqlite")).unwrap();
        for (key, used) in [(&b"old"[..], 1), (b"mid", 2), (b"new", 3)] {
            db.execute(
                "INSERT INTO functions (key, code, used) VALUES (?1, ?2, ?3)",
                params![key, vec![0u8; 1000], used],
            )
            .unwrap();
        }
        prune(&db, 4000).unwrap();
        let count = |db: &Connection| -> i64 {
            db.query_row("SELECT count(*) FROM functions", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&db), 3, "within the limit: nothing goes");
        // 3000 bytes against a limit of 2000: down to 1500, the two oldest go.
        prune(&db, 2000).unwrap();
        let left: Vec<Vec<u8>> = db
            .prepare("SELECT key FROM functions")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(left, vec![b"new".to_vec()]);
    }
}
