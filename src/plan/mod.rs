//! plan: a parsed Dockerfile, build args and a target become a [`BuildPlan`] — the stage DAG
//! pruned to the target, ARG/ENV scopes, built-in platform args, meta ARGs before FROM, ONBUILD
//! triggers of base images — as resolved [`Step`]s that exec runs without knowing Dockerfile
//! syntax.
//!
//! Planning has two halves. [`plan`] needs only the Dockerfile: it names the stages, expands
//! each `FROM` with the meta ARGs, finds which stages the target needs and numbers the steps.
//! [`BuildPlan::resolve_stage`] runs when a stage's base is known (its config: ENV, SHELL,
//! WORKDIR, ONBUILD), and expands every instruction in order the way `docker build` does.
//!
//! Pure: no file system, no environment, no store. Follows Docker's Dockerfile reference for
//! which instructions expand variables and how ARG and ENV scope.

pub mod checks;
pub mod expand;
pub mod from_dockerfile;
pub mod input;
pub mod resolve;
pub mod step;

use std::collections::{BTreeMap, BTreeSet};

pub use input::Input;
pub use resolve::BaseInfo;
pub use step::{
    CopyOp, FromRef, HealthcheckOp, InlineFile, Network, Op, RunMount, RunOp, Sharing, Step,
};

/// Why a Dockerfile cannot be planned; every message names the line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
    },
    #[error("target stage `{0}` could not be found")]
    NoTarget(String),
    #[error("the Dockerfile has no stages: add a FROM instruction")]
    NoStages,
    #[error("`--platform {0}`: {1}")]
    Platform(String, String),
}

/// The machine a build runs on (and, since hoist does not emulate, builds for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn to_text(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{}", self.os, self.arch, v),
            None => format!("{}/{}", self.os, self.arch),
        }
    }

    /// Whether `text` names this platform (`linux/amd64`, `amd64`, `linux/arm64/v8` …).
    pub fn matches(&self, text: &str) -> bool {
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [arch] => (self.os.as_str(), *arch, None),
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return false,
        };
        let arch = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        os == self.os
            && arch == self.arch
            && match (variant, &self.variant) {
                (None, _) => true,
                (Some(v), Some(mine)) => v == mine,
                (Some("v8"), None) => self.arch == "arm64",
                // x86-64 micro-architecture levels every current amd64 CPU runs (BuildKit
                // accepts `linux/amd64/v2` natively); v3 and v4 need CPU features not assumed
                (Some("v1" | "v2"), None) => self.arch == "amd64",
                (Some(_), None) => false,
            }
    }

    /// The built-in args this platform gives: `TARGETPLATFORM`, `TARGETOS`, …, `BUILDARCH`.
    /// As BuildKit normalises platforms, arm64's default variant `v8` is left out
    /// (`TARGETPLATFORM=linux/arm64`, `TARGETVARIANT` empty).
    pub fn builtin_args(&self) -> Vec<(String, String)> {
        let normal = Platform {
            variant: self
                .variant
                .clone()
                .filter(|v| !(self.arch == "arm64" && v == "v8")),
            ..self.clone()
        };
        let v = normal.variant.clone().unwrap_or_default();
        let p = normal.to_text();
        let mut out = Vec::new();
        for prefix in ["TARGET", "BUILD"] {
            out.push((format!("{prefix}PLATFORM"), p.clone()));
            out.push((format!("{prefix}OS"), self.os.clone()));
            out.push((format!("{prefix}ARCH"), self.arch.clone()));
            out.push((format!("{prefix}VARIANT"), v.clone()));
        }
        out
    }
}

/// The proxy args every RUN sees without an ARG, and that never warn as unused.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// File name for messages (`Dockerfile`).
    pub file: String,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    /// This machine.
    pub platform: Platform,
    /// `--platform`, when given.
    pub requested_platform: Option<String>,
}

/// A stage's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image name, expanded.
    Image(String),
}

