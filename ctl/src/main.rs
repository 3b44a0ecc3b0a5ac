//! `gatewayctl`: the developer's and operator's side of gatewayd. Starts apps
//! from templates and builds them; makes signing keys, builds signed bundles
//! from Spin apps and checks them offline; pushes them to a running gatewayd,
//! asks its status and rolls it back over its admin API; lists a fleet's
//! gateways from the status they report to an MQTT broker.
//! This file only parses the command line and dispatches.

mod admin_client;
mod bundle;
mod compile;
mod fleet;
mod keygen;
mod keys;
mod new;
mod outcome;
mod promote;
mod publish;
mod push;
mod rollback;
mod status;
mod templates;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

use admin_client::Connection;

#[derive(Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "The developer's and operator's side of gatewayd: app templates and builds, signing keys, signed app bundles, pushes, status, rollback, fleet status"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an app from a template, ready to build (`gatewayctl templates`
    /// lists them). Asks for the template's values on a terminal unless
    /// --accept-defaults; --value sets one.
    #[command(
        after_help = "Examples:\n  gatewayctl new http-rust hello --accept-defaults\n  \
                      gatewayctl new mqtt-rust sensors --value mqtt-topic='sensors/+/temp'\n  \
                      cd hello && gatewayd up --build"
    )]
    New {
        /// The template (see `gatewayctl templates`).
        template: String,
        /// The app's name, kebab-case (also its component id and folder).
        name: String,
        /// The folder to create [default: NAME].
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
        /// A template value, NAME=VALUE (repeatable), e.g. http-path=/api/...
        #[arg(long = "value", short = 'v', value_name = "NAME=VALUE")]
        values: Vec<String>,
        /// Use the default for every value not given with --value.
        #[arg(long)]
        accept_defaults: bool,
    },
    /// List the templates `gatewayctl new` can start an app from.
    #[command(after_help = "Example:\n  gatewayctl templates")]
    Templates,
    /// Run each component's `[component.<id>.build] command`, as `spin build`
    /// does: in the manifest's folder (or its `workdir`), output prefixed by the
    /// component id, stopping at the first failure.
    #[command(
        after_help = "Examples:\n  gatewayctl build\n  gatewayctl build examples/hello -c hello\n\n\
                      `gatewayd up --build` builds, then serves."
    )]
    Build {
        /// The app: a spin.toml or the folder that holds one.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Build only this component (repeatable).
        #[arg(short = 'c', long = "component-id", value_name = "ID")]
        components: Vec<String>,
    },
    /// Make a signing key pair: NAME.key (secret) and NAME.pub, in minisign's formats.
    #[command(
        after_help = "Example:\n  gatewayctl keygen -o release\n  (then give release.pub to your gateways' trusted_keys)"
    )]
    Keygen {
        /// NAME of the key files (NAME.key and NAME.pub).
        #[arg(short, long, value_name = "NAME")]
        output: PathBuf,
        /// Protect the secret key with a password (asked for, or read from
        /// GATEWAYCTL_PASSWORD).
        #[arg(long)]
        password: bool,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Build a signed bundle from a Spin app: its spin.toml and the
    /// components and files it references, nothing else.
    #[command(
        after_help = "Example:\n  gatewayctl bundle examples/hello --key release.key --version 1.2.0 -o hello.bundle"
    )]
    Bundle {
        /// The app: a spin.toml or the folder that holds one.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Secret key to sign with (NAME.key from `gatewayctl keygen` or `minisign -G`).
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The bundle's version (semver); default: [application] version.
        #[arg(long)]
        version: Option<String>,
        /// Where to write the bundle.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// A route the gateway GETs on the new app before switching to it;
        /// anything but 2xx rejects the update (e.g. /health).
        #[arg(long, value_name = "PATH")]
        health_route: Option<String>,
        /// Also ship every component precompiled for this board (repeatable):
        /// aarch64-unknown-linux-gnu, riscv64gc-unknown-linux-gnu,
        /// armv7-unknown-linux-gnueabihf or x86_64-unknown-linux-gnu.
        /// Gateways whose engine accepts the code skip compiling.
        #[arg(long = "target", value_name = "TRIPLE")]
        targets: Vec<String>,
        /// The boards' gatewayd.toml, whose [engine] section shapes the
        /// code (default: the defaults for each target).
        #[arg(long, value_name = "FILE", requires = "targets")]
        config: Option<PathBuf>,
    },
    /// Compile a component on this machine for a board, as the board's
    /// gatewayd would (same engine settings, the CPU's baseline features).
    #[command(
        after_help = "Example:\n  gatewayctl compile --target aarch64-unknown-linux-gnu hello.wasm -o hello.cwasm\n\n\
                      To ship such code, use `gatewayctl bundle --target`: gatewayd loads\n\
                      precompiled code only from a verified bundle or its own cache."
    )]
    Compile {
        /// The component (.wasm).
        input: PathBuf,
        /// The board's target triple: aarch64-unknown-linux-gnu,
        /// riscv64gc-unknown-linux-gnu, armv7-unknown-linux-gnueabihf or
        /// x86_64-unknown-linux-gnu.
        #[arg(long, value_name = "TRIPLE")]
        target: String,
        /// The board's gatewayd.toml, whose [engine] section shapes the code
        /// (default: the defaults for the target).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Where to write the code.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check a bundle offline: signature, every file's hash, safe paths.
    #[command(after_help = "Example:\n  gatewayctl verify hello.bundle --pubkey release.pub")]
    Verify {
        file: PathBuf,
        /// Public key(s) to trust (repeatable).
        #[arg(long = "pubkey", value_name = "KEY", required = true)]
        pubkeys: Vec<PathBuf>,
    },
    /// Send something to a running gatewayd.
    #[command(after_help = "Example:\n  gatewayctl push bundle hello.bundle")]
    Push {
        #[command(subcommand)]
        what: Push,
    },
    /// Show what a running gatewayd runs: app, version, generation, uptime,
    /// triggers, the last update's outcome, and the code each component runs
    /// (native or the Pulley interpreter, from the cache or compiled at load).
    #[command(
        after_help = "Example:\n  gatewayctl status\n  gatewayctl status --to unix:///run/gatewayd/admin.sock --json"
    )]
    Status {
        #[command(flatten)]
        connection: Connection,
        /// Print gatewayd's JSON answer as is.
        #[arg(long)]
        json: bool,
    },
    /// Make a running gatewayd switch to the app's previous generation.
    /// A gateway keeps two generations, current and previous, and rollback
    /// swaps them: a second rollback returns to the newer one.
    #[command(
        after_help = "Example:\n  gatewayctl rollback\n  gatewayctl rollback --to https://board:7443 --token $TOKEN"
    )]
    Rollback {
        #[command(flatten)]
        connection: Connection,
        /// Print gatewayd's JSON answer as is.
        #[arg(long)]
        json: bool,
    },
    /// Many gateways at once: what each one runs, from the status they
    /// report to an MQTT broker (gatewayd's `[fleet] status_broker`), and
    /// promoting a canary tag's artifact to the rest of the fleet.
    #[command(
        after_help = "Example:\n  gatewayctl fleet status --broker mqtt://broker.lan\n  \
                      gatewayctl fleet status --broker mqtts://broker.lan --username ops --json"
    )]
    Fleet {
        #[command(subcommand)]
        what: Fleet,
    },
    /// Print a shell completion script for gatewayctl.
    #[command(
        after_help = "Examples:\n  gatewayctl completions bash > ~/.local/share/bash-completion/completions/gatewayctl\n  \
                      gatewayctl completions zsh > ~/.zfunc/_gatewayctl\n  \
                      gatewayctl completions fish > ~/.config/fish/completions/gatewayctl.fish\n\n\
                      The .deb installs the bash, zsh and fish scripts."
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for gatewayctl and its commands into DIR (used by
    /// packaging/build.sh).
    #[command(hide = true)]
    Manpages {
        /// Where to write `gatewayctl.1` and one page per command.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum Push {
    /// Upload a signed bundle (from `gatewayctl bundle`) and wait until
    /// gatewayd has checked, compiled and switched to it, or rejected it;
    /// with --to oci://HOST[:PORT]/REPO:TAG, publish it to a registry tag
    /// that gateways follow (`[fleet] source`).
    #[command(after_help = "Examples:\n  gatewayctl push bundle hello.bundle\n  \
                      gatewayctl push bundle hello.bundle --to unix:///run/gatewayd/admin.sock --json\n  \
                      gatewayctl push bundle hello.bundle --to https://board:7443 --token $TOKEN\n  \
                      gatewayctl push bundle hello.bundle --to oci://registry.lan/fleet/hello:canary\n\n\
                      With oci://, the bundle is published to the registry tag for the gateways \
                      that follow it ([fleet] source).")]
    Bundle {
        /// The bundle file (from `gatewayctl bundle`).
        file: PathBuf,
        #[command(flatten)]
        connection: Connection,
        /// Replace the running app by this bundle's app, when their names
        /// differ (without it, gatewayd refuses such a bundle).
        #[arg(long)]
        replace_app: bool,
        #[command(flatten)]
        registry: publish::RegistryArgs,
        /// Print gatewayd's JSON answer as is.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Fleet {
    /// List every gateway that reports to the broker: its state (online,
    /// offline when its connection dropped, stopped), app, version,
    /// generation and last update, then how many run each version.
    #[command(
        after_help = "Example:\n  gatewayctl fleet status --broker mqtt://broker.lan\n\n\
                      Each gateway keeps a retained message on gatewayd/<gateway-id>/status; \
                      this reads them all."
    )]
    Status {
        #[command(flatten)]
        broker: fleet::BrokerArgs,
        /// Print the gateways' status messages as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Point a tag at the artifact a canary tag points at, once every
    /// gateway following the canary tag reports (through the broker) that
    /// it runs that artifact, took it without a refusal, has been healthy
    /// for --healthy-for and saw no server error or trap in its last
    /// minute; otherwise refuse, naming each gateway and what is wrong.
    #[command(
        after_help = "Example:\n  gatewayctl fleet promote --from oci://registry.lan/fleet/hello:canary \\\n      \
                      --to stable --broker mqtt://broker.lan --healthy-for 30m"
    )]
    Promote {
        /// The canary tag: oci://HOST[:PORT]/REPO:TAG.
        #[arg(long, value_name = "OCI")]
        from: String,
        /// The tag to move: a tag of the same repository, or its full oci:// address.
        #[arg(long, value_name = "TAG")]
        to: String,
        /// How long every canary gateway must have run the artifact.
        #[arg(
            long,
            value_name = "DURATION",
            default_value = "10m",
            value_parser = humantime::parse_duration
        )]
        healthy_for: std::time::Duration,
        #[command(flatten)]
        broker: fleet::BrokerArgs,
        #[command(flatten)]
        registry: publish::RegistryArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::New {
            template,
            name,
            output,
            values,
            accept_defaults,
        } => new::run(&new::NewOptions {
            template: &template,
            name: &name,
            output: output.as_deref(),
            values: &values,
            accept_defaults,
        }),
        Command::Templates => new::list(),
        Command::Build { path, components } => gatewayd::app::build::plan(&path)
            .and_then(|plan| gatewayd::app::build::run(&plan, &components)),
        Command::Keygen {
            output,
            password,
            force,
        } => keygen::run(&output, password, force),
        Command::Bundle {
            path,
            key,
            version,
            output,
            health_route,
            targets,
            config,
        } => bundle::run(
            &path,
            &key,
            version.as_deref(),
            health_route,
            &bundle::Precompile {
                targets,
                board_config: config,
            },
            &output,
        ),
        Command::Compile {
            input,
            target,
            config,
            output,
        } => compile::run(&target, config.as_deref(), &input, &output),
        Command::Verify { file, pubkeys } => verify::run(&file, &pubkeys),
        Command::Push {
            what:
                Push::Bundle {
                    file,
                    connection,
                    replace_app,
                    registry,
                    json,
                },
        } if connection.to.starts_with("oci://") => {
            if replace_app {
                Err(anyhow::anyhow!(
                    "--replace-app is for a push to one gateway: a gateway following a tag \
                     takes only the app it runs (or its first one)"
                ))
            } else {
                publish::run(&file, &connection.to, &registry, json)
            }
        }
        Command::Push {
            what:
                Push::Bundle {
                    file,
                    connection,
                    replace_app,
                    json,
                    ..
                },
        } => push::run(&file, &connection, replace_app, json),
        Command::Status { connection, json } => status::run(&connection, json),
        Command::Rollback { connection, json } => rollback::run(&connection, json),
        Command::Fleet {
            what: Fleet::Status { broker, json },
        } => fleet::status(&broker, json),
        Command::Fleet {
            what:
                Fleet::Promote {
                    from,
                    to,
                    healthy_for,
                    broker,
                    registry,
                },
        } => promote::run(&promote::Promotion {
            from: &from,
            to: &to,
            healthy_for,
            broker: &broker,
            registry: &registry,
        }),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "gatewayctl",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Manpages { dir } => gatewayd::manpages::write(Cli::command(), &dir).map(drop),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatewayctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    /// clap's own checks of every command's definition (unique argument
    /// names, valid defaults), which otherwise fail only when that command runs.
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
