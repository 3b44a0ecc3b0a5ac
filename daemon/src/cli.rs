//! Command-line interface of `gatewayd` (argument parsing only; the work is
//! done by the modules each command hands off to).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::engine::Pooling;

/// The runtime-only flavour, as `--version` says it.
macro_rules! runtime_only {
    () => {
        "runtime only: runs precompiled code, cannot compile"
    };
}

/// `--version`: the release, and the flavour when it is not the full one
/// (every flavour installs the same binary name).
const VERSION: &str = match (crate::engine::CAN_COMPILE, cfg!(feature = "oci")) {
    (true, true) => env!("CARGO_PKG_VERSION"),
    (false, true) => concat!(env!("CARGO_PKG_VERSION"), " (", runtime_only!(), ")"),
    (true, false) => concat!(env!("CARGO_PKG_VERSION"), " (no registry updates)"),
    (false, false) => concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        runtime_only!(),
        "; no registry updates)"
    ),
};

/// Runs Spin WebAssembly apps on small Linux boards.
#[derive(Parser, Debug)]
#[command(name = "gatewayd", version = VERSION, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// How log lines look on stderr: text (journald's priority prefixes
    /// when stderr is the journal) or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "GATEWAYD_LOG_FORMAT"
    )]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a Spin app in the foreground, like `spin up`.
    #[command(after_help = "\
Examples:
  gatewayd up                                   # the spin.toml in this folder
  gatewayd up examples/hello --listen 0.0.0.0:8080
  gatewayd up app/spin.toml --request-timeout 5s --max-instance-memory 64MiB -e MODE=dev
  gatewayd up --variable api_key=s3cr3t --variable @prod.toml
  gatewayd up --build                           # run the build commands first

Logs go to stderr (RUST_LOG=debug for more); the address and the routes are printed
to stdout once the app is ready to serve.")]
    Up(Box<UpArgs>),
    /// Run as the service: serve the installed app generation, take signed
    /// bundles over the admin socket.
    #[command(after_help = "\
Examples:
  gatewayd serve                                # /etc/gatewayd/gatewayd.toml
  gatewayd serve --config ./gatewayd.toml

