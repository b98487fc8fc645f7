//! The hidden `hoist __init FD` subcommand: the container's init, started by the sandbox (see
//! `sandbox::init`). It must not touch the store, parse nothing else and log only through `log`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The socket to the parent (internal)
    pub fd: i32,
}

pub fn run(args: Args) -> ExitCode {
    let code = crate::sandbox::init::main(args.fd);
    ExitCode::from(u8::try_from(code).unwrap_or(125))
}
