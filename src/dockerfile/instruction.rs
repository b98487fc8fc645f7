//! The typed layer: one raw node from `lines.rs` to one [`Instruction`] with typed flags.
//!
//! Every instruction and flag the current Dockerfile reference lists is known here; anything
//! else (an unknown instruction, a flag an instruction does not take, a malformed value) is an
//! error located at the offending word. Words are kept raw, unexpanded: the planner expands them
//! later with [`super::shell`], once ARG and ENV values are known, and only for instructions
//! where Docker expands ([`Instruction::expands_words`]). Values that cannot hold a variable are
//! validated here (an octal `--chmod`, a port, a duration); values that do hold `$` are checked
//! again after expansion by the same functions ([`Chmod::parse`], [`PortSpec::parse`]).
//! This layer knows nothing of images and touches no file system.
//!
//! Spec: Dockerfile reference (FROM, RUN and `RUN --mount` tables, CMD, LABEL, EXPOSE, ENV, ADD,
//! COPY, ENTRYPOINT, VOLUME, USER, WORKDIR, ARG, ONBUILD, STOPSIGNAL, HEALTHCHECK, SHELL,
//! MAINTAINER) and BuildKit's instruction-level error cases.

use std::time::Duration;

use super::error::ErrorKind;
use super::lines::{self, Heredoc, Node};
use super::{From, Span, Spanned};

type Fail = (Span, ErrorKind);

/// A command in shell form (one string for `/bin/sh -c`) or exec form (argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

/// `ARG name[=default]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default, raw (quotes kept; expanded later).
    pub default: Option<String>,
    pub span: Span,
}

/// One `key=value` of ENV or LABEL, both raw (quotes and escapes kept; expanded later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// True for the old `ENV key value` / `LABEL key value` form: the value is the rest of the
    /// line.
    pub legacy: bool,
    pub span: Span,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Shell form keeps the text verbatim, including `<<EOF` words of heredocs.
    pub command: ShellOrExec,
    pub mounts: Vec<Spanned<RunMount>>,
    pub network: Option<Spanned<Network>>,
    pub security: Option<Spanned<Security>>,
    pub devices: Vec<Spanned<Device>>,
    pub heredocs: Vec<Heredoc>,
}

/// `RUN --network=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

/// `RUN --security=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Sandbox,
    Insecure,
}

/// `RUN --device=name[,required]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub required: bool,
}

/// `RUN --mount=…`. Path and name values are raw (expanded later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    Bind(BindMount),
    Cache(CacheMount),
    Tmpfs(TmpfsMount),
    Secret(SecretMount),
    Ssh(SshMount),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// `None` when omitted: BuildKit then mounts at the working directory (real Dockerfiles,
    /// e.g. moby's and BuildKit's own, rely on it).
    pub target: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub readwrite: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    pub target: String,
    pub id: Option<String>,
    pub readonly: bool,
    pub sharing: CacheSharing,
    pub from: Option<String>,
    pub source: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    pub target: String,
    /// Upper limit in bytes.
    pub size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretMount {
    pub id: Option<String>,
    pub target: Option<String>,
    pub env: Option<String>,
    pub required: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshMount {
    pub id: Option<String>,
    pub target: Option<String>,
    pub required: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// `--chmod` of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chmod {
    /// Octal notation (`755`, `0644`).
    Octal(u32),
    /// Symbolic notation (`+x`, `u=rwX,go=rX`, `g=u`), validated.
    Symbolic(String),
    /// Holds a variable: validate with [`Chmod::parse`] after expansion.
    Unexpanded(String),
}

impl Chmod {
    /// Parses an expanded `--chmod` value.
    pub fn parse(value: &str) -> Result<Chmod, ErrorKind> {
        let bad = || ErrorKind::InvalidFlagValue {
            flag: "chmod".into(),
            value: value.into(),
            expected: "an octal mode such as 755 or a symbolic mode such as u+x or u=rwX,go=rX"
                .into(),
        };
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return match u32::from_str_radix(value, 8) {
                Ok(m) if m <= 0o7777 => Ok(Chmod::Octal(m)),
                _ => Err(bad()),
            };
        }
        // chmod(1) symbolic grammar: clause[,clause]; clause = [ugoa]* (op perms)+;
        // op = + - =; perms = [rwxXst]* or one of u g o.
        if value.is_empty() {
            return Err(bad());
        }
        for clause in value.split(',') {
            let rest = clause.trim_start_matches(['u', 'g', 'o', 'a']);
            if rest.is_empty() {
                return Err(bad());
            }
            let mut chars = rest.chars().peekable();
            let mut had_op = false;
            while let Some(c) = chars.next() {
                if !matches!(c, '+' | '-' | '=') {
                    return Err(bad());
                }
                had_op = true;
                if matches!(chars.peek(), Some('u' | 'g' | 'o')) {
                    chars.next();
                    continue;
                }
                while matches!(chars.peek(), Some('r' | 'w' | 'x' | 'X' | 's' | 't')) {
                    chars.next();
                }
            }
            if !had_op {
                return Err(bad());
            }
        }
        Ok(Chmod::Symbolic(value.to_string()))
    }
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Source paths (heredoc sources are in `heredocs`), raw.
    pub sources: Vec<Spanned<String>>,
    pub dest: Spanned<String>,
    /// Inline files from heredocs, named after their delimiter.
    pub heredocs: Vec<Heredoc>,
    pub from: Option<Spanned<String>>,
    pub chown: Option<Spanned<String>>,
    pub chmod: Option<Spanned<Chmod>>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<Spanned<String>>,
    /// Written as a JSON array.
    pub json: bool,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    pub sources: Vec<Spanned<String>>,
    pub dest: Spanned<String>,
    pub heredocs: Vec<Heredoc>,
    pub chown: Option<Spanned<String>>,
    pub chmod: Option<Spanned<Chmod>>,
    pub link: bool,
    pub exclude: Vec<Spanned<String>>,
    /// `--checksum=` raw (`sha256:<hex>` for HTTP sources, a commit prefix for Git).
    pub checksum: Option<Spanned<String>>,
    pub keep_git_dir: Option<bool>,
    /// `--unpack=`; `None` means Docker's default (local archives unpacked, URLs not).
    pub unpack: Option<bool>,
    pub json: bool,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Cmd(HealthConfig),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Exec form gives `CMD` argv; shell form a string (Docker's `CMD-SHELL`).
    pub test: ShellOrExec,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// `ONBUILD`: the trigger typed, plus its text as the image config stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBuild {
    pub trigger: Box<Spanned<Instruction>>,
    /// The trigger as written after `ONBUILD` (what goes into the image's `OnBuild` list).
    pub text: String,
}

/// Every instruction but FROM (which opens a [`super::Stage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Add(Add),
    Arg(Vec<ArgDecl>),
    Cmd(ShellOrExec),
    Copy(Copy),
    Entrypoint(ShellOrExec),
    Env(Vec<KeyValue>),
    Expose(Vec<Spanned<String>>),
    Healthcheck(Healthcheck),
    Label(Vec<KeyValue>),
    Maintainer(String),
    OnBuild(OnBuild),
    Run(Run),
    Shell(Vec<String>),
    StopSignal(String),
    User(String),
    Volume(Vec<Spanned<String>>),
    Workdir(String),
}

