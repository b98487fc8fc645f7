//! The hidden `hoist __init` subcommand: the container's init, started by the sandbox (being written).

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    ExitCode::from(125)
}
