//! The untyped layer: Dockerfile text to raw instruction nodes with spans.
//!
//! It handles what BuildKit's parser handles before any instruction is understood: the UTF-8
//! BOM, CRLF line ends, parser directives at the top (`syntax`, `escape`, `check`), comment
//! lines (also inside continuations), the escape character at a line end (trailing blanks
//! allowed), empty continuation lines (a warning; at the end of the file an error), flags
//! (`--name=value` words before the arguments) and heredoc bodies for RUN, COPY and ADD.
//! Arguments are shaped per instruction the way BuildKit's syntax tree shapes them, so that
//! [`RawDockerfile::dump`] prints BuildKit's `result` golden format. Nothing here checks whether
//! an instruction exists or takes a flag (that is `instruction.rs`), and nothing here expands
//! variables or touches the file system.
//!
//! Spec: the Dockerfile reference (format, parser directives, here-documents) and the behaviour
//! pinned down by BuildKit's parser test files (`fixtures/dockerfile/buildkit-parser`).

use std::sync::Arc;

use super::error::{DockerfileError, ErrorKind};
use super::{Directives, Span, Spanned, Warning};

/// The longest physical line accepted, in bytes (BuildKit's scanner limit).
pub const MAX_LINE_LEN: usize = 65535;

/// A parsed file before instructions are typed.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
    pub warnings: Vec<Warning>,
}

/// One flag word as written before an instruction's arguments, quotes removed (`--from=build`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFlag {
    pub text: String,
    pub span: Span,
}

/// A here-document attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word after quote removal (`EOF` for `<<'EOF'`); also the file name COPY
    /// and ADD give the inline file.
    pub name: String,
    /// The raw body: every line up to the terminator, each followed by `\n`; no expansion and
    /// no tab stripping (see [`Heredoc::body`]).
    pub content: String,
    /// False when any part of the delimiter was quoted: then the body is never expanded.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from each body line (and the terminator line).
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none.
    pub fd: u32,
    /// Where the `<<WORD` token is.
    pub span: Span,
}

impl Heredoc {
    /// The body as the instruction uses it: with leading tabs stripped per line for `<<-`.
    pub fn body(&self) -> String {
        if !self.chomp {
            return self.content.clone();
        }
        let mut out = String::with_capacity(self.content.len());
        for line in self.content.split_inclusive('\n') {
            out.push_str(line.trim_start_matches('\t'));
        }
        out
    }
}

/// Maps byte offsets of a logical (continuation-joined) line back to physical lines/columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineMap {
    /// The logical line.
    pub text: String,
    /// (offset in `text`, 1-based physical line, 1-based char column of that offset, whether
    /// the segment is ASCII so columns are byte offsets)
    segs: Vec<(usize, usize, usize, bool)>,
}

impl LineMap {
    fn push(&mut self, content: &str, line: usize, column: usize) {
        self.segs
            .push((self.text.len(), line, column, content.is_ascii()));
        self.text.push_str(content);
    }

    /// Physical (line, column) of byte offset `off` of the logical text.
    pub fn pos(&self, off: usize) -> (usize, usize) {
        let idx = match self.segs.binary_search_by(|s| s.0.cmp(&off)) {
            Ok(mut i) => {
                // Several segments may start at the same offset (empty ones): take the last.
                while i + 1 < self.segs.len() && self.segs[i + 1].0 == off {
                    i += 1;
                }
                i
            }
            Err(0) => 0,
            Err(i) => i - 1,
        };
        let Some(&(start, line, col, ascii)) = self.segs.get(idx) else {
            return (1, 1);
        };
        let off = off.min(self.text.len()).max(start);
        let chars = if ascii {
            off - start
        } else {
            self.text
                .get(start..off)
                .map(|s| s.chars().count())
                .unwrap_or(0)
        };
        (line, col + chars)
    }

