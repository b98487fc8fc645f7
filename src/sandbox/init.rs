//! The container's init: the process `hoist __init FD` becomes after the parent cloned it into
//! new mount, pid, uts, ipc (and network) namespaces. It reads the [`Start`] message, builds the
//! container's file system, `pivot_root`s into it, resolves user, environment and executable,
//! forks the command and then, as pid 1, reaps every child and forwards signals until the
//! command ends; it exits with the command's status (a signal n gives 128+n, as docker does).
//!
//! It must not touch the store, must not create a user namespace (it lives in hoist's) and must
//! not write into the upper dir except through the command. Errors go back to the parent as
//! typed [`FromInit`] messages, never as stray text.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::spec::{read_frame, write_frame, FromInit, Network, RootfsPlan, Start};
use super::sys::{RealSys, Sys};
use super::user::{self, ExecUser};
use super::{caps, mounts, seccomp, SandboxError};

/// docker's default `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Signals the init forwards to the command.
const FORWARDED: [Signal; 9] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
    Signal::SIGALRM,
];

/// Runs the init on the socket `fd`; returns the exit code.
pub fn main(fd: RawFd) -> i32 {
    // SAFETY: the parent handed us this descriptor on the command line and nothing else owns it
    let mut sock = unsafe { UnixStream::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        sock.as_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    let start: Start = match read_frame(&mut sock) {
        Ok(Some(s)) => s,
        Ok(None) => return 125,
        Err(e) => {
            let _ = write_frame(
                &mut sock,
                &FromInit::SetupFailed {
                    message: format!("reading the container spec: {e}"),
                },
            );
            return 125;
        }
    };
    match run(&mut sock, &start) {
        Ok(code) => code,
        Err(Failure::Setup(e)) => {
            let _ = write_frame(
                &mut sock,
                &FromInit::SetupFailed {
                    message: e.to_string(),
                },
            );
            125
        }
        Err(Failure::Exec { message, code }) => {
            let _ = write_frame(&mut sock, &FromInit::ExecFailed { message, code });
            code
        }
    }
}

enum Failure {
    Setup(SandboxError),
    Exec { message: String, code: i32 },
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        Failure::Setup(e)
    }
}

fn nix_err(what: &str) -> impl FnOnce(nix::Error) -> SandboxError + '_ {
    move |e| SandboxError::Io {
        what: what.to_string(),
        source: e.into(),
    }
}

