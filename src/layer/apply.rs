//! Unpacking a layer tar into a directory without ever writing outside it.
//!
//! Every entry path is cleaned lexically (a leading `/` is dropped, as docker does; `.` is
//! dropped; `..` that would climb above the target is refused). Parents are then walked one
//! component at a time with `openat(O_NOFOLLOW | O_DIRECTORY)` from a descriptor of the target, so
//! a symbolic link in a parent position is never followed (refused instead), and every file is
//! created relative to its parent's descriptor with `O_NOFOLLOW`/`AT_SYMLINK_NOFOLLOW`. Hard link
//! targets are resolved the same way and must already exist inside the target. Symbolic link
//! *targets* are stored as they are: they are resolved inside the container at run time.
//!
//! Whiteouts follow the OCI image spec (`layer.md`): in [`WhiteoutMode::Overlay`] `.wh.NAME`
//! becomes an overlay whiteout (0:0 char device) and `.wh..wh..opq` the `user.overlay.opaque=y`
//! xattr on its directory; in [`WhiteoutMode::Delete`] (flattening several layers into one
//! directory) they delete what lower layers left. Owners are set with `lchown`; ids that the
//! current user namespace cannot represent keep the existing owner and produce one warning per
//! layer. This module must not know about the store: the caller names the target directory.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use super::{LayerError, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};

/// What to do with OCI whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutMode {
    /// Keep them in overlay form: `.wh.NAME` → 0:0 char device `NAME`, `.wh..wh..opq` →
    /// `user.overlay.opaque=y` on the directory. For layer dirs used as overlay lower dirs.
    #[default]
    Overlay,
    /// Apply them by deleting what earlier layers put in the target (flattening an image).
    Delete,
}

/// How [`apply_tar`] behaves.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Whiteout handling.
    pub whiteouts: WhiteoutMode,
    /// When a char or block device node cannot be created (`EPERM`/`EACCES`: no `CAP_MKNOD`, as
    /// in every user namespace), skip it with one debug-level line instead of failing, as
    /// containers/storage (podman, buildah) does: the container's `/dev` is provided at run time
    /// anyway. The store, import, load and ADD all set it. Off by default: a missing device is
    /// an error naming the entry.
    pub skip_devices: bool,
    /// A name for the layer in warnings (usually its digest).
    pub layer_name: String,
    /// Give every entry this uid:gid instead of the archive's (`ADD --chown` of an archive).
    pub owner: Option<(u32, u32)>,
    /// Where an owner cannot be made (single-id mode), record it in
    /// [`super::RECORDED_OWNER_XATTR`] instead of reporting it lost: for trees that are, or become,
    /// layers (the store's unpacked layers, ADD), so that a later step's copy-up keeps it.
    pub record_owners: bool,
}

/// What [`apply_tar`] did besides writing files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Entries processed.
    pub entries: u64,
    /// User ids that could not be set (files kept the owner they were created with).
    pub unmapped_uids: BTreeSet<u64>,
    /// Group ids that could not be set.
    pub unmapped_gids: BTreeSet<u64>,
    /// Device entries skipped (only with `skip_devices`).
    pub skipped_devices: Vec<String>,
    /// Extended attributes that could not be set, as `path: name`.
    pub skipped_xattrs: Vec<String>,
}

/// Unpacks an uncompressed tar stream into the existing directory `target`.
///
/// Refuses (with [`LayerError::Escape`] or [`LayerError::Invalid`] naming the entry) anything
/// that would write outside `target`. On error the target may hold part of the layer; callers
/// unpack into a fresh directory and discard it on failure.
pub fn apply_tar<R: Read>(
    tar: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport, LayerError> {
    let report = unpack(tar, target, opts, Sink::Write)?;
    let layer = if opts.layer_name.is_empty() {
        target.display().to_string()
    } else {
        opts.layer_name.clone()
    };
    if !report.unmapped_uids.is_empty() || !report.unmapped_gids.is_empty() {
        log::warn!(
            "layer `{layer}`: owners uid {:?} gid {:?} cannot be represented in this user namespace; those files keep the current owner",
            report.unmapped_uids,
            report.unmapped_gids
        );
    }
    if !report.skipped_devices.is_empty() {
        log::debug!(
            "layer `{layer}`: skipped {} device node(s) that cannot be created here: {}",
            report.skipped_devices.len(),
            report.skipped_devices.join(", ")
        );
    }
    if !report.skipped_xattrs.is_empty() {
        log::warn!(
            "layer `{layer}`: {} extended attribute(s) could not be set: {}",
            report.skipped_xattrs.len(),
            report.skipped_xattrs.join(", ")
        );
    }
    Ok(report)
}

/// What happens to the data of regular files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Written, runs of zeros as holes.
    Write,
    /// Not read: the files are made empty (the dry run of [`check_tar`]); every other step is
    /// the same as for [`Sink::Write`].
    Discard,
}

