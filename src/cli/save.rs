//! `hoist save [--format docker-archive|oci-archive] [-o FILE] IMAGE…`: writes images with their
//! names into one archive, as `podman save` does.
//!
//! The default format is `docker-archive`, podman's default (docker can load it too); its layers
//! are plain tars, as `docker save` writes them. `oci-archive` gzips layers the store keeps as
//! plain tars (`--uncompressed` keeps them plain), as podman does, through the store's record of
//! compressed copies ([`crate::store::compressed`]). An image
//! named by a name is saved under that name; one named by its ID is saved without names, as
//! podman and docker do. A regular `FILE` is written as a temporary file beside it, fsynced and
//! renamed, so a failure never leaves half an archive; a device or FIFO (`-o /dev/null`, a named
//! pipe) is written into, never replaced ([`crate::util::UserOutput`]). Without `-o` the archive
//! goes to standard output (refused when that is a terminal).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::Globals;
use crate::archive::{self, ArchiveFormat, SaveImage};
use crate::image::Reference;
use crate::store::{ImageRecord, Store};
use crate::util;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `docker save`'s format: manifest.json, uncompressed layer tars
    DockerArchive,
    /// A tar of an OCI image layout
    OciArchive,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Archive format
    #[arg(long, value_enum, default_value = "docker-archive")]
    pub format: Format,

    /// oci-archive: keep plain-tar layers uncompressed (by default they are gzip-compressed
    /// on the way out, as podman writes them); docker-archive layers are always plain tars
    #[arg(long)]
    pub uncompressed: bool,

    /// Write the archive to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// The images: names, IDs or unique ID prefixes
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// The stored name `typed` refers to, if it is a name of `image` (not an ID).
fn name_typed(typed: &str, image: &ImageRecord) -> Option<Reference> {
    let candidates = Reference::candidates(typed).ok()?;
    candidates.into_iter().find(|c| image.names.contains(c))
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        Format::DockerArchive => ArchiveFormat::DockerArchive,
        Format::OciArchive => ArchiveFormat::OciArchive,
    };
    let output = args.output.filter(|p| p.as_os_str() != "-");
    if output.is_none() && std::io::stdout().is_terminal() {
        anyhow::bail!(
            "refusing to write an archive to a terminal: use `-o FILE` or redirect standard output"
        );
    }
    let store = Store::open(&globals.root)?;
    // one entry per image, with every name it was asked for
    let mut chosen: Vec<(ImageRecord, Vec<Reference>, String)> = Vec::new();
    for typed in &args.images {
        let image = store.resolve(typed)?;
        let name = name_typed(typed, &image);
        match chosen.iter_mut().find(|(r, _, _)| r.id == image.id) {
            Some((_, names, _)) => names.extend(name.filter(|n| !names.contains(n))),
            None => chosen.push((image, name.into_iter().collect(), typed.clone())),
        }
    }
    // docker-archive carries plain tars (its writer decompresses); an OCI layout gets gzip
    let compression = match (format, args.uncompressed) {
        (ArchiveFormat::OciArchive, false) => crate::layer::Compression::Gzip,
        _ => crate::layer::Compression::None,
    };
    let sources = chosen
        .iter()
        .map(|(r, _, typed)| {
            let inner = store
                .source_compressed(r, compression)
                .with_context(|| format!("cannot compress the layers of `{typed}`"))?;
            Ok(AsOci {
                inner,
                convert: format == ArchiveFormat::OciArchive,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let items: Vec<SaveImage<'_>> = chosen
        .iter()
        .zip(&sources)
        .map(|((_, names, typed), src)| SaveImage {
            source: src,
            names: names.clone(),
            shown: typed.clone(),
        })
        .collect();
    match &output {
        Some(path) => write_file(path, format, &items)?,
        None => {
            let out = BufWriter::new(super::output::Stdout);
            let written = archive::write_archive(out, Path::new("standard output"), format, &items)
                .map_err(anyhow::Error::from)
                .and_then(|mut out| {
                    out.flush()
                        .context("writing the archive to standard output")
                });
            match written {
                // the reader went away: the end of the output, not a failure (the archive
                // writer keeps only the message of some write errors, so ask the printer)
                Err(_) if super::output::stdout_closed() => return Ok(ExitCode::SUCCESS),
                r => {
                    r?;
                }
            }
        }
    }
    if let Some(path) = &output {
        log::info!(
            "saved {} image(s) to `{}` as {format}",
            items.len(),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// An image of the store as `save` writes it: in an `oci-archive`, a manifest stored in Docker's
/// format (`build --format docker`) is written under OCI media types (the same config and layer
/// bytes), as podman's `save --format oci-archive` does, since OCI readers (skopeo's `oci-archive:`)
/// list only OCI manifests. A `docker-archive` has no manifest media types at all.
struct AsOci<'a> {
    inner: crate::store::StoreImage<'a>,
    convert: bool,
}

impl crate::image::ImageSource for AsOci<'_> {
    fn manifest(
        &self,
    ) -> Result<(Vec<u8>, oci_spec::image::ImageManifest), crate::image::ImageError> {
        let (bytes, parsed) = self.inner.manifest()?;
        if !self.convert {
            return Ok((bytes, parsed));
        }
        let invalid = |reason: String| crate::image::ImageError::Invalid {
            what: "manifest".into(),
            reason,
        };
        let (oci, _) = crate::registry::push::convert(&bytes, crate::registry::push::Format::Oci)
            .map_err(invalid)?;
        if oci == bytes {
            return Ok((bytes, parsed));
        }
        let parsed = serde_json::from_slice(&oci).map_err(|e| invalid(e.to_string()))?;
        Ok((oci, parsed))
    }

    fn config(&self) -> Result<Vec<u8>, crate::image::ImageError> {
        self.inner.config()
    }

    fn open_blob(
        &self,
        digest: &crate::image::Digest,
    ) -> Result<Box<dyn std::io::Read + '_>, crate::image::ImageError> {
        self.inner.open_blob(digest)
    }
}

/// Writes the archive to `path` through [`util::UserOutput`]: a regular file is replaced only
/// once the archive is complete; a device or FIFO (`/dev/null`, a named pipe) is written into.
fn write_file(path: &Path, format: ArchiveFormat, items: &[SaveImage<'_>]) -> anyhow::Result<()> {
    let out = util::UserOutput::create(path)
        .with_context(|| format!("cannot write `{}`", path.display()))?;
    let out = archive::write_archive(BufWriter::new(out), path, format, items)?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(util::UserOutput::commit)
        .with_context(|| format!("writing `{}`", path.display()))?;
    Ok(())
}
