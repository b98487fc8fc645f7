//! `hoist diff CONTAINER`: what the container changed, as `docker diff` prints it (`A` added,
//! `C` changed, `D` deleted), relative to the image it sits on (its last commit, if any).

use std::process::ExitCode;

use super::{output, Globals};
use crate::container;
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "One line per path, in path order: `A /new`, `C /etc` (a directory whose contents changed, or a replaced file), `D /gone`. After `hoist commit` the container sits on the committed image, so `diff` shows what changed since that commit (docker compares with the original image)."
)]
pub struct Args {
    /// The container: its name, ID or a unique ID prefix
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let r = containers::find(&store, &args.container)?;
    for c in container::diff(&store, &r)? {
        output::println(&format!("{} {}", c.kind, c.path));
    }
    Ok(ExitCode::SUCCESS)
}
