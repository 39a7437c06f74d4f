//! Being built (issue 6).

use std::process::ExitCode;

/// Command-line arguments of `app repo`.
#[derive(Debug, clap::Args)]
pub struct RepoServerArgs {}

/// Runs the subcommand.
pub fn main(_args: RepoServerArgs) -> ExitCode {
    eprintln!("app: this part is not built yet (issue 6)");
    ExitCode::from(2)
}
