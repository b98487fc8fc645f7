//! Entering hoist's one user namespace (plus a private mount namespace), early in `main` while
//! the process is still single-threaded, so that store, layer and sandbox code runs as "root"
//! over the mapped ids.
//!
//! Modes: real root enters nothing; an ordinary user with a range in `/etc/subuid` and
//! `/etc/subgid` and the `newuidmap`/`newgidmap` helpers gets podman's layout (0 → the user,
//! 1… → the range); without them a single mapping 0 → the user is written directly
//! (`setgroups` denied, as user_namespaces(7) requires). Where user namespaces are disabled
//! (`kernel.unprivileged_userns_clone`, `user.max_user_namespaces`, AppArmor's
//! `kernel.apparmor_restrict_unprivileged_userns`) the mode says so and why.
//!
//! It must not run once threads exist (unshare(2): `CLONE_NEWUSER` fails in a threaded
//! process) and must not touch the store. `/proc` and `/etc/sub[ug]id` paths are injectable and
//! every privileged call goes through [`Sys`], so the logic is unit-tested against temp dirs.

use std::fmt;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use super::sys::{RealSys, Sys};
use super::SandboxError;

/// A range of subordinate ids from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub start: u32,
    pub count: u32,
}

/// Why hoist runs with less than a full id range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reduced {
    /// `/etc/subuid` or `/etc/subgid` gives the user no range.
    NoSubidRange { file: PathBuf, user: String },
    /// `newuidmap` or `newgidmap` is not installed.
    NoNewuidmap { program: String },
    /// `newuidmap`/`newgidmap` ran and failed.
    NewuidmapFailed { message: String },
    /// A sysctl disables unprivileged user namespaces.
    Sysctl { name: String, value: String },
    /// AppArmor denies capabilities in unprivileged user namespaces.
    AppArmor,
    /// A seccomp filter (a container runtime's default profile) refuses `unshare`.
    Seccomp,
    /// unshare(2) failed for another reason.
    Unshare { errno: i32 },
    /// The mode could not be found out (`hoist info`'s trial failed).
    Probe { message: String },
}

impl fmt::Display for Reduced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reduced::NoSubidRange { file, user } => {
                write!(
                    f,
                    "no subordinate id range for user `{user}` in `{}`",
                    file.display()
                )
            }
            Reduced::NoNewuidmap { program } => {
                write!(f, "`{program}` is not installed (Debian package `uidmap`)")
            }
            Reduced::NewuidmapFailed { message } => {
                write!(f, "id mapping helper failed: {message}")
            }
            Reduced::Sysctl { name, value } => write!(
                f,
                "unprivileged user namespaces are disabled by sysctl `{name}` = {value}"
            ),
            Reduced::AppArmor => write!(
                f,
                "AppArmor restricts unprivileged user namespaces \
                 (sysctl `kernel.apparmor_restrict_unprivileged_userns` = 1)"
            ),
            Reduced::Seccomp => write!(
                f,
                "a seccomp filter refuses unshare(CLONE_NEWUSER) (the default profile of \
                 docker, containerd and `hoist run` inside a container)"
            ),
            Reduced::Probe { message } => write!(f, "cannot find out: {message}"),
            Reduced::Unshare { errno } => write!(
                f,
                "cannot create a user namespace: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// How hoist runs on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum UsernsMode {
    /// Started by root: no namespace entered, the full id range is there.
    Root,
    /// 0 → the user, 1… → the subordinate ranges (podman's layout).
    Range {
        uid: u32,
        gid: u32,
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
    },
    /// Only 0 → the user; chown to other ids cannot be represented.
    Single { uid: u32, gid: u32, reason: Reduced },
    /// No user namespace can be had: nothing that needs one can run.
    Unavailable { reason: Reduced },
}

