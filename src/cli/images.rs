//! `hoist images` (being written).

use std::process::ExitCode;

use super::Globals;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hoist images: PLACEHOLDER not built yet")
}
