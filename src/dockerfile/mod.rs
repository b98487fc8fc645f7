//! The Dockerfile front end: text in, typed [`Dockerfile`] out.
//!
//! Three one-way layers, as BuildKit's frontend has them: [`lines`] turns text into raw
//! instruction nodes with spans (directives, comments, continuations, heredocs); [`instruction`]
//! types each node (every instruction and flag of the current Dockerfile reference, words kept
//! raw, unexpanded); this module groups them into meta ARGs and stages. [`shell`] is the word
//! expander (`$V`, `${V:-w}`, `${V#p}`, …) that the planner applies later, with ARG and ENV values
//! known. This room is pure: it reads no file, no environment and knows nothing of images.
//!
//! Spec: the Dockerfile reference (docs.docker.com/reference/dockerfile, as vendored by
//! moby/buildkit `frontend/dockerfile/docs/reference.md`), checked against BuildKit's parser and
//! shell-lexer test data in `fixtures/dockerfile/`. See `README.md` here for why no crate was used.

pub mod error;
pub mod instruction;
pub mod lines;
pub mod shell;

pub use error::{DockerfileError, ErrorKind};
pub use instruction::{
    Add, ArgDecl, BindMount, CacheMount, CacheSharing, Chmod, Copy, Device, HealthConfig,
    Healthcheck, Instruction, KeyValue, Network, OnBuild, PortSpec, Protocol, Run, RunMount,
    SecretMount, Security, ShellOrExec, SshMount, TmpfsMount,
};
pub use lines::Heredoc;

/// A place in the Dockerfile: 1-based line and column (columns count characters), end
/// exclusive. For instructions `end_line` is the last physical line they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
}

impl Span {
    /// A one-character span at `line:column`.
    pub fn point(line: usize, column: usize) -> Span {
        Span {
            line,
            column,
            end_line: line,
            end_column: column + 1,
        }
    }
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// Parser directives from the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` as written (validated by [`parse`]: a docker/dockerfile:1 reference).
    pub syntax: Option<Spanned<String>>,
    /// The escape character in effect: `\` unless `# escape=` set `` ` ``.
    pub escape: char,
    /// `# escape=` as written, when present.
    pub escape_directive: Option<Spanned<String>>,
    /// `# check=` as written (build-check configuration, read by `plan::checks::CheckConfig`).
    pub check: Option<Spanned<String>>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            escape_directive: None,
            check: None,
        }
    }
}

/// Something suspicious that Docker accepts (e.g. an empty continuation line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub span: Span,
    pub message: String,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    pub directives: Directives,
    /// ARGs declared before the first FROM (usable in FROM lines only).
    pub meta_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
    pub warnings: Vec<Warning>,
}

/// One build stage: a FROM and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// 0-based position among the stages (what `COPY --from=0` refers to).
    pub index: usize,
    /// The `AS` name, lower-cased as Docker does.
    pub name: Option<String>,
    pub from: From,
    pub instructions: Vec<Spanned<Instruction>>,
}

/// A FROM line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image reference or stage name, raw (meta ARGs are expanded later).
    pub image: Spanned<String>,
    /// `--platform=` raw (expanded later).
    pub platform: Option<Spanned<String>>,
    /// The span of the `AS name` word, when present.
    pub name_span: Option<Span>,
    /// The whole instruction.
    pub span: Span,
}

/// Parses Dockerfile text. `file_name` only names the file in errors (`Dockerfile:7:1: …`).
pub fn parse(text: &str, file_name: &str) -> Result<Dockerfile, DockerfileError> {
    let lines = lines::physical_lines(text);
    let raw = lines::parse_lines(&lines, file_name)?;
    let err = |span: Span, kind: ErrorKind| DockerfileError::at(file_name, &lines, span, kind);
    if let Some(syntax) = &raw.directives.syntax {
        if !is_supported_syntax(&syntax.value) {
            return Err(err(
                syntax.span,
                ErrorKind::UnsupportedSyntax(syntax.value.clone()),
            ));
        }
    }
    let mut meta_args = Vec::new();
    let first_span = raw
        .nodes
        .first()
        .map(|n| n.keyword_span)
        .unwrap_or_default();
    let mut stages: Vec<Stage> = Vec::new();
    let lines::RawDockerfile {
        directives,
        nodes,
        warnings,
    } = raw;
    for mut node in nodes {
        let node = &mut node;
        if node.name == "from" {
            // a stage name used twice is accepted, as BuildKit does (a reference means the
            // latest stage of that name; the `DuplicateStageName` check warns)
            let (from, name) = instruction::parse_from(node).map_err(|(s, k)| err(s, k))?;
            stages.push(Stage {
                index: stages.len(),
                name,
                from,
                instructions: Vec::new(),
            });
            continue;
        }
        let ins = instruction::from_node(node).map_err(|(s, k)| err(s, k))?;
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None => match ins.value {
                Instruction::Arg(decls) => meta_args.extend(decls),
                _ => {
                    return Err(err(
                        node.keyword_span,
                        ErrorKind::BeforeFrom(node.keyword().to_ascii_uppercase()),
                    ))
                }
            },
        }
    }
    if stages.is_empty() {
        let span = first_span;
        return Err(err(span, ErrorKind::NoFrom));
    }
    Ok(Dockerfile {
        directives,
        meta_args,
        stages,
        warnings,
    })
}

/// `# syntax=` values hoist serves itself: `[registry/]docker/dockerfile[-upstream]` with no
/// tag, a `1`, `1.x`, `1.x.y` tag (optionally `-labs`), `master[-labs]` for the upstream
/// channel, or a digest.
pub fn is_supported_syntax(value: &str) -> bool {
    let reference = value.split_whitespace().next().unwrap_or("");
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let (path, tag) = match name.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') => (p, Some(t)),
        _ => (name, None),
    };
    let repo_ok = ["docker/dockerfile", "docker/dockerfile-upstream"]
        .iter()
        .any(|r| {
            path == *r || path.ends_with(&format!("/{r}")) || path == format!("docker.io/{r}")
        });
    if !repo_ok {
        return false;
    }
    if let Some(d) = digest {
        if !d.starts_with("sha256:") {
            return false;
        }
    }
    match tag {
        None => true,
        Some(t) => {
            let t = t.strip_suffix("-labs").unwrap_or(t);
            if t == "master" {
                return path.ends_with("dockerfile-upstream");
            }
            let mut parts = t.split('.');
            parts.next() == Some("1")
                && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_values() {
        for ok in [
            "docker/dockerfile:1",
            "docker/dockerfile:1.4",
            "docker/dockerfile:1.7-labs",
            "mirror.gcr.io/docker/dockerfile:1.9-labs",
            "docker.io/docker/dockerfile:1.2.3",
            "docker/dockerfile",
            "docker/dockerfile-upstream:master",
            "docker/dockerfile@sha256:abcd",
        ] {
            assert!(is_supported_syntax(ok), "{ok}");
        }
        for bad in [
            "docker/dockerfile:0.9",
            "tonistiigi/dockerfile:runmount",
            "myfrontend",
            "docker/dockerfile:experimental",
            "docker/dockerfile:2",
        ] {
            assert!(!is_supported_syntax(bad), "{bad}");
        }
    }
}
