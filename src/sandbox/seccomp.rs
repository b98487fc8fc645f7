//! The seccomp policy of every RUN step and `hoist run`, in every mode (root, subordinate
//! range, single id): docker's default profile, and in single-id mode the fake-id rules on top.
//!
//! **docker's default profile** follows moby's `profiles/seccomp/default.json` (moby/moby at
//! commit 00f3d189, read December 2026) for a container with docker's default capabilities
//! ([`super::caps::DEFAULT`]): the listed calls are allowed, every other call fails with EPERM
//! (`defaultErrnoRet: 1`). The rules that depend on arguments are docker's: `personality` only
//! with 0, 8, 0x20000, 0x20008 or 0xffffffff; `socket` with any family but `AF_VSOCK`; `clone`
//! only without namespace flags (`CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP`,
//! mask 0x7e020000); `clone3` answers ENOSYS so the C library falls back to `clone`, where the
//! flags can be checked. Of the capability-dependent groups only `chroot` (CAP_SYS_CHROOT) is
//! allowed; the CAP_SYS_ADMIN group (`mount`, `umount2`, `unshare`, `setns`, `fsopen`,
//! `fsmount`, `fspick`, `open_tree`, `move_mount`, `mount_setattr`, `bpf`, `perf_event_open`,
//! `quotactl`, `syslog`, `sethostname`, …) and the others (`reboot`, `*_module`, `acct`,
//! `kexec_*`, `iopl`, `ioperm`, `settimeofday`, `clock_settime`, `open_by_handle_at`, `kcmp`,
//! `pidfd_getfd`, `keyctl`, `add_key`, `request_key`, `userfaultfd`, `swapon`, `swapoff`,
//! `lookup_dcookie`, `uselib`, `ustat`, `sysfs`, `_sysctl`, `nfsservctl`, `vhangup`,
//! `mbind`, `set_mempolicy`, …) are not in the list and fail with EPERM. `ptrace` and
//! `process_vm_*` are allowed (docker allows them on kernels ≥ 4.8). The profile's 32-bit-only
//! names (`chown32`, `_llseek`, `*_time64`, `socketcall`, …) have no number on 64-bit targets.
//! Like every seccompiler filter it checks the audit architecture: a 32-bit (i386) process
//! is killed (docker also allows the x86 and x32 sub-architectures; hoist does not).
//!
//! **Single-id mode** (only 0 → the user mapped): a package manager's `chown` to any other owner,
//! or its dropping of privileges, would fail the step with EINVAL. The setuid/setgid family and
//! `setgroups` answer success and do nothing: the process stays uid 0. The chown family goes to
//! hoist's init (`SECCOMP_RET_USER_NOTIF`, a last filter installed with its own listener), which
//! records the owner asked for in the file's `user.hoist.owner` for the layer writer
//! (`chown_record`); where the kernel cannot hand calls over, they answer success and do nothing.
//!
//! seccompiler (a maintained crate, seccomp(2) filter mode) compiles one match action per
//! filter, so the policy is a small stack installed together: the allow list (else EPERM; its
//! program is emitted here as ranges of call numbers, [`compact_allow_list`], a tenth of the
//! length of seccompiler's chain, checked against it by a unit test),
//! then `clone3` → ENOSYS, then (single-id) the fake-id calls → 0. The kernel runs every
//! filter of the stack and takes the strictest verdict, the most recent filter winning among
//! equal ones (seccomp(2), "multiple filters"): so `clone3` gets ENOSYS rather than EPERM, and a
//! faked `chown` gets 0 although the allow list allows it. libseccomp would build one program
//! from per-rule actions, but needs the C library at run time; seccompiler is pure Rust.
//!
//! It must be installed last, after the sandbox's own id changes, in the command process only.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use super::SandboxError;

