//! [`RuntimeOptions`]: every setting of the runtime, built from `gatewayd up`'s
//! command line or from `gatewayd serve`'s config file. Files they name
//! (runtime config, variables) are read here, at start-up, so a mistake in
//! one stops the start with the file's name instead of failing an update.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::app::variables::CommandLineValues;
use crate::cli::UpArgs;
use crate::config::Config;
use crate::engine::EngineSettings;
use crate::host::key_value::{KeyValueLimits, StoreQuota};
use crate::runtime_config::RuntimeConfig;
use crate::trigger::http::ReusePolicy;

/// No `Debug`: variable values may be secrets.
pub struct RuntimeOptions {
    /// Compiled code, key-value stores, staged files (and, for `serve`, the
    /// generations).
    pub state_dir: PathBuf,
    /// Engines, pooling, instance memory and count.
    pub engine: EngineSettings,
    /// Deadline of one request or one try at a pub/sub message.
    pub request_timeout: Option<Duration>,
    /// How long in-flight work may take to finish at shutdown or switch.
    pub drain_timeout: Duration,
    /// How WASI 0.3 instances are reused.
    pub reuse: ReusePolicy,
    /// More CA certificates for TLS broker connections (`mqtts://`).
    pub tls_ca_files: Vec<PathBuf>,
    /// Where key-value stores live (Spin runtime config).
    pub runtime_config: RuntimeConfig,
    pub key_value_limits: KeyValueLimits,
    /// Largest Redis trigger message handled.
    pub redis_max_message_size: usize,
    /// Largest HTTP request body given to a component.
    pub max_request_body_size: u64,
    /// App variable values, beating `SPIN_VARIABLE_*` and defaults.
    pub variables: CommandLineValues,
    /// Environment variables for every component.
    pub environment: Vec<(String, String)>,
    /// Where `GET /metrics` is served, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl RuntimeOptions {
    /// `gatewayd up`'s flags.
    pub fn from_up(args: &UpArgs) -> Result<Self> {
        let state_dir = match &args.state_dir {
            Some(dir) => dir.clone(),
            None => crate::state_dir::default_state_dir()?,
        };
        let mut engine = EngineSettings {
            max_instance_memory: args.max_instance_memory,
            max_instances: args.max_instances,
            pooling: args.pooling,
            function_cache_size: args.function_cache_size,
            ..EngineSettings::defaults()
        };
        if let Some(bytes) = args.memory_reservation {
            engine.profile.memory_reservation = bytes;
        }
        engine.profile.cpu_features = args.cpu_features.clone();
        Ok(Self {
            state_dir,
            engine,
            request_timeout: args.request_timeout.0,
            drain_timeout: args.drain_timeout,
            reuse: ReusePolicy {
                max_requests: args.max_instance_reuse_count,
                max_concurrent: args.max_instance_concurrent_reuse_count,
                ..ReusePolicy::default()
            },
            tls_ca_files: args.tls_ca_files.clone(),
            runtime_config: match &args.runtime_config_file {
                Some(path) => RuntimeConfig::load(path)?,
                None => RuntimeConfig::default(),
            },
            key_value_limits: KeyValueLimits {
                max_value_size: usize::try_from(args.key_value_max_value_size)
                    .unwrap_or(usize::MAX),
                quota: StoreQuota {
                    max_keys: args.key_value_max_keys,
                    max_bytes: args.key_value_max_store_size,
                },
            },
            redis_max_message_size: usize::try_from(args.redis_max_message_size)
                .unwrap_or(usize::MAX),
            max_request_body_size: args.max_request_body_size,
            variables: CommandLineValues::parse(&args.variables)?,
            environment: args.env.clone(),
            metrics_listen: args.metrics,
        })
    }

    /// `gatewayd serve`'s config file (see `packaging/gatewayd.toml`).
    pub fn from_config(config: &Config) -> Result<Self> {
        let app = &config.app;
        let variables = match &app.variables_file {
            Some(path) => {
                CommandLineValues::from_service_file(path).context("[app] variables_file")?
            }
            None => CommandLineValues::default(),
        };
        Ok(Self {
            state_dir: config.state_dir.clone(),
            engine: config.engine.clone(),
            request_timeout: config.request_timeout,
            drain_timeout: config.drain_timeout,
            reuse: config.reuse.clone(),
            tls_ca_files: app.tls_ca_files.clone(),
            runtime_config: match &app.runtime_config_file {
                Some(path) => RuntimeConfig::load(path).context("[app] runtime_config_file")?,
                None => RuntimeConfig::default(),
            },
            key_value_limits: KeyValueLimits {
                max_value_size: usize::try_from(config.key_value_max_value_size)
                    .unwrap_or(usize::MAX),
                quota: config.key_value_quota,
            },
            redis_max_message_size: usize::try_from(config.redis_max_message_size)
                .unwrap_or(usize::MAX),
            max_request_body_size: config.max_request_body_size,
            variables,
            environment: app.environment.clone(),
            metrics_listen: config.metrics_listen,
        })
    }
}
