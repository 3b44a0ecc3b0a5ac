//! The service's configuration (`gatewayd serve --config FILE`, default
//! `/etc/gatewayd/gatewayd.toml`): TOML, every key optional, unknown keys an
//! error naming the line. `packaging/gatewayd.toml` is the annotated default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use serde::Deserialize;

use crate::cli::{parse_bytes, parse_duration};
use crate::engine::{Arch, EngineSettings, Pooling};
use crate::trigger::http::ReusePolicy;

pub const DEFAULT_PATH: &str = "/etc/gatewayd/gatewayd.toml";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where HTTP triggers are served.
    pub listen: SocketAddr,
    /// Generations, compiled code, key-value stores.
    pub state_dir: PathBuf,
    /// Public keys (minisign `.pub` files) whose signatures make a bundle acceptable.
    pub trusted_keys: Vec<PathBuf>,
    pub admin_socket: PathBuf,
    /// Permission bits of the admin socket (owner and group only by default).
    pub admin_socket_mode: u32,
    /// The optional TCP admin listener (HTTPS, bearer tokens).
    pub admin_tcp: Option<AdminTcp>,
    pub allow_downgrade: bool,
    /// `[update] accept_precompiled`: use code precompiled in bundles.
    pub accept_precompiled: bool,
    /// How long a new generation's health check may take.
    pub health_timeout: Duration,
    /// Largest bundle upload accepted.
    pub max_bundle_size: u64,
    pub request_timeout: Option<Duration>,
    /// `[limits] max_instance_memory, max_instances` and `[engine]`.
    pub engine: EngineSettings,
    pub drain_timeout: Duration,
    /// `[limits] key_value_max_value_size`.
    pub key_value_max_value_size: u64,
    /// `[limits] key_value_max_keys, key_value_max_store_size`.
    pub key_value_quota: crate::host::key_value::StoreQuota,
    /// `[limits] max_instance_reuse_count, max_instance_concurrent_reuse_count`.
    pub reuse: ReusePolicy,
    /// `[limits] redis_max_message_size`.
    pub redis_max_message_size: u64,
    /// `[limits] max_request_body_size`.
    pub max_request_body_size: u64,
    /// `[app]`: what `gatewayd up` takes as flags for the app.
    pub app: AppSettings,
    /// `[metrics] listen`: where `GET /metrics` is served (off by default).
    pub metrics_listen: Option<SocketAddr>,
    /// `[fleet]`: the registry tag the gateway follows and where it reports
    /// its status (both off by default).
    pub fleet: crate::fleet::settings::FleetSettings,
}

/// `[app]`: settings for whatever app is installed, the service's version of
/// `gatewayd up`'s `--variable @FILE`, `--runtime-config-file`, `-e` and
/// `--tls-ca-file`. Paths are used as written (give absolute ones).
#[derive(Debug, Clone, Default)]
pub struct AppSettings {
    /// A TOML or JSON table of variable values.
    pub variables_file: Option<PathBuf>,
    /// A Spin runtime configuration file (key-value stores).
    pub runtime_config_file: Option<PathBuf>,
    /// Environment variables for every component.
    pub environment: Vec<(String, String)>,
    /// More CA certificates (PEM) for TLS broker connections.
    pub tls_ca_files: Vec<PathBuf>,
}

