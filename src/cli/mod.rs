//! The command line: one clap tree (help, man pages and completions all come from it), one file
//! per verb, and the mapping of results to exit codes.
//!
//! Raw flags are resolved once into [`Globals`]; verbs never see the top-level clap types.
//! Exit codes: 0 ok, 1 build or user error, 2 usage, 125 internal; `hoist run` returns its
//! command's own code (podman's convention).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod build;
pub mod buildcache;
pub mod check;
pub mod commit;
pub mod completions;
pub mod config;
pub mod copy;
pub mod diff;
pub mod from;
pub mod history;
pub mod images;
pub mod import;
pub mod info;
pub mod init;
pub mod inspect;
pub mod load;
pub mod login;
pub mod logout;
pub mod mount;
pub mod output;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rm;
pub mod rmi;
pub mod run;
pub mod save;
pub mod search;
pub mod sign;
pub mod tag;
pub mod unshare;
pub mod verbs;
pub mod version;

/// hoist: build OCI container images without root and without a daemon.
#[derive(Debug, Parser)]
#[command(name = "hoist", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Directory of the local image store (an OCI image layout)
    #[arg(long, global = true, env = "HOIST_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// How much to log on standard error
    #[arg(long, global = true, value_enum, default_value_t = LogLevel::Warn, value_name = "LEVEL")]
    pub log_level: LogLevel,

    #[command(subcommand)]
    pub command: Command,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile
    Build(Box<build::Args>),
    /// List images in the local store
    Images(images::Args),
    /// Give an image more names
    Tag(tag::Args),
    /// Remove image names, and images nothing names
    Rmi(rmi::Args),
    /// Show an image's details as JSON
    Inspect(inspect::Args),
    /// Show the history of an image
    History(history::Args),
    /// Remove unnamed images and unused data
    Prune(prune::Args),
    /// Manage the build cache (`builder prune`)
    #[command(subcommand)]
    Builder(prune::BuilderCommand),
    /// Write images to an oci-archive or docker-archive file
    Save(save::Args),
    /// Load images from an oci-archive or docker-archive file
    Load(load::Args),
    /// Make a base image from a root file system tarball
    Import(import::Args),
    /// Run a command in a new container from an image, or in a working container
    Run(run::Args),
    /// Make a working container from an image (buildah's `from`) and print its name
    From(from::Args),
    /// List containers (`-a`: all, not only those in use)
    Ps(ps::Args),
    /// List every working container (buildah's `containers`: `ps -a`)
    Containers(ps::Args),
    /// Remove working containers
    Rm(rm::Args),
    /// Show what a container changed (`A`, `C`, `D` lines, as `docker diff`)
    Diff(diff::Args),
    /// Copy host files (or an image's) into a working container
    Copy(copy::Args),
    /// Copy into a working container, unpacking archives and fetching URLs (as ADD)
    Add(copy::Args),
    /// Edit a working container's config (its runs and its next commit use it)
    Config(config::Args),
    /// Make an image of a container's changes
    Commit(commit::Args),
    /// Mount a working container's root file system and print where (rootless: inside `unshare`)
    Mount(mount::Args),
    /// Unmount working containers mounted by `hoist mount`
    #[command(visible_alias = "unmount")]
    Umount(mount::UmountArgs),
    /// Run a command in hoist's user namespace and a mount namespace of its own
    Unshare(unshare::Args),
    /// Copy an image from a registry into the local store
    Pull(pull::Args),
    /// Copy an image of the local store to a registry
    Push(push::Args),
    /// Check and store credentials for a registry
    Login(login::Args),
    /// Remove stored registry credentials
    Logout(logout::Args),
    /// List a registry's repositories or a repository's tags
    Search(search::Args),
    /// Make a sigstore key pair for signing images (cosign's key file format)
    GenerateSigstoreKey(sign::GenerateKeyArgs),
    /// Sign an image in a registry (a cosign-style signature stored beside it)
    Sign(sign::SignArgs),
    /// Show the signatures of an image in a registry and which keys verify them
    #[command(subcommand)]
    Trust(sign::TrustCommand),
    /// Show how hoist runs on this machine (rootless mode, store, kernel features)
    Info(info::Args),
    /// Check the store for damage and leftovers of interrupted work (`--repair` removes them)
    Check(check::Args),
    /// Print a shell completion script
    Completions(completions::Args),
    /// Manage images (docker's `image ls`, `image rm`, …: each the same as the short verb)
    #[command(subcommand)]
    Image(verbs::ImageCommand),
    /// Manage containers (docker's `container ls`, `container rm`, `container prune`, …)
    #[command(subcommand)]
    Container(verbs::ContainerCommand),
    /// Manage the store (docker's `system df`, `system prune`, `system info`)
    #[command(subcommand)]
    System(verbs::SystemCommand),
    /// Show hoist's version, as text or `--format json`
    Version(version::Args),
    /// The container's init (internal: started by hoist itself)
    #[command(name = "__init", hide = true)]
    Init(init::Args),
}

