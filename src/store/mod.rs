//! The local image store: an OCI image layout (image-spec `image-layout.md`) that other OCI tools
//! read as it is, plus hoist's own directories beside it.
//!
//! ```text
//! ROOT/oci-layout            {"imageLayoutVersion":"1.0.0"}
//! ROOT/index.json            one manifest descriptor per image name (`org.opencontainers.image.ref.name`
//!                            = the full name, `localhost/app:latest`); an unnamed image keeps one
//!                            descriptor without the annotation
//! ROOT/blobs/sha256/HEX      manifests, configs, layer blobs
//! ROOT/layers/DIFFIDHEX/     unpacked layers in overlay form (overlay lower dirs)
//! ROOT/cache/                the build cache index (owned by the build engine)
//! ROOT/tmp/                  per-process scratch dirs, each guarded by a lock file
//! ROOT/index.lock, gc.lock   advisory locks (see below)
//! ```
//!
//! `skopeo inspect oci:ROOT:localhost/app:latest` and `umoci unpack --image ROOT:localhost/app:latest`
//! address a hoist name by its full normalised form (both tools split `ROOT:NAME` at the first
//! `:`, and match the annotation exactly).
//!
//! Rules this module keeps (DESIGN.md, "Decisions"):
//! - nothing half-written is visible: blobs are written into the process's `tmp/` dir, fsynced,
//!   and renamed into `blobs/`; `index.json` is replaced by rename under `index.lock`;
//! - readers take no lock: they read one `index.json` snapshot;
//! - every process that writes blobs or uses unpacked layers holds `gc.lock` shared until it ends;
//!   blob and layer garbage collection needs it exclusively and is skipped (left for a later
//!   `prune`) while another process works, so a build's not yet committed blobs are never lost;
//! - `tmp/` leftovers of dead processes (their lock is free) are swept on open.
//!
//! The store never talks to a registry and never parses Dockerfiles.

pub mod cache;
mod check;
pub mod compressed;
pub mod containers;
mod gc;
mod import;
mod index;
mod layers;
mod sizes;
mod source;

pub use check::{CheckOptions, CheckPart, CheckReport, Checker, Problem, PARTS as CHECK_PARTS};
pub use gc::{has_children, is_parent, PruneMode, PruneReport, RemoveReport};
pub use gc::{GcRoots, GcRootsFn, ROOTS as GC_ROOTS};
pub use import::ImportOptions;
pub use index::parse_time;
pub use source::StoreImage;

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::image::{Digest, DigestError, DigestingWriter, ImageError, Reference, ReferenceError};
use crate::util::{self, FileLock};

/// The annotation that carries an image's name in `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

const OCI_LAYOUT: &str = "{\"imageLayoutVersion\":\"1.0.0\"}";

/// Mode of the OCI layout's files (`oci-layout`, `index.json`, blobs), whatever the umask: other
/// tools and users read the layout where ROOT's own mode lets them.
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of the OCI layout's dirs (`blobs/`, `blobs/sha256/`).
pub(crate) const PUBLIC_DIR_MODE: u32 = 0o755;
/// Mode of the store's private dirs, whatever the umask: unpacked layers hold images' setuid
/// files and device nodes, which no other user may reach.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the lock files, whatever the umask (see `prepare_layout`).
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// The store's private dirs: unpacked layers, build cache, working containers, scratch.
pub(crate) const PRIVATE_DIRS: [&str; 5] = ["layers", "cache", "containers", "tmp", "sizes"];

/// Why a store operation failed. Every variant names the object it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // the cause is part of the one line, not a second link of the chain (printed twice)
    #[error("`{path}`: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("store `{root}` is read-only: {reason}")]
    ReadOnly { root: PathBuf, reason: String },
    #[error("image `{0}` is not known")]
    NotFound(String),
    #[error("no such container: `{0}`")]
    ContainerNotFound(String),
    #[error("container `{0}` is in use by another hoist process")]
    ContainerInUse(String),
    #[error("image `{image}` is in use by container `{container}` (`hoist rm` it first, or use `--force`)")]
    ImageInUse { image: String, container: String },
    #[error("short image ID `{prefix}` is ambiguous: it matches {}", .candidates.join(", "))]
    Ambiguous {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("name `{0}` carries a digest: names are tags, a digest cannot be given to an image")]
    NameWithDigest(String),
    #[error("blob `{0}` is missing from the store")]
    MissingBlob(Digest),
    #[error("blob `{expected}` does not match its content (the data hashes to `{actual}`)")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("blob `{digest}` has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error(
        "layer `{digest}` uncompresses to `{actual}`, the image config says diff_id `{expected}`"
    )]
    DiffIdMismatch {
        digest: Digest,
        expected: Digest,
        actual: Digest,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("image `{image}` has {names} names; remove them one by one or use `--force`")]
    MultipleNames { image: String, names: usize },
    #[error("layer `{diff_id}`: {error}")]
    Layer {
        diff_id: Digest,
        error: crate::layer::LayerError,
    },
    #[error("`{path}` cannot be moved into the store's layers: it is on another file system")]
    CrossDevice { path: PathBuf },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            error: source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Invalid {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// One image in the store: its manifest, config and names.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    /// The image ID: the config blob's digest.
    pub id: Digest,
    /// The manifest blob's digest (`name@digest` resolves by it).
    pub manifest_digest: Digest,
    /// The manifest blob's size.
    pub manifest_size: u64,
    /// The manifest's media type as written in `index.json`.
    pub manifest_media_type: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob's size.
    pub config_size: u64,
    /// Full names (`localhost/app:latest`), in index order; empty for a dangling image.
    pub names: Vec<Reference>,
    /// The config's `created` time, when it has a valid one.
    pub created: Option<DateTime<Utc>>,
    /// Bytes the image's blobs take in the store: manifest, config and (compressed) layers.
    pub size: u64,
}

