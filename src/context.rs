//! The build context: a directory on disk seen through its `.dockerignore`. Opens the context,
//! reads the ignore file (`<Dockerfile-name>.dockerignore` next to a named Dockerfile is
//! preferred over `.dockerignore` at the root), walks the tree in lexical order with `walkdir`
//! and the `ignore` matcher, resolves the sources of `COPY` and `ADD` (Go `filepath.Match`
//! wildcards, several sources, `--exclude`, `--parents`) to the entries they copy, and digests
//! those entries in parallel with `rayon` for the build cache.
//!
//! What it follows: Docker's build-context rules (docs.docker.com "Build context"; BuildKit's and
//! fsutil's observable behaviour as pinned down by the corpus in `fixtures/dockerignore`):
//! excluded paths are invisible to `COPY`/`ADD`; an excluded directory is walked only when a `!`
//! exception could re-include something below it, and it then appears (as a directory) only when
//! something below it is included; the Dockerfile stays readable by the builder even when the
//! ignore file lists it.
//!
//! What it must not do: follow anything out of the context. A source naming `..` above the root
//! stays at the root (the reference strips the `../`); symbolic links met while resolving a
//! source path are resolved *inside* the context (an absolute target is taken relative to the context root, `..` stops at the root, as Docker's
//! scoped resolution does); symbolic links inside a copied directory are returned as links, never
//! followed. Content is never read by path: [`Context::open_entry`] opens an entry relative to a
//! descriptor of the root without following any link (`openat2` with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_SYMLINKS`, or an `O_NOFOLLOW` walk where the kernel has no `openat2`), and checks
//! that what it opened is the object the walk saw, so a file swapped for a link while a build
//! runs is an error, never the link's target. It writes nothing: copying entries into a layer is
//! `exec`'s job.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::ignore::{self, GlobPattern, IgnoreError, Matcher};

/// How many symbolic links one source path may pass through (Linux's own limit is 40).
const MAX_LINKS: usize = 40;

/// Errors of the build context. Messages name the source as the Dockerfile wrote it; the build
/// prefixes the step (`COPY src/ /app/: src: not in the build context`).
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    // (the cause is in the message, and deliberately not a `source`: the CLI prints the chain
    // of sources, and would print it twice)
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error("`{}` is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("`{}`: {error}", file.display())]
    Ignore { file: PathBuf, error: IgnoreError },
    /// A source that does not exist in the context (or, for wildcards, matched nothing).
    #[error("{path}: not in the build context")]
    NotFound { path: String },
    /// A source the ignore file removed from the context, with the deciding line.
    #[error("{path}: excluded by {file} line {line}")]
    Excluded {
        path: String,
        file: String,
        line: usize,
    },
    /// A source that names something above the context root.
    #[error("{path}: outside the build context")]
    OutsideContext { path: String },
    #[error("{path}: too many levels of symbolic links")]
    SymlinkLoop { path: String },
    /// An entry that is no longer the object the walk saw (replaced, removed, turned into a
    /// symbolic link, or resized) when it was opened for reading.
    #[error("`{path}`: changed during the build")]
    Changed { path: String },
    /// A file the builder must read (a local archive, the ignore file) that is a directory, a
    /// FIFO, a device or a socket.
    #[error("`{path}`: not a regular file")]
    NotAFile { path: String },
    /// A malformed source wildcard or `--exclude` pattern.
    #[error("{pattern}: {error}")]
    BadPattern { pattern: String, error: IgnoreError },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        error: source,
    }
}

/// What kind of file system object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl EntryKind {
    fn of(ft: &fs::FileType) -> EntryKind {
        if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Socket
        } else if ft.is_char_device() {
            EntryKind::CharDevice
        } else if ft.is_block_device() {
            EntryKind::BlockDevice
        } else {
            EntryKind::File
        }
    }

    /// `file`, `dir`, `symlink`... (the words of the walk listings).
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice => "chardev",
            EntryKind::BlockDevice => "blockdev",
        }
    }
}

/// One object of the context, with the metadata a copy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the context root (`/`-separated, no leading `/`; `""` is the root).
    pub path: String,
    /// Path relative to the copy's destination (see [`Source`]); for a walk, the same as `path`.
    pub dest: String,
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size in bytes for regular files, 0 otherwise.
    pub size: u64,
    /// The target of a symbolic link, as stored (never followed).
    pub link_target: Option<PathBuf>,
    /// For the second and later names of a hard-linked file within one resolution: the `dest` of
    /// the first name, so the copy can recreate the link.
    pub hardlink_to: Option<String>,
    /// Device number for character and block devices.
    pub rdev: u64,
    dev_ino: (u64, u64),
    nlink: u64,
}

