//! Writing COPY/ADD results into a fresh layer dir, with no container: files, directories and
//! symlinks at their image paths, parents created, owners and modes as `--chown`/`--chmod` or the
//! source say.
//!
//! The destination is resolved through the image's merged view first ([`RootView`]), so a
//! destination under an image symlink (`/bin` → `usr/bin`) lands where the image's own path
//! resolution would put it, and parents that already exist in the image keep their owner and mode
//! in the new layer (as overlay's copy-up would). Nothing is read through a symlink of the source
//! tree, and nothing is written outside the layer dir. Sources from the build context are read
//! only through [`Context::open_entry`] (opened beneath the context root without following links,
//! and checked to be what the walk saw), never by path.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::context::{Context, ContextError, Entry, HeldFile, OpenedEntry};

use super::perms::Chmod;
use super::rootfs::{clean_components, RootView};

/// How owners and modes are set on what a step writes.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    /// `--chown` resolved; `None` keeps `default_owner`/the source's owner.
    pub chown: Option<(u32, u32)>,
    pub chmod: Option<Chmod>,
    /// Keep the source's owner (COPY --from, archives) instead of 0:0 (context files).
    pub keep_owner: bool,
}

/// Writes into one layer dir and remembers owners it could not set.
#[derive(Debug)]
pub struct LayerWriter<'a> {
    pub dir: &'a Path,
    pub view: &'a RootView,
    /// Parents already made in this layer.
    made: BTreeSet<PathBuf>,
    /// Owners `chown` refused (not mapped in this user namespace).
    pub unmappable: BTreeSet<(u32, u32)>,
    /// `dir` is an overlay upper dir (a working container's): a directory made where the dir
    /// holds a whiteout is marked opaque, so the deleted lower directory's entries stay hidden.
    pub upper: bool,
    /// `dir` becomes a layer: an owner this user namespace cannot make (single-id mode) is
    /// recorded in [`crate::layer::RECORDED_OWNER_XATTR`] for the layer writer instead of lost.
    pub record_owners: bool,
    /// Set with [`Self::track`]: `dir` started empty and only this writer has written in it,
    /// so a path neither in `made` nor in `written` is known to be absent without a look-up
    /// (a failed look-up on tmpfs costs as much as copying a small file).
    tracked: bool,
    /// With `tracked`: every non-directory path written (it may still be there).
    written: HashSet<PathBuf>,
}

/// Whether `m` is an overlay whiteout (a 0:0 character device).
fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn mark_opaque(dir: &Path) -> io::Result<()> {
    xattr::set(dir, crate::layer::OVERLAY_OPAQUE_XATTR, b"y")
}

/// A file's owner: the one recorded where the file system could not make it (single-id mode),
/// else the file system's.
fn owner_of(real: &Path, meta: &fs::Metadata) -> (u32, u32) {
    xattr::get(real, crate::layer::RECORDED_OWNER_XATTR)
        .ok()
        .flatten()
        .and_then(|v| crate::layer::parse_recorded_owner(&v))
        .unwrap_or((meta.uid(), meta.gid()))
}

fn set_owner(
    p: &Path,
    uid: u32,
    gid: u32,
    unmappable: &mut BTreeSet<(u32, u32)>,
    record: bool,
) -> io::Result<()> {
    let chowned = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
    owned_or_recorded(chowned, (uid, gid), unmappable, || {
        // a link cannot hold the record: its owner is then reported as lost
        Ok(record
            && !fs::symlink_metadata(p)?.file_type().is_symlink()
            && xattr::set(
                p,
                crate::layer::RECORDED_OWNER_XATTR,
                &owner_value(uid, gid),
            )
            .is_ok())
    })
}

/// [`set_owner`] through an open file's descriptor.
fn set_owner_fd(
    f: &fs::File,
    (uid, gid): (u32, u32),
    unmappable: &mut BTreeSet<(u32, u32)>,
    record: bool,
) -> io::Result<()> {
    let chowned = std::os::unix::fs::fchown(f, Some(uid), Some(gid));
    owned_or_recorded(chowned, (uid, gid), unmappable, || {
        Ok(record
            && xattr::FileExt::set_xattr(
                f,
                crate::layer::RECORDED_OWNER_XATTR,
                &owner_value(uid, gid),
            )
            .is_ok())
    })
}

