//! The container's file system: the root as an overlay of the image's unpacked layers (new mount
//! API with one `lowerdir+` per layer, else the legacy option string over short symlinked paths,
//! else a copy; always `nodev`), the kernel file systems (`/proc`, a nodev tmpfs `/dev` with
//! docker's standard devices bound in from the host,
//! `/dev/pts` newinstance, `/dev/shm`, read-only `/sys` where allowed), the generated `/etc`
//! files, the spec's mounts, and finally `pivot_root`.
//!
//! Mount points the image lacks are provided by a small "skeleton" layer stacked on top of the
//! image's layers, so nothing is ever created in the upper dir (the layer a build keeps) just to
//! mount over it. Every mount goes through [`Sys`]; destinations are resolved inside the root so
//! an image's symlinks cannot lead a mount onto the host. Follows overlayfs.rst (userxattr,
//! whiteouts as 0:0 char devices, `user.overlay.opaque`), pivot_root(2) and mount(2).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use super::spec::{Mount, Network, RootfsPlan, Start};
use super::sys::Sys;
use super::SandboxError;

const OPAQUE_XATTR: &str = "user.overlay.opaque";

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// `path` (absolute, inside the container) as a host path under `root`, following the image's
/// symlinks without ever leaving `root` (`..` stops at `root`, absolute links restart at it).
pub fn resolve_in_root(root: &Path, path: &str) -> PathBuf {
    let mut pending: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut parts: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                parts.pop();
                continue;
            }
            _ => {}
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&parts);
        candidate.push(&c);
        match fs::read_link(&candidate) {
            Ok(target) if links < 40 => {
                links += 1;
                let t = target.to_string_lossy().into_owned();
                if t.starts_with('/') {
                    parts.clear();
                }
                pending.extend(
                    t.split('/')
                        .filter(|c| !c.is_empty())
                        .rev()
                        .map(str::to_string),
                );
            }
            _ => parts.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&parts);
    out
}

/// Relative form of a container path (`/etc/hosts` → `etc/hosts`), refusing `..`.
pub fn relative(path: &str) -> Result<PathBuf, SandboxError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(SandboxError::Spec(format!(
            "container path `{path}` is not absolute"
        )));
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => {
                return Err(SandboxError::Spec(format!(
                    "container path `{path}` must not contain `..`"
                )))
            }
        }
    }
    Ok(out)
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    matches!(xattr::get(p, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// What the merged view of `layers` (top first, overlay form) has at `rel`, without mounting.
pub fn lookup(layers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    'layers: for layer in layers {
        let mut at = layer.clone();
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            at.push(c);
            let last = i + 1 == comps.len();
            match fs::symlink_metadata(&at) {
                Ok(m) if is_whiteout(&m) => return None,
                Ok(m) if last => return Some(m),
                Ok(m) if m.is_dir() => {
                    if is_opaque(&at)
                        && !at.join(comps[i + 1..].iter().collect::<PathBuf>()).exists()
                    {
                        return None;
                    }
                }
                Ok(_) => return None,
                Err(_) => continue 'layers,
            }
        }
    }
    None
}