/// `[admin] listen`: the admin API over HTTPS for remote operators; every
/// request must carry one of `tokens` as `Authorization: Bearer ...`.
#[derive(Clone)]
pub struct AdminTcp {
    pub listen: SocketAddr,
    pub tokens: Vec<String>,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

impl std::fmt::Debug for AdminTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are secrets: never printed.
        f.debug_struct("AdminTcp")
            .field("listen", &self.listen)
            .field("tokens", &format_args!("[{} hidden]", self.tokens.len()))
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: Option<String>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    trusted_keys: Vec<PathBuf>,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    update: RawUpdate,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    app: RawApp,
    #[serde(default)]
    metrics: RawMetrics,
    #[serde(default)]
    fleet: crate::fleet::settings::RawFleet,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApp {
    variables_file: Option<PathBuf>,
    runtime_config_file: Option<PathBuf>,
    #[serde(default)]
    environment: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    tls_ca_files: Vec<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    pooling: Option<String>,
    warm_slots: Option<u32>,
    memory_reservation: Option<String>,
    memory_guard_size: Option<String>,
    memory_reservation_for_growth: Option<String>,
    cpu_features: Option<Vec<String>>,
    function_cache_size: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    socket: Option<PathBuf>,
    socket_mode: Option<String>,
    listen: Option<String>,
    #[serde(default)]
    tokens: Vec<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpdate {
    #[serde(default)]
    allow_downgrade: bool,
    accept_precompiled: Option<bool>,
    max_bundle_size: Option<String>,
    health_timeout: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_instance_memory: Option<String>,
    request_timeout: Option<String>,
    max_instances: Option<u32>,
    drain_timeout: Option<String>,
    key_value_max_value_size: Option<String>,
    key_value_max_keys: Option<u64>,
    key_value_max_store_size: Option<String>,
    redis_max_message_size: Option<String>,
    max_request_body_size: Option<String>,
    max_instance_reuse_count: Option<usize>,
    max_instance_concurrent_reuse_count: Option<usize>,
}

impl Config {
    /// Reads `path`; a missing file at the default path means all defaults.
    pub fn load(path: &Path, explicit: bool) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                tracing::info!("no {}: using the defaults", path.display());
                String::new()
            }
            Err(e) => return Err(anyhow!("{}: cannot read: {e}", path.display())),
        };
        Self::parse(&text, path)
    }

    /// Reads a board's config (for its `[engine]` section) on another
    /// machine: defaults are those of `arch`, not of this machine.
    pub fn load_for(path: &Path, arch: Arch) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
        Self::parse_for(&text, path, arch)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        Self::parse_for(text, path, Arch::host())
    }

    fn parse_for(text: &str, path: &Path, arch: Arch) -> Result<Self> {
        let shown = path.display();
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let place = e
                .span()
                .map(|span| format!("line {}: ", text[..span.start].matches('\n').count() + 1))
                .unwrap_or_default();
            anyhow!("{shown}: {place}{}", e.message().trim())
        })?;
        let key = |name: &str| format!("{shown}: {name}");
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:3000");
        let listen = listen.parse().map_err(|e| {
            anyhow!(
                "{}: {listen:?} is not an address such as 0.0.0.0:3000 ({e})",
                key("listen")
            )
        })?;
        let metrics_listen = match raw.metrics.listen.as_deref() {
            None | Some("" | "off") => None,
            Some(address) => Some(address.parse().map_err(|e| {
                anyhow!(
                    "{}: {address:?} is not an address such as 127.0.0.1:9464 ({e})",
                    key("metrics.listen")
                )
            })?),
        };
        let mode = raw.admin.socket_mode.as_deref().unwrap_or("0660");
        let admin_socket_mode = u32::from_str_radix(mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777 && m & 0o007 == 0)
            .ok_or_else(|| {
                anyhow!(
                    "{}: {mode:?} must be octal permission bits with nothing for others (e.g. 0660, 0600)",
                    key("admin.socket_mode")
                )
            })?;
        let admin_tcp = match raw.admin.listen.as_deref() {
            None => {
                if !raw.admin.tokens.is_empty() || raw.admin.tls_cert.is_some() {
                    return Err(anyhow!(
                        "{}: tokens and TLS files are for the TCP listener: set admin.listen too",
                        key("admin")
                    ));
                }
                None
            }
            Some(address) => {
                let listen = address.parse().map_err(|e| {
                    anyhow!(
                        "{}: {address:?} is not an address such as 0.0.0.0:7443 ({e})",
                        key("admin.listen")
                    )
                })?;
                let tokens: Vec<String> = raw
                    .admin
                    .tokens
                    .iter()
                    .map(|t| t.trim().to_string())
                    .collect();
                if tokens.is_empty() || tokens.iter().any(|t| t.len() < 16) {
                    return Err(anyhow!(
                        "{}: the TCP admin listener needs tokens of at least 16 characters",
                        key("admin.tokens")
                    ));
                }
                let (Some(tls_cert), Some(tls_key)) = (raw.admin.tls_cert, raw.admin.tls_key)
                else {
                    return Err(anyhow!(
                        "{}: the TCP admin listener speaks HTTPS only: set admin.tls_cert and admin.tls_key (PEM)",
                        key("admin")
                    ));
                };
                Some(AdminTcp {
                    listen,
                    tokens,
                    tls_cert,
                    tls_key,
                })
            }
        };
        let bytes = |name: &str, value: Option<&str>, default: &str| {
            parse_bytes(value.unwrap_or(default)).map_err(|e| anyhow!("{}: {e}", key(name)))
        };
        let duration = |name: &str, value: Option<&str>, default: &str| {
            parse_duration(value.unwrap_or(default)).map_err(|e| anyhow!("{}: {e}", key(name)))
        };
        if raw.update.accept_precompiled == Some(false) && !crate::engine::CAN_COMPILE {
            return Err(anyhow!(
                "{}: this gatewayd is a runtime-only build: it cannot compile, so it runs only \
                 code precompiled in bundles; remove the setting, or install the full gatewayd \
                 package to compile every component here",
                key("update.accept_precompiled = false")
            ));
        }
        let request_timeout = match raw.limits.request_timeout.as_deref() {
            Some("none" | "off" | "0") => None,
            other => Some(duration("limits.request_timeout", other, "30s")?),
        };
        anyhow::Ok(Config {
            listen,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/gatewayd")),
            trusted_keys: raw.trusted_keys,
            admin_socket: raw
                .admin
                .socket
                .unwrap_or_else(|| PathBuf::from("/run/gatewayd/admin.sock")),
            admin_socket_mode,
            admin_tcp,
            allow_downgrade: raw.update.allow_downgrade,
            accept_precompiled: raw.update.accept_precompiled.unwrap_or(true),
            health_timeout: duration(
                "update.health_timeout",
                raw.update.health_timeout.as_deref(),
                "60s",
            )?,
            max_bundle_size: bytes(
                "update.max_bundle_size",
                raw.update.max_bundle_size.as_deref(),
                "256MiB",
            )?,
            request_timeout,
            engine: engine_settings(&raw.limits, raw.engine, &key, arch)?,
            drain_timeout: duration(
                "limits.drain_timeout",
                raw.limits.drain_timeout.as_deref(),
                "10s",
            )?,
            key_value_max_value_size: bytes(
                "limits.key_value_max_value_size",
                raw.limits.key_value_max_value_size.as_deref(),
                "1MiB",
            )?,
            key_value_quota: crate::host::key_value::StoreQuota {
                max_keys: raw.limits.key_value_max_keys.unwrap_or(100_000),
                max_bytes: bytes(
                    "limits.key_value_max_store_size",
                    raw.limits.key_value_max_store_size.as_deref(),
                    "64MiB",
                )?,
            },
            reuse: reuse_policy(&raw.limits, &key)?,
            redis_max_message_size: bytes(
                "limits.redis_max_message_size",
                raw.limits.redis_max_message_size.as_deref(),
                "4MiB",
            )?,
            max_request_body_size: bytes(
                "limits.max_request_body_size",
                raw.limits.max_request_body_size.as_deref(),
                "32MiB",
            )?,
            app: AppSettings {
                variables_file: raw.app.variables_file,
                runtime_config_file: raw.app.runtime_config_file,
                environment: raw.app.environment.into_iter().collect(),
                tls_ca_files: raw.app.tls_ca_files,
            },
            metrics_listen,
            fleet: raw.fleet.parse(&key)?,
        })
        .context("configuration")
    }
}

