//! `hoist check [--repair] [--verify-layers]`: checks the store as `podman system check` does and
//! prints one line per problem (exit 1), or a short summary when it is clean (exit 0). With
//! `--repair`, what is damaged or left over is removed (or re-moded), the store is checked again,
//! and the exit status says whether it is clean now.

use std::process::ExitCode;

use super::{output, Globals};
use crate::store::{CheckOptions, CheckReport, Store};
use crate::util::human_size;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Checks that every blob re-hashes to its name, that every manifest, config and layer an image names is present with the size its descriptor says, that every unpacked layer is complete (it carries the completion marker written after a fully synced unpack), that the store's private dirs are closed to other users, and lists what interrupted work left behind (scratch dirs of hoist processes that are gone, interrupted `index.json` writes, half-unpacked layers). `--verify-layers` also compares every unpacked layer with a fresh unpack of its blob. Prints one line per problem and exits 1; prints a summary and exits 0 when the store is clean.\n\n`--repair` deletes damaged blobs, drops images that name something missing from `index.json`, deletes leftovers and damaged or half-unpacked layers (they are unpacked again from their blob when next used), and re-modes private dirs; it never invents content. It then checks again and exits 0 only when the store is clean."
)]
pub struct Args {
    /// Remove what is damaged or left over, then check again
    #[arg(long)]
    pub repair: bool,

    /// Also compare every unpacked layer with a fresh unpack of its blob (reads all layer data)
    #[arg(long)]
    pub verify_layers: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // the store is opened without its usual sweep, so that leftovers are seen and listed
    let store = Store::open_unswept(&globals.root)?;
    let opts = CheckOptions {
        repair: args.repair,
        verify_layers: args.verify_layers,
    };
    let mut report = store.check(opts)?;
    if args.repair {
        let mut repaired = 0;
        for p in report.problems.iter().filter(|p| p.repaired) {
            output::println(&format!("repaired: {}", p.line));
            repaired += 1;
        }
        if repaired > 0 {
            report = store.check(CheckOptions {
                repair: false,
                ..opts
            })?;
        }
    }
    let remaining: Vec<_> = report.remaining().collect();
    if remaining.is_empty() {
        output::println(&summary(&store, &report));
        return Ok(ExitCode::SUCCESS);
    }
    for p in &remaining {
        output::println(&p.line);
    }
    let n = remaining.len();
    output::error(&format!(
        "store `{}`: {n} problem{}{}",
        store.root().display(),
        if n == 1 { "" } else { "s" },
        if args.repair {
            " left after repair"
        } else {
            " (`hoist check --repair` removes what is damaged or left over)"
        }
    ));
    Ok(ExitCode::from(1))
}

fn summary(store: &Store, r: &CheckReport) -> String {
    format!(
        "store `{}`: {} image{}, {} blob{} ({}), {} unpacked layer{}: no problems{}",
        store.root().display(),
        r.images,
        if r.images == 1 { "" } else { "s" },
        r.blobs,
        if r.blobs == 1 { "" } else { "s" },
        human_size(r.blob_bytes),
        r.layers,
        if r.layers == 1 { "" } else { "s" },
        if r.read_only {
            " (read-only: unpacked layers and scratch dirs of another user not checked)"
        } else {
            ""
        }
    )
}
