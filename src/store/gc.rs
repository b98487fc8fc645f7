//! Removing names and images, and collecting blobs and unpacked layers nothing references.
//!
//! Collection needs `gc.lock` exclusively: while any other hoist process writes blobs or uses
//! unpacked layers (it holds the lock shared), collection is skipped and left to a later `prune`.
//! The shared lock is the lease: a process that may still name a blob or layer (a build between
//! resolving its base and committing, a load, an import, a commit, a `hoist run`) holds it from
//! its first store write or layer use until it exits, so collection can never delete what is
//! about to be named. Roots: `index.json`, plus what [`ROOTS`] lists for other rooms.

use std::collections::HashSet;
use std::fs;
use std::io;

use oci_spec::image::{ImageIndex, ImageManifest};

use super::containers;
use super::index::{self, Matched};
use super::{remove_tree, tree_size, ImageRecord, Store, StoreError};
use crate::image::{Digest, Reference};
use crate::util::FileLock;

/// What another room's state keeps alive besides `index.json`: the blobs (manifests are followed
/// to their config and layers) and unpacked layers (by diff_id) it names.
#[derive(Debug, Clone, Default)]
pub struct GcRoots {
    pub blobs: Vec<Digest>,
    pub diff_ids: Vec<Digest>,
}

/// A room that keeps state in the store (working containers in `containers/`, build cache
/// entries in `cache/` if they are to survive a prune) adds a function here that lists what its
/// entries need; collection keeps all of it. A function that fails stops the collection (nothing
/// is deleted), so a damaged entry never costs data.
pub type GcRootsFn = fn(&Store) -> Result<GcRoots, StoreError>;

/// Every source of roots besides `index.json`.
pub const ROOTS: &[(&str, GcRootsFn)] = &[("working containers", super::containers::gc_roots)];

/// What `prune` removes besides unreferenced data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMode {
    /// Unnamed images that are no other image's parent (podman's "dangling").
    Dangling,
    /// Every image (hoist keeps no containers that could still use one).
    All,
}

/// What `prune` did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// IDs of the images removed.
    pub removed_images: Vec<Digest>,
    /// Bytes of blobs and unpacked layers deleted.
    pub reclaimed: u64,
    /// Collection was skipped because another hoist process is using the store.
    pub collection_skipped: bool,
}

/// What `rmi` did for one argument.
#[derive(Debug, Clone, Default)]
pub struct RemoveReport {
    /// Names removed.
    pub untagged: Vec<Reference>,
    /// The image ID, when the image itself went.
    pub deleted: Option<Digest>,
    /// Bytes of blobs and unpacked layers deleted.
    pub reclaimed: u64,
    /// Collection was skipped because another hoist process is using the store.
    pub collection_skipped: bool,
}

/// Whether `parent`'s layers and history are a strict prefix of `child`'s (podman's notion of a
/// parent image: the image a build step started from).
pub fn is_parent(parent: &ImageRecord, child: &ImageRecord) -> bool {
    if parent.id == child.id {
        return false;
    }
    let p = parent.config.rootfs().diff_ids();
    let c = child.config.rootfs().diff_ids();
    if p.len() > c.len() || c[..p.len()] != p[..] {
        return false;
    }
    let empty = Vec::new();
    let ph = parent.config.history().as_ref().unwrap_or(&empty);
    let ch = child.config.history().as_ref().unwrap_or(&empty);
    !ph.is_empty() && ph.len() < ch.len() && ch[..ph.len()] == ph[..]
}

/// Whether some other image was built on top of `image`.
pub fn has_children(all: &[ImageRecord], image: &ImageRecord) -> bool {
    all.iter().any(|c| is_parent(image, c))
}

pub(super) fn remove(store: &Store, typed: &str, force: bool) -> Result<RemoveReport, StoreError> {
    store.check_writable()?;
    let mut report = RemoveReport::default();
    // the image is resolved and the decision (untag or delete) taken under index.lock, on the
    // index it then writes: a concurrent `tag` either comes first (its name is seen, and a name
    // of an image with other names is only untagged) or after (it finds the image gone)
    let deleted = index::update_index(store, |descs| {
        let records = store.images()?;
        let (image, how) = index::resolve_how(&records, typed)?;
        match how {
            Matched::Name(name) if image.names.len() > 1 => {
                if !index::remove_name_in(descs, &name, true) {
                    return Err(StoreError::NotFound(typed.to_owned()));
                }
                report.untagged.push(name);
                return Ok(false);
            }
            Matched::Id if image.names.len() > 1 && !force => {
                return Err(StoreError::MultipleNames {
                    image: typed.to_owned(),
                    names: image.names.len(),
                });
            }
            _ => {}
        }
        if !force {
            let id = image.id.to_string();
            if let Some((_, c)) = containers::images_in_use(store)?
                .into_iter()
                .find(|(i, _)| *i == id)
            {
                return Err(StoreError::ImageInUse {
                    image: typed.to_owned(),
                    container: c,
                });
            }
        }
        index::remove_image_in(descs, &image.manifest_digest);
        report.untagged = image.names.clone();
        report.deleted = Some(image.id.clone());
        Ok(true)
    })?;
    if deleted {
        match collect(store)? {
            Some(n) => report.reclaimed = n,
            None => report.collection_skipped = true,
        }
    }
    Ok(report)
}

