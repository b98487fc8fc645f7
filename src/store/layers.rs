//! Unpacked layers under `layers/DIFFIDHEX/`: made lazily from blobs (once, into `tmp/`, checked
//! against the diff_id, then renamed into place) or moved in by the build engine.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::{remove_tree, ImageRecord, Store, StoreError};
use crate::image::{Digest, DigestingReader};
use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::util;

pub(super) fn layer_dirs(store: &Store, image: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
    let blobs = image.layer_digests()?;
    let diff_ids = image.diff_ids()?;
    if blobs.len() != diff_ids.len() {
        return Err(StoreError::invalid(
            format!("image `{}`", image.id),
            format!("{} layers but {} diff_ids", blobs.len(), diff_ids.len()),
        ));
    }
    if store.tmp.is_some() {
        store.hold_gc_shared()?;
    }
    let mut out = Vec::with_capacity(blobs.len());
    for (blob, diff_id) in blobs.iter().zip(&diff_ids) {
        let dir = store.layer_path(diff_id);
        if !dir.is_dir() {
            unpack(store, blob, diff_id)?;
        }
        out.push(dir);
    }
    Ok(out)
}

pub(super) fn unpack(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<(), StoreError> {
    let work = store.tmp_dir()?;
    let target = work.path().join("layer");
    fs::create_dir(&target).map_err(|e| StoreError::io(&target, e))?;
    let file = store.open_blob(blob)?;
    let layer_err = |source| StoreError::Layer {
        diff_id: diff_id.clone(),
        source,
    };
    let (tar, _) =
        layer::decompress(BufReader::with_capacity(256 * 1024, file)).map_err(layer_err)?;
    let mut hashing = DigestingReader::new(tar);
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        // rootless: device nodes are skipped (one debug line), as import's check skips them
        skip_devices: true,
        layer_name: diff_id.to_string(),
    };
    layer::apply_tar(&mut hashing, &target, &opts).map_err(layer_err)?;
    // the tar reader stops at the end-of-archive blocks; the diff_id covers the padding too
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| StoreError::io(store.blob_path(blob), e))?;
    let (actual, _) = hashing.finish();
    if &actual != diff_id {
        return Err(StoreError::DiffIdMismatch {
            digest: blob.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    place(store, diff_id, &target)?;
    Ok(())
}

/// Renames `dir` to `layers/DIFFIDHEX`; when another process got there first, drops `dir`.
fn place(store: &Store, diff_id: &Digest, dir: &Path) -> Result<PathBuf, StoreError> {
    let dest = store.layer_path(diff_id);
    if dest.is_dir() {
        let _ = remove_tree(dir);
        return Ok(dest);
    }
    match fs::rename(dir, &dest) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            return Err(StoreError::CrossDevice {
                path: dir.to_path_buf(),
            })
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
            let _ = remove_tree(dir);
            return Ok(dest);
        }
        Err(e) => return Err(StoreError::io(dir, e)),
    }
    let layers = store.root.join("layers");
    util::sync_dir(&layers).map_err(|e| StoreError::io(&layers, e))?;
    Ok(dest)
}

pub(super) fn add_unpacked_layer(
    store: &Store,
    diff_id: &Digest,
    dir: &Path,
) -> Result<PathBuf, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::io(
            dir,
            io::Error::new(io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    place(store, diff_id, dir)
}

/// Checks that a (possibly compressed) layer blob file uncompresses to `diff_id`.
pub(super) fn check_diff_id(
    path: &Path,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<(), StoreError> {
    if blob == diff_id {
        return Ok(());
    }
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let (tar, _) =
        layer::decompress(BufReader::with_capacity(256 * 1024, file)).map_err(|source| {
            StoreError::Layer {
                diff_id: diff_id.clone(),
                source,
            }
        })?;
    let mut hashing = DigestingReader::new(tar);
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| StoreError::Invalid {
        what: format!("layer `{blob}`"),
        reason: format!("cannot decompress: {e}"),
    })?;
    let (actual, _) = hashing.finish();
    if &actual != diff_id {
        return Err(StoreError::DiffIdMismatch {
            digest: blob.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(())
}