The config is annotated in packaging/gatewayd.toml. Push an app with
`gatewayctl push bundle app.bundle`; see `gatewayctl --help`.")]
    Serve(ServeArgs),
    /// Write man pages for gatewayd and its commands into DIR (used by
    /// packaging/build.sh).
    #[command(hide = true)]
    Manpages {
        /// Where to write `gatewayd.1` and one page per command.
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The configuration file [default: /etc/gatewayd/gatewayd.toml; a missing
    /// default file means all defaults].
    #[arg(long, value_name = "FILE", env = "GATEWAYD_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// The app: a spin.toml file or the folder that holds one.
    #[arg(default_value = ".")]
    pub path: PathBuf,

    /// Run each component's `[component.<id>.build] command` first, as
    /// `gatewayctl build` does; a failed build stops before serving.
    #[arg(long)]
    pub build: bool,

    /// Address to serve HTTP on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "GATEWAYD_LISTEN")]
    pub listen: SocketAddr,

    /// Folder for compiled code and other state
    /// [default: $XDG_STATE_HOME/gatewayd or ~/.local/state/gatewayd].
    #[arg(long, env = "GATEWAYD_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// Memory one instance may use: all its linear memories and tables
    /// together (e.g. 64MiB, 1GiB, 1048576).
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub max_instance_memory: u64,

    /// Deadline for one request or one pub/sub message (e.g. 500ms, 30s, 2m);
    /// "none" disables it. A request past it gets 504, a message counts as a
    /// failed attempt; either way its instance is stopped.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub request_timeout: Timeout,

    /// Largest HTTP request body a component is given: a larger declared
    /// length is answered 413 without calling it; a streamed body is cut
    /// there, and the component sees a body-size error.
    #[arg(long, default_value = "32MiB", value_parser = parse_bytes)]
    pub max_request_body_size: u64,

    /// Give an app variable a value (repeatable): NAME=VALUE, or @FILE.json /
    /// @FILE.toml with a table of them. Beats SPIN_VARIABLE_<NAME> and the
    /// manifest's default.
    #[arg(long = "variable", value_name = "NAME=VALUE|@FILE")]
    pub variables: Vec<String>,

    /// Spin runtime configuration file: where key-value stores live
    /// (`[key_value_store.<label>] type = "spin", path = "..."`).
    #[arg(long, value_name = "FILE")]
    pub runtime_config_file: Option<PathBuf>,

    /// Largest value a component may store in key-value (e.g. 1MiB, 64KiB).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub key_value_max_value_size: u64,

    /// Most keys one embedded key-value store may hold.
    #[arg(long, default_value_t = 100_000)]
    pub key_value_max_keys: u64,

    /// Most bytes (keys plus values) one embedded key-value store may hold.
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    pub key_value_max_store_size: u64,

    /// Largest Redis trigger message handled; a larger one is skipped unread,
    /// with a warning.
    #[arg(long, default_value = "4MiB", value_parser = parse_bytes)]
    pub redis_max_message_size: u64,

    /// Set a key in the app's default key-value store before serving (repeatable).
    #[arg(long = "key-value", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub key_value: Vec<(String, String)>,

    /// Trust the CA certificates in this PEM file for TLS broker connections
    /// (mqtts://), besides the public roots (repeatable). For brokers whose
    /// certificate comes from a private CA.
    #[arg(long = "tls-ca-file", value_name = "PEM")]
    pub tls_ca_files: Vec<PathBuf>,

    /// Set an environment variable for every component (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// Instances alive at once (the pooling allocator's size); requests beyond
    /// it wait for an instance to finish.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instances: u32,

    /// Use the pooling instance allocator: auto tries it and falls back.
    #[arg(long, value_enum, default_value = "auto")]
    pub pooling: Pooling,

    /// Virtual address space reserved per linear memory (default: 4GiB on
    /// x86_64, which skips bounds checks; 128MiB on aarch64/riscv64 so the
    /// pool fits a 39-bit address space; 16MiB on armv7).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub memory_reservation: Option<u64>,

    /// Let Cranelift use a CPU feature the board has but does not report, or
    /// that the baseline ISA lacks (repeatable), e.g. `has_v` on a riscv64
    /// board with the vector extension. Code using a feature the CPU lacks
    /// dies with SIGILL.
    #[arg(long = "cpu-feature", value_name = "FLAG")]
    pub cpu_features: Vec<String>,

    /// Compiled functions kept in the state dir for later compiles: a changed
    /// component recompiles only the functions that changed, and an app's
    /// components share what they have in common. The least recently used go
    /// past this size; 0 turns it off (and deletes the file).
    #[arg(long, value_name = "BYTES", default_value = "64MiB", value_parser = parse_bytes)]
    pub function_cache_size: u64,

    /// Requests a WASI 0.3 instance may serve before it is replaced.
    #[arg(long, default_value_t = 128)]
    pub max_instance_reuse_count: usize,

    /// Requests a WASI 0.3 instance may serve at the same time.
    #[arg(long, default_value_t = 16)]
    pub max_instance_concurrent_reuse_count: usize,

    /// How long in-flight requests and messages may take to finish after
    /// SIGINT/SIGTERM.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9464).
    /// No authentication: keep it on loopback or a management network.
    #[arg(long, value_name = "ADDR", env = "GATEWAYD_METRICS")]
    pub metrics: Option<SocketAddr>,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 30s, 2m)"))
}

/// A deadline that can be switched off (a newtype: clap treats a bare
/// `Option` field as "flag may be absent", not as the parsed value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Option<Duration>);

fn parse_timeout(s: &str) -> Result<Timeout, String> {
    match s.trim() {
        "none" | "off" | "0" => Ok(Timeout(None)),
        other => parse_duration(other).map(|d| Timeout(Some(d))),
    }
}

/// Parses a byte size: a plain number, or a number with K/M/G (powers of 1024,
/// with or without "i" and "B").
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("\"{s}\" is not a size (examples: 64MiB, 1GiB, 1048576)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown size unit \"{other}\" (use KiB, MiB or GiB)"
            ));
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("\"{s}\" is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["gatewayd", "up"]).unwrap();
        let Command::Up(args) = cli.command else {
            panic!("not `up`")
        };
        assert_eq!(args.request_timeout, Timeout(Some(Duration::from_secs(30))));
        assert_eq!(args.max_instance_memory, 128 << 20);
        let cli = Cli::try_parse_from(["gatewayd", "serve", "--config", "x.toml"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve(ServeArgs { config: Some(_) })
        ));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_timeout("none"), Ok(Timeout(None)));
        assert_eq!(
            parse_timeout("2s"),
            Ok(Timeout(Some(Duration::from_secs(2))))
        );
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn key_values() {
        assert_eq!(parse_key_value("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}
