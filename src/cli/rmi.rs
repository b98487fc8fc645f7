//! `hoist rmi [-f] [-a] IMAGE…`: removes names, and images nothing names any more, as
//! `podman rmi`: a name of an image with several names is only untagged; an ID removes the
//! image with all its names (`-f` when it has more than one). Blobs another image shares stay.
//! Every argument is resolved before anything is removed, so an unknown image changes nothing.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::Store;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "A name of an image that has other names is only untagged. Naming the image by ID removes it with all its names (`--force` when it has more than one). Blobs and unpacked layers that no remaining image uses are deleted, unless another hoist process is working on the store; `hoist prune` deletes them later. Every argument is resolved first: if one is unknown, nothing is removed."
)]
pub struct Args {
    /// Remove images given by ID even when they have several names
    #[arg(short = 'f', long = "force")]
    pub force: bool,

    /// Remove every image
    #[arg(short = 'a', long = "all", conflicts_with = "images")]
    pub all: bool,

    /// Images to remove: names, IDs or unique ID prefixes
    #[arg(value_name = "IMAGE", required_unless_present = "all")]
    pub images: Vec<String>,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let targets: Vec<String> = if args.all {
        let mut ids: Vec<String> = store
            .images()?
            .iter()
            .map(|r| r.manifest_digest.to_string())
            .collect();
        ids.dedup();
        ids
    } else {
        for i in &args.images {
            store.resolve(i)?;
        }
        args.images.clone()
    };
    let force = args.force || args.all;
    let mut skipped = false;
    for t in &targets {
        let report = store.remove(t, force)?;
        for n in &report.untagged {
            output::println(&format!("Untagged: {n}"));
        }
        if let Some(id) = &report.deleted {
            output::println(&format!("Deleted: {}", id.hex()));
        }
        skipped |= report.collection_skipped;
    }
    if skipped {
        output::warn(
            "another hoist process is using the store: unused blobs stay until `hoist prune`",
        );
    }
    Ok(ExitCode::SUCCESS)
}
