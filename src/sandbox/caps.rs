//! Capabilities of the command: docker's default set (moby's `oci/caps/defaults.go`), every
//! other capability dropped from the bounding set, no inheritable or ambient ones, and
//! `no_new_privs` so nothing the command executes can gain more (prctl(2)).
//!
//! It must only be called in the forked command process, just before `execve`: it changes
//! process-wide state.

use caps::{CapSet, Capability, CapsHashSet};

use super::SandboxError;

/// docker's default capability set.
pub const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn err(what: &str) -> impl FnOnce(caps::errors::CapsError) -> SandboxError + '_ {
    move |e| SandboxError::Caps(format!("{what}: {e}"))
}

/// Drops every capability outside [`DEFAULT`] from the bounding set (needs `CAP_SETPCAP`, so
/// this runs before the uid changes).
pub fn drop_bounding() -> Result<(), SandboxError> {
    let keep: CapsHashSet = DEFAULT.iter().copied().collect();
    for cap in caps::all() {
        if !keep.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(err("dropping from the bounding set"))?;
        }
    }
    Ok(())
}

/// Leaves the effective and permitted sets at [`DEFAULT`] (for uid 0; a non-zero uid already
/// lost them all in setuid(2)) and clears the inheritable and ambient sets.
pub fn limit_sets() -> Result<(), SandboxError> {
    let keep: CapsHashSet = DEFAULT.iter().copied().collect();
    caps::clear(None, CapSet::Ambient).map_err(err("clearing the ambient set"))?;
    caps::clear(None, CapSet::Inheritable).map_err(err("clearing the inheritable set"))?;
    let permitted = caps::read(None, CapSet::Permitted).map_err(err("reading capabilities"))?;
    let target: CapsHashSet = permitted.intersection(&keep).copied().collect();
    caps::set(None, CapSet::Effective, &target).map_err(err("setting the effective set"))?;
    caps::set(None, CapSet::Permitted, &target).map_err(err("setting the permitted set"))?;
    Ok(())
}

/// Empties the effective and permitted sets: what setuid(2) to a non-zero uid does, for a
/// non-root `USER` that single-id mode runs as uid 0 (with `no_new_privs`, exec gives none back).
pub fn clear_all() -> Result<(), SandboxError> {
    caps::clear(None, CapSet::Effective).map_err(err("clearing the effective set"))?;
    caps::clear(None, CapSet::Permitted).map_err(err("clearing the permitted set"))?;
    Ok(())
}

/// Sets `no_new_privs` (prctl(2) `PR_SET_NO_NEW_PRIVS`).
pub fn no_new_privs() -> Result<(), SandboxError> {
    // SAFETY: prctl with integer arguments only
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(SandboxError::Caps(format!(
            "setting no_new_privs: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}