/// What a mount point must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Fills `skel` with the mount points `needs` the merged `layers` (top first) lack, each parent
/// directory carrying the image's own mode, owner and time so the skeleton changes nothing a
/// command (or a layer diff) could see. `shadow` paths are made even where the image has a
/// symlink (the generated `/etc` files must not follow one out of the image).
/// Returns whether the skeleton holds anything.
pub fn prepare_skeleton(
    skel: &Path,
    layers: &[PathBuf],
    needs: &[(PathBuf, Kind, bool)],
) -> Result<bool, SandboxError> {
    let mut any = false;
    let mut dirs: Vec<(PathBuf, fs::Metadata)> = Vec::new();
    for (rel, kind, shadow) in needs {
        match lookup(layers, rel) {
            Some(m) if !(*shadow && m.file_type().is_symlink()) => continue,
            _ => {}
        }
        // parents: copy the image's dirs, make the missing ones
        let mut at = PathBuf::new();
        let comps: Vec<_> = rel.components().collect();
        for c in &comps[..comps.len().saturating_sub(1)] {
            at.push(c);
            let host = skel.join(&at);
            if host.exists() {
                continue;
            }
            match lookup(layers, &at) {
                Some(m) if m.is_dir() => {
                    fs::create_dir(&host)
                        .map_err(io_err(format!("creating `{}`", host.display())))?;
                    dirs.push((host, m));
                }
                Some(_) => {
                    // a symlink or file in the image: leave the path to the image
                    return Err(SandboxError::Spec(format!(
                        "mount point `/{}` lies below `/{}`, which is not a directory in the image",
                        rel.display(),
                        at.display()
                    )));
                }
                None => fs::create_dir(&host)
                    .map_err(io_err(format!("creating `{}`", host.display())))?,
            }
        }
        let host = skel.join(rel);
        if host.exists() {
            continue;
        }
        match kind {
            Kind::Dir => fs::create_dir(&host),
            Kind::File => fs::File::create(&host).map(drop),
        }
        .map_err(io_err(format!("creating `{}`", host.display())))?;
        any = true;
    }
    // owners and modes, then times deepest first (creating children changed the parents' mtime)
    for (host, m) in dirs.iter().rev() {
        let _ = std::os::unix::fs::lchown(host, Some(m.uid()), Some(m.gid()));
        let _ = fs::set_permissions(host, fs::Permissions::from_mode(m.mode() & 0o7777));
        let t = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
        let a = nix::sys::time::TimeSpec::new(m.atime(), m.atime_nsec());
        let _ = nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            host,
            &a,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        );
    }
    Ok(any)
}

/// Mounts the overlay at `target`: the new mount API first (no limit on layers), then the
/// legacy option string with short symlinked paths made in `links` (so many layers fit in one
/// page), and reports which failed when both do. `volatile` as in [`Sys::mount_overlay`].
pub fn mount_overlay(
    sys: &dyn Sys,
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    links: &Path,
    volatile: bool,
) -> io::Result<()> {
    let new_api = match sys.mount_overlay(lowers, upper, work, target, volatile) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    log::debug!("overlay through fsopen/lowerdir+ failed ({new_api}), trying the legacy mount");
    fs::create_dir_all(links)?;
    let mut names = Vec::with_capacity(lowers.len());
    for (i, l) in lowers.iter().enumerate() {
        let name = format!("{i:x}");
        let link = links.join(&name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(l, &link)?;
        names.push(name);
    }
    // the short names are resolved against the current directory at mount time
    let cwd = std::env::current_dir()?;
    std::env::set_current_dir(links)?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={},userxattr{}",
        names.join(":"),
        upper.display(),
        work.display(),
        if volatile { ",volatile" } else { "" }
    );
    let r = sys.mount(
        Some(Path::new("overlay")),
        target,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(&data),
    );
    std::env::set_current_dir(cwd)?;
    r.map_err(|legacy| {
        io::Error::new(
            legacy.kind(),
            format!("new mount API: {new_api}; legacy mount: {legacy}"),
        )
    })
}

/// Removes a scratch tree, making its directories searchable first where removal is refused
/// (overlayfs leaves its `work/work` dir with mode 000; an image may hold such dirs too).
/// Failures are logged, not returned: scratch space is swept again later.
pub fn remove_scratch(p: &Path) {
    if fs::remove_dir_all(p).is_ok() || !p.exists() {
        return;
    }
    for e in walkdir::WalkDir::new(p).into_iter().flatten() {
        if e.file_type().is_dir() {
            let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o700));
        }
    }
    if let Err(e) = fs::remove_dir_all(p) {
        log::debug!("cannot remove `{}`: {e}", p.display());
    }
}

