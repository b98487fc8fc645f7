//! The typed description of one container run ([`Spec`]) and the messages the parent and the
//! container's init exchange over their socket (length-prefixed JSON frames).
//!
//! It knows nothing of Dockerfiles or images: the caller (the build engine, `hoist run`) turns
//! those into a spec. It does no I/O beyond reading and writing frames on a given stream.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Network {
    /// The host's network namespace (docker's `--network host`; the default where no
    /// user-mode network helper is installed, see [`super::network::default_network`]).
    #[default]
    Host,
    /// A network namespace of its own with only `lo`, up.
    None,
    /// The private network of the hoist process (see `network.rs`): outbound access through
    /// pasta, no access to the host's loopback.
    Private,
}

/// One extra mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mount {
    /// A bind mount of a host file or directory (`-v`, `RUN --mount=type=bind|cache|secret`).
    Bind {
        source: PathBuf,
        /// Absolute path inside the container.
        destination: String,
        readonly: bool,
    },
    /// A fresh tmpfs (`RUN --mount=type=tmpfs`).
    Tmpfs {
        destination: String,
        /// Size limit in bytes.
        size: Option<u64>,
        /// Mode of its root directory (default 1777).
        mode: Option<u32>,
    },
}

impl Mount {
    /// The path inside the container.
    pub fn destination(&self) -> &str {
        match self {
            Mount::Bind { destination, .. } | Mount::Tmpfs { destination, .. } => destination,
        }
    }
}

/// Everything one run needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// Unpacked layers, bottom → top, as the store returns them.
    pub lower_dirs: Vec<PathBuf>,
    /// The overlay's upper dir: after the run it holds the changes in overlay form (0:0
    /// whiteout char devices, `user.overlay.opaque` dirs). The build keeps it as the layer.
    pub upper_dir: PathBuf,
    /// The overlay's work dir: an empty dir on the same file system as `upper_dir`.
    pub work_dir: PathBuf,
    /// The command; `argv[0]` is looked up in the container's `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// `KEY=VALUE` pairs; `PATH` gets docker's default when missing, `HOME` the user's.
    pub env: Vec<String>,
    /// Working directory inside the container, created when missing.
    pub cwd: String,
    /// `""` (root), a name or uid, optionally `:group` or `:gid`, resolved from the image's
    /// `/etc/passwd` and `/etc/group`.
    pub user: String,
    pub hostname: String,
    pub network: Network,
    pub mounts: Vec<Mount>,
    /// Give the command a pty (the parent's standard input and output are relayed to it).
    pub tty: bool,
    /// Keep standard input open for the command (`-i`); otherwise it reads `/dev/null`.
    pub stdin: bool,
    /// No docker profile (docker's `--security-opt seccomp=unconfined`): namespaces and
    /// mounts are left to the capabilities, so hoist or podman can run inside. The single-id
    /// fake-id rules stay.
    #[serde(default)]
    pub seccomp_unconfined: bool,
    /// `fsync`, `fdatasync`, `sync_file_range`, `syncfs` and `sync` return success and do
    /// nothing (a build step: nothing it writes outlives the build unless hoist commits it,
    /// and hoist syncs what it commits; dpkg's fsync of every file it unpacks doubled a Debian
    /// `apt-get install` on a busy disk).
    #[serde(default)]
    pub discard_sync: bool,
    /// Where the run keeps its private state: the root file system's mount point and the
    /// generated `/etc` files (default: beside `upper_dir`). A build passes a memory dir, where
    /// creating those dozen entries per step costs microseconds instead of a dozen inode
    /// allocations on the store's disk. The copying fallback's copy never goes here.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// The upper dir is thrown away or committed by hoist after the run (a build step), and its
    /// work dir is never mounted again: the overlay is mounted `volatile`. Without it, the
    /// unmount at the end of every step syncs the store's whole file system (overlayfs syncs
    /// the upper file system when its super block shuts down).
    #[serde(default)]
    pub volatile_upper: bool,
}

