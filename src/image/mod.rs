//! The OCI image vocabulary shared by every room that touches images: [`Digest`], image
//! references (`reference.rs`), config and history edits, and the [`ImageSource`] trait that the
//! store, archives and (later) registries implement, so that copying is "read from A, write to B".
//!
//! Pure: no file system, no network. Values are valid by construction.

pub mod config;
mod digest;
mod platform;
mod reference;

pub use digest::{Digest, DigestError, DigestingReader, DigestingWriter};
pub use platform::Platform;
pub use reference::{
    is_full_id, is_hex, Reference, ReferenceError, DEFAULT_DOMAIN, DEFAULT_TAG, LOCAL_DOMAIN,
};

use std::io::Read;

use oci_spec::image::ImageManifest;

/// Why an image could not be read from a source.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("blob `{0}` is missing")]
    MissingBlob(Digest),
    #[error("blob `{digest}` does not match its digest (got `{actual}`)")]
    DigestMismatch { digest: Digest, actual: Digest },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
}

/// An image readable from somewhere: the local store, an archive, a registry.
///
/// Blobs are streamed; implementations need not verify digests (the writer does).
pub trait ImageSource {
    /// The manifest's raw bytes (hashed as they are for the manifest digest) and its parsed form.
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError>;
    /// The config blob's raw bytes.
    fn config(&self) -> Result<Vec<u8>, ImageError>;
    /// Opens a blob (config or layer) by digest.
    fn open_blob(&self, digest: &Digest) -> Result<Box<dyn Read + '_>, ImageError>;
}