/// Copies layers (bottom → top, overlay form) into `dest`, applying whiteouts and opaque dirs:
/// the fallback where overlay cannot be mounted.
pub fn copy_layers(layers_bottom_first: &[PathBuf], dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    for layer in layers_bottom_first {
        copy_tree(layer, dest)?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(_) => Ok(()),
    }
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let s = entry.path();
        let d = dst.join(entry.file_name());
        let m = fs::symlink_metadata(&s)?;
        let ft = m.file_type();
        if is_whiteout(&m) {
            remove_any(&d)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(dm) if dm.is_dir() => {
                    if is_opaque(&s) {
                        fs::remove_dir_all(&d)?;
                        fs::create_dir(&d)?;
                    }
                }
                Ok(_) => {
                    fs::remove_file(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(_) => fs::create_dir(&d)?,
            }
            copy_tree(&s, &d)?;
        } else {
            remove_any(&d)?;
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
            } else if ft.is_file() {
                fs::copy(&s, &d)?;
            } else if ft.is_fifo() {
                nix::unistd::mkfifo(&d, nix::sys::stat::Mode::from_bits_truncate(m.mode()))
                    .map_err(io::Error::from)?;
            } else {
                // device nodes cannot be made in a user namespace; the image keeps the others
                log::warn!("copying fallback: skipping device node `{}`", s.display());
                continue;
            }
        }
        let _ = std::os::unix::fs::lchown(&d, Some(m.uid()), Some(m.gid()));
        if !ft.is_symlink() {
            fs::set_permissions(&d, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
        set_times(&d, &m);
    }
    Ok(())
}

/// Gives `p` the access and modification times of `m` (symlinks themselves, not their targets).
fn set_times(p: &Path, m: &fs::Metadata) {
    let a = nix::sys::time::TimeSpec::new(m.atime(), m.atime_nsec());
    let t = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
    let _ = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &a,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
}

/// The layers (top first) whose version of the directory `rel` shows through in the merged
/// view: stops below a layer where `rel` or a parent is a whiteout, a non-directory or opaque.
fn visible_dirs(layers: &[PathBuf], rel: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    'layers: for layer in layers {
        let mut at = layer.clone();
        let mut stop_after = false;
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            at.push(c);
            match fs::symlink_metadata(&at) {
                Err(_) => continue 'layers,
                Ok(m) if !m.is_dir() => break 'layers,
                Ok(_) => {
                    if is_opaque(&at) {
                        stop_after = true;
                        if i + 1 < comps.len() && !layer.join(rel).exists() {
                            break 'layers;
                        }
                    }
                }
            }
        }
        out.push(at);
        if stop_after {
            break;
        }
    }
    out
}

/// Whether two entries are the same file as far as a layer diff can tell.
fn same_entry(a: &fs::Metadata, a_path: &Path, b: &fs::Metadata, b_path: &Path) -> bool {
    let kind = |m: &fs::Metadata| m.mode() & libc::S_IFMT;
    if kind(a) != kind(b) || a.mode() != b.mode() || a.uid() != b.uid() || a.gid() != b.gid() {
        return false;
    }
    if a.file_type().is_symlink() {
        return fs::read_link(a_path).ok() == fs::read_link(b_path).ok();
    }
    if a.is_dir() {
        return true;
    }
    a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.rdev() == b.rdev()
}

/// Records what a run changed in a copied root (`copy`) against the layers it was copied from
/// (top first) into `upper`, in overlay form: changed and new entries copied (with their parent
/// directories), deleted ones as 0:0 whiteout char devices. The copying fallback's counterpart
/// of overlay's upper dir, so a build keeps the same layer either way.
pub fn record_changes(copy: &Path, layers: &[PathBuf], upper: &Path) -> io::Result<()> {
    record_dir(copy, layers, upper, Path::new(""))
}

fn ensure_upper_parents(copy: &Path, upper: &Path, rel: &Path) -> io::Result<()> {
    let mut at = PathBuf::new();
    for c in rel.parent().into_iter().flat_map(Path::components) {
        at.push(c);
        let u = upper.join(&at);
        if fs::symlink_metadata(&u).is_err() {
            let m = fs::symlink_metadata(copy.join(&at))?;
            fs::create_dir(&u)?;
            let _ = std::os::unix::fs::lchown(&u, Some(m.uid()), Some(m.gid()));
            fs::set_permissions(&u, fs::Permissions::from_mode(m.mode() & 0o7777))?;
            set_times(&u, &m);
        }
    }
    Ok(())
}

