//! BuildKit's build checks (`docker build --check`): the rules of the Dockerfile reference's
//! "Build checks" pages (docs.docker.com/reference/build-checks, vendored by moby/buildkit as
//! `frontend/dockerfile/docs/rules/`), with BuildKit's rule names and messages
//! (`frontend/dockerfile/linter/ruleset.go`) and the conditions of its `dockerfile2llb`
//! (`validations.go`, `convert.go`, `convert_expose.go`, `instructions/parse.go`).
//!
//! Pure: a function of the parsed Dockerfile, its text, the build args and platform, and two
//! questions the caller answers — whether the context's `.dockerignore` excludes a path, and
//! which ENV names a base image's config holds. It reads nothing and decides nothing about the
//! build; the caller prints the findings and, with `# check=error=true`, fails.
//!
//! Where hoist cannot know what BuildKit knows, a rule stays silent rather than guess: in a stage
//! whose base image's config is not known (not in the store), `UndefinedVar` is not checked,
//! since the base's ENV may define the name; `JSONArgsRecommended` assumes such a base sets no
//! `SHELL`, as nearly all Linux images do.

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::instruction::{self as ins, Instruction, ShellOrExec};
use crate::dockerfile::shell::Lexer;
use crate::dockerfile::{Dockerfile, DockerfileError, ErrorKind, PortSpec, Span};

use super::Platform;

/// One rule: its name, what to do about it, and whether it is experimental (off unless
/// `# check=experimental=NAME|all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    /// The docs page slug (`https://docs.docker.com/go/dockerfile/rule/SLUG/`).
    pub slug: &'static str,
    /// A one-line fix.
    pub fix: &'static str,
    pub experimental: bool,
}

macro_rules! rule {
    ($id:ident, $name:literal, $slug:literal, $fix:literal) => {
        pub const $id: Rule = Rule {
            name: $name,
            slug: $slug,
            fix: $fix,
            experimental: false,
        };
    };
}

rule!(
    STAGE_NAME_CASING,
    "StageNameCasing",
    "stage-name-casing",
    "write the stage name in lower case"
);
rule!(
    FROM_AS_CASING,
    "FromAsCasing",
    "from-as-casing",
    "write `AS` in the same case as `FROM`"
);
rule!(
    NO_EMPTY_CONTINUATION,
    "NoEmptyContinuation",
    "no-empty-continuation",
    "remove the empty line inside the continuation (or make it a comment)"
);
rule!(
    CONSISTENT_INSTRUCTION_CASING,
    "ConsistentInstructionCasing",
    "consistent-instruction-casing",
    "write every instruction in the same case, all upper or all lower"
);
rule!(
    DUPLICATE_STAGE_NAME,
    "DuplicateStageName",
    "duplicate-stage-name",
    "give each stage its own name"
);
rule!(
    RESERVED_STAGE_NAME,
    "ReservedStageName",
    "reserved-stage-name",
    "do not name a stage `scratch` or `context`"
);
rule!(
    JSON_ARGS_RECOMMENDED,
    "JSONArgsRecommended",
    "json-args-recommended",
    "use the exec form, e.g. CMD [\"program\", \"arg\"], or set SHELL explicitly"
);
rule!(
    MAINTAINER_DEPRECATED,
    "MaintainerDeprecated",
    "maintainer-deprecated",
    "use LABEL org.opencontainers.image.authors=\"…\" instead"
);
rule!(
    UNDEFINED_ARG_IN_FROM,
    "UndefinedArgInFrom",
    "undefined-arg-in-from",
    "declare the variable with ARG before the first FROM"
);
rule!(
    WORKDIR_RELATIVE_PATH,
    "WorkdirRelativePath",
    "workdir-relative-path",
    "make the first WORKDIR of the stage an absolute path"
);
rule!(
    UNDEFINED_VAR,
    "UndefinedVar",
    "undefined-var",
    "declare the variable with ARG or ENV before using it"
);
rule!(
    MULTIPLE_INSTRUCTIONS_DISALLOWED,
    "MultipleInstructionsDisallowed",
    "multiple-instructions-disallowed",
    "keep only the last one: earlier ones have no effect"
);
rule!(
    LEGACY_KEY_VALUE_FORMAT,
    "LegacyKeyValueFormat",
    "legacy-key-value-format",
    "write key=value instead of `key value`"
);
rule!(
    REDUNDANT_TARGET_PLATFORM,
    "RedundantTargetPlatform",
    "redundant-target-platform",
    "drop `--platform=$TARGETPLATFORM`: it is the default"
);
rule!(
    SECRETS_USED_IN_ARG_OR_ENV,
    "SecretsUsedInArgOrEnv",
    "secrets-used-in-arg-or-env",
    "pass secrets with RUN --mount=type=secret, not ARG or ENV"
);
rule!(
    INVALID_DEFAULT_ARG_IN_FROM,
    "InvalidDefaultArgInFrom",
    "invalid-default-arg-in-from",
    "give the ARG a default that makes a valid image name"
);
rule!(
    FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    "FromPlatformFlagConstDisallowed",
    "from-platform-flag-const-disallowed",
    "drop the constant --platform (or name the stage after the platform)"
);
rule!(
    COPY_IGNORED_FILE,
    "CopyIgnoredFile",
    "copy-ignored-file",
    "remove the source, or stop excluding it in .dockerignore"
);
rule!(
    EXPOSE_PROTO_CASING,
    "ExposeProtoCasing",
    "expose-proto-casing",
    "write the protocol in lower case"
);
rule!(
    EXPOSE_INVALID_FORMAT,
    "ExposeInvalidFormat",
    "expose-invalid-format",
    "expose only the container port (publish host ports with `run -p`)"
);

