//! `hoist commit [-m MSG] [-a AUTHOR] [--change INSTR]… [--squash] CONTAINER [IMAGE]` (docker's
//! and buildah's flags): the container's upper dir becomes one layer, exactly as a build's RUN
//! step does, on top of the image it sits on, with its config copy and one history entry. The
//! container then sits on the new image with a fresh upper dir, so the next commit holds only
//! what changed since.

use std::process::ExitCode;

use super::{output, Globals};
use crate::container::{self, CommitOptions};
use crate::exec::config::ImageConfig;
use crate::image::config::Change;
use crate::image::Reference;
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Prints the new image's ID. Without IMAGE the image has no name (`<none>` in `hoist images`). The history entry's CREATED BY lists what was done since the last commit (`RUN …`, `COPY …`), its comment is `-m`. `--change` takes Dockerfile instructions (ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE), as `docker commit -c` does. `--timestamp` (or SOURCE_DATE_EPOCH) and `--compression` work as in `hoist build`."
)]
pub struct Args {
    /// The history entry's comment
    #[arg(short, long, value_name = "MSG")]
    pub message: Option<String>,
    /// The image's author
    #[arg(short, long, value_name = "AUTHOR")]
    pub author: Option<String>,
    /// A Dockerfile instruction applied to the config (repeatable)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Make the image one layer: the base image's layers and the changes flattened
    #[arg(long)]
    pub squash: bool,
    /// Set every time in the image (config, history, layer entries) to this Unix time
    #[arg(long, value_name = "N")]
    pub timestamp: Option<i64>,
    /// Layer blobs: `none` (default), `gzip` or `zstd`
    #[arg(long, value_name = "FORMAT", default_value = "none")]
    pub compression: String,
    /// Level for `--compression`: gzip 0-9 (default 6), zstd 1-19 (default 3)
    #[arg(long, value_name = "N")]
    pub compression_level: Option<i32>,
    /// The container: its name, ID or a unique ID prefix
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new image's name
    #[arg(value_name = "IMAGE")]
    pub image: Option<String>,
}

/// Applies a parsed `--change` to the config.
pub fn apply_change(c: &mut ImageConfig, change: &Change) {
    match change {
        Change::Env(pairs) => {
            for (k, v) in pairs {
                c.set_env(k, v);
            }
        }
        Change::Cmd(v) => c.set_cmd(v.clone()),
        Change::Entrypoint(v) => c.set_entrypoint(v.clone(), false),
        Change::Workdir(w) => c.set_workdir(w),
        Change::User(u) => c.set_user(u),
        Change::Label(pairs) => {
            for (k, v) in pairs {
                c.set_label(k, v);
            }
        }
        Change::Expose(ports) => {
            for p in ports {
                c.expose(p);
            }
        }
    }
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // every input is checked before the store changes
    let names = match &args.image {
        Some(n) => vec![Reference::parse_local(n)?],
        None => Vec::new(),
    };
    let changes = super::import::parse_changes(&args.change)?;
    let timestamp = super::build::timestamp(args.timestamp)?;
    let compression = super::build::parse_compression(&args.compression, args.compression_level)?;
    let store = Store::open(&globals.root)?;
    let mut rec = containers::find(&store, &args.container)?;
    let _held = container::lock(&store, &rec)?;
    container::mount::check_unmounted(&store, &rec)?;
    let mut config = container::config(&store, &rec)?;
    for c in &changes {
        apply_change(&mut config, c);
    }
    let opts = CommitOptions {
        message: args.message.clone(),
        author: args.author.clone(),
        squash: args.squash,
        timestamp,
        compression,
        names,
    };
    let image = container::commit(&store, &mut rec, config, &opts)?;
    output::println(&image.id.to_string());
    Ok(ExitCode::SUCCESS)
}
