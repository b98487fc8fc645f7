//! `hoist logout REGISTRY | --all`: removes stored credentials from the auth file `login`
//! writes (or `--authfile`). Credentials in `~/.docker/config.json` or a credential helper are
//! left alone (podman does the same).

use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;
use crate::registry::auth;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry: `HOST[:PORT]`
    #[arg(
        value_name = "REGISTRY",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub registry: Option<String>,
    /// Remove the credentials of every registry
    #[arg(short, long)]
    pub all: bool,
    /// The auth file to edit
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let host = match &args.registry {
        Some(r) => Some(super::login::registry_host(r)?),
        None => None,
    };
    let removed = auth::remove(host.as_deref(), args.authfile.as_deref())?;
    match (host, removed) {
        (Some(h), true) => super::output::println(&format!("Removed login credentials for {h}")),
        (Some(h), false) => anyhow::bail!("not logged into `{h}`"),
        (None, _) => super::output::println("Removed login credentials for all registries"),
    }
    Ok(ExitCode::SUCCESS)
}
