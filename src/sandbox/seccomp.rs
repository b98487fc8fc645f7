//! The seccomp filter of single-id mode: with only 0 → the user mapped, a package manager's
//! `chown` to any other owner, or its dropping of privileges, would fail the step with EINVAL.
//! The filter answers the chown family, the setuid/setgid family and `setgroups` with success
//! and does nothing: the files keep the one owner that exists, the process stays uid 0. Nothing
//! false is recorded anywhere (the docs say so).
//!
//! Built with `seccompiler` (a maintained crate; seccomp(2), filter mode). It must be installed
//! last, after the sandbox's own id changes, in the command process only.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

use super::SandboxError;

/// The calls answered with success in single-id mode.
pub fn faked_syscalls() -> Vec<i64> {
    let mut v = vec![
        libc::SYS_fchown,
        libc::SYS_fchownat,
        libc::SYS_setuid,
        libc::SYS_setgid,
        libc::SYS_setreuid,
        libc::SYS_setregid,
        libc::SYS_setresuid,
        libc::SYS_setresgid,
        libc::SYS_setfsuid,
        libc::SYS_setfsgid,
        libc::SYS_setgroups,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_chown, libc::SYS_lchown]);
    v
}

fn arch() -> Result<TargetArch, SandboxError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| {
        SandboxError::Seccomp(format!("architecture `{}`: {e}", std::env::consts::ARCH))
    })
}

/// Compiles the filter: listed calls return 0, everything else runs.
pub fn fake_id_filter() -> Result<BpfProgram, SandboxError> {
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        faked_syscalls().into_iter().map(|s| (s, vec![])).collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(0),
        arch()?,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))
}

/// Installs a compiled filter on the calling thread (needs `no_new_privs`).
pub fn install(prog: &BpfProgram) -> Result<(), SandboxError> {
    seccompiler::apply_filter(prog).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_compiles_for_this_machine() {
        let prog = fake_id_filter().unwrap();
        assert!(prog.len() > faked_syscalls().len());
    }
}