/// docker's unconditional allow list, the calls every 64-bit target has.
#[rustfmt::skip]
const ALLOWED: &[i64] = &[
    libc::SYS_accept, libc::SYS_accept4, libc::SYS_adjtimex, libc::SYS_bind, libc::SYS_brk,
    libc::SYS_capget, libc::SYS_capset, libc::SYS_chdir, libc::SYS_clock_adjtime,
    libc::SYS_clock_getres, libc::SYS_clock_gettime, libc::SYS_clock_nanosleep, libc::SYS_close,
    libc::SYS_close_range, libc::SYS_connect, libc::SYS_copy_file_range, libc::SYS_dup,
    libc::SYS_dup3, libc::SYS_epoll_create1, libc::SYS_epoll_ctl, libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2, libc::SYS_eventfd2, libc::SYS_execve, libc::SYS_execveat,
    libc::SYS_exit, libc::SYS_exit_group, libc::SYS_faccessat, libc::SYS_faccessat2,
    libc::SYS_fadvise64, libc::SYS_fallocate, libc::SYS_fanotify_mark, libc::SYS_fchdir,
    libc::SYS_fchmod, libc::SYS_fchmodat, libc::SYS_fchown, libc::SYS_fchownat, libc::SYS_fcntl,
    libc::SYS_fdatasync, libc::SYS_fgetxattr, libc::SYS_flistxattr, libc::SYS_flock,
    libc::SYS_fremovexattr, libc::SYS_fsetxattr, libc::SYS_fstat, libc::SYS_fstatfs,
    libc::SYS_fsync, libc::SYS_ftruncate, libc::SYS_futex, libc::SYS_futex_waitv, libc::SYS_getcpu,
    libc::SYS_getcwd, libc::SYS_getdents64, libc::SYS_getegid, libc::SYS_geteuid, libc::SYS_getgid,
    libc::SYS_getgroups, libc::SYS_getitimer, libc::SYS_getpeername, libc::SYS_getpgid,
    libc::SYS_getpid, libc::SYS_getppid, libc::SYS_getpriority, libc::SYS_getrandom,
    libc::SYS_getresgid, libc::SYS_getresuid, libc::SYS_get_robust_list, libc::SYS_getrusage,
    libc::SYS_getsid, libc::SYS_getsockname, libc::SYS_getsockopt, libc::SYS_gettid,
    libc::SYS_gettimeofday, libc::SYS_getuid, libc::SYS_getxattr, libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init1, libc::SYS_inotify_rm_watch, libc::SYS_io_cancel, libc::SYS_ioctl,
    libc::SYS_io_destroy, libc::SYS_io_getevents, libc::SYS_ioprio_get, libc::SYS_ioprio_set,
    libc::SYS_io_setup, libc::SYS_io_submit, libc::SYS_io_uring_enter, libc::SYS_io_uring_register,
    libc::SYS_io_uring_setup, libc::SYS_kill, libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset, libc::SYS_landlock_restrict_self, libc::SYS_lgetxattr,
    libc::SYS_linkat, libc::SYS_listen, libc::SYS_listxattr, libc::SYS_llistxattr,
    libc::SYS_lremovexattr, libc::SYS_lseek, libc::SYS_lsetxattr, libc::SYS_madvise,
    libc::SYS_membarrier, libc::SYS_memfd_create, libc::SYS_memfd_secret, libc::SYS_mincore,
    libc::SYS_mkdirat, libc::SYS_mknodat, libc::SYS_mlock, libc::SYS_mlock2, libc::SYS_mlockall,
    libc::SYS_mmap, libc::SYS_mprotect, libc::SYS_mq_getsetattr, libc::SYS_mq_notify,
    libc::SYS_mq_open, libc::SYS_mq_timedreceive, libc::SYS_mq_timedsend, libc::SYS_mq_unlink,
    libc::SYS_mremap, libc::SYS_msgctl, libc::SYS_msgget, libc::SYS_msgrcv, libc::SYS_msgsnd,
    libc::SYS_msync, libc::SYS_munlock, libc::SYS_munlockall, libc::SYS_munmap,
    libc::SYS_name_to_handle_at, libc::SYS_nanosleep, libc::SYS_newfstatat, libc::SYS_openat,
    libc::SYS_openat2, libc::SYS_pidfd_open, libc::SYS_pidfd_send_signal, libc::SYS_pipe2,
    libc::SYS_pkey_alloc, libc::SYS_pkey_free, libc::SYS_pkey_mprotect, libc::SYS_ppoll,
    libc::SYS_prctl, libc::SYS_pread64, libc::SYS_preadv, libc::SYS_preadv2, libc::SYS_prlimit64,
    libc::SYS_process_mrelease, libc::SYS_pselect6, libc::SYS_pwrite64, libc::SYS_pwritev,
    libc::SYS_pwritev2, libc::SYS_read, libc::SYS_readahead, libc::SYS_readlinkat, libc::SYS_readv,
    libc::SYS_recvfrom, libc::SYS_recvmmsg, libc::SYS_recvmsg, libc::SYS_remap_file_pages,
    libc::SYS_removexattr, libc::SYS_renameat2, libc::SYS_restart_syscall, libc::SYS_rseq,
    libc::SYS_rt_sigaction, libc::SYS_rt_sigpending, libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo, libc::SYS_rt_sigreturn, libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait, libc::SYS_rt_tgsigqueueinfo, libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr, libc::SYS_sched_getparam, libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min, libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval, libc::SYS_sched_setaffinity, libc::SYS_sched_setattr,
    libc::SYS_sched_setparam, libc::SYS_sched_setscheduler, libc::SYS_sched_yield,
    libc::SYS_seccomp, libc::SYS_semctl, libc::SYS_semget, libc::SYS_semop, libc::SYS_semtimedop,
    libc::SYS_sendfile, libc::SYS_sendmmsg, libc::SYS_sendmsg, libc::SYS_sendto,
    libc::SYS_setfsgid, libc::SYS_setfsuid, libc::SYS_setgid, libc::SYS_setgroups,
    libc::SYS_setitimer, libc::SYS_setpgid, libc::SYS_setpriority, libc::SYS_setregid,
    libc::SYS_setresgid, libc::SYS_setresuid, libc::SYS_setreuid, libc::SYS_set_robust_list,
    libc::SYS_setsid, libc::SYS_setsockopt, libc::SYS_set_tid_address, libc::SYS_setuid,
    libc::SYS_setxattr, libc::SYS_shmat, libc::SYS_shmctl, libc::SYS_shmdt, libc::SYS_shmget,
    libc::SYS_shutdown, libc::SYS_sigaltstack, libc::SYS_signalfd4, libc::SYS_socketpair,
    libc::SYS_splice, libc::SYS_statfs, libc::SYS_statx, libc::SYS_symlinkat, libc::SYS_sync,
    libc::SYS_syncfs, libc::SYS_sysinfo, libc::SYS_tee, libc::SYS_tgkill, libc::SYS_timer_create,
    libc::SYS_timer_delete, libc::SYS_timer_getoverrun, libc::SYS_timer_gettime,
    libc::SYS_timer_settime, libc::SYS_timerfd_create, libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime, libc::SYS_times, libc::SYS_tkill, libc::SYS_truncate,
    libc::SYS_umask, libc::SYS_uname, libc::SYS_unlinkat, libc::SYS_utimensat, libc::SYS_vmsplice,
    libc::SYS_wait4, libc::SYS_waitid, libc::SYS_write, libc::SYS_writev,
    // docker: on kernels ≥ 4.8
    libc::SYS_process_vm_readv, libc::SYS_process_vm_writev, libc::SYS_ptrace,
    // docker: with CAP_SYS_CHROOT, one of its default capabilities
    libc::SYS_chroot,
];