/// Settings every verb shares, resolved once from flags and the environment.
#[derive(Debug, Clone)]
pub struct Globals {
    /// The store's root directory.
    pub root: PathBuf,
    pub log_level: LogLevel,
}

impl Globals {
    fn resolve(root: Option<PathBuf>, log_level: LogLevel) -> anyhow::Result<Globals> {
        let root = match root {
            Some(r) => r,
            None => default_root()?,
        };
        Ok(Globals { root, log_level })
    }
}

/// `$XDG_DATA_HOME/hoist`, else `~/.local/share/hoist`.
pub fn default_root() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(x).join("hoist"));
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/hoist")),
        None => anyhow::bail!("cannot find the store: set `--root`, `HOIST_ROOT` or `HOME`"),
    }
}

/// The sandbox's own processes: the container init and the build's launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HiddenVerb {
    Init,
    Zygote,
}

/// `--log-level LEVEL __init FD` or `… __zygote FD`, the sandbox's own spelling
/// (`sandbox::process`), and nothing else: anything other goes through the full parser.
fn init_fast_path(
    args: impl Iterator<Item = std::ffi::OsString>,
) -> Option<(HiddenVerb, LogLevel, i32)> {
    let args: Vec<std::ffi::OsString> = args.take(5).collect();
    let [flag, level, verb, fd] = args.as_slice() else {
        return None;
    };
    let internal = match verb.to_str()? {
        "__init" => HiddenVerb::Init,
        "__zygote" => HiddenVerb::Zygote,
        _ => return None,
    };
    if flag != "--log-level" {
        return None;
    }
    let level = <LogLevel as clap::ValueEnum>::from_str(level.to_str()?, false).ok()?;
    let fd = fd.to_str()?.parse().ok()?;
    Some((internal, level, fd))
}

