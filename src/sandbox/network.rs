//! The private network of RUN steps and `hoist run` (docker's default "bridge" isolation without
//! a daemon): a network namespace of its own with outbound access through `pasta` (Debian's
//! `passt`), and no way to the host's loopback.
//!
//! One namespace and one pasta per hoist process, made at the first run that asks for it:
//! every later run's init only joins it (`setns`, microseconds), so the per-step cost stays
//! that of a namespace switch. Runs of one hoist process (the steps of one build) share it, as
//! they share the host's network with `--network host`.
//!
//! pasta is started with `--no-map-gw` (connections to the gateway address go to the gateway,
//! not to the host's loopback), `-T none -U none` (no port of the host's loopback is mirrored
//! into the namespace) and `-t none -u none` (nothing forwarded inward), `--config-net`
//! (address, routes and `lo` configured like the host's). A small guardian process (a fork of
//! hoist, async-signal-safe calls only) bind-mounts the namespace in a mount namespace of its
//! own (pasta cannot open `/proc/PID/ns/net` once it dropped its capabilities), starts pasta and
//! waits on a pipe whose other end only hoist holds: when hoist ends — exit, SIGINT, SIGKILL —
//! the pipe reads end-of-file and the guardian kills pasta, and with it the namespace is gone.
//! pasta keeps its user (`--runas` hoist's own ids): rootless that is the user; as real root,
//! pasta stays root (it refuses to join the namespace after switching to `nobody`).
//!
//! slirp4netns is not driven (yet): where only it is installed, the default stays `host` and
//! `hoist info` says so.

use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::spec::Network;
use super::userns::find_program;
use super::SandboxError;

/// The default network of RUN steps and `hoist run`, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    pub network: Network,
    pub reason: String,
}

/// `pasta` on `PATH` (or in /usr/bin, /usr/sbin).
pub fn pasta() -> Option<PathBuf> {
    find_program("pasta")
}

/// Whether this user can open `/dev/net/tun` (pasta makes its interface there; Debian's udev
/// rules leave it 0666, some machines make it root's alone).
fn tun_usable() -> Result<(), String> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map(drop)
        .map_err(|e| format!("`/dev/net/tun` cannot be opened ({e})"))
}

/// What applies when neither the build nor the step names a network.
pub fn default_network() -> DefaultNetwork {
    match pasta() {
        Some(p) if tun_usable().is_err() => DefaultNetwork {
            network: Network::Host,
            reason: format!(
                "`{}` found, but {}: steps share the host's network, its loopback included",
                p.display(),
                tun_usable().err().unwrap_or_default()
            ),
        },
        Some(p) => DefaultNetwork {
            network: Network::Private,
            reason: format!(
                "`{}` found: a network namespace of hoist's own with outbound access and no \
                 access to the host's loopback",
                p.display()
            ),
        },
        None => DefaultNetwork {
            network: Network::Host,
            reason: match find_program("slirp4netns") {
                Some(_) => "`pasta` (Debian package `passt`) is not installed; hoist does not \
                            drive slirp4netns: steps share the host's network, its loopback \
                            included"
                    .to_string(),
                None => "no user-mode network helper (`pasta`, Debian package `passt`) is \
                         installed: steps share the host's network, its loopback included"
                    .to_string(),
            },
        },
    }
}

/// The private network of this process.
#[derive(Debug)]
pub struct Private {
    /// The network namespace (join with `setns(fd, CLONE_NEWNET)`).
    pub netns: OwnedFd,
    /// `/etc/resolv.conf` for the containers.
    pub resolv_conf: String,
    /// hoist's end of the guardian's pipe: kept open as long as the process lives.
    _life: OwnedFd,
}

static PRIVATE: OnceLock<Result<Private, String>> = OnceLock::new();

/// The private network, made at the first call (its scratch files go into `scratch`, a dir
/// swept when hoist dies). Later calls return the same one, or the same error.
pub fn private(scratch: &Path) -> Result<&'static Private, SandboxError> {
    PRIVATE
        .get_or_init(|| {
            start(scratch).map_err(|e| match e {
                SandboxError::Network(m) => m,
                other => other.to_string(),
            })
        })
        .as_ref()
        .map_err(|e| SandboxError::Network(e.clone()))
}

