//! A read-only merged view of an image's file system, read through its unpacked layer dirs
//! (bottom → top, overlay form: a whiteout is a 0:0 char device, an opaque dir carries
//! `user.overlay.opaque=y` or `trusted.overlay.opaque=y`), without mounting anything.
//!
//! Used where a build reads an image's files: `/etc/passwd` for `--chown` and `USER`, the tree of
//! `COPY --from`, the destination of a COPY (whose parents may be symlinks inside the image), the
//! WORKDIR check and `--output`. Paths given to it are image paths; a symlink is resolved inside
//! the image's root (`..` stops at `/`, absolute targets restart at the image root), so no lookup
//! can leave the image, the way overlay semantics and `chroot` would resolve them.
//! It never writes.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

/// How many symlinks one lookup may follow (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// One entry found in the merged view.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The path inside the image (absolute, cleaned).
    pub image_path: PathBuf,
    /// The real path of the entry in the layer dir that provides it.
    pub real: PathBuf,
    pub meta: fs::Metadata,
}

/// What [`RootView::lookup_exact`] found, by path components.
type Lookups =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<OsString>, Option<Entry>>>>;

/// The merged view of a stack of layer dirs.
#[derive(Debug, Clone, Default)]
pub struct RootView {
    /// Bottom first.
    layers: Vec<PathBuf>,
    /// Lookups remembered ([`RootView::fixed`]): only for layers nothing writes to while the
    /// view is used.
    memo: Option<Lookups>,
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    for name in ["user.overlay.opaque", "trusted.overlay.opaque"] {
        if let Ok(Some(v)) = xattr::get(p, name) {
            if v == b"y" {
                return true;
            }
        }
    }
    false
}