pub const INVALID_DEFINITION_DESCRIPTION: Rule = Rule {
    name: "InvalidDefinitionDescription",
    slug: "invalid-definition-description",
    fix: "start the comment with the stage or ARG name, or put an empty line after it",
    experimental: true,
};

/// Every rule, in the reference's order.
pub const RULES: &[Rule] = &[
    STAGE_NAME_CASING,
    FROM_AS_CASING,
    NO_EMPTY_CONTINUATION,
    CONSISTENT_INSTRUCTION_CASING,
    DUPLICATE_STAGE_NAME,
    RESERVED_STAGE_NAME,
    JSON_ARGS_RECOMMENDED,
    MAINTAINER_DEPRECATED,
    UNDEFINED_ARG_IN_FROM,
    WORKDIR_RELATIVE_PATH,
    UNDEFINED_VAR,
    MULTIPLE_INSTRUCTIONS_DISALLOWED,
    LEGACY_KEY_VALUE_FORMAT,
    REDUNDANT_TARGET_PLATFORM,
    SECRETS_USED_IN_ARG_OR_ENV,
    INVALID_DEFAULT_ARG_IN_FROM,
    FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    COPY_IGNORED_FILE,
    INVALID_DEFINITION_DESCRIPTION,
    EXPOSE_PROTO_CASING,
    EXPOSE_INVALID_FORMAT,
];

/// One warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub span: Span,
    pub message: String,
}

impl Finding {
    /// `FILE:LINE:COL: warning: RULE: message`, the source line with carets, and the fix with
    /// the rule's page.
    pub fn render(&self, file: &str, text: &str) -> String {
        let lines: Vec<&str> = text.lines().collect();
        let e = DockerfileError::at(
            file,
            &lines,
            self.span,
            ErrorKind::Check(format!("{}: {}", self.rule.name, self.message)),
        );
        format!(
            "{e}\n   fix: {} (https://docs.docker.com/go/dockerfile/rule/{}/)",
            self.rule.fix, self.rule.slug
        )
    }
}

/// `# check=skip=A,B;error=true;experimental=all` (BuildKit's `ParseLintOptions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    pub skip_all: bool,
    pub skip: BTreeSet<String>,
    pub experimental_all: bool,
    pub experimental: BTreeSet<String>,
    /// `error=true`: the build fails after the warnings are printed.
    pub error: bool,
}

impl CheckConfig {
    /// Parses the value of a `# check=` directive.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut c = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(c);
        }
        let list = |v: &str| -> BTreeSet<String> {
            v.split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        };
        for part in value.splitn(3, ';') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("invalid check option `{part}`: expected KEY=VALUE"))?;
            let v = v.trim();
            match k.trim() {
                "skip" if v == "all" => c.skip_all = true,
                "skip" => c.skip = list(v),
                "experimental" if v == "all" => c.experimental_all = true,
                "experimental" => c.experimental = list(v),
                "error" => {
                    c.error = parse_bool(v).ok_or_else(|| {
                        format!("invalid check option `{part}`: `error` takes true or false")
                    })?
                }
                other => {
                    return Err(format!(
                        "invalid check option `{other}`: use skip=, error= or experimental="
                    ))
                }
            }
        }
        Ok(c)
    }

    /// Whether findings of `rule` are reported.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.name)
        } else {
            !(self.skip_all || self.skip.contains(rule.name))
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// What the checks read besides the Dockerfile.
pub struct CheckInput<'a> {
    pub df: &'a Dockerfile,
    /// The Dockerfile's text (for keywords as written and comments).
    pub text: &'a str,
    pub build_args: &'a BTreeMap<String, String>,
    pub platform: &'a Platform,
    /// Only these stages get the per-instruction rules (a build checks the stages it builds;
    /// `--check` without `--target` checks all: `None`).
    pub stages: Option<&'a BTreeSet<usize>>,
    /// Whether the context's `.dockerignore` excludes a path (itself or a parent). `None` when
    /// there is no ignore file or it has `!` exceptions: BuildKit then skips `CopyIgnoredFile`.
    pub ignored: Option<&'a dyn Fn(&str) -> bool>,
    /// The ENV names of an image's config, when known.
    pub base_env: &'a dyn Fn(&str) -> Option<Vec<String>>,
}

const RESERVED_STAGE_NAMES: &[&str] = &["context", "scratch"];

