//! Image archives for `hoist save` and `hoist load`: `oci-archive` (a tar of an OCI image layout,
//! names in `org.opencontainers.image.ref.name` annotations as skopeo writes them) and
//! `docker-archive` (`manifest.json` with Config/RepoTags/Layers, layers as uncompressed tars,
//! the legacy `repositories` file and per-layer directories, as `docker save` and skopeo write).
//!
//! Reading gives one [`ArchiveImage`] per image — an [`ImageSource`] with the image's names — so
//! loading is "copy from the archive into the store". Writing takes any [`ImageSource`]s with
//! names. The archive is never extracted: members are read in place (see `tarfile.rs`), every
//! blob a manifest names must be in the archive, and a member that escapes makes the archive
//! invalid before anything is read from it. This module writes no store data: a scratch
//! directory given by the caller holds what must be recompressed.
//!
//! Specs followed: OCI image-spec `image-layout.md` and `annotations.md`; the docker image
//! spec's "Combined Image JSON + Filesystem Changeset Format" (`v1.2`) for docker-archive.

mod docker;
mod oci;
mod tarfile;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::image::ImageManifest;

use crate::image::{Digest, ImageError, ImageSource, Reference};
use crate::layer::{self, Compression, LayerError};

pub use docker::DockerImage;
pub use oci::OciImage;

/// Largest JSON document (index, manifest, config) read from an archive.
const JSON_LIMIT: u64 = 16 << 20;

/// Why an archive could not be read or written. Every variant names the archive file.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{path}` is not a tar archive: {reason}")]
    NotTar { path: PathBuf, reason: String },
    #[error("`{path}` is truncated: entry `{entry}` ends past the end of the file")]
    Truncated { path: PathBuf, entry: String },
    #[error("`{path}`: archive entry `{entry}` escapes the archive")]
    Escape { path: PathBuf, entry: String },
    #[error("`{path}` is neither an oci-archive nor a docker-archive: it has no `manifest.json` or `index.json`")]
    UnknownFormat { path: PathBuf },
    #[error("`{path}`: {what} names `{member}`, which is not in the archive")]
    MissingBlob {
        path: PathBuf,
        what: String,
        member: String,
    },
    #[error("`{path}`: invalid {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: String,
        reason: String,
    },
    #[error("`{path}`: {source}")]
    Layer {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    #[error("image `{image}`: {source}")]
    Source {
        image: String,
        #[source]
        source: ImageError,
    },
}

impl ArchiveError {
    pub(crate) fn io(path: &Path, source: io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.to_owned(),
            source,
        }
    }
    pub(crate) fn invalid(path: &Path, what: impl Into<String>, reason: impl fmt::Display) -> Self {
        ArchiveError::Invalid {
            path: path.to_owned(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// The two archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A tar of an OCI image layout.
    OciArchive,
    /// `docker save`'s format.
    DockerArchive,
}

impl fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ArchiveFormat::OciArchive => "oci-archive",
            ArchiveFormat::DockerArchive => "docker-archive",
        })
    }
}

impl FromStr for ArchiveFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "oci-archive" => Ok(ArchiveFormat::OciArchive),
            "docker-archive" => Ok(ArchiveFormat::DockerArchive),
            other => Err(format!(
                "unknown archive format `{other}`: expected `oci-archive` or `docker-archive`"
            )),
        }
    }
}

/// One image read from an archive: an [`ImageSource`] plus the names the archive gives it.
pub enum ArchiveImage {
    Oci(OciImage),
    Docker(DockerImage),
}

impl ArchiveImage {
    /// The names recorded for the image (none for an unnamed one).
    pub fn names(&self) -> &[Reference] {
        match self {
            ArchiveImage::Oci(i) => i.names(),
            ArchiveImage::Docker(i) => i.names(),
        }
    }

    /// The image ID (config digest).
    pub fn id(&self) -> &Digest {
        match self {
            ArchiveImage::Oci(i) => i.id(),
            ArchiveImage::Docker(i) => i.id(),
        }
    }
}

impl ImageSource for ArchiveImage {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        match self {
            ArchiveImage::Oci(i) => i.manifest(),
            ArchiveImage::Docker(i) => i.manifest(),
        }
    }
    fn config(&self) -> Result<Vec<u8>, ImageError> {
        match self {
            ArchiveImage::Oci(i) => i.config(),
            ArchiveImage::Docker(i) => i.config(),
        }
    }
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        match self {
            ArchiveImage::Oci(i) => i.open_blob(digest),
            ArchiveImage::Docker(i) => i.open_blob(digest),
        }
    }
}

/// A read archive: its format and images.
pub struct Archive {
    pub format: ArchiveFormat,
    pub images: Vec<ArchiveImage>,
}

