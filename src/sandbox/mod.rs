//! sandbox: runs a command in a rootless container — hoist's user namespace (entered once, in
//! `main`, by [`userns::enter`]), then per run new mount, pid, uts, ipc (and network)
//! namespaces (the network one shared per hoist process, see `network.rs`), a root file system
//! that is a nodev overlay of the image's unpacked layers, a session of its own with no host
//! terminal, docker's default capabilities, `no_new_privs`, docker's default seccomp profile,
//! and in single-id mode seccomp rules that answer the chown and setuid families with success
//! (files keep the one owner that exists).
//!
//! It knows nothing of Dockerfiles, images or the store: callers hand it a [`Spec`] of layer
//! dirs, an upper dir and a command. It needs no setuid helper (the optional `newuidmap` is
//! only used to map a subordinate range), no fuse and no daemon. The container's init is
//! `/proc/self/exe __init` (see `init.rs`), cloned straight into its namespaces; a build's
//! steps get theirs forked by a launcher started once per build (`zygote.rs`).

pub mod caps;
mod chown_record;
pub mod init;
pub mod memdir;
pub mod mounts;
pub mod network;
pub mod probe;
pub mod process;
pub mod seccomp;
pub mod spec;
pub mod sys;
pub mod user;
pub mod userns;
pub mod zygote;

use std::path::PathBuf;

pub use process::{
    container_id, names_another_user, run, run_launched, run_with_stdio, stop_all, RunStatus, Stdio,
};
pub use spec::{Mount, Network, Spec};
pub use userns::UsernsMode;
pub use zygote::Launcher;

/// Everything that can go wrong in the sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mounting `{target}`: {message}")]
    Mount { target: PathBuf, message: String },
    #[error("{0}")]
    Spec(String),
    #[error("{0}")]
    User(String),
    #[error("capabilities: {0}")]
    Caps(String),
    #[error("seccomp filter: {0}")]
    Seccomp(String),
    #[error("private network: {0}")]
    Network(String),
    #[error("no user namespace: {0}")]
    NoUserns(String),
    /// Setting the container up failed (the init's message).
    #[error("container setup: {0}")]
    Setup(String),
    /// The command could not be started: docker's message, and its exit code (127 or 126).
    #[error("{message}")]
    Exec { message: String, code: i32 },
}