/// The default bound on what one layer may expand to (see [`max_layer_size`]).
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 256 << 30;

/// The environment variable that changes [`DEFAULT_MAX_LAYER_SIZE`].
pub const MAX_LAYER_SIZE_ENV: &str = "HOIST_MAX_LAYER_SIZE";

/// The largest apparent size (the sum of the sizes of its regular files, holes included) one
/// layer may have: `HOIST_MAX_LAYER_SIZE` (bytes, or with a `K`, `M`, `G` or `T` suffix, powers of
/// 1024) or [`DEFAULT_MAX_LAYER_SIZE`]. A small archive can describe a huge file (a gzip bomb, a
/// GNU sparse entry of holes); past this bound unpacking and the import/load check refuse it.
pub fn max_layer_size() -> Result<u64, LayerError> {
    match std::env::var(MAX_LAYER_SIZE_ENV) {
        Ok(v) => parse_size(&v).ok_or_else(|| LayerError::Config {
            reason: format!(
                "`{MAX_LAYER_SIZE_ENV}={v}` is not a size (bytes, or a number with K, M, G or T)"
            ),
        }),
        Err(_) => Ok(DEFAULT_MAX_LAYER_SIZE),
    }
}

fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let v = v
        .strip_suffix("iB")
        .or_else(|| v.strip_suffix('B'))
        .unwrap_or(v);
    let (num, shift) = match v.chars().last()? {
        'k' | 'K' => (&v[..v.len() - 1], 10),
        'm' | 'M' => (&v[..v.len() - 1], 20),
        'g' | 'G' => (&v[..v.len() - 1], 30),
        't' | 'T' => (&v[..v.len() - 1], 40),
        _ => (v, 0),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

fn unpack<R: Read>(
    tar: R,
    target: &Path,
    opts: &ApplyOptions,
    sink: Sink,
) -> Result<ApplyReport, LayerError> {
    let limit = max_layer_size()?;
    let root = openat(
        nix::fcntl::AT_FDCWD,
        target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LayerError::io(format!("opening `{}`", target.display()), e.into()))?;
    let mut state = Applier {
        root,
        opts,
        report: ApplyReport::default(),
        written: HashSet::new(),
        dirs: Vec::new(),
        sink,
        apparent: 0,
        limit,
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| LayerError::tar(&e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| LayerError::tar(&e))?;
        if state.entry(&mut entry)? {
            state.report.entries += 1;
        }
    }
    state.finish_dirs()?;
    Ok(state.report)
}

/// Decompresses (gzip, zstd, bzip2, xz or plain) and unpacks a layer blob; see [`apply_tar`].
pub fn apply_blob<R: Read>(
    blob: R,
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport, LayerError> {
    let (tar, _) = super::decompress(blob)?;
    apply_tar(tar, target, opts)
}

/// Cleans a tar entry path into components: leading `/`, empty and `.` components dropped, `..`
/// applied lexically. `Err` when `..` would climb above the root.
pub fn clean_path(raw: &[u8]) -> Result<Vec<OsString>, String> {
    let mut out: Vec<OsString> = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("`..` leads above the root".to_owned());
                }
            }
            c => {
                if c.contains(&0) {
                    return Err("contains a NUL byte".to_owned());
                }
                out.push(OsString::from_vec(c.to_vec()));
            }
        }
    }
    Ok(out)
}

fn show(comps: &[OsString]) -> String {
    let v: Vec<_> = comps.iter().map(|c| c.to_string_lossy()).collect();
    v.join("/")
}

/// Owner, mode, times and xattrs of an entry, taken from its header and PAX records.
struct Meta {
    uid: u64,
    gid: u64,
    mode: u32,
    mtime: TimeSpec,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

struct DeferredDir {
    comps: Vec<OsString>,
    meta: Meta,
}

struct Applier<'a> {
    root: OwnedFd,
    opts: &'a ApplyOptions,
    report: ApplyReport,
    /// Paths written by this layer (and their parents), for whiteouts in delete mode.
    written: HashSet<Vec<OsString>>,
    /// Directories whose mode and times are set at the end (children change their mtime).
    dirs: Vec<DeferredDir>,
    sink: Sink,
    /// Apparent bytes of the regular files so far, holes included.
    apparent: u64,
    /// The bound on `apparent` ([`max_layer_size`]).
    limit: u64,
}

