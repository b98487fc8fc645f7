//! `.dockerignore` matching: turns the text of an ignore file into an ordered list of patterns and
//! decides, for a `/`-separated path relative to the build context, whether it is excluded and by
//! which line of the file.
//!
//! The rules are Docker's, not gitignore's: they follow moby/patternmatcher and its
//! `ignorefile.ReadAll` (the code BuildKit and the Docker CLI use), restated from their
//! documentation and tests (see `fixtures/dockerignore/README.md`):
//! a line whose first character is `#` is a comment; lines are trimmed; a leading `!` marks an
//! exception; the rest is cleaned like Go's `filepath.Clean` and loses one leading `/`; every
//! pattern is anchored at the context root; `*` and `?` never cross `/`; `**` matches any number of
//! directories (a leading `**` any prefix, a trailing `**` anything); classes `[...]` follow Go's
//! `filepath.Match` (`^` negates, `\` escapes); a path is matched when it or one of its parent
//! directories matches; the last matching line decides. Malformed patterns (the ones Go's
//! `filepath.Match` reports as `ErrBadPattern`) and a lone `!` are errors.
//!
//! Judgement: `globset` was considered and not used. It cannot express these semantics exactly:
//! its `[!...]` negates where Go's does not, a `**` next to other characters (`**file`, `a**b`)
//! means something else there, and it does not report Go's malformed-pattern cases. So the matcher
//! is written here: each pattern is compiled to a short token list (the same classification moby
//! makes: exact, prefix for a trailing `**`, suffix for a leading `**`, otherwise a general
//! pattern) and matched with a small dynamic program, so there is no backtracking blow-up.
//! One deliberate refinement: inside a class, `*` and `?` are literal characters as in
//! `filepath.Match` (moby would splice its own translation of them into the class).
//!
//! This room is pure: it never touches the file system. Reading the file and walking the context
//! is `context`'s job.

use std::fmt;

/// Errors in an ignore file, or in a list of patterns such as `COPY --exclude`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A line is `!` alone (Docker's wording, kept so messages match).
    #[error("line {line}: illegal exclusion pattern: \"!\"")]
    IllegalExclusion { line: usize },
    /// A pattern Go's `filepath.Match` would reject (unclosed `[`, trailing `\`, `[a-b-c]`...).
    #[error("line {line}: syntax error in pattern `{pattern}`")]
    BadPattern { line: usize, pattern: String },
}

/// One pattern line of an ignore file, after reading and cleaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// 1-based line number in the ignore file (or position in a pattern list).
    pub line: usize,
    /// `true` for a `!` exception (re-includes what matched before).
    pub exception: bool,
    /// The cleaned pattern text, without the `!`.
    pub text: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// A pattern ending in `**` with no other wildcard: the path starts with this.
    Prefix(String),
    /// A pattern starting with `**` with no other wildcard: the path ends with this (or equals it
    /// without its leading `/`).
    Suffix(String),
    /// Everything else.
    Tokens(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**` followed by more pattern: nothing, or anything ending in `/`.
    AnyDirs,
    /// A trailing `**` after other wildcards: anything.
    AnyAll,
    /// `[...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// How a pattern is tested: moby's `exact`, `prefix` (trailing `**`), `suffix` (leading `**`)
/// and `regexp` (here: a token matcher) classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    General,
}

/// The outcome of matching a path against an ignore file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict<'a> {
    /// Whether the path is excluded from the context.
    pub excluded: bool,
    /// The line that decided (the last one matching the path or one of its parents).
    pub pattern: &'a Pattern,
}

/// An ordered list of patterns: a parsed `.dockerignore`, or `COPY --exclude` patterns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// Reads ignore-file text into the ordered pattern lines, with their line numbers, the way
/// `ignorefile.ReadAll` does: UTF-8 BOM dropped, `#` in column 1 is a comment, lines trimmed,
/// blank lines skipped, `!` set aside and the rest cleaned, one leading `/` removed. A bare `!`
/// survives reading (the matcher rejects it).
pub fn read_lines(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (idx, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with('#') {
            continue;
        }
        let mut pattern = raw.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((idx + 1, cleaned));
    }
    out
}

