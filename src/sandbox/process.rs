//! The parent side of a run: prepares the run's private temp dir (mount point, skeleton layer,
//! generated `/etc` files), clones `/proc/self/exe __init` straight into new mount, pid, uts,
//! ipc (and network) namespaces — no new user namespace: hoist is already in its own — sends
//! the [`Start`] message and waits, forwarding SIGINT/SIGTERM/SIGHUP/SIGQUIT; a container that
//! has not ended 500 ms after such a signal is killed (its pid 1 with SIGKILL, which ends the
//! whole pid namespace and with it every mount).
//!
//! It must not fork a threaded process into a namespace by any other path than clone+execve,
//! and does nothing but async-signal-safe calls between the two.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

use super::mounts::{self, Kind};
use super::network;
use super::spec::{read_frame, write_frame, FromInit, Mount, Network, RootfsPlan, Spec, Start};
use super::userns::{self, UsernsMode};
use super::zygote::Launcher;
use super::SandboxError;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStatus {
    /// The command's exit code; 128+n when a signal n ended it (docker's convention).
    pub code: i32,
    /// The signal hoist received (SIGINT, SIGTERM, …) that ended the run, if one did.
    pub interrupted: Option<i32>,
}

/// Where the command's standard streams go; `None` inherits hoist's own.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

const SLOTS: usize = 64;
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: AtomicI32 = AtomicI32::new(0);
/// pids (in hoist's pid namespace) of the live containers' inits, for the signal handler.
static LIVE: [AtomicI32; SLOTS] = [EMPTY; SLOTS];
/// The last terminating signal hoist received while containers ran.
static PENDING: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    let mut any = false;
    for slot in &LIVE {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            any = true;
            // SAFETY: kill is async-signal-safe
            unsafe { libc::kill(pid, sig) };
        }
    }
    if any {
        PENDING.store(sig, Ordering::SeqCst);
    } else {
        // no container: behave as if hoist had no handler
        // SAFETY: signal and raise are async-signal-safe
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// Kills every container this process is running (their inits, and with them their pid
/// namespaces): a build whose stage failed stops the RUN steps of the stages running beside it,
/// as BuildKit cancels them, instead of waiting for them to finish. Each such run ends as if by
/// SIGKILL (code 137).
pub fn stop_all() {
    for slot in &LIVE {
        let pid = slot.load(Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) on a pid this process started and has not reaped yet (the slot is
            // cleared right after the reap)
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Whether a `USER` value names anyone but root (by name or number, user or group part).
pub fn names_another_user(user: &str) -> bool {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let root = |s: &str| matches!(s, "" | "0" | "root");
    !root(u) || g.is_some_and(|g| !root(g))
}

/// Once per hoist process: a container's process switched ids that single-id mode does not have.
fn warn_switched(ids: &[String]) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::warn!(
            "single-id mode: a process switched to {} (su, setpriv, a package manager dropping \
             privileges), which does not exist here: it went on as uid 0, and what it made is \
             root's unless it chowns it",
            ids.join(", ")
        )
    });
}

/// Once per hoist process: links whose owner single-id mode could not record.
fn warn_links(links: &[String]) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::warn!(
            "single-id mode: the owner given to symbolic link {} cannot be recorded (a link \
             holds no attribute): it stays root's in the layer",
            links.join(", ")
        )
    });
}

/// Once per hoist process: what single-id mode does with a non-root `USER`.
fn warn_single_id_user(user: &str) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::warn!(
            "single-id mode: `USER {user}` runs as uid 0, the only id mapped here, with that \
             user's HOME and no capabilities; `id` shows root, and a build records what such a \
             step makes as the user's. Give this user a range in /etc/subuid and /etc/subgid \
             to run as `{user}`"
        )
    });
}

fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            // SAFETY: the handler only makes async-signal-safe calls on atomics
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

struct Registration(usize);

