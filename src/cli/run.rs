//! `hoist run`: runs an image's default command, or the one given, in a container (docker's
//! rules for Entrypoint/Cmd, image Env/WorkingDir/User as defaults). Without `--rm` the
//! container is kept in the store (docker's way; `hoist ps -a`, `diff`, `commit`, `rm`); with
//! `--rm` its changes live in a temporary upper dir and are thrown away. `hoist run NAME` where
//! NAME is an existing container (its name or full ID) runs in that container and keeps the
//! changes (buildah's `run CONTAINER`); a container name wins over an image of the same name.
//!
//! Exit status: the command's own; 126/127 when it cannot be started (docker's), 125 when
//! hoist itself fails (podman's convention).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::Globals;
use crate::container;
use crate::sandbox::{self, Mount, Network, SandboxError, Spec};
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, clap::Args)]
#[command(
    trailing_var_arg = true,
    after_long_help = "Without `--rm` the container is kept when the command ends, as docker keeps \
it: `hoist ps -a` lists it, `hoist diff NAME` shows its changes, `hoist commit NAME IMAGE` makes \
an image of it, `hoist rm NAME` removes it. With `--rm` its changes live in a temporary upper \
dir and are thrown away.

`hoist run CONTAINER [CMD…]`: when the first argument is the name or full ID of an existing \
container (`hoist from`, or an earlier `hoist run --name`), the command runs in that container \
and its changes stay in it (buildah's `run`); a container name wins over an image of the same \
name. Its config (`hoist config`) gives the defaults.

Rootless: with a subordinate id range (/etc/subuid, /etc/subgid, newuidmap) images keep all their \
owners. With a single id (see `hoist info`) only root exists inside: chown to other owners and the \
setuid/setgid/setgroups calls succeed without doing anything (a seccomp filter), so files keep the \
one owner that exists, and `-u` with another user is an error.

Exit status: the command's own (128+n when signal n ended it); 126 or 127 when it cannot be \
started; 125 when hoist itself fails. SIGINT and SIGTERM end the container.

Network: where `pasta` (Debian package `passt`) is installed the default is `private`: a network \
namespace shared by the runs of one hoist process, with outbound access and no access to the \
host's loopback (neither through 127.0.0.1 nor through the gateway address). Otherwise the \
default is `host`; `hoist info` says which applies and why."
)]
pub struct Args {
    /// When to pull the image: `always`, `missing` (default), `never`, `newer` (`--pull` alone: `always`)
    #[arg(long, value_enum, value_name = "POLICY", num_args = 0..=1, require_equals = true, default_missing_value = "always")]
    pub pull: Option<super::pull::PullPolicy>,
    #[command(flatten)]
    pub registry: super::pull::RegistryArgs,
    #[command(flatten)]
    pub trust: super::sign::TrustArgs,
    /// Remove the container when it exits (otherwise it is kept, as docker keeps it)
    #[arg(long)]
    pub rm: bool,
    /// Name of the kept container (default: IMAGE-working-container, numbered when taken)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Keep standard input open
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (`K=V`, or `K` to take the value from hoist's environment)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Bind-mount a host path: `HOST:PATH[:ro|rw]`
    #[arg(short, long = "volume", value_name = "HOST:PATH[:ro]")]
    pub volume: Vec<String>,
    /// Working directory inside the container (created when missing)
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// User inside the container: `name|uid[:group|gid]`
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// `private` (own namespace, outbound access, no host loopback; the default where `pasta`
    /// is installed, see `hoist info`), `host` or `none` (only loopback)
    #[arg(long, value_enum)]
    pub network: Option<NetworkArg>,
    /// Override the image's entrypoint (`""` clears it)
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// The container's hostname (default: its random id)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Security option: only `seccomp=unconfined` (no docker seccomp profile, so the command
    /// can make namespaces of its own: hoist or podman inside)
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// The image to run, or an existing container to run in
    #[arg(value_name = "IMAGE|CONTAINER")]
    pub image: String,
    /// The command and its arguments (default: the image's)
    #[arg(allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkArg {
    Private,
    Host,
    None,
}

/// The parts of an image's config a run uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDefaults {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

impl ImageDefaults {
    /// From an OCI image config.
    pub fn from_config(c: &oci_spec::image::ImageConfiguration) -> ImageDefaults {
        let Some(cfg) = c.config() else {
            return ImageDefaults::default();
        };
        ImageDefaults {
            entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
            cmd: cfg.cmd().clone().unwrap_or_default(),
            env: cfg.env().clone().unwrap_or_default(),
            working_dir: cfg.working_dir().clone().unwrap_or_default(),
            user: cfg.user().clone().unwrap_or_default(),
        }
    }
}

/// The command line, environment, working dir and user of the run (docker's rules: a given
/// `--entrypoint` replaces the image's and drops its Cmd; given arguments replace Cmd).
pub fn command_of(
    args: &Args,
    image: &ImageDefaults,
    host_env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<(Vec<String>, Vec<String>, String, String)> {
    let (entrypoint, cmd) = match &args.entrypoint {
        Some(e) => {
            let ep = if e.is_empty() {
                vec![]
            } else {
                vec![e.clone()]
            };
            (ep, args.command.clone())
        }
        None if args.command.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), args.command.clone()),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        anyhow::bail!(
            "no command specified: image `{}` has no Entrypoint or Cmd and none was given",
            args.image
        );
    }
    let mut env = image.env.clone();
    for e in &args.env {
        match e.split_once('=') {
            Some(("", _)) => anyhow::bail!("invalid environment variable `{e}`"),
            Some(_) => env.push(e.clone()),
            None => {
                if let Some(v) = host_env(e) {
                    env.push(format!("{e}={v}"));
                }
            }
        }
    }
    let cwd = args
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| image.working_dir.clone());
    let cwd = if cwd.is_empty() { "/".to_string() } else { cwd };
    if !cwd.starts_with('/') {
        anyhow::bail!("working directory `{cwd}` is not an absolute path");
    }
    let user = args.user.clone().unwrap_or_else(|| image.user.clone());
    Ok((argv, env, cwd, user))
}