/// Splits an image path into its normal components, clamping `..` at the root.
pub fn clean_components(p: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn join(comps: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in comps {
        p.push(c);
    }
    p
}

impl RootView {
    /// A view over `layers`, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> RootView {
        RootView { layers, memo: None }
    }

    /// A view over layers that do not change while it is used (a step's lower layers): each
    /// lookup is made once, and nothing is looked up below a path that is not a directory. A
    /// COPY of many files into one directory then stats the directory once, not once per file
    /// and layer.
    pub fn fixed(layers: Vec<PathBuf>) -> RootView {
        RootView {
            layers,
            memo: Some(Lookups::default()),
        }
    }

    /// The layer dirs, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// Looks up `comps` exactly (no symlink in the last component is followed; earlier
    /// components must be real directories of the view).
    fn lookup_exact(&self, comps: &[OsString]) -> io::Result<Option<Entry>> {
        let Some(memo) = &self.memo else {
            return self.lookup_uncached(comps);
        };
        let remembered = |c: &[OsString]| crate::util::lock(memo).get(c).cloned();
        if let Some(found) = remembered(comps) {
            return Ok(found);
        }
        // below a path the view does not have as a directory there is nothing
        let parent_missing = comps.len() > 1
            && remembered(&comps[..comps.len() - 1])
                .is_some_and(|p| p.is_none_or(|e| !e.meta.is_dir()));
        let found = if parent_missing {
            None
        } else {
            self.lookup_uncached(comps)?
        };
        crate::util::lock(memo).insert(comps.to_vec(), found.clone());
        Ok(found)
    }

    fn lookup_uncached(&self, comps: &[OsString]) -> io::Result<Option<Entry>> {
        if comps.is_empty() {
            // the root: the topmost layer that has it, or a synthetic root
            for l in self.layers.iter().rev() {
                if let Ok(meta) = fs::symlink_metadata(l) {
                    return Ok(Some(Entry {
                        image_path: PathBuf::from("/"),
                        real: l.clone(),
                        meta,
                    }));
                }
            }
            return Ok(None);
        }
        'layers: for l in self.layers.iter().rev() {
            let mut real = l.clone();
            let mut stop_below = false;
            for (i, c) in comps.iter().enumerate() {
                real.push(c);
                let meta = match fs::symlink_metadata(&real) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if stop_below {
                            return Ok(None);
                        }
                        continue 'layers;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Ok(None),
                    Err(e) => return Err(e),
                };
                if is_whiteout(&meta) {
                    return Ok(None);
                }
                if i + 1 == comps.len() {
                    return Ok(Some(Entry {
                        image_path: join(comps),
                        real,
                        meta,
                    }));
                }
                if !meta.is_dir() {
                    // a file or symlink here hides everything below this path
                    return Ok(None);
                }
                if is_opaque(&real) {
                    stop_below = true;
                }
            }
            if stop_below {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Resolves an image path, following symlinks inside the image; `follow_last` says whether
    /// a symlink in the last component is followed too. Returns the resolved image path and the
    /// entry, or the resolved path and `None` when nothing is there.
    pub fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<(PathBuf, Option<Entry>)> {
        let mut todo: Vec<OsString> = clean_components(path);
        todo.reverse();
        let mut done: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                done.pop();
                continue;
            }
            if c == "." {
                continue;
            }
            done.push(c);
            let last = todo.is_empty();
            let entry = self.lookup_exact(&done)?;
            match entry {
                Some(e) if e.meta.file_type().is_symlink() && (!last || follow_last) => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links at `{}`",
                            join(&done).display()
                        )));
                    }
                    let target = fs::read_link(&e.real)?;
                    done.pop();
                    if target.is_absolute() {
                        done.clear();
                    }
                    let mut more: Vec<OsString> = target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(n.to_os_string()),
                            Component::ParentDir => Some(OsString::from("..")),
                            _ => None,
                        })
                        .collect();
                    more.reverse();
                    todo.extend(more);
                }
                Some(e) => {
                    if last {
                        return Ok((join(&done), Some(e)));
                    }
                    if !e.meta.is_dir() {
                        return Ok((join(&done), None));
                    }
                }
                None => {
                    // the rest does not exist; report where it would be
                    let mut rest = todo.clone();
                    rest.reverse();
                    done.extend(rest);
                    return Ok((join(&done), None));
                }
            }
        }
        let e = self.lookup_exact(&done)?;
        Ok((join(&done), e))
    }

    /// The entry at a path, following every symlink.
    pub fn stat(&self, path: &Path) -> io::Result<Option<Entry>> {
        Ok(self.resolve(path, true)?.1)
    }

    /// Reads a whole file of the image (following symlinks); `None` when missing.
    pub fn read_file(&self, path: &Path) -> io::Result<Option<Vec<u8>>> {
        match self.stat(path)? {
            Some(e) if e.meta.is_file() => Ok(Some(fs::read(&e.real)?)),
            _ => Ok(None),
        }
    }

    /// The names in a directory of the image (already resolved: no symlinks in `dir`), sorted.
    pub fn read_dir(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let comps = clean_components(dir);
        let mut names: std::collections::BTreeSet<OsString> = std::collections::BTreeSet::new();
        for l in self.layers.iter().rev() {
            let mut real = l.clone();
            for c in &comps {
                real.push(c);
            }
            let meta = match fs::symlink_metadata(&real) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if !meta.is_dir() {
                break;
            }
            for de in fs::read_dir(&real)? {
                names.insert(de?.file_name());
            }
            if is_opaque(&real) {
                break;
            }
        }
        let mut out = Vec::new();
        for n in names {
            let mut c = comps.clone();
            c.push(n);
            if let Some(e) = self.lookup_exact(&c)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Every entry under `dir` (resolved, included itself first), depth first, sorted by name.
    pub fn walk(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let comps = clean_components(dir);
        if let Some(root) = self.lookup_exact(&comps)? {
            let is_dir = root.meta.is_dir();
            out.push(root);
            if is_dir {
                self.walk_into(&join(&comps), &mut out)?;
            }
        }
        Ok(out)
    }

    fn walk_into(&self, dir: &Path, out: &mut Vec<Entry>) -> io::Result<()> {
        for e in self.read_dir(dir)? {
            let is_dir = e.meta.is_dir();
            let p = e.image_path.clone();
            out.push(e);
            if is_dir {
                self.walk_into(&p, out)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn layer(root: &Path, name: &str) -> PathBuf {
        let p = root.join(name);
        fs::create_dir_all(&p).expect("mkdir");
        p
    }

    #[test]
    fn upper_layers_win_and_symlinks_stay_inside() {
        let t = tempfile::tempdir().expect("tmp");
        let l0 = layer(t.path(), "l0");
        let l1 = layer(t.path(), "l1");
        fs::create_dir_all(l0.join("usr/bin")).expect("mkdir");
        fs::write(l0.join("usr/bin/a"), "old").expect("write");
        symlink("usr/bin", l0.join("bin")).expect("symlink");
        fs::create_dir_all(l1.join("usr/bin")).expect("mkdir");
        fs::write(l1.join("usr/bin/a"), "new").expect("write");
        symlink("../../../../etc", l1.join("usr/escape")).expect("symlink");
        let v = RootView::new(vec![l0.clone(), l1.clone()]);
        assert_eq!(
            v.read_file(Path::new("/bin/a")).expect("read"),
            Some(b"new".to_vec())
        );
        let (p, e) = v
            .resolve(Path::new("/usr/escape/passwd"), true)
            .expect("resolve");
        assert_eq!(p, Path::new("/etc/passwd"));
        assert!(e.is_none());
        let (p, _) = v.resolve(Path::new("/bin/new"), true).expect("resolve");
        assert_eq!(p, Path::new("/usr/bin/new"));
    }

    #[test]
    fn opaque_dirs_hide_lower_entries() {
        let t = tempfile::tempdir().expect("tmp");
        let l0 = layer(t.path(), "l0");
        let l1 = layer(t.path(), "l1");
        fs::create_dir_all(l0.join("d")).expect("mkdir");
        fs::write(l0.join("d/old"), "x").expect("write");
        fs::create_dir_all(l1.join("d")).expect("mkdir");
        fs::write(l1.join("d/new"), "y").expect("write");
        let v = RootView::new(vec![l0.clone(), l1.clone()]);
        let names = |v: &RootView| -> Vec<String> {
            v.read_dir(Path::new("/d"))
                .expect("ls")
                .into_iter()
                .map(|e| e.image_path.display().to_string())
                .collect()
        };
        assert_eq!(names(&v), vec!["/d/new", "/d/old"]);
        if xattr::set(l1.join("d"), "user.overlay.opaque", b"y").is_ok() {
            assert_eq!(names(&v), vec!["/d/new"]);
            assert!(v.stat(Path::new("/d/old")).expect("stat").is_none());
        }
    }
}