impl Entry {
    fn from_meta(
        path: String,
        dest: String,
        meta: &fs::Metadata,
        link_target: Option<PathBuf>,
    ) -> Entry {
        let kind = EntryKind::of(&meta.file_type());
        Entry {
            path,
            dest,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind == EntryKind::File {
                meta.len()
            } else {
                0
            },
            link_target,
            hardlink_to: None,
            rdev: meta.rdev(),
            dev_ino: (meta.dev(), meta.ino()),
            nlink: meta.nlink(),
        }
    }

    /// `"<kind> <path>"`, the form of the corpus' walk listings.
    pub fn listing(&self) -> String {
        format!("{} {}", self.kind.name(), self.path)
    }
}

/// Options of one `COPY`/`ADD` resolution.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `--exclude` patterns: matched (with ignore-file rules) against paths relative to each
    /// source, that is below a directory source, or the name of a file source.
    pub exclude: Vec<String>,
    /// `--parents`: keep each source's path relative to the context root (or to a `/./` pivot
    /// written in the source) below the destination.
    pub parents: bool,
}

/// One matched source of a `COPY`/`ADD`: the object the source pattern named (after wildcard
/// expansion and symbolic-link resolution of the named path), and the entries to copy.
///
/// `entries[..].dest` says where each goes relative to the destination: for a file source its
/// base name (the caller decides whether the destination is a directory or the new name); for a
/// directory source `""` for the directory itself and the path below it for its contents (Docker
/// copies a directory's *contents*); with `--parents` the kept parent path is prefixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The source as written in the Dockerfile.
    pub pattern: String,
    /// The resolved path relative to the context root.
    pub path: String,
    pub kind: EntryKind,
    /// With `--parents`: the directories kept above the source (`"x/y"`), else `""`.
    pub parents: String,
    pub entries: Vec<Entry>,
}

/// The digest of a set of sources for the build cache: one content digest per entry and one over
/// the whole canonical listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesDigest {
    /// `sha256:<hex>` over every entry's dest, kind, mode, size, link target, hard link and
    /// content digest, in source order.
    pub digest: String,
    /// `(dest, sha256:<hex>)` for each regular file (hex of its content).
    pub files: Vec<(String, String)>,
}

/// Options of a plain walk (as fsutil's walker: include patterns narrow, exclude patterns drop).
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// When not empty, only paths matched by these (ignore-file syntax, `!` allowed) are listed,
    /// plus their parent directories.
    pub include: Vec<String>,
    /// Extra exclusion patterns, applied after the context's own ignore file.
    pub exclude: Vec<String>,
}

/// An object of the context opened by [`Context::open_entry`]: the object the walk saw, opened
/// without following any link. Regular files and directories are open for reading; other kinds
/// (symbolic links, devices, FIFOs, sockets) are `O_PATH` descriptors, good for their metadata and
/// a link's target only.
#[derive(Debug)]
pub struct OpenedEntry {
    file: File,
    meta: fs::Metadata,
    kind: EntryKind,
}

impl OpenedEntry {
    /// The metadata of the opened object (`fstat`, not a new look-up by path).
    pub fn metadata(&self) -> &fs::Metadata {
        &self.meta
    }

    /// The content of a regular file (`None` for other kinds).
    pub fn reader(&mut self) -> Option<&mut File> {
        (self.kind == EntryKind::File).then_some(&mut self.file)
    }

    /// The stored target of a symbolic link, read from the opened link itself.
    pub fn read_link(&self) -> io::Result<PathBuf> {
        if self.kind != EntryKind::Symlink {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        nix::fcntl::readlinkat(&self.file, "")
            .map(PathBuf::from)
            .map_err(io::Error::from)
    }

    /// The extended attributes of a regular file or directory, read through the descriptor
    /// (empty for other kinds, and where the file system has none).
    pub fn xattrs(&self) -> Vec<(OsString, Vec<u8>)> {
        use xattr::FileExt;
        if !matches!(self.kind, EntryKind::File | EntryKind::Dir) {
            return Vec::new();
        }
        let Ok(names) = self.file.list_xattr() else {
            return Vec::new();
        };
        names
            .filter_map(|n| match self.file.get_xattr(&n) {
                Ok(Some(v)) => Some((n, v)),
                _ => None,
            })
            .collect()
    }
}

/// Set once `openat2` turned out to be missing (ENOSYS: kernel < 5.6) or filtered (EPERM from a
/// seccomp profile that predates it); the `O_NOFOLLOW` walk is used from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (a clean `/`-separated path relative to `dir`; `""` is `dir` itself) without
/// following any symbolic link and without leaving `dir`. A symbolic link as the last component
/// is opened as itself when `flags` hold `O_PATH`, else refused (ELOOP), as is a link anywhere
/// before it. Uses `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, Linux >= 5.6), else
/// [`open_beneath_walk`].
pub fn open_beneath(dir: &OwnedFd, rel: &str, flags: OFlag) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let path = if rel.is_empty() { "." } else { rel };
        let how = OpenHow::new().flags(flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
        match nix::fcntl::openat2(dir, path, how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOSYS) | Err(Errno::EPERM) => {
                log::debug!("openat2 unavailable: walking context paths with O_NOFOLLOW");
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e.into()),
        }
    }
    open_beneath_walk(dir, rel, flags)
}