/// Starts the private network in the background (pasta takes about 0.1 s to get ready), so
/// the first run that needs it does not wait as long; [`private`] then returns it, or waits
/// for the start under way.
pub fn prestart(scratch: &Path) {
    let scratch = scratch.to_path_buf();
    let started = std::thread::Builder::new()
        .name("hoist-net-start".into())
        .spawn(move || {
            if let Err(e) = private(&scratch) {
                log::debug!("private network: {e}");
            }
        });
    if let Err(e) = started {
        log::debug!("private network not started early: {e}");
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

fn nix_io(what: &str) -> impl FnOnce(nix::Error) -> SandboxError + '_ {
    move |e| SandboxError::Io {
        what: what.to_string(),
        source: e.into(),
    }
}

fn cstring(s: impl AsRef<std::ffi::OsStr>) -> Result<CString, SandboxError> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| SandboxError::Network("a path contains a NUL byte".into()))
}

/// A new network namespace, made by a short-lived thread (unshare(2) of a network namespace
/// changes only the calling thread; the thread ends, the descriptor keeps the namespace).
fn new_netns() -> Result<OwnedFd, SandboxError> {
    std::thread::Builder::new()
        .name("hoist-netns".into())
        .spawn(|| -> Result<OwnedFd, SandboxError> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(nix_io("creating a network namespace"))?;
            let f = fs::File::open("/proc/thread-self/ns/net")
                .map_err(io("opening the new network namespace"))?;
            Ok(f.into())
        })
        .map_err(io("starting a thread"))?
        .join()
        .map_err(|_| SandboxError::Network("the namespace thread panicked".into()))?
}

/// `/etc/resolv.conf` of the private network: the host's, without loopback name servers (the
/// namespace cannot reach them); where only those exist, pasta's DNS forwarder address.
fn resolv_conf(host: &str, forward: Option<&str>) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        if let Some(f) = forward {
            out.push_str(&format!("nameserver {f}\n"));
        }
    }
    out
}

/// The address pasta maps to the host's first name server when the host only has loopback ones
/// (podman uses the same link-local address).
const DNS_FORWARD: &str = "169.254.1.1";

