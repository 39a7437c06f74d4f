//! Being built (issue 6).

use std::process::ExitCode;

/// Command-line arguments of `app instance`.
#[derive(Debug, clap::Args)]
pub struct InstanceArgs {}

/// Runs the subcommand.
pub fn main(_args: InstanceArgs) -> ExitCode {
    eprintln!("app: this part is not built yet (issue 6)");
    ExitCode::from(2)
}
