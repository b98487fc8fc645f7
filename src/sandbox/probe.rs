//! The checks behind `hoist info`: whether builds can run on this machine, which fallback each
//! reduced capability costs, and the exact fix. Each check is a [`Finding`]: the user namespace
//! (disabled by sysctl, refused by a seccomp filter, restricted by AppArmor; single-id mode when
//! `newuidmap` or a subordinate range is missing), the per-run namespaces, a new `/proc` (masked
//! paths → the host's `/proc` is bound), and overlay on the store's file system (→ the layers
//! are copied).
//!
//! Trials run in short-lived forked children (single-threaded callers only); nothing here
//! touches the store beyond an empty scratch dir the caller hands in, and nothing is entered in
//! the calling process.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use super::sys::{RealSys, Sys};
use super::userns::{self, Host, Reduced, UsernsMode};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Works as designed.
    Ok,
    /// Works through a named fallback, with the cost the message says.
    Fallback,
    /// Builds cannot run here until the fix is applied.
    CannotBuild,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Fallback => "fallback",
            Status::CannotBuild => "cannot build",
        }
    }
}

/// One check of `hoist info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `userns`, `namespaces`, `proc` or `overlay`.
    pub check: String,
    pub status: Status,
    pub message: String,
    /// The exact change that lifts the limit, when there is one.
    pub fix: Option<String>,
}

fn finding(check: &str, status: Status, message: String, fix: Option<String>) -> Finding {
    Finding {
        check: check.to_string(),
        status,
        message,
        fix,
    }
}

/// What a single-id user namespace implies for builds.
pub const SINGLE_ID_IMPLIES: &str = "only uid/gid 0 exists inside: a RUN step's chown to other \
     owners is recorded in the layer, not made on disk; setuid/setgid calls answer success and \
     change nothing (reported once); apt runs its downloads as root (`APT::Sandbox::User \
     \"root\"` through `APT_CONFIG`, not in the image); and a non-root USER runs as uid 0 without \
     capabilities (what its RUN steps make is recorded as the user's)";

/// The exact fix for a reduced or unavailable user namespace.
pub fn fix_for(reason: &Reduced, host: &Host) -> Option<String> {
    let user = host.user.clone().unwrap_or_else(|| host.euid.to_string());
    Some(match reason {
        Reduced::NoSubidRange { .. } => format!(
            "as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}` \
             (or add `{user}:100000:65536` to /etc/subuid and /etc/subgid)"
        ),
        Reduced::NoNewuidmap { .. } => "install the id mapping helpers: `apt-get install uidmap` \
             (Debian, Ubuntu), `dnf install shadow-utils` (Fedora), `apk add shadow-uidmap` \
             (Alpine)"
            .to_string(),
        Reduced::NewuidmapFailed { .. } => "`newuidmap`/`newgidmap` must be setuid root or carry \
             file capabilities (`chmod u+s /usr/bin/newuidmap /usr/bin/newgidmap`, or \
             `setcap cap_setuid+ep /usr/bin/newuidmap` and `setcap cap_setgid+ep \
             /usr/bin/newgidmap`), and the ranges must not overlap the user's own id"
            .to_string(),
        Reduced::Sysctl { name, .. } if name == "user.max_user_namespaces" => {
            "as root on the host: `sysctl -w user.max_user_namespaces=28633` (keep it with \
             `echo user.max_user_namespaces=28633 > /etc/sysctl.d/99-hoist.conf`); inside a \
             container the limit is set by whoever made its user namespace"
                .to_string()
        }
        Reduced::Sysctl { name, .. } => format!(
            "as root: `sysctl -w {name}=1` (keep it with `echo {name}=1 > \
             /etc/sysctl.d/99-hoist.conf`)"
        ),
        Reduced::AppArmor => "load the AppArmor profile shipped with hoist, which allows it user \
             namespaces: `sudo install -m 644 contrib/apparmor/hoist /etc/apparmor.d/hoist && \
             sudo apparmor_parser -r /etc/apparmor.d/hoist` (it covers /usr/local/bin/hoist and \
             ~/.cargo/bin/hoist; edit its path for another place), or lift the restriction for \
             everything: `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
            .to_string(),
        Reduced::Seccomp => "run the container with a seccomp profile that allows `unshare` and \
             `clone` with namespace flags: `--security-opt seccomp=unconfined` (docker, podman, \
             `hoist run`), or in Kubernetes `securityContext.seccompProfile.type: Unconfined`"
            .to_string(),
        Reduced::Unshare { .. } | Reduced::Probe { .. } => return None,
    })
}

/// The user namespace check from the mode `userns::probe` found.
pub fn userns_finding(mode: &UsernsMode, host: &Host) -> Finding {
    match mode {
        UsernsMode::Root => finding(
            "userns",
            Status::Ok,
            "not needed: running as root with CAP_SYS_ADMIN".into(),
            None,
        ),
        UsernsMode::Range { .. } => finding("userns", Status::Ok, mode.to_string(), None),
        UsernsMode::Single { uid, reason, .. } => finding(
            "userns",
            Status::Fallback,
            format!("single-id mode (0 → {uid}) because {reason}: {SINGLE_ID_IMPLIES}"),
            fix_for(reason, host),
        ),
        UsernsMode::Unavailable { reason } => finding(
            "userns",
            Status::CannotBuild,
            format!("no user namespace: {reason}"),
            fix_for(reason, host),
        ),
    }
}