/// A stage as planned.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    /// The `FROM` line (1-based) and text.
    pub line: usize,
    pub text: String,
    /// Stages this one reads (base, `COPY --from`, `RUN --mount from=`).
    pub deps: BTreeSet<usize>,
    /// Step number (1-based, across the build) of this stage's FROM.
    pub first_step: usize,
    pub input: input::Stage,
}

/// The plan of a build.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub file: String,
    /// Every stage of the Dockerfile (needed or not), by index.
    pub stages: Vec<StagePlan>,
    /// The stages to build, in the order to build them (each after its deps); the target last.
    pub order: Vec<usize>,
    pub target: usize,
    /// Steps in the stages that are built (FROM counts as one).
    pub total_steps: usize,
    /// Warnings to show (an unused build arg …).
    pub warnings: Vec<String>,
    /// Meta ARG values (global scope, built-ins included), for stages that redeclare them.
    pub meta: BTreeMap<String, String>,
    pub build_args: BTreeMap<String, String>,
    pub platform: Platform,
    /// The Dockerfile's escape character (`\\` or `` ` ``), which drives word expansion.
    pub escape: char,
}

impl BuildPlan {
    /// Finds a stage by name (case-insensitive) or index text, among stages before `before`.
    pub fn stage_ref(&self, name: &str, before: usize) -> Option<usize> {
        find_stage(&self.stages[..before.min(self.stages.len())], name)
    }
}

fn find_stage(stages: &[StagePlan], name: &str) -> Option<usize> {
    let lower = name.to_ascii_lowercase();
    if let Some(s) = stages
        .iter()
        .rev()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Some(s.index);
    }
    match name.parse::<usize>() {
        Ok(i) if i < stages.len() => Some(i),
        _ => None,
    }
}

fn at(file: &str, line: usize, message: impl Into<String>) -> PlanError {
    PlanError::At {
        file: file.to_string(),
        line,
        message: message.into(),
    }
}

