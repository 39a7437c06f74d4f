//! Being built (issue 6).

use std::process::ExitCode;

/// Command-line arguments of `app agent`.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {}

/// Runs the subcommand.
pub fn main(_args: AgentArgs) -> ExitCode {
    eprintln!("app: this part is not built yet (issue 6)");
    ExitCode::from(2)
}
