//! `app`: the application under test's daemons.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "app",
    version,
    about = "Multiplayer snake with CSM: cloud logic server, edge instance, edge migration agent, repositories"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Cloud logic server: the authoritative world and the CSM session manager.
    Cloud(app::cloud::CloudArgs),
    /// One application instance (normally started by the edge agent).
    Instance(app::instance::InstanceArgs),
    /// Edge migration agent: starts and stops instances, keeps the edge repository.
    Agent(app::agent::AgentArgs),
    /// Cloud application repository (HTTP), the source edges pull from.
    RepoServer(app::repo::RepoServerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Cloud(a) => app::cloud::main(a),
        Cmd::Instance(a) => app::instance::main(a),
        Cmd::Agent(a) => app::agent::main(a),
        Cmd::RepoServer(a) => app::repo::main(a),
    }
}