/// The allow list's calls that only x86-64 has (the legacy ABI and the arch-specific ones).
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const ALLOWED_ARCH: &[i64] = &[
    libc::SYS_access, libc::SYS_alarm, libc::SYS_chmod, libc::SYS_chown, libc::SYS_creat,
    libc::SYS_dup2, libc::SYS_epoll_create, libc::SYS_epoll_ctl_old, libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old, libc::SYS_eventfd, libc::SYS_fork, libc::SYS_futimesat,
    libc::SYS_getdents, libc::SYS_getpgrp, libc::SYS_getrlimit, libc::SYS_get_thread_area,
    libc::SYS_inotify_init, libc::SYS_lchown, libc::SYS_link, libc::SYS_lstat, libc::SYS_mkdir,
    libc::SYS_mknod, libc::SYS_open, libc::SYS_pause, libc::SYS_pipe, libc::SYS_poll,
    libc::SYS_readlink, libc::SYS_rename, libc::SYS_renameat, libc::SYS_rmdir, libc::SYS_select,
    libc::SYS_setrlimit, libc::SYS_set_thread_area, libc::SYS_signalfd, libc::SYS_stat,
    libc::SYS_symlink, libc::SYS_sync_file_range, libc::SYS_time, libc::SYS_unlink,
    libc::SYS_utime, libc::SYS_utimes, libc::SYS_vfork, libc::SYS_arch_prctl, libc::SYS_modify_ldt,
    333, // io_pgetevents (not in the libc crate)
];