/// Runs every rule; the caller filters with [`CheckConfig::enabled`]. Findings come in
/// Dockerfile order within each pass, as BuildKit reports them.
pub fn run(input: &CheckInput<'_>) -> Vec<Finding> {
    let mut c = Checker {
        input,
        lines: input.text.lines().collect(),
        lexer: Lexer::new(input.df.directives.escape),
        out: Vec::new(),
    };
    c.parse_time();
    c.stage_names();
    c.casing();
    c.base_names();
    c.dispatch();
    c.out
}

/// The findings `config` leaves on, also honouring a `# check=` comment right above an
/// instruction (for that instruction) or above a `FROM` (for its whole stage), which BuildKit
/// merges into the configuration there (`WithMergedConfigFromComments`: skips and experimental
/// rules add up).
pub fn filter(
    findings: Vec<Finding>,
    config: &CheckConfig,
    df: &Dockerfile,
    text: &str,
) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    // the parser directives at the top are not comments of the first instruction
    let header = lines
        .iter()
        .take_while(|l| {
            l.trim()
                .strip_prefix('#')
                .and_then(|c| c.split_once('='))
                .is_some_and(|(k, _)| {
                    let k = k.trim();
                    !k.is_empty() && k.chars().all(|ch| ch.is_ascii_alphanumeric())
                })
        })
        .count();
    // the `check=` value of the comment block right above `line`, if any
    let local = |line: usize| -> Option<CheckConfig> {
        let mut l = line.saturating_sub(1);
        while l > header {
            let t = lines[l - 1].trim();
            let c = t.strip_prefix('#')?;
            if let Some((k, v)) = c.split_once('=') {
                if k.trim().eq_ignore_ascii_case("check") {
                    let v = v.trim().split(' ').next().unwrap_or("");
                    return CheckConfig::parse(v).ok();
                }
            }
            l -= 1;
        }
        None
    };
    let merge = |a: &CheckConfig, b: &CheckConfig| CheckConfig {
        skip_all: a.skip_all || b.skip_all,
        skip: a.skip.union(&b.skip).cloned().collect(),
        experimental_all: a.experimental_all || b.experimental_all,
        experimental: a.experimental.union(&b.experimental).cloned().collect(),
        error: a.error,
    };
    findings
        .into_iter()
        .filter(|f| {
            let mut c = config.clone();
            let stage = df
                .stages
                .iter()
                .rev()
                .find(|s| s.from.span.line <= f.span.line);
            let mut at = Vec::new();
            if let Some(s) = stage {
                at.push(s.from.span.line);
            }
            if stage.map(|s| s.from.span.line) != Some(f.span.line) {
                at.push(f.span.line);
            }
            for line in at {
                if let Some(extra) = local(line) {
                    c = merge(&c, &extra);
                }
            }
            c.enabled(&f.rule)
        })
        .collect()
}

struct Checker<'a> {
    input: &'a CheckInput<'a>,
    lines: Vec<&'a str>,
    lexer: Lexer,
    out: Vec<Finding>,
}

/// What a stage leaves to a stage built on it.
#[derive(Clone, Default)]
struct StageState {
    /// Names in the environment (ENV, and ARGs with a value); `None` when unknown.
    env: Option<BTreeSet<String>>,
    workdir_set: bool,
    shell_set: bool,
}

fn is_secret_key(key: &str) -> bool {
    const DENY: &[&str] = &[
        "apikey",
        "auth",
        "credential",
        "credentials",
        "key",
        "password",
        "pword",
        "passwd",
        "secret",
        "token",
    ];
    const ALLOW: &[&str] = &["public", "file", "version"];
    // `(?i)(?:_|^)(?:WORD)(?:_|$)`: a whole `_`-separated part of the name
    let lower = key.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    let has = |words: &[&str]| parts.iter().any(|p| words.contains(p));
    has(DENY) && !has(ALLOW)
}

/// BuildKit's `suggest.Search`: the closest option within edit distance 2 (case-sensitive).
fn suggest<'s>(name: &str, options: impl Iterator<Item = &'s String>) -> Option<String> {
    let mut best: Option<String> = None;
    let mut min = 3;
    for o in options {
        if o == name {
            return None;
        }
        let d = crate::dockerfile::instruction::edit_distance(name, o);
        if d < min {
            min = d;
            best = Some(o.clone());
        }
    }
    best
}

impl<'a> Checker<'a> {
    fn push(&mut self, rule: Rule, span: Span, message: String) {
        self.out.push(Finding {
            rule,
            span,
            message,
        });
    }