impl Instruction {
    /// The keyword in upper case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Add(_) => "ADD",
            Instruction::Arg(_) => "ARG",
            Instruction::Cmd(_) => "CMD",
            Instruction::Copy(_) => "COPY",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Env(_) => "ENV",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::OnBuild(_) => "ONBUILD",
            Instruction::Run(_) => "RUN",
            Instruction::Shell(_) => "SHELL",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::User(_) => "USER",
            Instruction::Volume(_) => "VOLUME",
            Instruction::Workdir(_) => "WORKDIR",
        }
    }

    /// Whether Docker expands `$VAR` in this instruction's words (the reference's
    /// "Environment replacement" list: ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
    /// VOLUME, WORKDIR, and ARG defaults). Never RUN, CMD, ENTRYPOINT, SHELL, HEALTHCHECK or
    /// MAINTAINER; ONBUILD triggers are expanded when they run downstream. The flags that
    /// expand: COPY/ADD `--from`, `--chown`, `--chmod`, `--exclude`, `--checksum`, RUN
    /// `--mount` values, FROM `--platform`.
    pub fn expands_words(&self) -> bool {
        matches!(
            self,
            Instruction::Add(_)
                | Instruction::Arg(_)
                | Instruction::Copy(_)
                | Instruction::Env(_)
                | Instruction::Expose(_)
                | Instruction::Label(_)
                | Instruction::StopSignal(_)
                | Instruction::User(_)
                | Instruction::Volume(_)
                | Instruction::Workdir(_)
        )
    }
}

/// `EXPOSE` port protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// One expanded EXPOSE word: `[ip:][host-port:]port[-port][/proto]`, as BuildKit's
/// `parsePort` reads it (`convert_expose.go`): the container port or range and its protocol
/// (TCP by default) are kept; an IP address or host-port mapping is accepted and dropped (the
/// `ExposeInvalidFormat` check warns about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub start: u16,
    pub end: u16,
    pub protocol: Protocol,
    /// The protocol was not written in lower case (`80/TCP`: the `ExposeProtoCasing` check).
    pub proto_not_lower: bool,
    /// An IP address or a host port was given (`8080:80`: the `ExposeInvalidFormat` check).
    pub has_mapping: bool,
}

impl PortSpec {
    /// Parses `80`, `80/tcp`, `53/UDP`, `8000-8010/tcp`, `8080:80`, `127.0.0.1:8080:80/udp`.
    pub fn parse(word: &str) -> Result<PortSpec, ErrorKind> {
        let bad = || ErrorKind::InvalidPort(word.to_string());
        let parts: Vec<&str> = word.split(':').collect();
        let (ip, host, container) = match parts.as_slice() {
            [c] => ("", "", *c),
            [h, c] => ("", *h, *c),
            [ip, h, c] => (*ip, *h, *c),
            _ => {
                let n = parts.len();
                // an IPv6 address holds colons: everything before the last two parts
                let ip_end = word.len() - parts[n - 2].len() - parts[n - 1].len() - 2;
                (&word[..ip_end], parts[n - 2], parts[n - 1])
            }
        };
        let (ports, proto) = container.split_once('/').unwrap_or((container, ""));
        if ports.is_empty() {
            return Err(bad());
        }
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "" | "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(bad()),
        };
        if !ip.is_empty() {
            let raw = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            if raw.parse::<std::net::IpAddr>().is_err() {
                return Err(bad());
            }
        }
        let range = |s: &str| -> Result<(u16, u16), ErrorKind> {
            let num = |s: &str| -> Result<u16, ErrorKind> {
                if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                s.parse::<u16>().map_err(|_| bad())
            };
            match s.split_once('-') {
                Some((a, b)) if a != b => {
                    let (a, b) = (num(a)?, num(b)?);
                    if b < a {
                        return Err(bad());
                    }
                    Ok((a, b))
                }
                Some((a, _)) => num(a).map(|p| (p, p)),
                None => num(s).map(|p| (p, p)),
            }
        };
        let (start, end) = range(ports)?;
        if !host.is_empty() {
            let (hs, he) = range(host)?;
            // a host range must be as long as the container range, unless that is one port
            if he - hs != end - start && end != start {
                return Err(bad());
            }
        }
        Ok(PortSpec {
            start,
            end,
            protocol,
            proto_not_lower: proto != proto.to_ascii_lowercase(),
            has_mapping: !ip.is_empty() || !host.is_empty(),
        })
    }

    /// One `ExposedPorts` key per port of the range (`8000/tcp`, `8001/tcp`, …), as BuildKit
    /// writes them.
    pub fn keys(&self) -> Vec<String> {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        };
        (self.start..=self.end)
            .map(|p| format!("{p}/{proto}"))
            .collect()
    }
}