impl UsernsMode {
    /// A short name for `hoist info`: `root`, `rootless`, `rootless-single-id`, `unavailable`.
    pub fn name(&self) -> &'static str {
        match self {
            UsernsMode::Root => "root",
            UsernsMode::Range { .. } => "rootless",
            UsernsMode::Single { .. } => "rootless-single-id",
            UsernsMode::Unavailable { .. } => "unavailable",
        }
    }

    /// Why the mode is reduced, if it is.
    pub fn reason(&self) -> Option<&Reduced> {
        match self {
            UsernsMode::Single { reason, .. } | UsernsMode::Unavailable { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether chown to ids other than 0 is impossible (so the sandbox fakes those calls).
    pub fn single_id(&self) -> bool {
        matches!(self, UsernsMode::Single { .. })
    }
}

impl fmt::Display for UsernsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernsMode::Root => write!(f, "root (no user namespace needed)"),
            UsernsMode::Range {
                uid, uids, gids, ..
            } => {
                let n: u64 = uids.iter().map(|r| u64::from(r.count)).sum();
                let g: u64 = gids.iter().map(|r| u64::from(r.count)).sum();
                write!(
                    f,
                    "rootless: 0 → {uid}, 1… → {n} subordinate uids and {g} gids"
                )
            }
            UsernsMode::Single { uid, reason, .. } => write!(
                f,
                "rootless with a single id (0 → {uid}): {reason}; RUN steps get \
                 `APT::Sandbox::User \"root\"` through `APT_CONFIG` (not in the image)"
            ),
            UsernsMode::Unavailable { reason } => write!(f, "unavailable: {reason}"),
        }
    }
}

/// Where the facts come from; tests point these at temp dirs.
#[derive(Debug, Clone)]
pub struct Host {
    /// `/proc`
    pub proc: PathBuf,
    /// `/etc/subuid`
    pub subuid: PathBuf,
    /// `/etc/subgid`
    pub subgid: PathBuf,
    /// The helpers, when found.
    pub newuidmap: Option<PathBuf>,
    pub newgidmap: Option<PathBuf>,
    pub euid: u32,
    pub egid: u32,
    /// Whether `CAP_SYS_ADMIN` is in the effective set: uid 0 without it (a container's root)
    /// cannot mount or clone namespaces itself and takes a user namespace like any user.
    pub sys_admin: bool,
    /// The user's name from the host's passwd database, if it has one.
    pub user: Option<String>,
}

impl Host {
    /// This machine, this process.
    pub fn current() -> Host {
        let euid = nix::unistd::geteuid().as_raw();
        let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(euid))
            .ok()
            .flatten()
            .map(|u| u.name);
        Host {
            proc: PathBuf::from("/proc"),
            subuid: PathBuf::from("/etc/subuid"),
            subgid: PathBuf::from("/etc/subgid"),
            newuidmap: find_program("newuidmap"),
            newgidmap: find_program("newgidmap"),
            euid,
            egid: nix::unistd::getegid().as_raw(),
            sys_admin: has_sys_admin(),
            user,
        }
    }

    /// Real root: uid 0 with `CAP_SYS_ADMIN`, so no user namespace is needed.
    pub fn is_root(&self) -> bool {
        self.euid == 0 && self.sys_admin
    }

    fn sysctl(&self, name: &str) -> Option<String> {
        let p = self.proc.join("sys").join(name.replace('.', "/"));
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// The sysctl that disables user namespaces, if one does.
    pub fn disabled_by_sysctl(&self) -> Option<Reduced> {
        for name in [
            "user.max_user_namespaces",
            "kernel.unprivileged_userns_clone",
        ] {
            if let Some(v) = self.sysctl(name) {
                if v == "0" {
                    return Some(Reduced::Sysctl {
                        name: name.to_string(),
                        value: v,
                    });
                }
            }
        }
        None
    }

    /// Whether AppArmor's restriction on unprivileged user namespaces is on.
    pub fn apparmor_restricts(&self) -> bool {
        self.sysctl("kernel.apparmor_restrict_unprivileged_userns")
            .is_some_and(|v| v == "1")
    }

    /// Whether a seccomp filter is on this process (`Seccomp: 2` in `/proc/self/status`).
    pub fn seccomp_filtered(&self) -> bool {
        std::fs::read_to_string(self.proc.join("self/status"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.strip_prefix("Seccomp:").is_some_and(|v| v.trim() == "2"))
    }

    /// The user's subordinate ranges in `file` (matched by name or by uid).
    pub fn ranges(&self, file: &Path) -> Vec<IdRange> {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        parse_subid(&text, self.user.as_deref(), self.euid)
    }
}

/// Whether this process has `CAP_SYS_ADMIN` in its effective set (false when it cannot be read).
fn has_sys_admin() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}