/// The allow list's calls whose numbers the libc crate lacks on aarch64 (asm-generic numbers).
#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[i64] = &[
    38,  // renameat
    84,  // sync_file_range
    163, // getrlimit
    164, // setrlimit
    292, // io_pgetevents
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ARCH: &[i64] = &[];

/// docker's `personality` arguments: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, query.
const PERSONALITIES: [u64; 5] = [0, 8, 0x20000, 0x20008, 0xffff_ffff];
/// `CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET`.
const CLONE_NAMESPACES: u64 = 0x7e02_0000;
const AF_VSOCK: u64 = 40;

/// The chown family: in single-id mode handed to hoist's init, which records the owner asked
/// for (`chown_record`), or answered with success where the kernel has no user notification.
pub fn chown_syscalls() -> Vec<i64> {
    let mut v = vec![libc::SYS_fchown, libc::SYS_fchownat];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_chown, libc::SYS_lchown]);
    v
}

/// The setuid family whose switches the init notes, to report them (setfsuid and setgroups are
/// only faked: they answer success without going through the init).
pub fn switch_syscalls() -> Vec<i64> {
    vec![
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
    ]
}

/// The calls answered with success in single-id mode (the chown family and the switches only
/// where the init cannot be handed them, [`notified_errno_filter`]).
pub fn faked_syscalls() -> Vec<i64> {
    let mut v = vec![libc::SYS_setfsuid, libc::SYS_setfsgid, libc::SYS_setgroups];
    v.extend(switch_syscalls());
    v.extend(chown_syscalls());
    v
}

/// The calls that wait for written data to reach the disk.
pub fn sync_syscalls() -> Vec<i64> {
    vec![
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_sync_file_range,
        libc::SYS_syncfs,
        libc::SYS_sync,
    ]
}

/// What the notify filter hands to the init.
fn notified_syscalls() -> Vec<i64> {
    let mut v = chown_syscalls();
    v.extend(switch_syscalls());
    v
}

fn arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| {
        SandboxError::Seccomp(format!("architecture `{}`: {e}", std::env::consts::ARCH))
    })
}

fn err(e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Seccomp(e.to_string())
}

/// A rule map matching each of `calls` whatever its arguments.
fn any_args(calls: impl IntoIterator<Item = i64>) -> BTreeMap<i64, Vec<SeccompRule>> {
    calls.into_iter().map(|s| (s, vec![])).collect()
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, SandboxError> {
    let filter = SeccompFilter::new(rules, mismatch, matched, arch()?).map_err(err)?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| err(e))
}

