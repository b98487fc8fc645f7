//! The launcher of a build's containers: one process, `hoist __zygote FD`, started once per
//! build, that forks each RUN step's init straight into its namespaces, where otherwise every
//! step clones hoist and executes its 15 MB binary again.
//!
//! The execution is what a step paid for: the dynamic loader's relocations and the C
//! library's start (whose CPU feature probes trap to the hypervisor on a virtual machine),
//! and the page faults of a fresh address space: 2 ms of CPU of the init's 6.5 ms per step,
//! measured with `perf record -a -g` over twenty-step builds. A threaded process may not fork
//! and go on running Rust code (another thread may hold the allocator's lock), which is why
//! hoist itself must execute; the launcher is single-threaded and may.
//!
//! - hoist sends a request (the namespaces, and by `SCM_RIGHTS` the init's socket, its
//!   standard streams and a network namespace to join); the launcher clones with
//!   `CLONE_PARENT` and answers with the pid. The init is hoist's own child, exactly as when
//!   hoist clones it: hoist waits for it, reaps it and signals it the same way.
//! - The init is set up by the same `process::set_up_child` as an executed one: it dies with
//!   the thread that started the launcher (`PR_SET_PDEATHSIG`; that thread lives as long as
//!   the launcher), has a session of its own, holds only its socket and its streams, and then
//!   runs `init::main`.
//! - The launcher has a session of its own too, so the terminal's signals reach only hoist,
//!   which forwards them. It ends when hoist closes its socket, or with that thread.
//! - Anything that goes wrong with it makes [`Launcher::launch`] fail, and the run clones
//!   and executes an init as before.

use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sched::CloneFlags;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::process::{clone_exec_self, socket_pair_above_std, SelfExec};

/// The namespaces a request may ask for.
const ALLOWED: CloneFlags = CloneFlags::CLONE_NEWNS
    .union(CloneFlags::CLONE_NEWPID)
    .union(CloneFlags::CLONE_NEWUTS)
    .union(CloneFlags::CLONE_NEWIPC)
    .union(CloneFlags::CLONE_NEWNET);

/// Request bits: which descriptors follow the init's socket, in this order.
const STDIN: u32 = 1;
const STDOUT: u32 = 2;
const STDERR: u32 = 4;
const NETNS: u32 = 8;
/// The standard streams' bits and descriptors, in request order.
const STREAMS: [(u32, i32); 3] = [(STDIN, 0), (STDOUT, 1), (STDERR, 2)];

/// A running launcher. Dropping it ends it.
pub struct Launcher {
    sock: Mutex<UnixStream>,
    broken: AtomicBool,
}