impl ImageRecord {
    /// The config's `rootfs.diff_ids`, bottom layer first.
    pub fn diff_ids(&self) -> Result<Vec<Digest>, StoreError> {
        self.config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d).map_err(StoreError::from))
            .collect()
    }

    /// The manifest's layer blob digests, bottom layer first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>, StoreError> {
        self.manifest
            .layers()
            .iter()
            .map(|l| Digest::from_oci(l.digest()).map_err(StoreError::from))
            .collect()
    }

    /// Whether the image has no name.
    pub fn is_dangling(&self) -> bool {
        self.names.is_empty()
    }
}

/// The per-process scratch directory `tmp/PID-RANDOM/`, guarded by `tmp/PID-RANDOM.lock`.
#[derive(Debug)]
struct ProcTmp {
    dir: PathBuf,
    lock: FileLock,
}

/// A local image store rooted at a directory. Cheap to open; share it by reference.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// `None` when the store cannot be written (read-only mount, foreign owner).
    tmp: Option<ProcTmp>,
    /// Why the store is read-only, when it is.
    read_only: Option<String>,
    /// The shared `gc.lock`, taken on the first write or layer use and held until drop.
    gc_shared: OnceLock<FileLock>,
}

impl Store {
    /// Opens (creating it when missing) the store at `root`: the OCI layout files, `blobs/sha256`,
    /// `layers/`, `cache/`, `tmp/`. Sweeps `tmp/` leftovers of processes that are gone.
    ///
    /// A store that exists but cannot be written opens read-only: listing and inspecting work,
    /// writes fail with [`StoreError::ReadOnly`].
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, true)
    }

    /// Opens the store like [`Store::open`] but leaves what interrupted work left behind in
    /// place, for [`Store::check`] to list (and, when asked, remove).
    pub fn open_unswept(root: &Path) -> Result<Store, StoreError> {
        Self::open_with(root, false)
    }

    fn open_with(root: &Path, sweep: bool) -> Result<Store, StoreError> {
        let root = root.to_path_buf();
        match Self::prepare_layout(&root) {
            Ok(()) => {}
            Err(e) if is_read_only_error(&e) && root.join("index.json").is_file() => {
                log::debug!("store `{}` opens read-only: {e}", root.display());
                return Ok(Store {
                    read_only: Some(e.to_string()),
                    root,
                    tmp: None,
                    gc_shared: OnceLock::new(),
                });
            }
            Err(e) if is_read_only_error(&e) => {
                return Err(StoreError::ReadOnly {
                    reason: format!("cannot create the store layout: {e}"),
                    root,
                })
            }
            Err(e) => return Err(StoreError::io(&root, e)),
        }
        let tmp_root = root.join("tmp");
        if sweep {
            sweep_tmp(&tmp_root);
        }
        let tmp = match make_proc_tmp(&tmp_root) {
            Ok(t) => t,
            Err(e) if is_read_only_error(&e) => {
                return Ok(Store {
                    read_only: Some(e.to_string()),
                    root,
                    tmp: None,
                    gc_shared: OnceLock::new(),
                })
            }
            Err(e) => return Err(StoreError::io(&tmp_root, e)),
        };
        let store = Store {
            root,
            tmp: Some(tmp),
            read_only: None,
            gc_shared: OnceLock::new(),
        };
        if sweep {
            index::sweep_index_leftovers(&store);
        }
        Ok(store)
    }

    fn prepare_layout(root: &Path) -> io::Result<()> {
        // ROOT itself follows the umask: whether other users may read the store's images is the
        // owner's choice, made with ROOT's mode (or its parent's)
        if !root.is_dir() {
            fs::create_dir_all(root)?;
        }
        for d in ["blobs", "blobs/sha256"] {
            ensure_dir_mode(&root.join(d), PUBLIC_DIR_MODE)?;
        }
        for d in PRIVATE_DIRS {
            ensure_dir_mode(&root.join(d), PRIVATE_DIR_MODE)?;
        }
        // a lock file another user could open (even read-only) could be flocked by them, holding
        // this user's writes and collections hostage: 0600, whatever the umask
        for f in ["index.lock", "gc.lock"] {
            let p = root.join(f);
            if !p.exists() {
                use std::os::unix::fs::OpenOptionsExt;
                match fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(PRIVATE_FILE_MODE)
                    .open(&p)
                {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            fix_mode(&p, PRIVATE_FILE_MODE)?;
        }
        // every atomic write in the root happens under `index.lock`: an opener sweeps the `.tmp-`
        // files of interrupted writes while holding it
        let layout = root.join("oci-layout");
        let index = root.join("index.json");
        if !layout.is_file() || !index.is_file() {
            let _lock = FileLock::exclusive(&root.join("index.lock"))?;
            if !layout.is_file() {
                util::write_atomic_mode(&layout, OCI_LAYOUT.as_bytes(), PUBLIC_FILE_MODE)?;
            }
            // checked again under the lock, so a racing first commit is never overwritten
            if !index.is_file() {
                util::write_atomic_mode(&index, index::EMPTY_INDEX.as_bytes(), PUBLIC_FILE_MODE)?;
            }
        }
        // stores made by earlier versions kept `index.json` private while blobs were readable
        for f in [&layout, &index] {
            fix_mode(f, PUBLIC_FILE_MODE)?;
        }
        Ok(())
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The build cache directory (`ROOT/cache`), owned by the build engine.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// Where a blob lives (whether or not it is there).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(d.hex())
    }

    /// Whether a blob is in the store.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Reads a whole (small) blob: a manifest or a config.
    pub fn read_blob(&self, d: &Digest) -> Result<Vec<u8>, StoreError> {
        let p = self.blob_path(d);
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => StoreError::io(p, e),
        })
    }

    /// Opens a blob for streaming.
    pub fn open_blob(&self, d: &Digest) -> Result<File, StoreError> {
        let p = self.blob_path(d);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(d.clone()),
            _ => StoreError::io(p, e),
        })
    }

    /// Fails unless the store can be written; takes the shared gc lock on first use so that no
    /// collection removes what this process is about to reference.
    fn writable(&self) -> Result<&ProcTmp, StoreError> {
        let tmp = self.check_writable()?;
        self.hold_gc_shared()?;
        Ok(tmp)
    }

    /// Fails unless the store can be written, without taking any lock.
    fn check_writable(&self) -> Result<&ProcTmp, StoreError> {
        self.tmp.as_ref().ok_or_else(|| StoreError::ReadOnly {
            root: self.root.clone(),
            reason: self
                .read_only
                .clone()
                .unwrap_or_else(|| "cannot write".into()),
        })
    }

    fn hold_gc_shared(&self) -> Result<(), StoreError> {
        if self.gc_shared.get().is_none() {
            let p = self.root.join("gc.lock");
            let lock = FileLock::shared(&p).map_err(|e| StoreError::io(&p, e))?;
            // a racing set from another thread of this process holds the same lock anyway
            let _ = self.gc_shared.set(lock);
        }
        Ok(())
    }

    /// Streams a blob into the store: written under `tmp/`, fsynced, renamed into `blobs/`.
    /// Idempotent: an existing blob of the same digest is kept.
    pub fn write_blob(&self, r: &mut dyn Read) -> Result<(Digest, u64), StoreError> {
        let staged = self.stage_blob(r)?;
        let out = (staged.digest.clone(), staged.size);
        self.install_blob(staged)?;
        Ok(out)
    }

    /// Like [`Store::write_blob`], but refuses data that does not hash to `expected` (nothing is
    /// written then). Returns the blob's size; an existing blob is not read again.
    pub fn write_blob_expect(
        &self,
        r: &mut dyn Read,
        expected: &Digest,
    ) -> Result<u64, StoreError> {
        if let Some(size) = self.existing_blob_size(expected) {
            self.writable()?;
            return Ok(size);
        }
        let staged = self.stage_blob_expect(r, expected)?;
        let size = staged.size;
        self.install_blob(staged)?;
        Ok(size)
    }

    fn existing_blob_size(&self, d: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(d))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Writes a blob into this process's `tmp/` dir (fsynced) without making it visible; see
    /// [`Store::install_blob`]. Dropping the [`StagedBlob`] deletes it.
    pub fn stage_blob(&self, r: &mut dyn Read) -> Result<StagedBlob, StoreError> {
        let mut w = self.blob_writer()?;
        io::copy(r, &mut w).map_err(|e| StoreError::io(&w.path, e))?;
        w.finish()
    }

    /// A writer into a new staged blob (for data produced while it is written, such as a
    /// compressed layer); [`BlobWriter::finish`] gives the [`StagedBlob`].
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp = self.writable()?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp.dir)
            .map_err(|e| StoreError::io(&tmp.dir, e))?;
        let path = file.path().to_path_buf();
        Ok(BlobWriter {
            inner: DigestingWriter::new(BufWriter::with_capacity(256 * 1024, file)),
            path,
        })
    }

    /// A writer into a new staged blob that does not hash what it writes, for a caller that
    /// hashes the very same bytes itself (a [`crate::layer::LayerWriter`] computes the blob's
    /// digest as it writes it): a layer's bytes are hashed once, not twice.
    /// [`PrehashedBlobWriter::finish`] takes that digest.
    pub fn prehashed_blob_writer(&self) -> Result<PrehashedBlobWriter, StoreError> {
        let tmp = self.writable()?;
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp.dir)
            .map_err(|e| StoreError::io(&tmp.dir, e))?;
        let path = file.path().to_path_buf();
        Ok(PrehashedBlobWriter {
            inner: BufWriter::with_capacity(256 * 1024, file),
            path,
            count: 0,
        })
    }

    /// [`Store::stage_blob`] that refuses data not hashing to `expected`.
    pub fn stage_blob_expect(
        &self,
        r: &mut dyn Read,
        expected: &Digest,
    ) -> Result<StagedBlob, StoreError> {
        let staged = self.stage_blob(r)?;
        if &staged.digest != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: staged.digest.clone(),
            });
        }
        Ok(staged)
    }

    /// Makes a staged blob visible under `blobs/sha256/` (rename, then fsync of the directory).
    pub fn install_blob(&self, staged: StagedBlob) -> Result<(), StoreError> {
        if self.install_blob_unsynced(staged)? {
            self.sync_blobs()?;
        }
        Ok(())
    }

    /// [`Store::install_blob`] without the fsync of `blobs/sha256/`: the blob's content is
    /// durable, its name only after the next [`Store::sync_blobs`]. For a build's layers: a
    /// cache entry whose blob a power loss took reads as a miss, and the build syncs the
    /// directory once before it writes the image that names them (one directory fsync per build
    /// instead of one per step). Returns whether the blob was new.
    pub fn install_blob_unsynced(&self, staged: StagedBlob) -> Result<bool, StoreError> {
        self.writable()?;
        let dest = self.blob_path(&staged.digest);
        if dest.is_file() {
            return Ok(false);
        }
        let _ = fs::set_permissions(
            staged.file.path(),
            fs::Permissions::from_mode(PUBLIC_FILE_MODE),
        );
        staged
            .file
            .persist(&dest)
            .map_err(|e| StoreError::io(&dest, e.error))?;
        Ok(true)
    }

    /// Makes every rename into `blobs/sha256/` so far durable (fsync of the directory).
    pub fn sync_blobs(&self) -> Result<(), StoreError> {
        let dir = self.root.join("blobs/sha256");
        util::sync_dir(&dir).map_err(|e| StoreError::io(&dir, e))
    }

    /// A fresh scratch directory under `tmp/`, on the store's file system (so that its contents
    /// can be renamed into the store). Removed when dropped.
    pub fn tmp_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.writable()?;
        tempfile::Builder::new()
            .prefix("work-")
            .tempdir_in(&tmp.dir)
            .map_err(|e| StoreError::io(&tmp.dir, e))
    }

    /// The exclusive lock that guards `index.json` updates. Hold it only briefly. The process
    /// also keeps `gc.lock` shared from then on, so holding this lock while writing blobs cannot
    /// deadlock with a collection.
    pub fn lock(&self) -> Result<FileLock, StoreError> {
        self.writable()?;
        self.index_lock()
    }

    /// `index.lock` alone (collections take it while holding `gc.lock` exclusively).
    fn index_lock(&self) -> Result<FileLock, StoreError> {
        self.check_writable()?;
        let p = self.root.join("index.lock");
        FileLock::exclusive(&p).map_err(|e| StoreError::io(&p, e))
    }

    /// Every image, in `index.json` order.
    ///
    /// A blob missing while the listing is read (a concurrent `prune` between reading
    /// `index.json` and the blob) makes it read the index again; an entry still broken after
    /// that, or one that is not an image (an artifact another tool stored), is skipped with a
    /// warning, so it does not hide the images.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        for _ in 0..2 {
            match index::load_records(self, false) {
                Err(StoreError::MissingBlob(d)) => {
                    log::debug!("blob `{d}` vanished while listing; reading the index again");
                }
                other => return other,
            }
        }
        index::load_records(self, true)
    }

    /// Finds one image by what a user typed: a name (`busybox` means `localhost/busybox:latest`
    /// if that exists, else `docker.io/library/busybox:latest`), an ID (`sha256:HEX` or `HEX`), a
    /// unique ID prefix, or `name@sha256:…` (by manifest digest).
    pub fn resolve(&self, name_or_id: &str) -> Result<ImageRecord, StoreError> {
        index::resolve(&self.images()?, name_or_id)
    }

    /// Reads an image of the store as an [`crate::image::ImageSource`] (for save and push).
    pub fn source(&self, image: &ImageRecord) -> StoreImage<'_> {
        StoreImage::new(self, image)
    }

    /// Records an image whose blobs (config and layers) are all in the store already: writes the
    /// manifest blob and gives the image `names` (each moves from the image that had it). An
    /// image with the same ID (config digest) already present keeps its manifest and gains the
    /// names. Returns the image as it is now.
    pub fn commit_image(
        &self,
        manifest: &[u8],
        names: &[Reference],
    ) -> Result<ImageRecord, StoreError> {
        self.writable()?;
        let checked = index::check_manifest(self, manifest)?;
        for n in names {
            check_name(n)?;
        }
        // under index.lock: the same image under another manifest only gains the names (no
        // stray manifest blob); otherwise the manifest is written and listed
        let id = index::add_image(self, &checked, manifest, names)?;
        self.images()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| StoreError::NotFound(id.to_string()))
    }

    /// Copies an image from any source (an archive, a registry) into the store: every blob is
    /// checked against its digest and size, and every layer against its diff_id, before anything
    /// becomes visible; then the image is committed with `names`. On failure the store is as it
    /// was (blobs of the half-read image stay in this process's `tmp/` and are deleted).
    pub fn copy_from(
        &self,
        src: &dyn crate::image::ImageSource,
        names: &[Reference],
    ) -> Result<ImageRecord, StoreError> {
        self.copy_image(src, None, names)
    }

    /// [`Store::copy_from`] with up to `jobs` layers read and staged at the same time (for a
    /// source where reading is slow, such as a registry). The same checks, the same atomicity.
    pub fn copy_from_parallel(
        &self,
        src: &(dyn crate::image::ImageSource + Sync),
        jobs: usize,
        names: &[Reference],
    ) -> Result<ImageRecord, StoreError> {
        self.copy_image(src, Some((src, jobs)), names)
    }

    fn copy_image(
        &self,
        src: &dyn crate::image::ImageSource,
        parallel: Option<(&(dyn crate::image::ImageSource + Sync), usize)>,
        names: &[Reference],
    ) -> Result<ImageRecord, StoreError> {
        for n in names {
            check_name(n)?;
        }
        // from here on no collection runs: blobs found present stay until the commit names them
        self.writable()?;
        let (manifest_bytes, manifest) = src.manifest()?;
        index::check_manifest_kind(&manifest, &manifest_bytes)?;
        let mut staged = Vec::new();
        let cfg = manifest.config();
        let cfg_digest = Digest::from_oci(cfg.digest())?;
        // the same image (same config) is here already: it only gains the names (decided under
        // index.lock, so a concurrent `rmi` of it either comes first and we copy, or after)
        if index::add_names_to_config(self, &cfg_digest, names)?.is_some() {
            return self.resolve(&cfg_digest.to_string());
        }
        let cfg_bytes = if self.has_blob(&cfg_digest) {
            self.read_blob(&cfg_digest)?
        } else {
            let bytes = src.config()?;
            let s = self.stage_blob_expect(&mut &bytes[..], &cfg_digest)?;
            check_size(&s, cfg.size())?;
            staged.push(s);
            bytes
        };
        let config: ImageConfiguration = serde_json::from_slice(&cfg_bytes)
            .map_err(|e| StoreError::invalid(format!("image config `{cfg_digest}`"), e))?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(StoreError::invalid(
                format!("image config `{cfg_digest}`"),
                format!(
                    "{} diff_ids for {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            ));
        }
        let mut todo: Vec<(Digest, Digest, u64)> = Vec::new();
        for (layer, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let d = Digest::from_oci(layer.digest())?;
            let diff_id = Digest::parse(diff_id)?;
            if self.has_blob(&d) || todo.iter().any(|(x, _, _)| *x == d) {
                continue;
            }
            todo.push((d, diff_id, layer.size()));
        }
        // unpacked sizes learnt while checking diff_ids, recorded once every blob is in
        let learnt: std::sync::Mutex<Vec<(Digest, u64)>> = std::sync::Mutex::new(Vec::new());
        let stage_one = |src: &dyn crate::image::ImageSource,
                         (d, diff_id, size): &(Digest, Digest, u64)|
         -> Result<StagedBlob, StoreError> {
            let mut r = src.open_blob(d)?;
            let s = self.stage_blob_expect(&mut r, d)?;
            check_size(&s, *size)?;
            if let Some(n) = layers::check_diff_id(s.file.path(), d, diff_id)? {
                util::lock(&learnt).push((diff_id.clone(), n));
            }
            Ok(s)
        };
        match parallel {
            Some((psrc, jobs)) if todo.len() > 1 && jobs > 1 => {
                let next = std::sync::atomic::AtomicUsize::new(0);
                let results: Vec<Result<Vec<StagedBlob>, StoreError>> = std::thread::scope(|s| {
                    let workers: Vec<_> = (0..jobs.min(todo.len()))
                        .map(|_| {
                            s.spawn(|| {
                                let mut mine = Vec::new();
                                loop {
                                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    let Some(item) = todo.get(i) else {
                                        return Ok(mine);
                                    };
                                    match stage_one(psrc, item) {
                                        Ok(b) => mine.push(b),
                                        Err(e) => {
                                            // the others stop at their next layer
                                            next.store(
                                                todo.len(),
                                                std::sync::atomic::Ordering::SeqCst,
                                            );
                                            return Err(e);
                                        }
                                    }
                                }
                            })
                        })
                        .collect();
                    workers
                        .into_iter()
                        .map(|w| {
                            w.join().unwrap_or_else(|_| {
                                Err(StoreError::invalid(
                                    "layer copy",
                                    "a worker thread panicked",
                                ))
                            })
                        })
                        .collect()
                });
                for r in results {
                    staged.extend(r?);
                }
            }
            _ => {
                for item in &todo {
                    staged.push(stage_one(src, item)?);
                }
            }
        }
        for s in staged {
            self.install_blob(s)?;
        }
        let record = self.commit_image(&manifest_bytes, names)?;
        for (diff_id, n) in learnt.into_inner().unwrap_or_else(|p| p.into_inner()) {
            sizes::record(self, &diff_id, n);
        }
        Ok(record)
    }

    /// The image's unpacked size (docker's SIZE): the sum of its layers' uncompressed tar sizes.
    /// Plain-tar layers cost nothing; a compressed layer's size is read from its record, made
    /// once (see `sizes.rs`).
    pub fn unpacked_size(&self, image: &ImageRecord) -> Result<u64, StoreError> {
        sizes::unpacked_size(self, image)
    }

    /// Records the uncompressed tar size of a compressed layer the caller just wrote, so that
    /// listing images never has to decompress it (nothing is recorded for a plain tar).
    pub fn record_layer_size(&self, blob: &Digest, diff_id: &Digest, size: u64) {
        if blob != diff_id {
            sizes::record(self, diff_id, size);
        }
    }

    /// The unpacked size of each of the image's layers, bottom first (`history`'s SIZE).
    pub fn layer_unpacked_sizes(&self, image: &ImageRecord) -> Result<Vec<u64>, StoreError> {
        sizes::layer_sizes(self, image)
    }

    /// The unpacked size of `images` together, each layer counted once (`system df`).
    pub fn unpacked_total(&self, images: &[ImageRecord]) -> Result<u64, StoreError> {
        sizes::unpacked_total(self, images)
    }

    /// Re-reads every blob of an image and checks it against its descriptor (digest and size)
    /// and every layer against its diff_id: the oracle tests and `--verify` paths use.
    pub fn validate(&self, image: &ImageRecord) -> Result<(), StoreError> {
        let m = self.read_blob(&image.manifest_digest)?;
        let actual = Digest::of_bytes(&m);
        if actual != image.manifest_digest {
            return Err(StoreError::DigestMismatch {
                expected: image.manifest_digest.clone(),
                actual,
            });
        }
        let cfg = image.manifest.config();
        let c = self.read_blob(&image.id)?;
        let actual = Digest::of_bytes(&c);
        if actual != image.id {
            return Err(StoreError::DigestMismatch {
                expected: image.id.clone(),
                actual,
            });
        }
        if c.len() as u64 != cfg.size() {
            return Err(StoreError::SizeMismatch {
                digest: image.id.clone(),
                expected: cfg.size(),
                actual: c.len() as u64,
            });
        }
        let diff_ids = image.diff_ids()?;
        for (layer, diff_id) in image.manifest.layers().iter().zip(&diff_ids) {
            let d = Digest::from_oci(layer.digest())?;
            let mut f = self.open_blob(&d)?;
            let mut h = crate::image::DigestingReader::new(&mut f);
            io::copy(&mut h, &mut io::sink()).map_err(|e| StoreError::io(self.blob_path(&d), e))?;
            let (actual, size) = h.finish();
            if actual != d {
                return Err(StoreError::DigestMismatch {
                    expected: d,
                    actual,
                });
            }
            if size != layer.size() {
                return Err(StoreError::SizeMismatch {
                    digest: d,
                    expected: layer.size(),
                    actual: size,
                });
            }
            layers::check_diff_id(&self.blob_path(&d), &d, diff_id)?;
        }
        Ok(())
    }

    /// Removes one name, or (given an ID) an image with all its names (`force` needed when it
    /// has more than one). Image data whose last user goes is collected unless another hoist
    /// process is working on the store (then `prune` collects it later).
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<RemoveReport, StoreError> {
        gc::remove(self, name_or_id, force)
    }

    /// Gives the image `typed` names (a name, an ID, a unique ID prefix) more names, each moved
    /// from any image that had it. The image is resolved under `index.lock`, in the same
    /// read-modify-write that adds the names: a concurrent `rmi` either comes first (then this
    /// fails: not known) or sees the new names. Returns the image.
    pub fn tag(&self, typed: &str, names: &[Reference]) -> Result<ImageRecord, StoreError> {
        for n in names {
            check_name(n)?;
        }
        self.writable()?;
        index::tag(self, typed, names)
    }

    /// Removes unnamed images with no children (with [`PruneMode::All`]: every image), then
    /// blobs and unpacked layers nothing references.
    pub fn prune(&self, mode: PruneMode) -> Result<PruneReport, StoreError> {
        gc::prune(self, mode)
    }

    /// The unpacked layer dirs of an image, bottom first, unpacking blobs that are not yet (once,
    /// into `tmp/`, then renamed to `layers/DIFFIDHEX`). The process keeps `gc.lock` shared, so
    /// no collection removes the dirs while it runs.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>, StoreError> {
        layers::layer_dirs(self, image)
    }

    /// Checks the store (blobs re-hash to their names, images have everything they name,
    /// unpacked layers are complete, no leftovers of interrupted work); with
    /// [`CheckOptions::repair`] removes what is damaged or left over. See [`check`](self::check).
    pub fn check(&self, opts: CheckOptions) -> Result<CheckReport, StoreError> {
        check::check(self, opts)
    }

    /// Whether the layer's dir in `layers/` is complete. The process keeps `gc.lock` shared from
    /// then on, as with [`Store::layer_dirs`], so the dir (or the blob it is unpacked from later)
    /// stays.
    pub fn layer_unpacked(&self, diff_id: &Digest) -> Result<bool, StoreError> {
        if self.tmp.is_some() {
            self.hold_gc_shared()?;
        }
        Ok(layers::is_complete(self, diff_id))
    }

    /// The layer's dir in `layers/`, unpacked from the blob `blob` first when it is not there
    /// (the diff_id is checked while unpacking).
    pub fn unpacked_layer(&self, blob: &Digest, diff_id: &Digest) -> Result<PathBuf, StoreError> {
        if !self.layer_unpacked(diff_id)? {
            layers::unpack(self, blob, diff_id)?;
        }
        Ok(self.layer_path(diff_id))
    }

    /// Where the unpacked dir of a layer lives (whether or not it is there): the overlay lower
    /// dir `layers/HEX/diff`, beside its completion marker.
    pub fn layer_path(&self, diff_id: &Digest) -> PathBuf {
        self.layer_entry(diff_id).join(layers::DIFF)
    }

    /// `layers/HEX`: the layer dir and its marker.
    fn layer_entry(&self, diff_id: &Digest) -> PathBuf {
        self.root.join("layers").join(diff_id.hex())
    }

    /// Moves a directory already in overlay form (a RUN's upper dir, a COPY's fresh dir) into
    /// `layers/` as the unpacked form of `diff_id`; `dir` must be on the store's file system
    /// (use [`Store::tmp_dir`]). If the layer is there already, `dir` is removed. Returns the
    /// layer's path.
    pub fn add_unpacked_layer(&self, diff_id: &Digest, dir: &Path) -> Result<PathBuf, StoreError> {
        self.writable()?;
        layers::add_unpacked_layer(self, diff_id, dir)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = remove_tree(&tmp.dir);
            let _ = fs::remove_file(tmp.lock.path());
        }
    }
}

