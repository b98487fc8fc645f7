//! `hoist prune [-a]`: removes unnamed images that are no other image's parent (`-a`: every
//! image, as `podman image prune -a` with no containers), then every blob and unpacked layer no
//! image references; prints the removed image IDs and the space reclaimed. Never prompts.
//! Build cache entries whose layer is gone go too. `--cache` (and `hoist builder prune`, as
//! `docker builder prune`) removes the whole build cache instead, `RUN --mount=type=cache`
//! directories included.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::{PruneMode, Store};
use crate::util::human_size;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Without `--all`, removes unnamed images that are no other image's parent (dangling images); with `--all`, every image. Then deletes every blob and unpacked layer no remaining image references, and prints the removed image IDs and the space reclaimed. Blobs and layers stay while another hoist process works on the store. Build cache entries whose layer is gone are dropped too; `--cache` (or `hoist builder prune`) removes the whole build cache instead, `RUN --mount=type=cache` directories included, and leaves the images alone."
)]
pub struct Args {
    /// Remove every image, not only unnamed ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Do not ask for confirmation (hoist never asks; accepted for podman's scripts)
    #[arg(short = 'f', long = "force")]
    pub force: bool,

    /// Remove the build cache (every cached step and the `RUN --mount=type=cache` directories)
    /// instead of images
    #[arg(long = "cache", conflicts_with = "all")]
    pub cache: bool,
}

/// `hoist builder VERB`.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove the build cache (as `docker builder prune`)
    Prune(BuilderPruneArgs),
}

#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Remove the whole cache (hoist keeps no other kind; accepted for docker's scripts)
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Do not ask for confirmation (hoist never asks; accepted for docker's scripts)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

pub fn run_builder(cmd: BuilderCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        BuilderCommand::Prune(_) => clear_cache(globals),
    }
}

fn clear_cache(globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let report = crate::store::cache::clear(&store)?;
    output::println(&format!("Removed {} cached steps", report.entries));
    output::println(&format!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed)
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.cache {
        return clear_cache(globals);
    }
    let store = Store::open(&globals.root)?;
    let mode = if args.all {
        PruneMode::All
    } else {
        PruneMode::Dangling
    };
    let report = store.prune(mode)?;
    let stale = crate::store::cache::prune_missing(&store)?;
    if stale > 0 {
        log::info!("removed {stale} build cache entries whose layers are gone");
    }
    for id in &report.removed_images {
        output::println(id.hex());
    }
    if report.collection_skipped {
        output::warn(
            "another hoist process is using the store: unused blobs and layers were left in place",
        );
    }
    output::println(&format!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed)
    ));
    Ok(ExitCode::SUCCESS)
}
