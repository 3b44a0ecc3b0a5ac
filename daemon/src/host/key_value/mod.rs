//! Key-value: labelled stores a component was granted in its manifest
//! (`key_value_stores = ["default", ...]`), for both interface generations:
//! `fermyon:spin/key-value@2.0.0` (Spin SDK 5) and
//! `spin:key-value/key-value@3.0.0` (SDK 6/7, Python SDK 4/5).
//!
//! Opening a label the component was not granted is `access-denied`; a
//! granted label with no configured store is `no-such-store`. The `default`
//! store is an embedded SQLite file in the state dir ([`store`]). Keys are at
//! most 255 bytes and values at most [`KeyValueLimits::max_value_size`]; an
//! embedded store holds at most [`KeyValueLimits::quota`] (a Redis server
//! bounds its own).

mod backend;
mod store;
mod v2;
mod v3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use wasmtime::component::{HasData, Linker, ResourceTable};

pub use backend::{Backend, RedisStore};
pub use store::{SqliteStore, StoreQuota};

use super::{Capability, Grantee, HostState};

/// Where a configured store lives (from the runtime config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite file; `None`: `<label>.db` in the app's store folder.
    Sqlite(Option<PathBuf>),
    /// A Redis server, by URL.
    Redis(String),
}

/// Longest key, in bytes (Spin's limit too).
pub const MAX_KEY_SIZE: usize = 255;

#[derive(Clone, Debug)]
pub struct KeyValueLimits {
    /// Largest value, in bytes.
    pub max_value_size: usize,
    /// What one embedded store may hold.
    pub quota: StoreQuota,
}

impl Default for KeyValueLimits {
    fn default() -> Self {
        Self {
            max_value_size: 1 << 20,
            quota: StoreQuota {
                max_keys: 100_000,
                max_bytes: 64 << 20,
            },
        }
    }
}

/// The stores of one app, by label.
pub struct Stores {
    by_label: BTreeMap<String, Backend>,
    limits: KeyValueLimits,
}

impl Stores {
    /// Opens the built-in `default` store and every configured one. A store
    /// configured without a path, and `default` unless configured, lives in
    /// `dir` as `<label>.db`.
    pub fn open(
        dir: &Path,
        configured: &BTreeMap<String, StoreLocation>,
        limits: KeyValueLimits,
    ) -> Result<Self> {
        let mut by_label = BTreeMap::new();
        let labels = std::iter::once("default").chain(configured.keys().map(String::as_str));
        for label in labels {
            let backend = match configured.get(label) {
                Some(StoreLocation::Redis(url)) => Backend::Redis(Arc::new(RedisStore::new(url)?)),
                Some(StoreLocation::Sqlite(Some(path))) => {
                    Backend::Sqlite(SqliteStore::open(path, limits.quota)?)
                }
                _ => Backend::Sqlite(SqliteStore::open(
                    &dir.join(format!("{label}.db")),
                    limits.quota,
                )?),
            };
            by_label.insert(label.to_string(), backend);
        }
        Ok(Self { by_label, limits })
    }

    pub fn get(&self, label: &str) -> Option<&Backend> {
        self.by_label.get(label)
    }

    /// Sets `pairs` in the `default` store (for `--key-value`).
    pub async fn seed_default(&self, pairs: &[(String, String)]) -> Result<()> {
        let Some(default) = self.get("default") else {
            return Ok(());
        };
        for (key, value) in pairs {
            default
                .set(key.clone(), value.as_bytes().to_vec())
                .await
                .map_err(|e| anyhow::anyhow!("--key-value {key}=...: {e:?}"))?;
        }
        Ok(())
    }
}

/// What one instance may open: its grants and the app's stores.
#[derive(Clone)]
pub struct KeyValue {
    granted: Arc<BTreeSet<String>>,
    stores: Arc<Stores>,
}

impl KeyValue {
    fn new(granted: &[String], stores: Arc<Stores>) -> Self {
        Self {
            granted: Arc::new(granted.iter().cloned().collect()),
            stores,
        }
    }

    fn open(&self, label: &str) -> Result<Backend, Failure> {
        if !self.granted.contains(label) {
            return Err(Failure::AccessDenied);
        }
        self.stores.get(label).cloned().ok_or(Failure::NoSuchStore)
    }

    fn check_key(&self, key: &str) -> Result<(), Failure> {
        if key.len() > MAX_KEY_SIZE {
            return Err(Failure::Other(format!(
                "key is {} bytes; the limit is {MAX_KEY_SIZE}",
                key.len()
            )));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), Failure> {
        let limit = self.stores.limits.max_value_size;
        if value.len() > limit {
            return Err(Failure::Other(format!(
                "value is {} bytes; the limit is {limit}",
                value.len()
            )));
        }
        Ok(())
    }
}

/// An open store, as kept in the instance's resource table.
pub struct OpenStore {
    store: Backend,
}

/// A failed operation, before it is mapped to either generation's `error`.
#[derive(Debug)]
enum Failure {
    NoSuchStore,
    AccessDenied,
    Other(String),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        // The storage error itself goes to the log; the guest gets a summary
        // without host paths.
        tracing::error!("key-value store failed: {e:#}");
        Failure::Other("the store failed; see the gateway's log".into())
    }
}

/// Runs a blocking store operation on tokio's blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R, Failure> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Failure::from),
        Err(e) => Err(Failure::Other(format!("the store operation was lost: {e}"))),
    }
}

/// What the generated bindings see of the store data.
pub struct KeyValueView<'a> {
    table: &'a mut ResourceTable,
    key_value: &'a KeyValue,
}

struct KeyValueCapability;

impl HasData for KeyValueCapability {
    type Data<'a> = KeyValueView<'a>;
}

fn view(state: &mut HostState) -> KeyValueView<'_> {
    KeyValueView {
        table: &mut state.table,
        key_value: &state.grants.key_value,
    }
}

impl Capability for KeyValue {
    const INTERFACES: &'static [&'static str] = &[
        "fermyon:spin/key-value@2.0.0",
        "spin:key-value/key-value@3.0.0",
    ];
    type Generation = ();

    fn grant(component: &Grantee<'_>, _: &Arc<()>) -> Result<Self> {
        Ok(Self::new(
            &component.spec.key_value_stores,
            component.resources.stores.clone(),
        ))
    }

    fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::fermyon::spin::key_value::add_to_linker::<HostState, KeyValueCapability>(
            linker, view,
        )
        .map_err(anyhow::Error::from)?;
        Ok(())
    }

    fn add_async_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
        super::bindings::spin::key_value::key_value::add_to_linker::<HostState, KeyValueCapability>(
            linker, view,
        )
        .map_err(anyhow::Error::from)?;
        Ok(())
    }
}
