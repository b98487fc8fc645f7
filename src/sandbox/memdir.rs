//! A scratch directory in memory: a `tmpfs` mounted in hoist's own mount namespace.
//!
//! A build writes a layer that no later step reads (the last COPY of the target stage) here
//! rather than on the store's file system: the layer's tar is made from it and its files are
//! never created on disk (on this project's ext4 VM a file creation costs 50 µs to 0.8 ms; in
//! memory a few µs). The dir is unpacked from the blob when something reads it later.
//!
//! Only where this process made its own user and mount namespace (rootless, not inside `hoist
//! unshare`): the mount is seen by nobody else and vanishes with the namespace, even after
//! `kill -9`. Real root shares the host's mount namespace, so it gets no memory dir.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

/// The most memory a scratch dir may take, and the least worth mounting.
const MAX_BYTES: u64 = 256 << 20;
const MIN_BYTES: u64 = 16 << 20;

/// A mounted `tmpfs`, unmounted (and its mount point removed) when dropped.
#[derive(Debug)]
pub struct MemoryDir {
    path: PathBuf,
}

impl MemoryDir {
    /// Mounts a `tmpfs` on the new directory `path` (its parent must exist), sized to a quarter
    /// of the memory this process may still use, at most 256 MiB. `None` where that cannot be
    /// had: no namespace of hoist's own, too little memory, a kernel without `user.*`
    /// attributes on `tmpfs` (owners recorded in single-id mode need them).
    pub fn mount(path: &Path) -> Option<MemoryDir> {
        let own_namespace = matches!(
            super::userns::current(),
            Some(super::UsernsMode::Range { .. } | super::UsernsMode::Single { .. })
        ) && !super::userns::inherited();
        if !own_namespace {
            return None;
        }
        let size = (available_memory()? / 4).min(MAX_BYTES);
        if size < MIN_BYTES {
            return None;
        }
        fs::create_dir(path).ok()?;
        let opts = format!("size={size},mode=0755");
        if let Err(e) = nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        ) {
            log::debug!("no memory dir at `{}`: {e}", path.display());
            let _ = fs::remove_dir(path);
            return None;
        }
        let dir = MemoryDir {
            path: path.to_path_buf(),
        };
        let probe = crate::layer::RECORDED_OWNER_XATTR;
        if xattr::set(path, probe, b"probe").is_err() || xattr::remove(path, probe).is_err() {
            log::debug!("no memory dir: this kernel's tmpfs keeps no user.* attributes");
            return None;
        }
        Some(dir)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for MemoryDir {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.path, MntFlags::MNT_DETACH) {
            log::debug!("unmounting `{}`: {e}", self.path.display());
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// What this process may still allocate: `MemAvailable`, or less where its cgroup (v2) sets a
/// lower limit (a pod's memory limit is not in `/proc/meminfo`).
fn available_memory() -> Option<u64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let mut avail = meminfo.lines().find_map(|l| {
        let kb = l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?;
        kb.trim().parse::<u64>().ok().map(|k| k * 1024)
    })?;
    if let Some(left) = cgroup_headroom() {
        avail = avail.min(left);
    }
    Some(avail)
}

/// `memory.max - memory.current` of this process's cgroup v2; `None` where it has no limit.
fn cgroup_headroom() -> Option<u64> {
    let cg = fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cg.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let max: u64 = fs::read_to_string(dir.join("memory.max"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let current: u64 = fs::read_to_string(dir.join("memory.current"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(max.saturating_sub(current))
}