/// Parses `-v HOST:PATH[:ro|rw]`.
/// Whether `--security-opt` asks for no seccomp profile (the one option supported).
pub fn seccomp_unconfined(opts: &[String]) -> anyhow::Result<bool> {
    let mut unconfined = false;
    for o in opts {
        match o.split_once(['=', ':']) {
            Some(("seccomp", "unconfined")) => unconfined = true,
            _ => {
                anyhow::bail!("security option `{o}` is not supported (only `seccomp=unconfined`)")
            }
        }
    }
    Ok(unconfined)
}

pub fn parse_volume(v: &str) -> anyhow::Result<Mount> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, ro) = match parts.as_slice() {
        [s, d] => (*s, *d, false),
        [s, d, "ro"] => (*s, *d, true),
        [s, d, "rw"] => (*s, *d, false),
        [_, _, o] => anyhow::bail!("volume `{v}`: unknown option `{o}` (use `ro` or `rw`)"),
        _ => anyhow::bail!("volume `{v}` must be `HOST:PATH[:ro|rw]`"),
    };
    if !src.starts_with('/') {
        anyhow::bail!(
            "volume `{v}`: host path `{src}` must be absolute (named volumes are not supported)"
        );
    }
    if !dst.starts_with('/') {
        anyhow::bail!("volume `{v}`: container path `{dst}` must be absolute");
    }
    let source = PathBuf::from(src);
    if !source.exists() {
        anyhow::bail!("volume `{v}`: host path `{src}` does not exist");
    }
    Ok(Mount::Bind {
        source,
        destination: dst.to_string(),
        readonly: ro,
    })
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    match run_inner(&args, globals) {
        Ok(code) => Ok(code),
        Err(e) => {
            if let Some(SandboxError::Exec { message, code }) = e.downcast_ref::<SandboxError>() {
                super::output::error(message);
                return Ok(ExitCode::from(u8::try_from(*code).unwrap_or(127)));
            }
            super::output::error(&format!("{e:#}"));
            Ok(ExitCode::from(125))
        }
    }
}