impl Registration {
    fn new(pid: i32) -> Option<Registration> {
        LIVE.iter()
            .position(|s| {
                s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            })
            .map(Registration)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        LIVE[self.0].store(0, Ordering::SeqCst);
    }
}

/// A container id: 12 random hex digits (the default hostname, as docker's short id).
pub fn container_id() -> String {
    let mut b = [0u8; 6];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    hex::encode(b)
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SandboxError {
    let what = what.into();
    move |source| SandboxError::Io { what, source }
}

/// The generated `/etc` files: `hosts`, `hostname`, `resolv.conf`.
fn write_etc_files(
    dir: &Path,
    spec: &Spec,
    hostname: &str,
    private_resolv: Option<&str>,
) -> Result<Vec<(String, PathBuf)>, SandboxError> {
    fs::create_dir_all(dir).map_err(io(format!("creating `{}`", dir.display())))?;
    let localhost = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    let mut hosts = match spec.network {
        // the host's network, the host's names (podman does the same)
        Network::Host => fs::read_to_string("/etc/hosts")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| localhost.to_string()),
        Network::None | Network::Private => localhost.to_string(),
    };
    if !hosts.ends_with('\n') {
        hosts.push('\n');
    }
    hosts.push_str(&format!("127.0.1.1\t{hostname}\n"));
    let resolv = match spec.network {
        // a copy, so a command that edits it never edits the host's
        Network::Host => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        Network::None => String::new(),
        Network::Private => private_resolv.unwrap_or_default().to_string(),
    };
    let mut out = Vec::new();
    for (name, text) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, text).map_err(io(format!("writing `{}`", p.display())))?;
        out.push((format!("/etc/{name}"), p));
    }
    Ok(out)
}

/// The mode the run happens in: what `userns::enter` chose, or root.
fn mode() -> Result<UsernsMode, SandboxError> {
    match userns::current() {
        Some(UsernsMode::Unavailable { reason }) => Err(SandboxError::NoUserns(reason.to_string())),
        Some(m) => Ok(m.clone()),
        None if nix::unistd::geteuid().is_root() => Ok(UsernsMode::Root),
        None => Err(SandboxError::NoUserns(
            "hoist's user namespace was not entered (`sandbox::userns::enter` must run first)"
                .into(),
        )),
    }
}

fn check_spec(spec: &Spec) -> Result<(), SandboxError> {
    if spec.argv.is_empty() {
        return Err(SandboxError::Spec("no command specified".into()));
    }
    for l in &spec.lower_dirs {
        if !l.is_dir() {
            return Err(SandboxError::Spec(format!(
                "layer dir `{}` does not exist",
                l.display()
            )));
        }
    }
    for m in &spec.mounts {
        mounts::relative(m.destination())?;
        if let Mount::Bind { source, .. } = m {
            if !source.exists() {
                return Err(SandboxError::Spec(format!(
                    "bind source `{}` does not exist",
                    source.display()
                )));
            }
        }
    }
    mounts::relative(if spec.cwd.is_empty() { "/" } else { &spec.cwd }).map(drop)
}

/// Runs `spec` with hoist's standard streams. Without a tty they are relayed through pipes
/// (as docker does): the command never holds the user's terminal, so it can neither type into
/// it (TIOCSTI) nor change its settings; with `-t` it gets a pty of the container's own.
pub fn run(spec: &Spec) -> Result<RunStatus, SandboxError> {
    if spec.tty {
        return run_with_stdio(spec, Stdio::default());
    }
    let mut stdio = Stdio::default();
    let mut relays = Vec::new();
    if spec.stdin {
        let (r, w) = pipe()?;
        let from = dup_std(0)?;
        // not joined: it ends when hoist's input does, or at its first write after the
        // container closed the pipe
        std::thread::Builder::new()
            .name("hoist-stdin".into())
            .spawn(move || relay(from, w))
            .map_err(io("starting the standard input relay"))?;
        stdio.stdin = Some(r);
    }
    for fd in [1, 2] {
        let (r, w) = pipe()?;
        let to = dup_std(fd)?;
        relays.push(
            std::thread::Builder::new()
                .name("hoist-output".into())
                .spawn(move || relay(r, to))
                .map_err(io("starting an output relay"))?,
        );
        if fd == 1 {
            stdio.stdout = Some(w);
        } else {
            stdio.stderr = Some(w);
        }
    }
    let status = run_with_stdio(spec, stdio);
    // the container's ends are closed when its processes are gone: the relays see the end
    for r in relays {
        let _ = r.join();
    }
    status
}

