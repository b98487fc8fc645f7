//! Resolving one stage's instructions into [`Step`]s once its base is known: ARG and ENV scopes
//! in order, expansion where Docker expands, SHELL wrapping, WORKDIR joining, ONBUILD triggers
//! of the base run first. Pure.

use std::collections::BTreeMap;

use super::expand;
use super::input::{self, Command, Kind};
use super::step::*;
use super::{at, BuildPlan, PlanError, PROXY_ARGS};

/// Where a `#!` heredoc script of RUN is mounted in the container.
pub const HEREDOC_DIR: &str = "/run/hoist/heredoc";

/// What a stage inherits from its base image (or earlier stage).
#[derive(Debug, Clone, Default)]
pub struct BaseInfo {
    /// `KEY=VALUE` entries of the base config.
    pub env: Vec<String>,
    pub shell: Option<Vec<String>>,
    pub workdir: Option<String>,
    /// The base image's ONBUILD triggers, already parsed (they run right after FROM).
    pub onbuild: Vec<input::Instr>,
}

/// `from=NAME` of a `--mount` value, if any.
pub fn mount_from(spec: &str) -> Option<String> {
    let fields = crate::dockerfile::instruction::csv_fields(spec).ok()?;
    fields.iter().find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == "from").then(|| v.trim().to_string())
    })
}

/// Expands each value of a `--mount` CSV record on its own (BuildKit's `parseMount` splits
/// first, so a quoted field keeps its commas).
fn expand_mount(
    spec: &str,
    expand: &dyn Fn(&str) -> Result<String, PlanError>,
) -> Result<String, PlanError> {
    let fields = crate::dockerfile::instruction::csv_fields(spec).unwrap_or_default();
    let mut out = Vec::with_capacity(fields.len());
    for f in &fields {
        out.push(match f.split_once('=') {
            Some((k, v)) => format!("{k}={}", expand(v)?),
            None => f.to_string(),
        });
    }
    Ok(crate::dockerfile::instruction::csv_join(&out))
}

fn join_abs(workdir: &str, p: &str) -> String {
    if p.starts_with('/') {
        p.to_string()
    } else {
        let base = workdir.trim_end_matches('/');
        format!("{base}/{p}")
    }
}

/// Lexical clean of an absolute path (`.`, `..`, `//`).
pub fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

struct Scope<'a> {
    plan: &'a BuildPlan,
    /// Declared ARGs with a value.
    args: BTreeMap<String, String>,
    /// Declared ARGs in declaration order (values may be missing).
    arg_order: Vec<String>,
    env: Vec<(String, String)>,
    shell: Vec<String>,
    workdir: String,
}

impl Scope<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.env.iter().rev().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        self.args.get(name).cloned()
    }

    fn expand(&self, file: &str, line: usize, what: &str, w: &str) -> Result<String, PlanError> {
        expand::word_with(self.plan.escape, w, &|n| self.lookup(n))
            .map_err(|e| at(file, line, format!("{what}: {e}")))
    }

    fn set_env(&mut self, k: &str, v: &str) {
        match self.env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => self.env.push((k.to_string(), v.to_string())),
        }
    }

    fn wrap(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.shell.clone();
                v.push(s.clone());
                v
            }
        }
    }

    /// ARGs in scope with values that ENV does not shadow, plus given proxy args.
    fn run_args(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for k in &self.arg_order {
            if self.env.iter().any(|(e, _)| e == k) {
                continue;
            }
            if let Some(v) = self.args.get(k) {
                out.push((k.clone(), v.clone()));
            }
        }
        out
    }
}