/// Parses the command line, runs the verb, and turns the outcome into an exit code.
pub fn main() -> ExitCode {
    // the container init (started once per RUN step by the sandbox, or forked by the launcher)
    // and the launcher, with exactly these arguments: they skip building the whole command
    // tree (a few ms of every step otherwise)
    if let Some((internal, level, fd)) = init_fast_path(std::env::args_os().skip(1)) {
        output::init_logger(level);
        return match internal {
            HiddenVerb::Init => init::run(init::Args { fd }),
            HiddenVerb::Zygote => {
                let code = crate::sandbox::zygote::main(fd);
                ExitCode::from(u8::try_from(code).unwrap_or(1))
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(code) = verbs::unknown_verb(&e) {
                return code;
            }
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    output::init_logger(cli.log_level);
    // a management verb (`image ls`) is the short verb (`images`) under another name
    let Cli {
        root,
        log_level,
        command,
    } = cli;
    let command = command.into_verb();
    // the container init must not touch the store or anything else before it runs
    if let Command::Init(args) = command {
        return init::run(args);
    }
    let globals = match Globals::resolve(root, log_level) {
        Ok(g) => g,
        Err(e) => return report(e),
    };
    // verbs that touch layer data run in hoist's one user namespace, entered while this process
    // is still single-threaded (see `sandbox::userns`)
    if matches!(
        command,
        Command::Build(_)
            | Command::Run(_)
            | Command::Import(_)
            | Command::Load(_)
            | Command::Rmi(_)
            | Command::Prune(_)
            | Command::Builder(_)
            | Command::Check(_)
            | Command::From(_)
            | Command::Rm(_)
            | Command::Diff(_)
            | Command::Copy(_)
            | Command::Add(_)
            | Command::Commit(_)
            | Command::Mount(_)
            | Command::Umount(_)
            | Command::Unshare(_)
            | Command::Container(_)
    ) {
        if let Err(e) = crate::sandbox::userns::enter() {
            return report(e.into());
        }
    }
    let result = match command {
        Command::Build(a) => build::run(*a, &globals),
        Command::Images(a) => images::run(a, &globals),
        Command::Tag(a) => tag::run(a, &globals),
        Command::Rmi(a) => rmi::run(a, &globals),
        Command::Inspect(a) => inspect::run(a, &globals),
        Command::History(a) => history::run(a, &globals),
        Command::Prune(a) => prune::run(a, &globals),
        Command::Builder(c) => prune::run_builder(c, &globals),
        Command::Save(a) => save::run(a, &globals),
        Command::Load(a) => load::run(a, &globals),
        Command::Import(a) => import::run(a, &globals),
        Command::Run(a) => run::run(a, &globals),
        Command::From(a) => from::run(a, &globals),
        Command::Ps(a) => ps::run(a, &globals),
        Command::Containers(_) => unreachable!("turned into `ps -a` above"),
        Command::Rm(a) => rm::run(a, &globals),
        Command::Diff(a) => diff::run(a, &globals),
        Command::Copy(a) => copy::run(a, &globals, false),
        Command::Add(a) => copy::run(a, &globals, true),
        Command::Config(a) => config::run(a, &globals),
        Command::Commit(a) => commit::run(a, &globals),
        Command::Mount(a) => mount::run(a, &globals),
        Command::Umount(a) => mount::run_umount(a, &globals),
        Command::Unshare(a) => unshare::run(a, &globals),
        Command::Container(verbs::ContainerCommand::Prune(a)) => rm::run_prune(a, &globals),
        Command::Pull(a) => pull::run(a, &globals),
        Command::Push(a) => push::run(a, &globals),
        Command::Login(a) => login::run(a, &globals),
        Command::Logout(a) => logout::run(a, &globals),
        Command::Search(a) => search::run(a, &globals),
        Command::GenerateSigstoreKey(a) => sign::run_generate(a, &globals),
        Command::Sign(a) => sign::run_sign(a, &globals),
        Command::Trust(c) => sign::run_trust(c, &globals),
        Command::Info(a) => info::run(a, &globals),
        Command::Check(a) => check::run(a, &globals),
        Command::Completions(a) => completions::run(a),
        Command::System(verbs::SystemCommand::Df(a)) => verbs::run_df(a, &globals),
        Command::Version(a) => version::run(a),
        Command::Init(_) => unreachable!("handled above"),
        Command::Image(_) | Command::System(_) | Command::Container(_) => {
            unreachable!("turned into verbs above")
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => report(e),
    }
}

/// Prints an error as one `error: …` line (causes joined with `: `) and picks its exit code.
/// A closed standard output is the end of the output: exit 0, nothing said.
fn report(e: anyhow::Error) -> ExitCode {
    if output::is_closed_stdout(&e) {
        return ExitCode::SUCCESS;
    }
    output::error(&one_line(&e));
    match e.downcast_ref::<Internal>() {
        Some(_) => ExitCode::from(125),
        None => ExitCode::from(1),
    }
}

/// The error and its causes joined with `: `, leaving out a cause whose text the message
/// already holds (many errors quote their source in their own message as well as chaining it).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

/// Marks an error as hoist's own fault (exit code 125) rather than the user's.
#[derive(Debug, thiserror::Error)]
#[error("internal error: {0}")]
pub struct Internal(pub String);

#[cfg(test)]
mod init_fast_path_tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<(HiddenVerb, LogLevel, i32)> {
        init_fast_path(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn only_the_sandbox_spelling_takes_the_fast_path() {
        assert!(matches!(
            parse(&["--log-level", "debug", "__init", "14"]),
            Some((HiddenVerb::Init, LogLevel::Debug, 14))
        ));
        assert!(matches!(
            parse(&["--log-level", "warn", "__zygote", "5"]),
            Some((HiddenVerb::Zygote, LogLevel::Warn, 5))
        ));
        assert!(parse(&["__zygote", "5"]).is_none());
        assert!(parse(&["__init", "14"]).is_none());
        assert!(parse(&["--log-level", "warn", "__init", "14", "x"]).is_none());
        assert!(parse(&["--log-level", "loud", "__init", "14"]).is_none());
        assert!(parse(&["--log-level", "warn", "build", "14"]).is_none());
        assert!(parse(&["--log-level", "warn", "__init", "x"]).is_none());
    }
}