/// A socket pair whose second end is above the standard descriptors (whatever hoist was
/// started with) and is the only copy of that end: the first end sees the end of the stream
/// when the process it is handed to closes it.
pub(super) fn socket_pair_above_std() -> Result<(UnixStream, OwnedFd), SandboxError> {
    let (ours, theirs_low) = UnixStream::pair().map_err(io("creating a socket pair"))?;
    let theirs: OwnedFd =
        nix::fcntl::fcntl(theirs_low.as_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .map(|fd| {
                // SAFETY: fcntl just returned this new descriptor, owned by nobody else
                unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
            })
            .map_err(|e| SandboxError::Io {
                what: "duplicating a socket".into(),
                source: e.into(),
            })?;
    drop(theirs_low);
    Ok((ours, theirs))
}

/// hoist's log level, as the `--log-level` of the processes it starts from its own binary.
pub(super) fn level_arg() -> &'static str {
    match log::max_level() {
        log::LevelFilter::Debug | log::LevelFilter::Trace => "debug",
        log::LevelFilter::Info => "info",
        log::LevelFilter::Error | log::LevelFilter::Off => "error",
        log::LevelFilter::Warn => "warn",
    }
}

/// How [`clone_exec_self`] starts hoist's binary.
pub(super) struct SelfExec<'a> {
    /// The namespaces the child gets.
    pub flags: CloneFlags,
    /// `__init` or `__zygote`: the hidden verb, which takes `fd`.
    pub verb: &'static str,
    /// The one descriptor above the standard ones that stays open (the socket to hoist).
    pub fd: i32,
    /// Descriptors to put at 0, 1 and 2.
    pub redirects: &'a [(i32, i32)],
    /// A network namespace to join.
    pub netns: Option<i32>,
}

/// Clones this (threaded) process straight into `x.flags`' namespaces and executes
/// `/proc/self/exe --log-level L VERB FD` in the child, which holds nothing else of hoist's.
/// The child dies with the calling thread (`PR_SET_PDEATHSIG`) and has a session of its own.
/// Returns its pid.
pub(super) fn clone_exec_self(x: &SelfExec<'_>) -> std::io::Result<i32> {
    let fd = x.fd;
    let args: Vec<CString> = ["hoist", "--log-level", level_arg(), x.verb, &fd.to_string()]
        .iter()
        .map(|s| CString::new(*s).expect("fixed arguments contain no NUL"))
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let exe = CString::new(Path::new("/proc/self/exe").as_os_str().as_bytes())
        .expect("fixed path contains no NUL");
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack): the child runs on a copy of our
    // memory and makes only async-signal-safe calls before execve, so it is sound even when
    // other threads hold locks.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (x.flags.bits() as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: the child: only async-signal-safe calls, then execve or _exit
        unsafe {
            set_up_child(x.netns, x.redirects);
            let flags = libc::fcntl(fd, libc::F_GETFD);
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            // nothing else of hoist's reaches the child: other threads may have made
            // descriptors without CLOEXEC (a pipe another build step reads until EOF, say)
            let fd = fd as libc::c_uint;
            if fd > 3 {
                libc::syscall(
                    libc::SYS_close_range,
                    3 as libc::c_uint,
                    fd - 1,
                    0 as libc::c_uint,
                );
            }
            libc::syscall(
                libc::SYS_close_range,
                fd + 1,
                libc::c_uint::MAX,
                0 as libc::c_uint,
            );
            libc::execv(exe.as_ptr(), argv.as_ptr());
            libc::_exit(125);
        }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(pid as i32)
}