/// Every instruction keyword Docker knows (upper case).
pub const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Levenshtein distance in characters (for "did you mean" suggestions).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut prev2: Vec<usize> = prev.clone();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            // A swap of two neighbours counts as one edit (COYP -> COPY).
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// The closest known keyword to a misspelt one, if it is close.
pub fn suggest_keyword(word: &str) -> Option<String> {
    let up = word.to_ascii_uppercase();
    if up.chars().count() > 40 {
        return None;
    }
    KEYWORDS
        .iter()
        .map(|k| (edit_distance(&up, k), *k))
        .filter(|(d, k)| *d <= if k.len() <= 4 { 1 } else { 2 })
        .min()
        .map(|(_, k)| k.to_string())
}

/// A parsed flag: name, value (`None` for a bare `--link`), where.
struct Flag<'a> {
    name: &'a str,
    value: Option<&'a str>,
    span: Span,
}

/// Checks a node's flags against what `keyword` accepts (`repeatable` may be given more than
/// once) and returns them.
fn flags<'a>(
    node: &'a Node,
    keyword: &str,
    allowed: &[&str],
    repeatable: &[&str],
) -> Result<Vec<Flag<'a>>, Fail> {
    let mut out: Vec<Flag> = Vec::new();
    for f in &node.flags {
        let body = f.text.strip_prefix("--").unwrap_or(&f.text);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if !allowed.contains(&name) {
            return Err((
                f.span,
                ErrorKind::UnknownFlag {
                    instruction: keyword.to_string(),
                    flag: name.to_string(),
                    allowed: allowed.iter().map(|s| s.to_string()).collect(),
                },
            ));
        }
        if !repeatable.contains(&name) && out.iter().any(|o| o.name == name) {
            return Err((
                f.span,
                ErrorKind::DuplicateFlag {
                    instruction: keyword.to_string(),
                    flag: name.to_string(),
                },
            ));
        }
        out.push(Flag {
            name,
            value,
            span: f.span,
        });
    }
    Ok(out)
}

fn need_value(f: &Flag) -> Result<Spanned<String>, Fail> {
    match f.value {
        Some(v) => Ok(Spanned::new(v.to_string(), f.span)),
        None => Err((f.span, ErrorKind::FlagNeedsValue(f.name.to_string()))),
    }
}

/// Go's `strconv.ParseBool` spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn bool_flag(f: &Flag) -> Result<bool, Fail> {
    match &f.value {
        None => Ok(true),
        Some(v) => parse_bool(v).ok_or_else(|| {
            (
                f.span,
                ErrorKind::InvalidFlagValue {
                    flag: f.name.to_string(),
                    value: v.to_string(),
                    expected: "true or false".into(),
                },
            )
        }),
    }
}

fn count_error(node: &Node, expected: &str) -> Fail {
    let span = if node.text.is_empty() {
        node.keyword_span
    } else {
        node.text_span
    };
    (
        span,
        ErrorKind::ArgumentCount {
            instruction: node.keyword().to_ascii_uppercase(),
            expected: expected.to_string(),
        },
    )
}

fn no_flags(node: &Node, keyword: &str) -> Result<(), Fail> {
    flags(node, keyword, &[], &[]).map(|_| ())
}