    /// The span of bytes `a..b` of the logical text.
    pub fn span(&self, a: usize, b: usize) -> Span {
        let (line, column) = self.pos(a);
        let (end_line, end_column) = if b > a {
            let last = self.text[..b.min(self.text.len())]
                .char_indices()
                .next_back()
                .map(|(i, _)| i)
                .unwrap_or(a);
            let (l, c) = self.pos(last.max(a));
            (l, c + 1)
        } else {
            (line, column)
        };
        Span {
            line,
            column,
            end_line,
            end_column,
        }
    }
}

/// One instruction as BuildKit's syntax tree holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The keyword as written (`Run`, `COPY`).
    pub keyword: String,
    /// The keyword in lower case.
    pub name: String,
    pub keyword_span: Span,
    pub flags: Vec<RawFlag>,
    /// The arguments shaped per instruction (see the module doc and the `result` format).
    pub args: Vec<String>,
    /// The span of each entry of `args` (JSON elements all get the span of the array).
    pub arg_spans: Vec<Span>,
    /// True when the arguments were a JSON array of strings.
    pub json: bool,
    /// The argument text after the flags, trimmed, verbatim.
    pub text: String,
    pub text_span: Span,
    pub heredocs: Vec<Heredoc>,
    /// ONBUILD's wrapped instruction.
    pub inner: Option<Box<Node>>,
    /// From the keyword to the end of the instruction's last physical line (heredoc bodies
    /// included).
    pub span: Span,
    /// The whole logical line, continuation-joined.
    pub map: Arc<LineMap>,
    /// Byte offset of `text` in `map.text`.
    pub text_offset: usize,
}

impl Node {
    /// The keyword in lower case.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Span of bytes `a..b` of [`Node::text`].
    pub fn text_span_of(&self, a: usize, b: usize) -> Span {
        self.map.span(self.text_offset + a, self.text_offset + b)
    }

    fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.inner, self.name()) {
            (Some(inner), "onbuild") => inner,
            _ => self,
        };
        matches!(node.name(), "run" | "copy" | "add") && !node.json
    }

    /// BuildKit's one-line dump of this node, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut s = self.name.clone();
        if !self.flags.is_empty() {
            let flags: Vec<String> = self.flags.iter().map(|f| go_quote(&f.text)).collect();
            s.push_str(" [");
            s.push_str(&flags.join(" "));
            s.push(']');
        }
        if let Some(inner) = &self.inner {
            s.push_str(" (");
            s.push_str(&inner.dump());
            s.push(')');
        } else {
            for a in &self.args {
                s.push(' ');
                s.push_str(&go_quote(a));
            }
        }
        s
    }
}

impl RawDockerfile {
    /// The whole tree in BuildKit's `result` format: one `(…)` line per instruction.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out.push('(');
            out.push_str(&n.dump());
            out.push_str(")\n");
        }
        out
    }
}

/// Quotes like Go's `strconv.Quote`: printable characters as they are, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if (c as u32) < 0x80 {
        return (' '..='~').contains(&c);
    }
    // Go's IsPrint: letters, marks, numbers, punctuation, symbols and U+0020 only.
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0xf0000..=0x10ffff)
        || (c as u32 & 0xfffe) == 0xfffe)
}

/// Splits text into physical lines: drops a leading BOM, splits at `\n`, drops one `\r` before
/// it; a final empty segment after the last `\n` is not a line.
pub fn physical_lines(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if text.is_empty() || text.ends_with('\n') {
        lines.pop();
    }
    lines
}

fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn is_blank_byte(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0b' | '\x0c' | '\r')
}

/// `(name, value, value byte offset)` when the line has the shape of a parser directive.
fn directive_shape(line: &str) -> Option<(String, &str, usize)> {
    let t = line.trim_start_matches([' ', '\t']);
    let lead = line.len() - t.len();
    let rest = t.strip_prefix('#')?;
    let r = rest.trim_start_matches([' ', '\t']);
    let name_len = r
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map(|(i, _)| i)
        .unwrap_or(r.len());
    if name_len == 0 {
        return None;
    }
    let name = &r[..name_len];
    let after = r[name_len..].trim_start_matches([' ', '\t']);
    let after = after.strip_prefix('=')?;
    let value_t = after.trim_start_matches([' ', '\t']);
    let value = value_t.trim_end_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    let off = line.len() - value_t.len();
    let _ = lead;
    Some((name.to_ascii_lowercase(), value, off))
}