fn parse_pax_time(v: &str) -> Option<TimeSpec> {
    let (secs, frac) = match v.split_once('.') {
        Some((s, f)) => (s, f),
        None => (v, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.chars().take(9).enumerate() {
        let d = c.to_digit(10)? as i64;
        nanos += d * 10i64.pow(8 - i as u32);
    }
    if secs < 0 && nanos > 0 {
        return Some(TimeSpec::new(secs - 1, 1_000_000_000 - nanos));
    }
    Some(TimeSpec::new(secs, nanos))
}

fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, path: &str) -> Result<Meta, LayerError> {
    let h = entry.header();
    let bad = |e: io::Error| LayerError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    // an empty numeric field (all NUL or spaces) reads as 0, as Go's archive/tar does
    let old = h.as_old();
    let num = |v: io::Result<u64>, raw: &[u8]| match v {
        Ok(n) => Ok(n),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(bad(e)),
    };
    let mut meta = Meta {
        uid: num(h.uid(), &old.uid)?,
        gid: num(h.gid(), &old.gid)?,
        mode: num(h.mode().map(u64::from), &old.mode)? as u32 & 0o7777,
        mtime: TimeSpec::new(num(h.mtime(), &old.mtime)? as i64, 0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions().map_err(bad)? {
        for ext in exts {
            let ext = ext.map_err(bad)?;
            let key = ext.key_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                meta.xattrs.push((
                    OsStr::from_bytes(name).to_owned(),
                    ext.value_bytes().to_vec(),
                ));
                continue;
            }
            let value = String::from_utf8_lossy(ext.value_bytes());
            match key {
                b"uid" => {
                    meta.uid = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(path, "bad PAX uid"))?
                }
                b"gid" => {
                    meta.gid = value
                        .trim()
                        .parse()
                        .map_err(|_| invalid(path, "bad PAX gid"))?
                }
                b"mtime" => {
                    meta.mtime = parse_pax_time(value.trim())
                        .ok_or_else(|| invalid(path, "bad PAX mtime"))?
                }
                _ => {}
            }
        }
    }
    Ok(meta)
}

/// The cleaned components of a hard link entry's target (refused when it would leave the root).
fn hardlink_target<R: Read>(
    entry: &tar::Entry<'_, R>,
    shown: &str,
) -> Result<Vec<OsString>, LayerError> {
    let target = entry
        .link_name_bytes()
        .ok_or_else(|| invalid(shown, "hard link without a target"))?;
    clean_path(&target).map_err(|reason| LayerError::Escape {
        path: shown.to_owned(),
        reason: format!(
            "hard link target `{}`: {reason}",
            String::from_utf8_lossy(&target)
        ),
    })
}

fn invalid(path: &str, reason: &str) -> LayerError {
    LayerError::Invalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Attributes an archive never sets: overlay's own, and hoist's record of an owner (only hoist
/// writes it, for owners it could not make).
fn not_from_archives(name: &OsStr) -> bool {
    is_overlay_xattr(name) || name.as_bytes() == super::RECORDED_OWNER_XATTR.as_bytes()
}

/// The overlay xattrs a tar must not set directly: only whiteout entries express them.
fn is_overlay_xattr(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(b"user.overlay.") || b.starts_with(b"trusted.overlay.")
}

fn open_dir_at<Fd: AsFd>(dir: Fd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// `/proc/self/fd/N/NAME`: a path naming `NAME` inside an open directory, for calls that have no
/// `*at` form (lsetxattr). The magic link resolves to the directory itself, so nothing outside it
/// can be reached; the last component is not followed by the l* calls.
fn fd_path(dir: &OwnedFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

impl Applier<'_> {
    /// Opens (creating with mode 0755 when `create`) the directory `comps` inside the root,
    /// never following a symbolic link.
    fn open_dir(
        &self,
        comps: &[OsString],
        create: bool,
        entry: &str,
    ) -> Result<OwnedFd, LayerError> {
        let mut cur = open_dir_at(&self.root, OsStr::new("."))
            .map_err(|e| LayerError::entry(entry, io::Error::from(e)))?;
        for (i, comp) in comps.iter().enumerate() {
            let next = match open_dir_at(&cur, comp) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    match mkdirat(&cur, comp.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(LayerError::entry(entry, io::Error::from(e))),
                    }
                    open_dir_at(&cur, comp)
                        .map_err(|e| LayerError::entry(entry, io::Error::from(e)))?
                }
                Err(Errno::ENOENT) => {
                    return Err(invalid(
                        entry,
                        &format!("`{}` does not exist in the target", show(&comps[..=i])),
                    ))
                }
                Err(Errno::ELOOP) => {
                    return Err(LayerError::Escape {
                        path: entry.to_owned(),
                        reason: format!(
                            "its parent `{}` is a symbolic link, which is never followed",
                            show(&comps[..=i])
                        ),
                    })
                }
                Err(Errno::ENOTDIR) => {
                    // O_NOFOLLOW on a symlink to a directory gives ELOOP or ENOTDIR depending
                    // on the kernel path taken; tell the two apart for the message
                    let is_link = fstatat(&cur, comp.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                        .map(|st| {
                            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
                        })
                        .unwrap_or(false);
                    let reason = if is_link {
                        format!(
                            "its parent `{}` is a symbolic link, which is never followed",
                            show(&comps[..=i])
                        )
                    } else {
                        format!("its parent `{}` is not a directory", show(&comps[..=i]))
                    };
                    return Err(if is_link {
                        LayerError::Escape {
                            path: entry.to_owned(),
                            reason,
                        }
                    } else {
                        invalid(entry, &reason)
                    });
                }
                Err(e) => return Err(LayerError::entry(entry, io::Error::from(e))),
            };
            cur = next;
        }
        Ok(cur)
    }

    fn mark_written(&mut self, comps: &[OsString]) {
        for i in 1..=comps.len() {
            self.written.insert(comps[..i].to_vec());
        }
    }

    /// Applies one entry; `false` for an entry that only carries headers for others.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<bool, LayerError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(false);
        }
        let comps = clean_path(&raw).map_err(|reason| LayerError::Escape {
            path: shown.clone(),
            reason,
        })?;
        let Some((name, parents)) = comps.split_last() else {
            // the root itself (`./`): only a directory makes sense there
            if kind != EntryType::Directory {
                return Err(invalid(&shown, "the root of a layer must be a directory"));
            }
            let meta = read_meta(entry, &shown)?;
            self.dirs.push(DeferredDir {
                comps: Vec::new(),
                meta,
            });
            return Ok(true);
        };
        let meta = read_meta(entry, &shown)?;
        if let Some(rest) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            self.whiteout(parents, rest, &meta, &shown)?;
            return Ok(true);
        }
        if !known_kind(kind) {
            return Err(invalid(
                &shown,
                &format!("unsupported tar entry type {}", kind_name(kind)),
            ));
        }
        let parent = self.open_dir(parents, true, &shown)?;
        self.make_room(&parent, name, kind == EntryType::Directory, &shown)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = openat(
                    &parent,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
                self.apparent = self.apparent.saturating_add(entry.size());
                if self.apparent > self.limit {
                    return Err(LayerError::TooLarge {
                        path: shown,
                        limit: self.limit,
                    });
                }
                let mut file = File::from(fd);
                if self.sink == Sink::Write {
                    copy_sparse(entry, &mut file).map_err(|e| LayerError::entry(&shown, e))?;
                }
                let fd = OwnedFd::from(file);
                self.chown_fd(&fd, &meta);
                fchmod(&fd, Mode::from_bits_truncate(meta.mode))
                    .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
                self.set_xattrs_fd(&fd, &meta, &shown);
                futimens(&fd, &meta.mtime, &meta.mtime)
                    .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
            }
            EntryType::Directory => {
                match mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(LayerError::entry(&shown, io::Error::from(e))),
                }
                let fd = open_dir_at(&parent, name)
                    .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
                self.chown_fd(&fd, &meta);
                self.set_xattrs_fd(&fd, &meta, &shown);
                self.dirs.push(DeferredDir {
                    comps: comps.clone(),
                    meta,
                });
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| invalid(&shown, "symbolic link without a target"))?;
                if target.is_empty() {
                    return Err(invalid(&shown, "symbolic link without a target"));
                }
                symlinkat(OsStr::from_bytes(&target), &parent, name.as_os_str())
                    .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
                self.chown_at(&parent, name, &meta);
                self.set_xattrs_path(&fd_path(&parent, name), &meta, &shown);
                utimensat(
                    &parent,
                    name.as_os_str(),
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
            }
            EntryType::Link => {
                let tcomps = hardlink_target(entry, &shown)?;
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(invalid(&shown, "hard link to the root directory"));
                };
                let tparent = self
                    .open_dir(tparents, false, &shown)
                    .map_err(|e| match e {
                        LayerError::Invalid { .. } => invalid(
                            &shown,
                            &format!(
                                "hard link target `{}` does not exist in the layer",
                                show(&tcomps)
                            ),
                        ),
                        other => other,
                    })?;
                match fstatat(&tparent, tname.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st)
                        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
                            == SFlag::S_IFDIR =>
                    {
                        return Err(invalid(
                            &shown,
                            &format!("hard link target `{}` is a directory", show(&tcomps)),
                        ))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return Err(invalid(
                            &shown,
                            &format!(
                                "hard link target `{}` does not exist in the layer",
                                show(&tcomps)
                            ),
                        ))
                    }
                }
                linkat(
                    &tparent,
                    tname.as_os_str(),
                    &parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let f = if kind == EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (f, nix::sys::stat::makedev(major.into(), minor.into()))
                    }
                };
                let mode = match self.sink {
                    Sink::Write => Mode::from_bits_truncate(meta.mode),
                    Sink::Discard => Mode::empty(),
                };
                match mknodat(&parent, name.as_os_str(), sflag, mode, dev) {
                    Ok(()) => {}
                    Err(e @ (Errno::EPERM | Errno::EACCES)) if sflag != SFlag::S_IFIFO => {
                        if self.opts.skip_devices {
                            self.report.skipped_devices.push(shown.clone());
                            return Ok(true);
                        }
                        return Err(LayerError::Device {
                            path: shown,
                            source: e.into(),
                        });
                    }
                    Err(e) => return Err(LayerError::entry(&shown, io::Error::from(e))),
                }
                if self.sink == Sink::Discard && sflag != SFlag::S_IFIFO {
                    // the dry run's device exists only to show that it can be made; it is
                    // never left openable, even for the moment before its scratch dir goes
                    self.mark_written(&comps);
                    return Ok(true);
                }
                self.chown_at(&parent, name, &meta);
                nix::sys::stat::fchmodat(
                    &parent,
                    name.as_os_str(),
                    Mode::from_bits_truncate(meta.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
                self.set_xattrs_path(&fd_path(&parent, name), &meta, &shown);
                utimensat(
                    &parent,
                    name.as_os_str(),
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
            }
            other => {
                return Err(invalid(
                    &shown,
                    &format!("unsupported tar entry type {}", kind_name(other)),
                ));
            }
        }
        self.mark_written(&comps);
        Ok(true)
    }

    /// Removes whatever is at `name` unless both it and the new entry are directories (then
    /// the directory is kept and merged into, as docker does).
    fn make_room(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        new_is_dir: bool,
        shown: &str,
    ) -> Result<(), LayerError> {
        match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir =
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
                if is_dir && new_is_dir {
                    return Ok(());
                }
                remove_all_at(parent, name).map_err(|e| LayerError::entry(shown, e))
            }
            Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(LayerError::entry(shown, io::Error::from(e))),
        }
    }

    fn whiteout(
        &mut self,
        parents: &[OsString],
        rest: &[u8],
        meta: &Meta,
        shown: &str,
    ) -> Result<(), LayerError> {
        let parent = self.open_dir(parents, true, shown)?;
        if [WHITEOUT_PREFIX.as_bytes(), rest].concat() == OPAQUE_WHITEOUT.as_bytes() {
            match self.opts.whiteouts {
                WhiteoutMode::Overlay => {
                    let f = File::from(parent);
                    xattr::FileExt::set_xattr(&f, OVERLAY_OPAQUE_XATTR, b"y")
                        .map_err(|e| LayerError::entry(shown, e))?;
                }
                WhiteoutMode::Delete => {
                    let mut dir = nix::dir::Dir::from_fd(
                        nix::unistd::dup(&parent)
                            .map_err(|e| LayerError::entry(shown, io::Error::from(e)))?,
                    )
                    .map_err(|e| LayerError::entry(shown, io::Error::from(e)))?;
                    let mut victims = Vec::new();
                    for ent in dir.iter() {
                        let ent = ent.map_err(|e| LayerError::entry(shown, io::Error::from(e)))?;
                        let n = OsStr::from_bytes(ent.file_name().to_bytes());
                        if n == "." || n == ".." {
                            continue;
                        }
                        let mut p = parents.to_vec();
                        p.push(n.to_owned());
                        if !self.written.contains(&p) {
                            victims.push(n.to_owned());
                        }
                    }
                    for v in victims {
                        remove_all_at(&parent, &v).map_err(|e| LayerError::entry(shown, e))?;
                    }
                }
            }
            return Ok(());
        }
        if rest.is_empty()
            || rest == b"."
            || rest == b".."
            || rest.starts_with(WHITEOUT_PREFIX.as_bytes())
        {
            return Err(invalid(shown, "malformed whiteout name"));
        }
        let victim = OsStr::from_bytes(rest);
        let mut vpath = parents.to_vec();
        vpath.push(victim.to_owned());
        match self.opts.whiteouts {
            // whiteouts only hide what lower layers made (image-spec layer.md): a name this
            // layer wrote itself stays
            WhiteoutMode::Overlay if self.written.contains(&vpath) => {}
            WhiteoutMode::Overlay => {
                self.make_room(&parent, victim, false, shown)?;
                mknodat(&parent, victim, SFlag::S_IFCHR, Mode::empty(), 0).map_err(|e| {
                    LayerError::Device {
                        path: shown.to_owned(),
                        source: e.into(),
                    }
                })?;
                utimensat(
                    &parent,
                    victim,
                    &meta.mtime,
                    &meta.mtime,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(|e| LayerError::entry(shown, io::Error::from(e)))?;
                self.mark_written(&vpath);
            }
            WhiteoutMode::Delete => {
                // whiteouts only hide what lower layers made (image-spec layer.md)
                if !self.written.contains(&vpath) {
                    match fstatat(&parent, victim, AtFlags::AT_SYMLINK_NOFOLLOW) {
                        Ok(_) => remove_all_at(&parent, victim)
                            .map_err(|e| LayerError::entry(shown, e))?,
                        Err(Errno::ENOENT) => {}
                        Err(e) => return Err(LayerError::entry(shown, io::Error::from(e))),
                    }
                }
            }
        }
        Ok(())
    }

    fn chown_result(&mut self, r: nix::Result<()>, meta: &Meta) {
        if let Err(Errno::EINVAL | Errno::EPERM) = r {
            // an id the user namespace cannot represent; keep the file, warn once per layer
            let (cu, cg) = (
                nix::unistd::geteuid().as_raw() as u64,
                nix::unistd::getegid().as_raw() as u64,
            );
            let (u, g) = self.owner_of(meta);
            if u64::from(u) != cu {
                self.report.unmapped_uids.insert(u64::from(u));
            }
            if u64::from(g) != cg {
                self.report.unmapped_gids.insert(u64::from(g));
            }
        }
    }

    /// The owner an entry gets: the archive's, or [`ApplyOptions::owner`].
    fn owner_of(&self, meta: &Meta) -> (u32, u32) {
        self.opts
            .owner
            .unwrap_or((meta.uid as u32, meta.gid as u32))
    }

    fn chown_fd(&mut self, fd: &OwnedFd, meta: &Meta) {
        let (u, g) = self.owner_of(meta);
        let r = fchown(fd, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)));
        if let (Err(Errno::EINVAL | Errno::EPERM), true) = (r, self.opts.record_owners) {
            let recorded = fd.try_clone().map(File::from).is_ok_and(|f| {
                xattr::FileExt::set_xattr(
                    &f,
                    super::RECORDED_OWNER_XATTR,
                    super::recorded_owner_value(u, g).as_bytes(),
                )
                .is_ok()
            });
            if recorded {
                return;
            }
        }
        self.chown_result(r, meta);
    }

    fn chown_at(&mut self, parent: &OwnedFd, name: &OsStr, meta: &Meta) {
        let (u, g) = self.owner_of(meta);
        let r = fchownat(
            parent,
            name,
            Some(Uid::from_raw(u)),
            Some(Gid::from_raw(g)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        );
        self.chown_result(r, meta);
    }

    fn set_xattrs_fd(&mut self, fd: &OwnedFd, meta: &Meta, shown: &str) {
        if meta.xattrs.is_empty() {
            return;
        }
        let Ok(dup) = fd.try_clone() else {
            self.report.skipped_xattrs.push(format!("{shown}: (all)"));
            return;
        };
        let f = File::from(dup);
        for (name, value) in &meta.xattrs {
            if not_from_archives(name) {
                continue;
            }
            if xattr::FileExt::set_xattr(&f, name, value).is_err() {
                self.report
                    .skipped_xattrs
                    .push(format!("{shown}: {}", name.to_string_lossy()));
            }
        }
    }

    fn set_xattrs_path(&mut self, path: &Path, meta: &Meta, shown: &str) {
        for (name, value) in &meta.xattrs {
            if not_from_archives(name) {
                continue;
            }
            // xattr::set does not follow a final symbolic link (lsetxattr)
            if xattr::set(path, name, value).is_err() {
                self.report
                    .skipped_xattrs
                    .push(format!("{shown}: {}", name.to_string_lossy()));
            }
        }
    }

    /// Sets directory modes and times last, deepest first, so that creating children does not
    /// disturb them and a read-only directory is filled before it becomes read-only.
    fn finish_dirs(&mut self) -> Result<(), LayerError> {
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.comps.len()));
        for d in dirs {
            let shown = show(&d.comps);
            let fd = match self.open_dir(&d.comps, false, &shown) {
                Ok(fd) => fd,
                // removed or replaced by a later entry of the same layer
                Err(LayerError::Invalid { .. } | LayerError::Escape { .. }) => continue,
                Err(e) => return Err(e),
            };
            if d.comps.is_empty() {
                self.chown_fd(&fd, &d.meta);
            }
            if self.sink == Sink::Discard {
                // a dry run's tree is removed next: a directory left without write or search
                // permission would keep its children
                continue;
            }
            fchmod(&fd, Mode::from_bits_truncate(d.meta.mode))
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
            futimens(&fd, &d.meta.mtime, &d.meta.mtime)
                .map_err(|e| LayerError::entry(&shown, io::Error::from(e)))?;
        }
        Ok(())
    }
}

