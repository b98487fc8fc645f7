//! From the front end's typed [`crate::dockerfile::Dockerfile`] to plan's [`Input`]: the same
//! raw words, with each instruction's line and display text. Pure.

use crate::dockerfile::instruction::{self as ins, Instruction, ShellOrExec};
use crate::dockerfile::{Dockerfile, Heredoc as DfHeredoc, Span, Spanned};

use super::input::{Command, Heredoc, Input, Instr, Kind, Stage};

fn command(c: &ShellOrExec) -> Command {
    match c {
        ShellOrExec::Shell(s) => Command::Shell(s.clone()),
        ShellOrExec::Exec(v) => Command::Exec(v.clone()),
    }
}

fn heredocs(h: &[DfHeredoc]) -> Vec<Heredoc> {
    h.iter()
        .map(|h| Heredoc {
            name: h.name.clone(),
            content: h.body(),
            expand: h.expand,
        })
        .collect()
}

fn chmod(c: &ins::Chmod) -> String {
    match c {
        ins::Chmod::Octal(m) => format!("{m:o}"),
        ins::Chmod::Symbolic(s) | ins::Chmod::Unexpanded(s) => s.clone(),
    }
}

/// A `--mount` back in its `key=value,…` CSV form (values raw: plan expands and checks them).
fn mount_text(m: &ins::RunMount) -> String {
    let mut parts: Vec<String> = Vec::new();
    fn opt(parts: &mut Vec<String>, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    }
    match m {
        ins::RunMount::Bind(b) => {
            let mut p = vec!["type=bind".to_string()];
            if let Some(t) = &b.target {
                p.push(format!("target={t}"));
            }
            if let Some(s) = &b.source {
                p.push(format!("source={s}"));
            }
            if let Some(f) = &b.from {
                p.push(format!("from={f}"));
            }
            if b.readwrite {
                p.push("rw".to_string());
            }
            return ins::csv_join(&p);
        }
        ins::RunMount::Cache(c) => {
            parts.push("type=cache".to_string());
            parts.push(format!("target={}", c.target));
            opt(&mut parts, "id", &c.id);
            opt(&mut parts, "from", &c.from);
            opt(&mut parts, "source", &c.source);
            opt(&mut parts, "mode", &c.mode.map(|m| format!("{m:o}")));
            opt(&mut parts, "uid", &c.uid.map(|u| u.to_string()));
            opt(&mut parts, "gid", &c.gid.map(|u| u.to_string()));
            if c.readonly {
                parts.push("ro".to_string());
            }
            match c.sharing {
                ins::CacheSharing::Shared => {}
                ins::CacheSharing::Private => parts.push("sharing=private".to_string()),
                ins::CacheSharing::Locked => parts.push("sharing=locked".to_string()),
            }
        }
        ins::RunMount::Tmpfs(t) => {
            parts.push("type=tmpfs".to_string());
            parts.push(format!("target={}", t.target));
            opt(&mut parts, "size", &t.size.map(|s| s.to_string()));
        }
        ins::RunMount::Secret(s) => {
            parts.push("type=secret".to_string());
            opt(&mut parts, "id", &s.id);
            opt(&mut parts, "target", &s.target);
            opt(&mut parts, "env", &s.env);
            if s.required {
                parts.push("required".to_string());
            }
            opt(&mut parts, "mode", &s.mode.map(|m| format!("{m:o}")));
            opt(&mut parts, "uid", &s.uid.map(|u| u.to_string()));
            opt(&mut parts, "gid", &s.gid.map(|u| u.to_string()));
        }
        ins::RunMount::Ssh(_) => parts.push("type=ssh".to_string()),
    }
    ins::csv_join(&parts)
}

/// The instruction's text for progress and errors: its physical lines joined (continuations
/// dropped); only the first line when it carries heredocs.
fn display_text(lines: &[&str], span: Span, escape: char, first_only: bool) -> String {
    let start = span.line.saturating_sub(1);
    let end = if first_only {
        span.line
    } else {
        span.end_line.max(span.line)
    };
    let mut out = String::new();
    for l in lines.iter().take(end).skip(start) {
        let t = l.trim();
        if t.starts_with('#') && !out.is_empty() {
            continue;
        }
        let t = t.strip_suffix(escape).unwrap_or(t).trim();
        if t.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(t);
    }
    out
}