/// The image to run: from the store, pulled as `--pull` says.
fn resolve_image(store: &Store, args: &Args) -> anyhow::Result<crate::store::ImageRecord> {
    let present = match store.resolve(&args.image) {
        Ok(r) => Some(r),
        Err(crate::store::StoreError::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let policy = args.pull.unwrap_or_default();
    if policy == super::pull::PullPolicy::Never
        || (present.is_some() && policy == super::pull::PullPolicy::Missing)
    {
        return present.ok_or_else(|| {
            anyhow::anyhow!(
                "image `{}` is not in the local store, and pulling is off (`--pull=never`)",
                args.image
            )
        });
    }
    let puller =
        super::pull::Puller::new(&args.registry, policy, None, false)?.with_trust(&args.trust);
    puller.resolve(store, &args.image, present)
}

fn run_inner(args: &Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    if args.tty && args.interactive && !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        anyhow::bail!("the input device is not a TTY: `-it` needs a terminal on standard input");
    }
    let mounts = args
        .volume
        .iter()
        .map(|v| parse_volume(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // checked before anything is made
    seccomp_unconfined(&args.security_opt)?;
    let store = Store::open(&globals.root)?;
    // a container (name or full ID) wins over an image of the same name
    let existing = containers::list(&store)?
        .into_iter()
        .find(|c| c.name == args.image || c.id == args.image);
    if let Some(mut rec) = existing {
        if args.rm || args.name.is_some() || args.pull.is_some() {
            anyhow::bail!(
                "`{}` is a container: `--rm`, `--name` and `--pull` apply to images only",
                args.image
            );
        }
        let _held = container::lock(&store, &rec)?;
        container::mount::check_unmounted(&store, &rec)?;
        let config = container::config(&store, &rec)?;
        let oci: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(&config.to_json()).context("reading the container's config")?;
        let defaults = ImageDefaults::from_config(&oci);
        let (argv, env, cwd, user) = command_of(args, &defaults, |k| std::env::var(k).ok())?;
        let lower_dirs = container::lower_dirs(&store, &rec)?;
        let empty = store.tmp_dir()?;
        let lower_dirs = if lower_dirs.is_empty() {
            vec![empty.path().to_path_buf()]
        } else {
            lower_dirs
        };
        let spec = Spec::new(
            lower_dirs,
            containers::upper(&store, &rec.id),
            containers::work(&store, &rec.id),
            argv.clone(),
        );
        let status = run_spec(spec, args, env, cwd, user, mounts)?;
        container::record_run(&store, &mut rec, &argv)?;
        return Ok(ExitCode::from(u8::try_from(status).unwrap_or(125)));
    }
    if let Some(n) = &args.name {
        if args.rm {
            anyhow::bail!("`--name {n}` names a kept container: it cannot be used with `--rm`");
        }
        containers::check_name(n)?;
    }
    let record = resolve_image(&store, args)?;
    let defaults = ImageDefaults::from_config(&record.config);
    let (argv, env, cwd, user) = command_of(args, &defaults, |k| std::env::var(k).ok())?;
    if !args.rm {
        // docker's way: the container is kept (made before the command runs, so a crash of
        // hoist leaves it listed)
        let mut rec = container::create(
            &store,
            Some(&record),
            &args.image,
            args.name.as_deref(),
            &container::default_name(&args.image),
        )?;
        let _held = container::lock(&store, &rec)?;
        let spec = Spec::new(
            store.layer_dirs(&record)?,
            containers::upper(&store, &rec.id),
            containers::work(&store, &rec.id),
            argv.clone(),
        );
        let status = run_spec(spec, args, env, cwd, user, mounts)?;
        container::record_run(&store, &mut rec, &argv)?;
        return Ok(ExitCode::from(u8::try_from(status).unwrap_or(125)));
    }
    let lower_dirs = store.layer_dirs(&record)?;
    // the container's changes live in the store's own scratch space and go with it
    let scratch = match store.tmp_dir() {
        Ok(t) => t,
        // a read-only store can still be run from: the upper dir goes to the system temp dir
        Err(e) => {
            log::debug!("store scratch space unavailable ({e}); using the system temp dir");
            tempfile::Builder::new()
                .prefix("hoist-container-")
                .tempdir()
                .context("creating the container's upper dir")?
        }
    };
    let spec = Spec::new(
        lower_dirs,
        scratch.path().join("upper"),
        scratch.path().join("work"),
        argv,
    );
    let status = run_spec(spec, args, env, cwd, user, mounts)?;
    drop(scratch);
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(125)))
}

/// Runs the spec with the flags' settings; returns the command's exit code.
fn run_spec(
    mut spec: Spec,
    args: &Args,
    env: Vec<String>,
    cwd: String,
    user: String,
    mounts: Vec<Mount>,
) -> anyhow::Result<i32> {
    spec.env = env;
    spec.cwd = cwd;
    spec.user = user;
    spec.hostname = args.hostname.clone().unwrap_or_default();
    spec.network = match args.network {
        Some(NetworkArg::Host) => Network::Host,
        Some(NetworkArg::None) => Network::None,
        Some(NetworkArg::Private) => Network::Private,
        None => sandbox::network::default_network().network,
    };
    spec.mounts = mounts;
    spec.tty = args.tty;
    spec.stdin = args.interactive;
    spec.seccomp_unconfined = seccomp_unconfined(&args.security_opt)?;
    let status = sandbox::run(&spec)?;
    if let Some(sig) = status.interrupted {
        log::debug!("container ended by signal {sig} sent to hoist");
    }
    Ok(status.code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: Args,
    }

    #[test]
    fn security_opt_takes_only_seccomp_unconfined() {
        assert!(!seccomp_unconfined(&[]).unwrap());
        assert!(seccomp_unconfined(&["seccomp=unconfined".into()]).unwrap());
        assert!(seccomp_unconfined(&["seccomp:unconfined".into()]).unwrap());
        let e = seccomp_unconfined(&["apparmor=unconfined".into()]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "security option `apparmor=unconfined` is not supported (only `seccomp=unconfined`)"
        );
        assert!(seccomp_unconfined(&["seccomp=/p.json".into()]).is_err());
    }

    fn args(v: &[&str]) -> Args {
        T::parse_from(std::iter::once("run").chain(v.iter().copied())).a
    }

    fn img() -> ImageDefaults {
        ImageDefaults {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c1".into()],
            env: vec!["A=1".into()],
            working_dir: "/w".into(),
            user: "app".into(),
        }
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let none = |_: &str| None;
        let cases: &[(&[&str], &[&str])] = &[
            (&["i"], &["/ep", "c1"]),
            (&["i", "x", "-y"], &["/ep", "x", "-y"]),
            (&["--entrypoint", "sh", "i"], &["sh"]),
            (
                &["--entrypoint", "sh", "i", "-c", "true"],
                &["sh", "-c", "true"],
            ),
            (&["--entrypoint", "", "i", "ls"], &["ls"]),
        ];
        for (cli, want) in cases {
            let (argv, ..) = command_of(&args(cli), &img(), none).unwrap();
            assert_eq!(argv, want.to_vec(), "{cli:?}");
        }
        let e = command_of(&args(&["--entrypoint", "", "i"]), &img(), none).unwrap_err();
        assert!(e.to_string().starts_with("no command specified"), "{e}");
    }

    #[test]
    fn env_workdir_user_defaults_and_overrides() {
        let host = |k: &str| (k == "FROM_HOST").then(|| "h".to_string());
        let (_, env, cwd, user) = command_of(&args(&["i"]), &img(), host).unwrap();
        assert_eq!(
            (env, cwd, user),
            (vec!["A=1".to_string()], "/w".to_string(), "app".to_string())
        );
        let (_, env, cwd, user) = command_of(
            &args(&[
                "-e",
                "B=2",
                "-e",
                "FROM_HOST",
                "-e",
                "UNSET",
                "-w",
                "/x",
                "-u",
                "0",
                "i",
            ]),
            &img(),
            host,
        )
        .unwrap();
        assert_eq!(env, vec!["A=1", "B=2", "FROM_HOST=h"]);
        assert_eq!((cwd.as_str(), user.as_str()), ("/x", "0"));
        assert!(command_of(&args(&["-w", "rel", "i"]), &img(), host).is_err());
    }

    #[test]
    fn volumes_parse_or_fail_clearly() {
        assert_eq!(
            parse_volume("/tmp:/data:ro").unwrap(),
            Mount::Bind {
                source: "/tmp".into(),
                destination: "/data".into(),
                readonly: true
            }
        );
        assert!(matches!(
            parse_volume("/tmp:/data").unwrap(),
            Mount::Bind {
                readonly: false,
                ..
            }
        ));
        for (bad, msg) in [
            ("vol:/data", "named volumes are not supported"),
            ("/tmp:data", "must be absolute"),
            ("/tmp:/d:rx", "unknown option `rx`"),
            ("/nonexistent-hoist:/d", "does not exist"),
            ("/tmp", "must be `HOST:PATH[:ro|rw]`"),
        ] {
            let e = parse_volume(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }
}