/// Plans a build: stages, their bases and dependencies, the order, step numbers, warnings.
pub fn plan(input: &Input, opts: &PlanOptions) -> Result<BuildPlan, PlanError> {
    if input.stages.is_empty() {
        return Err(PlanError::NoStages);
    }
    if let Some(p) = &opts.requested_platform {
        if !opts.platform.matches(p) {
            return Err(PlanError::Platform(
                p.clone(),
                format!(
                    "hoist builds only for this machine's platform `{}` (no emulation)",
                    opts.platform.to_text()
                ),
            ));
        }
    }
    let file = opts.file.clone();
    let escape = input.escape.unwrap_or('\\');

    // meta ARGs: built-ins first, then the ARGs before FROM (a build arg overrides a default)
    let mut meta: BTreeMap<String, String> = opts.platform.builtin_args().into_iter().collect();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for (k, default) in &input.meta_args {
        declared.insert(k.clone());
        let value = match opts.build_args.get(k) {
            Some(v) => Some(v.clone()),
            None => match default {
                Some(d) => Some(
                    expand::word_with(escape, d, &|n| meta.get(n).cloned())
                        .map_err(|e| at(&file, input.stages[0].line, format!("ARG {k}: {e}")))?,
                ),
                None => None,
            },
        };
        match value {
            Some(v) => {
                meta.insert(k.clone(), v);
            }
            None => {
                meta.remove(k);
            }
        }
    }

    let mut stages: Vec<StagePlan> = Vec::new();
    for (index, s) in input.stages.iter().enumerate() {
        let base_word = expand::word_with(escape, &s.base, &|n| meta.get(n).cloned())
            .map_err(|e| at(&file, s.line, format!("FROM {}: {e}", s.base)))?;
        if base_word.is_empty() {
            return Err(at(
                &file,
                s.line,
                format!(
                    "FROM `{}` expands to an empty name: set the build arg it uses",
                    s.base
                ),
            ));
        }
        if let Some(p) = &s.platform {
            let p = expand::word_with(escape, p, &|n| meta.get(n).cloned())
                .map_err(|e| at(&file, s.line, format!("FROM --platform: {e}")))?;
            if !opts.platform.matches(&p) {
                return Err(at(
                    &file,
                    s.line,
                    format!(
                        "FROM --platform={p}: hoist builds only for this machine's platform `{}` (no emulation)",
                        opts.platform.to_text()
                    ),
                ));
            }
        }
        // a name used twice is accepted as BuildKit does: a reference means the latest
        // stage of that name (the `DuplicateStageName` check warns)
        let name = s.name.as_ref().map(|n| n.to_ascii_lowercase());
        let base = if base_word.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else {
            let lower = base_word.to_ascii_lowercase();
            match stages
                .iter()
                .rev()
                .find(|p| p.name.as_deref() == Some(lower.as_str()))
            {
                Some(p) => Base::Stage(p.index),
                None => Base::Image(base_word),
            }
        };
        let mut deps = BTreeSet::new();
        if let Base::Stage(i) = base {
            deps.insert(i);
        }
        // stage ARGs with their defaults, enough to expand `--from` values
        let mut scope: BTreeMap<String, String> = BTreeMap::new();
        for ins in &s.instrs {
            match &ins.kind {
                input::Kind::Arg(args) => {
                    for (k, d) in args {
                        declared.insert(k.clone());
                        let v = opts
                            .build_args
                            .get(k)
                            .cloned()
                            .or_else(|| d.clone())
                            .or_else(|| meta.get(k).cloned());
                        if let Some(v) = v {
                            scope.insert(k.clone(), v);
                        }
                    }
                }
                input::Kind::Copy { from: Some(f), .. } => {
                    let f =
                        expand::word(f, &|n| scope.get(n).cloned()).unwrap_or_else(|_| f.clone());
                    if let Some(i) = find_stage(&stages, &f) {
                        deps.insert(i);
                    } else if f.parse::<usize>().is_ok() {
                        return Err(at(
                            &file,
                            ins.line,
                            format!("COPY --from={f}: stage index {f} is not an earlier stage"),
                        ));
                    }
                }
                input::Kind::Run { mounts, .. } => {
                    for m in mounts {
                        if let Some(f) = resolve::mount_from(m) {
                            let f = expand::word(&f, &|n| scope.get(n).cloned()).unwrap_or(f);
                            if let Some(i) = find_stage(&stages, &f) {
                                deps.insert(i);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        stages.push(StagePlan {
            index,
            name,
            base,
            line: s.line,
            text: s.text.clone(),
            deps,
            first_step: 0,
            input: s.clone(),
        });
    }

    let target = match &opts.target {
        Some(t) => find_stage(&stages, t).ok_or_else(|| PlanError::NoTarget(t.clone()))?,
        None => stages.len() - 1,
    };

    // the stages the target needs, in index order (deps always point to earlier stages)
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if needed.insert(i) {
            todo.extend(stages[i].deps.iter().copied());
        }
    }
    let order: Vec<usize> = needed.iter().copied().collect();
    let mut n = 1;
    for &i in &order {
        stages[i].first_step = n;
        n += 1 + stages[i].input.instrs.len();
    }
    let total_steps = n - 1;

    let mut warnings = Vec::new();
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        // `BUILDKIT_*` args are frontend options (`BUILDKIT_DOCKERFILE_CHECK`), not ARGs
        .filter(|k| {
            !declared.contains(*k)
                && !PROXY_ARGS.contains(&k.as_str())
                && !k.starts_with("BUILDKIT_")
        })
        .collect();
    if !unused.is_empty() {
        let list: Vec<String> = unused.iter().map(|k| k.to_string()).collect();
        warnings.push(format!(
            "one or more build args were not consumed by any ARG: {}",
            list.join(", ")
        ));
    }

    Ok(BuildPlan {
        file,
        stages,
        order,
        target,
        total_steps,
        warnings,
        meta,
        build_args: opts.build_args.clone(),
        platform: opts.platform.clone(),
        escape,
    })
}

#[cfg(test)]
mod tests;
