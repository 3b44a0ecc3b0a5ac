//! The `gatewayd` binary: parse arguments, set up logging, run the command.

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser as _};
use gatewayd::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    gatewayd::logging::init(cli.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => gatewayd::up::run(*args).await,
            Command::Serve(args) => gatewayd::serve::run(args.config).await,
            Command::Manpages { dir } => gatewayd::manpages::write(Cli::command(), &dir).map(drop),
        }
    });
    // Instances still alive are dropped with the runtime, below.
    gatewayd::shutdown::mark_process_stopping();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
