//! `hoist check`: finds what a crash, a full disk or a hand edit left wrong in a store, and with
//! `repair` puts it right. Podman's `system check` is the model.
//!
//! What is checked, in this order (a repair in one part is seen by the next):
//! 1. leftovers of interrupted work: `tmp/` dirs of processes that are gone (their lock is free),
//!    stray files there, `.tmp-` files of an interrupted `index.json` write, names in `blobs/`
//!    and `layers/` that are no digest, and half-made unpacked layers (no completion marker);
//! 2. permissions: the private dirs (`layers/`, `tmp/`, `cache/`, `containers/`) are 0700 and the
//!    OCI layout's files readable, as [`super::Store::open`] makes them;
//! 3. blobs: every file in `blobs/sha256/` re-hashes to its name;
//! 4. images: every manifest, config and layer an `index.json` entry names is present, parses and
//!    has the size its descriptor says;
//! 5. with `verify_layers`, every complete unpacked layer is compared with a fresh unpack of its
//!    blob (types, modes, owners, sizes, contents, link targets, device numbers, xattrs; not
//!    times), which catches damage after it was made;
//! 6. the parts other rooms own (the build cache, working containers), listed in [`PARTS`].
//!
//! Repairs only remove or re-mode: a damaged blob is deleted, an image entry that names something
//! missing is dropped from `index.json`, a leftover or a damaged layer dir is deleted (layers are
//! unpacked again from their blob when next used). Nothing is repaired by guessing content.
//!
//! The check holds `gc.lock` shared (no collection runs meanwhile, so a blob cannot vanish between
//! reading the index and the blob); a store of another user is checked read-only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::layers::{self, DIFF, MARKER};
use super::{
    index, remove_tree, Store, StoreError, PRIVATE_DIRS, PRIVATE_DIR_MODE, PUBLIC_FILE_MODE,
};
use crate::image::{is_hex, Digest, DigestingReader};
use crate::util::FileLock;

/// How to check.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckOptions {
    /// Remove what is damaged or left over, re-mode what is wrong.
    pub repair: bool,
    /// Compare every unpacked layer with a fresh unpack of its blob (reads all layer data).
    pub verify_layers: bool,
}

/// One thing found wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    /// One line: the object first, then what is wrong with it.
    pub line: String,
    /// Whether `repair` put it right.
    pub repaired: bool,
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Images (index entries with a name or without) checked.
    pub images: usize,
    /// Blobs re-hashed.
    pub blobs: usize,
    /// Bytes of blobs re-hashed.
    pub blob_bytes: u64,
    /// Complete unpacked layers.
    pub layers: usize,
    /// The store could not be written (another user's): its private dirs were not checked.
    pub read_only: bool,
}

impl CheckReport {
    /// Problems a repair did not put right.
    pub fn remaining(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(|p| !p.repaired)
    }
}

/// The state one check run shares between its parts.
pub struct Checker<'a> {
    store: &'a Store,
    opts: CheckOptions,
    report: CheckReport,
    /// Blobs removed as damaged (the images part then finds them missing).
    removed_blobs: HashSet<Digest>,
}

impl<'a> Checker<'a> {
    /// The store being checked.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Whether this run repairs.
    pub fn repair(&self) -> bool {
        self.opts.repair
    }

    /// Whether this run verifies unpacked data in depth.
    pub fn verify_layers(&self) -> bool {
        self.opts.verify_layers
    }

    /// Records a problem; `fix` runs when repairing, and the problem counts as repaired when it
    /// succeeds (a failed repair is added to the line).
    pub fn problem(&mut self, line: String, fix: impl FnOnce() -> Result<(), String>) {
        if !self.opts.repair {
            self.report.problems.push(Problem {
                line,
                repaired: false,
            });
            return;
        }
        match fix() {
            Ok(()) => self.report.problems.push(Problem {
                line,
                repaired: true,
            }),
            Err(e) => self.report.problems.push(Problem {
                line: format!("{line} (repair failed: {e})"),
                repaired: false,
            }),
        }
    }

    /// Records a problem that no repair can fix.
    pub fn unrepairable(&mut self, line: String) {
        self.report.problems.push(Problem {
            line,
            repaired: false,
        });
    }
}