fn record_dir(copy: &Path, layers: &[PathBuf], upper: &Path, rel: &Path) -> io::Result<()> {
    let lower_dirs = visible_dirs(layers, rel);
    let mut lower: std::collections::BTreeMap<std::ffi::OsString, Option<(PathBuf, fs::Metadata)>> =
        Default::default();
    for d in &lower_dirs {
        let Ok(entries) = fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if lower.contains_key(&name) {
                continue;
            }
            let Ok(m) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            lower.insert(name, (!is_whiteout(&m)).then(|| (e.path(), m)));
        }
    }
    let here = copy.join(rel);
    let mut seen = std::collections::BTreeSet::new();
    for e in fs::read_dir(&here)? {
        let e = e?;
        let name = e.file_name();
        seen.insert(name.clone());
        let r = rel.join(&name);
        let m = fs::symlink_metadata(e.path())?;
        let old = lower.get(&name).and_then(Option::as_ref);
        match old {
            Some((op, om)) if m.is_dir() && om.is_dir() => {
                if !same_entry(&m, &e.path(), om, op) {
                    ensure_upper_parents(copy, upper, &r.join("x"))?;
                }
                record_dir(copy, layers, upper, &r)?;
            }
            Some((op, om)) if same_entry(&m, &e.path(), om, op) => {}
            _ => {
                ensure_upper_parents(copy, upper, &r)?;
                let dest = upper.join(&r);
                remove_any(&dest)?;
                if m.is_dir() {
                    // a new directory, or one replacing a non-directory: all of it is new
                    fs::create_dir(&dest)?;
                    copy_tree(&e.path(), &dest)?;
                    let _ = std::os::unix::fs::lchown(&dest, Some(m.uid()), Some(m.gid()));
                    fs::set_permissions(&dest, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                    set_times(&dest, &m);
                } else {
                    copy_entry(&e.path(), &dest, &m)?;
                }
            }
        }
    }
    for (name, old) in &lower {
        if old.is_some() && !seen.contains(name) {
            let r = rel.join(name);
            ensure_upper_parents(copy, upper, &r)?;
            let dest = upper.join(&r);
            remove_any(&dest)?;
            nix::sys::stat::mknod(
                &dest,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .map_err(io::Error::from)?;
        }
    }
    Ok(())
}

/// Copies one non-directory entry with its owner, mode and times.
fn copy_entry(src: &Path, dst: &Path, m: &fs::Metadata) -> io::Result<()> {
    let ft = m.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_file() {
        fs::copy(src, dst)?;
    } else if ft.is_fifo() {
        nix::unistd::mkfifo(dst, nix::sys::stat::Mode::from_bits_truncate(m.mode()))
            .map_err(io::Error::from)?;
    } else {
        let kind = if ft.is_char_device() {
            nix::sys::stat::SFlag::S_IFCHR
        } else if ft.is_block_device() {
            nix::sys::stat::SFlag::S_IFBLK
        } else {
            nix::sys::stat::SFlag::S_IFSOCK
        };
        nix::sys::stat::mknod(
            dst,
            kind,
            nix::sys::stat::Mode::from_bits_truncate(m.mode()),
            m.rdev(),
        )
        .map_err(io::Error::from)?;
    }
    let _ = std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()));
    if !ft.is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    }
    set_times(dst, m);
    Ok(())
}

/// Builds the root file system at `start.rootfs` as the plan says.
pub fn mount_rootfs(sys: &dyn Sys, start: &Start, links: &Path) -> Result<(), SandboxError> {
    let target = &start.rootfs;
    match &start.rootfs_plan {
        RootfsPlan::Overlay { lowers } => mount_overlay(
            sys,
            lowers,
            &start.spec.upper_dir,
            &start.spec.work_dir,
            target,
            links,
            start.spec.volatile_upper,
        )
        .map_err(|e| SandboxError::Mount {
            target: target.clone(),
            message: format!("overlay of {} layers: {e}", lowers.len()),
        }),
        RootfsPlan::Copy { dir } => sys
            .mount(
                Some(dir),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .and_then(|()| sys.set_nodev(target))
            .map_err(|e| SandboxError::Mount {
                target: target.clone(),
                message: e.to_string(),
            }),
    }
}

fn mount_err(target: &Path) -> impl FnOnce(io::Error) -> SandboxError + '_ {
    move |e| SandboxError::Mount {
        target: target.to_owned(),
        message: e.to_string(),
    }
}

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
const PROC_MASKED: [&str; 5] = [
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
];
const PROC_READONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];