fn start(scratch: &Path) -> Result<Private, SandboxError> {
    let pasta = pasta().ok_or_else(|| {
        SandboxError::Network("`pasta` is not installed (Debian package `passt`)".into())
    })?;
    let dir = tempfile::Builder::new()
        .prefix("hoist-net-")
        .tempdir_in(scratch)
        .map_err(io(format!("creating a dir in `{}`", scratch.display())))?
        .keep();
    let netns = new_netns()?;
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let needs_forward = !host_resolv.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("nameserver")
            && w.next()
                .is_some_and(|a| !a.starts_with("127.") && a != "::1")
    }) && host_resolv.contains("nameserver");
    let ns_file = dir.join("netns");
    let pid_file = dir.join("pasta.pid");
    let log_file = dir.join("pasta.log");
    fs::write(&ns_file, "").map_err(io(format!("creating `{}`", ns_file.display())))?;
    let log =
        fs::File::create(&log_file).map_err(io(format!("creating `{}`", log_file.display())))?;
    let devnull = fs::File::open("/dev/null").map_err(io("opening /dev/null"))?;
    let ids = format!(
        "{}:{}",
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw()
    );
    let mut words: Vec<String> = [
        "pasta",
        "--foreground",
        "--quiet",
        "--runas",
        &ids,
        "--config-net",
        "--no-map-gw",
        "--tcp-ports",
        "none",
        "--udp-ports",
        "none",
        "--tcp-ns",
        "none",
        "--udp-ns",
        "none",
        "--log-file",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    words.push(log_file.display().to_string());
    words.extend(["--pid".to_string(), pid_file.display().to_string()]);
    if needs_forward {
        words.extend(["--dns-forward".to_string(), DNS_FORWARD.to_string()]);
    }
    words.extend(["--netns".to_string(), ns_file.display().to_string()]);
    let argv_c: Vec<CString> = words.iter().map(cstring).collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let exe = cstring(&pasta)?;
    let ns_target = cstring(&ns_file)?;
    let root = cstring("/")?;
    let (life_r, life_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix_io("creating a pipe"))?;
    let fds = [
        devnull.as_raw_fd(),
        devnull.as_raw_fd(),
        log.as_raw_fd(),
        life_r.as_raw_fd(),
        netns.as_raw_fd(),
    ];

    // SAFETY: a fork of a possibly threaded process: the child (the guardian) makes only
    // async-signal-safe calls (syscalls on memory prepared above) and ends with _exit.
    let guardian = unsafe { libc::fork() };
    if guardian == 0 {
        // SAFETY: see above
        unsafe { guardian_main(&fds, &ns_target, &root, &exe, &argv) }
    }
    if guardian < 0 {
        return Err(SandboxError::Io {
            what: "forking pasta's guardian".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    drop(life_r);
    drop(log);
    drop(devnull);
    // ready when pasta wrote its pid file (after it configured the namespace)
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if fs::metadata(&pid_file).is_ok_and(|m| m.len() > 0) {
            break;
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child, WNOHANG
        let ended = unsafe { libc::waitpid(guardian, &mut status, libc::WNOHANG) } == guardian;
        if ended || Instant::now() > until {
            let mut why = String::new();
            let _ = fs::File::open(&log_file).and_then(|mut f| f.read_to_string(&mut why));
            let why = why
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string();
            return Err(SandboxError::Network(format!(
                "`{}` {}: {why}",
                pasta.display(),
                if ended {
                    "failed"
                } else {
                    "did not get ready in 10 s"
                }
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    log::debug!(
        "private network: pasta ready (guardian pid {guardian}, state in `{}`)",
        dir.display()
    );
    Ok(Private {
        netns,
        resolv_conf: resolv_conf(&host_resolv, needs_forward.then_some(DNS_FORWARD)),
        _life: life_w,
    })
}

/// The guardian: own session (terminal signals do not reach pasta), own mount namespace with
/// the network namespace bound at `ns_target`, pasta as its child; kills pasta when hoist's end
/// of the pipe closes, and ends when pasta does.
///
/// # Safety
/// Runs in the child of a fork: async-signal-safe calls only.
unsafe fn guardian_main(
    fds: &[i32; 5],
    ns_target: &CString,
    root: &CString,
    exe: &CString,
    argv: &[*const libc::c_char],
) -> ! {
    libc::setsid();
    // 0, 1: /dev/null, 2: pasta's log, 3: the life pipe, 4: the namespace; nothing else of
    // hoist's (a pipe another step reads until its end, say) stays open here
    let mut high = [0i32; 5];
    for (i, from) in fds.iter().enumerate() {
        high[i] = libc::fcntl(*from, libc::F_DUPFD_CLOEXEC, 64);
        if high[i] < 0 {
            libc::_exit(120);
        }
    }
    for (to, from) in high.iter().enumerate() {
        libc::dup2(*from, to as i32);
    }
    libc::syscall(
        libc::SYS_close_range,
        5 as libc::c_uint,
        libc::c_uint::MAX,
        0 as libc::c_uint,
    );
    if libc::unshare(libc::CLONE_NEWNS) != 0
        || libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
    {
        libc::_exit(121);
    }
    let own = b"/proc/self/fd/4\0";
    if libc::mount(
        own.as_ptr() as *const libc::c_char,
        ns_target.as_ptr(),
        std::ptr::null(),
        libc::MS_BIND,
        std::ptr::null(),
    ) != 0
    {
        libc::_exit(122);
    }
    let pasta = libc::fork();
    if pasta == 0 {
        // Rust ignores SIGPIPE and an ignored disposition survives exec; pasta checks that
        // its own `signal(SIGPIPE, SIG_IGN)` returns 0 (the default) and refuses otherwise
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::close(3);
        libc::close(4);
        libc::execv(exe.as_ptr(), argv.as_ptr());
        libc::_exit(127);
    }
    if pasta < 0 {
        libc::_exit(123);
    }
    libc::close(4);
    loop {
        let mut p = libc::pollfd {
            fd: 3,
            events: libc::POLLIN,
            revents: 0,
        };
        let n = libc::poll(&mut p, 1, 200);
        if n > 0 {
            // hoist is gone (end of file): so goes the network
            libc::kill(pasta, libc::SIGKILL);
            libc::waitpid(pasta, std::ptr::null_mut(), 0);
            libc::_exit(0);
        }
        let mut status = 0;
        if libc::waitpid(pasta, &mut status, libc::WNOHANG) == pasta {
            libc::_exit(124);
        }
    }
}

/// Joins the private network (in the forked init, before exec: a plain syscall).
pub fn join_raw(fd: i32) -> bool {
    // SAFETY: setns on a namespace descriptor
    unsafe { libc::setns(fd, libc::CLONE_NEWNET) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_drops_loopback_servers() {
        let host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, None),
            "search lan\nnameserver 10.0.0.1\noptions edns0\n"
        );
        assert_eq!(
            resolv_conf("nameserver 127.0.0.53\n", Some(DNS_FORWARD)),
            "nameserver 169.254.1.1\n"
        );
    }
}