/// Removes a continuation escape (and the blanks after it) from the end of `s`.
fn trim_continuation(s: &str, esc: char) -> (&str, bool) {
    let t = s.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(esc) {
        if before.is_empty() || !before.ends_with(esc) {
            return (before, true);
        }
    }
    (s, false)
}

fn is_comment(raw: &str) -> bool {
    raw.trim_start_matches(is_space).starts_with('#')
}

struct Ctx<'a> {
    file: &'a str,
    lines: &'a [&'a str],
}

impl Ctx<'_> {
    fn err(&self, span: Span, kind: ErrorKind) -> DockerfileError {
        DockerfileError::at(self.file, self.lines, span, kind)
    }
}

/// Parses Dockerfile text into raw nodes. `file` only names the file in errors.
pub fn parse(text: &str, file: &str) -> Result<RawDockerfile, DockerfileError> {
    let lines = physical_lines(text);
    parse_lines(&lines, file)
}

pub(crate) fn parse_lines(lines: &[&str], file: &str) -> Result<RawDockerfile, DockerfileError> {
    let ctx = Ctx { file, lines };
    let mut directives = Directives::default();
    let mut in_directives = true;
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let line_no = i + 1;
        i += 1;
        if raw.len() > MAX_LINE_LEN {
            return Err(ctx.err(Span::point(line_no, 1), ErrorKind::LineTooLong));
        }
        if in_directives {
            match directive_shape(raw) {
                Some((name, value, off))
                    if matches!(name.as_str(), "syntax" | "escape" | "check") =>
                {
                    let col = raw[..off].chars().count() + 1;
                    let span = Span {
                        line: line_no,
                        column: col,
                        end_line: line_no,
                        end_column: col + value.chars().count(),
                    };
                    let slot = match name.as_str() {
                        "syntax" => &mut directives.syntax,
                        "check" => &mut directives.check,
                        _ => &mut directives.escape_directive,
                    };
                    if slot.is_some() {
                        return Err(ctx.err(span, ErrorKind::DuplicateDirective(name)));
                    }
                    if name == "escape" {
                        directives.escape = match value {
                            "\\" => '\\',
                            "`" => '`',
                            _ => {
                                return Err(
                                    ctx.err(span, ErrorKind::InvalidEscape(value.to_string()))
                                )
                            }
                        };
                    }
                    *slot = Some(Spanned {
                        value: value.to_string(),
                        span,
                    });
                    continue;
                }
                _ => {
                    // A shebang on the first line does not end the directive block.
                    if !(line_no == 1 && raw.starts_with("#!")) {
                        in_directives = false;
                    }
                }
            }
        }
        let esc = directives.escape;
        let trimmed = raw.trim_start_matches(is_space);
        if trimmed.starts_with('#') {
            continue;
        }
        let lead_chars = raw[..raw.len() - trimmed.len()].chars().count();
        let (content, mut cont) = trim_continuation(trimmed, esc);
        let mut map = LineMap {
            text: String::with_capacity(if cont {
                content.len() * 4
            } else {
                content.len()
            }),
            segs: Vec::with_capacity(if cont { 4 } else { 1 }),
        };
        if !cont && content.trim_matches(is_space).is_empty() {
            continue;
        }
        map.push(content, line_no, lead_chars + 1);
        let mut last_escape = Span::point(line_no, lead_chars + content.chars().count() + 1);
        let mut empty_lines = 0usize;
        let mut trailing_empty = 0usize;
        while cont && i < lines.len() {
            let raw = lines[i];
            let ln = i + 1;
            i += 1;
            if raw.len() > MAX_LINE_LEN {
                return Err(ctx.err(Span::point(ln, 1), ErrorKind::LineTooLong));
            }
            if is_comment(raw) {
                continue;
            }
            if raw.trim_start_matches(is_space).is_empty() {
                empty_lines += 1;
                trailing_empty += 1;
                continue;
            }
            trailing_empty = 0;
            let (content, c) = trim_continuation(raw, esc);
            map.push(content, ln, 1);
            if c {
                last_escape = Span::point(ln, content.chars().count() + 1);
            }
            cont = c;
        }
        if cont && trailing_empty > 0 {
            return Err(ctx.err(last_escape, ErrorKind::EmptyContinuationAtEof));
        }
        if map.text.trim_matches(is_space).is_empty() {
            continue;
        }
        let map = Arc::new(map);
        let mut node = node_from_line(&map, 0, esc).map_err(|(s, k)| ctx.err(s, k))?;
        if empty_lines > 0 {
            warnings.push(Warning {
                span: node.keyword_span,
                message: format!(
                    "empty continuation line found in: {}: empty continuation lines will become errors in a future release",
                    map.text.trim()
                ),
            });
        }
        if node.can_contain_heredoc() && map.text.contains("<<") {
            let docs = heredocs_from_line(&map).map_err(|(s, k)| ctx.err(s, k))?;
            let mut found = Vec::new();
            for mut doc in docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    if raw.len() > MAX_LINE_LEN {
                        return Err(ctx.err(Span::point(i, 1), ErrorKind::LineTooLong));
                    }
                    let candidate = if doc.chomp {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                    doc.content.push('\n');
                }
                if !terminated {
                    let line = doc.span.line;
                    return Err(ctx.err(
                        doc.span,
                        ErrorKind::UnterminatedHeredoc {
                            name: doc.name,
                            line,
                        },
                    ));
                }
                found.push(doc);
            }
            match (
                &mut node.inner,
                node.keyword.eq_ignore_ascii_case("onbuild"),
            ) {
                (Some(inner), true) => inner.heredocs = found,
                _ => node.heredocs = found,
            }
        }
        node.span.end_line = i;
        node.span.end_column = lines.get(i - 1).map(|l| l.chars().count() + 1).unwrap_or(1);
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ctx.err(Span::point(1, 1), ErrorKind::NoInstructions));
    }
    Ok(RawDockerfile {
        directives,
        nodes,
        warnings,
    })
}

