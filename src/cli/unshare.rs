//! `hoist unshare [COMMAND [ARG…]]` (buildah's and podman's verb): runs a command as uid 0 in
//! hoist's user namespace (the id mapping every rootless hoist verb uses) and a mount namespace
//! of its own, so `hoist mount` works there and its mounts end with the command. As real root
//! only the mount namespace is new. [`userns::UNSHARED_ENV`] tells a hoist started inside to
//! take this namespace as its own. The command replaces hoist: its exit code is the verb's.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use super::{output, Globals};
use crate::sandbox::userns::{self, UsernsMode};

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "Without COMMAND runs `$SHELL` (else `/bin/sh`). Inside, `id -u` is 0, files owned by the user show as root's, and `hoist` verbs use this namespace instead of making their own, so `hoist mount` can be used: `hoist unshare sh -c 'p=$(hoist mount c); ls $p; hoist umount c'`. The variable HOIST_UNSHARED marks it. Exit code: the command's; 126 when it cannot be run, 127 when it is not found."
)]
pub struct Args {
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
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
    cmd.env(userns::UNSHARED_ENV, serde_json::to_string(&mode)?);
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