/// Writes a blob into the process's `tmp/` dir, hashing it; see [`Store::blob_writer`].
pub struct BlobWriter {
    inner: DigestingWriter<BufWriter<tempfile::NamedTempFile>>,
    path: PathBuf,
}

impl BlobWriter {
    /// Flushes and fsyncs the blob; it is still invisible until [`Store::install_blob`].
    pub fn finish(self) -> Result<StagedBlob, StoreError> {
        let (buf, digest, size) = self.inner.finish();
        let file = flush_and_sync(buf, &self.path)?;
        Ok(StagedBlob { file, digest, size })
    }
}

/// Flushes a blob's buffer into its temp file and fsyncs it: the end of both blob writers.
fn flush_and_sync(
    buf: BufWriter<tempfile::NamedTempFile>,
    path: &Path,
) -> Result<tempfile::NamedTempFile, StoreError> {
    let file = buf
        .into_inner()
        .map_err(|e| StoreError::io(path, e.into_error()))?;
    file.as_file()
        .sync_all()
        .map_err(|e| StoreError::io(path, e))?;
    Ok(file)
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a blob into the process's `tmp/` dir without hashing it; see
/// [`Store::prehashed_blob_writer`].
pub struct PrehashedBlobWriter {
    inner: BufWriter<tempfile::NamedTempFile>,
    path: PathBuf,
    count: u64,
}

impl PrehashedBlobWriter {
    /// Flushes and fsyncs the blob, named `digest`: the sha256 of exactly the `size` bytes
    /// written, as the caller computed it while writing (a size that differs is refused). It is
    /// still invisible until [`Store::install_blob`].
    pub fn finish(self, digest: Digest, size: u64) -> Result<StagedBlob, StoreError> {
        if size != self.count {
            return Err(StoreError::Invalid {
                what: format!("blob `{digest}`"),
                reason: format!("{} bytes written, but {size} hashed", self.count),
            });
        }
        let file = flush_and_sync(self.inner, &self.path)?;
        Ok(StagedBlob { file, digest, size })
    }
}

impl Write for PrehashedBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A blob written into the process's `tmp/` dir, not yet visible in the store.
#[derive(Debug)]
pub struct StagedBlob {
    file: tempfile::NamedTempFile,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
}

impl StagedBlob {
    /// The staged file (to read it back, e.g. to check a diff_id).
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

fn check_size(s: &StagedBlob, expected: u64) -> Result<(), StoreError> {
    if s.size != expected {
        return Err(StoreError::SizeMismatch {
            digest: s.digest.clone(),
            expected,
            actual: s.size,
        });
    }
    Ok(())
}

/// Names in the store are tags: no digest.
fn check_name(n: &Reference) -> Result<(), StoreError> {
    if n.digest().is_some() {
        return Err(StoreError::NameWithDigest(n.to_string()));
    }
    Ok(())
}

/// Creates `p` with `mode` (whatever the umask), or gives an existing dir of ours that mode.
fn ensure_dir_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fix_mode(p, mode),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("`{}` is not a directory", p.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(mode).create(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fix_mode(p, mode)
        }
        Err(e) => Err(e),
    }
}

/// Gives a file or dir `mode` when it has another and belongs to this process's user (a store
/// of someone else is left alone: it opens read-only).
pub(crate) fn fix_mode(p: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = match fs::symlink_metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if m.mode() & 0o7777 == mode || m.uid() != euid || m.file_type().is_symlink() {
        return Ok(());
    }
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
}

fn is_read_only_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS) | Some(libc::EACCES) | Some(libc::EPERM)
    )
}