type NodeError = (Span, ErrorKind);

/// Builds the node for the logical line `map.text[start..]`.
fn node_from_line(map: &Arc<LineMap>, start: usize, esc: char) -> Result<Node, NodeError> {
    let full = &map.text[start..];
    let body_t = full.trim_start_matches(is_space);
    let body_start = start + (full.len() - body_t.len());
    let body = body_t.trim_end_matches(is_space);
    let kw_len = body.find(is_blank_byte).unwrap_or(body.len());
    let keyword = &body[..kw_len];
    let keyword_span = map.span(body_start, body_start + kw_len);
    let after_kw = &body[kw_len..];
    let rest = after_kw.trim_start_matches(is_blank_byte);
    let rest_start = body_start + kw_len + (after_kw.len() - rest.len());
    let (flags, args_rel) = extract_flags(rest);
    let flags = flags
        .into_iter()
        .map(|(text, a, b)| RawFlag {
            text,
            span: map.span(rest_start + a, rest_start + b),
        })
        .collect();
    let args_raw = &rest[args_rel..];
    let args_t = args_raw.trim_start_matches(is_space);
    let text_offset = rest_start + args_rel + (args_raw.len() - args_t.len());
    let text = args_t.trim_end_matches(is_space).to_string();
    let text_span = if text.is_empty() {
        let (l, c) = map.pos(text_offset);
        Span::point(l, c)
    } else {
        map.span(text_offset, text_offset + text.len())
    };
    let name = keyword.to_ascii_lowercase();
    let mut node = Node {
        keyword: keyword.to_string(),
        name: String::new(),
        keyword_span,
        flags,
        args: Vec::new(),
        arg_spans: Vec::new(),
        json: false,
        text,
        text_span,
        heredocs: Vec::new(),
        inner: None,
        span: Span {
            line: keyword_span.line,
            column: keyword_span.column,
            end_line: keyword_span.line,
            end_column: keyword_span.end_column,
        },
        map: map.clone(),
        text_offset,
    };
    let text = std::mem::take(&mut node.text);
    let push_words = |node: &mut Node, words: Vec<(String, usize, usize)>| {
        for (w, a, b) in words {
            node.arg_spans
                .push(map.span(text_offset + a, text_offset + b));
            node.args.push(w);
        }
    };
    match name.as_str() {
        "from" | "expose" => push_words(&mut node, split_blanks(&text)),
        "add" | "copy" | "volume" => match parse_json(&text, &name, text_span)? {
            Some(list) => {
                node.json = true;
                node.arg_spans = vec![text_span; list.len()];
                node.args = list;
            }
            None => push_words(&mut node, split_blanks(&text)),
        },
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(&mut node, &text, &name)?,
        "env" | "label" => {
            let words = parse_words(&text, esc);
            if words.is_empty() {
                // Reported by the typed layer ("needs at least one argument").
            } else if !words[0].0.contains('=') {
                let kl = text.find(is_blank_byte);
                let Some(kl) = kl else {
                    return Err((
                        node.text_span,
                        ErrorKind::MissingValue {
                            instruction: keyword.to_ascii_uppercase(),
                            name: text.clone(),
                        },
                    ));
                };
                let value = text[kl..].trim_start_matches(is_blank_byte);
                let vstart = text.len() - value.len();
                node.args.push(text[..kl].to_string());
                node.arg_spans.push(map.span(text_offset, text_offset + kl));
                node.args.push(value.to_string());
                node.arg_spans
                    .push(map.span(text_offset + vstart, text_offset + text.len()));
                node.args.push(String::new());
                node.arg_spans.push(text_span);
            } else {
                for (w, a, b) in words {
                    let span = map.span(text_offset + a, text_offset + b);
                    let Some((k, v)) = w.split_once('=') else {
                        return Err((
                            span,
                            ErrorKind::MissingEquals {
                                instruction: keyword.to_ascii_uppercase(),
                                word: w.clone(),
                            },
                        ));
                    };
                    node.args
                        .extend([k.to_string(), v.to_string(), "=".to_string()]);
                    node.arg_spans.extend([span, span, span]);
                }
            }
        }
        "arg" => push_words(&mut node, parse_words(&text, esc)),
        "healthcheck" => {
            if !text.is_empty() {
                let tl = text.find(is_blank_byte).unwrap_or(text.len());
                node.args.push(text[..tl].to_string());
                node.arg_spans.push(map.span(text_offset, text_offset + tl));
                let r = text[tl..].trim_start_matches(is_blank_byte);
                if !r.is_empty() {
                    let rs = text.len() - r.len();
                    let span = map.span(text_offset + rs, text_offset + text.len());
                    match parse_json(r, &name, span)? {
                        Some(list) => {
                            node.json = true;
                            node.arg_spans.extend(vec![span; list.len()]);
                            node.args.extend(list);
                        }
                        None => {
                            node.args.push(r.to_string());
                            node.arg_spans.push(span);
                        }
                    }
                }
            }
        }
        "maintainer" | "user" | "workdir" | "stopsignal" => {
            if !text.is_empty() {
                node.args.push(text.clone());
                node.arg_spans.push(text_span);
            }
        }
        "onbuild" => {
            if !text.is_empty() {
                let inner = node_from_line(map, text_offset, esc)?;
                node.inner = Some(Box::new(inner));
            }
        }
        _ => {
            node.args.push(String::new());
            node.arg_spans.push(text_span);
        }
    }
    node.text = text;
    node.name = name;
    Ok(node)
}

