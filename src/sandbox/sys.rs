//! The privileged calls the sandbox makes (unshare, mount, pivot_root, umount, map writes), behind
//! one small trait with a real implementation and a recording fake, so the namespace and mount
//! logic has unit tests that assert the exact calls (youki's habit).
//!
//! It must not decide anything: policy lives in `userns.rs` and `mounts.rs`. The new mount API
//! (`fsopen`, `fsconfig`, `fsmount`, `move_mount`, `mount_setattr`, kernel ≥ 5.2/5.12/6.8) is called
//! through raw syscalls because neither `libc` nor `nix` wraps it on every target; the constants
//! follow `include/uapi/linux/mount.h`.

use std::cell::RefCell;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// One privileged call, as the fake records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Unshare(CloneFlags),
    Mount {
        source: Option<PathBuf>,
        target: PathBuf,
        fstype: Option<String>,
        flags: MsFlags,
        data: Option<String>,
    },
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
        volatile: bool,
    },
    SetReadonly(PathBuf),
    SetNodev(PathBuf),
    Write(PathBuf, String),
    PivotRoot(PathBuf),
}

/// The privileged operations of the sandbox.
pub trait Sys {
    /// `unshare(2)`.
    fn unshare(&self, flags: CloneFlags) -> io::Result<()>;
    /// `mount(2)`.
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// An overlay mount through the new mount API (`lowerdir+`, one layer per call, so there is
    /// no limit on the number of layers); `lowers` top first. `volatile`: overlayfs skips every
    /// sync of the upper file system, the one of its unmount too (for an upper dir that is
    /// thrown away or committed by hoist; the work dir cannot be mounted again).
    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
        volatile: bool,
    ) -> io::Result<()>;
    /// Makes the mount at `target` and everything below it read-only (`mount_setattr(2)`).
    fn set_readonly(&self, target: &Path) -> io::Result<()>;
    /// Makes device nodes under the mount at `target` (and every mount below it) unopenable.
    fn set_nodev(&self, target: &Path) -> io::Result<()>;
    /// Writes a whole small file (uid_map, gid_map, setgroups).
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    /// `pivot_root(".", ".")` in `new_root`, then the detached unmount of the old root.
    fn pivot_root(&self, new_root: &Path) -> io::Result<()>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains a NUL byte"))
}

// include/uapi/linux/mount.h
const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `fsconfig(fd, cmd, key, value, 0)`; the kernel's own message (read from the fs context fd)
/// would be nicer, but errno is what every kernel gives.
fn fsconfig(
    fd: &OwnedFd,
    cmd: libc::c_uint,
    key: Option<&str>,
    value: Option<&CString>,
) -> io::Result<()> {
    let key = key.map(cstr).transpose()?;
    // SAFETY: fd is an fs context we own; key and value are NUL-terminated and outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fd.as_raw_fd(),
            cmd,
            key.as_ref().map_or(std::ptr::null(), |k| k.as_ptr()),
            value.map_or(std::ptr::null(), |v| v.as_ptr()),
            0,
        )
    };
    check(rc).map(|_| ())
}

