//! `hoist mount` / `hoist umount`: a container's root file system (its base image's unpacked
//! layers under its upper dir, the overlay its runs see) mounted at `containers/ID/merged`, in
//! the mount namespace of the calling process: the host's for real root, `hoist unshare`'s for
//! everyone else (a rootless hoist's own namespace ends with it, so the mount would too).
//!
//! Whether a container is mounted here is read from `/proc/self/mountinfo`. A mount in another
//! namespace (another `hoist unshare` session) cannot be seen there, so `mount` also records the
//! namespace (`mnt:[N]`, with the pid and start time of the `hoist unshare` process that made
//! it) in the container's `mounted` file; while that process runs the container counts as
//! mounted elsewhere (a record whose session is gone is stale: the mount ended with it). It must not decide who may mount (the CLI checks the
//! namespace) nor change the container's record.

use std::fs;
use std::path::{Path, PathBuf};

use super::{lower_dirs, op, ContainerError};
use crate::sandbox::sys::{RealSys, Sys};
use crate::store::containers::{self as state, ContainerRecord};
use crate::store::Store;

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134`
/// backslash) in a mount point.
fn unescape(field: &str) -> PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                let v = d.iter().fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points listed in `mountinfo` text (proc(5): the fifth field).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// The container's mount point with symlinks in the store's path resolved, as mountinfo
/// shows it.
fn target(store: &Store, r: &ContainerRecord) -> PathBuf {
    let dir = state::dir(store, &r.id);
    fs::canonicalize(&dir).unwrap_or(dir).join("merged")
}

/// Where the container is mounted in this process's mount namespace, if it is.
pub fn mounted_at(store: &Store, r: &ContainerRecord) -> Option<PathBuf> {
    let t = target(store, r);
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mount_points(&info).into_iter().any(|p| p == t).then_some(t)
}

/// This process's mount namespace, as `/proc/PID/ns/mnt` links read (`mnt:[N]`).
fn own_namespace() -> Option<String> {
    fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether some process (that this one may inspect) is in the mount namespace `ns`.
fn namespace_alive(ns: &str) -> bool {
    let Ok(rd) = fs::read_dir("/proc") else {
        return false;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| fs::read_link(e.path().join("ns/mnt")).is_ok_and(|l| l.to_string_lossy() == ns))
}

/// A process's start time (`/proc/PID/stat` field 22, readable across user namespaces).
fn start_time(pid: &str) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// The `hoist unshare` process (`PID START`) whose mount namespace this process is in, if the
/// variable naming it is true (that process shares this namespace).
fn session(ns: &str) -> Option<String> {
    let pid = std::env::var(SESSION_ENV).ok()?;
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let same =
        fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|l| l.to_string_lossy() == ns);
    same.then(|| start_time(&pid).map(|t| format!("{pid} {t}")))?
}

/// The variable `hoist unshare` sets to its pid: a mount made in its namespace is recorded with
/// it, so hoist in other user namespaces (which cannot read `/proc/PID/ns`) can tell whether the
/// session, and so its mount, still exists.
pub const SESSION_ENV: &str = "HOIST_UNSHARED_PID";

/// The other mount namespace the container is mounted in, if its record names one that still
/// exists: its `hoist unshare` process still runs, or (no session recorded) some process is in
/// it.
pub fn mounted_elsewhere(store: &Store, r: &ContainerRecord) -> Option<String> {
    let marker = state::mount_marker(store, &r.id)?;
    let mut fields = marker.split_whitespace();
    let ns = fields.next()?.to_string();
    if Some(&ns) == own_namespace().as_ref() {
        return None;
    }
    let alive = match (fields.next(), fields.next()) {
        (Some(pid), Some(start)) => start_time(pid).is_some_and(|t| t == start),
        _ => namespace_alive(&ns),
    };
    alive.then_some(ns)
}

/// Fails when the container is mounted, here or in another live mount namespace: its upper dir
/// must not change under the mount (a run, a copy) nor move away from it (a commit).
pub fn check_unmounted(store: &Store, r: &ContainerRecord) -> Result<(), ContainerError> {
    if let Some(p) = mounted_at(store, r) {
        return Err(op(
            r,
            format!(
                "it is mounted at `{}`: change it through that path, or `hoist umount {}` first",
                p.display(),
                r.name
            ),
        ));
    }
    if let Some(ns) = mounted_elsewhere(store, r) {
        return Err(op(
            r,
            format!(
                "it is mounted in another mount namespace (`{ns}`, a `hoist unshare` session): \
                 `hoist umount {}` there first",
                r.name
            ),
        ));
    }
    Ok(())
}

/// Drops the container's namespace record when it names this namespace and the container is
/// not mounted here (unmounted by other means than `hoist umount`).
pub fn forget_stale(store: &Store, r: &ContainerRecord) -> Result<(), ContainerError> {
    let ns = state::mount_marker(store, &r.id)
        .and_then(|m| m.split_whitespace().next().map(str::to_string));
    if ns.is_some() && ns == own_namespace() && mounted_at(store, r).is_none() {
        state::clear_mount_marker(store, &r.id)?;
    }
    Ok(())
}

/// Mounts the container at `containers/ID/merged` (nothing to do when it is mounted already)
/// and returns that path. The caller holds the container's lock.
pub fn mount(store: &Store, r: &ContainerRecord) -> Result<PathBuf, ContainerError> {
    if let Some(p) = mounted_at(store, r) {
        return Ok(p);
    }
    // overlayfs leaves two mounts over one upper dir undefined
    check_unmounted(store, r)?;
    let ns = own_namespace().ok_or_else(|| op(r, "cannot read `/proc/self/ns/mnt`"))?;
    let mut lowers = lower_dirs(store, r)?;
    if lowers.is_empty() {
        let empty = state::dir(store, &r.id).join("empty");
        fs::create_dir_all(&empty).map_err(|e| op(r, format!("making its lower dir: {e}")))?;
        lowers.push(empty);
    }
    // overlayfs takes the top layer first and refuses a dir listed twice
    let mut top_first: Vec<PathBuf> = Vec::new();
    for l in lowers.into_iter().rev() {
        if !top_first.contains(&l) {
            top_first.push(l);
        }
    }
    let t = target(store, r);
    fs::create_dir_all(&t).map_err(|e| op(r, format!("making `{}`: {e}", t.display())))?;
    RealSys
        .mount_overlay(
            &top_first,
            &state::upper(store, &r.id),
            &state::work(store, &r.id),
            &t,
            false,
        )
        .map_err(|e| op(r, format!("mounting at `{}`: {e}", t.display())))?;
    let marker = match session(&ns) {
        Some(s) => format!("{ns} {s}"),
        None => ns,
    };
    if let Err(e) = state::set_mount_marker(store, &r.id, &marker) {
        let _ = nix::mount::umount2(&t, nix::mount::MntFlags::empty());
        return Err(e.into());
    }
    Ok(t)
}

/// Unmounts the container if it is mounted here; returns whether it was. A mount in use (a
/// shell's working directory in it, say) is left and reported.
pub fn unmount(store: &Store, r: &ContainerRecord) -> Result<bool, ContainerError> {
    let Some(p) = mounted_at(store, r) else {
        forget_stale(store, r)?;
        return Ok(false);
    };
    nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::empty())
        .map_err(|e| op(r, format!("unmounting `{}`: {e}", p.display())))?;
    forget_stale(store, r)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        let info = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    97 22 0:50 / /srv/a\\040b/merged rw - overlay overlay rw\n\
                    98 22 0:51 / /x\\134y\\011z rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(info),
            vec![
                PathBuf::from("/"),
                PathBuf::from("/srv/a b/merged"),
                PathBuf::from("/x\\y\tz"),
            ]
        );
        // a backslash not followed by three octal digits stays as it is
        assert_eq!(unescape("/a\\9b"), PathBuf::from("/a\\9b"));
    }
}