/// Reads the archive at `path` (plain or compressed as a whole with gzip, zstd, bzip2 or xz).
/// `scratch` is a directory for the uncompressed archive and recompressed docker layers; it
/// must outlive the returned images.
pub fn read_archive(path: &Path, scratch: &Path) -> Result<Archive, ArchiveError> {
    let mut file = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    let mut head = [0u8; 6];
    let n = read_head(&mut file, &mut head).map_err(|e| ArchiveError::io(path, e))?;
    if layer::detect_compression(&head[..n]) == Compression::None {
        let file = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
        return read_tar_file(file, path, scratch);
    }
    let file = File::open(path).map_err(|e| ArchiveError::io(path, e))?;
    read_archive_stream(file, path, scratch)
}

/// Reads an archive from a stream (standard input): it is copied (uncompressed) into `scratch`
/// first, since reading needs random access. `shown` names the stream in messages.
pub fn read_archive_stream<R: Read>(
    stream: R,
    shown: &Path,
    scratch: &Path,
) -> Result<Archive, ArchiveError> {
    let (mut reader, _) = layer::decompress(stream).map_err(|source| ArchiveError::Layer {
        path: shown.to_owned(),
        source,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix("archive-")
        .tempfile_in(scratch)
        .map_err(|e| ArchiveError::io(scratch, e))?;
    io::copy(&mut reader, tmp.as_file_mut()).map_err(|e| ArchiveError::NotTar {
        path: shown.to_owned(),
        reason: format!("cannot read it: {e}"),
    })?;
    let file = tmp.reopen().map_err(|e| ArchiveError::io(scratch, e))?;
    // the open descriptor keeps the data; the name can go now
    drop(tmp);
    read_tar_file(file, shown, scratch)
}

fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn read_tar_file(file: File, shown: &Path, scratch: &Path) -> Result<Archive, ArchiveError> {
    let index = tarfile::TarIndex::scan(file, shown)?;
    if index.contains("manifest.json") {
        let images = docker::read(index, scratch)?;
        Ok(Archive {
            format: ArchiveFormat::DockerArchive,
            images: images.into_iter().map(ArchiveImage::Docker).collect(),
        })
    } else if index.contains("index.json") {
        let images = oci::read(index, scratch)?;
        Ok(Archive {
            format: ArchiveFormat::OciArchive,
            images: images.into_iter().map(ArchiveImage::Oci).collect(),
        })
    } else {
        Err(ArchiveError::UnknownFormat {
            path: shown.to_owned(),
        })
    }
}

/// One image to write: a source and the names to record for it.
pub struct SaveImage<'a> {
    pub source: &'a dyn ImageSource,
    pub names: Vec<Reference>,
    /// How to call the image in messages (what the user typed).
    pub shown: String,
}

/// Writes `images` as an archive of `format` to `out` and returns `out`. Blobs shared between
/// images are written once. Every blob is checked against its digest while it is copied.
/// `shown` names the destination in messages.
pub fn write_archive<W: Write>(
    out: W,
    shown: &Path,
    format: ArchiveFormat,
    images: &[SaveImage<'_>],
) -> Result<W, ArchiveError> {
    match format {
        ArchiveFormat::OciArchive => oci::write(out, shown, images),
        ArchiveFormat::DockerArchive => docker::write(out, shown, images),
    }
}

/// A ustar header for a member written by hoist: owner 0:0, mtime 0, no names (deterministic).
pub(crate) fn member_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

/// Appends a regular member with the given data.
pub(crate) fn append_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    data: &[u8],
    out: &str,
) -> Result<(), ArchiveError> {
    let mut h = member_header(tar::EntryType::Regular, 0o444, data.len() as u64);
    b.append_data(&mut h, name, data)
        .map_err(|e| ArchiveError::io(Path::new(out), e))
}

/// Appends a directory member.
pub(crate) fn append_dir<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    out: &str,
) -> Result<(), ArchiveError> {
    let mut h = member_header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, name, io::empty())
        .map_err(|e| ArchiveError::io(Path::new(out), e))
}

/// A reader that checks, at its end, that exactly `size` bytes with digest `digest` went
/// through it; a short, long or altered blob is an error instead of a corrupt archive.
pub(crate) struct VerifyingReader<R> {
    inner: Option<crate::image::DigestingReader<R>>,
    digest: Digest,
    left: u64,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, digest: Digest, size: u64) -> Self {
        VerifyingReader {
            inner: Some(crate::image::DigestingReader::new(inner)),
            digest,
            left: size,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(0);
        };
        if self.left == 0 {
            // the blob must end here and hash to its name
            let mut probe = [0u8; 1];
            if inner.read(&mut probe)? != 0 {
                return Err(io::Error::other(format!(
                    "blob `{}` is longer than its descriptor says",
                    self.digest
                )));
            }
            let (got, _) = self
                .inner
                .take()
                .expect("the inner reader is present until the end is checked")
                .finish();
            if got != self.digest {
                return Err(io::Error::other(format!(
                    "blob `{}` does not match its digest (got `{got}`)",
                    self.digest
                )));
            }
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("blob `{}` is shorter than its descriptor says", self.digest),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