/// Removes `name` in `parent` and, when it is a directory, everything below it, without ever
/// following a symbolic link.
fn remove_all_at(parent: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) => return Ok(()),
        Err(Errno::ENOENT) => return Ok(()),
        Err(Errno::EISDIR) | Err(Errno::EPERM) => {}
        Err(e) => return Err(e.into()),
    }
    let fd = open_dir_at(parent, name)?;
    let mut children = Vec::new();
    {
        let mut dir = nix::dir::Dir::from_fd(nix::unistd::dup(&fd)?)?;
        for ent in dir.iter() {
            let ent = ent?;
            let n = OsStr::from_bytes(ent.file_name().to_bytes());
            if n != "." && n != ".." {
                children.push(n.to_owned());
            }
        }
    }
    for c in children {
        remove_all_at(&fd, &c)?;
    }
    match unlinkat(parent, name, UnlinkatFlags::RemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Flattens layer directories in overlay form (bottom first: whiteouts as 0:0 char devices,
/// opaque xattrs) into one plain directory `target`, as the merged overlay view would show them:
/// each layer is streamed as a tar (see [`super::write_tar`]) straight into [`apply_tar`] with
/// [`WhiteoutMode::Delete`], so escapes are refused here too. For `--output type=local`.
pub fn flatten_dirs(
    layers: &[std::path::PathBuf],
    target: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyReport, LayerError> {
    let mut total = ApplyReport::default();
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Delete,
        ..opts.clone()
    };
    for dir in layers {
        let (rd, wr) =
            nix::unistd::pipe().map_err(|e| LayerError::io("making a pipe", e.into()))?;
        let report = std::thread::scope(|s| {
            let writer = s.spawn(move || {
                let out = io::BufWriter::with_capacity(256 * 1024, File::from(wr));
                super::write_tar(dir, out, super::DirKind::OverlayUpper, None).and_then(|w| {
                    w.into_inner()
                        .map(drop)
                        .map_err(|e| LayerError::io("writing layer tar", e.into_error()))
                })
            });
            let applied = apply_tar(
                io::BufReader::with_capacity(256 * 1024, File::from(rd)),
                target,
                &opts,
            );
            let written = writer.join().unwrap_or_else(|_| {
                Err(LayerError::io(
                    "writing layer tar",
                    io::Error::other("the tar writer panicked"),
                ))
            });
            match (written, applied) {
                // the writer stopped because the reader gave up: the reader's error is the cause
                (Err(w), Err(a)) if is_broken_pipe(&w) => Err(a),
                // a failure to read the layer dir explains a truncated tar better than the tar error
                (Err(w), _) => Err(w),
                (Ok(()), applied) => applied,
            }
        })?;
        total.entries += report.entries;
        total.unmapped_uids.extend(report.unmapped_uids);
        total.unmapped_gids.extend(report.unmapped_gids);
        total.skipped_devices.extend(report.skipped_devices);
        total.skipped_xattrs.extend(report.skipped_xattrs);
    }
    Ok(total)
}

fn is_broken_pipe(e: &LayerError) -> bool {
    match e {
        LayerError::Io { source, .. } | LayerError::Walk { source, .. } => {
            source.kind() == io::ErrorKind::BrokenPipe
        }
        _ => false,
    }
}

/// Reads a whole uncompressed layer tar (to its very end, so a hashing reader underneath sees
/// every byte) and refuses it when unpacking it would fail: it is the same code as [`apply_tar`]
/// with the store's options ([`WhiteoutMode::Overlay`], devices skipped where they cannot be
/// made, as the store's unpack skips them), run into a scratch
/// directory under the system's temp dir with the file data left out (empty files, no holes to
/// write). Returns the entry count. For import and load, so that an image in the store can
/// always be unpacked; see [`check_tar_in`] to choose the scratch directory.
pub fn check_tar<R: Read>(tar: R) -> Result<u64, LayerError> {
    check_tar_in(tar, &std::env::temp_dir())
}

/// [`check_tar`] with its scratch directory made (and removed) inside `scratch`, which should be
/// on the file system the layer will be unpacked to (the store's `tmp/`), so that what the file
/// system refuses (a name too long, an attribute) is refused the same way.
pub fn check_tar_in<R: Read>(mut tar: R, scratch: &Path) -> Result<u64, LayerError> {
    let dir = tempfile::Builder::new()
        .prefix("layer-check-")
        .tempdir_in(scratch)
        .map_err(|e| {
            LayerError::io(
                format!("making a scratch dir in `{}`", scratch.display()),
                e,
            )
        })?;
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Overlay,
        skip_devices: true,
        layer_name: String::new(),
        ..ApplyOptions::default()
    };
    let report = unpack(&mut tar, dir.path(), &opts, Sink::Discard)?;
    // the end-of-archive blocks and padding belong to the layer too
    io::copy(&mut tar, &mut io::sink()).map_err(|e| LayerError::tar(&e))?;
    drop(dir);
    Ok(report.entries)
}

/// The entry types [`apply_tar`] knows; the others (GNU volume headers, multi-volume parts,
/// vendor types) are refused by name.
fn known_kind(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::Regular
            | EntryType::Continuous
            | EntryType::GNUSparse
            | EntryType::Directory
            | EntryType::Symlink
            | EntryType::Link
            | EntryType::Char
            | EntryType::Block
            | EntryType::Fifo
    )
}

