//! `hoist config [flags] CONTAINER` (buildah's `config`): edits a working container's config
//! copy, which its runs use and its next commit writes. Each flag is the Dockerfile instruction
//! of the same name, applied as a build applies it.

use std::process::ExitCode;

use super::Globals;
use crate::container;
use crate::exec::config::{Healthcheck, ImageConfig};
use crate::store::containers;
use crate::store::Store;

#[derive(Debug, Clone, clap::Args)]
#[command(
    after_long_help = "`--cmd`, `--entrypoint` and `--healthcheck` take a JSON array (exec form: `'[\"/app\",\"-v\"]'`) or a string: `--cmd` splits a string at white space (buildah's), `--entrypoint` runs it with `/bin/sh -c` (as ENTRYPOINT's shell form), `--healthcheck` as `CMD-SHELL` (`NONE` turns an inherited check off). As in a Dockerfile, a new entrypoint drops the image's command unless `--cmd` is given too. `--env K-` removes K. Nothing is written when a flag is invalid."
)]
pub struct Args {
    /// Set an environment variable `K=V` (`K-` removes it; repeatable)
    #[arg(short, long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// The default command
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub cmd: Option<String>,
    /// The entrypoint (`""` clears it)
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// The working directory (relative: joined to the current one)
    #[arg(long, value_name = "DIR")]
    pub workingdir: Option<String>,
    /// The user commands run as: `user[:group]`
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Add a label `K=V` (repeatable)
    #[arg(short, long = "label", value_name = "K=V")]
    pub label: Vec<String>,
    /// Expose a port: `PORT[/PROTO]` (repeatable)
    #[arg(short, long = "port", value_name = "PORT")]
    pub port: Vec<String>,
    /// Declare a volume (repeatable)
    #[arg(short, long = "volume", value_name = "PATH")]
    pub volume: Vec<String>,
    /// The image's author
    #[arg(long, value_name = "AUTHOR")]
    pub author: Option<String>,
    /// The signal that stops a container of the image
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// The health check command (`NONE` disables an inherited one)
    #[arg(long, value_name = "CMD")]
    pub healthcheck: Option<String>,
    /// The container: its name, ID or a unique ID prefix
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// A JSON array of strings, if `s` is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Applies the flags to `c`; fails on the first invalid one.
pub fn apply(args: &Args, c: &mut ImageConfig) -> anyhow::Result<()> {
    for e in &args.env {
        if let Some(k) = e.strip_suffix('-').filter(|k| !k.contains('=')) {
            if let Some(env) = c.config.env.as_mut() {
                env.retain(|kv| kv.split_once('=').map(|(n, _)| n).unwrap_or(kv) != k);
            }
            continue;
        }
        match e.split_once('=') {
            Some((k, v)) if !k.is_empty() => c.set_env(k, v),
            _ => anyhow::bail!("`--env {e}`: use `K=V` (or `K-` to remove K)"),
        }
    }
    for l in &args.label {
        match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => c.set_label(k, v),
            _ => anyhow::bail!("`--label {l}`: use `K=V`"),
        }
    }
    if let Some(ep) = &args.entrypoint {
        let v = if ep.is_empty() {
            Vec::new()
        } else {
            match json_array(ep) {
                Some(v) => v,
                None if ep.trim_start().starts_with('[') => {
                    anyhow::bail!("`--entrypoint {ep}`: not a JSON array of strings")
                }
                None => vec!["/bin/sh".into(), "-c".into(), ep.clone()],
            }
        };
        c.set_entrypoint(v, args.cmd.is_some());
    }
    if let Some(cmd) = &args.cmd {
        let v = match json_array(cmd) {
            Some(v) => v,
            None if cmd.trim_start().starts_with('[') => {
                anyhow::bail!("`--cmd {cmd}`: not a JSON array of strings")
            }
            None => cmd.split_whitespace().map(str::to_string).collect(),
        };
        c.set_cmd(v);
    }
    if let Some(w) = &args.workingdir {
        if w.is_empty() {
            anyhow::bail!("`--workingdir` needs a directory");
        }
        c.set_workdir(w);
    }
    if let Some(u) = &args.user {
        c.set_user(u);
    }
    for p in &args.port {
        let spec = crate::dockerfile::PortSpec::parse(p)
            .map_err(|e| anyhow::anyhow!("`--port {p}`: {e}"))?;
        for k in spec.keys() {
            c.expose(&k);
        }
    }
    for v in &args.volume {
        if !v.starts_with('/') {
            anyhow::bail!("`--volume {v}`: the path must be absolute");
        }
        c.add_volume(v);
    }
    if let Some(a) = &args.author {
        c.author = Some(a.clone());
    }
    if let Some(s) = &args.stop_signal {
        if s.is_empty() {
            anyhow::bail!("`--stop-signal` needs a signal");
        }
        c.set_stop_signal(s);
    }
    if let Some(h) = &args.healthcheck {
        let test = if h == "NONE" {
            vec!["NONE".to_string()]
        } else {
            match json_array(h) {
                Some(v)
                    if v.first()
                        .is_some_and(|f| f == "CMD" || f == "CMD-SHELL" || f == "NONE") =>
                {
                    v
                }
                Some(_) => anyhow::bail!(
                    "`--healthcheck {h}`: a JSON array starts with `CMD`, `CMD-SHELL` or `NONE`"
                ),
                None if h.trim().is_empty() => anyhow::bail!("`--healthcheck` needs a command"),
                None => vec!["CMD-SHELL".to_string(), h.clone()],
            }
        };
        let mut hc = c.config.healthcheck.clone().unwrap_or_default();
        hc.test = test;
        c.set_healthcheck(Healthcheck { ..hc });
    }
    Ok(())
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let rec = containers::find(&store, &args.container)?;
    let _held = container::lock(&store, &rec)?;
    let mut c = container::config(&store, &rec)?;
    apply(&args, &mut c)?;
    container::set_config(&store, &rec, &c)?;
    Ok(ExitCode::SUCCESS)
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

