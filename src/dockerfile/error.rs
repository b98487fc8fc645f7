//! Located Dockerfile errors: what went wrong ([`ErrorKind`]) and where ([`DockerfileError`]).
//!
//! Every error of the front end names the file, the 1-based line and column of the fault, shows
//! the source line and puts carets under the fault. This module only formats; it reads no files.
//!
//! Rendering (stable, tests and the CLI rely on it):
//!
//! ```text
//! Dockerfile:7:1: unknown instruction RUNN (did you mean RUN?)
//!   7 | RUNN echo hi
//!     | ^^^^
//! ```
//!
//! The first line is `FILE:LINE:COLUMN: MESSAGE`; the snippet follows only when the line exists
//! (an empty file has none). Columns count Unicode scalar values, starting at 1; a tab before the
//! fault is repeated in the caret line so the carets stay aligned in a terminal.

use std::fmt;

use super::Span;

/// What is wrong, without the location. Messages are lowercase, name the object and say what
/// would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("line is longer than the maximum of 65535 bytes")]
    LineTooLong,
    #[error("invalid escape directive `{0}`: the escape character must be `\\` or `` ` ``")]
    InvalidEscape(String),
    #[error("parser directive `{0}` is given twice: each directive may appear only once")]
    DuplicateDirective(String),
    #[error(
        "unsupported syntax `{0}`: hoist implements the docker/dockerfile:1 frontend itself and cannot run another frontend image"
    )]
    UnsupportedSyntax(String),
    #[error("file has no instructions")]
    NoInstructions,
    #[error("the escape character continues the instruction into nothing but empty lines at the end of the file: remove it or finish the instruction")]
    EmptyContinuationAtEof,
    #[error("unterminated heredoc `{name}` started on line {line}: end it with a line holding only `{name}`")]
    UnterminatedHeredoc { name: String, line: usize },
    #[error("invalid heredoc `{0}`: unbalanced quote in the delimiter")]
    InvalidHeredoc(String),
    #[error("{0} JSON array must hold only strings, such as [\"a\", \"b\"]")]
    NonStringJson(String),
    #[error("{instruction} `{name}` has no value: write `{instruction} {name}=value`")]
    MissingValue { instruction: String, name: String },
    #[error("{instruction} needs name=value pairs but `{word}` has no `=`")]
    MissingEquals { instruction: String, word: String },
    #[error("{0} has an empty name: write name=value")]
    EmptyName(String),
    #[error("unknown instruction {name}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown flag `--{flag}` for {instruction}{}", allowed_list(allowed))]
    UnknownFlag {
        instruction: String,
        flag: String,
        allowed: Vec<String>,
    },
    #[error("flag `--{flag}` is given twice for {instruction}")]
    DuplicateFlag { instruction: String, flag: String },
    #[error("flag `--{0}` needs a value: write `--{0}=<value>`")]
    FlagNeedsValue(String),
    #[error("invalid value `{value}` for `--{flag}`: expected {expected}")]
    InvalidFlagValue {
        flag: String,
        value: String,
        expected: String,
    },
    #[error("{instruction} {expected}")]
    ArgumentCount {
        instruction: String,
        expected: String,
    },
    #[error("{0} needs a JSON array of strings, such as {0} [\"/bin/sh\", \"-c\"]")]
    NotJson(String),
    #[error("chaining ONBUILD via `ONBUILD ONBUILD` is not allowed")]
    OnBuildChained,
    #[error("{0} is not allowed as an ONBUILD trigger")]
    OnBuildForbidden(String),
    #[error("{0} cannot take a heredoc as its destination: the last argument must be a path")]
    HeredocDestination(String),
    #[error("{0} comes before the first FROM: only ARG may precede FROM")]
    BeforeFrom(String),
    #[error("no FROM instruction: a Dockerfile needs at least one build stage")]
    NoFrom,
    #[error("invalid stage name `{0}`: a name starts with a letter and holds only letters, digits, `-`, `_` and `.`")]
    InvalidStageName(String),
    #[error("expected `AS` before the stage name, found `{0}`")]
    ExpectedAs(String),
    #[error("invalid --mount `{spec}`: {reason}")]
    InvalidMount { spec: String, reason: String },
    #[error(
        "invalid port `{0}`: expected PORT or a range such as 8000-8010, with /tcp, /udp or /sctp"
    )]
    InvalidPort(String),
    #[error("HEALTHCHECK NONE takes no arguments and no flags")]
    HealthcheckNoneArgs,
    #[error("HEALTHCHECK CMD needs a command after CMD")]
    HealthcheckMissingCommand,
    #[error("unknown HEALTHCHECK type `{0}`: expected CMD or NONE")]
    HealthcheckType(String),
    #[error("invalid stop signal `{0}`: expected a name such as SIGTERM or a number from 1 to 64")]
    InvalidSignal(String),
    #[error("invalid variable name `{0}` in ARG")]
    InvalidArgName(String),
    #[error("--from={0}: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")]
    FromExpansion(String),
    /// A build-check finding (`RULE: message`), rendered like an error.
    #[error("{0}")]
    Check(String),
}

fn allowed_list(allowed: &[String]) -> String {
    if allowed.is_empty() {
        " (it takes no flags)".to_string()
    } else {
        let list: Vec<String> = allowed.iter().map(|f| format!("--{f}")).collect();
        format!(" (it takes {})", list.join(", "))
    }
}

/// A Dockerfile error with its location. `line` and `column` are 1-based; `width` is how many
/// characters the carets cover (at least 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerfileError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub width: usize,
    /// The physical source line the error points into (empty when the file has no such line).
    pub source_line: String,
    /// Boxed so that `Result<_, DockerfileError>` stays small.
    pub kind: Box<ErrorKind>,
}

impl DockerfileError {
    /// Builds an error at `span` of the file whose physical lines are `lines`.
    pub(crate) fn at(file: &str, lines: &[&str], span: Span, kind: ErrorKind) -> DockerfileError {
        let line = span.line.max(1);
        let column = span.column.max(1);
        let width = if span.end_line == span.line && span.end_column > span.column {
            span.end_column - span.column
        } else {
            let len = lines.get(line - 1).map(|l| l.chars().count()).unwrap_or(0);
            (len + 1).saturating_sub(column).max(1)
        };
        DockerfileError {
            file: file.to_string(),
            line,
            column,
            width,
            source_line: lines
                .get(line - 1)
                .map(|l| l.to_string())
                .unwrap_or_default(),
            kind: Box::new(kind),
        }
    }

    /// The message alone, without file, position or snippet.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }

    /// `FILE:LINE:COLUMN: MESSAGE`, the first line of the rendering.
    pub fn headline(&self) -> String {
        format!("{}:{}:{}: {}", self.file, self.line, self.column, self.kind)
    }
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.headline())?;
        if self.source_line.is_empty() {
            return Ok(());
        }
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        let mut carets = String::new();
        for ch in self.source_line.chars().take(self.column - 1) {
            carets.push(if ch == '\t' { '\t' } else { ' ' });
        }
        carets.push_str(&"^".repeat(self.width.max(1)));
        write!(f, "\n {gutter} | {}\n {pad} | {carets}", self.source_line)
    }
}

impl std::error::Error for DockerfileError {}