/// An entry type as a user reads it: its type flag, and what it is when known.
fn kind_name(kind: EntryType) -> String {
    let byte = kind.as_byte();
    let flag = if byte.is_ascii_graphic() {
        format!("`{}`", byte as char)
    } else {
        format!("{byte}")
    };
    let what = match byte {
        b'V' => " (a GNU volume header)",
        b'M' => " (a GNU multi-volume continuation)",
        b'D' => " (a GNU directory dump)",
        b'N' => " (an old GNU long name)",
        _ => "",
    };
    format!("{flag}{what}")
}

/// Copies a file's data, leaving holes where whole 4 KiB blocks are zero: GNU sparse entries
/// (whose holes the tar reader yields as zeros) and zero-filled files stay sparse on disk.
fn copy_sparse<R: Read>(r: &mut R, file: &mut File) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    const BLOCK: usize = 4096;
    let mut buf = vec![0u8; 64 * BLOCK];
    let mut len: u64 = 0;
    let mut skip: u64 = 0;
    loop {
        // fill the buffer, so that blocks stay aligned to the file's offsets
        let mut n = 0;
        while n < buf.len() {
            match r.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            break;
        }
        for block in buf[..n].chunks(BLOCK) {
            if is_zero(block) {
                skip += block.len() as u64;
                continue;
            }
            if skip > 0 {
                let by = i64::try_from(skip).map_err(|_| io::Error::other("file too large"))?;
                file.seek(SeekFrom::Current(by))?;
                skip = 0;
            }
            file.write_all(block)?;
        }
        len += n as u64;
        if n < buf.len() {
            break;
        }
    }
    // a trailing hole: the size says where the file ends
    file.set_len(len)
}

fn is_zero(block: &[u8]) -> bool {
    let words = block.chunks_exact(8);
    let tail = words.remainder();
    tail.iter().all(|&b| b == 0)
        && words
            .map(|c| u64::from_ne_bytes(c.try_into().expect("chunks_exact gives 8 bytes")))
            .all(|w| w == 0)
}
