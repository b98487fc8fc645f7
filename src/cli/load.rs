//! `hoist load [-i FILE]`: reads an oci-archive or docker-archive (plain or compressed, from a
//! file or standard input) and copies every image in it into the store with its names, printing
//! `Loaded image: NAME` per name as podman does (`Loaded image: sha256:…` for an unnamed one).
//! The signature policy's `oci-archive` / `docker-archive` transports decide whether it may.
//!
//! The whole archive is checked before the store is touched: its entries, that every blob a
//! manifest names is there, and (docker-archive) every layer against its diff_id while it is
//! compressed again. Each image is then copied with [`Store::copy_from`], which verifies every
//! blob's digest before anything becomes visible.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{output, Globals};
use crate::archive;
use crate::image::ImageSource;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Read the archive from FILE instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// Print nothing on success
    #[arg(short, long)]
    pub quiet: bool,

    #[command(flatten)]
    pub trust: super::sign::TrustArgs,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let input = args.input.filter(|p| p.as_os_str() != "-");
    if input.is_none() && std::io::stdin().is_terminal() {
        anyhow::bail!(
            "cannot read an archive from a terminal: use `-i FILE` or redirect standard input"
        );
    }
    if let Some(p) = &input {
        // a clear message before the store is even opened
        std::fs::metadata(p).map_err(|e| anyhow::anyhow!("`{}`: {e}", p.display()))?;
    }
    let store = Store::open(&globals.root)?;
    let scratch = store.tmp_dir()?;
    let loaded = match &input {
        Some(p) => archive::read_archive(p, scratch.path())?,
        None => archive::read_archive_stream(
            std::io::stdin().lock(),
            Path::new("standard input"),
            scratch.path(),
        )?,
    };
    // the signature policy's `oci-archive` / `docker-archive` scopes decide (archives carry no
    // sigstore signatures: a `sigstoreSigned` requirement refuses them) before anything is stored
    if let Some(policy) = super::sign::load_policy(&args.trust)? {
        let file = input.clone().unwrap_or_else(|| PathBuf::from("/dev/stdin"));
        policy
            .check_archive(&loaded.format.to_string(), &file)
            .map_err(anyhow::Error::new)?;
    }
    for image in &loaded.images {
        let names = image.names().to_vec();
        let src: &dyn ImageSource = image;
        let record = store.copy_from(src, &names)?;
        if args.quiet {
            continue;
        }
        if names.is_empty() {
            output::println(&format!("Loaded image: {}", record.id));
        }
        for n in &names {
            output::println(&format!("Loaded image: {n}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