/// The fallback of [`open_beneath`] for kernels without `openat2`: one `openat` per component,
/// each directory opened `O_PATH | O_DIRECTORY | O_NOFOLLOW` from the previous one, so no
/// component can be a link; `.` and `..` components are refused.
pub fn open_beneath_walk(dir: &OwnedFd, rel: &str, flags: OFlag) -> io::Result<OwnedFd> {
    let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Err(io::Error::from_raw_os_error(libc::EXDEV));
    }
    let Some((last, parents)) = comps.split_last() else {
        return nix::fcntl::openat(dir, ".", flags, Mode::empty()).map_err(io::Error::from);
    };
    let mut cur: Option<OwnedFd> = None;
    for c in parents {
        let at = cur.as_ref().unwrap_or(dir);
        let next = nix::fcntl::openat(
            at,
            *c,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        cur = Some(next);
    }
    let at = cur.as_ref().unwrap_or(dir);
    nix::fcntl::openat(at, *last, flags, Mode::empty()).map_err(io::Error::from)
}

/// An opened build context.
#[derive(Debug, Clone)]
pub struct Context {
    root: PathBuf,
    /// The root directory, opened once: every read of content starts from it.
    root_fd: Arc<OwnedFd>,
    ignore: Matcher,
    ignore_file: Option<PathBuf>,
    dockerfile: Option<PathBuf>,
    /// Small files [`Context::digest`] read, for the copy that follows (shared by clones).
    held: Arc<Held>,
}

/// What a context keeps between the cache key's digest and the copy: the files read, by
/// entry path, the bytes of content they take, and each resolution of sources.
#[derive(Debug, Default)]
struct Held {
    files: std::sync::Mutex<HashMap<String, Arc<HeldFile>>>,
    bytes: std::sync::atomic::AtomicU64,
    resolved: std::sync::Mutex<HashMap<ResolveKey, Vec<Source>>>,
}

/// A resolution's inputs: the patterns, `--exclude` and `--parents`.
type ResolveKey = (Vec<String>, Vec<String>, bool);

/// A regular file as [`Context::digest`] read it (opened and checked as
/// [`Context::open_entry`] does): its metadata, extended attributes and content. The copy that
/// follows writes these bytes instead of opening the file again, so that the layer holds
/// exactly what the cache key hashed, and a COPY of many small files reads each of them once.
#[derive(Debug)]
pub struct HeldFile {
    /// The opened file's `fstat`.
    pub meta: fs::Metadata,
    /// Its extended attributes, read through the descriptor.
    pub xattrs: Vec<(OsString, Vec<u8>)>,
    pub content: Vec<u8>,
}

/// Files up to this size are held after [`Context::digest`] read them ...
const HOLD_FILE_MAX: u64 = 256 << 10;
/// ... until the held content of one build reaches this.
const HOLD_TOTAL_MAX: u64 = 64 << 20;

