//! Single-id mode's record of `chown`: only uid 0 exists in the user namespace, so a step's
//! `chown app /home/app` cannot change the file's owner. Instead of answering such calls with a
//! silent success (what the fake-id filter does with setuid and friends), the command's seccomp
//! filter hands the chown family to hoist's init (`SECCOMP_RET_USER_NOTIF`), which writes the
//! owner asked for into the file's [`crate::layer::RECORDED_OWNER_XATTR`] attribute and answers
//! success; the layer writer gives the entry that owner in the tar (containers/storage keeps
//! owners it cannot make real the same way, in `user.containers.override_stat`).
//!
//! The init acts on the caller's behalf with the caller's own view: paths are resolved through
//! `/proc/PID/root`, `/proc/PID/cwd` and `/proc/PID/fd/N`, and the request is checked to be still
//! live after the caller's memory was read (`SECCOMP_IOCTL_NOTIF_ID_VALID`), so a reused pid is
//! never answered. What the record cannot hold (the owner of a symbolic link: no user attribute
//! on links) is answered with success, left as it is, and reported by the parent.
//!
//! The setuid family comes here too: it answers success (the process stays uid 0, the only id),
//! and the ids asked for are noted, so that the parent can say once that a step's `su` or
//! `setpriv` ran as root and what it made is root's.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use crate::layer::RECORDED_OWNER_XATTR;

/// What single-id mode could not honour, for the parent to report: the user and group ids (other
/// than 0) that the container's processes switched to (they ran as uid 0 all the same), and the
/// symbolic links given another owner (a link holds no record).
#[derive(Debug, Default)]
pub struct Switches {
    pub ids: std::collections::BTreeSet<String>,
    pub links: std::collections::BTreeSet<String>,
}

/// Answers one pending notification from `listener` (nothing when the caller is gone).
pub fn answer(listener: BorrowedFd<'_>, switches: &mut Switches) {
    // SAFETY: a plain-data struct the kernel fills
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV with a pointer to a properly sized seccomp_notif
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut req,
        )
    } < 0
    {
        return;
    }
    let nr = i64::from(req.data.nr);
    // a switch answers success and is only noted; a chown is carried out as a record
    let error = if crate::sandbox::seccomp::switch_syscalls().contains(&nr) {
        note_switch(nr, &req.data.args, switches);
        0
    } else {
        match record(listener, &req, switches) {
            Ok(()) => 0,
            Err(errno) => -errno,
        }
    };
    let mut resp = libc::seccomp_notif_resp {
        id: req.id,
        val: 0,
        error,
        flags: 0,
    };
    // SAFETY: SEND with a pointer to a seccomp_notif_resp; a caller that died meanwhile makes
    // it fail with ENOENT, which needs nothing
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut resp,
        )
    };
}

/// Notes the ids a setuid-family call asks for (-1 leaves one unchanged; 0 is the id there is).
fn note_switch(nr: i64, args: &[u64; 6], switches: &mut Switches) {
    let (kind, n) = match nr {
        n if n == libc::SYS_setuid => ("uid", 1),
        n if n == libc::SYS_setreuid => ("uid", 2),
        n if n == libc::SYS_setresuid => ("uid", 3),
        n if n == libc::SYS_setgid => ("gid", 1),
        n if n == libc::SYS_setregid => ("gid", 2),
        _ => ("gid", 3),
    };
    for &a in &args[..n] {
        let id = a as u32;
        if id != 0 && id != u32::MAX {
            switches.ids.insert(format!("{kind} {id}"));
        }
    }
}