/// What the trial of a container's namespaces found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxTrial {
    /// unshare of the per-run mount, pid, uts and ipc namespaces: the error, if refused.
    pub namespaces: Option<String>,
    /// Whether a seccomp filter is on this process (to name it when the namespaces fail).
    pub seccomp: bool,
    /// The mount of a new proc in the new pid namespace: the error, if refused.
    pub proc: Option<String>,
    /// sethostname in the new uts namespace: the error, if refused.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// Tries what a RUN step's container needs, in a forked child: hoist's user namespace (as
/// `userns::enter` would make it, when not root), then new mount, pid, uts and ipc namespaces,
/// then, as pid 1 of the new pid namespace, a new proc mounted at `scratch/proc`.
pub fn try_sandbox(scratch: &Path) -> SandboxTrial {
    let failed = |message: String| SandboxTrial {
        namespaces: Some(message),
        seccomp: false,
        proc: None,
        hostname: None,
    };
    let target = scratch.join("proc");
    if let Err(e) = std::fs::create_dir_all(&target) {
        return failed(format!("creating `{}`: {e}", target.display()));
    }
    // the child makes syscalls, forks once more and reports
    userns::in_child("trial", || sandbox_child(&target), failed)
}

fn sandbox_child(target: &Path) -> SandboxTrial {
    let host = Host::current();
    let seccomp = host.seccomp_filtered();
    let refused = |message: String| SandboxTrial {
        namespaces: Some(message),
        seccomp,
        proc: None,
        hostname: None,
    };
    if !host.is_root() {
        match userns::enter_with(&RealSys, &host) {
            Ok(UsernsMode::Unavailable { reason }) => {
                return refused(format!("no user namespace: {reason}"))
            }
            Ok(_) => {}
            Err(e) => return refused(e.to_string()),
        }
    }
    let sys = RealSys;
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if let Err(e) = sys.unshare(flags) {
        return refused(format!(
            "unshare of the mount, pid, uts and ipc namespaces: {e}"
        ));
    }
    let hostname = nix::unistd::sethostname("hoist-info")
        .err()
        .map(|e| std::io::Error::from(e).to_string());
    if let Err(e) = sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    ) {
        return refused(format!("making mounts private: {e}"));
    }
    // SAFETY: this child is single-threaded; the grandchild only mounts and exits
    let proc = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let code = match sys.mount(
                Some(Path::new("proc")),
                target,
                Some("proc"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                None,
            ) {
                Ok(()) => 0,
                Err(e) => e.raw_os_error().unwrap_or(libc::EPERM).clamp(1, 255),
            };
            // SAFETY: leave the forked grandchild without running destructors
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None)
        {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => None,
            Ok(nix::sys::wait::WaitStatus::Exited(_, errno)) => {
                Some(std::io::Error::from_raw_os_error(errno).to_string())
            }
            other => Some(format!("trial ended with {other:?}")),
        },
        Err(e) => Some(format!("fork: {e}")),
    };
    SandboxTrial {
        namespaces: None,
        seccomp,
        proc,
        hostname,
    }
}

/// Mount points below `/proc` in `mountinfo` text (a container runtime's masks).
pub fn masked_proc_paths(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with("/proc/"))
        .map(str::to_string)
        .collect()
}

/// The namespace and `/proc` checks from a trial (no namespace check when the user namespace
/// already failed: that finding says why).
pub fn sandbox_findings(trial: &SandboxTrial, mode: &UsernsMode) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(e) = &trial.namespaces {
        if matches!(mode, UsernsMode::Unavailable { .. }) {
            return out;
        }
        let fix = trial
            .seccomp
            .then(|| fix_for(&Reduced::Seccomp, &Host::current()).unwrap_or_default());
        let why = if trial.seccomp {
            " (a seccomp filter is on this process)"
        } else {
            ""
        };
        out.push(finding(
            "namespaces",
            Status::CannotBuild,
            format!("a container cannot be made: {e}{why}"),
            fix,
        ));
        return out;
    }
    out.push(match &trial.hostname {
        None => finding(
            "namespaces",
            Status::Ok,
            "new mount, pid, uts and ipc namespaces per run".into(),
            None,
        ),
        Some(e) => finding(
            "namespaces",
            Status::Fallback,
            format!(
                "new mount, pid, uts and ipc namespaces per run, but the hostname cannot be set \
                 ({e}{}): containers keep this hostname in uname(2) (`/etc/hostname` still has \
                 theirs)",
                if trial.seccomp {
                    "; a seccomp filter is on this process"
                } else {
                    ""
                }
            ),
            Some(
                "podman's default seccomp profile allows sethostname only with CAP_SYS_ADMIN: \
                 `--security-opt seccomp=unconfined` or `--cap-add SYS_ADMIN` on the outer \
                 container lifts it"
                    .into(),
            ),
        ),
    });
    out.push(match &trial.proc {
        None => finding(
            "proc",
            Status::Ok,
            "a new /proc is mounted in each container".into(),
            None,
        ),
        Some(e) => {
            let masked = masked_proc_paths(
                &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
            );
            let masks = if masked.is_empty() {
                String::new()
            } else {
                format!(
                    "; /proc has masked paths ({}), and in a user namespace a new proc may not \
                     reveal them",
                    masked.join(", ")
                )
            };
            finding(
                "proc",
                Status::Fallback,
                format!(
                    "cannot mount a new /proc ({e}{masks}): the bind-/proc fallback binds this \
                     /proc into each container (its processes are visible there)"
                ),
                Some(
                    "run the container with an unmasked /proc: `--security-opt \
                     systempaths=unconfined` (docker), `--security-opt unmask=ALL` (podman), \
                     or in Kubernetes `securityContext.procMount: Unmasked` (with \
                     `hostUsers: false`)"
                        .into(),
                ),
            )
        }
    });
    out
}