/// Creates `tmp/PID-RANDOM.lock`, locks it, checks that the locked file is still the one at that
/// path (a sweeper may have removed it between creation and locking), then creates the dir.
fn make_proc_tmp(tmp_root: &Path) -> io::Result<ProcTmp> {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stem = format!("{}-{nanos:08x}-{n}", std::process::id());
        let lock_path = tmp_root.join(format!("{stem}.lock"));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
        let Some(lock) = FileLock::try_exclusive(&lock_path)? else {
            continue;
        };
        if !lock.is_current()? {
            continue;
        }
        let dir = tmp_root.join(stem);
        fs::create_dir(&dir)?;
        return Ok(ProcTmp { dir, lock });
    }
}

/// Removes what dead processes left in `tmp/`: dirs whose lock file is free, stray files.
/// Failures are logged, never fatal: a leftover costs only space.
fn sweep_tmp(tmp_root: &Path) {
    let Ok(entries) = fs::read_dir(tmp_root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if let Some(stem) = name.strip_suffix(".lock") {
            match FileLock::try_exclusive(&path) {
                Ok(Some(_lock)) => {
                    let dir = tmp_root.join(stem);
                    if let Err(e) = remove_tree(&dir) {
                        if e.kind() != io::ErrorKind::NotFound {
                            leftover_warning(&dir, &e);
                            continue;
                        }
                    }
                    let _ = fs::remove_file(&path);
                    log::debug!("swept leftover `{}`", dir.display());
                }
                Ok(None) => {}
                Err(e) => log::debug!("cannot check `{}`: {e}", path.display()),
            }
        } else if is_dir {
            // a dir is created only after its lock file is locked: no lock file, no owner. The
            // listing is a snapshot: the dir may be gone by now (swept through its lock file
            // above, by another sweeper, or by its owner on exit), which is no failure
            if !tmp_root.join(format!("{name}.lock")).exists() {
                match remove_tree(&path) {
                    Ok(()) => log::debug!("swept leftover `{}`", path.display()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => leftover_warning(&path, &e),
                }
            }
        } else if let Err(e) = fs::remove_file(&path) {
            log::debug!("cannot remove leftover `{}`: {e}", path.display());
        }
    }
}

/// Reports a leftover that could not be removed. Files that belong to subordinate ids (a killed
/// RUN step's upper dir) can be removed only inside hoist's user namespace, which read-only verbs
/// do not enter: that is no failure, the next verb that enters it (or `hoist check --repair`)
/// sweeps them.
fn leftover_warning(p: &Path, e: &io::Error) {
    if e.kind() == io::ErrorKind::PermissionDenied {
        log::debug!("leftover `{}` is left for a later sweep: {e}", p.display());
    } else {
        log::warn!("cannot remove leftover `{}`: {e}", p.display());
    }
}

/// Removes a directory tree, making read-only dirs writable first when that is what stops it
/// (unpacked layers hold dirs of any mode).
pub(crate) fn remove_tree(p: &Path) -> io::Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            for entry in walkdir::WalkDir::new(p).into_iter().flatten() {
                if entry.file_type().is_dir() {
                    let _ = fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o700));
                }
            }
            fs::remove_dir_all(p)
        }
        Err(e) => Err(e),
    }
}

/// Bytes a file tree takes (apparent sizes of regular files).
pub(crate) fn tree_size(p: &Path) -> u64 {
    walkdir::WalkDir::new(p)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests;
