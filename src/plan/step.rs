//! The resolved steps a stage is made of: every word expanded the way Docker expands it, shell
//! forms already wrapped through the stage's `SHELL`, relative paths joined to the `WORKDIR`.
//! Exec runs these without knowing Dockerfile syntax.
//!
//! Each step can describe itself canonically ([`Step::cache_parts`]): exec's build cache hashes
//! a key from the parent key, these parts, the platform and the content digests of the step's
//! inputs. Nothing here is hashed or looked up (plan is pure).

use std::collections::BTreeMap;

/// A step of a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 1-based line of the instruction in the Dockerfile (for `Dockerfile:12: …` errors).
    pub line: usize,
    /// The instruction as shown in progress and errors (`RUN make`), unexpanded.
    pub text: String,
    pub op: Op,
}

/// Where a `COPY --from` or `RUN --mount from=` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromRef {
    /// An earlier stage of this build, by index.
    Stage(usize),
    /// An image in the local store, by name.
    Image(String),
}

/// The network of a RUN step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Whatever the build says (`hoist build --network`).
    Default,
    Host,
    None,
}

/// A `RUN --mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// `type=bind`: a path of the context (or of `from`) at `target`, read-only unless `rw`.
    Bind {
        target: String,
        source: String,
        from: Option<FromRef>,
        rw: bool,
    },
    /// `type=cache`: a directory kept between builds under `id`.
    Cache {
        target: String,
        id: String,
        mode: u32,
        uid: u32,
        gid: u32,
        read_only: bool,
        sharing: Sharing,
    },
    /// `type=tmpfs`.
    Tmpfs { target: String, size: Option<u64> },
    /// `type=secret`: the file given by `--secret id=ID,src=…`, at `target`.
    Secret {
        id: String,
        target: String,
        required: bool,
        mode: u32,
        uid: u32,
        gid: u32,
    },
}

/// How concurrent builds share a cache mount (`sharing=`), as BuildKit defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sharing {
    /// Every user sees the same directory at once.
    #[default]
    Shared,
    /// A user that finds the directory in use gets a directory of its own.
    Private,
    /// Users take turns: the directory is held for a whole step.
    Locked,
}

/// A RUN step.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOp {
    /// The process's argv (shell form already wrapped through SHELL).
    pub argv: Vec<String>,
    /// The process environment: the image's ENV plus the build args in scope.
    pub env: Vec<(String, String)>,
    /// The build args in scope that are not ENV (written into the history as buildah does).
    pub args_in_scope: Vec<(String, String)>,
    pub mounts: Vec<RunMount>,
    pub network: Network,
    /// A heredoc script with a `#!` line (`RUN <<EOF` + `#!/usr/bin/env python3` …): exec
    /// mounts it read-only at `argv[0]`, where BuildKit would put it under `/dev/pipes/`.
    pub script: Option<InlineFile>,
    /// The text after `RUN ` (history's `created_by`).
    pub shown: String,
}

/// A heredoc given as a COPY/ADD source (`COPY <<EOF /file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    pub name: String,
    pub content: String,
}

/// COPY or ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyOp {
    pub add: bool,
    /// Source paths/patterns as written (expanded), or URLs for ADD.
    pub sources: Vec<String>,
    pub inline: Vec<InlineFile>,
    /// Destination (expanded; relative ones are joined to the WORKDIR; trailing `/` kept).
    pub dest: String,
    pub from: Option<FromRef>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub excludes: Vec<String>,
    pub parents: bool,
    pub checksum: Option<String>,
    /// `--link`: the destination is written as into an empty tree (no symlink or directory of
    /// the image below is looked at).
    pub link: bool,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthcheckOp {
    /// `["NONE"]` disables; `["CMD", …]` or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    pub interval_ns: u64,
    pub timeout_ns: u64,
    pub start_period_ns: u64,
    pub start_interval_ns: u64,
    pub retries: i64,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Run(RunOp),
    Copy(CopyOp),
    /// Absolute, cleaned; the directory is created when missing.
    Workdir(String),
    Env(Vec<(String, String)>),
    /// Only shown in the history (buildah writes `ARG` entries too).
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    StopSignal(String),
    Healthcheck(HealthcheckOp),
    Shell(Vec<String>),
    /// The trigger's text, stored in the image config.
    OnBuild(String),
    Maintainer(String),
}