/// One part of the check. A room that keeps state in the store (the build cache in `cache/`,
/// working containers in `containers/`) adds its part to [`PARTS`]: it reports each problem with
/// [`Checker::problem`] (one line naming the object, and the repair to run with `--repair`), and
/// checks in particular that every blob and layer its entries name is present
/// ([`Store::has_blob`], [`Store::layer_path`]).
pub type CheckPart = fn(&mut Checker<'_>) -> Result<(), StoreError>;

/// Every part, in order. Parts of other rooms go after `images`.
pub const PARTS: &[(&str, CheckPart)] = &[
    ("leftovers", check_leftovers),
    ("permissions", check_permissions),
    ("blobs", check_blobs),
    ("images", check_images),
    ("layers", check_layers),
    ("containers", super::containers::check),
];

pub(super) fn check(store: &Store, opts: CheckOptions) -> Result<CheckReport, StoreError> {
    if store.tmp.is_some() {
        store.hold_gc_shared()?;
    } else if opts.repair {
        store.check_writable()?;
    }
    let mut c = Checker {
        store,
        opts,
        report: CheckReport {
            read_only: store.tmp.is_none(),
            ..CheckReport::default()
        },
        removed_blobs: HashSet::new(),
    };
    for (name, part) in PARTS {
        log::debug!("check: {name}");
        part(&mut c)?;
    }
    Ok(c.report)
}

fn rel(store: &Store, p: &Path) -> String {
    p.strip_prefix(&store.root)
        .unwrap_or(p)
        .display()
        .to_string()
}

fn remove_any(p: &Path) -> Result<(), String> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => remove_tree(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn read_dir_sorted(p: &Path) -> Result<Vec<fs::DirEntry>, StoreError> {
    let mut v: Vec<fs::DirEntry> = match fs::read_dir(p) {
        Ok(rd) => rd
            .collect::<Result<_, _>>()
            .map_err(|e| StoreError::io(p, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        // a store of another user: its private dirs are closed to us (see CheckReport::read_only)
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(p, e)),
    };
    v.sort_by_key(|e| e.file_name());
    Ok(v)
}

fn check_leftovers(c: &mut Checker<'_>) -> Result<(), StoreError> {
    let store = c.store;
    // tmp/: a dir whose lock file is free belongs to a process that is gone
    let tmp_root = store.root.join("tmp");
    if store.tmp.is_some() {
        let entries = read_dir_sorted(&tmp_root)?;
        let names: HashSet<String> = entries
            .iter()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for e in &entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let Some(stem) = name.strip_suffix(".lock") {
                let Ok(Some(lock)) = FileLock::try_exclusive(&path) else {
                    continue; // a live process
                };
                let dir = tmp_root.join(stem);
                let what = if names.contains(stem) {
                    format!(
                        "leftover `{}`: scratch dir of a hoist process that is gone",
                        rel(store, &dir)
                    )
                } else {
                    format!(
                        "leftover `{}`: lock file of a hoist process that is gone",
                        rel(store, &path)
                    )
                };
                c.problem(what, || {
                    remove_any(&dir)?;
                    remove_any(&path)?;
                    drop(lock);
                    Ok(())
                });
            } else if is_dir {
                if !names.contains(&format!("{name}.lock")) {
                    c.problem(
                        format!(
                            "leftover `{}`: scratch dir without an owner",
                            rel(store, &path)
                        ),
                        || remove_any(&path),
                    );
                }
            } else {
                c.problem(
                    format!(
                        "leftover `{}`: stray file in the scratch dir",
                        rel(store, &path)
                    ),
                    || remove_any(&path),
                );
            }
        }
    }
    // ROOT/.tmp-*: an interrupted atomic write (a live writer holds index.lock meanwhile)
    let strays: Vec<PathBuf> = read_dir_sorted(&store.root)?
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path())
        .collect();
    if !strays.is_empty() {
        let _lock = if store.tmp.is_some() {
            Some(store.index_lock()?)
        } else {
            None
        };
        for p in strays {
            if fs::symlink_metadata(&p).is_err() {
                continue;
            }
            c.problem(
                format!(
                    "leftover `{}`: an interrupted write of `index.json`",
                    rel(store, &p)
                ),
                || remove_any(&p),
            );
        }
    }
    // blobs/sha256: only digests live there (blobs are staged in tmp/)
    let blob_dir = store.root.join("blobs/sha256");
    for e in read_dir_sorted(&blob_dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        if !(is_file && name.len() == 64 && is_hex(&name)) {
            let p = e.path();
            c.problem(
                format!(
                    "leftover `{}`: not a blob (no sha256 digest name)",
                    rel(store, &p)
                ),
                || remove_any(&p),
            );
        }
    }
    // layers/: HEX dirs holding `diff/` and a marker naming their diff_id
    let layer_dir = store.root.join("layers");
    for e in read_dir_sorted(&layer_dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !(is_dir && name.len() == 64 && is_hex(&name)) {
            c.problem(
                format!("leftover `{}`: not an unpacked layer", rel(store, &p)),
                || remove_any(&p),
            );
            continue;
        }
        let diff_id = Digest::parse(&format!("sha256:{name}"))?;
        if layers::is_complete(store, &diff_id) {
            c.report.layers += 1;
            continue;
        }
        let why = if layers::from_earlier_boot(store, &diff_id) {
            "unpacked before the last restart and never flushed to disk; it is unpacked again when needed"
        } else if p.join(MARKER).exists() {
            "its completion marker does not match"
        } else {
            "half-unpacked or from an older hoist (no completion marker); it is unpacked again when needed"
        };
        c.problem(format!("layer `{diff_id}`: {why}"), || {
            let scratch = store.tmp_dir().map_err(|e| e.to_string())?;
            layers::drop_incomplete(store, &diff_id, scratch.path())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }
    Ok(())
}

fn check_permissions(c: &mut Checker<'_>) -> Result<(), StoreError> {
    let store = c.store;
    for d in PRIVATE_DIRS {
        let p = store.root.join(d);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.mode() & 0o077 != 0 {
            c.problem(
                format!(
                    "permissions `{d}/`: mode {:o}, other users may reach it (must be {PRIVATE_DIR_MODE:o})",
                    m.mode() & 0o7777
                ),
                || super::fix_mode(&p, PRIVATE_DIR_MODE).map_err(|e| e.to_string()),
            );
        }
    }
    for f in ["oci-layout", "index.json"] {
        let p = store.root.join(f);
        let Ok(m) = fs::symlink_metadata(&p) else {
            continue;
        };
        if m.mode() & 0o044 != 0o044 {
            c.problem(
                format!(
                    "permissions `{f}`: mode {:o}, other tools cannot read the layout (must be {PUBLIC_FILE_MODE:o})",
                    m.mode() & 0o7777
                ),
                || super::fix_mode(&p, PUBLIC_FILE_MODE).map_err(|e| e.to_string()),
            );
        }
    }
    Ok(())
}

fn check_blobs(c: &mut Checker<'_>) -> Result<(), StoreError> {
    let store = c.store;
    let blob_dir = store.root.join("blobs/sha256");
    for e in read_dir_sorted(&blob_dir)? {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.len() == 64 && is_hex(&name) && e.file_type().is_ok_and(|t| t.is_file())) {
            continue; // a leftover, reported above
        }
        let digest = Digest::parse(&format!("sha256:{name}"))?;
        let p = e.path();
        let mut f = match fs::File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                c.unrepairable(format!("blob `{digest}`: cannot be read: {e}"));
                continue;
            }
        };
        let mut h = DigestingReader::new(&mut f);
        let outcome = io::copy(&mut h, &mut io::sink());
        let (actual, size) = h.finish();
        c.report.blobs += 1;
        c.report.blob_bytes += size;
        let line = match outcome {
            Err(e) => format!("blob `{digest}`: cannot be read: {e}"),
            Ok(_) if actual != digest => {
                format!("blob `{digest}`: its content hashes to `{actual}` ({size} bytes)")
            }
            Ok(_) => continue,
        };
        let mut removed = false;
        c.problem(line, || {
            remove_any(&p)?;
            removed = true;
            Ok(())
        });
        if removed {
            c.removed_blobs.insert(digest);
        }
    }
    Ok(())
}