fn owner_value(uid: u32, gid: u32) -> Vec<u8> {
    crate::layer::recorded_owner_value(uid, gid).into_bytes()
}

/// The outcome of a chown: an owner this user namespace cannot hold (EINVAL, EPERM) is recorded
/// by `record` where it can be (`Ok(true)`), else remembered in `unmappable`.
fn owned_or_recorded(
    chowned: io::Result<()>,
    owner: (u32, u32),
    unmappable: &mut BTreeSet<(u32, u32)>,
    record: impl FnOnce() -> io::Result<bool>,
) -> io::Result<()> {
    match chowned {
        Ok(()) => Ok(()),
        Err(e)
            if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::EPERM) =>
        {
            if !record()? {
                unmappable.insert(owner);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn set_mtime(p: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let t = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(io::Error::from)
}

impl<'a> LayerWriter<'a> {
    /// Gives `p` the owner `uid:gid` ([`set_owner`] with this writer's settings).
    fn owner(&mut self, p: &Path, uid: u32, gid: u32) -> io::Result<()> {
        set_owner(p, uid, gid, &mut self.unmappable, self.record_owners)
    }

    pub fn new(dir: &'a Path, view: &'a RootView) -> LayerWriter<'a> {
        LayerWriter {
            dir,
            view,
            made: BTreeSet::new(),
            unmappable: BTreeSet::new(),
            upper: false,
            record_owners: false,
            tracked: false,
            written: HashSet::new(),
        }
    }

    /// A writer into an overlay upper dir (see [`LayerWriter::upper`]); `view` must include it.
    pub fn for_upper(dir: &'a Path, view: &'a RootView) -> LayerWriter<'a> {
        LayerWriter {
            upper: true,
            record_owners: true,
            ..LayerWriter::new(dir, view)
        }
    }

    /// Declares that the layer dir is empty and will be written only through this writer (see
    /// [`LayerWriter::tracked`]).
    pub fn track(&mut self) {
        self.tracked = !self.upper;
    }

    /// What is at an (already resolved) image path in the layer dir itself, not followed;
    /// `None` when nothing is (known without a look-up for a tracked dir).
    fn in_layer(&self, image_path: &Path) -> io::Result<Option<fs::Metadata>> {
        // the layer dir itself (the image's `/`) is always there
        if self.tracked
            && !self.written.contains(image_path)
            && !self.made.contains(image_path)
            && !clean_components(image_path).is_empty()
        {
            return Ok(None);
        }
        match fs::symlink_metadata(self.real(image_path)) {
            Ok(m) => Ok(Some(m)),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Hard-links the (resolved) image path `to` to the entry already written at `first`,
    /// replacing what `to` holds in the layer.
    pub fn hard_link(&mut self, first: &Path, to: &Path, new_owner: (u32, u32)) -> io::Result<()> {
        self.make_parents(to, new_owner)?;
        let (a, b) = (self.real(first), self.real(to));
        match self.in_layer(to)? {
            Some(m) if m.is_dir() => fs::remove_dir_all(&b)?,
            Some(_) => fs::remove_file(&b)?,
            None => {}
        }
        self.written.insert(to.to_path_buf());
        fs::hard_link(&a, &b)
    }

    /// The real path in the layer dir of an (already resolved) image path.
    pub fn real(&self, image_path: &Path) -> PathBuf {
        let mut p = self.dir.to_path_buf();
        for c in clean_components(image_path) {
            p.push(c);
        }
        p
    }

    /// Resolves an image path's parent through the image's symlinks and rejoins the last name:
    /// where a write to `image_path` really lands.
    pub fn resolve_dest(&self, image_path: &Path) -> io::Result<PathBuf> {
        let comps = clean_components(image_path);
        let Some((last, parents)) = comps.split_last() else {
            return Ok(PathBuf::from("/"));
        };
        let mut parent = PathBuf::from("/");
        for c in parents {
            parent.push(c);
        }
        // the parent may have been made by this very layer (earlier sources of the step)
        let (resolved, _) = self.view.resolve(&parent, true)?;
        Ok(resolved.join(last))
    }

    /// Whether an (unresolved) image path is a directory in the image or in this layer.
    pub fn is_dir(&self, image_path: &Path) -> io::Result<bool> {
        let (resolved, entry) = self.view.resolve(image_path, true)?;
        if entry.map(|e| e.meta.is_dir()).unwrap_or(false) {
            return Ok(true);
        }
        Ok(self
            .in_layer(&resolved)
            .ok()
            .flatten()
            .is_some_and(|m| m.is_dir()))
    }

    /// What is at an (already resolved) image path now, its last component not followed: this
    /// layer's entry, else the image's; `None` when nothing is there.
    pub fn existing(&self, image_path: &Path) -> io::Result<Option<fs::Metadata>> {
        if let Some(m) = self.in_layer(image_path)? {
            return Ok(Some(m));
        }
        Ok(self.view.resolve(image_path, false)?.1.map(|e| e.meta))
    }

    /// BuildKit's rules for writing an entry where something already is (fsutil's `copy`): a
    /// directory is never replaced by a non-directory ("cannot replace to directory … with
    /// file"), and a directory is never copied onto a non-directory, a symbolic link included
    /// ("cannot copy to non-directory"). `image_path` is resolved; `is_dir` is the new entry's
    /// kind. The error is the one line BuildKit gives, with the image path.
    pub fn check_replace(&self, image_path: &Path, is_dir: bool) -> io::Result<()> {
        let Some(m) = self.existing(image_path)? else {
            return Ok(());
        };
        if is_dir && !m.is_dir() {
            return Err(io::Error::other(format!(
                "cannot copy to non-directory `{}`",
                image_path.display()
            )));
        }
        if !is_dir && m.is_dir() {
            return Err(io::Error::other(format!(
                "cannot replace directory `{}` with a file",
                image_path.display()
            )));
        }
        Ok(())
    }

    /// Makes every parent of `image_path` (resolved) in the layer: existing image dirs keep their
    /// owner, mode and time; new ones are 0755, owned by `new_owner` (0:0 by default).
    pub fn make_parents(&mut self, image_path: &Path, new_owner: (u32, u32)) -> io::Result<()> {
        let comps = clean_components(image_path);
        let mut cur = PathBuf::from("/");
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            cur.push(c);
            self.make_dir(&cur, new_owner)?;
        }
        Ok(())
    }

    /// Makes one directory of the layer (see [`Self::make_parents`]).
    pub fn make_dir(&mut self, image_dir: &Path, new_owner: (u32, u32)) -> io::Result<()> {
        if self.made.contains(image_dir) {
            return Ok(());
        }
        let real = self.real(image_dir);
        let mut opaque = false;
        match self.in_layer(image_dir) {
            Ok(Some(m)) if m.is_dir() => {
                self.made.insert(image_dir.to_path_buf());
                return Ok(());
            }
            Ok(Some(m)) => {
                opaque = self.upper && is_whiteout(&m);
                fs::remove_file(&real)?
            }
            _ => {}
        }
        fs::create_dir(&real)?;
        if opaque {
            mark_opaque(&real)?;
        }
        match self.view.stat(image_dir)? {
            Some(e) if e.meta.is_dir() => {
                fs::set_permissions(&real, fs::Permissions::from_mode(e.meta.mode() & 0o7777))?;
                let (uid, gid) = owner_of(&e.real, &e.meta);
                self.owner(&real, uid, gid)?;
                set_mtime(&real, &e.meta)?;
            }
            _ => {
                fs::set_permissions(&real, fs::Permissions::from_mode(0o755))?;
                self.owner(&real, new_owner.0, new_owner.1)?;
            }
        }
        self.made.insert(image_dir.to_path_buf());
        Ok(())
    }

    /// Copies one source entry (file, dir itself without contents, or symlink; never followed)
    /// to the resolved image path `dest`. For sources in the store (`COPY --from`); context
    /// sources go through [`Self::put_context`].
    pub fn put(&mut self, src: &Path, dest: &Path, attrs: &Attrs) -> io::Result<()> {
        self.put_from(Src::Path(src), dest, attrs).map(|_| ())
    }

    /// Copies one entry of the build context to the resolved image path `dest`, reading it only
    /// through [`Context::open_entry`]; returns the metadata it copied (for directory times). An
    /// entry that changed since the walk fails with the context's "changed during the build".
    pub fn put_context(
        &mut self,
        ctx: &Context,
        entry: &Entry,
        dest: &Path,
        attrs: &Attrs,
    ) -> io::Result<fs::Metadata> {
        if let Some(held) = ctx.held(entry) {
            return self.put_from(Src::Held(held), dest, attrs);
        }
        let opened = ctx.open_entry(entry).map_err(io::Error::other)?;
        self.put_from(Src::Opened(opened, &entry.path), dest, attrs)
    }

    fn put_from(
        &mut self,
        mut src: Src<'_>,
        dest: &Path,
        attrs: &Attrs,
    ) -> io::Result<fs::Metadata> {
        let meta = src.metadata()?;
        if meta.file_type().is_socket() {
            // a socket is a live endpoint, not content: docker leaves it out, and so does the
            // layer tar; leaving it out here keeps `--output type=local` and the image alike
            log::debug!("`{}`: socket not copied", dest.display());
            return Ok(meta);
        }
        let owner = match attrs.chown {
            Some(o) => o,
            None if attrs.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        };
        self.make_parents(dest, attrs.chown.unwrap_or((0, 0)))?;
        let real = self.real(dest);
        let ft = meta.file_type();
        let mut opaque = false;
        let existing = self.in_layer(dest).ok().flatten();
        if !ft.is_dir() {
            self.written.insert(dest.to_path_buf());
        }
        if let Some(existing) = existing {
            opaque = self.upper && ft.is_dir() && is_whiteout(&existing);
            if !(existing.is_dir() && ft.is_dir()) {
                if existing.is_dir() {
                    fs::remove_dir_all(&real)?;
                } else {
                    fs::remove_file(&real)?;
                }
            }
        }
        if ft.is_symlink() {
            std::os::unix::fs::symlink(src.read_link()?, &real)?;
            self.owner(&real, owner.0, owner.1)?;
            set_mtime(&real, &meta)?;
            return Ok(meta);
        }
        let mode = match &attrs.chmod {
            Some(c) => c.apply(meta.mode(), ft.is_dir()),
            None => meta.mode() & 0o7777,
        };
        // extended attributes travel with the file (docker and buildah keep them); the owner a
        // single-id step recorded travels from another stage or image into a tree that keeps
        // records, unless --chown sets one, and is never taken from the build context
        let keep_owner_record =
            self.record_owners && attrs.chown.is_none() && matches!(src, Src::Path(_));
        if ft.is_file() {
            // a regular file is finished through its descriptor: no path is looked up again
            let f = src.copy_to(&real, meta.len())?;
            set_owner_fd(&f, owner, &mut self.unmappable, self.record_owners)?;
            // after chown: chown clears setuid bits
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            copy_xattrs(src.xattrs(), &real, keep_owner_record, |n, v| {
                xattr::FileExt::set_xattr(&f, n, v)
            });
            let t = nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec());
            nix::sys::stat::futimens(std::os::fd::AsFd::as_fd(&f), &t, &t)
                .map_err(io::Error::from)?;
            return Ok(meta);
        }
        if ft.is_dir() {
            if !real.exists() {
                fs::create_dir(&real)?;
            }
            if opaque {
                mark_opaque(&real)?;
            }
            self.made.insert(dest.to_path_buf());
        } else {
            // devices, fifos, sockets: recreate the node
            let kind = nix::sys::stat::SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
            nix::sys::stat::mknod(
                &real,
                kind,
                nix::sys::stat::Mode::from_bits_truncate(meta.mode() & 0o7777),
                meta.rdev(),
            )
            .map_err(io::Error::from)?;
        }
        self.owner(&real, owner.0, owner.1)?;
        // after chown: chown clears setuid bits
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))?;
        copy_xattrs(src.xattrs(), &real, keep_owner_record, |n, v| {
            xattr::set(&real, n, v)
        });
        set_mtime(&real, &meta)?;
        Ok(meta)
    }

    /// Writes a file with the given content (heredoc COPY, downloaded ADD): mode 0644 unless
    /// `--chmod`, owner 0:0 unless `--chown`, mtime `mtime`.
    pub fn put_bytes(
        &mut self,
        dest: &Path,
        data: &[u8],
        attrs: &Attrs,
        mtime: i64,
    ) -> io::Result<()> {
        let owner = attrs.chown.unwrap_or((0, 0));
        self.make_parents(dest, owner)?;
        let real = self.real(dest);
        if let Some(m) = self.in_layer(dest)? {
            if m.is_dir() {
                fs::remove_dir_all(&real)?;
            } else {
                fs::remove_file(&real)?;
            }
        }
        self.written.insert(dest.to_path_buf());
        fs::write(&real, data)?;
        self.owner(&real, owner.0, owner.1)?;
        let mode = match &attrs.chmod {
            Some(c) => c.apply(0o644, false),
            None => 0o644,
        };
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))?;
        let t = nix::sys::time::TimeSpec::new(mtime, 0);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &real,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io::Error::from)?;
        Ok(())
    }

    /// Places an unpacked archive (the tree at the host path `root`) below the resolved image
    /// directory `base`, as BuildKit's ADD unpacks into the image (`applyRootArchive`): each
    /// entry's parents are resolved through the image's symlinks, and a directory entry follows
    /// an image symlink to a directory too (so `bin/x` lands in `/usr/bin` of a merged-/usr
    /// image and `/bin` stays a link); an entry of another kind is replaced. Owners, modes,
    /// times, xattrs and hard links are the tree's.
    pub fn place_tree(&mut self, root: &Path, base: &Path) -> io::Result<()> {
        // the archive's hard links are made here directly: look every path up from now on
        self.tracked = false;
        let attrs = Attrs {
            chown: None,
            chmod: None,
            keep_owner: true,
        };
        let mut links: std::collections::HashMap<(u64, u64), PathBuf> =
            std::collections::HashMap::new();
        let mut dirs = Vec::new();
        for e in walkdir::WalkDir::new(root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
        {
            let e = e.map_err(io::Error::other)?;
            let rel = e.path().strip_prefix(root).map_err(io::Error::other)?;
            let meta = fs::symlink_metadata(e.path())?;
            let mut dest = self.resolve_dest(&base.join(rel))?;
            if meta.is_dir() {
                let (followed, entry) = self.view.resolve(&dest, true)?;
                if entry.is_some_and(|x| x.meta.is_dir()) {
                    dest = followed;
                }
            }
            if !meta.is_dir() && meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    self.make_parents(&dest, (0, 0))?;
                    let (a, b) = (self.real(first), self.real(&dest));
                    match fs::symlink_metadata(&b) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&b)?,
                        Ok(_) => fs::remove_file(&b)?,
                        Err(_) => {}
                    }
                    fs::hard_link(&a, &b)?;
                    continue;
                }
                links.insert(key, dest.clone());
            }
            self.put(e.path(), &dest, &attrs)?;
            if meta.is_dir() {
                dirs.push((dest, meta));
            }
        }
        self.fix_dir_times(&dirs)
    }

    /// Restores directory times after their contents were written (writing changes them).
    pub fn fix_dir_times(&self, entries: &[(PathBuf, fs::Metadata)]) -> io::Result<()> {
        for (dest, meta) in entries.iter().rev() {
            if meta.is_dir() {
                set_mtime(&self.real(dest), meta)?;
            }
        }
        Ok(())
    }
}