/// Types one raw node (anything but FROM, which [`parse_from`] handles).
pub fn from_node(node: &mut Node) -> Result<Spanned<Instruction>, Fail> {
    let keyword: &'static str = KEYWORDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(&node.name))
        .copied()
        .unwrap_or("");
    let ins = match keyword {
        "ADD" | "COPY" => copy_or_add(node, keyword)?,
        "ARG" => {
            no_flags(node, "ARG")?;
            if node.args.is_empty() {
                return Err(count_error(
                    node,
                    "needs at least one argument: ARG name[=default]",
                ));
            }
            let mut decls = Vec::with_capacity(node.args.len());
            let args = std::mem::take(&mut node.args);
            for (w, span) in args.into_iter().zip(&node.arg_spans) {
                let (name, default) = match w.split_once('=') {
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w, None),
                };
                if name.is_empty() {
                    return Err((*span, ErrorKind::EmptyName("ARG".into())));
                }
                if name
                    .chars()
                    .any(|c| c.is_whitespace() || c == '$' || c == '\'' || c == '"')
                {
                    return Err((*span, ErrorKind::InvalidArgName(name)));
                }
                decls.push(ArgDecl {
                    name,
                    default,
                    span: *span,
                });
            }
            Instruction::Arg(decls)
        }
        "CMD" | "ENTRYPOINT" => {
            no_flags(node, keyword)?;
            let cmd = if node.json {
                ShellOrExec::Exec(std::mem::take(&mut node.args))
            } else {
                ShellOrExec::Shell(std::mem::take(&mut node.text))
            };
            if keyword == "CMD" {
                Instruction::Cmd(cmd)
            } else {
                Instruction::Entrypoint(cmd)
            }
        }
        "ENV" | "LABEL" => {
            no_flags(node, keyword)?;
            if node.args.is_empty() {
                return Err(count_error(node, "needs at least one argument: name=value"));
            }
            if node.args.len() % 3 != 0 {
                return Err(count_error(node, "needs name=value pairs"));
            }
            let mut kvs = Vec::with_capacity(node.args.len() / 3);
            let mut args = std::mem::take(&mut node.args).into_iter();
            let mut spans = node.arg_spans.iter().step_by(3);
            while let (Some(key), Some(value), Some(sep), Some(span)) =
                (args.next(), args.next(), args.next(), spans.next())
            {
                if key.is_empty() {
                    return Err((*span, ErrorKind::EmptyName(keyword.to_string())));
                }
                kvs.push(KeyValue {
                    key,
                    value,
                    legacy: sep.is_empty(),
                    span: *span,
                });
            }
            if keyword == "ENV" {
                Instruction::Env(kvs)
            } else {
                Instruction::Label(kvs)
            }
        }
        "EXPOSE" => {
            no_flags(node, "EXPOSE")?;
            if node.args.is_empty() {
                return Err(count_error(
                    node,
                    "needs at least one argument: a port such as 80/tcp",
                ));
            }
            let mut ports = Vec::with_capacity(node.args.len());
            let args = std::mem::take(&mut node.args);
            for (w, span) in args.into_iter().zip(&node.arg_spans) {
                if !w.contains('$') {
                    PortSpec::parse(&w).map_err(|k| (*span, k))?;
                }
                ports.push(Spanned::new(w, *span));
            }
            Instruction::Expose(ports)
        }
        "HEALTHCHECK" => healthcheck(node)?,
        "MAINTAINER" | "USER" | "WORKDIR" | "STOPSIGNAL" => {
            no_flags(node, keyword)?;
            if node.text.is_empty() {
                return Err(count_error(node, "needs exactly one argument"));
            }
            if keyword == "STOPSIGNAL" && !node.text.contains('$') && !valid_signal(&node.text) {
                return Err((node.text_span, ErrorKind::InvalidSignal(node.text.clone())));
            }
            let t = std::mem::take(&mut node.text);
            match keyword {
                "MAINTAINER" => Instruction::Maintainer(t),
                "USER" => Instruction::User(t),
                "WORKDIR" => Instruction::Workdir(t),
                _ => Instruction::StopSignal(t),
            }
        }
        "ONBUILD" => {
            no_flags(node, "ONBUILD")?;
            let text = node.text.clone();
            let Some(inner) = node.inner.as_deref_mut() else {
                return Err(count_error(
                    node,
                    "needs an instruction to run later: ONBUILD RUN …",
                ));
            };
            match inner.keyword().to_ascii_uppercase().as_str() {
                "ONBUILD" => return Err((inner.keyword_span, ErrorKind::OnBuildChained)),
                k @ ("FROM" | "MAINTAINER") => {
                    return Err((
                        inner.keyword_span,
                        ErrorKind::OnBuildForbidden(k.to_string()),
                    ))
                }
                _ => {}
            }
            let trigger = from_node(inner)?;
            Instruction::OnBuild(OnBuild {
                trigger: Box::new(trigger),
                text,
            })
        }
        "RUN" => run(node)?,
        "SHELL" => {
            no_flags(node, "SHELL")?;
            if !node.json {
                return Err((
                    if node.text.is_empty() {
                        node.keyword_span
                    } else {
                        node.text_span
                    },
                    ErrorKind::NotJson("SHELL".into()),
                ));
            }
            if node.args.is_empty() {
                return Err(count_error(
                    node,
                    "needs at least one argument: SHELL [\"/bin/sh\", \"-c\"]",
                ));
            }
            Instruction::Shell(std::mem::take(&mut node.args))
        }
        "VOLUME" => {
            no_flags(node, "VOLUME")?;
            if node.args.is_empty() {
                return Err(count_error(node, "needs at least one argument: a path"));
            }
            let mut vols = Vec::with_capacity(node.args.len());
            let args = std::mem::take(&mut node.args);
            for (w, span) in args.into_iter().zip(&node.arg_spans) {
                if w.trim().is_empty() {
                    return Err((
                        *span,
                        ErrorKind::ArgumentCount {
                            instruction: "VOLUME".into(),
                            expected: "path cannot be an empty string".into(),
                        },
                    ));
                }
                vols.push(Spanned::new(w, *span));
            }
            Instruction::Volume(vols)
        }
        "FROM" => {
            // FROM opens a stage; reaching here means it was nested (ONBUILD handles its own).
            return Err((
                node.keyword_span,
                ErrorKind::OnBuildForbidden("FROM".into()),
            ));
        }
        _ => {
            return Err((
                node.keyword_span,
                ErrorKind::UnknownInstruction {
                    name: node.keyword().to_string(),
                    suggestion: suggest_keyword(node.keyword()),
                },
            ))
        }
    };
    Ok(Spanned::new(ins, node.span))
}