/// Builds the root file system as the plan says; where overlay cannot be mounted (or
/// `force_copy`), copies the layers into the run's temp dir instead. The parent records the
/// copy's changes into the upper dir afterwards, so the caller gets the same layer either way.
fn build_rootfs(start: &mut Start) -> Result<(), SandboxError> {
    let state = start
        .rootfs
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/"));
    let links = state.join("l");
    let overlay = if start.force_copy {
        Err(SandboxError::Mount {
            target: start.rootfs.clone(),
            message: "overlay not tried (HOIST_SANDBOX_COPY=1)".into(),
        })
    } else {
        mounts::mount_rootfs(&RealSys, start, &links)
    };
    let e = match overlay {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let RootfsPlan::Overlay { lowers } = &start.rootfs_plan else {
        return Err(e);
    };
    if fs::read_dir(&start.spec.upper_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false)
    {
        return Err(SandboxError::Mount {
            target: start.rootfs.clone(),
            message: format!(
                "{e}; the copying fallback needs an empty upper dir and `{}` is not",
                start.spec.upper_dir.display()
            ),
        });
    }
    log::warn!("{e}; copying the layers instead (slower)");
    let copy = start.copy_dir.clone();
    let bottom_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    mounts::copy_layers(&bottom_first, &copy).map_err(|source| SandboxError::Io {
        what: format!("copying the layers into `{}`", copy.display()),
        source,
    })?;
    start.rootfs_plan = RootfsPlan::Copy { dir: copy };
    mounts::mount_rootfs(&RealSys, start, &links)
}

fn loopback_up() -> Result<(), SandboxError> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(nix_err("opening a socket to bring `lo` up"))?;
    // SAFETY: ifreq is plain data; zero is a valid value for every field
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(SandboxError::Io {
                what: "reading the flags of `lo`".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(SandboxError::Io {
                what: "bringing `lo` up".into(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// The environment of the command: the spec's, then `PATH`, `HOSTNAME`, `HOME` (and `TERM`
/// with a tty) where the spec lacks them.
pub fn command_env(env: &[String], hostname: &str, home: &str, tty: bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len() + 4);
    let has = |out: &[String], k: &str| out.iter().any(|e| e.split('=').next() == Some(k));
    for e in env {
        let key = e.split('=').next().unwrap_or("");
        // a later value of the same key wins, as in docker
        out.retain(|o| o.split('=').next() != Some(key));
        out.push(e.clone());
    }
    if !has(&out, "PATH") {
        out.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !has(&out, "HOSTNAME") {
        out.push(format!("HOSTNAME={hostname}"));
    }
    if !has(&out, "HOME") {
        out.push(format!("HOME={home}"));
    }
    if tty && !has(&out, "TERM") {
        out.push("TERM=xterm".to_string());
    }
    out
}

/// Finds `argv0` as docker does: a name with `/` is used as it is, others are looked up in
/// `PATH`; the error texts and codes are docker's (127 not found, 126 not executable).
pub fn find_executable(argv0: &str, path: &str, root: &Path) -> Result<PathBuf, (String, i32)> {
    let is_exec = |p: &Path| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let host = |p: &str| mounts::resolve_in_root(root, p);
    if argv0.contains('/') {
        return match fs::metadata(host(argv0)) {
            Err(_) => Err((
                format!("exec: \"{argv0}\": stat {argv0}: no such file or directory"),
                127,
            )),
            Ok(m) if m.is_dir() => Err((format!("exec: \"{argv0}\": is a directory"), 126)),
            Ok(_) if !is_exec(&host(argv0)) => {
                Err((format!("exec: \"{argv0}\": permission denied"), 126))
            }
            Ok(_) => Ok(PathBuf::from(argv0)),
        };
    }
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{}/{argv0}", dir.trim_end_matches('/'));
        if is_exec(&host(&cand)) {
            return Ok(PathBuf::from(cand));
        }
    }
    Err((
        format!("exec: \"{argv0}\": executable file not found in $PATH"),
        127,
    ))
}

fn run(sock: &mut UnixStream, start: &Start) -> Result<i32, Failure> {
    let sys = RealSys;
    let mut start = start.clone();
    // nothing mounted from here on may reach the parent's namespace
    sys.mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(|e| SandboxError::Mount {
        target: "/".into(),
        message: e.to_string(),
    })?;
    build_rootfs(&mut start)?;
    let root = start.rootfs.clone();
    mounts::mount_container_fs(&sys, &root, &start)?;
    if !start.spec.hostname.is_empty() {
        match nix::unistd::sethostname(&start.spec.hostname) {
            Ok(()) => {}
            // a container hoist runs in may refuse sethostname by seccomp whatever the
            // capabilities (podman's default profile without CAP_SYS_ADMIN): the uts namespace
            // keeps the inherited name, `/etc/hostname` still has the container's, and
            // `hoist info` names it
            Err(nix::errno::Errno::EPERM) => {
                log::debug!("cannot set the hostname (EPERM): the inherited one stays")
            }
            Err(e) => return Err(nix_err("setting the hostname")(e).into()),
        }
    }
    if start.spec.network == Network::None {
        loopback_up()?;
    }
    sys.pivot_root(&root).map_err(|e| SandboxError::Mount {
        target: root.clone(),
        message: format!("pivot_root: {e}"),
    })?;
    let root = PathBuf::from("/");

    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    let user = user::resolve(&start.spec.user, &passwd, &group)?;
    let env = command_env(
        &start.spec.env,
        &start.spec.hostname,
        &user.home,
        start.spec.tty,
    );
    let cwd = if start.spec.cwd.is_empty() {
        "/"
    } else {
        &start.spec.cwd
    };
    fs::create_dir_all(cwd).map_err(|source| SandboxError::Io {
        what: format!("creating the working directory `{cwd}`"),
        source,
    })?;
    let Some(argv0) = start.spec.argv.first() else {
        return Err(SandboxError::Spec("no command specified".into()).into());
    };
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let exe = find_executable(argv0, path, &root)
        .map_err(|(message, code)| Failure::Exec { message, code })?;

    let progs = seccomp::policy(
        start.fake_id_calls,
        start.spec.seccomp_unconfined,
        start.spec.discard_sync,
    )?;
    let signals = Signals::block()?;
    let pty = if start.spec.tty {
        Some(Pty::open()?)
    } else {
        None
    };
    let cstrings = |v: &[String]| -> Result<Vec<CString>, SandboxError> {
        v.iter()
            .map(|s| CString::new(s.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| {
                SandboxError::Spec("a command argument or variable contains a NUL byte".into())
            })
    };
    let c_exe = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Spec("executable path contains a NUL byte".into()))?;
    let c_argv = cstrings(&start.spec.argv)?;
    let c_env = cstrings(&env)?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(nix_err("creating a pipe"))?;
    // single-id mode: the command hands back the descriptor on which its chown calls arrive
    let notify = if start.fake_id_calls {
        Some(
            std::os::unix::net::UnixStream::pair().map_err(|source| SandboxError::Io {
                what: "creating the chown record's socket".into(),
                source,
            })?,
        )
    } else {
        None
    };

    // SAFETY: the init is single-threaded; the child sets itself up and execs
    let child = match unsafe { nix::unistd::fork() }.map_err(nix_err("forking the command"))? {
        nix::unistd::ForkResult::Child => {
            drop(err_r);
            let e = exec_command(
                &start,
                &user,
                cwd,
                pty.as_ref(),
                &progs,
                notify.as_ref().map(|(_, theirs)| theirs),
                &c_exe,
                &c_argv,
                &c_env,
            );
            let mut f = fs::File::from(err_w);
            let _ = f.write_all(e.as_bytes());
            // SAFETY: leave the forked child without running the init's destructors
            unsafe {
                libc::_exit(if e.contains("permission denied") {
                    126
                } else {
                    127
                })
            }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(err_w);
    let mut why = String::new();
    let _ = fs::File::from(err_r).read_to_string(&mut why);
    if !why.is_empty() {
        let _ = nix::sys::wait::waitpid(child, None);
        let code = if why.contains("permission denied") {
            126
        } else {
            127
        };
        return Err(Failure::Exec { message: why, code });
    }
    let pty = pty.map(|p| {
        drop(p.slave);
        p.master
    });
    let _ = write_frame(
        sock,
        &FromInit::Started {
            pid: child.as_raw(),
        },
    );
    // exec succeeded, so the command sent its chown descriptor before it (if it made one)
    let listener = notify.and_then(|(ours, theirs)| {
        drop(theirs);
        receive_fd(&ours)
    });
    let mut switches = super::chown_record::Switches::default();
    let code = supervise(child, &signals, pty, listener, &mut switches);
    // end every other process of the container (kill(2): -1 from a pid namespace's init reaches
    // all of that namespace but the init), reap them, and only then tell the parent: it can go
    // on without waiting for the kernel to tear the namespaces down
    // SAFETY: kill with a valid signal
    unsafe { libc::kill(-1, libc::SIGKILL) };
    while nix::sys::wait::waitpid(Pid::from_raw(-1), None).is_ok() {}
    // the container's output ends here: hoist's relays see the end of their pipes now, not
    // when the kernel has torn the namespaces down
    for fd in 0..3 {
        // SAFETY: closing our own standard descriptors; nothing here uses them afterwards
        unsafe { libc::close(fd) };
    }
    let _ = write_frame(
        sock,
        &FromInit::Exited {
            code,
            switched: switches.ids.into_iter().collect(),
            unrecorded_links: switches.links.into_iter().collect(),
        },
    );
    Ok(code)
}

/// In the forked child: identity, capabilities, filter, exec. Returns why exec failed.
#[allow(clippy::too_many_arguments)]
fn exec_command(
    start: &Start,
    user: &ExecUser,
    cwd: &str,
    pty: Option<&Pty>,
    progs: &[seccompiler::BpfProgram],
    notify: Option<&std::os::unix::net::UnixStream>,
    exe: &CString,
    argv: &[CString],
    env: &[CString],
) -> String {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    // an ignored signal stays ignored across execve(2): Rust's runtime ignores SIGPIPE in hoist,
    // and whatever started hoist may have ignored others. The command starts with docker's
    // dispositions (all default), or `yes | head` never ends.
    reset_ignored_signals();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
    // a session of its own, always: without a pty the command has no controlling terminal at
    // all, so `/dev/tty` opens nothing and TIOCSTI has no terminal to type into
    if let Err(e) = nix::unistd::setsid() {
        return fail("setsid", &e);
    }
    if let Some(pty) = pty {
        // SAFETY: TIOCSCTTY on the pty slave we opened; makes it our controlling terminal
        if unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
            return fail(
                "making the pty the controlling terminal",
                &std::io::Error::last_os_error(),
            );
        }
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors of this process
            unsafe { libc::dup2(pty.slave.as_raw_fd(), fd) };
        }
    } else if !start.spec.stdin {
        match fs::File::open("/dev/null") {
            // SAFETY: dup2 onto standard input of this process
            Ok(f) => unsafe {
                libc::dup2(f.as_raw_fd(), 0);
            },
            Err(e) => return fail("opening /dev/null", &e),
        }
    }
    if let Err(e) = nix::unistd::chdir(cwd) {
        return fail(&format!("chdir to `{cwd}`"), &e);
    }
    if let Err(e) = caps::drop_bounding() {
        return e.to_string();
    }
    if !start.fake_id_calls {
        let groups: Vec<nix::unistd::Gid> = user
            .groups
            .iter()
            .map(|g| nix::unistd::Gid::from_raw(*g))
            .collect();
        if let Err(e) = nix::unistd::setgroups(&groups) {
            return fail("setgroups", &e);
        }
        let g = nix::unistd::Gid::from_raw(user.gid);
        if let Err(e) = nix::unistd::setresgid(g, g, g) {
            return fail(&format!("setgid {}", user.gid), &e);
        }
        let u = nix::unistd::Uid::from_raw(user.uid);
        if let Err(e) = nix::unistd::setresuid(u, u, u) {
            return fail(&format!("setuid {}", user.uid), &e);
        }
    }
    if let Err(e) = caps::limit_sets() {
        return e.to_string();
    }
    // single-id mode has no other id to switch to: a non-root user runs as uid 0 with that
    // user's HOME and no capabilities, as a non-root user has in docker (the parent warns)
    if start.fake_id_calls && (user.uid != 0 || user.gid != 0) {
        if let Err(e) = caps::clear_all() {
            return e.to_string();
        }
    }
    if let Err(e) = caps::no_new_privs() {
        return e.to_string();
    }
    // every descriptor but 0, 1, 2 closes on exec
    // SAFETY: close_range with the CLOEXEC flag only changes descriptor flags
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if let Err(e) = seccomp::install(progs) {
        return e.to_string();
    }
    if let Some(sock) = notify {
        // last: the init records the chown family; where the kernel cannot hand calls over,
        // they answer success and change nothing, as the setuid family does
        match seccomp::notify_filter().and_then(|p| seccomp::install_with_listener(&p)) {
            Ok(listener) => {
                if let Err(e) = send_fd(sock, listener.as_raw_fd()) {
                    return fail("handing the chown record to the init", &e);
                }
            }
            Err(_) => {
                if let Err(e) =
                    seccomp::notified_errno_filter().and_then(|p| seccomp::install(&[p]))
                {
                    return e.to_string();
                }
            }
        }
    }
    let e = nix::unistd::execve(exe, argv, env).err();
    let argv0 = argv
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default();
    match e {
        Some(nix::Error::EACCES) => format!("exec: \"{argv0}\": permission denied"),
        Some(e) => format!("exec: \"{argv0}\": {}", e.desc().to_lowercase()),
        None => String::new(),
    }
}

struct Signals {
    fd: SignalFd,
}

extern "C" fn ignore(_: libc::c_int) {}

/// The kernel's `struct sigaction` for rt_sigaction(2) (the generic layout of x86-64 and arm64).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// Sets every signal that is ignored back to its default action (handlers are reset by execve
/// itself; ignored signals are not). Through the raw system call, because glibc refuses to
/// touch the signals it reserves (32 and 33), which a parent may still have left ignored.
fn reset_ignored_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        let mut old = KernelSigaction {
            handler: 0,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: rt_sigaction reads no new action (null) and writes the old one into `old`,
        // a struct of the kernel's layout and size (the last argument is the mask's size)
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<KernelSigaction>(),
                &mut old as *mut KernelSigaction,
                8usize,
            )
        };
        if rc == 0 && old.handler == libc::SIG_IGN {
            let dfl = KernelSigaction {
                handler: libc::SIG_DFL,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            // SAFETY: installs SIG_DFL, which runs no code of ours
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                );
            }
        }
    }
}

impl Signals {
    /// Catches the forwarded signals and SIGCHLD on a signalfd. A pid namespace's init only
    /// receives signals it has a handler for (pid_namespaces(7)), so each gets a no-op handler
    /// before it is blocked.
    fn block() -> Result<Signals, SandboxError> {
        let mut set = SigSet::empty();
        for s in FORWARDED {
            let action = nix::sys::signal::SigAction::new(
                nix::sys::signal::SigHandler::Handler(ignore),
                nix::sys::signal::SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handler does nothing
            unsafe { nix::sys::signal::sigaction(s, &action) }
                .map_err(nix_err("installing a signal handler"))?;
            set.add(s);
        }
        set.add(Signal::SIGCHLD);
        set.thread_block().map_err(nix_err("blocking signals"))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(nix_err("creating a signalfd"))?;
        Ok(Signals { fd })
    }
}

struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    /// Opens a pty in the container's own devpts (so the command sees `/dev/pts/0`), sized like
    /// the parent's terminal.
    fn open() -> Result<Pty, SandboxError> {
        use nix::fcntl::OFlag;
        let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
            .map_err(nix_err("opening /dev/ptmx"))?;
        nix::pty::grantpt(&master).map_err(nix_err("grantpt"))?;
        nix::pty::unlockpt(&master).map_err(nix_err("unlockpt"))?;
        let name = nix::pty::ptsname_r(&master).map_err(nix_err("ptsname"))?;
        let slave: OwnedFd = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&name)
            .map_err(|source| SandboxError::Io {
                what: format!("opening `{name}`"),
                source,
            })?
            .into();
        // SAFETY: master is a valid descriptor for the lifetime of the returned OwnedFd
        let master: OwnedFd = unsafe { OwnedFd::from_raw_fd(nix::libc::dup(master.as_raw_fd())) };
        copy_winsize(master.as_fd());
        Ok(Pty { master, slave })
    }
}