/// The first steps of a child hoist starts (an init, the launcher): it dies with the thread
/// that started it, whatever kills that; it leaves hoist's session, so nothing in a container
/// has the user's terminal as its controlling terminal (job control signals from it reach
/// hoist, which forwards); it joins `netns` (else `_exit(125)`); `redirects` become its
/// standard streams.
///
/// # Safety
/// Makes only async-signal-safe calls: fit for the child of a threaded process's fork.
pub(super) unsafe fn set_up_child(netns: Option<i32>, redirects: &[(i32, i32)]) {
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    libc::setsid();
    if let Some(ns) = netns {
        if !network::join_raw(ns) {
            libc::_exit(125);
        }
    }
    for (from, to) in redirects {
        libc::dup2(*from, *to);
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Io {
        what: "creating a pipe".into(),
        source: e.into(),
    })
}

fn dup_std(fd: i32) -> Result<OwnedFd, SandboxError> {
    // SAFETY: borrowing one of the standard descriptors for the duration of the call
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    b.try_clone_to_owned()
        .map_err(io(format!("duplicating standard descriptor {fd}")))
}

/// Copies `from` to `to` until the end of `from` or a failed write.
fn relay(from: OwnedFd, to: OwnedFd) {
    let mut from = fs::File::from(from);
    let mut to = fs::File::from(to);
    let _ = std::io::copy(&mut from, &mut to);
}

/// Runs `spec` with the given standard streams (a build pipes them to its progress output).
pub fn run_with_stdio(spec: &Spec, stdio: Stdio) -> Result<RunStatus, SandboxError> {
    run_launched(spec, stdio, None)
}