/// Where a copied entry comes from: a path in the store (layer dirs hoist made) or an entry of
/// the build context, already opened and checked.
enum Src<'a> {
    Path(&'a Path),
    Opened(OpenedEntry, &'a str),
    /// A context file as the cache key's digest read it.
    Held(std::sync::Arc<HeldFile>),
}

impl Src<'_> {
    fn metadata(&self) -> io::Result<fs::Metadata> {
        match self {
            Src::Path(p) => fs::symlink_metadata(p),
            Src::Opened(o, _) => Ok(o.metadata().clone()),
            Src::Held(h) => Ok(h.meta.clone()),
        }
    }

    fn read_link(&self) -> io::Result<PathBuf> {
        match self {
            Src::Path(p) => fs::read_link(p),
            Src::Opened(o, _) => o.read_link(),
            Src::Held(_) => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }

    /// Writes the content of a regular file to the new file `dst`; a context file must still
    /// hold the `size` bytes the walk saw.
    fn copy_to(&mut self, dst: &Path, size: u64) -> io::Result<fs::File> {
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dst)?;
        match self {
            Src::Path(p) => {
                let mut from = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(p)?;
                io::copy(&mut from, &mut to)?;
            }
            Src::Opened(o, path) => {
                let from = o
                    .reader()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                let n = io::copy(from, &mut to)?;
                if n != size {
                    return Err(io::Error::other(ContextError::Changed {
                        path: path.to_string(),
                    }));
                }
            }
            Src::Held(h) => io::Write::write_all(&mut to, &h.content)?,
        }
        Ok(to)
    }

    fn xattrs(&self) -> Vec<(OsString, Vec<u8>)> {
        match self {
            Src::Path(p) => xattr::list(p)
                .map(|names| {
                    names
                        .filter_map(|n| match xattr::get(p, &n) {
                            Ok(Some(v)) => Some((n, v)),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Src::Opened(o, _) => o.xattrs(),
            Src::Held(h) => h.xattrs.clone(),
        }
    }
}

/// Sets the attributes a copy keeps on `dst` through `set` (by path or descriptor).
fn copy_xattrs(
    attrs: Vec<(OsString, Vec<u8>)>,
    dst: &Path,
    keep_owner_record: bool,
    set: impl Fn(&OsString, &[u8]) -> io::Result<()>,
) {
    for (n, v) in attrs {
        let keep = n
            .to_str()
            .map(|s| {
                !s.starts_with("user.overlay.")
                    && !s.starts_with("trusted.overlay.")
                    && (keep_owner_record || s != crate::layer::RECORDED_OWNER_XATTR)
            })
            .unwrap_or(false);
        if !keep {
            continue;
        }
        if let Err(e) = set(&n, &v) {
            log::debug!("cannot copy xattr {n:?} to `{}`: {e}", dst.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_follow_image_symlinks_and_keep_modes() {
        let t = tempfile::tempdir().expect("tmp");
        let base = t.path().join("base");
        fs::create_dir_all(base.join("usr/bin")).expect("mkdir");
        fs::set_permissions(base.join("usr/bin"), fs::Permissions::from_mode(0o711))
            .expect("chmod");
        std::os::unix::fs::symlink("usr/bin", base.join("bin")).expect("symlink");
        let layer = t.path().join("layer");
        fs::create_dir(&layer).expect("mkdir");
        let src = t.path().join("tool");
        fs::write(&src, "#!/bin/sh\n").expect("write");
        let view = RootView::new(vec![base]);
        let mut w = LayerWriter::new(&layer, &view);
        let dest = w.resolve_dest(Path::new("/bin/tool")).expect("resolve");
        assert_eq!(dest, Path::new("/usr/bin/tool"));
        w.put(
            &src,
            &dest,
            &Attrs {
                chmod: Some(Chmod::Octal(0o755)),
                ..Attrs::default()
            },
        )
        .expect("put");
        let m = fs::metadata(layer.join("usr/bin/tool")).expect("stat");
        assert_eq!(m.mode() & 0o7777, 0o755);
        let d = fs::metadata(layer.join("usr/bin")).expect("stat");
        assert_eq!(d.mode() & 0o7777, 0o711);
        assert!(!layer.join("bin").exists());
    }
}
