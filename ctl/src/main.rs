//! `gatewayctl`: the operator's side of gatewayd. Makes signing keys, builds
//! signed bundles from Spin apps and checks them offline.

mod bundle;
mod keygen;
mod keys;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "gatewayctl", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    },
    /// Check a bundle offline: signature, every file's hash, safe paths.
    #[command(after_help = "Example:\n  gatewayctl verify hello.bundle --pubkey release.pub")]
    Verify {
        file: PathBuf,
        /// Public key(s) to trust (repeatable).
        #[arg(long = "pubkey", value_name = "KEY", required = true)]
        pubkeys: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
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
        } => bundle::run(&path, &key, version.as_deref(), &output),
        Command::Verify { file, pubkeys } => verify::run(&file, &pubkeys),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatewayctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
