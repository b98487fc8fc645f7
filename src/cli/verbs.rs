//! docker's management verbs (`hoist image ls`, `hoist system prune`, …) as other names of the
//! short verbs: each variant wraps the short verb's own `Args`, and [`Command::into_verb`] turns
//! it into that verb before anything runs, so every verb has one implementation. Also
//! `system df` (the only management verb without a short form) and the suggestion shown for an
//! unknown verb, made only when the typed word is close to a real one.
//!
//! `container prune` has no short form and stays a verb of its own, as `system df` does.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::CommandFactory;
use serde::Serialize;

use super::inspect::ListFormat;
use super::{
    build, history, images, import, info, inspect, load, output, prune, rmi, save, tag, Command,
    Globals,
};
use crate::store::{cache, Store};
use crate::util::human_size;

/// `hoist image VERB`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images in the local store (as `hoist images`)
    #[command(visible_alias = "list")]
    Ls(images::Args),
    /// Remove image names, and images nothing names (as `hoist rmi`)
    #[command(visible_alias = "remove")]
    Rm(rmi::Args),
    /// Show an image's details as JSON (as `hoist inspect`)
    Inspect(inspect::Args),
    /// Show the history of an image (as `hoist history`)
    History(history::Args),
    /// Remove unnamed images and unused data (as `hoist prune`)
    Prune(prune::Args),
    /// Give an image more names (as `hoist tag`)
    Tag(tag::Args),
    /// Write images to an archive (as `hoist save`)
    Save(save::Args),
    /// Load images from an archive (as `hoist load`)
    Load(load::Args),
    /// Make a base image from a root file system tarball (as `hoist import`)
    Import(import::Args),
    /// Build an image from a Dockerfile (as `hoist build`)
    Build(Box<build::Args>),
}

/// `hoist container VERB`.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// List containers (as `hoist ps`)
    #[command(visible_alias = "list", visible_alias = "ps")]
    Ls(super::ps::Args),
    /// Remove working containers (as `hoist rm`)
    #[command(visible_alias = "remove")]
    Rm(super::rm::Args),
    /// Remove every container not in use
    Prune(super::rm::PruneArgs),
    /// Show what a container changed (as `hoist diff`)
    Diff(super::diff::Args),
    /// Make an image of a container's changes (as `hoist commit`)
    Commit(super::commit::Args),
    /// Run a command in a new or working container (as `hoist run`)
    Run(Box<super::run::Args>),
    /// Make a working container (as `hoist from`)
    Create(super::from::Args),
    /// Mount a working container's root file system (as `hoist mount`)
    Mount(super::mount::Args),
    /// Unmount working containers (as `hoist umount`)
    #[command(visible_alias = "unmount")]
    Umount(super::mount::UmountArgs),
}

/// `hoist system VERB`.
#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show the disk space the store uses: images and build cache
    Df(DfArgs),
    /// Remove unnamed images and unused data (as `hoist prune`)
    Prune(prune::Args),
    /// Show how hoist runs on this machine (as `hoist info`)
    Info(info::Args),
    /// Check the store for damage and leftovers (as `hoist check`, podman's `system check`)
    Check(super::check::Args),
}

