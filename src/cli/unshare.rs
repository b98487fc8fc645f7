//! `hoist unshare [COMMAND [ARG…]]` (buildah's and podman's verb): runs a command as uid 0 in
//! hoist's user namespace (the id mapping every rootless hoist verb uses) and a mount namespace
//! of its own, so `hoist mount` works there and its mounts end with the command. As real root
//! only the mount namespace is new. [`userns::UNSHARED_ENV`] tells a hoist started inside to
//! take this namespace as its own; `--mount [VAR=]CONTAINER` mounts containers in it first. The
//! command replaces hoist: its exit code is the verb's.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::{output, Globals};
use crate::container::{self, mount};
use crate::sandbox::userns::{self, UsernsMode};
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Without COMMAND runs `$SHELL` (else `/bin/sh`). Inside, `id -u` is 0, files owned by the user show as root's, and `hoist` verbs use this namespace instead of making their own, so `hoist mount` can be used: `hoist unshare sh -c 'p=$(hoist mount c); ls $p; hoist umount c'`. `--mount c` mounts container `c` for the command and sets `$c` to its path (`--mount VAR=c`: `$VAR`), as buildah's. The variable HOIST_UNSHARED marks the namespace. Exit code: the command's; 126 when it cannot be run, 127 when it is not found."
)]
pub struct Args {
    /// Mount a working container for the command and set VARIABLE (default: the name as given)
    /// to its path (repeatable)
    #[arg(short, long = "mount", value_name = "[VARIABLE=]CONTAINER")]
    pub mount: Vec<String>,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `--mount [VARIABLE=]CONTAINER` split into the variable and the container.
fn mount_spec(spec: &str) -> anyhow::Result<(String, String)> {
    let (var, name) = match spec.split_once('=') {
        Some((v, n)) => (v.to_string(), n.to_string()),
        None => (spec.to_string(), spec.to_string()),
    };
    if var.is_empty() || name.is_empty() || var.contains('\0') {
        anyhow::bail!("`--mount {spec}`: give `[VARIABLE=]CONTAINER`");
    }
    Ok((var, name))
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let specs = args
        .mount
        .iter()
        .map(|m| mount_spec(m))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mode = match userns::current() {
        Some(UsernsMode::Unavailable { reason }) => {
            anyhow::bail!("cannot enter hoist's user namespace: {reason}")
        }
        Some(m) => m.clone(),
        None => UsernsMode::Root,
    };
    // a fresh rootless namespace comes with a private mount namespace of its own (`enter`);
    // root, or a hoist already inside `hoist unshare`, needs one made now
    if matches!(mode, UsernsMode::Root) || userns::inherited() {
        nix::sched::unshare(CloneFlags::CLONE_NEWNS).context("making a mount namespace")?;
        nix::mount::mount(
            None::<&str>,
            Path::new("/"),
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("making the mount namespace private")?;
    }
    // the containers are mounted in the new mount namespace: the mounts end with the command
    let mut mounted = Vec::new();
    if !specs.is_empty() {
        let store = Store::open(&globals.root)?;
        let recs = specs
            .iter()
            .map(|(_, name)| containers::find(&store, name))
            .collect::<Result<Vec<_>, _>>()?;
        for ((var, _), r) in specs.iter().zip(&recs) {
            let _held = container::lock(&store, r)?;
            mounted.push((var.clone(), mount::mount(&store, r)?));
        }
    }
    let (program, rest) = match args.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (
            std::env::var("SHELL")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".to_string()),
            Vec::new(),
        ),
    };
    // a name not found on PATH is 127 even where a PATH dir cannot be read (exec says EACCES)
    if !program.contains('/') && userns::find_program(&program).is_none() {
        output::error(&format!("cannot run `{program}`: command not found"));
        return Ok(ExitCode::from(127));
    }
    let mut cmd = std::process::Command::new(&program);
    cmd.args(&rest);
    cmd.env(userns::UNSHARED_ENV, serde_json::to_string(&mode)?)
        .env(mount::SESSION_ENV, std::process::id().to_string());
    for (var, path) in &mounted {
        cmd.env(var, path);
    }
    let err = cmd.exec();
    output::error(&format!("cannot run `{program}`: {err}"));
    Ok(ExitCode::from(
        if err.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        },
    ))
}
