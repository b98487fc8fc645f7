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
    apply_blob, apply_tar, check_tar, check_tar_in, clean_path, flatten_dirs, max_layer_size,
    ApplyOptions, ApplyReport, WhiteoutMode, DEFAULT_MAX_LAYER_SIZE, MAX_LAYER_SIZE_ENV,
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
/// The owner (`UID:GID`) a file should have where the file system cannot give it: written by
/// the sandbox in single-id mode when a step chowns (`sandbox::chown_record`), read by the layer
/// writer, which gives the entry that owner and leaves the attribute itself out of the tar.
pub const RECORDED_OWNER_XATTR: &str = "user.hoist.owner";

/// The [`RECORDED_OWNER_XATTR`] value for an owner.
pub fn recorded_owner_value(uid: u32, gid: u32) -> String {
    format!("{uid}:{gid}")
}

/// Parses a [`RECORDED_OWNER_XATTR`] value (`UID:GID`).
pub fn parse_recorded_owner(v: &[u8]) -> Option<(u32, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (u, g) = s.trim().split_once(':')?;
    Some((u.parse().ok()?, g.parse().ok()?))
}

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
    #[error(
        "layer entry `{path}`: the layer expands to more than {limit} bytes (the bound set by \
         HOIST_MAX_LAYER_SIZE)"
    )]
    TooLarge { path: String, limit: u64 },
    #[error("{reason}")]
    Config { reason: String },
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
    /// A tar reader's error as one line that quotes none of the input: the tar crate's
    /// messages include raw header bytes (`numeric field was not a number: <the bytes>`).
    pub(crate) fn tar(e: &std::io::Error) -> LayerError {
        LayerError::Tar(describe_tar_error(e))
    }
    pub(crate) fn entry(path: &str, source: impl Into<std::io::Error>) -> LayerError {
        LayerError::Entry {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

/// Describes why a tar could not be read, in one line and without quoting the input: a stream
/// that ends early is "truncated", a header that does not parse is "unreadable"; other reasons
/// keep the reader's first line, without control characters, at most 120 characters.
pub fn describe_tar_error(e: &std::io::Error) -> String {
    let msg = e.to_string();
    let lower = msg.to_ascii_lowercase();
    if e.kind() == std::io::ErrorKind::UnexpectedEof
        || lower.contains("unexpected end")
        || lower.contains("entire block")
        || lower.contains("unexpected eof")
        || lower.contains("incomplete")
    {
        return "it ends in the middle (truncated)".into();
    }
    // the tar crate's header errors (`… when getting cksum for <raw bytes>`); a decompressor's
    // own checksum errors are not these and keep their words
    if lower.contains("when getting") || lower.contains("numeric field") {
        return "an entry header is unreadable (not a tar, or damaged)".into();
    }
    let first = msg.lines().next().unwrap_or("");
    // a quoted part (`: …`) may be the input's bytes: keep the reason before it
    let reason = first.split(": ").next().unwrap_or(first);
    reason
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect()
}

#[cfg(test)]
mod tests;