fn kind(i: &Instruction) -> Result<Kind, String> {
    Ok(match i {
        Instruction::Run(r) => {
            if r.security.as_ref().map(|s| s.value) == Some(ins::Security::Insecure) {
                return Err("RUN --security=insecure is not supported".to_string());
            }
            if !r.devices.is_empty() {
                return Err("RUN --device is not supported".to_string());
            }
            if r.mounts
                .iter()
                .any(|m| matches!(m.value, ins::RunMount::Ssh(_)))
            {
                return Err("RUN --mount=type=ssh is not supported".to_string());
            }
            Kind::Run {
                command: command(&r.command),
                mounts: r.mounts.iter().map(|m| mount_text(&m.value)).collect(),
                network: r.network.as_ref().map(|n| {
                    match n.value {
                        ins::Network::Default => "default",
                        ins::Network::None => "none",
                        ins::Network::Host => "host",
                    }
                    .to_string()
                }),
                heredocs: heredocs(&r.heredocs),
            }
        }
        Instruction::Copy(c) => Kind::Copy {
            add: false,
            sources: c.sources.iter().map(|s| s.value.clone()).collect(),
            dest: c.dest.value.clone(),
            from: c.from.as_ref().map(|s| s.value.clone()),
            chown: c.chown.as_ref().map(|s| s.value.clone()),
            chmod: c.chmod.as_ref().map(|s| chmod(&s.value)),
            link: c.link,
            excludes: c.exclude.iter().map(|s| s.value.clone()).collect(),
            parents: c.parents,
            checksum: None,
            keep_git_dir: false,
            unpack: None,
            heredocs: heredocs(&c.heredocs),
        },
        Instruction::Add(a) => Kind::Copy {
            add: true,
            sources: a.sources.iter().map(|s| s.value.clone()).collect(),
            dest: a.dest.value.clone(),
            from: None,
            chown: a.chown.as_ref().map(|s| s.value.clone()),
            chmod: a.chmod.as_ref().map(|s| chmod(&s.value)),
            link: a.link,
            excludes: a.exclude.iter().map(|s| s.value.clone()).collect(),
            parents: false,
            checksum: a.checksum.as_ref().map(|s| s.value.clone()),
            keep_git_dir: a.keep_git_dir.unwrap_or(false),
            unpack: a.unpack,
            heredocs: heredocs(&a.heredocs),
        },
        Instruction::Env(kv) => Kind::Env(
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone()))
                .collect(),
        ),
        Instruction::Arg(a) => Kind::Arg(
            a.iter()
                .map(|d| (d.name.clone(), d.default.clone()))
                .collect(),
        ),
        Instruction::Label(kv) => Kind::Label(
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone()))
                .collect(),
        ),
        Instruction::Workdir(w) => Kind::Workdir(w.clone()),
        Instruction::User(u) => Kind::User(u.clone()),
        Instruction::Expose(p) => Kind::Expose(p.iter().map(|s| s.value.clone()).collect()),
        Instruction::Volume(v) => Kind::Volume(v.iter().map(|s| s.value.clone()).collect()),
        Instruction::Cmd(c) => Kind::Cmd(command(c)),
        Instruction::Entrypoint(c) => Kind::Entrypoint(command(c)),
        Instruction::StopSignal(s) => Kind::StopSignal(s.clone()),
        Instruction::Healthcheck(h) => match h {
            ins::Healthcheck::None => Kind::Healthcheck {
                test: None,
                interval: 0,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 0,
            },
            ins::Healthcheck::Cmd(c) => {
                let ns =
                    |d: &Option<std::time::Duration>| d.map(|d| d.as_nanos() as u64).unwrap_or(0);
                Kind::Healthcheck {
                    test: Some(command(&c.test)),
                    interval: ns(&c.interval),
                    timeout: ns(&c.timeout),
                    start_period: ns(&c.start_period),
                    start_interval: ns(&c.start_interval),
                    retries: c.retries.map(i64::from).unwrap_or(0),
                }
            }
        },
        Instruction::Shell(s) => Kind::Shell(s.clone()),
        Instruction::OnBuild(o) => Kind::OnBuild(o.text.clone()),
        Instruction::Maintainer(m) => Kind::Maintainer(m.clone()),
    })
}

fn has_heredocs(i: &Instruction) -> bool {
    match i {
        Instruction::Run(r) => !r.heredocs.is_empty(),
        Instruction::Copy(c) => !c.heredocs.is_empty(),
        Instruction::Add(a) => !a.heredocs.is_empty(),
        _ => false,
    }
}

fn instr(lines: &[&str], escape: char, i: &Spanned<Instruction>) -> Result<Instr, String> {
    Ok(Instr {
        line: i.span.line,
        text: display_text(lines, i.span, escape, has_heredocs(&i.value)),
        kind: kind(&i.value).map_err(|m| format!("line {}: {m}", i.span.line))?,
    })
}

/// Converts a parsed Dockerfile (`text` is its source, for display texts).
pub fn from_dockerfile(df: &Dockerfile, text: &str, file: &str) -> Result<Input, super::PlanError> {
    let lines: Vec<&str> = text.lines().collect();
    let esc = df.directives.escape;
    let mut stages = Vec::new();
    for s in &df.stages {
        let mut instrs = Vec::new();
        for i in &s.instructions {
            let k = kind(&i.value).map_err(|m| super::at(file, i.span.line, m))?;
            instrs.push(Instr {
                line: i.span.line,
                text: display_text(&lines, i.span, esc, has_heredocs(&i.value)),
                kind: k,
            });
        }
        stages.push(Stage {
            line: s.from.span.line,
            text: display_text(&lines, s.from.span, esc, false),
            base: s.from.image.value.clone(),
            name: s.name.clone(),
            platform: s.from.platform.as_ref().map(|p| p.value.clone()),
            instrs,
        });
    }
    Ok(Input {
        meta_args: df
            .meta_args
            .iter()
            .map(|a| (a.name.clone(), a.default.clone()))
            .collect(),
        stages,
        escape: (esc != '\\').then_some(esc),
    })
}

/// Parses an ONBUILD trigger stored in a base image's config (`RUN echo hi`).
pub fn parse_trigger(trigger: &str) -> Result<Instr, String> {
    let text = format!("FROM scratch\n{trigger}\n");
    let df = crate::dockerfile::parse(&text, "ONBUILD").map_err(|e| e.message())?;
    let lines: Vec<&str> = text.lines().collect();
    let i = df
        .stages
        .first()
        .and_then(|s| s.instructions.first())
        .ok_or_else(|| "empty trigger".to_string())?;
    let mut out = instr(&lines, '\\', i)?;
    out.line = 0;
    Ok(out)
}