/// `FROM [--platform=p] image [AS name]`: the From and the lower-cased stage name.
pub fn parse_from(node: &Node) -> Result<(From, Option<String>), Fail> {
    let fl = flags(node, "FROM", &["platform"], &[])?;
    let mut platform = None;
    for f in &fl {
        platform = Some(need_value(f)?);
    }
    let usage = "needs an image, optionally followed by AS name: FROM image [AS name]";
    let (image, name, name_span) = match node.args.len() {
        1 => (&node.args[0], None, None),
        3 => {
            if !node.args[1].eq_ignore_ascii_case("as") {
                return Err((
                    node.arg_spans[1],
                    ErrorKind::ExpectedAs(node.args[1].clone()),
                ));
            }
            let name = node.args[2].to_ascii_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
                });
            if !valid {
                return Err((
                    node.arg_spans[2],
                    ErrorKind::InvalidStageName(node.args[2].clone()),
                ));
            }
            (&node.args[0], Some(name), Some(node.arg_spans[2]))
        }
        2 if node.args[1].eq_ignore_ascii_case("as") => {
            return Err(count_error(node, "needs a stage name after AS"));
        }
        _ => return Err(count_error(node, usage)),
    };
    Ok((
        From {
            image: Spanned::new(image.clone(), node.arg_spans[0]),
            platform,
            name_span,
            span: node.span,
        },
        name,
    ))
}

fn copy_or_add(node: &mut Node, keyword: &str) -> Result<Instruction, Fail> {
    let is_copy = keyword == "COPY";
    let allowed: &[&str] = if is_copy {
        &["from", "chown", "chmod", "link", "parents", "exclude"]
    } else {
        &[
            "chown",
            "chmod",
            "link",
            "exclude",
            "checksum",
            "keep-git-dir",
            "unpack",
        ]
    };
    let fl = flags(node, keyword, allowed, &["exclude"])?;
    let (mut from, mut chown, mut chmod, mut checksum) = (None, None, None, None);
    let (mut link, mut parents) = (false, false);
    let (mut keep_git_dir, mut unpack) = (None, None);
    let mut exclude = Vec::new();
    for f in &fl {
        match f.name {
            "from" => {
                let v = need_value(f)?;
                // BuildKit expands `--from` with no variables at all and refuses any change
                // (`toCommand` in dockerfile2llb/convert.go)
                if crate::dockerfile::shell::expand(&v.value, &|_| None).as_deref()
                    != Ok(v.value.as_str())
                {
                    return Err((f.span, ErrorKind::FromExpansion(v.value.clone())));
                }
                from = Some(v)
            }
            "chown" => chown = Some(need_value(f)?),
            "chmod" => {
                let v = need_value(f)?;
                let parsed = if v.value.contains('$') {
                    Chmod::Unexpanded(v.value.clone())
                } else {
                    Chmod::parse(&v.value).map_err(|k| (f.span, k))?
                };
                chmod = Some(Spanned::new(parsed, f.span));
            }
            "link" => link = bool_flag(f)?,
            "parents" => parents = bool_flag(f)?,
            "exclude" => exclude.push(need_value(f)?),
            "checksum" => {
                let v = need_value(f)?;
                if !v.value.contains('$') && !valid_checksum(&v.value) {
                    return Err((
                        f.span,
                        ErrorKind::InvalidFlagValue {
                            flag: "checksum".into(),
                            value: v.value.clone(),
                            expected: "sha256:<64 hex digits> or a Git commit (prefix) in hex"
                                .into(),
                        },
                    ));
                }
                checksum = Some(v);
            }
            "keep-git-dir" => keep_git_dir = Some(bool_flag(f)?),
            "unpack" => unpack = Some(bool_flag(f)?),
            _ => unreachable!("flags() admits only the listed names"),
        }
    }
    // Split the words into heredoc sources, path sources and the destination.
    let mut words: Vec<(String, Span)> = Vec::with_capacity(node.args.len());
    let mut k = 0;
    while k < node.args.len() {
        let mut w = std::mem::take(&mut node.args[k]);
        let mut span = node.arg_spans[k];
        if !node.json
            && (w == "<<" || w == "<<-")
            && k + 1 < node.args.len()
            && !node.heredocs.is_empty()
        {
            w.push(' ');
            w.push_str(&node.args[k + 1]);
            span.end_line = node.arg_spans[k + 1].end_line;
            span.end_column = node.arg_spans[k + 1].end_column;
            k += 1;
        }
        words.push((w, span));
        k += 1;
    }
    if words.len() < 2 {
        let expected = if words.len() == 1 {
            "needs at least two arguments (sources and a destination), but only one was given: the destination is missing"
        } else {
            "needs at least two arguments: sources and a destination"
        };
        return Err(count_error(node, expected));
    }
    let Some((dest_word, dest_span)) = words.pop() else {
        return Err(count_error(node, "needs a destination"));
    };
    let may_have_heredocs = !node.json && !node.heredocs.is_empty();
    let is_heredoc = |w: &str| -> bool {
        may_have_heredocs && matches!(lines::parse_heredoc_word(w), Ok(Some(_)))
    };
    if is_heredoc(&dest_word) {
        return Err((
            dest_span,
            ErrorKind::HeredocDestination(keyword.to_string()),
        ));
    }
    let mut sources = Vec::with_capacity(words.len());
    let mut heredocs = Vec::new();
    let mut next_doc = std::mem::take(&mut node.heredocs).into_iter();
    for (w, span) in words {
        if is_heredoc(&w) {
            if let Some(doc) = next_doc.next() {
                heredocs.push(doc);
                continue;
            }
        }
        sources.push(Spanned::new(w, span));
    }
    let dest = Spanned::new(dest_word, dest_span);
    let json = node.json;
    Ok(if is_copy {
        Instruction::Copy(Copy {
            sources,
            dest,
            heredocs,
            from,
            chown,
            chmod,
            link,
            parents,
            exclude,
            json,
        })
    } else {
        Instruction::Add(Add {
            sources,
            dest,
            heredocs,
            chown,
            chmod,
            link,
            exclude,
            checksum,
            keep_git_dir,
            unpack,
            json,
        })
    })
}