/// What is wrong with one index entry's image, if anything.
fn image_problem(store: &Store, manifest_digest: &Digest, size: u64) -> Option<String> {
    let blob_size = |d: &Digest| fs::metadata(store.blob_path(d)).ok().map(|m| m.len());
    let Some(actual) = blob_size(manifest_digest) else {
        return Some(format!("manifest `{manifest_digest}` is missing"));
    };
    if actual != size {
        return Some(format!(
            "manifest `{manifest_digest}` has {actual} bytes, `index.json` says {size}"
        ));
    }
    let bytes = match store.read_blob(manifest_digest) {
        Ok(b) => b,
        Err(e) => return Some(e.to_string()),
    };
    let manifest: ImageManifest = match serde_json::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => return Some(format!("manifest `{manifest_digest}` does not parse: {e}")),
    };
    let cfg = manifest.config();
    let Ok(cfg_digest) = Digest::from_oci(cfg.digest()) else {
        return Some(format!("config digest `{}` is not sha256", cfg.digest()));
    };
    match blob_size(&cfg_digest) {
        None => return Some(format!("config `{cfg_digest}` is missing")),
        Some(s) if s != cfg.size() => {
            return Some(format!(
                "config `{cfg_digest}` has {s} bytes, the manifest says {}",
                cfg.size()
            ))
        }
        Some(_) => {}
    }
    let config = match store
        .read_blob(&cfg_digest)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice::<ImageConfiguration>(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return Some(format!("config `{cfg_digest}` does not parse: {e}")),
    };
    if config.rootfs().diff_ids().len() != manifest.layers().len() {
        return Some(format!(
            "config `{cfg_digest}` lists {} diff_ids for {} layers",
            config.rootfs().diff_ids().len(),
            manifest.layers().len()
        ));
    }
    for l in manifest.layers() {
        let Ok(d) = Digest::from_oci(l.digest()) else {
            return Some(format!("layer digest `{}` is not sha256", l.digest()));
        };
        match blob_size(&d) {
            None => return Some(format!("layer `{d}` is missing")),
            Some(s) if s != l.size() => {
                return Some(format!(
                    "layer `{d}` has {s} bytes, the manifest says {}",
                    l.size()
                ))
            }
            Some(_) => {}
        }
    }
    None
}