fn maybe_json(node: &mut Node, text: &str, name: &str) -> Result<(), NodeError> {
    if text.is_empty() {
        return Ok(());
    }
    match parse_json(text, name, node.text_span)? {
        Some(list) => {
            node.json = true;
            node.arg_spans = vec![node.text_span; list.len()];
            node.args = list;
        }
        None => {
            node.args = vec![text.to_string()];
            node.arg_spans = vec![node.text_span];
        }
    }
    Ok(())
}

/// `Some(list)` when `text` is a JSON array of strings; `None` when it is not JSON at all; an
/// error when it is a JSON array holding something other than strings.
pub(crate) fn parse_json(
    text: &str,
    name: &str,
    span: Span,
) -> Result<Option<Vec<String>>, NodeError> {
    let t = text.trim_start_matches(is_space);
    if !t.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Err((span, ErrorKind::NonStringJson(name.to_ascii_uppercase()))),
                }
            }
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

/// Splits on runs of blanks; each word verbatim, with its byte range.
pub(crate) fn split_blanks(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_blank_byte(c) {
            if let Some(s) = start.take() {
                out.push((text[s..i].to_string(), s, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push((text[s..].to_string(), s, text.len()));
    }
    out
}

/// BuildKit's flag extraction: leading words starting with `--`, quotes removed, `\` escaping
/// the next character; a lone `--` ends the flags. Returns the flags (text, start, end) and the
/// byte offset where the arguments begin.
fn extract_flags(line: &str) -> (Vec<(String, usize, usize)>, usize) {
    if !line.trim_start_matches(is_space).starts_with("--") {
        return (Vec::new(), 0);
    }
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote(char),
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_start = 0;
    let mut blank_ok = false;
    let mut k = 0;
    while k <= chars.len() {
        let at_end = k == chars.len();
        let (pos, ch) = if at_end { (line.len(), '\0') } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if is_space(ch) {
                k += 1;
                continue;
            }
            let next_dash = chars.get(k + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_dash {
                return (words, pos);
            }
            // Fast path: a flag word without quotes or escapes is a plain slice.
            let wend = line[pos..]
                .find(is_space)
                .map(|e| pos + e)
                .unwrap_or(line.len());
            let w = &line[pos..wend];
            if !w.contains(['\'', '"', '\\']) {
                if w == "--" {
                    return (words, wend);
                }
                words.push((w.to_string(), pos, wend));
                k += w.chars().count();
                continue;
            }
            phase = Phase::Word;
            word_start = pos;
            word = String::with_capacity(w.len());
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word, word_start, line.len()));
            }
            return (words, line.len());
        }
        match phase {
            Phase::Word => {
                if is_space(ch) {
                    phase = Phase::Spaces;
                    if word == "--" {
                        return (words, pos);
                    }
                    if blank_ok || !word.is_empty() {
                        words.push((std::mem::take(&mut word), word_start, pos));
                    }
                    word.clear();
                    blank_ok = false;
                    k += 1;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    phase = Phase::Quote(ch);
                    blank_ok = true;
                    k += 1;
                    continue;
                }
                if ch == '\\' {
                    if k + 1 == chars.len() {
                        k += 1;
                        continue;
                    }
                    k += 1;
                    word.push(chars[k].1);
                    k += 1;
                    continue;
                }
                word.push(ch);
                k += 1;
            }
            Phase::Quote(q) => {
                if ch == q {
                    phase = Phase::Word;
                    k += 1;
                    continue;
                }
                if ch == '\\' {
                    if k + 1 == chars.len() {
                        phase = Phase::Word;
                        k += 1;
                        continue;
                    }
                    k += 1;
                    word.push(chars[k].1);
                    k += 1;
                    continue;
                }
                word.push(ch);
                k += 1;
            }
            Phase::Spaces => unreachable!("handled above"),
        }
    }
    (words, line.len())
}