/// [`run_with_stdio`], the init started by `launcher` where one is given and works (a build's
/// steps), else cloned and executed for this run.
pub fn run_launched(
    spec: &Spec,
    mut stdio: Stdio,
    launcher: Option<&Launcher>,
) -> Result<RunStatus, SandboxError> {
    let mode = mode()?;
    if !spec.tty && !spec.stdin && stdio.stdin.is_none() {
        // not even the init holds hoist's standard input (the user's terminal, say)
        stdio.stdin = Some(
            fs::File::open("/dev/null")
                .map_err(io("opening /dev/null"))?
                .into(),
        );
    }
    check_spec(spec)?;
    for d in [&spec.upper_dir, &spec.work_dir] {
        fs::create_dir_all(d).map_err(io(format!("creating `{}`", d.display())))?;
    }
    // the run's state lives beside its upper dir (the caller's scratch space: the store's
    // `tmp/`, swept when hoist dies) or in the caller's memory dir, never in the system temp
    // dir, where a killed run would leave it; the copying fallback's copy (a whole root file
    // system) always goes beside the upper dir
    let beside_upper = spec
        .upper_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let force_copy = std::env::var_os("HOIST_SANDBOX_COPY").is_some_and(|v| v == "1");
    let state_parent = match &spec.state_dir {
        Some(d) if !force_copy => d.clone(),
        _ => beside_upper.clone(),
    };
    let state = tempfile::Builder::new()
        .prefix("hoist-run-")
        .tempdir_in(&state_parent)
        .map_err(io(format!(
            "creating the run's temp dir in `{}`",
            state_parent.display()
        )))?;
    let copy_dir = if state_parent == beside_upper {
        state.path().join("copy")
    } else {
        let name = state
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        beside_upper.join(format!("{name}-copy"))
    };
    let rootfs = state.path().join("rootfs");
    let skel = state.path().join("skel");
    for d in [&rootfs, &skel] {
        fs::create_dir(d).map_err(io(format!("creating `{}`", d.display())))?;
    }
    let mut spec = spec.clone();
    if spec.hostname.is_empty() {
        spec.hostname = container_id();
    }
    let private = match spec.network {
        Network::Private => Some(network::private(&beside_upper)?),
        _ => None,
    };
    let etc_files = write_etc_files(
        &state.path().join("etc"),
        &spec,
        &spec.hostname,
        private.map(|p| p.resolv_conf.as_str()),
    )?;
    let netns_fd = private.map(|p| p.netns.as_raw_fd());

    let mut needs: Vec<(PathBuf, Kind, bool)> = ["proc", "dev", "sys"]
        .iter()
        .map(|d| (PathBuf::from(d), Kind::Dir, false))
        .collect();
    for (dest, _) in &etc_files {
        needs.push((mounts::relative(dest)?, Kind::File, true));
    }
    for m in &spec.mounts {
        let kind = match m {
            Mount::Bind { source, .. } if !source.is_dir() => Kind::File,
            _ => Kind::Dir,
        };
        needs.push((mounts::relative(m.destination())?, kind, false));
    }
    let mut top_first: Vec<PathBuf> = vec![spec.upper_dir.clone()];
    top_first.extend(spec.lower_dirs.iter().rev().cloned());
    let mut lowers: Vec<PathBuf> = Vec::new();
    if mounts::prepare_skeleton(&skel, &top_first, &needs)? || spec.lower_dirs.is_empty() {
        lowers.push(skel.clone());
    }
    // a layer that appears twice (two steps with the same diff, an empty one say) is mounted
    // once, at its topmost place: overlayfs refuses overlapping lower dirs (ELOOP), and the
    // upper occurrence already decides every path the lower one could
    for l in spec.lower_dirs.iter().rev() {
        if !lowers.contains(l) {
            lowers.push(l.clone());
        }
    }
    if mode.single_id() && names_another_user(&spec.user) {
        warn_single_id_user(&spec.user);
    }
    let start = Start {
        force_copy,
        copy_dir,
        fake_id_calls: mode.single_id(),
        spec,
        rootfs,
        rootfs_plan: RootfsPlan::Overlay { lowers },
        etc_files,
    };

    let (mut ours, theirs) = socket_pair_above_std()?;
    let fd = theirs.as_raw_fd();
    let redirects: Vec<(i32, i32)> = [(&stdio.stdin, 0), (&stdio.stdout, 1), (&stdio.stderr, 2)]
        .into_iter()
        .filter_map(|(fd, to)| fd.as_ref().map(|f| (f.as_raw_fd(), to)))
        .collect();

    let mut flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC;
    if start.spec.network == Network::None {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    install_handlers();
    let launched = launcher.and_then(|l| {
        l.launch(flags, fd, &redirects, netns_fd)
            .map_err(|e| log::debug!("the launcher failed ({e}); cloning an init instead"))
            .ok()
    });
    let pid = match launched {
        Some(pid) => {
            log::debug!("init forked by the launcher as pid {pid}");
            pid
        }
        None => clone_exec_self(&SelfExec {
            flags,
            verb: "__init",
            fd,
            redirects: &redirects,
            netns: netns_fd,
        })
        .map_err(io("cloning the container's init"))?,
    };
    drop(theirs);
    drop(stdio);
    let reg = Registration::new(pid);
    let _raw = if start.spec.tty {
        RawTerminal::enter()
    } else {
        None
    };
    let sent = write_frame(&mut ours, &start);
    let outcome = wait_for(pid, &mut ours, sent.is_ok());
    drop(reg);
    drop(_raw);
    let interrupted = match PENDING.swap(0, Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    };
    let (code, message) = outcome?;
    // the copying fallback ran: turn the copy's changes into the upper dir's overlay form
    let copy = &start.copy_dir;
    if let (true, None, RootfsPlan::Overlay { lowers }) =
        (copy.is_dir(), &message, &start.rootfs_plan)
    {
        mounts::record_changes(copy, lowers, &start.spec.upper_dir).map_err(io(format!(
            "recording the changes of `{}` in `{}`",
            copy.display(),
            start.spec.upper_dir.display()
        )))?;
    }
    if let Err(e) = sent {
        if message.is_none() {
            return Err(SandboxError::Io {
                what: "sending the spec to the container's init".into(),
                source: e,
            });
        }
    }
    if !copy.starts_with(state.path()) && copy.exists() {
        mounts::remove_scratch(copy);
    }
    mounts::remove_scratch(state.path());
    drop(state);
    match message {
        Some(FromInit::SetupFailed { message }) => Err(SandboxError::Setup(message)),
        Some(FromInit::ExecFailed { message, code }) => Err(SandboxError::Exec { message, code }),
        _ => Ok(RunStatus { code, interrupted }),
    }
}

/// Reads the init's messages until it ends; returns its exit code and the failure message, if
/// one came. Kills the container 500 ms after hoist got a terminating signal.
fn wait_for(
    pid: i32,
    sock: &mut UnixStream,
    sent: bool,
) -> Result<(i32, Option<FromInit>), SandboxError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut failure = None;
    let mut started = false;
    let mut exited = None;
    let mut deadline: Option<Instant> = None;
    let mut open = sent;
    while open {
        if PENDING.load(Ordering::SeqCst) != 0 && deadline.is_none() {
            deadline = Some(Instant::now() + Duration::from_millis(500));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            // SAFETY: SIGKILL to our own child; its pid namespace ends with it
            unsafe { libc::kill(pid, libc::SIGKILL) };
            break;
        }
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(_) => break,
        }
        match read_frame::<FromInit>(sock) {
            Ok(Some(FromInit::Started { pid: p })) => {
                log::debug!("command started as pid {p}");
                started = true;
            }
            Ok(Some(FromInit::Exited {
                code,
                switched,
                unrecorded_links,
            })) => {
                if !switched.is_empty() {
                    warn_switched(&switched);
                }
                if !unrecorded_links.is_empty() {
                    warn_links(&unrecorded_links);
                }
                exited = Some(code);
                open = false;
            }
            Ok(Some(m)) => {
                // the init exits right after a failure message
                failure = Some(m);
                open = false;
            }
            Ok(None) | Err(_) => open = false,
        }
    }
    if let Some(code) = exited {
        // every process of the container is gone; the init's own exit (the kernel unmounting
        // everything) is reaped in the background
        let reaper = std::thread::Builder::new()
            .name("hoist-reaper".into())
            .spawn(move || reap(pid));
        if reaper.is_err() {
            reap(pid);
        }
        return Ok((code, failure));
    }
    let status = loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(nix::Error::EINTR) => continue,
            other => break other,
        }
    };
    let code = match status {
        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => c,
        Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        Ok(other) => {
            return Err(SandboxError::Setup(format!(
                "container init ended oddly: {other:?}"
            )))
        }
        Err(e) => {
            return Err(SandboxError::Io {
                what: "waiting for the container's init".into(),
                source: e.into(),
            })
        }
    };
    if !started && failure.is_none() && PENDING.load(Ordering::SeqCst) == 0 {
        failure = Some(FromInit::SetupFailed {
            message: format!(
                "the container's init ended with status {code} before the command started"
            ),
        });
    }
    Ok((code, failure))
}

fn reap(pid: i32) {
    while let Err(nix::Error::EINTR) =
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
    {}
}

/// Puts hoist's terminal in raw mode for a `-t` run, restoring it on drop.
struct RawTerminal {
    saved: nix::sys::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        let _ = nix::sys::termios::tcsetattr(
            stdin.as_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.saved,
        );
        let _ = std::io::stdout().flush();
    }
}