fn check_images(c: &mut Checker<'_>) -> Result<(), StoreError> {
    let store = c.store;
    let idx = match index::read_index(store) {
        Ok(i) => i,
        Err(e) => {
            c.unrepairable(format!("index `index.json`: {e}"));
            return Ok(());
        }
    };
    // one problem per image, named by its names (or its manifest digest)
    let mut order: Vec<Digest> = Vec::new();
    let mut names: HashMap<Digest, (u64, Vec<String>)> = HashMap::new();
    for d in idx.manifests() {
        if index::is_index_type(d.media_type()) {
            continue;
        }
        let Ok(md) = Digest::from_oci(d.digest()) else {
            c.unrepairable(format!(
                "index entry `{}`: not a sha256 digest (left alone)",
                d.digest()
            ));
            continue;
        };
        let e = names.entry(md.clone()).or_insert_with(|| {
            order.push(md.clone());
            (d.size(), Vec::new())
        });
        if let Some(n) = index::name_of(d) {
            e.1.push(n.to_string());
        }
    }
    for md in order {
        c.report.images += 1;
        let (size, ns) = &names[&md];
        let Some(why) = image_problem(store, &md, *size) else {
            continue;
        };
        let who = if ns.is_empty() {
            format!("image `{md}`")
        } else {
            format!("image `{}`", ns.join("`, `"))
        };
        c.problem(
            format!("{who}: {why}; the image cannot be used (repair drops it from the index)"),
            || {
                index::update_index(store, |descs| {
                    index::remove_image_in(descs, &md);
                    Ok(())
                })
                .map_err(|e| e.to_string())
            },
        );
    }
    Ok(())
}