/// docker's default profile: the allow list, everything else EPERM, as one compact program
/// ([`compact_allow_list`]).
pub fn docker_default() -> Result<BpfProgram, SandboxError> {
    compact_allow_list(ALLOWED.iter().chain(ALLOWED_ARCH).copied())
}

/// `seccomp_data.args[0]`, its low 32 bits (both targets are little-endian).
const ARG0_LOW: u32 = 16;
/// `seccomp_data.nr`.
const NR: u32 = 0;

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: usize, jf: usize) -> Result<sock_filter, SandboxError> {
    let off = |o: usize| u8::try_from(o).map_err(|_| err("a jump of the allow list is too long"));
    Ok(sock_filter {
        code: (libc::BPF_JMP | code | libc::BPF_K) as u16,
        jt: off(jt)?,
        jf: off(jf)?,
        k,
    })
}

/// The allow list as ranges of consecutive call numbers, with docker's argument rules for
/// `personality`, `socket` and `clone` (what [`docker_default`] says).
///
/// seccompiler compiles each call into its own chain of instructions: docker's list became
/// 1,525 instructions, and the kernel's checking, conversion and JIT of a program that long
/// took 0.85 ms of every RUN step (a quarter of the container init's own work). The calls
/// docker allows are mostly runs of neighbouring numbers: two instructions per run (`nr > hi`:
/// next run; else `nr >= lo`: allow, else deny) make the same policy about a tenth as long,
/// and every call the container makes walks a few dozen instructions instead of up to the
/// whole chain. The architecture check is seccompiler's own. A unit test runs both programs
/// on every call number and argument case and requires the same verdicts.
fn compact_allow_list(allowed: impl IntoIterator<Item = i64>) -> Result<BpfProgram, SandboxError> {
    let mut nrs: Vec<u32> = allowed
        .into_iter()
        .map(|n| u32::try_from(n).map_err(err))
        .collect::<Result<_, _>>()?;
    nrs.sort_unstable();
    nrs.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for n in nrs {
        match ranges.last_mut() {
            Some((_, hi)) if *hi + 1 == n => *hi = n,
            _ => ranges.push((n, n)),
        }
    }
    let nr = |n: i64| u32::try_from(n).map_err(err);
    let allow = libc::SECCOMP_RET_ALLOW;
    let deny = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let (jeq, jgt, jge, jset) = (libc::BPF_JEQ, libc::BPF_JGT, libc::BPF_JGE, libc::BPF_JSET);

    // each argument rule: its call, and its block (loads arg 0, ends in its own returns:
    // a classic BPF program only jumps forward)
    let mut blocks: Vec<(u32, Vec<sock_filter>)> = Vec::new();
    let mut personality = vec![stmt(ld, ARG0_LOW)];
    let n = PERSONALITIES.len();
    for (i, p) in PERSONALITIES.iter().enumerate() {
        // to the block's `ret allow`, past the rest of the list and its `ret deny`
        personality.push(jump(jeq, *p as u32, n - i, 0)?);
    }
    personality.extend([stmt(ret, deny), stmt(ret, allow)]);
    blocks.push((nr(libc::SYS_personality)?, personality));
    // a block that denies when one test of arg 0 holds, else allows
    let deny_when = |test: u32, k: u32| -> Result<Vec<sock_filter>, SandboxError> {
        Ok(vec![
            stmt(ld, ARG0_LOW),
            jump(test, k, 0, 1)?,
            stmt(ret, deny),
            stmt(ret, allow),
        ])
    };
    blocks.push((nr(libc::SYS_socket)?, deny_when(jeq, AF_VSOCK as u32)?));
    // s390 passes clone's flags second; the targets hoist builds for pass them first. The
    // namespace flags all live in the low 32 bits
    blocks.push((
        nr(libc::SYS_clone)?,
        deny_when(jset, CLONE_NAMESPACES as u32)?,
    ));

    // seccompiler's architecture check (load arch, equal → on, else kill the process): an
    // empty filter is that check and one return
    let empty = compile(
        BTreeMap::new(),
        SeccompAction::Allow,
        SeccompAction::Errno(0),
    )?;
    let mut prog: BpfProgram = empty[..empty.len() - 1].to_vec();
    prog.push(stmt(ld, NR));
    // the dispatch to the blocks, then the runs, then `ret deny`, `ret allow`, the blocks
    let dispatch = blocks.len();
    let runs = 2 * ranges.len();
    let mut block_at = dispatch + runs + 2;
    for (i, (call, block)) in blocks.iter().enumerate() {
        prog.push(jump(jeq, *call, block_at - i - 1, 0)?);
        block_at += block.len();
    }
    let deny_at = runs;
    for (i, (lo, hi)) in ranges.iter().enumerate() {
        // positions relative to the first run's first instruction
        let at = 2 * i;
        prog.push(jump(jgt, *hi, 1, 0)?);
        prog.push(jump(jge, *lo, deny_at + 1 - (at + 2), deny_at - (at + 2))?);
    }
    prog.push(stmt(ret, deny));
    prog.push(stmt(ret, allow));
    for (_, block) in blocks {
        prog.extend(block);
    }
    Ok(prog)
}

