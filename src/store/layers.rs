//! Unpacked layers under `layers/DIFFIDHEX/`: made lazily from blobs (once, into `tmp/`, checked
//! against the diff_id, then renamed into place) or moved in by the build engine.
//!
//! Layout of one layer: `layers/HEX/diff/` is the layer in overlay form (the overlay lower dir)
//! and `layers/HEX/diff_id` is its completion marker, holding `sha256:HEX`. Both are made in the
//! process's `tmp/` dir and the whole `HEX/` dir is then renamed into `layers/` in one step: a
//! layer dir is either absent or complete. A `layers/HEX` without a valid marker (an older
//! hoist's layout, or damage) is never used: it is replaced by a fresh unpack of the blob.
//!
//! Power loss: a layer dir is not flushed to disk before it is placed (a `syncfs(2)` there
//! flushed every other process's writes too and cost seconds on a busy machine; an `fsync` per
//! file costs more). Instead its marker's second line names the boot it was written in
//! (`boot ID`, from `/proc/sys/kernel/random/boot_id`): in that boot the page cache makes the
//! dir whole whatever reached the disk, and after a restart a marker from an earlier boot is no
//! marker, so the layer is unpacked again from its blob, which was fsynced before any image
//! named it. Where the boot ID cannot be read, the dir is flushed with `syncfs(2)` and the
//! marker has no boot line, as before.

use std::fs::{self, File};
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use super::{remove_tree, ImageRecord, Store, StoreError};
use crate::image::{Digest, DigestingReader};
use crate::layer::{self, ApplyOptions, WhiteoutMode};
use crate::util;

/// The completion marker's name inside `layers/HEX/`.
pub(super) const MARKER: &str = "diff_id";
/// The layer's own dir inside `layers/HEX/`.
pub(super) const DIFF: &str = "diff";

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
        if !is_complete(store, diff_id) {
            unpack(store, blob, diff_id).map_err(|e| match e {
                // a concurrent `rmi`/`prune` removed the image between its lookup and this use
                StoreError::MissingBlob(_) => StoreError::NotFound(
                    image
                        .names
                        .first()
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| image.id.to_string()),
                ),
                other => other,
            })?;
        }
        out.push(store.layer_path(diff_id));
    }
    Ok(out)
}

/// Whether `layers/HEX` is a complete layer: its marker names `diff_id` and its `diff/` is a dir.
pub(super) fn is_complete(store: &Store, diff_id: &Digest) -> bool {
    let entry = store.layer_entry(diff_id);
    marker_ok(&entry, diff_id) && entry.join(DIFF).is_dir()
}

fn marker_ok(entry: &Path, diff_id: &Digest) -> bool {
    fs::read_to_string(entry.join(MARKER)).is_ok_and(|s| marker_text_ok(&s, diff_id, boot_id()))
}

/// Whether a marker's text names `diff_id` and, if it was written without a flush to disk, the
/// boot `boot` (the current one).
fn marker_text_ok(text: &str, diff_id: &Digest, boot: Option<&str>) -> bool {
    let mut lines = text.lines();
    if lines.next() != Some(diff_id.to_string().as_str()) {
        return false;
    }
    match lines.next() {
        None => true,
        Some(l) => match (l.strip_prefix("boot "), boot) {
            (Some(b), Some(now)) => b == now && lines.next().is_none(),
            _ => false,
        },
    }
}

/// Whether `layers/HEX` has a marker that names `diff_id` but an earlier boot: written without
/// a flush to disk before a restart (for `check`'s message).
pub(super) fn from_earlier_boot(store: &Store, diff_id: &Digest) -> bool {
    let entry = store.layer_entry(diff_id);
    fs::read_to_string(entry.join(MARKER)).is_ok_and(|s| {
        s.lines().next() == Some(diff_id.to_string().as_str())
            && s.lines().nth(1).is_some_and(|l| l.starts_with("boot "))
            && !marker_text_ok(&s, diff_id, boot_id())
    })
}

/// This boot's ID (`/proc/sys/kernel/random/boot_id`), read once; `None` where it cannot be read.
fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains(char::is_whitespace))
    })
    .as_deref()
}

