//! The `weir` binary: command line, configuration and server assembly.

use clap::Parser;
use mimalloc::MiMalloc;

mod cli;
mod config;
mod logging;
mod memory;
mod notify;
mod serve;
mod verify;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Verify(args) => verify::run(&args),
        cli::Command::Serve(args) => {
            let config = match config::Config::load(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("weir: {e:#}");
                    return std::process::ExitCode::from(2);
                }
            };
            logging::init(config.log_format);
            match serve::run(config) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}