/// Finds a program on `PATH`, then in `/usr/bin` and `/usr/sbin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Parses `/etc/subuid` text (`name-or-uid:start:count` per line) for one user.
pub fn parse_subid(text: &str, user: Option<&str>, uid: u32) -> Vec<IdRange> {
    let uid_s = uid.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut parts = line.split(':');
            let who = parts.next()?;
            let start = parts.next()?.trim().parse().ok()?;
            let count = parts.next()?.trim().parse().ok()?;
            let matches = who == uid_s || user.is_some_and(|u| u == who);
            (matches && count > 0).then_some(IdRange { start, count })
        })
        .collect()
}

/// The mode `enter` would choose, before anything is tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Root,
    Unavailable(Reduced),
    Range {
        uids: Vec<IdRange>,
        gids: Vec<IdRange>,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
    Single(Reduced),
}

/// Decides the mode from the host's facts (pure apart from reading the injected files).
pub fn plan(host: &Host) -> Plan {
    if host.is_root() {
        return Plan::Root;
    }
    if let Some(r) = host.disabled_by_sysctl() {
        return Plan::Unavailable(r);
    }
    let user = host.user.clone().unwrap_or_else(|| host.euid.to_string());
    let uids = host.ranges(&host.subuid);
    if uids.is_empty() {
        return Plan::Single(Reduced::NoSubidRange {
            file: host.subuid.clone(),
            user,
        });
    }
    let gids = host.ranges(&host.subgid);
    if gids.is_empty() {
        return Plan::Single(Reduced::NoSubidRange {
            file: host.subgid.clone(),
            user,
        });
    }
    let (Some(newuidmap), Some(newgidmap)) = (host.newuidmap.clone(), host.newgidmap.clone())
    else {
        let program = if host.newuidmap.is_none() {
            "newuidmap"
        } else {
            "newgidmap"
        };
        return Plan::Single(Reduced::NoNewuidmap {
            program: program.to_string(),
        });
    };
    Plan::Range {
        uids,
        gids,
        newuidmap,
        newgidmap,
    }
}

/// The arguments of `newuidmap PID …` for podman's layout: 0 → id, 1… → the ranges.
pub fn helper_args(id: u32, ranges: &[IdRange]) -> Vec<String> {
    let mut args = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut inside: u64 = 1;
    for r in ranges {
        args.extend([inside.to_string(), r.start.to_string(), r.count.to_string()]);
        inside += u64::from(r.count);
    }
    args
}

/// Writes the single mapping 0 → uid/gid for the current process (`setgroups` denied first, as
/// user_namespaces(7) requires of an unprivileged gid_map writer).
pub fn write_single_map(sys: &dyn Sys, proc: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let me = proc.join("self");
    sys.write(&me.join("setgroups"), "deny")?;
    sys.write(&me.join("uid_map"), &format!("0 {uid} 1\n"))?;
    sys.write(&me.join("gid_map"), &format!("0 {gid} 1\n"))
}

static MODE: OnceLock<UsernsMode> = OnceLock::new();
static INHERITED: OnceLock<bool> = OnceLock::new();

/// The variable `hoist unshare` sets for its command: the mode (as JSON) of the namespace it
/// entered, so a hoist started inside takes that namespace as its own instead of making another
/// (buildah's `_CONTAINERS_USERNS_CONFIGURED`).
pub const UNSHARED_ENV: &str = "HOIST_UNSHARED";

/// The mode `enter` chose in this process, if it ran.
pub fn current() -> Option<&'static UsernsMode> {
    MODE.get()
}

/// Whether `enter` found itself inside `hoist unshare`'s namespace (rather than making one
/// that ends with this process).
pub fn inherited() -> bool {
    INHERITED.get().copied().unwrap_or(false)
}

