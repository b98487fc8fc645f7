//! `hoist import FILE|- [NAME]`: a root file system tarball (plain, gzip, zstd, bzip2 or xz; a
//! file or standard input) becomes a one-layer base image, as `docker import` / `podman import`.
//! Prints the new image's ID.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{output, Globals};
use crate::dockerfile::{self, shell, Instruction, PortSpec, ShellOrExec};
use crate::image::config::Change;
use crate::image::Reference;
use crate::store::{ImportOptions, Store};

#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "The tarball may be plain or compressed with gzip, zstd, bzip2 or xz; `-` reads standard input. It is checked whole (a truncated or non-tar file, or an entry escaping the root, is refused) before anything is written to the store. The image gets one gzip layer; `SOURCE_DATE_EPOCH` fixes its creation time, so the same tarball gives the same image ID. Prints the image ID."
)]
pub struct Args {
    /// The tarball to import, or `-` for standard input
    #[arg(value_name = "FILE|-")]
    pub file: PathBuf,

    /// Name for the image (unqualified names get `localhost/`, the tag defaults to `latest`)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,

    /// Apply a Dockerfile instruction to the config: ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL
    /// or EXPOSE (repeatable)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,

    /// Comment for the image's history
    #[arg(short = 'm', long = "message", value_name = "MESSAGE")]
    pub message: Option<String>,

    /// Print nothing but errors
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

pub fn run(args: Args, globals: &Globals) -> anyhow::Result<ExitCode> {
    // check everything the user typed before touching the store
    let names = match &args.name {
        Some(n) => vec![Reference::parse_local(n)?],
        None => Vec::new(),
    };
    let changes = parse_changes(&args.change)?;
    let source = args.file.to_string_lossy().into_owned();
    if source.starts_with("http://") || source.starts_with("https://") {
        anyhow::bail!(
            "importing from a URL (`{source}`) is not supported: download the file first"
        );
    }
    let mut input: Box<dyn Read> = if source == "-" {
        if io::stdin().is_terminal() {
            anyhow::bail!(
                "cannot read a tarball from a terminal: redirect standard input or name a file"
            );
        }
        Box::new(io::stdin().lock())
    } else {
        let f = File::open(&args.file).with_context(|| format!("`{source}`"))?;
        if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
            anyhow::bail!("`{source}` is a directory, not a tarball");
        }
        Box::new(BufReader::with_capacity(256 * 1024, f))
    };
    let opts = ImportOptions {
        changes,
        message: args.message,
        source_name: source,
        created: source_date_epoch()?,
        names,
    };
    let store = Store::open(&globals.root)?;
    let image = store.import_rootfs(&mut input, &opts)?;
    if !args.quiet {
        output::println(image.id.hex());
    }
    Ok(ExitCode::SUCCESS)
}

/// `SOURCE_DATE_EPOCH`, when set, fixes the creation time (reproducible imports).
fn source_date_epoch() -> anyhow::Result<Option<DateTime<Utc>>> {
    let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH").filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let s = v.to_string_lossy();
    let secs: i64 = s
        .parse()
        .map_err(|_| anyhow::anyhow!("`SOURCE_DATE_EPOCH` is `{s}`, not a number of seconds"))?;
    DateTime::from_timestamp(secs, 0)
        .map(Some)
        .ok_or_else(|| anyhow::anyhow!("`SOURCE_DATE_EPOCH` `{s}` is out of range"))
}

/// Parses `-c` instructions with the Dockerfile parser (each one as the only instruction after a
/// `FROM scratch`) and expands `$VAR` against the ENV set by earlier changes, as docker does.
pub fn parse_changes(texts: &[String]) -> anyhow::Result<Vec<Change>> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut out = Vec::new();
    for text in texts {
        let change =
            parse_change(text, &env).map_err(|e| anyhow::anyhow!("change `{text}`: {e}"))?;
        if let Change::Env(pairs) = &change {
            for (k, v) in pairs {
                env.retain(|(n, _)| n != k);
                env.push((k.clone(), v.clone()));
            }
        }
        out.push(change);
    }
    // docker applies the changes as one Dockerfile stage, where ENTRYPOINT clears only a CMD
    // not set in that stage; applying every ENTRYPOINT before every CMD (each kind in its
    // order) gives exactly that with `Change`'s ENTRYPOINT-clears-CMD rule
    out.sort_by_key(|c| match c {
        Change::Entrypoint(_) => 0,
        Change::Cmd(_) => 1,
        _ => 2,
    });
    Ok(out)
}