/// Linux signal names (with or without `SIG`, any case) and numbers 1 to 64.
pub fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    const NAMES: [&str; 33] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN",
        "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR",
    ];
    if NAMES.contains(&name) || name == "SYS" {
        return true;
    }
    // RTMIN, RTMIN+n, RTMAX, RTMAX-n
    let rt = |base: &str, sign: char| -> bool {
        match name.strip_prefix(base) {
            Some("") => true,
            Some(rest) => rest
                .strip_prefix(sign)
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| (1..=30).contains(&n)),
            None => false,
        }
    };
    rt("RTMIN", '+') || rt("RTMAX", '-')
}

fn valid_checksum(v: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    match v.split_once(':') {
        Some(("sha256", h)) => h.len() == 64 && hex(h),
        Some(("sha384", h)) => h.len() == 96 && hex(h),
        Some(("sha512", h)) => h.len() == 128 && hex(h),
        Some(_) => false,
        None => hex(v) && v.len() <= 64,
    }
}

fn run(node: &mut Node) -> Result<Instruction, Fail> {
    let fl = flags(
        node,
        "RUN",
        &["mount", "network", "security", "device"],
        &["mount", "device"],
    )?;
    let mut mounts = Vec::new();
    let mut network = None;
    let mut security = None;
    let mut devices = Vec::new();
    for f in &fl {
        let v = need_value(f)?;
        let bad = |expected: &str| {
            (
                f.span,
                ErrorKind::InvalidFlagValue {
                    flag: f.name.to_string(),
                    value: v.value.clone(),
                    expected: expected.to_string(),
                },
            )
        };
        match f.name {
            "mount" => {
                let m = parse_mount(&v.value).map_err(|reason| {
                    (
                        f.span,
                        ErrorKind::InvalidMount {
                            spec: v.value.clone(),
                            reason,
                        },
                    )
                })?;
                mounts.push(Spanned::new(m, f.span));
            }
            "network" => {
                let n = match v.value.as_str() {
                    "default" => Network::Default,
                    "none" => Network::None,
                    "host" => Network::Host,
                    _ => return Err(bad("default, none or host")),
                };
                network = Some(Spanned::new(n, f.span));
            }
            "security" => {
                let s = match v.value.as_str() {
                    "sandbox" => Security::Sandbox,
                    "insecure" => Security::Insecure,
                    _ => return Err(bad("sandbox or insecure")),
                };
                security = Some(Spanned::new(s, f.span));
            }
            "device" => {
                let mut parts = v.value.split(',');
                let name = parts.next().unwrap_or_default().to_string();
                if name.is_empty() {
                    return Err(bad("a CDI device name, optionally followed by ,required"));
                }
                let mut required = false;
                for p in parts {
                    match p.split_once('=') {
                        None if p == "required" => required = true,
                        Some(("required", b)) => {
                            required = parse_bool(b)
                                .ok_or_else(|| bad("required=true or required=false"))?
                        }
                        _ => {
                            return Err(bad("a CDI device name, optionally followed by ,required"))
                        }
                    }
                }
                devices.push(Spanned::new(Device { name, required }, f.span));
            }
            _ => unreachable!("flags() admits only the listed names"),
        }
    }
    let command = if node.json {
        ShellOrExec::Exec(std::mem::take(&mut node.args))
    } else {
        if node.text.is_empty() {
            return Err(count_error(node, "needs a command"));
        }
        ShellOrExec::Shell(std::mem::take(&mut node.text))
    };
    Ok(Instruction::Run(Run {
        command,
        mounts,
        network,
        security,
        devices,
        heredocs: std::mem::take(&mut node.heredocs),
    }))
}

/// Splits a `--mount` value on commas, honouring `"…"` quoting of a field (CSV, as BuildKit
/// reads it).
pub fn csv_fields(s: &str) -> Result<Vec<std::borrow::Cow<'_, str>>, String> {
    if !s.contains('"') {
        return Ok(s.split(',').map(std::borrow::Cow::Borrowed).collect());
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut in_quotes = false;
    let mut field_start = true;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                out.push(std::mem::take(&mut cur));
                field_start = true;
                continue;
            }
            '"' if field_start => in_quotes = true,
            c => cur.push(c),
        }
        field_start = false;
    }
    if in_quotes {
        return Err("unterminated quote".into());
    }
    out.push(cur);
    Ok(out.into_iter().map(std::borrow::Cow::Owned).collect())
}

