//! Unpacked sizes of layers, docker's and podman's meaning of an image's SIZE: the length of each
//! layer's uncompressed tar (podman's `UncompressedSize`), summed over the image's layers.
//!
//! A layer stored as a plain tar (its blob digest is its diff_id, the default of a build) is its
//! own uncompressed size: the descriptor says it and nothing is read. A compressed layer's size is
//! recorded once under `sizes/DIFFIDHEX` (decimal bytes, written atomically): when a copy into
//! the store checks its diff_id (pull, load), or else the first time a size is asked for (one
//! decompression, then recorded). Nothing here walks an unpacked layer dir, and listing images
//! reads at most one small file per compressed layer.
//!
//! Records of layers no image uses any more are deleted by garbage collection; a missing or
//! damaged record is only a cache miss.

use std::fs::File;
use std::io::{self, BufReader};

use super::{ImageRecord, Store, StoreError};
use crate::image::Digest;
use crate::layer;

/// The records' dir inside the store.
pub(super) const DIR: &str = "sizes";

/// Records the uncompressed tar size of the layer `diff_id` (best effort: a read-only store or a
/// failed write only means the size is computed again later).
pub(super) fn record(store: &Store, diff_id: &Digest, size: u64) {
    if store.tmp.is_none() {
        return;
    }
    let p = store.root.join(DIR).join(diff_id.hex());
    if let Err(e) = crate::util::write_atomic_mode(&p, size.to_string().as_bytes(), 0o600) {
        log::debug!("cannot record the size of layer `{diff_id}`: {e}");
    }
}

fn lookup(store: &Store, diff_id: &Digest) -> Option<u64> {
    std::fs::read_to_string(store.root.join(DIR).join(diff_id.hex()))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The uncompressed size of one layer: its blob's size when the blob is the tar itself, else the
/// record, else the blob decompressed once (and the result recorded).
fn layer_size(
    store: &Store,
    blob: &Digest,
    blob_size: u64,
    diff_id: &Digest,
) -> Result<u64, StoreError> {
    if blob == diff_id {
        return Ok(blob_size);
    }
    if let Some(n) = lookup(store, diff_id) {
        return Ok(n);
    }
    let path = store.blob_path(blob);
    let file = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
    let (mut tar, _) =
        layer::decompress(BufReader::with_capacity(256 * 1024, file)).map_err(|error| {
            StoreError::Layer {
                diff_id: diff_id.clone(),
                error,
            }
        })?;
    let n = io::copy(&mut tar, &mut io::sink()).map_err(|e| StoreError::Invalid {
        what: format!("layer `{blob}`"),
        reason: format!("cannot decompress: {e}"),
    })?;
    record(store, diff_id, n);
    Ok(n)
}

/// The uncompressed tar size of each of the image's layers, bottom layer first.
pub(super) fn layer_sizes(store: &Store, image: &ImageRecord) -> Result<Vec<u64>, StoreError> {
    let diff_ids = image.diff_ids()?;
    image
        .manifest
        .layers()
        .iter()
        .zip(&diff_ids)
        .map(|(l, diff_id)| {
            let blob = Digest::from_oci(l.digest())?;
            layer_size(store, &blob, l.size(), diff_id)
        })
        .collect()
}

/// The image's unpacked size: the sum of its layers' uncompressed tar sizes.
pub(super) fn unpacked_size(store: &Store, image: &ImageRecord) -> Result<u64, StoreError> {
    Ok(layer_sizes(store, image)?.iter().sum())
}

/// The unpacked size of several images together, every layer counted once however many images
/// share it (`system df`).
pub(super) fn unpacked_total(store: &Store, images: &[ImageRecord]) -> Result<u64, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for image in images {
        let diff_ids = image.diff_ids()?;
        for (l, diff_id) in image.manifest.layers().iter().zip(&diff_ids) {
            if seen.insert(diff_id.clone()) {
                let blob = Digest::from_oci(l.digest())?;
                total += layer_size(store, &blob, l.size(), diff_id)?;
            }
        }
    }
    Ok(total)
}
