//! Being built (issue 6).

use std::process::ExitCode;

/// Command-line arguments of `app cloud`.
#[derive(Debug, clap::Args)]
pub struct CloudArgs {}

/// Runs the subcommand.
pub fn main(_args: CloudArgs) -> ExitCode {
    eprintln!("app: this part is not built yet (issue 6)");
    ExitCode::from(2)
}