use std::os::unix::fs::OpenOptionsExt;

/// Copies the size of the terminal on standard input to the pty.
fn copy_winsize(master: BorrowedFd<'_>) {
    // SAFETY: winsize is plain data; both ioctls read or write it
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

fn status_code(s: WaitStatus) -> Option<i32> {
    match s {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// pid 1's loop: reap, forward, relay the pty; returns the command's status.
fn supervise(
    child: Pid,
    signals: &Signals,
    pty: Option<OwnedFd>,
    mut listener: Option<OwnedFd>,
    switches: &mut super::chown_record::Switches,
) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let stdin = std::io::stdin();
    let mut stdin_open = pty.is_some();
    let mut code: Option<i32> = None;
    let mut buf = [0u8; 16384];
    loop {
        let mut fds = vec![PollFd::new(signals.fd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &pty {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        let at_listener = fds.len();
        if let Some(l) = &listener {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        let listener_events = fds.get(at_listener).and_then(PollFd::revents);
        drop(fds);
        if let (Some(ev), Some(l)) = (listener_events, &listener) {
            if ev.contains(PollFlags::POLLIN) {
                super::chown_record::answer(l.as_fd(), switches);
            } else if !ev.is_empty() {
                // every process under the filter is gone
                listener = None;
            }
        }
        let ready = &ready[..at_listener];
        if ready[0] {
            while let Ok(Some(info)) = signals.fd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    continue;
                }
                if sig == libc::SIGWINCH {
                    if let Some(m) = &pty {
                        copy_winsize(m.as_fd());
                        continue;
                    }
                }
                // SAFETY: kill with a valid signal number to our own child
                unsafe { libc::kill(child.as_raw(), sig) };
            }
            // reap everything: pid 1 adopts every orphan of the container
            loop {
                match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(s) => {
                        if s.pid() == Some(child) {
                            code = status_code(s);
                        }
                    }
                }
            }
        }
        if let Some(m) = &pty {
            if ready.get(1) == Some(&true) {
                match nix::unistd::read(m, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = std::io::stdout().write_all(&buf[..n]);
                        let _ = std::io::stdout().flush();
                    }
                    _ => {
                        if code.is_some() {
                            break;
                        }
                    }
                }
            }
            if ready.get(2) == Some(&true) {
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = nix::unistd::write(m, &buf[..n]);
                    }
                    _ => stdin_open = false,
                }
            }
        }
        if code.is_some() {
            if let Some(m) = &pty {
                // drain what the command wrote before it ended
                let _ = nix::fcntl::fcntl(
                    m.as_fd(),
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
                );
                while let Ok(n) = nix::unistd::read(m, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let _ = std::io::stdout().write_all(&buf[..n]);
                }
                let _ = std::io::stdout().flush();
            }
            break;
        }
    }
    code.unwrap_or(125)
}