    /// The word that starts at `span` (a keyword as written).
    fn word_at(&self, line: usize, column: usize) -> String {
        self.lines
            .get(line.saturating_sub(1))
            .map(|l| {
                l.chars()
                    .skip(column.saturating_sub(1))
                    .take_while(|c| !c.is_whitespace())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The text a one-line span covers.
    fn text_of(&self, span: Span) -> String {
        if span.end_line != span.line {
            return self.word_at(span.line, span.column);
        }
        self.lines
            .get(span.line.saturating_sub(1))
            .map(|l| {
                l.chars()
                    .skip(span.column.saturating_sub(1))
                    .take(span.end_column.saturating_sub(span.column))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The comment lines right above `line` (no blank line between), nearest last.
    fn comments_before(&self, line: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut l = line.saturating_sub(1);
        while l >= 1 {
            let t = self.lines[l - 1].trim();
            match t.strip_prefix('#') {
                Some(c) => out.push(c.trim().to_string()),
                None => break,
            }
            l -= 1;
        }
        out.reverse();
        out
    }

    /// Rules BuildKit runs while parsing: NoEmptyContinuation, StageNameCasing, FromAsCasing,
    /// MaintainerDeprecated, InvalidDefinitionDescription.
    fn parse_time(&mut self) {
        for w in &self.input.df.warnings {
            self.push(
                NO_EMPTY_CONTINUATION,
                w.span,
                "Empty continuation line".to_string(),
            );
        }
        let df = self.input.df;
        // meta ARGs come first in the file
        for a in &df.meta_args {
            self.arg_description(a);
        }
        for s in &df.stages {
            let f = &s.from;
            let keyword = self.word_at(f.span.line, f.span.column);
            if let Some(ns) = f.name_span {
                let written = self.text_of(ns);
                if written != written.to_lowercase() {
                    self.push(
                        STAGE_NAME_CASING,
                        f.span,
                        format!("Stage name '{written}' should be lowercase"),
                    );
                }
                let as_word = self.as_word(f.span, ns);
                let from_lower = keyword == keyword.to_lowercase();
                let from_upper = keyword == keyword.to_uppercase();
                let mismatch = (from_lower && as_word != as_word.to_lowercase())
                    || (!from_lower && from_upper && as_word != as_word.to_uppercase());
                if mismatch {
                    self.push(
                        FROM_AS_CASING,
                        f.span,
                        format!("'{as_word}' and '{keyword}' keywords' casing do not match"),
                    );
                }
                if let Some(name) = &s.name {
                    let comments = self.comments_before(f.span.line);
                    self.description(&comments, "FROM", std::slice::from_ref(name), f.span);
                }
            }
            for i in &s.instructions {
                match &i.value {
                    Instruction::Maintainer(_) => self.push(
                        MAINTAINER_DEPRECATED,
                        i.span,
                        "Maintainer instruction is deprecated in favor of using label".to_string(),
                    ),
                    Instruction::Arg(decls) => {
                        let names: Vec<String> = decls.iter().map(|d| d.name.clone()).collect();
                        let comments = self.comments_before(i.span.line);
                        self.description(&comments, "ARG", &names, i.span);
                    }
                    _ => {}
                }
            }
        }
    }

    fn arg_description(&mut self, a: &ins::ArgDecl) {
        let comments = self.comments_before(a.span.line);
        self.description(&comments, "ARG", std::slice::from_ref(&a.name), a.span);
    }

    /// BuildKit's `validateDefinitionDescription`.
    fn description(&mut self, comments: &[String], what: &str, keys: &[String], span: Span) {
        let Some(last) = comments.last() else { return };
        if keys.is_empty() {
            return;
        }
        // a `# check=` or other directive-looking comment is not a description either way
        let first = last.split(' ').next().unwrap_or("");
        if keys.iter().any(|k| k == first) {
            return;
        }
        let example = if keys.len() > 1 {
            "<arg_key>".to_string()
        } else {
            keys[0].clone()
        };
        self.push(
            INVALID_DEFINITION_DESCRIPTION,
            span,
            format!("Comment for {what} should follow the format: `# {example} <description>`"),
        );
    }

    /// The `AS` word between the image and the stage name, as written.
    fn as_word(&self, from: Span, name: Span) -> String {
        let Some(line) = self.lines.get(name.line.saturating_sub(1)) else {
            return String::new();
        };
        let before: String = line.chars().take(name.column.saturating_sub(1)).collect();
        let w = before.split_whitespace().last().unwrap_or("").to_string();
        if w.eq_ignore_ascii_case("as") || name.line == from.line {
            w
        } else {
            String::new()
        }
    }

    /// ReservedStageName, DuplicateStageName.
    fn stage_names(&mut self) {
        let mut seen = BTreeSet::new();
        for s in &self.input.df.stages {
            let Some(n) = &s.name else { continue };
            if RESERVED_STAGE_NAMES.contains(&n.as_str()) {
                self.push(
                    RESERVED_STAGE_NAME,
                    s.from.span,
                    format!("Stage name should not use the same name as reserved stage \"{n}\""),
                );
            }
            if !seen.insert(n.clone()) {
                self.push(
                    DUPLICATE_STAGE_NAME,
                    s.from.span,
                    format!("Duplicate stage name \"{n}\", stage names should be unique"),
                );
            }
        }
    }

    /// ConsistentInstructionCasing over the FROMs and stage instructions (not meta ARGs).
    fn casing(&mut self) {
        let mut words: Vec<(String, Span)> = Vec::new();
        for s in &self.input.df.stages {
            words.push((
                self.word_at(s.from.span.line, s.from.span.column),
                s.from.span,
            ));
            for i in &s.instructions {
                words.push((self.word_at(i.span.line, i.span.column), i.span));
            }
        }
        let (mut lower, mut upper) = (0, 0);
        for (w, _) in &words {
            if *w == w.to_lowercase() {
                lower += 1;
            } else if *w == w.to_uppercase() {
                upper += 1;
            }
        }
        let majority_lower = lower > upper;
        for (w, span) in words {
            let wrong = if majority_lower {
                (w != w.to_lowercase()).then_some("lowercase")
            } else {
                (w != w.to_uppercase()).then_some("uppercase")
            };
            if let Some(case) = wrong {
                self.push(
                    CONSISTENT_INSTRUCTION_CASING,
                    span,
                    format!("Command '{w}' should match the case of the command majority ({case})"),
                );
            }
        }
    }

    /// The global scope: built-in platform args, then meta ARGs (build args win unless
    /// `defaults_only`). Returns (values, every declared meta ARG name).
    fn meta_scope(&self, defaults_only: bool) -> (BTreeMap<String, String>, BTreeSet<String>) {
        let mut env: BTreeMap<String, String> =
            self.input.platform.builtin_args().into_iter().collect();
        env.insert("TARGETSTAGE".into(), "default".into());
        env.insert("BUILDOSVERSION".into(), String::new());
        env.insert("TARGETOSVERSION".into(), String::new());
        let mut declared = BTreeSet::new();
        for a in &self.input.df.meta_args {
            declared.insert(a.name.clone());
            let given = if defaults_only {
                None
            } else {
                self.input.build_args.get(&a.name).cloned()
            };
            let v = match given {
                Some(v) => Some(v),
                None => a
                    .default
                    .as_ref()
                    .and_then(|d| self.lexer.expand(d, &|n| env.get(n).cloned()).ok()),
            };
            match v {
                Some(v) => {
                    env.insert(a.name.clone(), v);
                }
                None => {
                    if !defaults_only {
                        if let Some(v) = self.input.build_args.get(&a.name) {
                            env.insert(a.name.clone(), v.clone());
                        }
                    }
                }
            }
        }
        (env, declared)
    }

    /// InvalidDefaultArgInFrom, UndefinedArgInFrom, RedundantTargetPlatform,
    /// FromPlatformFlagConstDisallowed.
    fn base_names(&mut self) {
        let df = self.input.df;
        let (defaults, _) = self.meta_scope(true);
        for s in &df.stages {
            let Ok(e) = self
                .lexer
                .expand_with_matches(&s.from.image.value, &|n| defaults.get(n).cloned())
            else {
                break;
            };
            if !is_valid_reference(&e.value) {
                self.push(
                    INVALID_DEFAULT_ARG_IN_FROM,
                    s.from.span,
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        s.from.image.value
                    ),
                );
            }
        }
        let (global, declared) = self.meta_scope(false);
        let keys: Vec<String> = global.keys().chain(declared.iter()).cloned().collect();
        for s in &df.stages {
            let f = &s.from;
            let mut words = vec![&f.image.value];
            if let Some(p) = &f.platform {
                words.push(&p.value);
            }
            for (i, w) in words.into_iter().enumerate() {
                let Ok(e) = self
                    .lexer
                    .expand_with_matches(w, &|n| global.get(n).cloned())
                else {
                    continue;
                };
                for name in &e.unmatched {
                    if keys.contains(name) {
                        continue;
                    }
                    let mut m = format!("FROM argument '{name}' is not declared");
                    if let Some(s) = suggest(name, keys.iter()) {
                        m.push_str(&format!(" (did you mean {s}?)"));
                    }
                    self.push(UNDEFINED_ARG_IN_FROM, f.span, m);
                }
                if i == 0 {
                    continue;
                }
                // the platform
                if e.matched.len() == 1
                    && e.unmatched.is_empty()
                    && e.matched.contains("TARGETPLATFORM")
                    && global.get("TARGETPLATFORM") == Some(&e.value)
                {
                    self.push(
                        REDUNDANT_TARGET_PLATFORM,
                        f.span,
                        format!("Setting platform to predefined {w} in FROM is redundant as this is the default behavior"),
                    );
                }
                if e.matched.is_empty() && e.unmatched.is_empty() {
                    let parts: Vec<&str> = e.value.split('/').collect();
                    let (os, arch) = match parts.as_slice() {
                        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => {
                            (*os, *arch)
                        }
                        _ => continue,
                    };
                    let name = s.name.as_deref().unwrap_or("");
                    if !name.contains(os) && !name.contains(arch) {
                        self.push(
                            FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                            f.span,
                            format!(
                                "FROM --platform flag should not use constant value \"{}\"",
                                e.value
                            ),
                        );
                    }
                }
            }
        }
    }

    /// The per-instruction rules, stage by stage in file order (BuildKit dispatches in that
    /// order; a stage built on an earlier one starts from its state).
    fn dispatch(&mut self) {
        let df = self.input.df;
        let (global, _) = self.meta_scope(false);
        let mut states: Vec<StageState> = Vec::new();
        for s in &df.stages {
            let base = self
                .lexer
                .expand(&s.from.image.value, &|n| global.get(n).cloned())
                .unwrap_or_default();
            let lower = base.to_ascii_lowercase();
            let parent = df.stages[..s.index]
                .iter()
                .rev()
                .find(|p| p.name.as_deref() == Some(lower.as_str()))
                .map(|p| p.index);
            let mut st = match parent {
                Some(p) => states[p].clone(),
                None if lower == "scratch" => StageState {
                    env: Some(BTreeSet::new()),
                    ..StageState::default()
                },
                None => StageState {
                    env: (self.input.base_env)(&base)
                        .map(|v| v.into_iter().collect::<BTreeSet<String>>()),
                    ..StageState::default()
                },
            };
            if let Some(env) = &mut st.env {
                env.insert("PATH".into());
            }
            let active = self.input.stages.is_none_or(|set| set.contains(&s.index));
            if active {
                self.stage(s, &mut st, &global);
            }
            states.push(st);
        }
    }

    fn stage(
        &mut self,
        s: &crate::dockerfile::Stage,
        st: &mut StageState,
        global: &BTreeMap<String, String>,
    ) {
        // values for expansion (ARG values and ENV values this Dockerfile sets)
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut args: BTreeSet<String> = BTreeSet::new();
        let mut cmd: Option<Span> = None;
        let mut entrypoint: Option<Span> = None;
        let mut health: Option<Span> = None;
        for i in &s.instructions {
            let span = i.span;
            match &i.value {
                Instruction::Env(kvs) => {
                    let mut set = Vec::new();
                    for kv in kvs {
                        if kv.legacy {
                            self.push(
                                LEGACY_KEY_VALUE_FORMAT,
                                span,
                                "\"ENV key=value\" should be used instead of legacy \"ENV key value\" format".to_string(),
                            );
                        }
                        let k = self.word(&kv.key, span, st, &values, &args);
                        let v = self.word(&kv.value, span, st, &values, &args);
                        if is_secret_key(&k) {
                            self.push(
                                SECRETS_USED_IN_ARG_OR_ENV,
                                span,
                                format!("Do not use ARG or ENV instructions for sensitive data (ENV \"{k}\")"),
                            );
                        }
                        set.push((k, v));
                    }
                    for (k, v) in set {
                        if let Some(env) = &mut st.env {
                            env.insert(k.clone());
                        }
                        values.insert(k, v);
                    }
                }
                Instruction::Label(kvs) => {
                    for kv in kvs {
                        if kv.legacy {
                            self.push(
                                LEGACY_KEY_VALUE_FORMAT,
                                span,
                                "\"LABEL key=value\" should be used instead of legacy \"LABEL key value\" format".to_string(),
                            );
                        }
                        self.word(&kv.key, span, st, &values, &args);
                        self.word(&kv.value, span, st, &values, &args);
                    }
                }
                Instruction::Arg(decls) => {
                    for d in decls {
                        if is_secret_key(&d.name) {
                            self.push(
                                SECRETS_USED_IN_ARG_OR_ENV,
                                span,
                                format!("Do not use ARG or ENV instructions for sensitive data (ARG \"{}\")", d.name),
                            );
                        }
                        let value = match self.input.build_args.get(&d.name) {
                            Some(v) => Some(v.clone()),
                            None => match &d.default {
                                Some(def) => Some(self.word(def, span, st, &values, &args)),
                                None => global.get(&d.name).cloned(),
                            },
                        };
                        if let Some(v) = value {
                            if let Some(env) = &mut st.env {
                                env.insert(d.name.clone());
                            }
                            values.insert(d.name.clone(), v);
                        }
                        args.insert(d.name.clone());
                    }
                }
                Instruction::Workdir(w) => {
                    let p = self.word(w, span, st, &values, &args);
                    if !st.workdir_set && !p.starts_with('/') && !is_windows_abs(&p) {
                        self.push(
                            WORKDIR_RELATIVE_PATH,
                            span,
                            format!("Relative workdir \"{p}\" can have unexpected results if the base image changes"),
                        );
                    }
                    st.workdir_set = true;
                }
                Instruction::Cmd(c) | Instruction::Entrypoint(c) => {
                    let is_cmd = matches!(i.value, Instruction::Cmd(_));
                    let name = self.word_at(span.line, span.column);
                    let slot = if is_cmd { &mut cmd } else { &mut entrypoint };
                    if let Some(prev) = slot.replace(span) {
                        self.push(
                            MULTIPLE_INSTRUCTIONS_DISALLOWED,
                            prev,
                            format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                        );
                    }
                    if matches!(c, ShellOrExec::Shell(_)) && !st.shell_set {
                        self.push(
                            JSON_ARGS_RECOMMENDED,
                            span,
                            format!("JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"),
                        );
                    }
                }
                Instruction::Healthcheck(_) => {
                    let name = self.word_at(span.line, span.column);
                    if let Some(prev) = health.replace(span) {
                        self.push(
                            MULTIPLE_INSTRUCTIONS_DISALLOWED,
                            prev,
                            format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                        );
                    }
                }
                Instruction::Shell(_) => st.shell_set = true,
                Instruction::Expose(ports) => {
                    for p in ports {
                        let words = self
                            .lexer
                            .expand_words(&p.value, &|n| values.get(n).cloned())
                            .unwrap_or_default();
                        for w in words {
                            let Ok(spec) = PortSpec::parse(&w) else {
                                continue;
                            };
                            if spec.proto_not_lower {
                                self.push(
                                    EXPOSE_PROTO_CASING,
                                    span,
                                    format!("Defined protocol '{w}' in EXPOSE instruction should be lowercase"),
                                );
                            }
                            if spec.has_mapping {
                                self.push(
                                    EXPOSE_INVALID_FORMAT,
                                    span,
                                    format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{w}'"),
                                );
                            }
                        }
                    }
                }
                Instruction::User(u) | Instruction::StopSignal(u) => {
                    self.word(u, span, st, &values, &args);
                }
                Instruction::Volume(vs) => {
                    for v in vs {
                        self.word(&v.value, span, st, &values, &args);
                    }
                }
                Instruction::Copy(c) => {
                    let chmod = c.chmod.as_ref().map(|m| chmod_text(&m.value));
                    let extra: Vec<&String> = c
                        .chown
                        .as_ref()
                        .map(|s| &s.value)
                        .into_iter()
                        .chain(chmod.as_ref())
                        .collect();
                    self.copy_like(
                        "Copy",
                        &c.sources,
                        &c.dest.value,
                        &extra,
                        &c.heredocs,
                        c.from.is_none(),
                        span,
                        st,
                        &values,
                        &args,
                    );
                }
                Instruction::Add(a) => {
                    let chmod = a.chmod.as_ref().map(|m| chmod_text(&m.value));
                    let extra: Vec<&String> = a
                        .chown
                        .as_ref()
                        .map(|s| &s.value)
                        .into_iter()
                        .chain(chmod.as_ref())
                        .chain(a.checksum.as_ref().map(|s| &s.value))
                        .collect();
                    self.copy_like(
                        "Add",
                        &a.sources,
                        &a.dest.value,
                        &extra,
                        &a.heredocs,
                        true,
                        span,
                        st,
                        &values,
                        &args,
                    );
                }
                Instruction::Run(r) => {
                    for m in &r.mounts {
                        for w in mount_words(&m.value) {
                            self.word(w, span, st, &values, &args);
                        }
                    }
                }
                Instruction::Maintainer(_) | Instruction::OnBuild(_) => {}
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_like(
        &mut self,
        cmd: &str,
        sources: &[crate::dockerfile::Spanned<String>],
        dest: &str,
        extra: &[&String],
        heredocs: &[crate::dockerfile::Heredoc],
        from_context: bool,
        span: Span,
        st: &StageState,
        values: &BTreeMap<String, String>,
        args: &BTreeSet<String>,
    ) {
        for e in extra {
            self.word(e, span, st, values, args);
        }
        let mut srcs = Vec::new();
        for s in sources {
            srcs.push(self.word(&s.value, span, st, values, args));
        }
        self.word(dest, span, st, values, args);
        for h in heredocs.iter().filter(|h| h.expand) {
            // BuildKit expands heredoc bodies with a `\` lexer that keeps quotes
            let e = Lexer::new('\\').expand_with_matches(&h.body(), &|n| values.get(n).cloned());
            if let Ok(e) = e {
                self.undefined(e.unmatched, span, st, args);
            }
        }
        if !from_context {
            return;
        }
        let Some(ignored) = self.input.ignored else {
            return;
        };
        for s in srcs {
            if s.contains("://") || s.starts_with("git@") {
                continue;
            }
            let clean = clean_rel(&s);
            if clean == "." {
                continue;
            }
            if ignored(&clean) {
                self.push(
                    COPY_IGNORED_FILE,
                    span,
                    format!(
                        "Attempting to {cmd} file \"{clean}\" that is excluded by .dockerignore"
                    ),
                );
            }
        }
    }

    /// Expands `w` in the stage scope, reporting undefined variables; returns the expansion.
    fn word(
        &mut self,
        w: &str,
        span: Span,
        st: &StageState,
        values: &BTreeMap<String, String>,
        args: &BTreeSet<String>,
    ) -> String {
        let lookup = |n: &str| -> Option<String> {
            match values.get(n) {
                Some(v) => Some(v.clone()),
                // a name of the base's ENV: its value is not known here, but it is set
                None => st
                    .env
                    .as_ref()
                    .and_then(|e| e.contains(n).then(String::new)),
            }
        };
        match self.lexer.expand_with_matches(w, &lookup) {
            Ok(e) => {
                self.undefined(e.unmatched, span, st, args);
                e.value
            }
            Err(_) => w.to_string(),
        }
    }

    fn undefined(
        &mut self,
        unmatched: BTreeSet<String>,
        span: Span,
        st: &StageState,
        args: &BTreeSet<String>,
    ) {
        let Some(env) = &st.env else { return };
        for name in unmatched {
            if args.contains(&name)
                || name == "BUILDKIT_SBOM_SCAN_CONTEXT"
                || name == "BUILDKIT_SBOM_SCAN_STAGE"
            {
                continue;
            }
            let mut m = format!("Usage of undefined variable '${name}'");
            if let Some(s) = suggest(&name, env.iter()) {
                m.push_str(&format!(" (did you mean ${s}?)"));
            }
            self.push(UNDEFINED_VAR, span, m);
        }
    }
}

/// `C:\\…` or `C:/…`: absolute for a Windows stage (BuildKit's `system.IsAbs` on the stage's
/// OS). hoist builds only Linux, but a Dockerfile written for Windows is not warned about for
/// its drive paths.
fn is_windows_abs(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

fn chmod_text(c: &ins::Chmod) -> String {
    match c {
        ins::Chmod::Octal(m) => format!("{m:o}"),
        ins::Chmod::Symbolic(s) | ins::Chmod::Unexpanded(s) => s.clone(),
    }
}

/// The string values of a `--mount` (the ones BuildKit expands).
fn mount_words(m: &ins::RunMount) -> Vec<&String> {
    match m {
        ins::RunMount::Bind(b) => [&b.target, &b.source, &b.from]
            .into_iter()
            .flatten()
            .collect(),
        ins::RunMount::Cache(c) => std::iter::once(&c.target)
            .chain([&c.id, &c.from, &c.source].into_iter().flatten())
            .collect(),
        ins::RunMount::Tmpfs(t) => vec![&t.target],
        ins::RunMount::Secret(s) => [&s.id, &s.target, &s.env].into_iter().flatten().collect(),
        ins::RunMount::Ssh(_) => Vec::new(),
    }
}

/// Go's `filepath.Clean` of a context-relative source, without a leading `/`.
fn clean_rel(p: &str) -> String {
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
    if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    }
}

/// Whether `s` parses as a normalised image reference (distribution's `ParseNormalizedNamed`):
/// lower-case path components of `[a-z0-9]` joined by `.`, `_`, `__` or `-`, an optional
/// domain, tag and digest.
pub fn is_valid_reference(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 + 128 {
        return false;
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(alg, hex)| {
            !alg.is_empty() && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return false;
        }
    }
    // a tag is after the last `:` that follows the last `/`
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return false;
        }
    }
    let mut comps: Vec<&str> = repo.split('/').collect();
    if comps.len() > 1 {
        let first = comps[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            // a domain: host[:port]
            let (host, port) = first.split_once(':').unwrap_or((first, ""));
            if host.is_empty()
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                || !port.bytes().all(|b| b.is_ascii_digit())
            {
                return false;
            }
            comps.remove(0);
        }
    }
    !comps.is_empty()
        && comps.iter().all(|c| {
            let b = c.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
                && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
                && !c.contains("..")
                && !c.contains("___")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_options() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true")
            .expect("parses");
        assert!(c.error && !c.skip_all);
        assert!(!c.enabled(&JSON_ARGS_RECOMMENDED) && !c.enabled(&STAGE_NAME_CASING));
        assert!(c.enabled(&MAINTAINER_DEPRECATED));
        assert!(!c.enabled(&INVALID_DEFINITION_DESCRIPTION));
        let c = CheckConfig::parse("skip=all;experimental=all").expect("parses");
        assert!(!c.enabled(&MAINTAINER_DEPRECATED) && c.enabled(&INVALID_DEFINITION_DESCRIPTION));
        assert_eq!(CheckConfig::parse(" "), Ok(CheckConfig::default()));
        for bad in ["skip", "error=maybe", "colour=red"] {
            assert!(CheckConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secret_names() {
        for yes in [
            "AWS_SECRET_ACCESS_KEY",
            "password",
            "GITHUB_TOKEN",
            "auth",
            "Api_Key",
        ] {
            assert!(is_secret_key(yes), "{yes}");
        }
        for no in [
            "PUBLIC_KEY",
            "GPG_KEYS",
            "KEY_FILE",
            "MONKEY",
            "NODE_VERSION",
            "TOKENS",
        ] {
            assert!(!is_secret_key(no), "{no}");
        }
    }

    #[test]
    fn references() {
        for ok in [
            "busybox",
            "busybox:latest",
            "localhost:5000/a/b:1.0",
            "docker.io/library/alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "build",
            "node:22-alpine3.20",
            "a__b/c-d.e",
        ] {
            assert!(is_valid_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "busybox:",
            "Busybox",
            "a/",
            ":tag",
            "a//b",
            "-a",
            "a:b:c",
            "a@sha256:x",
        ] {
            assert!(!is_valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        let opts = ["PATH".to_string(), "HOME".to_string()];
        assert_eq!(suggest("PAHT", opts.iter()), Some("PATH".to_string()));
        assert_eq!(suggest("XYZW", opts.iter()), None);
        assert_eq!(suggest("PATH", opts.iter()), None);
    }
}