/// BuildKit's `parseWords`: splits at unquoted, unescaped whitespace, keeping quotes and escapes
/// verbatim. Returns (word, start, end).
pub fn parse_words(text: &str, esc: char) -> Vec<(String, usize, usize)> {
    // Words are verbatim, so each is a slice of `text`; only an escape character at the very
    // end of the text is dropped.
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut end = text.len();
    let mut it = text.char_indices();
    while let Some((pos, ch)) = it.next() {
        let Some(s) = start else {
            if is_space(ch) {
                continue;
            }
            start = Some(pos);
            // The first character of a word is processed below like any other.
            if ch == '\'' || ch == '"' {
                quote = Some(ch);
                blank_ok = true;
            } else if ch == esc && it.next().is_none() {
                end = pos;
            }
            continue;
        };
        match quote {
            None => {
                if is_space(ch) {
                    if blank_ok || pos > s {
                        out.push((text[s..pos].to_string(), s, pos));
                    }
                    start = None;
                    blank_ok = false;
                    continue;
                }
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                } else if ch == esc && it.next().is_none() {
                    end = pos;
                }
            }
            Some(q) => {
                if ch == q {
                    quote = None;
                } else if ch == esc && q != '\'' && it.next().is_none() {
                    end = pos;
                    quote = None;
                }
            }
        }
    }
    if let Some(s) = start {
        if blank_ok || end > s {
            out.push((text[s..end].to_string(), s, text.len()));
        }
    }
    out
}