/// Joins fields into one CSV record as [`csv_fields`] reads it: a field holding `,` or `"` is
/// quoted, its `"` doubled.
pub fn csv_join<S: AsRef<str>>(fields: &[S]) -> String {
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate() {
        let f = f.as_ref();
        if i > 0 {
            out.push(',');
        }
        if f.contains(',') || f.contains('"') {
            out.push('"');
            out.push_str(&f.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(f);
        }
    }
    out
}

/// Parses one `--mount` value per the reference's option tables.
pub fn parse_mount(spec: &str) -> Result<RunMount, String> {
    let fields = csv_fields(spec)?;
    let mut kind = "bind";
    let mut opts: Vec<(std::borrow::Cow<'_, str>, Option<&str>)> = Vec::with_capacity(fields.len());
    for field in &fields {
        if field.is_empty() {
            continue;
        }
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v)),
            None => (field.trim(), None),
        };
        let k = if k.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(k.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(k)
        };
        if k == "type" {
            kind = v.ok_or("`type` needs a value: bind, cache, tmpfs, secret or ssh")?;
            continue;
        }
        opts.push((k, v));
    }
    let allowed: &[&str] = match kind {
        "bind" => &[
            "target",
            "dst",
            "destination",
            "source",
            "src",
            "from",
            "rw",
            "readwrite",
            "ro",
            "readonly",
        ],
        "cache" => &[
            "target",
            "dst",
            "destination",
            "id",
            "ro",
            "readonly",
            "rw",
            "readwrite",
            "sharing",
            "from",
            "source",
            "src",
            "mode",
            "uid",
            "gid",
        ],
        "tmpfs" => &["target", "dst", "destination", "size"],
        "secret" => &[
            "id",
            "target",
            "dst",
            "destination",
            "env",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        "ssh" => &[
            "id",
            "target",
            "dst",
            "destination",
            "required",
            "mode",
            "uid",
            "gid",
        ],
        other => {
            return Err(format!(
                "unknown mount type `{other}`: expected bind, cache, tmpfs, secret or ssh"
            ))
        }
    };
    let mut target = None;
    let mut source = None;
    let mut from = None;
    let mut id = None;
    let mut env = None;
    let mut readonly = None;
    let mut required = false;
    let mut sharing = CacheSharing::Shared;
    let mut mode = None;
    let mut uid = None;
    let mut gid = None;
    let mut size = None;
    for (k, v) in opts {
        if !allowed.contains(&k.as_ref()) {
            return Err(format!("`{k}` is not an option of a {kind} mount"));
        }
        let value = |v: &Option<&str>| -> Result<String, String> {
            v.map(str::to_string)
                .ok_or_else(|| format!("`{k}` needs a value: write {k}=<value>"))
        };
        let flag_bool = |v: &Option<&str>| -> Result<bool, String> {
            match v {
                None => Ok(true),
                Some(s) => {
                    parse_bool(s).ok_or_else(|| format!("`{k}` takes true or false, not `{s}`"))
                }
            }
        };
        let number = |v: &Option<&str>, radix: u32| -> Result<u32, String> {
            let s = value(v)?;
            if s.contains('$') {
                return Err(format!("`{k}` cannot hold a variable"));
            }
            u32::from_str_radix(&s, radix).map_err(|_| {
                format!(
                    "`{k}` must be {}, not `{s}`",
                    if radix == 8 {
                        "an octal mode"
                    } else {
                        "a number"
                    }
                )
            })
        };
        match k.as_ref() {
            "target" | "dst" | "destination" => target = Some(value(&v)?),
            "source" | "src" => source = Some(value(&v)?),
            "from" => {
                let s = value(&v)?;
                // BuildKit's `parseMount`: a `$` anywhere but last is refused
                if s.find('$').is_some_and(|i| i + 1 != s.len()) {
                    return Err(
                        "'from' doesn't support variable expansion, define alias stage instead"
                            .to_string(),
                    );
                }
                from = Some(s)
            }
            "id" => id = Some(value(&v)?),
            "env" => env = Some(value(&v)?),
            "ro" | "readonly" => readonly = Some(flag_bool(&v)?),
            "rw" | "readwrite" => readonly = Some(!flag_bool(&v)?),
            "required" => required = flag_bool(&v)?,
            "sharing" => {
                sharing = match value(&v)?.as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    s => {
                        return Err(format!(
                            "`sharing` must be shared, private or locked, not `{s}`"
                        ))
                    }
                }
            }
            "mode" => mode = Some(number(&v, 8)?),
            "uid" => uid = Some(number(&v, 10)?),
            "gid" => gid = Some(number(&v, 10)?),
            "size" => {
                let s = value(&v)?;
                size = Some(
                    parse_size(&s)
                        .ok_or_else(|| format!("`size` must be a size such as 64m, not `{s}`"))?,
                );
            }
            _ => unreachable!("checked against the allowed list"),
        }
    }
    let need_target = |t: Option<String>| {
        t.filter(|t| !t.is_empty())
            .ok_or_else(|| format!("a {kind} mount needs a target: target=<path>"))
    };
    Ok(match kind {
        "bind" => RunMount::Bind(BindMount {
            target: target.filter(|t| !t.is_empty()),
            source,
            from,
            readwrite: readonly == Some(false),
        }),
        "cache" => RunMount::Cache(CacheMount {
            target: need_target(target)?,
            id,
            readonly: readonly == Some(true),
            sharing,
            from,
            source,
            mode,
            uid,
            gid,
        }),
        "tmpfs" => RunMount::Tmpfs(TmpfsMount {
            target: need_target(target)?,
            size,
        }),
        "secret" => RunMount::Secret(SecretMount {
            id,
            target,
            env,
            required,
            mode,
            uid,
            gid,
        }),
        _ => RunMount::Ssh(SshMount {
            id,
            target,
            required,
            mode,
            uid,
            gid,
        }),
    })
}