pub(super) fn prune(store: &Store, mode: PruneMode) -> Result<PruneReport, StoreError> {
    store.check_writable()?;
    let mut report = PruneReport::default();
    let removed = index::update_index(store, |descs| {
        // the records of this very snapshot (we hold the lock)
        let records = store.images()?;
        // an image a working container sits on stays listed, as docker keeps a container's image
        let in_use: HashSet<String> = containers::images_in_use(store)?
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        let doomed: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| !in_use.contains(&r.id.to_string()))
            .filter(|r| match mode {
                PruneMode::All => true,
                PruneMode::Dangling => r.is_dangling() && !has_children(&records, r),
            })
            .collect();
        for r in &doomed {
            index::remove_image_in(descs, &r.manifest_digest);
        }
        // entries whose manifest blob is gone (damaged by hand) name nothing usable
        descs.retain(|d| match Digest::from_oci(d.digest()) {
            Ok(m) if !store.has_blob(&m) => {
                log::warn!("dropping index entry for missing manifest `{m}`");
                false
            }
            _ => true,
        });
        Ok(doomed.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
    })?;
    report.removed_images = removed;
    match collect(store)? {
        Some(n) => report.reclaimed = n,
        None => report.collection_skipped = true,
    }
    Ok(report)
}

/// Deletes blobs and unpacked layers no image in `index.json` references. `None` when another
/// process holds `gc.lock` (nothing is deleted then).
fn collect(store: &Store) -> Result<Option<u64>, StoreError> {
    let gc_path = store.root.join("gc.lock");
    let Some(_gc) = FileLock::try_exclusive(&gc_path).map_err(|e| StoreError::io(&gc_path, e))?
    else {
        if store.gc_shared.get().is_some() {
            // the lock is this process's own (a build that replaced an image while it writes)
            log::info!("unused blobs and layers are left for a later prune: this process is still writing to the store");
        } else {
            log::info!("another hoist process is using the store: unused blobs and layers are left for a later prune");
        }
        return Ok(None);
    };
    let _index = store.index_lock()?;
    let index = index::read_index(store)?;
    let mut blobs = HashSet::new();
    let mut diff_ids = HashSet::new();
    for d in index.manifests() {
        if let Ok(digest) = Digest::from_oci(d.digest()) {
            mark(store, &digest, &mut blobs, &mut diff_ids, 0);
        }
    }
    for (name, roots) in ROOTS {
        let roots = match roots(store) {
            Ok(r) => r,
            Err(e) => {
                log::warn!("cannot list what the {name} keeps ({e}): nothing is collected");
                return Ok(None);
            }
        };
        for b in &roots.blobs {
            mark(store, b, &mut blobs, &mut diff_ids, 0);
        }
        diff_ids.extend(roots.diff_ids.iter().map(|d| d.hex().to_owned()));
    }
    let mut reclaimed = 0;
    let blob_dir = store.root.join("blobs/sha256");
    for entry in fs::read_dir(&blob_dir).map_err(|e| StoreError::io(&blob_dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(&blob_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if blobs.contains(&name) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(entry.path()) {
            Ok(()) => reclaimed += size,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(entry.path(), e)),
        }
    }
    let layer_dir = store.root.join("layers");
    for entry in fs::read_dir(&layer_dir).map_err(|e| StoreError::io(&layer_dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(&layer_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if diff_ids.contains(&name) {
            continue;
        }
        let size = tree_size(&entry.path());
        match remove_tree(&entry.path()) {
            Ok(()) => reclaimed += size,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(entry.path(), e)),
        }
    }
    // size records of layers no image uses (a missing dir: an older store)
    let size_dir = store.root.join(super::sizes::DIR);
    if let Ok(entries) = fs::read_dir(&size_dir) {
        for entry in entries.flatten() {
            if !diff_ids.contains(entry.file_name().to_string_lossy().as_ref()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(Some(reclaimed))
}

/// Marks a blob and everything it references (manifest → config and layers, index → manifests).
/// Unreadable blobs are kept and simply not followed.
fn mark(
    store: &Store,
    digest: &Digest,
    blobs: &mut HashSet<String>,
    diff_ids: &mut HashSet<String>,
    depth: usize,
) {
    if !blobs.insert(digest.hex().to_owned()) || depth > 8 {
        return;
    }
    let Ok(bytes) = store.read_blob(digest) else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return;
    };
    if value.get("manifests").is_some() {
        if let Ok(idx) = serde_json::from_value::<ImageIndex>(value) {
            for m in idx.manifests() {
                if let Ok(d) = Digest::from_oci(m.digest()) {
                    mark(store, &d, blobs, diff_ids, depth + 1);
                }
            }
        }
    } else if value.get("config").is_some() && value.get("layers").is_some() {
        if let Ok(m) = serde_json::from_value::<ImageManifest>(value) {
            if let Ok(c) = Digest::from_oci(m.config().digest()) {
                blobs.insert(c.hex().to_owned());
                if let Ok(cfg) = store.read_blob(&c) {
                    if let Ok(cfg) =
                        serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&cfg)
                    {
                        for id in cfg.rootfs().diff_ids() {
                            if let Ok(d) = Digest::parse(id) {
                                diff_ids.insert(d.hex().to_owned());
                            }
                        }
                    }
                }
            }
            for l in m.layers() {
                if let Ok(d) = Digest::from_oci(l.digest()) {
                    blobs.insert(d.hex().to_owned());
                }
            }
        }
    }
}