/// The mode `hoist unshare` left in [`UNSHARED_ENV`], if this process really is uid 0 in that
/// user namespace: the variable is only trusted when the first line of `uid_map` maps 0 to the
/// mode's user (a stale or forged value outside is ignored).
pub fn inherited_mode(value: Option<&str>, euid: u32, uid_map: &str) -> Option<UsernsMode> {
    let mode: UsernsMode = serde_json::from_str(value?).ok()?;
    let uid = match &mode {
        UsernsMode::Range { uid, .. } | UsernsMode::Single { uid, .. } => *uid,
        UsernsMode::Root | UsernsMode::Unavailable { .. } => return None,
    };
    let first: Vec<u32> = uid_map
        .lines()
        .next()?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    (euid == 0 && first.first() == Some(&0) && first.get(1) == Some(&uid)).then_some(mode)
}

/// The mode of the `hoist unshare` namespace this process is in, if it is in one.
fn from_unshare() -> Option<UsernsMode> {
    inherited_mode(
        std::env::var(UNSHARED_ENV).ok().as_deref(),
        nix::unistd::geteuid().as_raw(),
        &std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default(),
    )
}

/// Enters hoist's user namespace on this machine (see the module docs). Call once, early in
/// `main`, while single-threaded; later calls return the first answer.
pub fn enter() -> Result<UsernsMode, SandboxError> {
    if let Some(m) = MODE.get() {
        return Ok(m.clone());
    }
    if let Some(mode) = from_unshare() {
        log::debug!("user namespace: inside `hoist unshare` ({mode})");
        let _ = INHERITED.set(true);
        let _ = MODE.set(mode.clone());
        return Ok(mode);
    }
    let host = Host::current();
    let mode = if host.is_root() {
        UsernsMode::Root
    } else {
        enter_with(&RealSys, &host)?
    };
    match &mode {
        UsernsMode::Root => log::debug!("user namespace: none entered, running as root"),
        m => log::debug!("user namespace: {m}"),
    }
    let _ = MODE.set(mode.clone());
    Ok(mode)
}

/// `enter` with the privileged calls and the host's facts supplied.
pub fn enter_with(sys: &dyn Sys, host: &Host) -> Result<UsernsMode, SandboxError> {
    match plan(host) {
        Plan::Root => Ok(UsernsMode::Root),
        Plan::Unavailable(reason) => Ok(UsernsMode::Unavailable { reason }),
        Plan::Single(reason) => enter_single(sys, host, reason),
        Plan::Range {
            uids,
            gids,
            newuidmap,
            newgidmap,
        } => enter_range(sys, host, uids, gids, &newuidmap, &newgidmap),
    }
}

fn unshare_or_reason(sys: &dyn Sys, host: &Host) -> Result<(), Reduced> {
    match sys.unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS) {
        Ok(()) => Ok(()),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EPERM);
            Err(if errno == libc::EPERM && host.seccomp_filtered() {
                Reduced::Seccomp
            } else if host.apparmor_restricts() {
                Reduced::AppArmor
            } else {
                host.disabled_by_sysctl()
                    .unwrap_or(Reduced::Unshare { errno })
            })
        }
    }
}

/// Makes every mount of the new namespace private, so nothing hoist mounts reaches the host.
fn make_private(sys: &dyn Sys, host: &Host) -> Result<(), Reduced> {
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|e| {
        if host.apparmor_restricts() {
            Reduced::AppArmor
        } else {
            Reduced::Unshare {
                errno: e.raw_os_error().unwrap_or(libc::EPERM),
            }
        }
    })
}

fn enter_single(sys: &dyn Sys, host: &Host, reason: Reduced) -> Result<UsernsMode, SandboxError> {
    if let Err(reason) = unshare_or_reason(sys, host) {
        return Ok(UsernsMode::Unavailable { reason });
    }
    finish_single(sys, host, reason)
}

fn finish_single(sys: &dyn Sys, host: &Host, reason: Reduced) -> Result<UsernsMode, SandboxError> {
    write_single_map(sys, &host.proc, host.euid, host.egid).map_err(|e| SandboxError::Io {
        what: format!(
            "writing the id map `{}`",
            host.proc.join("self/uid_map").display()
        ),
        source: e,
    })?;
    if let Err(reason) = make_private(sys, host) {
        return Ok(UsernsMode::Unavailable { reason });
    }
    Ok(UsernsMode::Single {
        uid: host.euid,
        gid: host.egid,
        reason,
    })
}