impl Op {
    /// Whether the step makes a layer (RUN, COPY, ADD; WORKDIR only when it creates the dir).
    pub fn writes_files(&self) -> bool {
        matches!(self, Op::Run(_) | Op::Copy(_) | Op::Workdir(_))
    }
}

impl Step {
    /// The step's own key parts, each named so that a cache miss can say which one changed:
    /// `instruction` (the expanded instruction, without what is listed apart), then for RUN one
    /// `env NAME` per variable the process sees (ENV and build args in scope). Secret and cache
    /// mounts enter only as their definition (target, id), never their contents.
    pub fn cache_parts(&self) -> Vec<(String, String)> {
        match &self.op {
            Op::Run(r) => {
                let mut parts = vec![(
                    "instruction".to_string(),
                    format!(
                        "RUN {:?} mounts={:?} network={:?} script={:?}",
                        r.argv, r.mounts, r.network, r.script
                    ),
                )];
                for (k, v) in &r.env {
                    parts.push((format!("env {k}"), v.clone()));
                }
                if !r.args_in_scope.is_empty() {
                    // they also shape the history line
                    parts.push((
                        "args in scope".to_string(),
                        format!("{:?}", r.args_in_scope),
                    ));
                }
                parts
            }
            // an ARG's value reaches the steps that can see it (a RUN's env, an expanded word);
            // the ARG itself only adds its text to the history
            Op::Arg(_) => vec![("instruction".to_string(), self.text.clone())],
            op => vec![("instruction".to_string(), format!("{op:?}"))],
        }
    }

    /// The kind of instruction, for finding the closest earlier cache entry of a step.
    pub fn kind(&self) -> &'static str {
        match &self.op {
            Op::Run(_) => "RUN",
            Op::Copy(c) if c.add => "ADD",
            Op::Copy(_) => "COPY",
            Op::Workdir(_) => "WORKDIR",
            Op::Env(_) => "ENV",
            Op::Arg(_) => "ARG",
            Op::Label(_) => "LABEL",
            Op::User(_) => "USER",
            Op::Expose(_) => "EXPOSE",
            Op::Volume(_) => "VOLUME",
            Op::Cmd(_) => "CMD",
            Op::Entrypoint(_) => "ENTRYPOINT",
            Op::StopSignal(_) => "STOPSIGNAL",
            Op::Healthcheck(_) => "HEALTHCHECK",
            Op::Shell(_) => "SHELL",
            Op::OnBuild(_) => "ONBUILD",
            Op::Maintainer(_) => "MAINTAINER",
        }
    }

    /// History `created_by` as `buildah build` writes it: RUN as `/bin/sh -c CMD` (with
    /// `|N K=V… ` in front when build args are in scope), everything else as
    /// `/bin/sh -c #(nop) INSTRUCTION …`; COPY/ADD name their content summary and destination.
    pub fn created_by(&self, content_summary: &str) -> String {
        match &self.op {
            Op::Run(r) => {
                if r.args_in_scope.is_empty() {
                    format!("/bin/sh -c {}", r.shown)
                } else {
                    let args: Vec<String> = r
                        .args_in_scope
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    format!("|{} {} /bin/sh -c {}", args.len(), args.join(" "), r.shown)
                }
            }
            Op::Copy(c) => format!(
                "/bin/sh -c #(nop) {} {} in {} ",
                if c.add { "ADD" } else { "COPY" },
                content_summary,
                c.dest
            ),
            _ => format!("/bin/sh -c #(nop) {}", self.text),
        }
    }
}

/// The build args and their values visible at a point of a stage, in declaration order.
pub type ArgScope = BTreeMap<String, String>;