/// Carries out one chown-family call as a record; `Err(errno)` is what the caller gets.
fn record(
    listener: BorrowedFd<'_>,
    req: &libc::seccomp_notif,
    switches: &mut Switches,
) -> Result<(), i32> {
    let pid = req.pid;
    let a = req.data.args;
    let nr = i64::from(req.data.nr);
    let id = |v: u64| v as u32;
    let (target, follow, uid, gid) = if nr == libc::SYS_fchown {
        (fd_path(pid, a[0] as i32), true, id(a[1]), id(a[2]))
    } else if nr == libc::SYS_fchownat {
        let flags = a[4] as i32;
        let path = read_path(pid, a[1])?;
        let target = if path.is_empty() {
            if flags & libc::AT_EMPTY_PATH == 0 {
                return Err(libc::ENOENT);
            }
            fd_path(pid, a[0] as i32)
        } else {
            resolve(pid, a[0] as i32, &path)
        };
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        (target, follow, id(a[2]), id(a[3]))
    } else {
        #[cfg(target_arch = "x86_64")]
        {
            if nr == libc::SYS_chown || nr == libc::SYS_lchown {
                let path = read_path(pid, a[0])?;
                if path.is_empty() {
                    return Err(libc::ENOENT);
                }
                let target = resolve(pid, libc::AT_FDCWD, &path);
                (target, nr == libc::SYS_chown, id(a[1]), id(a[2]))
            } else {
                return Ok(());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        return Ok(());
    };
    // the caller's memory was read: act only if it is still the caller that asked
    // SAFETY: ID_VALID with a pointer to the request's id
    if unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &req.id,
        )
    } < 0
    {
        return Err(libc::ENOENT);
    }
    let path = Path::new(OsStr::from_bytes(&target));
    let md = if follow {
        fs::metadata(path)
    } else {
        fs::symlink_metadata(path)
    }
    .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
    if md.file_type().is_symlink() {
        // a link cannot carry a user attribute; its owner is left as it is, and said so
        let asked = (uid != u32::MAX && uid != md.uid()) || (gid != u32::MAX && gid != md.gid());
        if asked && switches.links.len() < 8 {
            let shown = target.splitn(4, |&b| b == b'/').nth(3).unwrap_or(&[]);
            let shown = String::from_utf8_lossy(shown);
            // `root/PATH` is the caller's absolute path; `cwd/…` and `fd/N/…` were relative
            let shown = match shown.strip_prefix("root") {
                Some(abs) => abs.to_string(),
                None => format!("`{shown}` of process {}", req.pid),
            };
            switches.links.insert(shown);
        }
        return Ok(());
    }
    let c_target = CString::new(target.clone()).map_err(|_| libc::EINVAL)?;
    let name = CString::new(RECORDED_OWNER_XATTR).expect("constant without NUL");
    let existing = recorded(&c_target, &name, follow);
    let (cur_uid, cur_gid) = existing.unwrap_or((md.uid(), md.gid()));
    let new_uid = if uid == u32::MAX { cur_uid } else { uid };
    let new_gid = if gid == u32::MAX { cur_gid } else { gid };
    let rc = if (new_uid, new_gid) == (md.uid(), md.gid()) {
        // the owner the file system has: no record (and no copy-up for a plain `chown root`)
        if existing.is_none() {
            return Ok(());
        }
        // SAFETY: path and name are NUL-terminated
        unsafe {
            if follow {
                libc::removexattr(c_target.as_ptr(), name.as_ptr())
            } else {
                libc::lremovexattr(c_target.as_ptr(), name.as_ptr())
            }
        }
    } else {
        let value = crate::layer::recorded_owner_value(new_uid, new_gid);
        // SAFETY: path and name are NUL-terminated, value is a valid buffer of its length
        unsafe {
            let (v, n) = (value.as_ptr().cast(), value.len());
            if follow {
                libc::setxattr(c_target.as_ptr(), name.as_ptr(), v, n, 0)
            } else {
                libc::lsetxattr(c_target.as_ptr(), name.as_ptr(), v, n, 0)
            }
        }
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        log::debug!("recording the owner of `{}`: {e}", path.display());
    }
    Ok(())
}

/// The owner recorded on a file, if any.
fn recorded(path: &CString, name: &CString, follow: bool) -> Option<(u32, u32)> {
    let mut buf = [0u8; 64];
    // SAFETY: NUL-terminated path and name, a buffer of the given size
    let n = unsafe {
        if follow {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        } else {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        }
    };
    if n <= 0 {
        return None;
    }
    crate::layer::parse_recorded_owner(&buf[..n as usize])
}

/// The path as the caller sees it: its root, its working directory or one of its descriptors.
fn resolve(pid: u32, dirfd: i32, path: &[u8]) -> Vec<u8> {
    let mut out = if path.starts_with(b"/") {
        format!("/proc/{pid}/root").into_bytes()
    } else if dirfd == libc::AT_FDCWD {
        format!("/proc/{pid}/cwd/").into_bytes()
    } else {
        format!("/proc/{pid}/fd/{dirfd}/").into_bytes()
    };
    out.extend_from_slice(path);
    out
}

/// The file one of the caller's descriptors refers to.
fn fd_path(pid: u32, fd: i32) -> Vec<u8> {
    format!("/proc/{pid}/fd/{fd}").into_bytes()
}

/// A NUL-terminated path from the caller's memory (at most PATH_MAX bytes).
fn read_path(pid: u32, addr: u64) -> Result<Vec<u8>, i32> {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).map_err(|_| libc::ESRCH)?;
    let mut out = Vec::new();
    let mut at = addr;
    while out.len() < libc::PATH_MAX as usize {
        // never across a page boundary in one read: the next page may be unmapped
        let room = 4096 - (at % 4096) as usize;
        let mut buf = vec![0u8; room.min(libc::PATH_MAX as usize - out.len())];
        let n = mem.read_at(&mut buf, at).map_err(|_| libc::EFAULT)?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(end) = buf[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&buf[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        at += n as u64;
    }
    Err(libc::ENAMETOOLONG)
}
