//! `hoist import FILE|- [NAME]`: a root file system tarball (plain, gzip, zstd, bzip2 or xz; a
//! file or standard input) becomes a one-layer base image, as `docker import` / `podman import`.
//! Prints the new image's ID.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{output, Globals};
use crate::image::config::Change;
use crate::image::Reference;
use crate::store::{ImportOptions, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tarball to import, or `-` for standard input
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,

    /// Name for the image (unqualified names get `localhost/`, the tag defaults to `latest`)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Apply a Dockerfile instruction to the config: ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL
    /// or EXPOSE (repeatable)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,

    /// Comment for the image's history
    #[arg(short = 'm', long = "message", value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Print nothing but errors
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // check everything the user typed before touching the store
    let names = match &args.name {
        Some(n) => vec![Reference::parse_local(n)?],
        None => Vec::new(),
    };
    let changes = args
        .change
        .iter()
        .map(|c| Change::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let source = args.file.to_string_lossy().into_owned();
    if source.starts_with("http://") || source.starts_with("https://") {
        anyhow::bail!(
            "importing from a URL (`{source}`) is not supported: download the file first"
        );
    }
    let mut input: Box<dyn Read> = if source == "-" {
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.file).with_context(|| format!("`{source}`"))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            anyhow::bail!("`{source}` is a directory, not a tarball");
        }
        Box::new(BufReader::with_capacity(256 * 1024, f))
    };
    let opts = ImportOptions {
        changes,
        message: args.message,
        source_name: source,
        created: source_date_epoch()?,
        names,
    };
    let store = Store::open(&globals.root)?;
    let image = store.import_rootfs(&mut input, &opts)?;
    if !args.quiet {
        output::println(image.id.hex());
    }
    Ok(ExitCode::SUCCESS)
}

/// `SOURCE_DATE_EPOCH`, when set, fixes the creation time (reproducible imports).
fn source_date_epoch() -> anyhow::Result<Option<DateTime<Utc>>> {
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    let secs: i64 = s
        .parse()
        .map_err(|_| anyhow::anyhow!("`SOURCE_DATE_EPOCH` is `{s}`, not a number of seconds"))?;
    DateTime::from_timestamp(secs, 0)
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("`SOURCE_DATE_EPOCH` `{s}` is out of range"))
}