/// Where `hoist info` tries overlay: the store's `tmp/` when the store exists, else the nearest
/// existing parent of the store (the file system the store will be made on).
pub fn scratch_parent(root: &Path) -> PathBuf {
    let tmp = root.join("tmp");
    if tmp.is_dir() {
        return tmp;
    }
    let mut p = root.to_path_buf();
    loop {
        if p.is_dir() {
            return p;
        }
        if !p.pop() {
            return std::env::temp_dir();
        }
    }
}

/// The overlay check from `userns::probe_overlay` over a scratch dir in `at`.
pub fn overlay_finding(result: &Result<bool, String>, at: &Path) -> Finding {
    match result {
        Ok(true) => finding(
            "overlay",
            Status::Ok,
            "the store's file system hosts overlay (new mount API, one `lowerdir+` per layer, \
             userxattr)"
                .into(),
            None,
        ),
        Ok(false) => finding(
            "overlay",
            Status::Ok,
            "the store's file system hosts overlay (legacy mount options over short symlinked \
             paths, userxattr)"
                .into(),
            None,
        ),
        Err(e) => {
            let on_overlay = nix::sys::statfs::statfs(at)
                .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC);
            let fs = if on_overlay {
                " (the store is on overlayfs, which overlay cannot use as an upper dir)"
            } else {
                ""
            };
            finding(
                "overlay",
                Status::Fallback,
                format!(
                    "overlay cannot be mounted over `{}`: {e}{fs}; the copying fallback copies \
                     the layers into each container instead (slower, more disk)",
                    at.display()
                ),
                Some(
                    "put the store on a file system overlay can write to (ext4, xfs, btrfs, \
                     tmpfs): `--root DIR` or `HOIST_ROOT=DIR`; in a container, a volume \
                     (`-v hoist-store:/store`, a Kubernetes emptyDir) mounted there"
                        .into(),
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_paths_are_mounts_below_proc() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    23 22 0:5 /null /proc/kcore rw - devtmpfs udev rw\n\
                    24 22 0:30 / /proc/acpi ro - tmpfs tmpfs ro\n\
                    25 1 0:31 / /processes rw - tmpfs t rw\n";
        assert_eq!(masked_proc_paths(text), ["/proc/kcore", "/proc/acpi"]);
    }

    #[test]
    fn scratch_parent_is_the_nearest_existing_dir() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a/b/store");
        assert_eq!(scratch_parent(&root), d.path());
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        assert_eq!(scratch_parent(&root), root.join("tmp"));
    }

    #[test]
    fn each_unavailable_reason_has_its_fix() {
        let d = tempfile::tempdir().unwrap();
        let host = Host {
            proc: d.path().into(),
            subuid: d.path().join("subuid"),
            subgid: d.path().join("subgid"),
            newuidmap: None,
            newgidmap: None,
            euid: 1000,
            egid: 1000,
            sys_admin: false,
            user: Some("alice".into()),
        };
        let f = userns_finding(
            &UsernsMode::Unavailable {
                reason: Reduced::Sysctl {
                    name: "kernel.unprivileged_userns_clone".into(),
                    value: "0".into(),
                },
            },
            &host,
        );
        assert_eq!(f.status, Status::CannotBuild);
        assert!(f
            .fix
            .unwrap()
            .starts_with("as root: `sysctl -w kernel.unprivileged_userns_clone=1`"));
        let f = userns_finding(
            &UsernsMode::Single {
                uid: 1000,
                gid: 1000,
                reason: Reduced::NoSubidRange {
                    file: "/etc/subuid".into(),
                    user: "alice".into(),
                },
            },
            &host,
        );
        assert_eq!(f.status, Status::Fallback);
        assert!(f.fix.unwrap().contains("--add-subuids 100000-165535"));
    }
}