/// `clone3` → ENOSYS (its flags live in memory a filter cannot read; the C library then falls
/// back to `clone`, whose flags the allow list checks).
pub fn clone3_enosys() -> Result<BpfProgram, SandboxError> {
    let rules = any_args([libc::SYS_clone3]);
    compile(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )
}

/// Single-id mode: the setuid family returns 0, everything else is left to the other filters
/// (the chown family to [`notify_filter`], else [`notified_errno_filter`]).
pub fn fake_id_filter() -> Result<BpfProgram, SandboxError> {
    let notified = notified_syscalls();
    let rules = any_args(
        faked_syscalls()
            .into_iter()
            .filter(|s| !notified.contains(s)),
    );
    compile(rules, SeccompAction::Allow, SeccompAction::Errno(0))
}

/// The chown family and the switches return 0 and do nothing (where [`notify_filter`]
/// cannot be had).
pub fn notified_errno_filter() -> Result<BpfProgram, SandboxError> {
    compile(
        any_args(notified_syscalls()),
        SeccompAction::Allow,
        SeccompAction::Errno(0),
    )
}

/// The sync family returns 0 and does nothing ([`super::Spec::discard_sync`]).
pub fn discard_sync_filter() -> Result<BpfProgram, SandboxError> {
    compile(
        any_args(sync_syscalls()),
        SeccompAction::Allow,
        SeccompAction::Errno(0),
    )
}

/// What the filter below returns before it is rewritten to `SECCOMP_RET_USER_NOTIF`, which
/// seccompiler has no action for.
const NOTIFY_MARK: u32 = 0x4857;

/// The chown family and the switches go to the supervisor (`SECCOMP_RET_USER_NOTIF`). Install it with
/// [`install_with_listener`], last: the kernel prefers ERRNO to USER_NOTIF across filters.
pub fn notify_filter() -> Result<BpfProgram, SandboxError> {
    let mut prog = compile(
        any_args(notified_syscalls()),
        SeccompAction::Allow,
        SeccompAction::Trace(NOTIFY_MARK),
    )?;
    let mut rewritten = 0;
    for ins in prog.iter_mut() {
        if ins.code == (libc::BPF_RET | libc::BPF_K) as u16
            && ins.k == libc::SECCOMP_RET_TRACE | NOTIFY_MARK
        {
            ins.k = libc::SECCOMP_RET_USER_NOTIF;
            rewritten += 1;
        }
    }
    if rewritten == 0 {
        return Err(err("the chown filter has no notify return to rewrite"));
    }
    Ok(prog)
}

