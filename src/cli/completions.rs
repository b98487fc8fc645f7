//! `hoist completions SHELL`: prints a completion script generated from the one clap definition.

use std::process::ExitCode;

use clap::CommandFactory;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = super::Cli::command();
    // generated whole, then written: clap_complete panics on a failed write
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "hoist", &mut script);
    super::output::write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
