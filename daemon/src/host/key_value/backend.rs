//! Where a store's data lives: the embedded SQLite file, or a Redis server
//! named in the runtime config (`type = "redis"`, `url = "redis://..."`).
//! Both answer the same five operations; the capability does not care which.

use std::sync::Arc;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::store::SetError;
use super::{Failure, SqliteStore, blocking};

#[derive(Clone)]
pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    Redis(Arc<RedisStore>),
}

/// A Redis server used as a key-value store. Connected on first use, so a
/// server that is down at start-up fails requests, not the start.
pub struct RedisStore {
    url: String,
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl RedisStore {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("\"{url}\" is not a Redis URL: {e}"))?;
        Ok(Self {
            url: url.to_string(),
            client,
            connection: OnceCell::new(),
        })
    }

    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, Failure> {
        let manager = self
            .connection
            .get_or_try_init(|| self.client.get_connection_manager())
            .await
            .map_err(|e| {
                Failure::Other(format!("cannot connect to the store's Redis server: {e}"))
            })?;
        let mut connection = manager.clone();
        command.query_async(&mut connection).await.map_err(|e| {
            tracing::error!(url = %self.url, "key-value store on Redis failed: {e}");
            Failure::Other(format!("the store's Redis server failed: {e}"))
        })
    }
}

impl Backend {
    pub(super) async fn get(&self, key: String) -> Result<Option<Vec<u8>>, Failure> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.get(&key)).await
            }
            Backend::Redis(r) => r.query(redis::cmd("GET").arg(key)).await,
        }
    }

    pub(super) async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Failure> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                match blocking(move || Ok(s.set(&key, &value))).await? {
                    Ok(()) => Ok(()),
                    Err(SetError::Full(why)) => Err(Failure::Other(why)),
                    Err(SetError::Storage(e)) => Err(Failure::from(e)),
                }
            }
            Backend::Redis(r) => r.query(redis::cmd("SET").arg(key).arg(value)).await,
        }
    }

    pub(super) async fn delete(&self, key: String) -> Result<(), Failure> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.delete(&key)).await
            }
            Backend::Redis(r) => r.query::<i64>(redis::cmd("DEL").arg(key)).await.map(drop),
        }
    }

    pub(super) async fn exists(&self, key: String) -> Result<bool, Failure> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.exists(&key)).await
            }
            Backend::Redis(r) => r.query(redis::cmd("EXISTS").arg(key)).await,
        }
    }

    pub(super) async fn keys(&self) -> Result<Vec<String>, Failure> {
        match self {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.keys()).await
            }
            Backend::Redis(r) => {
                // SCAN in pages rather than KEYS: it does not block the server.
                let mut keys = Vec::new();
                let mut cursor = 0u64;
                loop {
                    let (next, page): (u64, Vec<String>) = r
                        .query(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000))
                        .await?;
                    keys.extend(page);
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
                keys.sort();
                keys.dedup();
                Ok(keys)
            }
        }
    }
}