pub(super) fn unpack(store: &Store, blob: &Digest, diff_id: &Digest) -> Result<(), StoreError> {
    let work = store.tmp_dir()?;
    let entry = work.path().join("layer");
    let target = entry.join(DIFF);
    fs::create_dir_all(&target).map_err(|e| StoreError::io(&target, e))?;
    unpack_into(store, blob, diff_id, &target)?;
    place(store, diff_id, &entry, work.path())?;
    Ok(())
}

/// Unpacks a layer blob into the empty dir `target` (overlay form), checking the diff_id.
pub(super) fn unpack_into(
    store: &Store,
    blob: &Digest,
    diff_id: &Digest,
    target: &Path,
) -> Result<(), StoreError> {
    let file = store.open_blob(blob)?;
    let layer_err = |error| StoreError::Layer {
        diff_id: diff_id.clone(),
        error,
    };
    let (tar, _) =
        layer::decompress(BufReader::with_capacity(256 * 1024, file)).map_err(layer_err)?;
    let mut hashing = DigestingReader::new(tar);
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        // rootless: device nodes are skipped (one debug line), as import's check skips them
        skip_devices: true,
        layer_name: diff_id.to_string(),
        record_owners: true,
        ..ApplyOptions::default()
    };
    layer::apply_tar(&mut hashing, target, &opts).map_err(layer_err)?;
    // the tar reader stops at the end-of-archive blocks; the diff_id covers the padding too
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| StoreError::io(store.blob_path(blob), e))?;
    let (actual, size) = hashing.finish();
    if &actual != diff_id {
        return Err(StoreError::DiffIdMismatch {
            digest: blob.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    if blob != diff_id {
        super::sizes::record(store, diff_id, size);
    }
    Ok(())
}

/// Makes the staged `entry` (holding `diff/`) the layer `layers/DIFFIDHEX`: writes the marker,
/// flushes the file system, renames. When a complete layer is there already, drops `entry`; an
/// incomplete one there is moved aside (into `scratch`) and replaced.
fn place(
    store: &Store,
    diff_id: &Digest,
    entry: &Path,
    scratch: &Path,
) -> Result<PathBuf, StoreError> {
    let dest = store.layer_entry(diff_id);
    if is_complete(store, diff_id) {
        let _ = remove_tree(entry);
        return Ok(dest.join(DIFF));
    }
    let marker = entry.join(MARKER);
    let boot = boot_id();
    match &boot {
        // valid in this boot only: after a restart the layer is unpacked again (module docs)
        Some(boot) => fs::write(&marker, format!("{diff_id}\nboot {boot}\n"))
            .map_err(|e| StoreError::io(&marker, e))?,
        None => {
            fs::write(&marker, format!("{diff_id}\n")).map_err(|e| StoreError::io(&marker, e))?;
            // everything the layer holds reaches the disk before the rename can: after a power
            // loss the layer is either absent or whole (one syncfs instead of an fsync per file)
            let f = File::open(entry).map_err(|e| StoreError::io(entry, e))?;
            nix::unistd::syncfs(&f).map_err(|e| StoreError::io(entry, e.into()))?;
        }
    }
    let mut attempts = 0;
    loop {
        match fs::rename(entry, &dest) {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(StoreError::CrossDevice {
                    path: entry.to_path_buf(),
                })
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {
                if is_complete(store, diff_id) {
                    // another process placed it first: use theirs
                    let _ = remove_tree(entry);
                    return Ok(dest.join(DIFF));
                }
                attempts += 1;
                if attempts > 3 {
                    return Err(StoreError::io(
                        &dest,
                        io::Error::other("an incomplete layer dir keeps coming back"),
                    ));
                }
                drop_incomplete(store, diff_id, scratch)?;
            }
            Err(e) => return Err(StoreError::io(entry, e)),
        }
    }
    // a dir marked with this boot is not trusted after a restart whether or not its rename
    // reached the disk: only a dir flushed with syncfs needs its rename made durable
    if boot.is_none() {
        let layers = store.root.join("layers");
        util::sync_dir(&layers).map_err(|e| StoreError::io(&layers, e))?;
    }
    Ok(dest.join(DIFF))
}

/// Moves an incomplete `layers/HEX` (no valid marker) out of the way into `scratch` and deletes
/// it. Checked again under `index.lock`, which every replacement takes, so that a complete layer
/// another process has just placed is never moved.
pub(super) fn drop_incomplete(
    store: &Store,
    diff_id: &Digest,
    scratch: &Path,
) -> Result<bool, StoreError> {
    let _lock = store.index_lock()?;
    let dest = store.layer_entry(diff_id);
    if is_complete(store, diff_id) || fs::symlink_metadata(&dest).is_err() {
        return Ok(false);
    }
    let aside = scratch.join(format!("stale-{}", diff_id.hex()));
    match fs::rename(&dest, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io(&dest, e)),
    }
    log::info!("replacing incomplete unpacked layer `{diff_id}`");
    if let Err(e) = remove_tree(&aside) {
        log::debug!("cannot remove `{}`: {e} (swept later)", aside.display());
    }
    Ok(true)
}

/// Removes `layers/HEX` whatever its state (a damaged layer `check --repair` found): moved
/// aside under `index.lock` into `scratch`, then deleted.
pub(super) fn drop_layer(
    store: &Store,
    diff_id: &Digest,
    scratch: &Path,
) -> Result<(), StoreError> {
    let _lock = store.index_lock()?;
    let dest = store.layer_entry(diff_id);
    let aside = scratch.join(format!("damaged-{}", diff_id.hex()));
    match fs::rename(&dest, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(&dest, e)),
    }
    remove_tree(&aside).map_err(|e| StoreError::io(&aside, e))
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
    if is_complete(store, diff_id) {
        let _ = remove_tree(dir);
        return Ok(store.layer_path(diff_id));
    }
    // the entry is made directly in this process's tmp dir (one dir fewer to create and
    // delete per build step); a failure below leaves it to the TempDir's drop
    let tmp = &store.writable()?.dir;
    let entry = tempfile::Builder::new()
        .prefix("layer-")
        .tempdir_in(tmp)
        .map_err(|e| StoreError::io(tmp, e))?;
    let target = entry.path().join(DIFF);
    match fs::rename(dir, &target) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            return Err(StoreError::CrossDevice {
                path: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(StoreError::io(dir, e)),
    }
    place(store, diff_id, entry.path(), tmp)
}

/// Checks that a (possibly compressed) layer blob file uncompresses to `diff_id`; returns the
/// uncompressed tar's length when the blob is compressed (`None` when it is the tar itself).
pub(super) fn check_diff_id(
    path: &Path,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<Option<u64>, StoreError> {
    if blob == diff_id {
        return Ok(None);
    }
    let file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let (tar, _) =
        layer::decompress(BufReader::with_capacity(256 * 1024, file)).map_err(|error| {
            StoreError::Layer {
                diff_id: diff_id.clone(),
                error,
            }
        })?;
    let mut hashing = DigestingReader::new(tar);
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| StoreError::Invalid {
        what: format!("layer `{blob}`"),
        reason: format!("cannot decompress: {e}"),
    })?;
    let (actual, size) = hashing.finish();
    if &actual != diff_id {
        return Err(StoreError::DiffIdMismatch {
            digest: blob.clone(),
            expected: diff_id.clone(),
            actual,
        });
    }
    Ok(Some(size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_from_another_boot_is_no_marker() {
        let d = Digest::of_bytes(b"layer");
        let other = Digest::of_bytes(b"other");
        assert!(marker_text_ok(&format!("{d}\n"), &d, Some("b1")));
        assert!(marker_text_ok(&format!("{d}\n"), &d, None));
        assert!(!marker_text_ok(&format!("{other}\n"), &d, Some("b1")));
        assert!(marker_text_ok(&format!("{d}\nboot b1\n"), &d, Some("b1")));
        // written in an earlier boot and never flushed: unpacked again
        assert!(!marker_text_ok(&format!("{d}\nboot b0\n"), &d, Some("b1")));
        // the boot cannot be known now: the layer cannot be trusted
        assert!(!marker_text_ok(&format!("{d}\nboot b1\n"), &d, None));
        assert!(!marker_text_ok(
            &format!("{d}\nsomething else\n"),
            &d,
            Some("b1")
        ));
        assert!(!marker_text_ok(
            &format!("{d}\nboot b1\nmore\n"),
            &d,
            Some("b1")
        ));
    }
}