/// Installs `prog` on the calling thread and returns its notification descriptor (needs
/// `no_new_privs`; Linux ≥ 5.0).
pub fn install_with_listener(prog: &BpfProgram) -> Result<std::os::fd::OwnedFd, SandboxError> {
    use std::os::fd::FromRawFd;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| err("filter too long"))?,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: seccomp(2) with a valid program that outlives the call
    let fd = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if fd < 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    // SAFETY: seccomp just returned this new descriptor
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// The whole policy, in the order it must be installed.
pub fn policy(
    fake_id_calls: bool,
    unconfined: bool,
    discard_sync: bool,
) -> Result<Vec<BpfProgram>, SandboxError> {
    let mut v = if unconfined {
        Vec::new()
    } else {
        vec![docker_default()?, clone3_enosys()?]
    };
    if fake_id_calls {
        v.push(fake_id_filter()?);
    }
    if discard_sync {
        v.push(discard_sync_filter()?);
    }
    Ok(v)
}

/// Installs the policy on the calling thread, in order (needs `no_new_privs`).
pub fn install(progs: &[BpfProgram]) -> Result<(), SandboxError> {
    for p in progs {
        seccompiler::apply_filter(p).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition};

    fn cond(
        index: u8,
        len: SeccompCmpArgLen,
        op: SeccompCmpOp,
        value: u64,
    ) -> Result<SeccompRule, SandboxError> {
        let c = SeccompCondition::new(index, len, op, value).map_err(err)?;
        SeccompRule::new(vec![c]).map_err(err)
    }

    /// The profile as seccompiler compiles it (one chain per call): the reference the compact
    /// program must agree with.
    fn docker_default_chained() -> BpfProgram {
        let mut rules = any_args(ALLOWED.iter().chain(ALLOWED_ARCH).copied());
        let personality = PERSONALITIES
            .iter()
            .map(|p| cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *p))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rules.insert(libc::SYS_personality, personality);
        rules.insert(
            libc::SYS_socket,
            vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, AF_VSOCK).unwrap()],
        );
        rules.insert(
            libc::SYS_clone,
            vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(CLONE_NAMESPACES),
                0,
            )
            .unwrap()],
        );
        compile(
            rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
        )
        .unwrap()
    }

    /// Runs a classic BPF seccomp program on `data` (`seccomp_data` as bytes) the way the
    /// kernel does, for the instructions these programs use.
    fn run(prog: &[sock_filter], data: &[u8; 64]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0usize;
        loop {
            let ins = &prog[pc];
            let code = u32::from(ins.code);
            pc += 1;
            match code & 0x07 {
                c if c == libc::BPF_LD => {
                    assert_eq!(code, (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS));
                    let k = ins.k as usize;
                    a = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                c if c == libc::BPF_RET => return ins.k,
                c if c == libc::BPF_ALU => {
                    assert_eq!(code, (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K));
                    a &= ins.k;
                }
                c if c == libc::BPF_JMP => {
                    let op = code & 0xf0;
                    let taken = if op == libc::BPF_JA {
                        pc += ins.k as usize;
                        continue;
                    } else if op == libc::BPF_JEQ {
                        a == ins.k
                    } else if op == libc::BPF_JGT {
                        a > ins.k
                    } else if op == libc::BPF_JGE {
                        a >= ins.k
                    } else if op == libc::BPF_JSET {
                        a & ins.k != 0
                    } else {
                        panic!("jump {code:#x}")
                    };
                    pc += usize::from(if taken { ins.jt } else { ins.jf });
                }
                _ => panic!("instruction {code:#x}"),
            }
        }
    }

    fn data(arch: u32, nr: u32, arg0: u64) -> [u8; 64] {
        let mut d = [0u8; 64];
        d[0..4].copy_from_slice(&nr.to_le_bytes());
        d[4..8].copy_from_slice(&arch.to_le_bytes());
        d[16..24].copy_from_slice(&arg0.to_le_bytes());
        d
    }

    #[test]
    fn the_compact_profile_gives_every_call_the_verdict_of_seccompilers_chain() {
        let compact = docker_default().unwrap();
        let chained = docker_default_chained();
        assert!(
            compact.len() * 5 < chained.len(),
            "{} against {} instructions",
            compact.len(),
            chained.len()
        );
        let arch = u32::from_le_bytes(data_arch(&chained));
        let args: Vec<u64> = [0u64, 1, 8, 0x20000, 0x20008, 0xffff_ffff, 40, 41, 2, 10]
            .into_iter()
            .chain([
                CLONE_NAMESPACES,
                0x0002_0000,
                0x1000_0000,
                0x0100_0000 | 0x11,
                libc::SIGCHLD as u64,
                0x0001_0f00,
                0x1_0000_0000,
                0x1_0000_0028,
                0xffff_ffff_ffff_ffff,
            ])
            .collect();
        let mut verdicts = std::collections::BTreeSet::new();
        for nr in (0..1024u32).chain([0x4000_0000, 0x4000_0001, 0x4000_0000 | 59, u32::MAX]) {
            for &arg in &args {
                let d = data(arch, nr, arg);
                let want = run(&chained, &d);
                assert_eq!(run(&compact, &d), want, "call {nr}, arg0 {arg:#x}");
                verdicts.insert(want);
            }
        }
        // both outcomes were seen, and a foreign architecture is killed by both
        assert_eq!(verdicts.len(), 2, "{verdicts:?}");
        let foreign = data(arch ^ 0x4000_0000, libc::SYS_getpid as u32, 0);
        assert_eq!(run(&compact, &foreign), libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&chained, &foreign), libc::SECCOMP_RET_KILL_PROCESS);
    }

    /// The audit architecture value seccompiler's check compares with.
    fn data_arch(prog: &[sock_filter]) -> [u8; 4] {
        prog[1].k.to_le_bytes()
    }

    #[test]
    fn policy_compiles_for_this_machine_within_bpf_limits() {
        for (fake, sync) in [(false, false), (true, false), (false, true), (true, true)] {
            let extra = usize::from(fake) + usize::from(sync);
            assert_eq!(policy(fake, true, sync).unwrap().len(), extra);
            let p = policy(fake, false, sync).unwrap();
            assert_eq!(p.len(), 2 + extra);
            // BPF_MAXINSNS
            assert!(
                p.iter().all(|f| f.len() <= 4096),
                "{:?}",
                p.iter().map(Vec::len).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn allow_list_leaves_out_what_docker_denies() {
        let all: Vec<i64> = ALLOWED.iter().chain(ALLOWED_ARCH).copied().collect();
        for denied in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_pivot_root,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_bpf,
            libc::SYS_perf_event_open,
            libc::SYS_kexec_load,
            libc::SYS_init_module,
            libc::SYS_finit_module,
            libc::SYS_delete_module,
            libc::SYS_open_by_handle_at,
            libc::SYS_fsopen,
            libc::SYS_fsmount,
            libc::SYS_fspick,
            libc::SYS_open_tree,
            libc::SYS_move_mount,
            libc::SYS_userfaultfd,
            libc::SYS_acct,
            libc::SYS_quotactl,
            libc::SYS_swapon,
            libc::SYS_swapoff,
            libc::SYS_reboot,
            libc::SYS_settimeofday,
            libc::SYS_clock_settime,
            libc::SYS_syslog,
            libc::SYS_lookup_dcookie,
            libc::SYS_clone3,
            libc::SYS_personality,
            libc::SYS_clone,
            libc::SYS_socket,
        ] {
            assert!(
                !all.contains(&denied),
                "{denied} is allowed unconditionally"
            );
        }
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len(), "a call is listed twice");
    }
}
