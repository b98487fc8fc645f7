//! `hoist rm NAME…|--all` and `hoist container prune`: remove working containers (their upper
//! dirs with them; `rm` unmounts a mounted one first, `prune` leaves mounted ones). What their
//! images needed stays until `hoist prune`.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Remove every container (none may be named then)
    #[arg(short, long)]
    pub all: bool,
    /// Containers to remove: names, IDs or unique ID prefixes
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Removes every container no hoist process is using right now (docker's stopped containers), and prints their IDs."
)]
pub struct PruneArgs {
    /// Accepted for docker's scripts: hoist never asks
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.all != args.containers.is_empty() {
        anyhow::bail!("name the containers to remove, or give `--all` alone");
    }
    let store = Store::open(&globals.root)?;
    let doomed = if args.all {
        containers::list(&store)?
    } else {
        // every name is found before anything is removed
        args.containers
            .iter()
            .map(|c| containers::find(&store, c))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut failed = false;
    for r in &doomed {
        // as buildah's `rm`: a mounted container is unmounted first
        // (one mounted in another `hoist unshare` session is refused: umount it there)
        let removed = crate::container::mount::unmount(&store, r)
            .and_then(|_| crate::container::mount::check_unmounted(&store, r))
            .map_err(|e| e.to_string())
            .and_then(|_| containers::remove(&store, r).map_err(|e| e.to_string()));
        match removed {
            Ok(()) => output::println(&r.name),
            Err(e) => {
                output::error(&e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub fn run_prune(_args: PruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    for r in containers::list(&store)? {
        if containers::in_use(&store, &r)
            || crate::container::mount::check_unmounted(&store, &r).is_err()
        {
            continue;
        }
        match containers::remove(&store, &r) {
            Ok(()) => output::println(&r.id),
            // taken by a process between the check and the removal: it is in use, not stopped
            Err(crate::store::StoreError::ContainerInUse(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(ExitCode::SUCCESS)
}