/// `64m`, `1g`, `1024`, `512kb`, `2GiB` in bytes (binary multipliers, as Docker's RAMInBytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return None;
    }
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Go's `time.ParseDuration` (`1m30s`, `500ms`, `1.5h`, `0`).
pub fn parse_duration(s: &str) -> Option<(bool, Duration)> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some((neg, Duration::ZERO));
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
                .len();
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| !(c.is_ascii_digit() || c == '.'))
                .len();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * nanos;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some((neg, Duration::from_nanos(total as u64)))
}

fn healthcheck(node: &Node) -> Result<Instruction, Fail> {
    let fl = flags(
        node,
        "HEALTHCHECK",
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        &[],
    )?;
    if node.args.is_empty() {
        return Err(count_error(
            node,
            "needs at least one argument: CMD command or NONE",
        ));
    }
    let typ = node.args[0].to_ascii_uppercase();
    if typ == "NONE" {
        if node.args.len() > 1 || !fl.is_empty() {
            return Err((node.text_span, ErrorKind::HealthcheckNoneArgs));
        }
        return Ok(Instruction::Healthcheck(Healthcheck::None));
    }
    if typ != "CMD" {
        return Err((
            node.arg_spans[0],
            ErrorKind::HealthcheckType(node.args[0].clone()),
        ));
    }
    let test = if node.json {
        let argv = node.args[1..].to_vec();
        if argv.is_empty() {
            return Err((node.text_span, ErrorKind::HealthcheckMissingCommand));
        }
        ShellOrExec::Exec(argv)
    } else {
        match node.args.get(1) {
            Some(cmd) => ShellOrExec::Shell(cmd.clone()),
            None => return Err((node.text_span, ErrorKind::HealthcheckMissingCommand)),
        }
    };
    let mut cfg = HealthConfig {
        test,
        interval: None,
        timeout: None,
        start_period: None,
        start_interval: None,
        retries: None,
    };
    for f in &fl {
        let v = need_value(f)?;
        if f.name == "retries" {
            let n: u32 = v.value.parse().map_err(|_| {
                (
                    f.span,
                    ErrorKind::InvalidFlagValue {
                        flag: "retries".into(),
                        value: v.value.clone(),
                        expected: "a whole number of 0 or more".into(),
                    },
                )
            })?;
            cfg.retries = Some(n);
            continue;
        }
        let d = match parse_duration(&v.value) {
            Some((false, d)) if d.is_zero() || d >= Duration::from_millis(1) => d,
            other => {
                let expected = match other {
                    None => "a duration such as 30s, 1m30s or 500ms",
                    Some((true, _)) => "a duration that is not negative",
                    Some(_) => "0 or a duration of at least 1ms",
                };
                return Err((
                    f.span,
                    ErrorKind::InvalidFlagValue {
                        flag: f.name.to_string(),
                        value: v.value.clone(),
                        expected: expected.into(),
                    },
                ));
            }
        };
        match f.name {
            "interval" => cfg.interval = Some(d),
            "timeout" => cfg.timeout = Some(d),
            "start-period" => cfg.start_period = Some(d),
            _ => cfg.start_interval = Some(d),
        }
    }
    Ok(Instruction::Healthcheck(Healthcheck::Cmd(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chmod_values() {
        assert_eq!(Chmod::parse("755"), Ok(Chmod::Octal(0o755)));
        assert_eq!(Chmod::parse("0644"), Ok(Chmod::Octal(0o644)));
        assert!(Chmod::parse("9").is_err());
        assert!(Chmod::parse("77777").is_err());
        for ok in ["+x", "u=rwX,go=rX", "g=u", "a-w", "u+s", "o="] {
            assert!(matches!(Chmod::parse(ok), Ok(Chmod::Symbolic(_))), "{ok}");
        }
        for bad in ["x", "u", "u+q", "", "u+x,"] {
            assert!(Chmod::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            PortSpec::parse("8000-8010/udp"),
            Ok(PortSpec {
                start: 8000,
                end: 8010,
                protocol: Protocol::Udp,
                proto_not_lower: false,
                has_mapping: false,
            })
        );
        assert_eq!(PortSpec::parse("80").map(|p| p.protocol), Ok(Protocol::Tcp));
        let p = PortSpec::parse("127.0.0.1:8080:80/TCP").expect("mapping");
        assert!(p.has_mapping && p.proto_not_lower);
        assert_eq!(p.keys(), vec!["80/tcp".to_string()]);
        let p = PortSpec::parse("[::1]:8000-8001:9000-9001").expect("v6");
        assert_eq!(p.keys().len(), 2);
        for bad in [
            "80/xyz",
            "x",
            "70000",
            "10-5",
            "",
            "1:2-3:80",
            "/tcp",
            "8000-8002:9000-9001",
        ] {
            assert!(PortSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("1m30s"),
            Some((false, Duration::from_secs(90)))
        );
        assert_eq!(
            parse_duration("500ms"),
            Some((false, Duration::from_millis(500)))
        );
        assert_eq!(parse_duration("0"), Some((false, Duration::ZERO)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-1s"), Some((true, Duration::from_secs(1))));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("m"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest_keyword("RUNN").as_deref(), Some("RUN"));
        assert_eq!(suggest_keyword("COYP").as_deref(), Some("COPY"));
        assert_eq!(suggest_keyword("workdri").as_deref(), Some("WORKDIR"));
        assert_eq!(suggest_keyword("FOO"), None);
    }
}
