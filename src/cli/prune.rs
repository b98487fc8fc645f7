//! `hoist prune [-a]`: removes unnamed images that are no other image's parent (`-a`: every
//! image, as `podman image prune -a` with no containers), then every blob and unpacked layer no
//! image references; prints the removed image IDs and the space reclaimed. `-a` asks for
//! confirmation on a terminal unless `-f`; without a terminal and without `-f` it removes
//! nothing and fails, so a script neither hangs on a prompt nor loses its named images by
//! accident.
//! Build cache entries whose layer is gone go too. `--cache` (and `hoist builder prune`, as
//! `docker builder prune`) removes the whole build cache instead, `RUN --mount=type=cache`
//! directories included; `builder prune --filter until=DURATION` and `--keep-storage SIZE`
//! remove only what was last written longer ago, then the oldest until the cache fits.

use std::io::IsTerminal;
use std::process::ExitCode;

use super::{output, Globals};
use crate::store::{PruneMode, Store};
use crate::util::human_size;

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Without `--all`, removes unnamed images that are no other image's parent (dangling images); with `--all`, every image, named bases included: it asks `[y/N]` first on a terminal, and without a terminal it removes nothing and fails unless `--force` is given. Then deletes every blob and unpacked layer no remaining image references, and prints the removed image IDs and the space reclaimed. Blobs and layers stay while another hoist process works on the store. Build cache entries whose layer is gone are dropped too; `--cache` (or `hoist builder prune`) removes the whole build cache instead, `RUN --mount=type=cache` directories included, and leaves the images alone."
)]
pub struct Args {
    /// Remove every image, not only unnamed ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Do not ask for confirmation before removing every image (`--all`); needed when standard
    /// input is not a terminal
    #[arg(short = 'f', long = "force")]
    pub force: bool,

    /// Remove the build cache (every cached step and the `RUN --mount=type=cache` directories)
    /// instead of images
    #[arg(long = "cache", conflicts_with = "all")]
    pub cache: bool,
}

/// Asks on the terminal whether to remove every image; `y` or `yes` goes on, anything else
/// (end of input included) keeps them. Without a terminal on standard input, fails: a script
/// must say `--force`.
fn confirm_all() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "`prune --all` removes every image, named ones included: nothing removed, as standard input is not a terminal to confirm on (add `-f` to remove them without asking)"
        );
    }
    let answer = output::ask(
        "WARNING! This will remove every image, named ones included, and the data only they use.\nAre you sure you want to continue? [y/N] ",
    )?;
    let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        output::note("nothing removed");
    }
    Ok(yes)
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

    /// Remove only what matches: `until=DURATION` (`24h`, `90m`), cached steps and cache mount
    /// directories last written longer ago than that
    #[arg(long = "filter", value_name = "FILTER")]
    pub filter: Vec<String>,

    /// Then remove the oldest until the build cache takes at most SIZE (`512MB`, `10GB`)
    #[arg(long = "keep-storage", value_name = "SIZE")]
    pub keep_storage: Option<String>,
}

pub fn run_builder(cmd: BuilderCommand, globals: &Globals) -> anyhow::Result<ExitCode> {
    match cmd {
        BuilderCommand::Prune(a) if a.filter.is_empty() && a.keep_storage.is_none() => {
            clear_cache(globals)
        }
        BuilderCommand::Prune(a) => prune_limited(&a, globals),
    }
}

/// `builder prune --filter until=… --keep-storage …`.
fn prune_limited(a: &BuilderPruneArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    use crate::dockerfile::instruction::{parse_duration, parse_size};
    let mut limits = crate::store::cache::CacheLimits::default();
    for f in &a.filter {
        match f.split_once('=') {
            Some(("until", v)) => match parse_duration(v) {
                Some((false, d)) => limits.older_than = Some(d),
                _ => {
                    return Err(anyhow::anyhow!(format!(
                        "`--filter {f}`: expected a duration such as `24h` or `90m`"
                    )))
                }
            },
            _ => {
                return Err(anyhow::anyhow!(format!(
                    "`--filter {f}`: unsupported filter (hoist knows `until=DURATION`)"
                )))
            }
        }
    }
    if let Some(k) = &a.keep_storage {
        let Some(n) = parse_size(k) else {
            return Err(anyhow::anyhow!(format!(
                "`--keep-storage {k}`: expected a size such as `512MB` or `10GB`"
            )));
        };
        limits.keep_bytes = Some(n);
    }
    let store = Store::open(&globals.root)?;
    let report = crate::store::cache::prune_limited(&store, limits)?;
    output::println(&format!("Removed {} cached steps", report.entries));
    output::println(&format!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed)
    ));
    Ok(ExitCode::SUCCESS)
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
    if args.all && !args.force && !confirm_all()? {
        return Ok(ExitCode::SUCCESS);
    }
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