impl Command {
    /// The short verb a management verb stands for; every other command is returned as is.
    /// `system df` has no short form and stays.
    pub fn into_verb(self) -> Command {
        match self {
            Command::Image(c) => match c {
                ImageCommand::Ls(a) => Command::Images(a),
                ImageCommand::Rm(a) => Command::Rmi(a),
                ImageCommand::Inspect(a) => Command::Inspect(a),
                ImageCommand::History(a) => Command::History(a),
                ImageCommand::Prune(a) => Command::Prune(a),
                ImageCommand::Tag(a) => Command::Tag(a),
                ImageCommand::Save(a) => Command::Save(a),
                ImageCommand::Load(a) => Command::Load(a),
                ImageCommand::Import(a) => Command::Import(a),
                ImageCommand::Build(a) => Command::Build(a),
            },
            Command::Container(c) => match c {
                ContainerCommand::Ls(a) => Command::Ps(a),
                ContainerCommand::Rm(a) => Command::Rm(a),
                ContainerCommand::Diff(a) => Command::Diff(a),
                ContainerCommand::Commit(a) => Command::Commit(a),
                ContainerCommand::Run(a) => Command::Run(*a),
                ContainerCommand::Create(a) => Command::From(a),
                ContainerCommand::Mount(a) => Command::Mount(a),
                ContainerCommand::Umount(a) => Command::Umount(a),
                p @ ContainerCommand::Prune(_) => Command::Container(p),
            },
            Command::Containers(mut a) => {
                a.all = true;
                Command::Ps(a)
            }
            Command::System(SystemCommand::Prune(a)) => Command::Prune(a),
            Command::System(SystemCommand::Info(a)) => Command::Info(a),
            Command::System(SystemCommand::Check(a)) => Command::Check(a),
            other => other,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "One row for the images, one for the working containers and one for the build cache, as `docker system df`. SIZE of the images is their unpacked size (the uncompressed layers, as `hoist images` shows it), every layer counted once however many images share it; an image a container sits on is ACTIVE, and what only other images use is RECLAIMABLE by `hoist prune -a`. (`hoist images --digests` shows what each image's blobs take as stored.) The containers row counts the bytes of their upper dirs; ACTIVE ones are in use by a hoist process now, the others are RECLAIMABLE by `hoist container prune`. The build cache row counts the cached steps and the bytes of the cache directory (`RUN --mount=type=cache` directories included), reclaimable by `hoist builder prune`."
)]
pub struct DfArgs {
    /// Output format: `table`, `json`, or a Go template over Type, TotalCount, Active, Size,
    /// Reclaimable (`{{.Type}} {{.Size}}`)
    #[arg(long = "format", value_name = "FORMAT", default_value = "table")]
    pub format: String,
}

/// One row of `system df`, under docker's JSON names.
#[derive(Debug, Serialize)]
struct DfRow {
    #[serde(rename = "Type")]
    typ: &'static str,
    #[serde(rename = "TotalCount")]
    total: usize,
    #[serde(rename = "Active")]
    active: usize,
    #[serde(rename = "Size")]
    size: String,
    #[serde(rename = "Reclaimable")]
    reclaimable: String,
}

/// `hoist system df`.
pub fn run_df(args: DfArgs, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = ListFormat::parse(&args.format)?;
    let store = Store::open(&globals.root)?;
    let images = store.images()?;
    // every blob once: shared base layers are not counted per image
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    for r in &images {
        blobs.insert(r.manifest_digest.to_string(), r.manifest_size);
        blobs.insert(r.id.to_string(), r.config_size);
        for l in r.manifest.layers() {
            blobs.insert(l.digest().to_string(), l.size());
        }
    }
    log::debug!(
        "image blobs take {} in the store",
        human_size(blobs.values().sum())
    );
    let image_bytes = store.unpacked_total(&images)?;
    // what images containers sit on need is not reclaimable
    let containers = crate::store::containers::list(&store)?;
    let used: std::collections::BTreeSet<String> = containers
        .iter()
        .filter_map(|c| c.image_id.clone())
        .collect();
    let (active, _): (Vec<_>, Vec<_>) = images
        .iter()
        .cloned()
        .partition(|r| used.contains(&r.id.to_string()));
    let image_reclaimable = image_bytes.saturating_sub(store.unpacked_total(&active)?);
    let active_images = active.len();
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let mut container_bytes = 0;
    let mut container_free = 0;
    let mut container_active = 0;
    for c in &containers {
        let n = crate::store::tree_size(&crate::store::containers::upper(&store, &c.id));
        container_bytes += n;
        if crate::store::containers::in_use(&store, c) {
            container_active += 1;
        } else {
            container_free += n;
        }
    }
    let cache_steps = cache::needs(&store)?.len();
    let cache_bytes = crate::store::tree_size(&store.cache_dir());
    let rows = [
        DfRow {
            typ: "Images",
            total: images.len(),
            active: active_images,
            size: human_size(image_bytes),
            reclaimable: format!(
                "{} ({}%)",
                human_size(image_reclaimable),
                pct(image_reclaimable, image_bytes)
            ),
        },
        DfRow {
            typ: "Containers",
            total: containers.len(),
            active: container_active,
            size: human_size(container_bytes),
            reclaimable: format!(
                "{} ({}%)",
                human_size(container_free),
                pct(container_free, container_bytes)
            ),
        },
        DfRow {
            typ: "Build Cache",
            total: cache_steps,
            active: 0,
            size: human_size(cache_bytes),
            reclaimable: human_size(cache_bytes),
        },
    ];
    match format {
        ListFormat::Table => output::table(
            &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.typ.to_string(),
                        r.total.to_string(),
                        r.active.to_string(),
                        r.size.clone(),
                        r.reclaimable.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        ListFormat::Json => {
            for r in &rows {
                output::println(&serde_json::to_string(r)?);
            }
        }
        ListFormat::Template(t) => {
            for r in &rows {
                output::println(&t.render(&serde_json::to_value(r)?)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Every name a verb can be called by at the level of `path` (`[]` for the top level,
/// `["image"]` for `hoist image …`), hidden verbs left out.
fn verb_names(path: &[String]) -> Vec<String> {
    let mut cmd = super::Cli::command();
    for p in path {
        // option values (`--root DIR`) are skipped: only verbs lead deeper
        if let Some(c) = cmd.find_subcommand(p) {
            cmd = c.clone();
        }
    }
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(|s| {
            std::iter::once(s.get_name().to_string())
                .chain(s.get_visible_aliases().map(str::to_string))
        })
        .collect()
}

/// The verb `typed` was probably meant to be: one or two edits away (a swap counts as one),
/// and fewer than half its letters changed. `stop` suggests nothing; `biuld` suggests `build`.
pub fn suggest(typed: &str, names: &[String]) -> Option<String> {
    names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(typed, n), n))
        .filter(|(d, n)| *d <= 2 && *d * 2 < typed.chars().count().max(n.chars().count()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n.clone())
}

/// For an unknown verb, prints clap's error with hoist's own suggestion (clap's similarity
/// measure suggests `history` for `stop`) and returns the usage exit code; `None` for any
/// other parse error.
pub fn unknown_verb(e: &clap::Error) -> Option<ExitCode> {
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(typed)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    // the verbs typed before the unknown one, to suggest among their subcommands
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path: Vec<String> = args
        .iter()
        .take_while(|a| *a != typed)
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let mut err = clap::Error::new(ErrorKind::InvalidSubcommand).with_cmd(&super::Cli::command());
    err.insert(
        ContextKind::InvalidSubcommand,
        ContextValue::String(typed.clone()),
    );
    if let Some(s) = suggest(typed, &verb_names(&path)) {
        err.insert(
            ContextKind::SuggestedSubcommand,
            ContextValue::Strings(vec![s]),
        );
    }
    if let Some(u) = e.get(ContextKind::Usage) {
        err.insert(ContextKind::Usage, u.clone());
    }
    let _ = err.print();
    Some(ExitCode::from(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_only_when_close() {
        let names: Vec<String> = ["build", "images", "history", "inspect", "rmi", "prune"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(suggest("stop", &names), None);
        assert_eq!(suggest("ps", &names), None);
        assert_eq!(suggest("biuld", &names).as_deref(), Some("build"));
        assert_eq!(suggest("image", &names).as_deref(), Some("images"));
        assert_eq!(suggest("histroy", &names).as_deref(), Some("history"));
        assert_eq!(suggest("rm", &names).as_deref(), Some("rmi"));
    }
}