/// With `verify_layers`: each complete unpacked layer against a fresh unpack of a blob that
/// names it.
fn check_layers(c: &mut Checker<'_>) -> Result<(), StoreError> {
    if !c.opts.verify_layers {
        return Ok(());
    }
    let store = c.store;
    if store.tmp.is_none() {
        c.unrepairable(format!(
            "store `{}`: read-only, unpacked layers cannot be verified",
            store.root.display()
        ));
        return Ok(());
    }
    // diff_id -> a blob that holds it, from the images listed now
    let mut blob_of: BTreeMap<Digest, Digest> = BTreeMap::new();
    for r in store.images()? {
        if let (Ok(blobs), Ok(ids)) = (r.layer_digests(), r.diff_ids()) {
            for (b, d) in blobs.into_iter().zip(ids) {
                blob_of.entry(d).or_insert(b);
            }
        }
    }
    for (diff_id, blob) in blob_of {
        if !layers::is_complete(store, &diff_id) || !store.has_blob(&blob) {
            continue;
        }
        let fresh = store.tmp_dir()?;
        let target = fresh.path().join(DIFF);
        fs::create_dir(&target).map_err(|e| StoreError::io(&target, e))?;
        if let Err(e) = layers::unpack_into(store, &blob, &diff_id, &target) {
            // a damaged blob: the blobs and images parts report it
            log::debug!("cannot unpack `{blob}` to verify layer `{diff_id}`: {e}");
            continue;
        }
        let have = store.layer_path(&diff_id);
        let diff = match (tree_listing(&target), tree_listing(&have)) {
            (Ok(want), Ok(got)) => first_difference(&want, &got),
            (_, Err(e)) => Some(format!("cannot be read: {e}")),
            (Err(e), _) => return Err(StoreError::io(&target, e)),
        };
        drop(fresh);
        if let Some(d) = diff {
            c.problem(
                format!("layer `{diff_id}`: differs from its blob `{blob}`: {d}; it is unpacked again when needed"),
                || {
                    let scratch = store.tmp_dir().map_err(|e| e.to_string())?;
                    layers::drop_layer(store, &diff_id, scratch.path()).map_err(|e| e.to_string())
                },
            );
        }
    }
    Ok(())
}

/// Whether an xattr is part of what a layer holds: overlayfs's own bookkeeping on a RUN step's
/// upper dir (`user.overlay.origin`, `impure`, …) is not, except the opaque-dir mark that stands
/// for a whiteout.
fn is_layer_xattr(name: &str) -> bool {
    match name
        .strip_prefix("user.overlay.")
        .or_else(|| name.strip_prefix("trusted.overlay."))
    {
        Some(rest) => rest == "opaque",
        None => true,
    }
}

/// What a tree holds, path by path: everything the layer's tar decides (not times).
fn tree_listing(root: &Path) -> io::Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.map_err(io::Error::other)?;
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_path_buf();
        if rel.as_os_str().is_empty() {
            continue; // the layer's own top dir: made by hoist, not by the tar
        }
        let m = e.path().symlink_metadata()?;
        let t = m.file_type();
        let kind = if t.is_dir() {
            "dir".to_string()
        } else if t.is_symlink() {
            format!("link {}", fs::read_link(e.path())?.display())
        } else if t.is_file() {
            let mut f = fs::File::open(e.path())?;
            let mut h = DigestingReader::new(&mut f);
            io::copy(&mut h, &mut io::sink())?;
            let (d, n) = h.finish();
            format!("file {n} {d}")
        } else if t.is_char_device() || t.is_block_device() {
            format!("device {}", m.rdev())
        } else if t.is_fifo() {
            "fifo".to_string()
        } else {
            "socket".to_string()
        };
        let mut xattrs: Vec<String> = xattr::list(e.path())
            .map(|l| {
                l.filter(|n| is_layer_xattr(&n.to_string_lossy()))
                    .map(|n| {
                        let v = xattr::get(e.path(), &n).ok().flatten().unwrap_or_default();
                        format!("{}={}", n.to_string_lossy(), Digest::of_bytes(&v).short())
                    })
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        out.insert(
            rel,
            format!(
                "{kind} mode {:o} owner {}:{} xattrs [{}]",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                xattrs.join(" ")
            ),
        );
    }
    Ok(out)
}

fn first_difference(
    want: &BTreeMap<PathBuf, String>,
    got: &BTreeMap<PathBuf, String>,
) -> Option<String> {
    for (p, w) in want {
        match got.get(p) {
            None => return Some(format!("`/{}` is missing", p.display())),
            Some(g) if g != w => {
                return Some(format!("`/{}` is `{g}`, the blob has `{w}`", p.display()))
            }
            Some(_) => {}
        }
    }
    got.keys()
        .find(|p| !want.contains_key(*p))
        .map(|p| format!("`/{}` is not in the blob", p.display()))
}