fn parse_change(text: &str, env: &[(String, String)]) -> anyhow::Result<Change> {
    if text.trim().is_empty() {
        anyhow::bail!("empty instruction");
    }
    if text.contains('\n') {
        anyhow::bail!("one instruction per `-c`, on one line");
    }
    let df = dockerfile::parse(&format!("FROM scratch\n{text}\n"), "change")
        .map_err(|e| anyhow::anyhow!("{}", e.message()))?;
    if df.stages.len() > 1 {
        anyhow::bail!("`FROM` cannot be applied by `--change` (supported: ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE)");
    }
    let mut instrs = df
        .stages
        .into_iter()
        .next()
        .map(|s| s.instructions)
        .unwrap_or_default();
    if instrs.len() != 1 {
        anyhow::bail!("expected exactly one instruction");
    }
    let instr = instrs.remove(0).value;
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expand = |w: &str| -> anyhow::Result<String> {
        shell::expand(w, &lookup).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let command = |c: ShellOrExec| match c {
        ShellOrExec::Exec(v) => v,
        ShellOrExec::Shell(s) => vec!["/bin/sh".to_owned(), "-c".to_owned(), s],
    };
    Ok(match instr {
        Instruction::Env(kvs) => Change::Env(
            kvs.iter()
                .map(|kv| Ok((expand(&kv.key)?, expand(&kv.value)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        Instruction::Label(kvs) => Change::Label(
            kvs.iter()
                .map(|kv| Ok((expand(&kv.key)?, expand(&kv.value)?)))
                .collect::<anyhow::Result<_>>()?,
        ),
        Instruction::Cmd(c) => Change::Cmd(command(c)),
        Instruction::Entrypoint(c) => Change::Entrypoint(command(c)),
        Instruction::Workdir(w) => {
            let w = expand(&w)?;
            // relative to `/`, the only earlier working directory an imported image has
            Change::Workdir(if w.starts_with('/') { w } else { format!("/{w}") })
        }
        Instruction::User(u) => Change::User(expand(&u)?),
        Instruction::Expose(ports) => {
            let mut out = Vec::new();
            for p in ports {
                let word = expand(&p.value)?;
                let spec = PortSpec::parse(&word).map_err(|e| anyhow::anyhow!("{e}"))?;
                out.extend(spec.keys());
            }
            Change::Expose(out)
        }
        other => anyhow::bail!(
            "`{}` cannot be applied by `--change` (supported: ENV, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE)",
            other.keyword()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parses_changes() {
        let table = [
            ("ENV A=1", Change::Env(p(&[("A", "1")]))),
            (
                "env A=1 B=\"two words\"",
                Change::Env(p(&[("A", "1"), ("B", "two words")])),
            ),
            (
                "ENV PATH /usr/bin:/bin",
                Change::Env(p(&[("PATH", "/usr/bin:/bin")])),
            ),
            (
                "CMD [\"sh\",\"-c\",\"echo hi\"]",
                Change::Cmd(s(&["sh", "-c", "echo hi"])),
            ),
            ("CMD echo hi", Change::Cmd(s(&["/bin/sh", "-c", "echo hi"]))),
            (
                "ENTRYPOINT [\"/bin/app\"]",
                Change::Entrypoint(s(&["/bin/app"])),
            ),
            ("WORKDIR /srv", Change::Workdir("/srv".into())),
            ("WORKDIR srv", Change::Workdir("/srv".into())),
            ("USER app:app", Change::User("app:app".into())),
            (
                "LABEL a=b \"c d\"=e",
                Change::Label(p(&[("a", "b"), ("c d", "e")])),
            ),
            (
                "EXPOSE 80 53/UDP 8000-8001",
                Change::Expose(s(&["80/tcp", "53/udp", "8000/tcp", "8001/tcp"])),
            ),
        ];
        for (text, want) in table {
            let got = parse_changes(&[text.to_string()]).expect(text);
            assert_eq!(got, vec![want], "{text}");
        }
    }

    #[test]
    fn expands_earlier_env() {
        let got = parse_changes(&s(&[
            "ENV BASE=/opt",
            "ENV PATH=$BASE/bin",
            "WORKDIR ${BASE}/w",
        ]))
        .expect("changes");
        assert_eq!(got[1], Change::Env(p(&[("PATH", "/opt/bin")])));
        assert_eq!(got[2], Change::Workdir("/opt/w".into()));
    }

    #[test]
    fn refuses_bad_changes() {
        let table = [
            ("", "empty instruction"),
            ("RUN make", "`RUN` cannot be applied"),
            ("FROM x", "cannot be applied"),
            ("EXPOSE 0x", "port"),
            ("NOPE x", "change `NOPE x`"),
            ("ENV A=1\nENV B=2", "one instruction"),
        ];
        for (text, want) in table {
            let e = format!("{:#}", parse_changes(&[text.to_string()]).expect_err(text));
            assert!(e.contains(want), "{text}: `{e}` lacks `{want}`");
        }
    }
}
