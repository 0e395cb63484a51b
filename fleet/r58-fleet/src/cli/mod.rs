//! The operator CLI (`r58-fleet …`): arguments, the REST client, table views, and the
//! commands. `main` is the binary's whole body.

use std::process::ExitCode;

use clap::Parser;

mod args;
pub mod client;
pub mod ota_view;
mod run;
mod tunnel;

use crate::FleetError;

/// Parses the command line, runs the command, and maps an error to the exit status
/// (2 for a usage error, 1 otherwise).
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    r58_log::init("r58-fleet");
    match run::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("r58-fleet: {}", r58_log::error_chain(&e));
            if matches!(e, FleetError::Usage(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
