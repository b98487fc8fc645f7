//! `hoist copy` and `hoist add` (buildah's): copy host files (or, with `--from`, files of an
//! image or another container) into a working container, with the build's COPY/ADD code. `add`
//! also unpacks a local tar archive at the destination and fetches URLs, as ADD does.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Globals;
use crate::container::{self, CopyRequest, Sources};
use crate::exec::add;
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Sources are host paths (relative to the current directory), or with `--from` paths in an image or another container. A directory's contents are copied (as COPY does); several sources need a destination directory ending in `/`. Files are owned by 0:0 unless `--chown` says otherwise (with `--from`, they keep their owners). `add` also unpacks a local tar archive (plain, gzip, bzip2, xz or zstd) into the destination and downloads `http(s)://` URLs (mode 0600). Every source is checked before the container changes."
)]
pub struct Args {
    /// Owner of the copied files: `user[:group]` (names from the container's /etc/passwd)
    #[arg(long, value_name = "USER[:GROUP]")]
    pub chown: Option<String>,
    /// Mode of the copied files: octal or symbolic (`u+x`)
    #[arg(long, value_name = "MODE")]
    pub chmod: Option<String>,
    /// Copy from an image or a container instead of the host
    #[arg(long, value_name = "IMAGE|CONTAINER")]
    pub from: Option<String>,
    /// The container: its name, ID or a unique ID prefix
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Sources, then the destination in the container
    #[arg(value_name = "SRC… DEST", num_args = 2.., required = true)]
    pub paths: Vec<String>,
}

pub fn run(args: Args, globals: &Globals, is_add: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let mut rec = containers::find(&store, &args.container)?;
    let (dest, srcs) = args
        .paths
        .split_last()
        .expect("clap requires two paths or more");
    let urls: Vec<String> = srcs.iter().filter(|s| add::is_url(s)).cloned().collect();
    let locals: Vec<String> = srcs.iter().filter(|s| !add::is_url(s)).cloned().collect();
    let verb = if is_add { "add" } else { "copy" };
    if !urls.is_empty() && !is_add {
        anyhow::bail!("`{}`: `copy` does not fetch URLs: use `hoist add`", urls[0]);
    }
    if !urls.is_empty() && args.from.is_some() {
        anyhow::bail!("`{}`: a URL cannot be read `--from` an image", urls[0]);
    }
    let sources = match &args.from {
        None => Sources::Host(locals.iter().map(PathBuf::from).collect()),
        Some(from) => {
            let found = containers::list(&store)?
                .into_iter()
                .find(|c| c.name == *from || c.id == *from);
            let (layers, what) = match found {
                Some(c) => {
                    let mut l = container::lower_dirs(&store, &c)?;
                    l.push(containers::upper(&store, &c.id));
                    (l, format!("container `{from}`"))
                }
                None => {
                    let img = store.resolve(from)?;
                    (store.layer_dirs(&img)?, format!("image `{from}`"))
                }
            };
            Sources::View {
                layers,
                paths: locals.clone(),
                what,
            }
        }
    };
    let req = CopyRequest {
        sources,
        urls,
        dest: dest.clone(),
        chown: args.chown.clone(),
        chmod: args.chmod.clone(),
        add: is_add,
    };
    let _held = container::lock(&store, &rec)?;
    container::mount::check_unmounted(&store, &rec)?;
    container::copy(&store, &rec, &req)?;
    let mut what = format!("{} {} {}", verb.to_uppercase(), srcs.join(" "), dest);
    if let Some(f) = &args.from {
        what = format!(
            "{} --from={f} {} {}",
            verb.to_uppercase(),
            srcs.join(" "),
            dest
        );
    }
    container::record_copy(&store, &mut rec, what)?;
    Ok(ExitCode::SUCCESS)
}