impl Context {
    /// Opens the context directory `dir`. `dockerfile` is the Dockerfile's path as given with
    /// `-f` (relative to the current directory or absolute, possibly outside the context), or
    /// `None` for `CONTEXT/Dockerfile`; a Dockerfile read from stdin passes `None` too and simply
    /// never calls [`Context::read_dockerfile`]. Reads `<dockerfile>.dockerignore` when it exists,
    /// else `CONTEXT/.dockerignore`.
    pub fn open(dir: &Path, dockerfile: Option<&Path>) -> Result<Context, ContextError> {
        let root = fs::canonicalize(dir).map_err(io_err(dir))?;
        if !root.is_dir() {
            return Err(ContextError::NotADirectory { path: root });
        }
        let root_fd = nix::fcntl::open(
            &root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err(&root)(e.into()))?;
        let dockerfile_path = dockerfile
            .map(Path::to_path_buf)
            .unwrap_or_else(|| root.join("Dockerfile"));
        let mut ctx = Context {
            root,
            root_fd: Arc::new(root_fd),
            ignore: Matcher::default(),
            ignore_file: None,
            dockerfile: Some(dockerfile_path.clone()),
            held: Arc::default(),
        };
        // `<Dockerfile>.dockerignore` beside a named Dockerfile is read like the Dockerfile (the
        // user named it); the context's own `.dockerignore` is read from inside the context, a
        // link in it followed only within the root, as every other context file
        let mut found: Option<(PathBuf, Vec<u8>)> = None;
        if dockerfile.is_some() {
            let mut name = dockerfile_path.into_os_string();
            name.push(".dockerignore");
            let cand = PathBuf::from(name);
            match fs::read(&cand) {
                Ok(bytes) => found = Some((cand, bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&cand)(e)),
            }
        }
        if found.is_none() {
            let cand = ctx.root.join(".dockerignore");
            match ctx.open_file(".dockerignore") {
                Ok(mut f) => {
                    let mut bytes = Vec::new();
                    f.read_to_end(&mut bytes).map_err(io_err(&cand))?;
                    found = Some((cand, bytes));
                }
                Err(ContextError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if let Some((file, bytes)) = found {
            let text = String::from_utf8_lossy(&bytes);
            ctx.ignore = Matcher::parse(&text).map_err(|source| ContextError::Ignore {
                file: file.clone(),
                error: source,
            })?;
            ctx.ignore_file = Some(file);
        }
        let (root, ignore, ignore_file) = (&ctx.root, &ctx.ignore, &ctx.ignore_file);
        log::debug!(
            "context `{}`: ignore file {:?}, {} patterns",
            root.display(),
            ignore_file,
            ignore.patterns().len()
        );
        Ok(ctx)
    }

    /// The context directory (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore patterns in effect (empty when there is no ignore file).
    pub fn ignore(&self) -> &Matcher {
        &self.ignore
    }

    /// The ignore file that was read, if any.
    pub fn ignore_file(&self) -> Option<&Path> {
        self.ignore_file.as_deref()
    }

    /// Reads the Dockerfile named at [`Context::open`]; the ignore file does not apply to it.
    pub fn read_dockerfile(&self) -> Result<String, ContextError> {
        let path = self
            .dockerfile
            .as_deref()
            .expect("open always records a Dockerfile path");
        fs::read_to_string(path).map_err(io_err(path))
    }

    fn ignore_name(&self) -> String {
        self.ignore_file
            .as_deref()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ".dockerignore".to_string())
    }

    fn excluded(&self, shown: &str, rel: &str) -> Result<(), ContextError> {
        match self.ignore.excluded_by(rel) {
            Some(p) => Err(ContextError::Excluded {
                path: shown.to_string(),
                file: self.ignore_name(),
                line: p.line,
            }),
            None => Ok(()),
        }
    }

    /// Whether `rel` (relative to the root) is visible, that is not excluded. An excluded
    /// directory is still visible when something below it is re-included by an exception: it is
    /// then sent as the parent of what is re-included, as Docker does (and only then: an
    /// exception that matches nothing existing leaves it out).
    pub fn is_visible(&self, rel: &str) -> bool {
        if rel.is_empty() || !self.ignore.is_excluded(rel) {
            return true;
        }
        self.ignore.may_include_below(rel)
            && fs::symlink_metadata(self.full(rel)).is_ok_and(|m| m.is_dir())
            && self
                .walk_below(rel, "", &[&self.ignore], None, false)
                .is_ok_and(|below| !below.is_empty())
    }

    /// Opens a regular file of the context for reading, as `ADD` does for a local archive: the
    /// path must be inside the context and not excluded.
    pub fn open_file(&self, rel: &str) -> Result<File, ContextError> {
        let clean = clean_source(rel)?;
        let resolved = self.resolve_path(rel, &clean, true)?;
        let full = self.full(&resolved);
        let fd = open_beneath(
            &self.root_fd,
            &resolved,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        )
        .map_err(|e| changed_or(rel, &full, e))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(io_err(&full))?;
        if !meta.is_file() {
            return Err(ContextError::NotAFile {
                path: rel.to_string(),
            });
        }
        Ok(file)
    }

    /// Opens an entry of a walk or resolution ([`Context::walk`], [`Context::resolve_sources`])
    /// for reading, relative to the context root and without following any symbolic link, and
    /// checks that the object opened is the one the walk saw: same kind, device and inode, and
    /// for a regular file the same size. Anything else is [`ContextError::Changed`], never the
    /// content of something else.
    pub fn open_entry(&self, entry: &Entry) -> Result<OpenedEntry, ContextError> {
        let flags = match entry.kind {
            // O_NONBLOCK: a FIFO swapped in for the file must not block the open
            EntryKind::File => OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            EntryKind::Dir => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            _ => OFlag::O_PATH,
        };
        let full = self.full(&entry.path);
        let fd = open_beneath(&self.root_fd, &entry.path, flags)
            .map_err(|e| changed_or(&entry.path, &full, e))?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(io_err(&full))?;
        let kind = EntryKind::of(&meta.file_type());
        let same = kind == entry.kind
            && (meta.dev(), meta.ino()) == entry.dev_ino
            && (kind != EntryKind::File || meta.len() == entry.size);
        if !same {
            return Err(ContextError::Changed {
                path: entry.path.clone(),
            });
        }
        Ok(OpenedEntry { file, meta, kind })
    }

    /// The file [`Context::digest`] read for `entry`, when it kept it (a small regular file, the
    /// same object the entry names).
    pub fn held(&self, entry: &Entry) -> Option<Arc<HeldFile>> {
        if entry.kind != EntryKind::File {
            return None;
        }
        let h = crate::util::lock(&self.held.files)
            .get(&entry.path)
            .cloned()?;
        let same = (h.meta.dev(), h.meta.ino()) == entry.dev_ino && h.meta.len() == entry.size;
        same.then_some(h)
    }

    /// Takes `size` bytes of the held budget; false when it is spent.
    fn reserve_held(&self, size: u64) -> bool {
        let total = &self.held.bytes;
        let mut cur = total.load(Ordering::Relaxed);
        loop {
            if cur + size > HOLD_TOTAL_MAX {
                return false;
            }
            match total.compare_exchange_weak(cur, cur + size, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    fn full(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    /// Walks the whole context in lexical order (a directory before its contents), leaving out
    /// what the ignore file (and `opts.exclude`) exclude, and keeping only what `opts.include`
    /// matches when it is given. Excluded directories are entered only when an exception could
    /// re-include something below them, and are listed only when something below is.
    pub fn walk(&self, opts: &WalkOptions) -> Result<Vec<Entry>, ContextError> {
        let extra = matcher_for(&opts.exclude)?;
        let include = if opts.include.is_empty() {
            None
        } else {
            Some(matcher_for(&opts.include)?)
        };
        self.walk_below("", "", &[&self.ignore, &extra], include.as_ref(), false)
    }

    /// Walks below directory `base` (relative to the root); paths handed to `excludes[0]` (the
    /// ignore file) are relative to the root, those of the other matchers relative to `base`.
    /// `dest_prefix` is prefixed to each entry's `dest` (relative to `base`).
    fn walk_below(
        &self,
        base: &str,
        dest_prefix: &str,
        excludes: &[&Matcher],
        include: Option<&Matcher>,
        with_base: bool,
    ) -> Result<Vec<Entry>, ContextError> {
        let top = self.full(base);
        let mut out = Vec::new();
        // directories entered but not (yet) listed: (depth, entry)
        let mut pending: Vec<(usize, Entry, bool)> = Vec::new();
        let mut it = walkdir::WalkDir::new(&top)
            .follow_links(false)
            .min_depth(if with_base { 0 } else { 1 })
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = it.next() {
            let item = item.map_err(|e| {
                let path = e.path().unwrap_or(&top).to_path_buf();
                let source = e.into_io_error().unwrap_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "file system loop")
                });
                ContextError::Io {
                    path,
                    error: source,
                }
            })?;
            let below = item
                .path()
                .strip_prefix(&top)
                .expect("walkdir yields paths below its root")
                .to_string_lossy()
                .into_owned();
            let root_rel = join(base, &below);
            let meta = item.metadata().map_err(|e| {
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("walk"));
                ContextError::Io {
                    path: item.path().to_path_buf(),
                    error: source,
                }
            })?;
            let link_target = if meta.file_type().is_symlink() {
                Some(
                    fs::read_link(item.path()).map_err(|e| match e.raw_os_error() {
                        // no longer a link: replaced since the walk's lstat
                        Some(libc::EINVAL) => ContextError::Changed {
                            path: root_rel.clone(),
                        },
                        _ => changed_or(&root_rel, item.path(), e),
                    })?,
                )
            } else {
                None
            };
            let entry = Entry::from_meta(
                root_rel.clone(),
                join(dest_prefix, &below),
                &meta,
                link_target,
            );
            let is_dir = entry.kind == EntryKind::Dir;
            if below.is_empty() {
                if !is_dir {
                    // the caller saw a directory here: it was replaced since
                    return Err(ContextError::Changed {
                        path: base.to_string(),
                    });
                }
                // the source directory itself: always listed
                out.push(entry);
                continue;
            }
            let depth = item.depth();
            while pending.last().is_some_and(|(d, _, _)| *d >= depth) {
                pending.pop();
            }
            // every matcher that excludes the path, with the path it was given
            let excluded_by: Vec<(&Matcher, &str)> = excludes
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    (
                        *m,
                        if i == 0 {
                            root_rel.as_str()
                        } else {
                            below.as_str()
                        },
                    )
                })
                .filter(|(m, p)| m.is_excluded(p))
                .collect();
            let included = include.is_none_or(|m| m.is_excluded(&below));
            if excluded_by.is_empty() && included {
                for (_, e, listed) in pending.iter_mut() {
                    if !*listed {
                        out.push(e.clone());
                        *listed = true;
                    }
                }
                out.push(entry.clone());
                if is_dir {
                    pending.push((depth, entry, true));
                }
                continue;
            }
            if !is_dir {
                continue;
            }
            // enter only when something below could still be listed
            let mut enter = excluded_by.iter().all(|(m, p)| m.may_include_below(p));
            if !included {
                enter = enter && include.is_some_and(|m| m.may_match_below(&below));
            }
            if enter {
                pending.push((depth, entry, false));
            } else {
                it.skip_current_dir();
            }
        }
        Ok(out)
    }