/// Heredocs named on a whole logical line, in order.
fn heredocs_from_line(map: &LineMap) -> Result<Vec<Heredoc>, NodeError> {
    let words = parse_words(&map.text, '\\');
    let mut docs = Vec::new();
    let mut k = 0;
    while k < words.len() {
        let (w, a, mut b) = &words[k];
        let mut word = w.clone();
        // `<< EOF`: an operator word alone takes the next word as its delimiter.
        if is_bare_operator(&word) && k + 1 < words.len() {
            word.push(' ');
            word.push_str(&words[k + 1].0);
            b = words[k + 1].2;
            k += 1;
        }
        k += 1;
        let span = map.span(*a, b);
        if let Some(doc) = parse_heredoc_word(&word).map_err(|e| (span, e))? {
            docs.push(Heredoc { span, ..doc });
        }
    }
    Ok(docs)
}

fn is_bare_operator(w: &str) -> bool {
    let t = w.trim_start_matches(|c: char| c.is_ascii_digit());
    t == "<<" || t == "<<-"
}

/// Parses one word such as `<<EOF`, `<<-'EOF'`, `3<<EOF`; `Ok(None)` when it is no heredoc.
pub fn parse_heredoc_word(word: &str) -> Result<Option<Heredoc>, ErrorKind> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse::<u32>().unwrap_or(0);
    // Unquote the delimiter: quotes and `\` escapes removed; any quoting turns expansion off.
    let mut names: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quoted = false;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = true;
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(ErrorKind::InvalidHeredoc(word.to_string())),
                    }
                }
            }
            '"' => {
                quoted = true;
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(ErrorKind::InvalidHeredoc(word.to_string())),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(ErrorKind::InvalidHeredoc(word.to_string())),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if is_space(c) => {
                if have {
                    names.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        names.push(cur);
    }
    if names.len() != 1 {
        return Ok(None);
    }
    let name = names.pop().unwrap_or_default();
    Ok(Some(Heredoc {
        name,
        content: String::new(),
        expand: !quoted,
        chomp,
        fd,
        span: Span::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("foo \\  ", '\\'), ("foo ", true));
        assert_eq!(trim_continuation("foo\\\\", '\\'), ("foo\\\\", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", true));
        assert_eq!(trim_continuation("a`", '`'), ("a", true));
    }

    #[test]
    fn go_quote_matches_strconv() {
        assert_eq!(go_quote("a\"b\\c\n\t\u{0}♥"), "\"a\\\"b\\\\c\\n\\t\\x00♥\"");
    }

    #[test]
    fn heredoc_words() {
        for w in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            let d = parse_heredoc_word(w).expect("valid").expect("a heredoc");
            assert_eq!(d.name, "EOF", "{w}");
        }
        for w in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc_word(w).is_err(), "{w}");
        }
        for w in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert!(parse_heredoc_word(w).expect("no error").is_none(), "{w}");
        }
    }
}