impl BuildPlan {
    /// Resolves stage `index`'s instructions (after the base's ONBUILD triggers) into steps.
    pub fn resolve_stage(&self, index: usize, base: &BaseInfo) -> Result<Vec<Step>, PlanError> {
        let file = self.file.clone();
        let stage = &self.stages[index];
        let mut scope = Scope {
            plan: self,
            args: BTreeMap::new(),
            arg_order: Vec::new(),
            env: base
                .env
                .iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.clone(), String::new()),
                })
                .collect(),
            shell: base
                .shell
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| vec!["/bin/sh".to_string(), "-c".to_string()]),
            workdir: base
                .workdir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".to_string()),
        };
        let mut steps = Vec::new();
        for ins in base.onbuild.iter().chain(stage.input.instrs.iter()) {
            steps.push(self.resolve_one(&file, index, ins, &mut scope)?);
        }
        Ok(steps)
    }

    fn resolve_from(
        &self,
        file: &str,
        line: usize,
        stage: usize,
        f: &str,
    ) -> Result<FromRef, PlanError> {
        if let Some(i) = self.stage_ref(f, stage) {
            return Ok(FromRef::Stage(i));
        }
        if f.parse::<usize>().is_ok() {
            return Err(at(
                file,
                line,
                format!("--from={f}: stage index {f} is not an earlier stage"),
            ));
        }
        if self
            .stages
            .iter()
            .any(|s| s.name.as_deref() == Some(f.to_ascii_lowercase().as_str()))
        {
            return Err(at(
                file,
                line,
                format!("--from={f}: stage `{f}` is not defined before this one"),
            ));
        }
        Ok(FromRef::Image(f.to_string()))
    }

    fn resolve_one(
        &self,
        file: &str,
        stage: usize,
        ins: &input::Instr,
        scope: &mut Scope<'_>,
    ) -> Result<Step, PlanError> {
        let line = ins.line;
        let x = |scope: &Scope<'_>, what: &str, w: &str| scope.expand(file, line, what, w);
        let op = match &ins.kind {
            Kind::Run {
                command,
                mounts,
                network,
                heredocs,
            } => {
                let mut argv = scope.wrap(command);
                let mut shebang = None;
                let mut shown = match command {
                    Command::Shell(s) => s.clone(),
                    Command::Exec(v) => {
                        serde_json::to_string(v).expect("a list of strings always serialises")
                    }
                };
                if let (Command::Shell(s), false) = (command, heredocs.is_empty()) {
                    // the shell reads the heredocs itself: give it the whole text
                    let mut script = s.clone();
                    let trimmed = s.trim();
                    let only = heredocs.len() == 1
                        && trimmed
                            .trim_start_matches("<<")
                            .trim_start_matches('-')
                            .trim_matches(|c| c == '"' || c == '\'')
                            == heredocs[0].name;
                    if only {
                        let h = &heredocs[0];
                        // the shell reads the script: it expands what it expands
                        script = h.content.clone();
                        if script.starts_with("#!") {
                            shebang = Some(InlineFile {
                                name: h.name.clone(),
                                content: script.clone(),
                            });
                        }
                    } else {
                        for h in heredocs {
                            script.push('\n');
                            script.push_str(&h.content);
                            if !h.content.ends_with('\n') {
                                script.push('\n');
                            }
                            script.push_str(&h.name);
                        }
                    }
                    argv = match &shebang {
                        Some(f) => vec![format!("{HEREDOC_DIR}/{}", f.name)],
                        None => {
                            let mut v = scope.shell.clone();
                            v.push(script.clone());
                            v
                        }
                    };
                    shown = script;
                }
                let network = match network.as_deref() {
                    None => Network::Default,
                    Some("default") => Network::Default,
                    Some("host") => Network::Host,
                    Some("none") => Network::None,
                    Some(other) => {
                        return Err(at(
                            file,
                            line,
                            format!("RUN --network={other}: use `default`, `host` or `none`"),
                        ))
                    }
                };
                let mut ms = Vec::new();
                for m in mounts {
                    let m = expand_mount(m, &|v| x(scope, "RUN --mount", v))?;
                    ms.push(self.parse_mount(file, line, stage, &m, &scope.workdir)?);
                }
                let args_in_scope = scope.run_args();
                let mut env = scope.env.clone();
                for (k, v) in &args_in_scope {
                    env.push((k.clone(), v.clone()));
                }
                for p in PROXY_ARGS {
                    if let Some(v) = self.build_args.get(*p) {
                        if !env.iter().any(|(k, _)| k == p) {
                            env.push((p.to_string(), v.clone()));
                        }
                    }
                }
                Op::Run(RunOp {
                    argv,
                    env,
                    args_in_scope,
                    mounts: ms,
                    network,
                    script: shebang,
                    shown,
                })
            }
            Kind::Copy {
                add,
                sources,
                dest,
                from,
                chown,
                chmod,
                link,
                excludes,
                parents,
                checksum,
                keep_git_dir,
                unpack,
                heredocs,
            } => {
                let what = if *add { "ADD" } else { "COPY" };
                let mut srcs = Vec::new();
                for s in sources {
                    srcs.push(x(scope, what, s)?);
                }
                let mut inline = Vec::new();
                for h in heredocs {
                    let content = if h.expand {
                        x(scope, what, &h.content)?
                    } else {
                        h.content.clone()
                    };
                    inline.push(InlineFile {
                        name: h.name.clone(),
                        content,
                    });
                }
                let d = x(scope, what, dest)?;
                let dir_intent = d.ends_with('/') || d == "." || d.ends_with("/.") || d == "..";
                let mut abs = clean(&join_abs(&scope.workdir, &d));
                if dir_intent && !abs.ends_with('/') {
                    abs.push('/');
                }
                let from = match from {
                    Some(f) => Some(self.resolve_from(file, line, stage, &x(scope, what, f)?)?),
                    None => None,
                };
                let ex = |o: &Option<String>| -> Result<Option<String>, PlanError> {
                    o.as_ref().map(|v| x(scope, what, v)).transpose()
                };
                Op::Copy(CopyOp {
                    add: *add,
                    sources: srcs,
                    inline,
                    dest: abs,
                    from,
                    chown: ex(chown)?,
                    chmod: ex(chmod)?,
                    excludes: excludes
                        .iter()
                        .map(|e| x(scope, what, e))
                        .collect::<Result<_, _>>()?,
                    parents: *parents,
                    checksum: ex(checksum)?,
                    link: *link,
                    keep_git_dir: *keep_git_dir,
                    unpack: *unpack,
                })
            }
            Kind::Env(pairs) => {
                // every pair sees the scope from before the instruction, and keys expand
                // too (BuildKit's `EnvCommand.Expand` runs over all pairs before dispatch)
                let mut out = Vec::new();
                for (k, v) in pairs {
                    out.push((x(scope, "ENV", k)?, x(scope, "ENV", v)?));
                }
                for (k, v) in &out {
                    scope.set_env(k, v);
                }
                Op::Env(out)
            }
            Kind::Arg(args) => {
                let mut out = Vec::new();
                for (k, default) in args {
                    let value = match self.build_args.get(k) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(x(scope, "ARG", d)?),
                            None => self.meta.get(k).cloned(),
                        },
                    };
                    if !scope.arg_order.contains(k) {
                        scope.arg_order.push(k.clone());
                    }
                    match &value {
                        Some(v) => {
                            scope.args.insert(k.clone(), v.clone());
                        }
                        None => {
                            scope.args.remove(k);
                        }
                    }
                    out.push((k.clone(), value));
                }
                Op::Arg(out)
            }
            Kind::Label(pairs) => {
                let mut out = Vec::new();
                for (k, v) in pairs {
                    out.push((x(scope, "LABEL", k)?, x(scope, "LABEL", v)?));
                }
                Op::Label(out)
            }
            Kind::Workdir(w) => {
                let w = x(scope, "WORKDIR", w)?;
                if w.is_empty() {
                    return Err(at(file, line, "WORKDIR needs a path"));
                }
                // Docker keeps an absolute WORKDIR as written (`/tmp/` stays `/tmp/`) and
                // joins and cleans a relative one
                scope.workdir = if w.starts_with('/') {
                    w.clone()
                } else {
                    clean(&join_abs(&scope.workdir, &w))
                };
                Op::Workdir(scope.workdir.clone())
            }
            Kind::User(u) => {
                let u = x(scope, "USER", u)?;
                if u.is_empty() {
                    return Err(at(file, line, "USER needs a user name or uid"));
                }
                Op::User(u)
            }
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let p = x(scope, "EXPOSE", p)?;
                    out.extend(p.split_whitespace().map(str::to_string));
                }
                // one key per port, as BuildKit's `parsePort` (`8000-8002` is three ports)
                let mut keys = Vec::new();
                for p in &out {
                    let spec = crate::dockerfile::PortSpec::parse(p)
                        .map_err(|e| at(file, line, format!("EXPOSE: {e}")))?;
                    for k in spec.keys() {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                }
                let out = keys;
                Op::Expose(out)
            }
            Kind::Volume(vs) => {
                let mut out = Vec::new();
                for v in vs {
                    let v = x(scope, "VOLUME", v)?;
                    if v.is_empty() {
                        return Err(at(file, line, "VOLUME needs a path"));
                    }
                    out.push(v);
                }
                Op::Volume(out)
            }
            Kind::Cmd(c) => Op::Cmd(scope.wrap(c)),
            Kind::Entrypoint(c) => Op::Entrypoint(scope.wrap(c)),
            Kind::StopSignal(s) => Op::StopSignal(x(scope, "STOPSIGNAL", s)?),
            Kind::Healthcheck {
                test,
                interval,
                timeout,
                start_period,
                start_interval,
                retries,
            } => {
                let test = match test {
                    None => vec!["NONE".to_string()],
                    Some(Command::Shell(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
                    Some(Command::Exec(v)) => {
                        let mut t = vec!["CMD".to_string()];
                        t.extend(v.iter().cloned());
                        t
                    }
                };
                Op::Healthcheck(HealthcheckOp {
                    test,
                    interval_ns: *interval,
                    timeout_ns: *timeout,
                    start_period_ns: *start_period,
                    start_interval_ns: *start_interval,
                    retries: *retries,
                })
            }
            Kind::Shell(s) => {
                if s.is_empty() {
                    return Err(at(
                        file,
                        line,
                        "SHELL needs a JSON array such as [\"/bin/sh\", \"-c\"]",
                    ));
                }
                scope.shell = s.clone();
                Op::Shell(s.clone())
            }
            Kind::OnBuild(t) => Op::OnBuild(t.clone()),
            Kind::Maintainer(m) => Op::Maintainer(m.clone()),
        };
        Ok(Step {
            line,
            text: ins.text.clone(),
            op,
        })
    }

    fn parse_mount(
        &self,
        file: &str,
        line: usize,
        stage: usize,
        spec: &str,
        workdir: &str,
    ) -> Result<RunMount, PlanError> {
        let bad = |m: String| at(file, line, format!("RUN --mount={spec}: {m}"));
        let mut kv: BTreeMap<String, String> = BTreeMap::new();
        let mut flags: Vec<String> = Vec::new();
        let fields = crate::dockerfile::instruction::csv_fields(spec).map_err(bad)?;
        for part in &fields {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => {
                    kv.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
                None => flags.push(part.to_ascii_lowercase()),
            }
        }
        let kind = kv.remove("type").unwrap_or_else(|| "bind".to_string());
        let target = kv
            .remove("target")
            .or_else(|| kv.remove("dst"))
            .or_else(|| kv.remove("destination"));
        let flag = |name: &str, kv: &BTreeMap<String, String>| -> bool {
            flags.iter().any(|f| f == name)
                || kv
                    .get(name)
                    .map(|v| v == "true" || v.is_empty())
                    .unwrap_or(false)
        };
        let num = |name: &str, default: u32, octal: bool| -> Result<u32, PlanError> {
            match kv.get(name) {
                None => Ok(default),
                Some(v) => {
                    let r = if octal {
                        u32::from_str_radix(v, 8)
                    } else {
                        v.parse::<u32>()
                    };
                    r.map_err(|_| bad(format!("`{name}={v}` is not a number")))
                }
            }
        };
        let known: &[&str] = match kind.as_str() {
            "bind" => &["source", "src", "from", "rw", "readwrite", "readonly", "ro"],
            "cache" => &[
                "id", "sharing", "mode", "uid", "gid", "ro", "readonly", "from", "source", "src",
            ],
            "tmpfs" => &["size"],
            "secret" => &["id", "required", "mode", "uid", "gid", "env"],
            other => {
                return Err(bad(format!(
                    "unsupported mount type `{other}`: use bind, cache, tmpfs or secret"
                )))
            }
        };
        for k in kv.keys() {
            if !known.contains(&k.as_str()) {
                return Err(bad(format!("unknown option `{k}` for type={kind}")));
            }
        }
        for f in &flags {
            if !known.contains(&f.as_str()) {
                return Err(bad(format!("unknown option `{f}` for type={kind}")));
            }
        }
        // a relative target is under WORKDIR, as BuildKit's `dispatchRunMounts` joins it
        let abs = |t: &str| clean(&join_abs(workdir, t));
        Ok(match kind.as_str() {
            "bind" => {
                // no target: BuildKit mounts at WORKDIR (and refuses `/`)
                let target = target.unwrap_or_default();
                if abs(&target) == "/" {
                    return Err(bad(
                        "`target=` is missing and the working directory is `/`".into()
                    ));
                }
                let from = match kv.get("from") {
                    Some(f) => Some(self.resolve_from(file, line, stage, f)?),
                    None => None,
                };
                RunMount::Bind {
                    target: abs(&target),
                    source: kv
                        .get("source")
                        .or_else(|| kv.get("src"))
                        .cloned()
                        .unwrap_or_else(|| ".".to_string()),
                    from,
                    rw: flag("rw", &kv) || flag("readwrite", &kv),
                }
            }
            "cache" => {
                if kv.contains_key("from") || kv.contains_key("source") || kv.contains_key("src") {
                    return Err(bad(
                        "a cache mount seeded `from=` another stage or image is not supported"
                            .into(),
                    ));
                }
                let target = target.ok_or_else(|| bad("`target=` is missing".into()))?;
                let target = abs(&target);
                RunMount::Cache {
                    id: kv.get("id").cloned().unwrap_or_else(|| target.clone()),
                    target,
                    mode: num("mode", 0o755, true)?,
                    uid: num("uid", 0, false)?,
                    gid: num("gid", 0, false)?,
                    read_only: flag("ro", &kv) || flag("readonly", &kv),
                    sharing: match kv.get("sharing").map(String::as_str) {
                        None | Some("shared") => Sharing::Shared,
                        Some("private") => Sharing::Private,
                        Some("locked") => Sharing::Locked,
                        Some(other) => {
                            return Err(bad(format!(
                                "`sharing={other}`: use shared, private or locked"
                            )))
                        }
                    },
                }
            }
            "tmpfs" => {
                let target = target.ok_or_else(|| bad("`target=` is missing".into()))?;
                let size = match kv.get("size") {
                    None => None,
                    Some(s) => Some(
                        parse_size(s).ok_or_else(|| bad(format!("`size={s}` is not a size")))?,
                    ),
                };
                RunMount::Tmpfs {
                    target: abs(&target),
                    size,
                }
            }
            _ => {
                if kv.contains_key("env") {
                    return Err(bad("secrets as environment variables (`env=`) are not supported; mount them as files".into()));
                }
                let id = kv.get("id").cloned();
                let target = match (&target, &id) {
                    (Some(t), _) => abs(t),
                    (None, Some(id)) => format!("/run/secrets/{id}"),
                    (None, None) => return Err(bad("`id=` or `target=` is needed".into())),
                };
                let id =
                    id.unwrap_or_else(|| target.rsplit('/').next().unwrap_or_default().to_string());
                RunMount::Secret {
                    id,
                    target,
                    required: flag("required", &kv),
                    mode: num("mode", 0o400, true)?,
                    uid: num("uid", 0, false)?,
                    gid: num("gid", 0, false)?,
                }
            }
        })
    }
}

fn parse_size(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (num, mult) = match lower.trim_end_matches('b').chars().last()? {
        'k' => (&lower[..lower.trim_end_matches('b').len() - 1], 1u64 << 10),
        'm' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 20),
        'g' => (&lower[..lower.trim_end_matches('b').len() - 1], 1 << 30),
        _ => (lower.trim_end_matches('b'), 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}