    /// Resolves `path` (already cleaned relative to the root) inside the context: symbolic links
    /// on the way are followed within the root, the last one only when `follow_last`. Each link
    /// followed and the final path must be visible.
    fn resolve_path(
        &self,
        shown: &str,
        clean: &str,
        follow_last: bool,
    ) -> Result<String, ContextError> {
        let mut todo: Vec<String> = clean
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(comp) = todo.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(comp);
            let rel = done.join("/");
            let full = self.root.join(&rel);
            let meta = match fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.excluded(shown, &rel)?;
                    return Err(ContextError::NotFound {
                        path: shown.to_string(),
                    });
                }
                Err(e) => return Err(io_err(&full)(e)),
            };
            let last = todo.is_empty();
            if meta.file_type().is_symlink() && (!last || follow_last) {
                self.excluded(shown, &rel)?;
                links += 1;
                if links > MAX_LINKS {
                    return Err(ContextError::SymlinkLoop {
                        path: shown.to_string(),
                    });
                }
                let target = fs::read_link(&full).map_err(|e| match e.raw_os_error() {
                    // no longer a link (EINVAL) or gone: replaced since the lstat above
                    Some(libc::EINVAL) => ContextError::Changed {
                        path: shown.to_string(),
                    },
                    _ => changed_or(shown, &full, e),
                })?;
                done.pop();
                if target.is_absolute() {
                    done.clear();
                }
                let t = target.to_string_lossy().into_owned();
                for c in t.split('/').filter(|c| !c.is_empty()).rev() {
                    todo.push(c.to_string());
                }
            } else if !last && !meta.is_dir() {
                return Err(ContextError::NotFound {
                    path: shown.to_string(),
                });
            }
        }
        let rel = done.join("/");
        if !self.is_visible(&rel) {
            self.excluded(shown, &rel)?;
        }
        Ok(rel)
    }

    /// Appends every visible path below `dir` (depth first, lexical; symbolic links are not
    /// followed), for a `**` source component.
    fn visible_below(&self, dir: &str, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(self.full(dir)) else {
            return;
        };
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            let rel = join(dir, &n);
            if !self.is_visible(&rel) {
                continue;
            }
            let is_dir = fs::symlink_metadata(self.full(&rel))
                .map(|m| m.is_dir())
                .unwrap_or(false);
            out.push(rel.clone());
            if is_dir {
                self.visible_below(&rel, out);
            }
        }
    }

    /// Expands one (cleaned) source with wildcards against the visible tree, component by
    /// component; returns matching paths relative to the root, in lexical order.
    fn expand_wildcards(&self, shown: &str, clean: &str) -> Result<Vec<String>, ContextError> {
        let mut current: Vec<String> = vec![String::new()];
        for comp in clean.split('/').filter(|c| !c.is_empty() && *c != ".") {
            let mut next = Vec::new();
            if comp == "**" {
                // any number of components, none included (BuildKit's `**` in COPY sources)
                for dir in &current {
                    next.push(dir.clone());
                    self.visible_below(dir, &mut next);
                }
            } else if !ignore::has_wildcards(comp) {
                let name = ignore::unescape(comp);
                for dir in &current {
                    let rel = join(dir, &name);
                    if fs::symlink_metadata(self.full(&rel)).is_ok() && self.is_visible(&rel) {
                        next.push(rel);
                    }
                }
            } else {
                let glob = GlobPattern::new(comp).map_err(|source| ContextError::BadPattern {
                    pattern: shown.to_string(),
                    error: source,
                })?;
                for dir in &current {
                    let full = self.full(dir);
                    // resolve a symlinked directory inside the context before listing it
                    let listed = if fs::symlink_metadata(&full)
                        .map(|m| m.file_type().is_symlink())
                        .unwrap_or(false)
                    {
                        self.full(&self.resolve_path(shown, dir, true)?)
                    } else {
                        full
                    };
                    let Ok(rd) = fs::read_dir(&listed) else {
                        continue;
                    };
                    let mut names: Vec<String> = rd
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| glob.matches(n))
                        .collect();
                    names.sort();
                    for n in names {
                        let rel = join(dir, &n);
                        if self.is_visible(&rel) {
                            next.push(rel);
                        }
                    }
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        Ok(current)
    }

    /// Resolves the sources of one `COPY`/`ADD` against the context. Each non-wildcard source
    /// must exist and be visible (else [`ContextError::NotFound`] or [`ContextError::Excluded`]
    /// naming the line); a wildcard source may match nothing as long as the instruction as a whole
    /// matches something. A named symbolic link is followed (inside the context), as Docker does;
    /// links inside a copied directory stay links. Hard links among the entries are marked.
    pub fn resolve_sources<S: AsRef<str>>(
        &self,
        patterns: &[S],
        opts: &CopyOptions,
    ) -> Result<Vec<Source>, ContextError> {
        self.resolve_sources_uncached(patterns, opts)
    }

    /// [`Context::resolve_sources`] made once per context (a build's): the copy that follows the
    /// cache key's digest gets the very listing the key hashed, and is spared a second walk.
    pub fn resolve_sources_once<S: AsRef<str>>(
        &self,
        patterns: &[S],
        opts: &CopyOptions,
    ) -> Result<Vec<Source>, ContextError> {
        let memo_key = (
            patterns.iter().map(|p| p.as_ref().to_string()).collect(),
            opts.exclude.clone(),
            opts.parents,
        );
        if let Some(found) = crate::util::lock(&self.held.resolved)
            .get(&memo_key)
            .cloned()
        {
            return Ok(found);
        }
        let out = self.resolve_sources_uncached(patterns, opts)?;
        crate::util::lock(&self.held.resolved).insert(memo_key, out.clone());
        Ok(out)
    }

    fn resolve_sources_uncached<S: AsRef<str>>(
        &self,
        patterns: &[S],
        opts: &CopyOptions,
    ) -> Result<Vec<Source>, ContextError> {
        let exclude =
            Matcher::from_patterns(&opts.exclude).map_err(|source| ContextError::BadPattern {
                pattern: "--exclude".to_string(),
                error: source,
            })?;
        let mut out = Vec::new();
        let mut first_wildcard: Option<String> = None;
        for pattern in patterns {
            let shown = pattern.as_ref();
            let clean = clean_source(shown)?;
            let pivot = split_pivot(shown);
            let matches = if ignore::has_wildcards(&clean) {
                first_wildcard.get_or_insert_with(|| shown.to_string());
                self.expand_wildcards(shown, &clean)?
            } else {
                vec![ignore::unescape(&clean)]
            };
            for m in matches {
                let resolved = self.resolve_path(shown, &m, true)?;
                let full = self.full(&resolved);
                let meta = fs::symlink_metadata(&full).map_err(|e| changed_or(shown, &full, e))?;
                let kind = EntryKind::of(&meta.file_type());
                if kind == EntryKind::Symlink {
                    // resolution followed every link: this one appeared since
                    return Err(ContextError::Changed {
                        path: shown.to_string(),
                    });
                }
                let name = base_name(&m);
                if kind != EntryKind::Dir && exclude.is_excluded(&name) {
                    continue;
                }
                let parents = if opts.parents {
                    let kept = match &pivot {
                        Some(p) if p.is_empty() => m.as_str(),
                        Some(p) if m == *p => "",
                        Some(p) => m.strip_prefix(&format!("{p}/")).unwrap_or(&m),
                        None => m.as_str(),
                    };
                    if kind == EntryKind::Dir {
                        kept.to_string()
                    } else {
                        parent_of(kept)
                    }
                } else {
                    String::new()
                };
                let entries = if kind == EntryKind::Dir {
                    self.walk_below(&resolved, &parents, &[&self.ignore, &exclude], None, true)?
                } else {
                    let link_target = None;
                    vec![Entry::from_meta(
                        resolved.clone(),
                        join(&parents, &name),
                        &meta,
                        link_target,
                    )]
                };
                out.push(Source {
                    pattern: shown.to_string(),
                    path: resolved,
                    kind,
                    parents,
                    entries,
                });
            }
        }
        if out.is_empty() {
            let path = first_wildcard
                .or_else(|| patterns.first().map(|p| p.as_ref().to_string()))
                .unwrap_or_default();
            return Err(ContextError::NotFound { path });
        }
        mark_hardlinks(&mut out);
        Ok(out)
    }

    /// Digests the entries of `sources` for the build cache: file contents are hashed in parallel;
    /// the result covers dest path, kind, mode, size, link target and hard links, not owners or
    /// times (the copy resets owners unless `--chown` says otherwise, which the step's own cache
    /// key covers).
    pub fn digest(&self, sources: &[Source]) -> Result<SourcesDigest, ContextError> {
        let entries: Vec<&Entry> = sources.iter().flat_map(|s| s.entries.iter()).collect();
        let contents: Vec<Option<String>> = entries
            .par_iter()
            .map(|e| {
                if e.kind == EntryKind::File && e.hardlink_to.is_none() {
                    let mut opened = self.open_entry(e)?;
                    let size = opened.metadata().len();
                    let full = self.full(&e.path);
                    if size <= HOLD_FILE_MAX && self.reserve_held(size) {
                        let f = opened.reader().expect("open_entry checked a regular file");
                        let content = read_exact_size(f, size)
                            .map_err(|err| changed_or(&e.path, &full, err))?;
                        let digest = hex::encode(Sha256::digest(&content));
                        let held = HeldFile {
                            meta: opened.metadata().clone(),
                            xattrs: opened.xattrs(),
                            content,
                        };
                        let old = crate::util::lock(&self.held.files)
                            .insert(e.path.clone(), Arc::new(held));
                        if let Some(old) = old {
                            // read again (a second digest of the same file): counted once
                            let n = old.content.len() as u64;
                            self.held.bytes.fetch_sub(n, Ordering::Relaxed);
                        }
                        return Ok(Some(digest));
                    }
                    let f = opened.reader().expect("open_entry checked a regular file");
                    hash_file(f, size)
                        .map(Some)
                        .map_err(|err| changed_or(&e.path, &full, err))
                } else {
                    Ok(None)
                }
            })
            .collect::<Result<_, _>>()?;
        let mut h = Sha256::new();
        let mut files = Vec::new();
        for (e, c) in entries.iter().zip(&contents) {
            let line = format!(
                "{}\0{}\0{:o}\0{}\0{}\0{}\0{}\0{}\n",
                e.dest,
                e.kind.name(),
                e.mode,
                e.size,
                e.link_target
                    .as_deref()
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                e.hardlink_to.as_deref().unwrap_or(""),
                e.rdev,
                c.as_deref().unwrap_or("")
            );
            h.update(line.as_bytes());
            if let Some(c) = c {
                files.push((e.dest.clone(), format!("sha256:{c}")));
            }
        }
        Ok(SourcesDigest {
            digest: format!("sha256:{}", hex::encode(h.finalize())),
            files,
        })
    }
}

fn matcher_for(patterns: &[String]) -> Result<Matcher, ContextError> {
    Matcher::from_patterns(patterns).map_err(|source| ContextError::BadPattern {
        pattern: patterns.join(" "),
        error: source,
    })
}

/// Reads an opened file that must hold exactly `size` bytes (else `ErrorKind::InvalidData`,
/// as [`hash_file`]).
fn read_exact_size(f: &mut File, size: u64) -> io::Result<Vec<u8>> {
    let mut content = Vec::with_capacity(size as usize + 1);
    f.take(size + 1).read_to_end(&mut content)?;
    if content.len() as u64 != size {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    Ok(content)
}

/// Hashes an opened file that must hold exactly `size` bytes (a file that grew or shrank while
/// being read has changed: `ErrorKind::InvalidData`).
fn hash_file(f: &mut File, size: u64) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    if total != size {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    Ok(hex::encode(h.finalize()))
}

/// Maps an error of opening or reading an entry: the errors a swap or removal gives (a link
/// where the walk saw none, a path now leading elsewhere or nowhere, a size that changed) become
/// [`ContextError::Changed`]; others (permissions, I/O) stay what they are.
fn changed_or(shown: &str, full: &Path, e: io::Error) -> ContextError {
    match e.raw_os_error() {
        Some(libc::ELOOP | libc::EXDEV | libc::ENOENT | libc::ENOTDIR | libc::ENXIO) => {
            ContextError::Changed {
                path: shown.to_string(),
            }
        }
        _ if e.kind() == io::ErrorKind::InvalidData => ContextError::Changed {
            path: shown.to_string(),
        },
        _ => io_err(full)(e),
    }
}

/// Marks the later names of a hard-linked file (same device and inode) so the copy recreates
/// the link instead of a second file.
fn mark_hardlinks(sources: &mut [Source]) {
    let mut first: HashMap<(u64, u64), String> = HashMap::new();
    for s in sources.iter_mut() {
        for e in s.entries.iter_mut() {
            if e.kind != EntryKind::File || e.nlink < 2 {
                continue;
            }
            match first.get(&e.dev_ino) {
                Some(d) if *d != e.dest => e.hardlink_to = Some(d.clone()),
                Some(_) => {}
                None => {
                    first.insert(e.dev_ino, e.dest.clone());
                }
            }
        }
    }
}

/// Cleans a source as written (`/` is the context root) and refuses one that climbs above it.
fn clean_source(shown: &str) -> Result<String, ContextError> {
    let mut parts: Vec<&str> = Vec::new();
    for c in Path::new(shown).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            // `..` above the root stays at the root: the Dockerfile reference, "Copying from the
            // build context": `COPY ../something /something` removes the `../`
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(n) => parts.push(n.to_str().unwrap_or("")),
        }
    }
    Ok(parts.join("/"))
}

/// For `--parents`, a `/./` in the source marks the pivot: what comes before it is not kept.
/// Returns the cleaned pivot, if any.
fn split_pivot(shown: &str) -> Option<String> {
    let s = shown.trim_start_matches("./");
    let before = match s.find("/./") {
        Some(i) => &s[..i],
        None => s.strip_suffix("/.")?,
    };
    Some(clean_source(before).unwrap_or_default())
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}/{b}"),
    }
}

fn base_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

fn parent_of(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => p[..i].to_string(),
        None => String::new(),
    }
}
