//! `hoist mount [CONTAINER…]` and `hoist umount CONTAINER…|--all` (buildah's and podman's
//! verbs): a working container's root file system mounted at `containers/ID/merged`, or the
//! list of what is mounted. Rootless, a mount only lasts as long as a mount namespace, so it is
//! made inside `hoist unshare` (as buildah requires `buildah unshare`); as root it is made in
//! the host's and stays until `hoist umount`.

use std::process::ExitCode;

use super::{output, Globals};
use crate::container::{self, mount};
use crate::sandbox::userns::{self, UsernsMode};
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Prints the mount point (`NAME PATH` lines when several containers are named; with none, lists the mounted containers that way). Files written through the mount point land in the container's upper dir: `hoist diff` and `hoist commit` see them after `hoist umount`. While mounted, `run`, `copy`, `add` and `commit` of the container refuse, so the upper dir does not change under the mount. Rootless, run it inside `hoist unshare` (`hoist unshare sh -c 'cd $(hoist mount c) && …'`): the mount ends with that session. Without CONTAINER only mounts of the current mount namespace are listed; a container mounted in another live `hoist unshare` session is refused to `run`, `copy`, `commit`, `rm` and `mount` until that session umounts it or ends."
)]
pub struct Args {
    /// Containers to mount: names, IDs or unique ID prefixes (none: list the mounted ones)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Prints the name of each container unmounted. A container that is not mounted in this mount namespace is an error."
)]
pub struct UmountArgs {
    /// Unmount every mounted container (none may be named then)
    #[arg(short, long)]
    pub all: bool,
    /// Containers to unmount: names, IDs or unique ID prefixes
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Fails unless a mount made now outlives this process: real root, or inside `hoist unshare`.
fn check_namespace() -> anyhow::Result<()> {
    match userns::current() {
        Some(UsernsMode::Root) | None => Ok(()),
        Some(UsernsMode::Unavailable { reason }) => {
            anyhow::bail!("cannot mount containers: {reason}")
        }
        Some(_) if userns::inherited() => Ok(()),
        Some(_) => anyhow::bail!(
            "cannot mount containers in rootless mode outside hoist's user namespace: run the \
             commands that use the mount inside `hoist unshare`"
        ),
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    if args.containers.is_empty() {
        for r in containers::list(&store)? {
            if let Some(p) = mount::mounted_at(&store, &r) {
                output::println(&format!("{} {}", r.name, p.display()));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // every name is found before anything is mounted
    let recs = args
        .containers
        .iter()
        .map(|c| containers::find(&store, c))
        .collect::<Result<Vec<_>, _>>()?;
    check_namespace()?;
    for r in &recs {
        let _held = container::lock(&store, r)?;
        let p = mount::mount(&store, r)?;
        if recs.len() == 1 {
            output::println(&p.display().to_string());
        } else {
            output::println(&format!("{} {}", r.name, p.display()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_umount(args: UmountArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.all != args.containers.is_empty() {
        anyhow::bail!("name the containers to unmount, or give `--all` alone");
    }
    let store = Store::open(&globals.root)?;
    let recs = if args.all {
        containers::list(&store)?
            .into_iter()
            .filter(|r| mount::mounted_at(&store, r).is_some())
            .collect()
    } else {
        let recs = args
            .containers
            .iter()
            .map(|c| containers::find(&store, c))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(r) = recs.iter().find(|r| mount::mounted_at(&store, r).is_none()) {
            mount::forget_stale(&store, r)?;
            if let Some(ns) = mount::mounted_elsewhere(&store, r) {
                anyhow::bail!(
                    "container `{}` is mounted in another mount namespace (`{ns}`, a `hoist \
                     unshare` session): umount it there",
                    r.name
                );
            }
            anyhow::bail!("container `{}` is not mounted", r.name);
        }
        recs
    };
    for r in &recs {
        let _held = container::lock(&store, r)?;
        mount::unmount(&store, r)?;
        output::println(&r.name);
    }
    Ok(ExitCode::SUCCESS)
}