/// Sends one descriptor over a unix socket (SCM_RIGHTS).
fn send_fd(sock: &std::os::unix::net::UnixStream, fd: i32) -> nix::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [fd];
    let iov = [std::io::IoSlice::new(b"L")];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map(|_| ())
}

/// The descriptor [`send_fd`] sent, if one is waiting.
fn receive_fd(sock: &std::os::unix::net::UnixStream) -> Option<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these descriptors in this process
            return fds.first().map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }
    None
}

#[allow(dead_code)]
fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_gets_docker_defaults_and_later_values_win() {
        let env = command_env(
            &["A=1".into(), "A=2".into(), "HOME=/h".into()],
            "box",
            "/root",
            true,
        );
        assert_eq!(
            env,
            vec![
                format!("PATH={DEFAULT_PATH}"),
                "A=2".into(),
                "HOME=/h".into(),
                "HOSTNAME=box".into(),
                "TERM=xterm".into()
            ]
        );
    }

    #[test]
    fn executable_lookup_gives_docker_messages_and_codes() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        fs::create_dir_all(r.join("bin")).unwrap();
        fs::write(r.join("bin/tool"), "").unwrap();
        fs::set_permissions(r.join("bin/tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(r.join("bin/data"), "").unwrap();
        assert_eq!(
            find_executable("tool", "/usr/bin:/bin", r).unwrap(),
            PathBuf::from("/bin/tool")
        );
        assert_eq!(
            find_executable("foo", "/bin", r).unwrap_err(),
            (
                "exec: \"foo\": executable file not found in $PATH".to_string(),
                127
            )
        );
        assert_eq!(find_executable("/bin/data", "/bin", r).unwrap_err().1, 126);
        assert_eq!(
            find_executable("/nope", "/bin", r).unwrap_err(),
            (
                "exec: \"/nope\": stat /nope: no such file or directory".to_string(),
                127
            )
        );
    }
}