impl Launcher {
    /// Starts a launcher for this process; `None` where it cannot be started (each run then
    /// clones and executes its init).
    pub fn start() -> Option<Launcher> {
        let (ours, theirs) = match socket_pair_above_std() {
            Ok(p) => p,
            Err(e) => {
                log::debug!("no launcher: {e}");
                return None;
            }
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // the launcher's parent thread, and so (`CLONE_PARENT`) every init's: it must outlive
        // them all, so it only waits for the launcher to end
        let spawned = std::thread::Builder::new()
            .name("hoist-launcher".into())
            .spawn(move || {
                let pid = clone_exec_self(&SelfExec {
                    flags: CloneFlags::empty(),
                    verb: "__zygote",
                    fd: theirs.as_raw_fd(),
                    redirects: &[],
                    netns: None,
                });
                drop(theirs);
                let pid = match pid {
                    Ok(pid) => pid,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(pid));
                while let Err(nix::Error::EINTR) =
                    nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
                {}
            });
        if let Err(e) = spawned {
            log::debug!("no launcher: {e}");
            return None;
        }
        match rx.recv() {
            Ok(Ok(pid)) => {
                log::debug!("launcher started as pid {pid}");
                Some(Launcher {
                    sock: Mutex::new(ours),
                    broken: AtomicBool::new(false),
                })
            }
            Ok(Err(e)) => {
                log::debug!("no launcher: {e}");
                None
            }
            Err(_) => None,
        }
    }

    /// Starts an init in new `flags` namespaces: `init` becomes its descriptor 3 (the socket
    /// to hoist), `redirects` its standard streams, and it joins `netns`. Returns its pid, a
    /// child of this process.
    pub(super) fn launch(
        &self,
        flags: CloneFlags,
        init: RawFd,
        redirects: &[(RawFd, i32)],
        netns: Option<RawFd>,
    ) -> Result<i32, String> {
        if self.broken.load(Ordering::SeqCst) {
            return Err("it ended earlier".into());
        }
        let mut fds = vec![init];
        let mut mask = 0u32;
        for (bit, to) in STREAMS {
            if let Some((from, _)) = redirects.iter().find(|(_, t)| *t == to) {
                mask |= bit;
                fds.push(*from);
            }
        }
        if let Some(ns) = netns {
            mask |= NETNS;
            fds.push(ns);
        }
        let mut header = [0u8; 8];
        header[..4].copy_from_slice(&(flags.bits() as u32).to_le_bytes());
        header[4..].copy_from_slice(&mask.to_le_bytes());
        let sock = crate::util::lock(&self.sock);
        let answer = (|| {
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(&header)],
                &[ControlMessage::ScmRights(&fds)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(|e| format!("sending the request: {e}"))?;
            let mut pid = [0u8; 4];
            (&*sock)
                .read_exact(&mut pid)
                .map_err(|e| format!("reading the answer: {e}"))?;
            Ok(i32::from_le_bytes(pid))
        })();
        match answer {
            Ok(pid) if pid > 0 => Ok(pid),
            Ok(errno) => Err(format!(
                "clone: {}",
                std::io::Error::from_raw_os_error(-errno)
            )),
            Err(e) => {
                self.broken.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // the launcher reads the end of the stream and exits
        let _ = crate::util::lock(&self.sock).shutdown(std::net::Shutdown::Both);
    }
}

/// The launcher's loop on socket `fd`; returns its exit code when hoist closes the socket.
pub fn main(fd: RawFd) -> i32 {
    // SAFETY: the parent handed us this descriptor on the command line and nothing else owns it
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // the descriptors a request brings must never land on 0, 1 or 2
    for std_fd in 0..3 {
        // SAFETY: F_GETFD only asks whether the descriptor is open
        if unsafe { libc::fcntl(std_fd, libc::F_GETFD) } < 0 {
            let _ = std::fs::File::open("/dev/null").map(|f| {
                let raw = f.as_raw_fd();
                if raw != std_fd {
                    // SAFETY: dup2 onto a free standard descriptor
                    unsafe { libc::dup2(raw, std_fd) };
                } else {
                    std::mem::forget(f);
                }
            });
        }
    }
    loop {
        let mut header = [0u8; 8];
        let mut fds: Vec<OwnedFd> = Vec::new();
        let bytes = {
            let mut iov = [IoSliceMut::new(&mut header)];
            let mut space = nix::cmsg_space!([RawFd; 5]);
            let msg = match recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return 1,
            };
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmRights(got) = c {
                        // SAFETY: the kernel just installed these descriptors in this process
                        fds.extend(got.iter().map(|&f| unsafe { OwnedFd::from_raw_fd(f) }));
                    }
                }
            }
            msg.bytes
        };
        if bytes == 0 {
            return 0;
        }
        let answer = if bytes != header.len() {
            -libc::EINVAL
        } else {
            let flags = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            let mask = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
            match CloneFlags::from_bits(flags as libc::c_int) {
                Some(f)
                    if ALLOWED.contains(f)
                        && mask & !(STDIN | STDOUT | STDERR | NETNS) == 0
                        && fds.len() == 1 + mask.count_ones() as usize =>
                {
                    fork_init(f, mask, &fds)
                }
                _ => -libc::EINVAL,
            }
        };
        drop(fds);
        if std::io::Write::write_all(&mut &sock, &answer.to_le_bytes()).is_err() {
            return 1;
        }
    }
}

/// Clones an init (see the module docs); returns its pid, or minus the errno.
fn fork_init(flags: CloneFlags, mask: u32, fds: &[OwnedFd]) -> i32 {
    // SAFETY: a fork-like clone (no CLONE_VM, no new stack) of this single-threaded process:
    // the child may run any code
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_ulong)
                | libc::CLONE_PARENT as libc::c_ulong
                | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return -std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO);
    }
    if pid > 0 {
        return pid as i32;
    }
    // the child
    // SAFETY: plain system calls on descriptors this process owns
    unsafe {
        let mut next = fds[1..].iter();
        let mut redirects = Vec::new();
        for (bit, to) in STREAMS {
            if mask & bit != 0 {
                if let Some(f) = next.next() {
                    redirects.push((f.as_raw_fd(), to));
                }
            }
        }
        let netns = match (mask & NETNS != 0, next.next()) {
            (false, _) => None,
            (true, Some(ns)) => Some(ns.as_raw_fd()),
            (true, None) => libc::_exit(125),
        };
        // (should hoist have died before the death signal is set, the init reads the end of
        // its socket instead of a spec, and exits)
        super::process::set_up_child(netns, &redirects);
        let init = fds[0].as_raw_fd();
        if init != 3 && libc::dup2(init, 3) != 3 {
            libc::_exit(125);
        }
        libc::syscall(
            libc::SYS_close_range,
            4 as libc::c_uint,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
    }
    std::process::exit(super::init::main(3))
}
