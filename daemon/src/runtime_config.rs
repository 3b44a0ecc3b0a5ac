//! Spin's runtime configuration file (`--runtime-config-file`): which backend
//! serves what, kept out of the app so one app runs unchanged on a laptop and
//! a board. Today: key-value stores.
//!
//! ```toml
//! [key_value_store.cache]
//! type = "spin"                 # an embedded SQLite store
//! path = "data/cache.db"        # relative to this file; default <state>/kv/<app>/<label>.db
//!
//! [key_value_store.shared]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! Tables Spin knows but the gateway does not implement yet are an error that
//! says so, never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::host::key_value::StoreLocation;

/// Tables of Spin's runtime configuration that the gateway does not support yet.
const NOT_SUPPORTED: &[&str] = &[
    "variables_provider",
    "config_provider",
    "sqlite_database",
    "llm_compute",
    "outbound_http",
    "client_tls",
];

/// The parts of a runtime configuration the gateway uses.
#[derive(Debug, Default)]
pub struct RuntimeConfig {
    /// Key-value stores by label.
    pub key_value_stores: BTreeMap<String, StoreLocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    key_value_store: BTreeMap<String, RawStore>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    url: Option<String>,
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{shown}: cannot read the runtime config file"))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{shown}: {}", e.message()))?;
        for key in table.keys() {
            if NOT_SUPPORTED.contains(&key.as_str()) {
                bail!("{shown}: [{key}] is not supported by gatewayd yet");
            }
        }
        let raw: Raw = table
            .try_into()
            .map_err(|e: toml::de::Error| anyhow::anyhow!("{shown}: {}", e.message()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = RuntimeConfig::default();
        for (label, store) in raw.key_value_store {
            let place = format!("{shown}: [key_value_store.{label}]");
            match store.kind.as_str() {
                "spin" => {
                    if store.url.is_some() {
                        bail!(
                            "{place}: `url` belongs to type \"redis\"; a \"spin\" store takes `path`"
                        );
                    }
                    let path = store.path.map(|p| base.join(p));
                    config
                        .key_value_stores
                        .insert(label, StoreLocation::Sqlite(path));
                }
                "redis" => {
                    let Some(url) = store.url else {
                        bail!("{place}: a \"redis\" store needs `url = \"redis://host:port\"`");
                    };
                    if store.path.is_some() {
                        bail!(
                            "{place}: `path` belongs to type \"spin\"; a \"redis\" store takes `url`"
                        );
                    }
                    config
                        .key_value_stores
                        .insert(label, StoreLocation::Redis(url));
                }
                other => {
                    bail!("{place}: unknown type \"{other}\" (expected \"spin\" or \"redis\")")
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<RuntimeConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runtime.toml");
        std::fs::write(&path, text).unwrap();
        RuntimeConfig::load(&path)
    }

    #[test]
    fn spin_stores_with_and_without_a_path() {
        let config = load(
            "[key_value_store.a]\ntype = \"spin\"\npath = \"x/a.db\"\n\
             [key_value_store.b]\ntype = \"spin\"\n",
        )
        .unwrap();
        let StoreLocation::Sqlite(Some(a)) = &config.key_value_stores["a"] else {
            panic!("not a file store");
        };
        assert!(a.ends_with("x/a.db"));
        assert_eq!(config.key_value_stores["b"], StoreLocation::Sqlite(None));
    }

    #[test]
    fn unsupported_and_unknown_are_errors_that_say_so() {
        let err = format!(
            "{:#}",
            load("[[variables_provider]]\ntype = \"vault\"\n").unwrap_err()
        );
        assert!(
            err.contains("[variables_provider] is not supported"),
            "{err}"
        );
        let config =
            load("[key_value_store.r]\ntype = \"redis\"\nurl = \"redis://x:1\"\n").unwrap();
        assert_eq!(
            config.key_value_stores["r"],
            StoreLocation::Redis("redis://x:1".into())
        );
        let err = format!(
            "{:#}",
            load("[key_value_store.r]\ntype = \"redis\"\n").unwrap_err()
        );
        assert!(err.contains("needs `url"), "{err}");
        let err = format!(
            "{:#}",
            load("[key_value_store.r]\ntype = \"spin\"\npth = \"a\"\n").unwrap_err()
        );
        assert!(err.contains("pth"), "{err}");
        let err = format!(
            "{:#}",
            load("[key_value_store.r]\ntype = \"dynamo\"\n").unwrap_err()
        );
        assert!(
            err.contains("unknown type \"dynamo\" (expected \"spin\" or \"redis\")"),
            "{err}"
        );
        let err = format!("{:#}", load("colour = 1\n").unwrap_err());
        assert!(err.contains("colour"), "{err}");
    }
}