fn enter_range(
    sys: &dyn Sys,
    host: &Host,
    uids: Vec<IdRange>,
    gids: Vec<IdRange>,
    newuidmap: &Path,
    newgidmap: &Path,
) -> Result<UsernsMode, SandboxError> {
    let helper = MapHelper::spawn(
        newuidmap,
        newgidmap,
        helper_args(host.euid, &uids),
        helper_args(host.egid, &gids),
    )?;
    if let Err(reason) = unshare_or_reason(sys, host) {
        drop(helper);
        return Ok(UsernsMode::Unavailable { reason });
    }
    match helper.map() {
        Ok(()) => {
            if let Err(reason) = make_private(sys, host) {
                return Ok(UsernsMode::Unavailable { reason });
            }
            Ok(UsernsMode::Range {
                uid: host.euid,
                gid: host.egid,
                uids,
                gids,
            })
        }
        Err(message) => {
            log::debug!("newuidmap failed, falling back to a single id: {message}");
            finish_single(sys, host, Reduced::NewuidmapFailed { message })
        }
    }
}

/// A child forked before `unshare` that runs `newuidmap`/`newgidmap` on its parent once told
/// (the parent cannot run them itself: from inside the new namespace they would not see it
/// from outside).
struct MapHelper {
    pid: nix::unistd::Pid,
    go: Option<std::fs::File>,
    result: std::fs::File,
}

impl MapHelper {
    fn spawn(
        newuidmap: &Path,
        newgidmap: &Path,
        uid_args: Vec<String>,
        gid_args: Vec<String>,
    ) -> Result<MapHelper, SandboxError> {
        let io = |what: &str| {
            let what = what.to_string();
            move |e: nix::Error| SandboxError::Io {
                what,
                source: e.into(),
            }
        };
        let target = nix::unistd::getpid();
        let (go_r, go_w) = nix::unistd::pipe().map_err(io("creating a pipe"))?;
        let (res_r, res_w) = nix::unistd::pipe().map_err(io("creating a pipe"))?;
        // SAFETY: called while the process is single-threaded (the contract of `enter`); the
        // child only reads a pipe, runs two programs and exits.
        match unsafe { nix::unistd::fork() }.map_err(io("forking the id mapping helper"))? {
            nix::unistd::ForkResult::Child => {
                drop(go_w);
                drop(res_r);
                let mut go = std::fs::File::from(go_r);
                let mut res = std::fs::File::from(res_w);
                let mut b = [0u8; 1];
                let code = match go.read(&mut b) {
                    Ok(1) => {
                        let mut msg = String::new();
                        for (prog, args) in [(newuidmap, &uid_args), (newgidmap, &gid_args)] {
                            let out = std::process::Command::new(prog)
                                .arg(target.to_string())
                                .args(args)
                                .stdin(std::process::Stdio::null())
                                .output();
                            match out {
                                Ok(o) if o.status.success() => {}
                                Ok(o) => {
                                    msg = format!(
                                        "`{} {} {}`: {}",
                                        prog.display(),
                                        target,
                                        args.join(" "),
                                        String::from_utf8_lossy(&o.stderr).trim()
                                    );
                                    break;
                                }
                                Err(e) => {
                                    msg = format!("cannot run `{}`: {e}", prog.display());
                                    break;
                                }
                            }
                        }
                        let _ = res.write_all(msg.as_bytes());
                        i32::from(!msg.is_empty())
                    }
                    _ => 0,
                };
                // SAFETY: leave without running the parent's destructors or atexit handlers
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(go_r);
                drop(res_w);
                Ok(MapHelper {
                    pid: child,
                    go: Some(std::fs::File::from(go_w)),
                    result: std::fs::File::from(res_r),
                })
            }
        }
    }

    /// Tells the helper to map us and waits for its answer.
    fn map(mut self) -> Result<(), String> {
        let Some(mut go) = self.go.take() else {
            return Err("helper already used".to_string());
        };
        go.write_all(b"1")
            .map_err(|e| format!("cannot reach the helper: {e}"))?;
        drop(go);
        let mut msg = String::new();
        let _ = self.result.read_to_string(&mut msg);
        let status = nix::sys::wait::waitpid(self.pid, None);
        self.pid = nix::unistd::Pid::from_raw(0);
        match status {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) if msg.is_empty() => Ok(()),
            _ if !msg.is_empty() => Err(msg),
            other => Err(format!("helper ended with {other:?}")),
        }
    }
}

