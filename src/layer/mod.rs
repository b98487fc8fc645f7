//! Layers: turning tar streams into directories and directories into tar streams.
//!
//! - [`compress`]: gzip/zstd compression of a tar stream that computes, in the same pass, the
//!   compressed blob's digest and size and the diff_id (sha256 of the uncompressed tar); and
//!   [`decompress`], which sniffs gzip, zstd, bzip2, xz or plain tar.
//! - [`apply`]: unpacks a tar into a directory, refusing every escape (`..`, symlinked parents,
//!   hard links leading outside), turning OCI whiteouts into overlay whiteouts (or deleting, when
//!   flattening).
//! - [`diff`]: an overlay upper dir (or a plain dir) becomes a deterministic OCI layer tar.
//!
//! This room follows the OCI image spec's layer chapter (`image-spec/layer.md`: changesets,
//! whiteouts, opaque whiteouts) and the overlay form of DESIGN.md (a whiteout is a 0:0 char
//! device, an opaque dir carries `user.overlay.opaque=y`). It knows nothing of the store or of
//! image configs: callers name the target directory and keep the returned digests.

pub mod apply;
pub mod compress;
pub mod diff;

use std::path::PathBuf;

pub use apply::{
    apply_blob, apply_tar, check_tar, clean_path, flatten_dirs, ApplyOptions, ApplyReport,
    WhiteoutMode,
};
pub use compress::{compress, decompress, detect_compression, Compression, LayerBlob, LayerWriter};
pub use diff::{write_dir_tar, write_tar, write_upper_tar, DiffOptions, DirKind};

/// The OCI whiteout prefix (`image-spec/layer.md`, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque whiteout entry name.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";
/// The xattr that marks an opaque directory in hoist's overlay form (mounted with `userxattr`).
pub const OVERLAY_OPAQUE_XATTR: &str = "user.overlay.opaque";
/// The same mark as set by overlayfs when mounted without `userxattr` (real root).
pub const TRUSTED_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Why a layer could not be compressed, unpacked or diffed. Every variant names the entry or file.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer entry `{path}`: {source}")]
    Entry {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer entry `{path}` escapes the target directory: {reason}")]
    Escape { path: String, reason: String },
    #[error("layer entry `{path}` is invalid: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "layer entry `{path}`: cannot create device node ({source}); devices cannot be made here"
    )]
    Device {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("not a valid tar stream: {0}")]
    Tar(String),
    #[error("`{path}`: {source}")]
    Walk {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl LayerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> LayerError {
        LayerError::Io {
            context: context.into(),
            source,
        }
    }
    pub(crate) fn entry(path: &str, source: impl Into<std::io::Error>) -> LayerError {
        LayerError::Entry {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

#[cfg(test)]
mod tests;