/// A Go `filepath.Match` pattern for one path or path component, as `COPY` and `ADD` sources use
/// them: `*` and `?` never match `/`, classes as in ignore files, `\` escapes; `**` is no
/// different from `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobPattern {
    text: String,
    tokens: Vec<Token>,
}

impl GlobPattern {
    /// Compiles `pattern`; a malformed one is an error naming it (line 1).
    pub fn new(pattern: &str) -> Result<GlobPattern, IgnoreError> {
        if !valid_go_pattern(pattern) {
            return Err(IgnoreError::BadPattern {
                line: 1,
                pattern: pattern.to_string(),
            });
        }
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                '?' => {
                    tokens.push(Token::One);
                    i += 1;
                }
                '\\' => {
                    tokens.push(Token::Lit(chars[i + 1]));
                    i += 2;
                }
                '[' => {
                    let (negated, ranges, next) =
                        parse_class(&chars, i + 1).expect("pattern was validated before compiling");
                    tokens.push(Token::Class { negated, ranges });
                    i = next;
                }
                c => {
                    tokens.push(Token::Lit(c));
                    i += 1;
                }
            }
        }
        Ok(GlobPattern {
            text: pattern.to_string(),
            tokens,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        match_tokens(&self.tokens, name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Whether `s` holds a wildcard character of Go's `filepath.Match` (`*`, `?`, `[`; `\` escapes).
pub fn has_wildcards(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Removes the `\` escapes of a pattern without wildcards, giving the literal name it matches.
pub fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if !escaped && c == '\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        out.push(c);
    }
    out
}

/// Go's `filepath.Clean` on a `/`-separated path: the shortest equivalent path by purely lexical
/// processing (`.` elements and doubled `/` dropped, `..` folded, trailing `/` removed; `..` at
/// the root stays the root). The empty path becomes `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir` on a `/`-separated path: everything before the last `/`, cleaned.
fn dir_of(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_string(),
    }
}

impl Matcher {
    /// Parses the text of a `.dockerignore` file.
    pub fn parse(text: &str) -> Result<Matcher, IgnoreError> {
        Matcher::from_lines(read_lines(text))
    }

    /// Builds a matcher from pattern strings (for example `COPY --exclude` values), numbered from
    /// 1 in order. They are read like lines of an ignore file.
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, IgnoreError> {
        let mut lines = Vec::new();
        for (i, p) in patterns.iter().enumerate() {
            // each value is one line; a value can't smuggle in more lines
            for (_, l) in read_lines(&p.as_ref().replace('\n', " ")) {
                lines.push((i + 1, l));
            }
        }
        Matcher::from_lines(lines)
    }

    /// Builds a matcher from already-read lines (`(line number, pattern)`), as the matcher's
    /// constructor does: each is trimmed and cleaned once more, `!` is split off and every
    /// pattern is checked for Go `filepath.Match` syntax.
    pub fn from_lines(lines: Vec<(usize, String)>) -> Result<Matcher, IgnoreError> {
        let mut patterns = Vec::new();
        for (line, p) in lines {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            let exception = p.starts_with('!');
            if exception {
                if p.len() == 1 {
                    return Err(IgnoreError::IllegalExclusion { line });
                }
                p.remove(0);
            }
            if !valid_go_pattern(&p) {
                return Err(IgnoreError::BadPattern { line, pattern: p });
            }
            let kind = compile(&p);
            patterns.push(Pattern {
                line,
                exception,
                text: p,
                kind,
            });
        }
        Ok(Matcher { patterns })
    }

    /// The patterns in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exception)
    }

    /// Decides `path` (relative to the context root, `/`-separated): the last pattern that matches
    /// the path or one of its parent directories, or `None` when no pattern matches (included).
    pub fn verdict(&self, path: &str) -> Option<Verdict<'_>> {
        let parent = dir_of(path);
        let parent_dirs: Vec<&str> = if parent == "." {
            Vec::new()
        } else {
            parent.split('/').collect()
        };
        self.patterns
            .iter()
            .rev()
            .find(|pat| {
                pat.matches(path)
                    || (1..=parent_dirs.len()).any(|n| pat.matches(&parent_dirs[..n].join("/")))
            })
            .map(|pat| Verdict {
                excluded: !pat.exception,
                pattern: pat,
            })
    }

    /// Whether `path` is excluded (the last matching line is not an exception).
    pub fn is_excluded(&self, path: &str) -> bool {
        self.verdict(path).is_some_and(|v| v.excluded)
    }

    /// The line that excluded `path`, or `None` when it is included.
    pub fn excluded_by(&self, path: &str) -> Option<&Pattern> {
        self.verdict(path).filter(|v| v.excluded).map(|v| v.pattern)
    }

    /// Whether some non-exception pattern could match a path strictly below directory `dir` (for
    /// include lists: whether a walk must look inside `dir`). Errs on the side of `true`.
    pub fn may_match_below(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| !p.exception)
            .any(|p| p.could_match_below(&prefix))
    }

    /// Whether some exception pattern could re-include a path strictly below directory `dir`.
    /// A walk may skip an excluded directory entirely when this is `false` (moby does the same
    /// with a coarser prefix test). Errs on the side of `true`.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| p.could_match_below(&prefix))
    }
}

impl Pattern {
    /// How the pattern is tested (moby's classification, see `compile.tsv` in the corpus).
    pub fn match_kind(&self) -> MatchKind {
        match self.kind {
            Kind::Exact => MatchKind::Exact,
            Kind::Prefix(_) => MatchKind::Prefix,
            Kind::Suffix(_) => MatchKind::Suffix,
            Kind::Tokens(_) => MatchKind::General,
        }
    }

    /// Whether this pattern matches exactly `path` (no parent-directory rule).
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            Kind::Tokens(tokens) => match_tokens(tokens, path),
        }
    }

    /// Whether some path starting with `prefix` (which ends in `/`) could match.
    fn could_match_below(&self, prefix: &str) -> bool {
        match &self.kind {
            Kind::Exact => self.text.starts_with(prefix),
            Kind::Prefix(p) => p.starts_with(prefix) || prefix.starts_with(p.as_str()),
            Kind::Suffix(_) => true,
            Kind::Tokens(tokens) => prefix_live(tokens, prefix),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exception {
            write!(f, "!{}", self.text)
        } else {
            f.write_str(&self.text)
        }
    }
}

/// Whether Go's `filepath.Match` accepts `pattern` (on Unix): every `\` escapes a following
/// character, every class is closed, has at least one range, and no range end is a bare `-` or `]`.
fn valid_go_pattern(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => match parse_class(&chars, i + 1) {
                Some((_, _, next)) => i = next,
                None => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// A parsed class: negated, its ranges, and the index after its `]`.
type ParsedClass = (bool, Vec<(char, char)>, usize);

/// Parses a class body starting after `[`; returns (negated, ranges, index after `]`), or `None`
/// when it is malformed in Go's sense.
fn parse_class(chars: &[char], mut i: usize) -> Option<ParsedClass> {
    let mut negated = false;
    if chars.get(i) == Some(&'^') {
        negated = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        if chars.get(i) == Some(&']') && !ranges.is_empty() {
            return Some((negated, ranges, i + 1));
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1)?;
            hi = h;
            i = next;
        }
        ranges.push((lo, hi));
    }
}

/// One (possibly escaped) character inside a class; like Go's `getEsc`, it must not be a bare
/// `-` or `]` and must be followed by more pattern.
fn class_char(chars: &[char], mut i: usize) -> Option<(char, usize)> {
    let c = *chars.get(i)?;
    if c == '-' || c == ']' {
        return None;
    }
    if c == '\\' {
        i += 1;
    }
    let c = *chars.get(i)?;
    if i + 1 >= chars.len() {
        return None;
    }
    Some((c, i + 1))
}

/// How moby classifies a pattern; only `General` needs the token matcher.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    General,
}

/// Classifies and compiles a cleaned, validated pattern the way moby does (see the module doc):
/// a trailing `**` after plain text is a prefix test, a leading `**` followed by plain text a
/// suffix test, no wildcard an exact test; anything else becomes tokens.
fn compile(pattern: &str) -> Kind {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut mt = MatchType::Exact;
    let mut i = 0;
    let mut first = true;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                // `**/` is treated as `**`
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if mt == MatchType::Exact {
                        mt = MatchType::Prefix;
                    } else {
                        tokens.push(Token::AnyAll);
                        mt = MatchType::General;
                    }
                } else {
                    tokens.push(Token::AnyDirs);
                    mt = MatchType::General;
                }
                if first {
                    mt = MatchType::Suffix;
                }
            }
            '*' => {
                tokens.push(Token::Star);
                mt = MatchType::General;
                i += 1;
            }
            '?' => {
                tokens.push(Token::One);
                mt = MatchType::General;
                i += 1;
            }
            '\\' => {
                // validated: an escape is always followed by a character
                tokens.push(Token::Lit(chars[i + 1]));
                mt = MatchType::General;
                i += 2;
            }
            '[' => {
                let (negated, ranges, next) =
                    parse_class(&chars, i + 1).expect("pattern was validated before compiling");
                tokens.push(Token::Class { negated, ranges });
                mt = MatchType::General;
                i = next;
            }
            ']' => {
                tokens.push(Token::Lit(c));
                mt = MatchType::General;
                i += 1;
            }
            _ => {
                tokens.push(Token::Lit(c));
                i += 1;
            }
        }
        first = false;
    }
    match mt {
        MatchType::Exact => Kind::Exact,
        MatchType::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        MatchType::Suffix => Kind::Suffix(pattern[2..].to_string()),
        MatchType::General => Kind::Tokens(tokens),
    }
}

fn class_has(negated: bool, ranges: &[(char, char)], c: char) -> bool {
    ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
}

/// The matcher's state set: `at[i]` = positioned before token `i` (`at[n]` = all matched);
/// `inside[i]` = within the repetition of token `i` (`*`, `**`).
struct States {
    at: Vec<bool>,
    inside: Vec<bool>,
}

impl States {
    fn start(tokens: &[Token]) -> States {
        let mut s = States {
            at: vec![false; tokens.len() + 1],
            inside: vec![false; tokens.len()],
        };
        s.at[0] = true;
        s.close(tokens);
        s
    }

    /// Empty moves: `*` and a trailing `**` may stop at any time; a `**/` may match nothing
    /// (from its start) and is otherwise left only right after a `/` (see `step`).
    fn close(&mut self, tokens: &[Token]) {
        for (i, t) in tokens.iter().enumerate() {
            match t {
                Token::Star | Token::AnyAll if self.at[i] || self.inside[i] => {
                    self.inside[i] = true;
                    self.at[i + 1] = true;
                }
                Token::AnyDirs if self.at[i] => {
                    self.inside[i] = true;
                    self.at[i + 1] = true;
                }
                _ => {}
            }
        }
    }

    fn step(&self, tokens: &[Token], c: char) -> States {
        let n = tokens.len();
        let mut next = States {
            at: vec![false; n + 1],
            inside: vec![false; n],
        };
        for (i, t) in tokens.iter().enumerate() {
            let at = self.at[i];
            if !at && !self.inside[i] {
                continue;
            }
            match t {
                Token::Lit(l) => next.at[i + 1] |= at && *l == c,
                Token::One => next.at[i + 1] |= at && c != '/',
                Token::Class { negated, ranges } => {
                    next.at[i + 1] |= at && class_has(*negated, ranges, c)
                }
                Token::Star => next.inside[i] |= c != '/',
                Token::AnyAll => next.inside[i] = true,
                Token::AnyDirs => {
                    next.inside[i] = true;
                    next.at[i + 1] |= c == '/';
                }
            }
        }
        next.close(tokens);
        next
    }

    fn alive(&self) -> bool {
        self.at.iter().any(|b| *b) || self.inside.iter().any(|b| *b)
    }
}

fn match_tokens(tokens: &[Token], path: &str) -> bool {
    let mut s = States::start(tokens);
    for c in path.chars() {
        s = s.step(tokens, c);
        if !s.alive() {
            return false;
        }
    }
    s.at[tokens.len()]
}

/// Whether, after consuming `prefix`, a longer text could still match: some state short of the
/// end, or inside a repetition, is alive.
fn prefix_live(tokens: &[Token], prefix: &str) -> bool {
    let mut s = States::start(tokens);
    for c in prefix.chars() {
        s = s.step(tokens, c);
        if !s.alive() {
            return false;
        }
    }
    s.at[..tokens.len()].iter().any(|b| *b) || s.inside.iter().any(|b| *b)
}