/// `[limits]`' instance reuse counts over the defaults (Spin's).
fn reuse_policy(limits: &RawLimits, key: &dyn Fn(&str) -> String) -> Result<ReusePolicy> {
    let mut policy = ReusePolicy::default();
    for (name, value, field) in [
        (
            "limits.max_instance_reuse_count",
            limits.max_instance_reuse_count,
            &mut policy.max_requests,
        ),
        (
            "limits.max_instance_concurrent_reuse_count",
            limits.max_instance_concurrent_reuse_count,
            &mut policy.max_concurrent,
        ),
    ] {
        match value {
            Some(0) => return Err(anyhow!("{}: must be at least 1", key(name))),
            Some(n) => *field = n,
            None => {}
        }
    }
    Ok(policy)
}

/// `[limits]` and `[engine]` over this machine's defaults.
fn engine_settings(
    limits: &RawLimits,
    raw: RawEngine,
    key: &dyn Fn(&str) -> String,
    arch: Arch,
) -> Result<EngineSettings> {
    let mut settings = EngineSettings::defaults_for(arch);
    let bytes =
        |name: &str, value: &str| parse_bytes(value).map_err(|e| anyhow!("{}: {e}", key(name)));
    if let Some(value) = &limits.max_instance_memory {
        settings.max_instance_memory = bytes("limits.max_instance_memory", value)?;
    }
    match limits.max_instances {
        Some(0) => {
            return Err(anyhow!(
                "{}: must be at least 1",
                key("limits.max_instances")
            ));
        }
        Some(n) => settings.max_instances = n,
        None => {}
    }
    if let Some(pooling) = raw.pooling {
        settings.pooling = match pooling.as_str() {
            "auto" => Pooling::Auto,
            "on" => Pooling::On,
            "off" => Pooling::Off,
            other => {
                return Err(anyhow!(
                    "{}: {other:?} must be \"auto\", \"on\" or \"off\"",
                    key("engine.pooling")
                ));
            }
        };
    }
    if let Some(n) = raw.warm_slots {
        settings.warm_slots = n;
    }
    if let Some(value) = &raw.function_cache_size {
        settings.function_cache_size = bytes("engine.function_cache_size", value)?;
    }
    let profile = &mut settings.profile;
    if let Some(value) = &raw.memory_reservation {
        profile.memory_reservation = bytes("engine.memory_reservation", value)?;
    }
    if let Some(value) = &raw.memory_guard_size {
        profile.memory_guard_size = Some(bytes("engine.memory_guard_size", value)?);
    }
    if let Some(value) = &raw.memory_reservation_for_growth {
        profile.memory_reservation_for_growth =
            bytes("engine.memory_reservation_for_growth", value)?;
    }
    if let Some(features) = raw.cpu_features {
        if let Some(bad) = features
            .iter()
            .find(|f| f.is_empty() || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(anyhow!(
                "{}: {bad:?} is not a Cranelift flag name such as \"has_v\"",
                key("engine.cpu_features")
            ));
        }
        profile.cpu_features = features;
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_values_and_errors() {
        let path = Path::new("gatewayd.toml");
        let c = Config::parse("", path).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/gatewayd"));
        assert_eq!(c.admin_socket_mode, 0o660);
        assert!(!c.allow_downgrade);
        let c = Config::parse(
            "listen = \"0.0.0.0:8080\"\ntrusted_keys = [\"a.pub\"]\n[admin]\nsocket = \"/tmp/a.sock\"\nsocket_mode = \"0600\"\n[update]\nallow_downgrade = true\n[limits]\nrequest_timeout = \"none\"\n",
            path,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.admin_socket_mode, 0o600);
        assert_eq!(c.request_timeout, None);
        let err = |text: &str| format!("{:#}", Config::parse(text, path).unwrap_err());
        assert!(
            err("lisen = \"x\"").contains("line 1"),
            "{}",
            err("lisen = \"x\"")
        );
        assert!(err("listen = \"nope\"").contains("listen"));
        assert!(err("[admin]\nsocket_mode = \"0666\"").contains("nothing for others"));
        assert!(
            err("[limits]\nmax_instance_memory = \"lots\"").contains("limits.max_instance_memory")
        );
        assert!(err("[admin]\nlisten = \"0.0.0.0:7443\"").contains("tokens of at least 16"));
        assert!(
            err("[admin]\nlisten = \"0.0.0.0:7443\"\ntokens = [\"0123456789abcdef\"]")
                .contains("HTTPS only")
        );
        assert!(err("[admin]\ntokens = [\"0123456789abcdef\"]").contains("set admin.listen"));
        let c = Config::parse(
            "[admin]\nlisten = \"127.0.0.1:7443\"\ntokens = [\"0123456789abcdef\"]\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"",
            path,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        assert_eq!(c.metrics_listen, None, "metrics are off by default");
        let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9464\"\n", path).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        let bad = err("[metrics]\nlisten = \"9464\"");
        assert!(
            bad.contains("metrics.listen") && bad.contains("127.0.0.1:9464"),
            "{bad}"
        );
    }

    /// The keys `up` has as flags: values, defaults, and errors naming the key.
    #[test]
    fn app_settings_reuse_counts_and_the_health_timeout() {
        let path = Path::new("gatewayd.toml");
        let c = Config::parse("", path).unwrap();
        assert_eq!(c.reuse.max_requests, 128);
        assert_eq!(c.reuse.max_concurrent, 16);
        assert_eq!(c.key_value_max_value_size, 1 << 20);
        assert_eq!(c.health_timeout, Duration::from_secs(60));
        assert!(c.app.variables_file.is_none() && c.app.environment.is_empty());
        let c = Config::parse(
            "[limits]\nmax_instance_reuse_count = 1\nmax_instance_concurrent_reuse_count = 2\n\
             key_value_max_value_size = \"4KiB\"\n[update]\nhealth_timeout = \"5s\"\n\
             [app]\nvariables_file = \"/etc/v.toml\"\nruntime_config_file = \"/etc/r.toml\"\n\
             environment = { MODE = \"prod\" }\ntls_ca_files = [\"/etc/ca.pem\"]\n",
            path,
        )
        .unwrap();
        assert_eq!((c.reuse.max_requests, c.reuse.max_concurrent), (1, 2));
        assert_eq!(c.key_value_max_value_size, 4096);
        assert_eq!(c.health_timeout, Duration::from_secs(5));
        assert_eq!(
            c.app.environment,
            [("MODE".to_string(), "prod".to_string())]
        );
        assert_eq!(c.app.tls_ca_files, [PathBuf::from("/etc/ca.pem")]);
        let err = |text: &str| format!("{:#}", Config::parse(text, path).unwrap_err());
        assert!(
            err("[limits]\nmax_instance_reuse_count = 0")
                .contains("limits.max_instance_reuse_count"),
            "{}",
            err("[limits]\nmax_instance_reuse_count = 0")
        );
        assert!(err("[app]\nvariable_file = \"x\"").contains("variable_file"));
    }

    /// The annotated config shipped in packaging/ parses, and says the defaults.
    #[test]
    fn the_packaged_config_is_the_defaults() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/gatewayd.toml"
        ));
        let text = std::fs::read_to_string(path).unwrap();
        let packaged = Config::parse(&text, path).unwrap();
        let defaults = Config::parse("", path).unwrap();
        assert_eq!(format!("{packaged:?}"), format!("{defaults:?}"));
    }
}
