//! `hoist login [-u USER] [-p PASS | --password-stdin] REGISTRY`: checks the credentials
//! against the registry's `/v2/` (through its token server when it has one), then stores them
//! in `auth.json` (mode 0600) where podman keeps them, or in `--authfile`.
//!
//! A password is read from `--password-stdin`, `-p`, or a terminal prompt without echo; it is
//! never printed, logged or part of an error.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context as _;

use super::pull::RegistryArgs;
use super::Globals;
use crate::registry::{auth, Client, Conf, Credential};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The registry: `HOST[:PORT]`
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// User name (asked on a terminal when missing)
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer `--password-stdin`)
    #[arg(short, long, value_name = "PASS")]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

/// `REGISTRY` as a host: a scheme and a path are dropped (`https://reg.example/v2/` → `reg.example`).
pub fn registry_host(s: &str) -> anyhow::Result<String> {
    let s = s
        .strip_prefix("docker://")
        .or_else(|| s.strip_prefix("https://"))
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() {
        anyhow::bail!("`{s}` names no registry");
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    })
}

fn prompt(label: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = std::io::stderr();
    write!(err, "{label}: ")?;
    err.flush()?;
    let stdin = std::io::stdin();
    let saved = if echo {
        None
    } else {
        let t =
            nix::sys::termios::tcgetattr(&stdin).context("cannot read the terminal settings")?;
        let mut quiet = t.clone();
        quiet
            .local_flags
            .remove(nix::sys::termios::LocalFlags::ECHO);
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &quiet)
            .context("cannot turn off the terminal echo")?;
        Some(t)
    };
    let mut line = String::new();
    let res = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &t);
        let _ = writeln!(err);
    }
    res.context("cannot read from the terminal")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn run(args: Args, _globals: &Globals) -> anyhow::Result<ExitCode> {
    let host = registry_host(&args.registry)?;
    if args.registry_args.creds.is_some() {
        anyhow::bail!("`--creds` is for pull, push and build; `login` takes `-u` and `-p` or `--password-stdin`");
    }
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("`-p` and `--password-stdin` cannot be used together");
    }
    let terminal = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if terminal && !args.password_stdin => prompt("Username", true)?,
        None => anyhow::bail!("`hoist login {host}`: give the user name with `-u`"),
    };
    if username.is_empty() {
        anyhow::bail!("`hoist login {host}`: the user name is empty");
    }
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = &args.password {
        p.clone()
    } else if terminal {
        prompt("Password", false)?
    } else {
        anyhow::bail!("`hoist login {host}`: give the password with `--password-stdin` or `-p`");
    };
    if password.is_empty() {
        anyhow::bail!("`hoist login {host}`: the password is empty");
    }
    let conf = Conf::load()?;
    if conf.host_blocked(&host) {
        anyhow::bail!("registry `{host}` is blocked in registries.conf");
    }
    let insecure = match args.registry_args.tls_verify {
        Some(v) => !v,
        None => conf.host_insecure(&host),
    };
    let creds = Credential::Basic {
        username: username.clone(),
        password: password.clone(),
    };
    let client = Client::new(
        &host,
        insecure,
        args.registry_args.cert_dir.as_deref(),
        Some(creds),
    )?;
    client.ping()?;
    let file = auth::store(
        &host,
        &username,
        &password,
        args.registry_args.authfile.as_deref(),
    )?;
    log::debug!("credentials for `{host}` written to `{}`", file.display());
    super::output::println("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}