impl Drop for MapHelper {
    fn drop(&mut self) {
        // closing the go pipe without a byte makes the helper exit at once
        self.go.take();
        if self.pid.as_raw() > 0 {
            let _ = nix::sys::wait::waitpid(self.pid, None);
        }
        let _ = self.result.as_raw_fd();
    }
}

/// What `enter` would do here, found without entering anything: `enter`'s own code runs in a
/// short-lived child, which reports the mode it reached (for `hoist info`; single-threaded
/// callers only).
pub fn probe() -> UsernsMode {
    if let Some(mode) = from_unshare() {
        return mode;
    }
    let host = Host::current();
    if host.is_root() {
        return UsernsMode::Root;
    }
    let failed = |message: String| UsernsMode::Unavailable {
        reason: Reduced::Probe { message },
    };
    // the child runs `enter`'s code, which may fork its own helper
    in_child(
        "probe",
        || match enter_with(&RealSys, &host) {
            Ok(m) => m,
            Err(e) => UsernsMode::Unavailable {
                reason: Reduced::Probe {
                    message: e.to_string(),
                },
            },
        },
        failed,
    )
}

/// Runs `trial` in a forked child and returns what it reports back through a pipe (as JSON);
/// `failed` makes the answer when the pipe, the fork or the report (`what: …`) fails. For
/// single-threaded callers only: the probes of `hoist info`.
pub(super) fn in_child<T: Serialize + serde::de::DeserializeOwned>(
    what: &str,
    trial: impl FnOnce() -> T,
    failed: impl Fn(String) -> T,
) -> T {
    let Ok((r, w)) = nix::unistd::pipe() else {
        return failed("pipe".into());
    };
    // SAFETY: single-threaded caller; the child runs `trial`, writes one line and exits
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            drop(r);
            let report = trial();
            let mut f = std::fs::File::from(w);
            let _ = f.write_all(&serde_json::to_vec(&report).unwrap_or_default());
            drop(f);
            // SAFETY: leave the forked child without running destructors
            unsafe { libc::_exit(0) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(w);
            let mut text = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut text);
            let _ = nix::sys::wait::waitpid(child, None);
            serde_json::from_str(&text).unwrap_or_else(|e| failed(format!("{what}: {e}")))
        }
        Err(e) => failed(format!("fork: {e}")),
    }
}

