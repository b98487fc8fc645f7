//! `hoist mount` / `hoist umount`: a container's root file system (its base image's unpacked
//! layers under its upper dir, the overlay its runs see) mounted at `containers/ID/merged`, in
//! the mount namespace of the calling process: the host's for real root, `hoist unshare`'s for
//! everyone else (a rootless hoist's own namespace ends with it, so the mount would too).
//!
//! Whether a container is mounted is read from `/proc/self/mountinfo`, never recorded: a mount
//! ends with its namespace, and a record would outlive it. So a mount made in another
//! `hoist unshare` session is not seen here. It must not decide who may mount (the CLI checks
//! the namespace) nor change the container's record.

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

/// Fails when the container is mounted here: its upper dir must not change under the mount
/// (a run, a copy) nor move away from it (a commit).
pub fn check_unmounted(store: &Store, r: &ContainerRecord) -> Result<(), ContainerError> {
    match mounted_at(store, r) {
        Some(p) => Err(op(
            r,
            format!(
                "it is mounted at `{}`: change it through that path, or `hoist umount {}` first",
                p.display(),
                r.name
            ),
        )),
        None => Ok(()),
    }
}

/// Mounts the container at `containers/ID/merged` (nothing to do when it is mounted already)
/// and returns that path. The caller holds the container's lock.
pub fn mount(store: &Store, r: &ContainerRecord) -> Result<PathBuf, ContainerError> {
    if let Some(p) = mounted_at(store, r) {
        return Ok(p);
    }
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
        )
        .map_err(|e| op(r, format!("mounting at `{}`: {e}", t.display())))?;
    Ok(t)
}

/// Unmounts the container if it is mounted here; returns whether it was. A mount in use (a
/// shell's working directory in it, say) is left and reported.
pub fn unmount(store: &Store, r: &ContainerRecord) -> Result<bool, ContainerError> {
    let Some(p) = mounted_at(store, r) else {
        return Ok(false);
    };
    nix::mount::umount2(Path::new(&p), nix::mount::MntFlags::empty())
        .map_err(|e| op(r, format!("unmounting `{}`: {e}", p.display())))?;
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