impl Spec {
    /// A spec with docker's defaults: root, `/`, host network, no extra mounts, no tty.
    pub fn new(
        lower_dirs: Vec<PathBuf>,
        upper_dir: PathBuf,
        work_dir: PathBuf,
        argv: Vec<String>,
    ) -> Spec {
        Spec {
            lower_dirs,
            upper_dir,
            work_dir,
            argv,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: String::new(),
            hostname: String::new(),
            network: Network::Host,
            mounts: Vec::new(),
            tty: false,
            stdin: false,
            seccomp_unconfined: false,
            discard_sync: false,
            state_dir: None,
            volatile_upper: false,
        }
    }
}

/// How the init builds the root file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RootfsPlan {
    /// Overlay of `lowers` (top first) with the spec's upper and work dirs.
    Overlay { lowers: Vec<PathBuf> },
    /// No overlay here: `dir` was filled by copying the layers (changes are not kept).
    Copy { dir: PathBuf },
}

/// Parent → init: everything the init needs, sent once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Start {
    pub spec: Spec,
    /// Where the root file system is mounted before `pivot_root` (an empty dir of the run's
    /// private temp dir).
    pub rootfs: PathBuf,
    pub rootfs_plan: RootfsPlan,
    /// Generated `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` (bind-mounted read-write
    /// from here, never written into the layer).
    pub etc_files: Vec<(String, PathBuf)>,
    /// Answer chown/setuid family calls with success (single-id mode).
    pub fake_id_calls: bool,
    /// Copy the layers even where overlay works (`HOIST_SANDBOX_COPY=1`, to exercise the
    /// fallback).
    pub force_copy: bool,
    /// Where the copying fallback copies the layers (on the upper dir's file system; made
    /// only when the fallback runs).
    pub copy_dir: PathBuf,
}

/// Init → parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromInit {
    /// The command runs, with this pid in the container.
    Started { pid: i32 },
    /// Setting the container up failed.
    SetupFailed { message: String },
    /// The command ended with `code` (128+n for signal n) and every other process of the
    /// container is gone; only the init's own exit (namespace teardown) is left.
    Exited {
        code: i32,
        /// Single-id mode: the user and group ids other than 0 that the container's processes
        /// asked to switch to (`su`, `setpriv`, a package manager's sandbox): they ran as uid 0.
        #[serde(default)]
        switched: Vec<String>,
        /// Single-id mode: symbolic links a process gave another owner, which cannot be
        /// recorded (a few at most).
        #[serde(default)]
        unrecorded_links: Vec<String>,
    },
    /// The command could not be started; `code` is docker's (127 not found, 126 not executable).
    ExecFailed { message: String, code: i32 },
}

/// Writes one frame: a 4-byte little-endian length, then JSON.
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> io::Result<()> {
    let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
    let len = u32::try_from(data.len()).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(data.len() + 4);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&data);
    w.write_all(&buf)
}

/// Reads one frame; `None` at a clean end of stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > 64 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &FromInit::Started { pid: 2 }).unwrap();
        write_frame(
            &mut buf,
            &FromInit::ExecFailed {
                message: "exec: \"x\": not found".into(),
                code: 127,
            },
        )
        .unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame::<FromInit>(&mut r).unwrap(),
            Some(FromInit::Started { pid: 2 })
        );
        assert!(matches!(
            read_frame::<FromInit>(&mut r).unwrap(),
            Some(FromInit::ExecFailed { code: 127, .. })
        ));
        assert_eq!(read_frame::<FromInit>(&mut r).unwrap(), None);
    }

    #[test]
    fn spec_serialises() {
        let mut s = Spec::new(
            vec!["/l0".into()],
            "/u".into(),
            "/w".into(),
            vec!["true".into()],
        );
        s.mounts.push(Mount::Tmpfs {
            destination: "/t".into(),
            size: Some(1 << 20),
            mode: None,
        });
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Spec>(&j).unwrap(), s);
    }
}