/// Whether overlay mounts work here the way the sandbox mounts them (in hoist's kind of user
/// namespace, with `userxattr`), tried in a short-lived child over empty dirs in `scratch`:
/// `Ok(true)` through the new mount API (`lowerdir+`), `Ok(false)` only through the legacy
/// option string, `Err(why)` not at all. For `hoist info`; single-threaded callers only.
pub fn probe_overlay(scratch: &Path) -> Result<bool, String> {
    let dirs: Vec<PathBuf> = ["lower", "upper", "work", "merged"]
        .iter()
        .map(|d| scratch.join(d))
        .collect();
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("creating `{}`: {e}", d.display()))?;
    }
    let host = Host::current();
    // uid 0 without CAP_SYS_ADMIN (a container's root) tries in a user namespace, as it runs
    let root = host.is_root();
    // SAFETY: single-threaded caller; the child only makes syscalls and exits
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let sys = RealSys;
            let entered = if root {
                sys.unshare(CloneFlags::CLONE_NEWNS).is_ok()
            } else {
                unshare_or_reason(&sys, &host).is_ok()
                    && write_single_map(&sys, &host.proc, host.euid, host.egid).is_ok()
            };
            let code = if !entered || make_private(&sys, &host).is_err() {
                3
            } else if sys
                .mount_overlay(&dirs[..1], &dirs[1], &dirs[2], &dirs[3], false)
                .is_ok()
            {
                0
            } else {
                let data = format!(
                    "lowerdir={},upperdir={},workdir={},userxattr",
                    dirs[0].display(),
                    dirs[1].display(),
                    dirs[2].display()
                );
                match sys.mount(
                    Some(Path::new("overlay")),
                    &dirs[3],
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(&data),
                ) {
                    Ok(()) => 1,
                    Err(_) => 2,
                }
            };
            // SAFETY: leave the forked child without running destructors
            unsafe { libc::_exit(code) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None)
        {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(true),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 1)) => Ok(false),
            Ok(nix::sys::wait::WaitStatus::Exited(_, 2)) => {
                Err("the kernel refused an overlay mount with `userxattr`".to_string())
            }
            Ok(nix::sys::wait::WaitStatus::Exited(_, 3)) => {
                Err("no mount namespace could be made to try".to_string())
            }
            other => Err(format!("trial ended with {other:?}")),
        },
        Err(e) => Err(format!("fork: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::sys::{Call, RecordingSys};
    use super::*;

    fn host(dir: &Path, euid: u32) -> Host {
        std::fs::create_dir_all(dir.join("proc/self")).unwrap();
        std::fs::create_dir_all(dir.join("proc/sys/user")).unwrap();
        Host {
            proc: dir.join("proc"),
            subuid: dir.join("subuid"),
            subgid: dir.join("subgid"),
            newuidmap: Some(PathBuf::from("/usr/bin/newuidmap")),
            newgidmap: Some(PathBuf::from("/usr/bin/newgidmap")),
            euid,
            egid: euid,
            sys_admin: euid == 0,
            user: Some("alice".to_string()),
        }
    }

    #[test]
    fn parse_subid_matches_name_or_uid_and_skips_junk() {
        let text = "# comment\nalice:100000:65536\nbob:200000:65536\n1000:300000:10\nbad line\nalice:400000:0\n";
        assert_eq!(
            parse_subid(text, Some("alice"), 1000),
            vec![
                IdRange {
                    start: 100000,
                    count: 65536
                },
                IdRange {
                    start: 300000,
                    count: 10
                }
            ]
        );
        assert!(parse_subid(text, Some("carol"), 1001).is_empty());
    }

    #[test]
    fn helper_args_follow_podman_layout() {
        let r = [
            IdRange {
                start: 100000,
                count: 65536,
            },
            IdRange {
                start: 300000,
                count: 10,
            },
        ];
        assert_eq!(
            helper_args(1000, &r).join(" "),
            "0 1000 1 1 100000 65536 65537 300000 10"
        );
    }

    #[test]
    fn root_enters_nothing() {
        let d = tempfile::tempdir().unwrap();
        let sys = RecordingSys::default();
        let mode = enter_with(&sys, &host(d.path(), 0)).unwrap();
        assert_eq!(mode, UsernsMode::Root);
        assert!(sys.calls.borrow().is_empty());
    }

    #[test]
    fn uid_0_without_cap_sys_admin_takes_a_user_namespace() {
        let d = tempfile::tempdir().unwrap();
        let mut h = host(d.path(), 0);
        h.sys_admin = false;
        h.user = Some("root".into());
        let sys = RecordingSys::default();
        let mode = enter_with(&sys, &h).unwrap();
        assert!(
            matches!(mode, UsernsMode::Single { uid: 0, gid: 0, .. }),
            "{mode:?}"
        );
        assert!(!sys.calls.borrow().is_empty(), "a namespace was entered");
    }

    #[test]
    fn no_subuid_range_writes_single_map_then_makes_mounts_private() {
        let d = tempfile::tempdir().unwrap();
        let h = host(d.path(), 1000);
        std::fs::write(&h.subuid, "bob:100000:65536\n").unwrap();
        let sys = RecordingSys::default();
        let mode = enter_with(&sys, &h).unwrap();
        assert!(matches!(
            mode,
            UsernsMode::Single {
                uid: 1000,
                reason: Reduced::NoSubidRange { .. },
                ..
            }
        ));
        let me = h.proc.join("self");
        assert_eq!(
            *sys.calls.borrow(),
            vec![
                Call::Unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS),
                Call::Write(me.join("setgroups"), "deny".into()),
                Call::Write(me.join("uid_map"), "0 1000 1\n".into()),
                Call::Write(me.join("gid_map"), "0 1000 1\n".into()),
                Call::Mount {
                    source: None,
                    target: "/".into(),
                    fstype: None,
                    flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    data: None,
                },
            ]
        );
        assert_eq!(
            std::fs::read_to_string(me.join("uid_map")).unwrap(),
            "0 1000 1\n"
        );
    }

    #[test]
    fn missing_newuidmap_is_the_reason() {
        let d = tempfile::tempdir().unwrap();
        let mut h = host(d.path(), 1000);
        std::fs::write(&h.subuid, "alice:100000:65536\n").unwrap();
        std::fs::write(&h.subgid, "alice:100000:65536\n").unwrap();
        h.newuidmap = None;
        assert_eq!(
            plan(&h),
            Plan::Single(Reduced::NoNewuidmap {
                program: "newuidmap".into()
            })
        );
        h.newuidmap = Some("/x".into());
        assert!(matches!(plan(&h), Plan::Range { .. }));
    }

    #[test]
    fn sysctl_disables_user_namespaces_without_any_call() {
        let d = tempfile::tempdir().unwrap();
        let h = host(d.path(), 1000);
        std::fs::write(h.proc.join("sys/user/max_user_namespaces"), "0\n").unwrap();
        let sys = RecordingSys::default();
        let mode = enter_with(&sys, &h).unwrap();
        assert_eq!(
            mode.reason().map(ToString::to_string).as_deref(),
            Some("unprivileged user namespaces are disabled by sysctl `user.max_user_namespaces` = 0")
        );
        assert!(sys.calls.borrow().is_empty());
    }

    #[test]
    fn seccomp_is_named_when_unshare_is_refused_under_a_filter() {
        let d = tempfile::tempdir().unwrap();
        let h = host(d.path(), 1000);
        let sys = RecordingSys {
            fail: Some(|c| matches!(c, Call::Unshare(_)).then_some(libc::EPERM)),
            ..Default::default()
        };
        std::fs::write(h.proc.join("self/status"), "Name:\thoist\nSeccomp:\t0\n").unwrap();
        let mode = enter_with(&sys, &h).unwrap();
        assert_eq!(
            mode.reason(),
            Some(&Reduced::Unshare { errno: libc::EPERM })
        );
        std::fs::write(
            h.proc.join("self/status"),
            "Name:\thoist\nSeccomp:\t2\nSeccomp_filters:\t1\n",
        )
        .unwrap();
        let mode = enter_with(&sys, &h).unwrap();
        assert_eq!(mode.reason(), Some(&Reduced::Seccomp));
    }

    #[test]
    fn apparmor_is_named_when_unshare_fails() {
        let d = tempfile::tempdir().unwrap();
        let h = host(d.path(), 1000);
        std::fs::create_dir_all(h.proc.join("sys/kernel")).unwrap();
        std::fs::write(
            h.proc
                .join("sys/kernel/apparmor_restrict_unprivileged_userns"),
            "1",
        )
        .unwrap();
        let sys = RecordingSys {
            fail: Some(|c| matches!(c, Call::Mount { .. }).then_some(libc::EPERM)),
            ..Default::default()
        };
        let mode = enter_with(&sys, &h).unwrap();
        assert_eq!(
            mode,
            UsernsMode::Unavailable {
                reason: Reduced::AppArmor
            }
        );
    }

    #[test]
    fn unshared_mode_is_trusted_only_inside_its_namespace() {
        let mode = UsernsMode::Single {
            uid: 1000,
            gid: 1000,
            reason: Reduced::NoNewuidmap {
                program: "newuidmap".into(),
            },
        };
        let json = serde_json::to_string(&mode).unwrap();
        let inside = "         0       1000          1\n";
        assert_eq!(inherited_mode(Some(&json), 0, inside), Some(mode.clone()));
        // the host's namespace, another user's namespace, not uid 0, no or a bad value
        let host_map = "         0          0 4294967295\n";
        assert_eq!(inherited_mode(Some(&json), 0, host_map), None);
        assert_eq!(inherited_mode(Some(&json), 0, "0 2000 1\n"), None);
        assert_eq!(inherited_mode(Some(&json), 1000, inside), None);
        assert_eq!(inherited_mode(None, 0, inside), None);
        assert_eq!(inherited_mode(Some("1"), 0, inside), None);
        let root = serde_json::to_string(&UsernsMode::Root).unwrap();
        assert_eq!(inherited_mode(Some(&root), 0, host_map), None);
    }
}