    fn args(v: &[&str]) -> Args {
        T::parse_from(std::iter::once("config").chain(v.iter().copied())).a
    }

    #[test]
    fn flags_edit_the_config_as_the_instructions_do() {
        let mut c = ImageConfig::default();
        c.set_cmd(vec!["old".into()]);
        c.set_env("GONE", "1");
        apply(
            &args(&[
                "--env",
                "A=1",
                "--env",
                "GONE-",
                "--entrypoint",
                "run.sh -x",
                "--workingdir",
                "app",
                "--port",
                "80",
                "--port",
                "53/udp",
                "--healthcheck",
                "true",
                "w",
            ]),
            &mut c,
        )
        .unwrap();
        assert_eq!(c.config.env, Some(vec!["A=1".to_string()]));
        assert_eq!(
            c.config.entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into(), "run.sh -x".into()])
        );
        // a new entrypoint drops the inherited command, as ENTRYPOINT does
        assert_eq!(c.config.cmd, None);
        assert_eq!(c.config.working_dir.as_deref(), Some("/app"));
        let ports: Vec<&String> = c.config.exposed_ports.as_ref().unwrap().keys().collect();
        assert_eq!(ports, ["53/udp", "80/tcp"]);
        assert_eq!(
            c.config.healthcheck.as_ref().unwrap().test,
            vec!["CMD-SHELL".to_string(), "true".to_string()]
        );
        apply(
            &args(&["--cmd", "[\"a\", \"b\"]", "--entrypoint", "[\"/e\"]", "w"]),
            &mut c,
        )
        .unwrap();
        assert_eq!(c.config.cmd, Some(vec!["a".into(), "b".into()]));
        assert_eq!(c.config.entrypoint, Some(vec!["/e".into()]));
        for bad in [
            &["--env", "=x", "w"][..],
            &["--cmd", "[1, 2]", "w"],
            &["--volume", "rel", "w"],
            &["--port", "x", "w"],
            &["--healthcheck", "[\"BAD\"]", "w"],
        ] {
            assert!(apply(&args(bad), &mut c.clone()).is_err(), "{bad:?}");
        }
    }
}
