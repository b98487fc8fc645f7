//! Committing: a layer dir (a RUN's overlay upper dir, a COPY's fresh dir, a working container's
//! upper dir) to a staged layer blob, and a config plus layers to a named image. The one
//! implementation `hoist build` and `hoist commit` share, so a container's commit writes the same
//! whiteouts, clamped times and compression a build does.
//!
//! It must not decide what goes into the config (the caller's) nor write the store's files itself
//! (blobs and names go through [`Store`]).

use std::path::Path;

use serde_json::json;

use super::cache;
use super::config::ImageConfig;
use super::{ImageFormat, LayerCompression};
use crate::image::Digest;
use crate::image::Reference;
use crate::layer::diff::{write_layer_tar, DirKind};
use crate::layer::LayerWriter as BlobLayerWriter;
use crate::store::{ImageRecord, StagedBlob, Store, StoreError};

/// A layer of an image: what its manifest descriptor and `rootfs.diff_ids` entry need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// Why a layer could not be written (the caller names the step or container).
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("clamping times: {0}")]
    Clamp(std::io::Error),
    #[error("writing the layer: {0}")]
    Layer(crate::layer::LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Format(String),
}

/// Writes `dir` as a layer blob staged in the store's scratch space (not yet visible). With
/// `dir_kept` (the dir is mounted later: a build's layer dir, a container's upper dir) its
/// mtimes are first clamped as the tar records them (whole seconds, none after `timestamp`),
/// so that it shows what the blob holds; a dir thrown away after the commit is left as it is,
/// the tar clamps the same way. `upper` says the dir is in overlay form (whiteouts as 0:0 char
/// devices, opaque xattrs).
pub fn write_layer(
    store: &Store,
    dir: &Path,
    upper: bool,
    dir_kept: bool,
    timestamp: Option<i64>,
    compression: LayerCompression,
) -> Result<(LayerRef, StagedBlob), CommitError> {
    if dir_kept {
        cache::clamp_mtimes(dir, timestamp).map_err(CommitError::Clamp)?;
    }
    let kind = if upper {
        DirKind::OverlayUpper
    } else {
        DirKind::Plain
    };
    // the layer writer hashes the blob as it writes it: the store need not hash it again
    let w = store.prehashed_blob_writer()?;
    let (w, blob) = BlobLayerWriter::with_level(w, compression.compression, compression.level)
        .and_then(|lw| write_layer_tar(dir, lw, kind, timestamp))
        .and_then(|lw| lw.finish())
        .map_err(CommitError::Layer)?;
    let staged = w.finish(blob.digest.clone(), blob.size)?;
    store.record_layer_size(&blob.digest, &blob.diff_id, blob.uncompressed_size);
    Ok((
        LayerRef {
            diff_id: blob.diff_id,
            digest: blob.digest,
            size: blob.size,
            media_type: blob.media_type.to_string(),
        },
        staged,
    ))
}

/// The layers of a stored image, bottom first.
pub fn image_layers(image: &ImageRecord) -> Result<Vec<LayerRef>, StoreError> {
    let diff_ids = image.diff_ids()?;
    image
        .manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| {
            Ok(LayerRef {
                diff_id,
                digest: Digest::from_oci(l.digest())?,
                size: l.size(),
                media_type: l.media_type().to_string(),
            })
        })
        .collect()
}

/// Writes `config` (its `rootfs.diff_ids` set from `layers`) and a manifest of `format` over it,
/// and names the image `names`. Every layer blob must be in the store already.
pub fn write_image(
    store: &Store,
    config: &mut ImageConfig,
    layers: &[LayerRef],
    names: &[Reference],
    format: ImageFormat,
) -> Result<ImageRecord, CommitError> {
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let config = config.to_json();
    let (config_digest, config_size) = store.write_blob(&mut &config[..])?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest.to_string(),
            "size": config_size,
        },
        "layers": layers
            .iter()
            .map(|l| json!({
                "mediaType": l.media_type,
                "digest": l.digest.to_string(),
                "size": l.size,
            }))
            .collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).expect("a JSON value always serialises");
    let manifest = match format {
        ImageFormat::Oci => manifest,
        // the same config and layer bytes under Docker's media types (zstd has none)
        ImageFormat::Docker => {
            crate::registry::push::convert(&manifest, crate::registry::push::Format::Docker)
                .map_err(CommitError::Format)?
                .0
        }
    };
    Ok(store.commit_image(&manifest, names)?)
}