impl RealSys {
    /// `mount_setattr(2)` of `attr` on `target` and every mount below it; on kernels before
    /// 5.12 a bind remount with `legacy` (only `target` itself).
    fn set_attr(&self, target: &Path, attr: u64, legacy: MsFlags) -> io::Result<()> {
        let to = cpath(target)?;
        let attr = MountAttr {
            attr_set: attr,
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: mount_setattr reads `size` bytes of attr, which lives across the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_RECURSIVE as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        // kernels before 5.12: a remount keeps the flags the kernel locked on the mount (nosuid,
        // nodev, noexec in a user namespace), so read them first
        let st = nix::sys::statvfs::statvfs(target).map_err(io::Error::from)?;
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | legacy;
        use nix::sys::statvfs::FsFlags;
        for (f, m) in [
            (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if st.flags().contains(f) {
                flags |= m;
            }
        }
        nix::mount::mount(None::<&Path>, target, None::<&str>, flags, None::<&str>)
            .map_err(io::Error::from)
    }
}

impl Sys for RealSys {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        nix::sched::unshare(flags).map_err(io::Error::from)
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(io::Error::from)
    }

    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
        volatile: bool,
    ) -> io::Result<()> {
        let fstype = cstr("overlay")?;
        // SAFETY: fsopen takes a NUL-terminated name and flags; it returns a new fd or -1.
        let fd =
            check(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })?;
        // SAFETY: the kernel just handed us this descriptor; nobody else owns it.
        let fs = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        for lower in lowers {
            fsconfig(
                &fs,
                FSCONFIG_SET_STRING,
                Some("lowerdir+"),
                Some(&cpath(lower)?),
            )?;
        }
        fsconfig(
            &fs,
            FSCONFIG_SET_STRING,
            Some("upperdir"),
            Some(&cpath(upper)?),
        )?;
        fsconfig(
            &fs,
            FSCONFIG_SET_STRING,
            Some("workdir"),
            Some(&cpath(work)?),
        )?;
        fsconfig(&fs, FSCONFIG_SET_FLAG, Some("userxattr"), None)?;
        if volatile {
            fsconfig(&fs, FSCONFIG_SET_FLAG, Some("volatile"), None)?;
        }
        fsconfig(&fs, FSCONFIG_CMD_CREATE, None, None)?;
        // SAFETY: fsmount on the configured context we own; nodev: a device node made in
        // the container (a step keeps CAP_MKNOD, as in docker) cannot be opened
        let m = check(unsafe {
            libc::syscall(
                libc::SYS_fsmount,
                fs.as_raw_fd(),
                FSMOUNT_CLOEXEC,
                MOUNT_ATTR_NODEV as libc::c_uint,
            )
        })?;
        // SAFETY: as above, a fresh descriptor from the kernel.
        let mnt = unsafe { OwnedFd::from_raw_fd(m as i32) };
        let empty = cstr("")?;
        let to = cpath(target)?;
        // SAFETY: move_mount of our detached mount onto a NUL-terminated target path.
        check(unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt.as_raw_fd(),
                empty.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        })?;
        Ok(())
    }

    fn set_readonly(&self, target: &Path) -> io::Result<()> {
        self.set_attr(target, MOUNT_ATTR_RDONLY, MsFlags::MS_RDONLY)
    }

    fn set_nodev(&self, target: &Path) -> io::Result<()> {
        self.set_attr(target, MOUNT_ATTR_NODEV, MsFlags::MS_NODEV)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        // one write(2): uid_map and gid_map must be written in a single call
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(data.as_bytes())
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        // pivot_root(2), NOTES: "pivot_root(".", ".") ... new_root and put_old may be the same
        // directory ... the old root is stacked on top of the new root at the same mount point,
        // and can be unmounted with umount2(".", MNT_DETACH)". This needs no put_old directory
        // inside the image and leaves nothing of the host behind.
        nix::unistd::chdir(new_root).map_err(io::Error::from)?;
        nix::unistd::pivot_root(".", ".").map_err(io::Error::from)?;
        nix::mount::umount2(".", MntFlags::MNT_DETACH).map_err(io::Error::from)?;
        nix::unistd::chdir("/").map_err(io::Error::from)
    }
}

/// A fake that records every call and succeeds, except for the calls told to fail.
#[derive(Debug, Default)]
pub struct RecordingSys {
    pub calls: RefCell<Vec<Call>>,
    /// Calls for which `fail(call)` is `Some(errno)` fail with that errno.
    pub fail: Option<fn(&Call) -> Option<i32>>,
}

impl RecordingSys {
    fn record(&self, call: Call) -> io::Result<()> {
        let result = match self.fail.and_then(|f| f(&call)) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        };
        self.calls.borrow_mut().push(call);
        result
    }
}

impl Sys for RecordingSys {
    fn unshare(&self, flags: CloneFlags) -> io::Result<()> {
        self.record(Call::Unshare(flags))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.map(Path::to_owned),
            target: target.to_owned(),
            fstype: fstype.map(str::to_owned),
            flags,
            data: data.map(str::to_owned),
        })
    }

    fn mount_overlay(
        &self,
        lowers: &[PathBuf],
        upper: &Path,
        work: &Path,
        target: &Path,
        volatile: bool,
    ) -> io::Result<()> {
        self.record(Call::Overlay {
            lowers: lowers.to_vec(),
            upper: upper.to_owned(),
            work: work.to_owned(),
            target: target.to_owned(),
            volatile,
        })
    }

    fn set_readonly(&self, target: &Path) -> io::Result<()> {
        self.record(Call::SetReadonly(target.to_owned()))
    }

    fn set_nodev(&self, target: &Path) -> io::Result<()> {
        self.record(Call::SetNodev(target.to_owned()))
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        // writes go to the (injected) temp /proc as well, so tests can read them back
        std::fs::write(path, data)?;
        self.record(Call::Write(path.to_owned(), data.to_owned()))
    }

    fn pivot_root(&self, new_root: &Path) -> io::Result<()> {
        self.record(Call::PivotRoot(new_root.to_owned()))
    }
}