/// Mounts a new proc at `proc`; where the kernel refuses one (a container whose `/proc` has
/// masked paths: in a user namespace a new proc may not reveal what an existing mount hides,
/// mount_too_revealing in fs/namespace.c), binds hoist's own `/proc` with its masks instead —
/// the "bind /proc" fallback `hoist info` names. The container then sees the processes of the
/// pid namespace hoist runs in, as BuildKit's rootless workers without a process sandbox do.
pub fn mount_proc(sys: &dyn Sys, proc: &Path) -> Result<(), SandboxError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let fresh = sys.mount(Some(Path::new("proc")), proc, Some("proc"), flags, None);
    let Err(e) = fresh else {
        return Ok(());
    };
    log::debug!("cannot mount a new /proc ({e}): binding the host's /proc instead");
    sys.mount(
        Some(Path::new("/proc")),
        proc,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )
    .map_err(|e2| SandboxError::Mount {
        target: proc.to_owned(),
        message: format!("proc: {e}; binding the host's /proc: {e2}"),
    })
}

/// Mounts `/proc`, `/dev`, `/sys`, the generated `/etc` files and the spec's mounts under the
/// mounted root `root` (before `pivot_root`).
pub fn mount_container_fs(sys: &dyn Sys, root: &Path, start: &Start) -> Result<(), SandboxError> {
    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;

    // /proc of the new pid namespace, with docker's masked and read-only paths
    let proc = resolve_in_root(root, "/proc");
    mount_proc(sys, &proc)?;
    for name in PROC_MASKED {
        let p = proc.join(name);
        if p.exists() {
            sys.mount(
                Some(Path::new("/dev/null")),
                &p,
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(mount_err(&p))?;
        }
    }
    for name in PROC_READONLY {
        let p = proc.join(name);
        if p.exists() {
            sys.mount(Some(&p), &p, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)
                .map_err(mount_err(&p))?;
            sys.set_readonly(&p).map_err(mount_err(&p))?;
        }
    }

    // /dev: a small nodev tmpfs with docker's standard devices bound in from the host (a user
    // namespace cannot mknod; each bind is a mount of its own, so nodev does not touch them),
    // a pts of the container's own, shm, and the fd links. `tty` is the caller's controlling
    // terminal: the command has none but its own pty (it runs in a session of its own)
    let dev = resolve_in_root(root, "/dev");
    sys.mount(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV,
        Some("mode=755,size=65536k"),
    )
    .map_err(mount_err(&dev))?;
    for name in DEVICES {
        let p = dev.join(name);
        fs::File::create(&p).map_err(io_err(format!("creating `{}`", p.display())))?;
        let host = Path::new("/dev").join(name);
        sys.mount(Some(&host), &p, None, MsFlags::MS_BIND, None)
            .map_err(mount_err(&p))?;
    }
    for d in ["pts", "shm"] {
        fs::create_dir(dev.join(d))
            .map_err(io_err(format!("creating `{}`", dev.join(d).display())))?;
    }
    let pts = dev.join("pts");
    sys.mount(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .map_err(mount_err(&pts))?;
    let shm = dev.join("shm");
    sys.mount(
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )
    .map_err(mount_err(&shm))?;
    for (link, to) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(io_err(format!("creating `{}`", dev.join(link).display())))?;
    }

    // /sys: a fresh read-only sysfs needs a network namespace of our own; otherwise bind the
    // host's read-only; where neither is allowed the container has an empty /sys
    let sysfs = resolve_in_root(root, "/sys");
    let fresh = sys.mount(
        Some(Path::new("sysfs")),
        &sysfs,
        Some("sysfs"),
        nosuid_nodev_noexec | MsFlags::MS_RDONLY,
        None,
    );
    if let Err(e) = fresh {
        let bound = sys
            .mount(
                Some(Path::new("/sys")),
                &sysfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .and_then(|()| sys.set_readonly(&sysfs));
        if let Err(e2) = bound {
            log::debug!("no /sys in the container: sysfs: {e}; bind: {e2}");
        }
    }
    if start.spec.network == Network::None {
        log::debug!("network none: own network namespace");
    }

    // generated /etc files, bound from the run's temp dir
    for (dest, src) in &start.etc_files {
        let target = resolve_in_root(root, dest);
        sys.mount(Some(src), &target, None, MsFlags::MS_BIND, None)
            .map_err(mount_err(&target))?;
    }

    for m in &start.spec.mounts {
        let target = resolve_in_root(root, m.destination());
        match m {
            Mount::Bind {
                source, readonly, ..
            } => {
                sys.mount(
                    Some(source),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .and_then(|()| sys.set_nodev(&target))
                .map_err(|e| SandboxError::Mount {
                    target: PathBuf::from(m.destination()),
                    message: format!("binding `{}`: {e}", source.display()),
                })?;
                if *readonly {
                    sys.set_readonly(&target).map_err(mount_err(&target))?;
                }
            }
            Mount::Tmpfs { size, mode, .. } => {
                let mut data = format!("mode={:o}", mode.unwrap_or(0o1777));
                if let Some(s) = size {
                    data.push_str(&format!(",size={s}"));
                }
                sys.mount(
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(&data),
                )
                .map_err(mount_err(&target))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::spec::Spec;

    #[test]
    fn copied_root_changes_are_recorded_in_overlay_form() {
        let d = tempfile::tempdir().unwrap();
        let (l0, l1, copy, upper) = (
            d.path().join("l0"),
            d.path().join("l1"),
            d.path().join("copy"),
            d.path().join("upper"),
        );
        fs::create_dir_all(l0.join("etc")).unwrap();
        fs::create_dir_all(l0.join("usr/lib")).unwrap();
        fs::write(l0.join("etc/passwd"), "root\n").unwrap();
        fs::write(l0.join("etc/keep"), "k").unwrap();
        fs::write(l0.join("usr/lib/old"), "o").unwrap();
        fs::create_dir_all(l1.join("usr")).unwrap();
        fs::write(l1.join("usr/top"), "t").unwrap();
        fs::create_dir(&upper).unwrap();
        let bottom_first = vec![l0.clone(), l1.clone()];
        copy_layers(&bottom_first, &copy).unwrap();
        // a "run": edit, add, delete
        fs::write(copy.join("etc/passwd"), "root\napp\n").unwrap();
        fs::create_dir_all(copy.join("srv/data")).unwrap();
        fs::write(copy.join("srv/data/f"), "new").unwrap();
        fs::remove_file(copy.join("usr/lib/old")).unwrap();
        fs::remove_file(copy.join("usr/top")).unwrap();
        let top_first = vec![l1.clone(), l0.clone()];
        record_changes(&copy, &top_first, &upper).unwrap();
        let mut got: Vec<String> = walkdir::WalkDir::new(&upper)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .map(|e| {
                let e = e.unwrap();
                let m = e.path().symlink_metadata().unwrap();
                let kind = if is_whiteout(&m) {
                    "whiteout"
                } else if m.is_dir() {
                    "dir"
                } else {
                    "file"
                };
                format!(
                    "{} {kind}",
                    e.path().strip_prefix(&upper).unwrap().display()
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                "etc dir",
                "etc/passwd file",
                "srv dir",
                "srv/data dir",
                "srv/data/f file",
                "usr dir",
                "usr/lib dir",
                "usr/lib/old whiteout",
                "usr/top whiteout",
            ]
        );
        assert_eq!(
            fs::read_to_string(upper.join("etc/passwd")).unwrap(),
            "root\napp\n"
        );
    }

    use super::super::sys::{Call, RecordingSys};
    use super::*;

    #[test]
    fn resolve_in_root_never_leaves_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("etc")).unwrap();
        std::os::unix::fs::symlink("/../../../etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", r.join("etc/up")).unwrap();
        assert_eq!(resolve_in_root(r, "/abs/passwd"), r.join("etc/passwd"));
        assert_eq!(resolve_in_root(r, "/etc/up/etc/x"), r.join("etc/x"));
        assert_eq!(resolve_in_root(r, "/../../tmp"), r.join("tmp"));
    }

    #[test]
    fn relative_refuses_dotdot_and_relative_paths() {
        assert_eq!(relative("/etc/hosts").unwrap(), PathBuf::from("etc/hosts"));
        assert!(relative("etc").is_err());
        assert!(relative("/a/../b").is_err());
    }

    #[test]
    fn lookup_honours_whiteouts_and_opaque_dirs() {
        let d = tempfile::tempdir().unwrap();
        let (low, up) = (d.path().join("low"), d.path().join("up"));
        fs::create_dir_all(low.join("a/b")).unwrap();
        fs::write(low.join("a/b/f"), "").unwrap();
        fs::write(low.join("g"), "").unwrap();
        fs::create_dir_all(up.join("a")).unwrap();
        let layers = vec![up.clone(), low.clone()];
        assert!(lookup(&layers, Path::new("a/b/f")).is_some());
        assert!(lookup(&layers, Path::new("nope")).is_none());
        // an opaque dir in the upper layer hides the lower contents
        if xattr::set(up.join("a"), OPAQUE_XATTR, b"y").is_ok() {
            assert!(lookup(&layers, Path::new("a/b/f")).is_none());
        }
        assert!(lookup(&layers, Path::new("g")).is_some());
    }

    #[test]
    fn skeleton_makes_only_missing_mount_points_with_image_metadata() {
        let d = tempfile::tempdir().unwrap();
        let (low, skel) = (d.path().join("low"), d.path().join("skel"));
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::create_dir_all(low.join("proc")).unwrap();
        fs::set_permissions(low.join("etc"), fs::Permissions::from_mode(0o751)).unwrap();
        fs::create_dir(&skel).unwrap();
        let needs = vec![
            (PathBuf::from("proc"), Kind::Dir, false),
            (PathBuf::from("etc/hosts"), Kind::File, true),
            (PathBuf::from("mnt/data"), Kind::Dir, false),
        ];
        assert!(prepare_skeleton(&skel, std::slice::from_ref(&low), &needs).unwrap());
        assert!(!skel.join("proc").exists());
        assert!(skel.join("etc/hosts").is_file());
        assert!(skel.join("mnt/data").is_dir());
        let m = fs::metadata(skel.join("etc")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o751);
        assert_eq!(m.mtime(), fs::metadata(low.join("etc")).unwrap().mtime());
    }

    #[test]
    fn copy_layers_applies_whiteouts_and_opaque_dirs() {
        let d = tempfile::tempdir().unwrap();
        let (l0, l1, out) = (
            d.path().join("l0"),
            d.path().join("l1"),
            d.path().join("out"),
        );
        fs::create_dir_all(l0.join("dir")).unwrap();
        fs::write(l0.join("dir/old"), "x").unwrap();
        fs::write(l0.join("gone"), "x").unwrap();
        fs::create_dir_all(l1.join("dir")).unwrap();
        fs::write(l1.join("dir/new"), "y").unwrap();
        std::os::unix::fs::symlink("dir/new", l1.join("link")).unwrap();
        let whiteout = nix::sys::stat::mknod(
            &l1.join("gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        );
        let opaque = xattr::set(l1.join("dir"), OPAQUE_XATTR, b"y").is_ok();
        copy_layers(&[l0, l1], &out).unwrap();
        assert_eq!(fs::read_to_string(out.join("link")).unwrap(), "y");
        if whiteout.is_ok() {
            assert!(!out.join("gone").exists());
        }
        assert_eq!(out.join("dir/old").exists(), !opaque);
    }

    #[test]
    fn overlay_falls_back_to_short_symlinked_paths() {
        let d = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..40)
            .map(|i| {
                d.path()
                    .join(format!("a-rather-long-layer-directory-name-{i:03}"))
            })
            .collect();
        let sys = RecordingSys {
            fail: Some(|c| matches!(c, Call::Overlay { .. }).then_some(libc::EINVAL)),
            ..Default::default()
        };
        let links = d.path().join("l");
        mount_overlay(
            &sys,
            &lowers,
            Path::new("/u"),
            Path::new("/w"),
            Path::new("/t"),
            &links,
            true,
        )
        .unwrap();
        let calls = sys.calls.borrow();
        let Some(Call::Mount {
            data: Some(data),
            fstype: Some(t),
            ..
        }) = calls.last()
        else {
            panic!("no legacy mount: {calls:?}");
        };
        assert_eq!(t, "overlay");
        let names: Vec<String> = (0..40).map(|i| format!("{i:x}")).collect();
        assert_eq!(
            data,
            &format!(
                "lowerdir={},upperdir=/u,workdir=/w,userxattr,volatile",
                names.join(":")
            )
        );
        assert_eq!(fs::read_link(links.join("27")).unwrap(), lowers[39]);
    }

    #[test]
    fn proc_falls_back_to_a_bind_of_the_hosts_proc() {
        let d = tempfile::tempdir().unwrap();
        let proc = d.path().join("proc");
        let sys = RecordingSys {
            fail: Some(|c| {
                matches!(c, Call::Mount { fstype: Some(f), .. } if f == "proc")
                    .then_some(libc::EPERM)
            }),
            ..Default::default()
        };
        mount_proc(&sys, &proc).unwrap();
        let calls = sys.calls.borrow();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(matches!(&calls[1],
            Call::Mount { source: Some(s), target, fstype: None, flags, .. }
                if s == Path::new("/proc") && *target == proc
                    && *flags == MsFlags::MS_BIND | MsFlags::MS_REC));

        let sys = RecordingSys {
            fail: Some(|c| matches!(c, Call::Mount { .. }).then_some(libc::EPERM)),
            ..Default::default()
        };
        let e = mount_proc(&sys, &proc).unwrap_err().to_string();
        assert!(e.contains("binding the host's /proc"), "{e}");
    }

    #[test]
    fn container_fs_mounts_in_order_with_readonly_binds() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        for p in ["proc", "dev", "sys", "etc", "data", "t"] {
            fs::create_dir_all(root.join(p)).unwrap();
        }
        let mut spec = Spec::new(vec![], "/u".into(), "/w".into(), vec!["true".into()]);
        spec.mounts = vec![
            Mount::Bind {
                source: "/src".into(),
                destination: "/data".into(),
                readonly: true,
            },
            Mount::Tmpfs {
                destination: "/t".into(),
                size: Some(1024),
                mode: Some(0o700),
            },
        ];
        let start = Start {
            spec,
            rootfs: root.clone(),
            rootfs_plan: RootfsPlan::Overlay { lowers: vec![] },
            etc_files: vec![("/etc/hosts".into(), "/run/x/hosts".into())],
            fake_id_calls: false,
            force_copy: false,
            copy_dir: "/run/x/copy".into(),
        };
        let sys = RecordingSys::default();
        mount_container_fs(&sys, &root, &start).unwrap();
        let calls = sys.calls.borrow();
        let targets: Vec<String> = calls
            .iter()
            .filter_map(|c| match c {
                Call::Mount { target, fstype, .. } => Some(format!(
                    "{} {}",
                    fstype.as_deref().unwrap_or("bind"),
                    target.strip_prefix(&root).unwrap().display()
                )),
                Call::SetReadonly(t) => {
                    Some(format!("ro {}", t.strip_prefix(&root).unwrap().display()))
                }
                Call::SetNodev(t) => Some(format!(
                    "nodev {}",
                    t.strip_prefix(&root).unwrap().display()
                )),
                _ => None,
            })
            .filter(|s| !s.contains("proc/"))
            .collect();
        assert_eq!(
            targets,
            [
                "proc proc",
                "tmpfs dev",
                "bind dev/null",
                "bind dev/zero",
                "bind dev/full",
                "bind dev/random",
                "bind dev/urandom",
                "bind dev/tty",
                "devpts dev/pts",
                "tmpfs dev/shm",
                "sysfs sys",
                "bind etc/hosts",
                "bind data",
                "nodev data",
                "ro data",
                "tmpfs t",
            ]
        );
        assert!(calls.iter().any(|c| matches!(c,
            Call::Mount { fstype: Some(f), data: Some(d), .. } if f == "tmpfs" && d == "mode=700,size=1024")));
        assert_eq!(
            fs::read_link(root.join("dev/ptmx")).unwrap(),
            PathBuf::from("pts/ptmx")
        );
    }
}
