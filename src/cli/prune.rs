//! `hoist prune [-a]`: removes unnamed images that are no other image's parent (`-a`: every
//! image, as `podman image prune -a` with no containers), then every blob and unpacked layer no
//! image references; prints the removed image IDs and the space reclaimed. Never prompts.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::{PruneMode, Store};
use crate::util::human_size;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Without `--all`, removes unnamed images that are no other image's parent (dangling images); with `--all`, every image. Then deletes every blob and unpacked layer no remaining image references, and prints the removed image IDs and the space reclaimed. Blobs and layers stay while another hoist process works on the store."
)]
pub struct Args {
    /// Remove every image, not only unnamed ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Do not ask for confirmation (hoist never asks; accepted for podman's scripts)
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let mode = if args.all {
        PruneMode::All
    } else {
        PruneMode::Dangling
    };
    let report = store.prune(mode)?;
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
