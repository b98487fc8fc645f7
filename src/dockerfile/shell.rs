//! Shell-word expansion as Docker applies it to Dockerfile words: a function over an
//! environment lookup, not a parser pass.
//!
//! Supported: `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`,
//! `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`, single and double quotes,
//! the escape character (`\` or the `# escape=` one), positional (`$1`) and special (`$@`…)
//! parameters which always expand to nothing. Patterns use `*`, `?` and `\` escapes only (no
//! bracket expressions), as BuildKit's. [`expand`] gives one word (no field splitting: ENV,
//! LABEL, WORKDIR…); [`expand_words`] also splits unquoted text and unquoted variable values on
//! blanks (BuildKit's `ProcessWords`).
//!
//! Expansion is bounded, so input built to blow up ends in an error: a result longer than
//! [`MAX_EXPANSION`] bytes, `${…}` nested deeper than [`MAX_DEPTH`], or a `${V/p/r}` search
//! costing more than [`MAX_PATTERN_STEPS`] steps is refused. Since ENV values are expanded when
//! they are set, a chain `ENV A=$A$A` doubling per line hits the size bound after ~20 lines.
//!
//! This module is pure: the caller supplies the lookup; nothing reads the process environment.
//! Spec: the Dockerfile reference "Environment replacement", checked against BuildKit's
//! `envVarTest`, `wordsTest` and `lex_test.go` vectors (`fixtures/dockerfile/shell-lex`).

use std::collections::BTreeSet;

/// The longest expansion result accepted, in bytes.
pub const MAX_EXPANSION: usize = 1 << 20;
/// The deepest nesting of `${…}` accepted.
pub const MAX_DEPTH: usize = 64;
/// The most pattern-matching steps one expansion may take.
pub const MAX_PATTERN_STEPS: u64 = 10_000_000;

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
    #[error("invalid pattern `{pattern}` in substitution: {reason}")]
    InvalidPattern { pattern: String, reason: String },
    #[error("expansion is longer than {MAX_EXPANSION} bytes: check for variables that repeat each other")]
    TooLong,
    #[error("variable substitutions are nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("pattern substitution needs too many steps")]
    TooCostly,
}

/// A single-word expansion with the variable names it referenced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    pub value: String,
    /// Referenced and set.
    pub matched: BTreeSet<String>,
    /// Referenced but unset.
    pub unmatched: BTreeSet<String>,
}

/// Expands one word with `\` as the escape character. See the module doc.
pub fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ShellError> {
    Lexer::new('\\').expand(word, lookup)
}

/// Expands and splits into words with `\` as the escape character (BuildKit's `ProcessWords`).
pub fn expand_words(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, ShellError> {
    Lexer::new('\\').expand_words(word, lookup)
}

/// An expander with a given escape character (the Dockerfile's `# escape=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    pub escape: char,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer { escape }
    }

    /// One word, quotes removed, no field splitting.
    pub fn expand(
        &self,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, ShellError> {
        self.expand_with_matches(word, lookup).map(|e| e.value)
    }

    /// Like [`Lexer::expand`], also reporting which names were found and which were unset.
    pub fn expand_with_matches(
        &self,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Expansion, ShellError> {
        let mut sw = Sw::new(word, self.escape, lookup);
        let (value, _) = sw.process_stop_on(None, false)?;
        Ok(Expansion {
            value,
            matched: sw.matched,
            unmatched: sw.unmatched,
        })
    }

    /// Expanded words: unquoted blanks and blanks inside unquoted variable values separate
    /// words; quoted text stays in one word.
    pub fn expand_words(
        &self,
        word: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, ShellError> {
        let mut sw = Sw::new(word, self.escape, lookup);
        let (_, words) = sw.process_stop_on(None, false)?;
        Ok(words.finish())
    }
}

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }
    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Sw<'a> {
    chars: Vec<char>,
    pos: usize,
    esc: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    depth: usize,
    steps: u64,
}

fn push_bounded(out: &mut String, s: &str) -> Result<(), ShellError> {
    if out.len() + s.len() > MAX_EXPANSION {
        return Err(ShellError::TooLong);
    }
    out.push_str(s);
    Ok(())
}

fn push_char_bounded(out: &mut String, c: char) -> Result<(), ShellError> {
    if out.len() + c.len_utf8() > MAX_EXPANSION {
        return Err(ShellError::TooLong);
    }
    out.push(c);
    Ok(())
}

impl<'a> Sw<'a> {
    fn new(word: &str, esc: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Sw<'a> {
        Sw {
            chars: word.chars().collect(),
            pos: 0,
            esc,
            lookup,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            depth: 0,
            steps: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match (self.lookup)(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    /// Processes until `stop` (consumed) or the end. `raw_escapes` keeps escape characters in
    /// the result (for patterns, where `\*` must stay escaped).
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Words), ShellError> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words));
            }
            match c {
                '$' => {
                    let v = self.process_dollar()?;
                    push_bounded(&mut result, &v)?;
                    words.add_string(&v);
                }
                '\'' => {
                    let v = self.process_single_quote()?;
                    push_bounded(&mut result, &v)?;
                    words.add_raw_string(&v);
                }
                '"' => {
                    let v = self.process_double_quote()?;
                    push_bounded(&mut result, &v)?;
                    words.add_raw_string(&v);
                }
                _ => {
                    self.next();
                    if c == self.esc {
                        if raw_escapes {
                            words.add_raw_char(c);
                            push_char_bounded(&mut result, c)?;
                        }
                        match self.next() {
                            None => break,
                            Some(n) => {
                                words.add_raw_char(n);
                                push_char_bounded(&mut result, n)?;
                            }
                        }
                    } else {
                        words.add_char(c);
                        push_char_bounded(&mut result, c)?;
                    }
                }
            }
        }
        match stop {
            Some('}') => Err(ShellError::MissingBrace),
            Some('/') => Err(ShellError::MissingSlash),
            Some(_) => Err(ShellError::BadSubstitution),
            None => Ok((result, words)),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.next() {
                None => return Err(ShellError::UnterminatedSingleQuote),
                Some('\'') => return Ok(out),
                Some(c) => push_char_bounded(&mut out, c)?,
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        self.next();
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(ShellError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    push_bounded(&mut out, &v)?;
                }
                Some(_) => {
                    let mut c = self.next().unwrap_or_default();
                    if c == self.esc {
                        match self.peek() {
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.esc => {
                                c = n;
                                self.next();
                            }
                            Some(_) => {}
                        }
                    }
                    push_char_bounded(&mut out, c)?;
                }
            }
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_ascii_digit() {
                while let Some(d) = self.peek().filter(|d| d.is_ascii_digit()) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ShellError::TooDeep);
        }
        let r = self.process_dollar_inner();
        self.depth -= 1;
        r
    }

    fn process_dollar_inner(&mut self) -> Result<String, ShellError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.get_env(&name).unwrap_or_default());
        }
        self.next();
        match self.peek() {
            None => return Err(ShellError::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellError::BadSubstitution),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        match ch {
            Some('}') => Ok(self.get_env(&name).unwrap_or_default()),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut chs = String::new();
                let mut op = ch.unwrap_or_default();
                chs.push(op);
                let null_is_unset = op == ':';
                if null_is_unset {
                    match self.next() {
                        Some(c) => {
                            op = c;
                            chs.push(c);
                        }
                        None => return Err(ShellError::MissingBrace),
                    }
                }
                let raw_escapes = op == '#' || op == '%';
                if null_is_unset && raw_escapes {
                    return Err(ShellError::UnsupportedModifier(chs));
                }
                let (word, _) = self.process_stop_on(Some('}'), raw_escapes)?;
                let value = self.get_env(&name);
                let empty = value
                    .as_deref()
                    .map_or(true, |v| null_is_unset && v.is_empty());
                match op {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be unset".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) if null_is_unset && v.is_empty() => Err(ShellError::Required {
                            name,
                            message: if word.is_empty() {
                                "is not allowed to be empty".into()
                            } else {
                                word
                            },
                        }),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pat) = match word.strip_prefix(op) {
                            Some(p) => (true, p.to_string()),
                            None => (false, word),
                        };
                        let value = value.unwrap_or_default();
                        let tokens = compile_pattern(&pat)?;
                        if op == '#' {
                            Ok(self.trim_prefix(&tokens, &value, greedy)?)
                        } else {
                            Ok(self.trim_suffix(&tokens, &value, greedy)?)
                        }
                    }
                    _ => Err(ShellError::UnsupportedModifier(chs)),
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = self.process_stop_on(Some('/'), true)?;
                let (replacement, _) = self.process_stop_on(Some('}'), true)?;
                let value = self.get_env(&name).unwrap_or_default();
                let tokens = compile_pattern(&pattern)?;
                self.replace(&tokens, &value, &replacement, all)
            }
            Some(c) => Err(ShellError::UnsupportedModifier(c.to_string())),
            None => Err(ShellError::MissingBrace),
        }
    }

    fn charge(&mut self, n: u64) -> Result<(), ShellError> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > MAX_PATTERN_STEPS {
            return Err(ShellError::TooCostly);
        }
        Ok(())
    }

    /// Lengths `j` (in chars) such that `tokens` matches `s[start..start+j]` exactly, found in
    /// one pass; `each(j)` is called in increasing order until it returns false.
    fn prefix_matches(
        &mut self,
        tokens: &[Tok],
        s: &[char],
        start: usize,
        mut each: impl FnMut(usize) -> bool,
    ) -> Result<(), ShellError> {
        let m = tokens.len();
        // states[k]: tokens[..k] matched the consumed text. Two buffers, swapped per character.
        let mut states = vec![false; m + 1];
        let mut next = vec![false; m + 1];
        states[0] = true;
        close_stars(tokens, &mut states);
        let mut j = 0;
        loop {
            if states[m] && !each(j) {
                return Ok(());
            }
            if start + j >= s.len() || !states.iter().any(|&b| b) {
                return Ok(());
            }
            self.charge(m as u64 + 1)?;
            let c = s[start + j];
            next.iter_mut().for_each(|b| *b = false);
            for k in 0..m {
                if !states[k] {
                    continue;
                }
                match tokens[k] {
                    Tok::Star => next[k] = true,
                    Tok::Any => next[k + 1] = true,
                    Tok::Lit(l) if l == c => next[k + 1] = true,
                    Tok::Lit(_) => {}
                }
            }
            close_stars(tokens, &mut next);
            std::mem::swap(&mut states, &mut next);
            j += 1;
        }
    }

    fn trim_prefix(
        &mut self,
        tokens: &[Tok],
        value: &str,
        greedy: bool,
    ) -> Result<String, ShellError> {
        let s: Vec<char> = value.chars().collect();
        let mut best = None;
        self.prefix_matches(tokens, &s, 0, |j| {
            best = Some(j);
            greedy
        })?;
        Ok(match best {
            Some(j) => s[j..].iter().collect(),
            None => value.to_string(),
        })
    }

    fn trim_suffix(
        &mut self,
        tokens: &[Tok],
        value: &str,
        greedy: bool,
    ) -> Result<String, ShellError> {
        let rev_tokens: Vec<Tok> = tokens.iter().rev().copied().collect();
        let rev: String = value.chars().rev().collect();
        let out = self.trim_prefix(&rev_tokens, &rev, greedy)?;
        Ok(out.chars().rev().collect())
    }

    fn replace(
        &mut self,
        tokens: &[Tok],
        value: &str,
        replacement: &str,
        all: bool,
    ) -> Result<String, ShellError> {
        let s: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        let mut replaced_once = false;
        while i <= s.len() {
            if replaced_once && !all {
                break;
            }
            let mut longest = None;
            self.prefix_matches(tokens, &s, i, |j| {
                longest = Some(j);
                true
            })?;
            match longest {
                Some(j) => {
                    push_bounded(&mut out, replacement)?;
                    replaced_once = true;
                    if j == 0 {
                        if i < s.len() {
                            push_char_bounded(&mut out, s[i])?;
                        }
                        i += 1;
                    } else {
                        i += j;
                    }
                }
                None => {
                    if i < s.len() {
                        push_char_bounded(&mut out, s[i])?;
                    }
                    i += 1;
                }
            }
        }
        if i < s.len() {
            let rest: String = s[i..].iter().collect();
            push_bounded(&mut out, &rest)?;
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// A `*` token may match nothing: a state before a star also holds after it.
fn close_stars(tokens: &[Tok], states: &mut [bool]) {
    for k in 0..tokens.len() {
        if states[k] && tokens[k] == Tok::Star {
            states[k + 1] = true;
        }
    }
}

/// `*` any run, `?` one character, `\*` `\?` `\\` literals; `\}` and `\/` are the characters
/// themselves (they had to be escaped inside `${…}`); any other escape is an error.
fn compile_pattern(pattern: &str) -> Result<Vec<Tok>, ShellError> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '?' => out.push(Tok::Any),
            '\\' => match chars.peek().copied() {
                Some('}' | '/') => {}
                Some(n @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Tok::Lit(n));
                }
                other => {
                    return Err(ShellError::InvalidPattern {
                        pattern: pattern.to_string(),
                        reason: match other {
                            Some(n) => format!("invalid escape `\\{n}`"),
                            None => "trailing escape".to_string(),
                        },
                    })
                }
            },
            c => out.push(Tok::Lit(c)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn table() {
        let lookup = env(&[("A", "foobarbaz"), ("E", ""), ("P", "/x/y")]);
        let cases: &[(&str, &str)] = &[
            ("$A", "foobarbaz"),
            ("${A#f*b}", "arbaz"),
            ("${A##f*b}", "az"),
            ("${A%b*}", "foobar"),
            ("${A%%b*}", "foo"),
            ("${A/ba/fo}", "fooforbaz"),
            ("${A//ba/fo}", "fooforfoz"),
            ("${E:-d}", "d"),
            ("${E-d}", ""),
            ("${U-d}", "d"),
            ("${E:+x}", ""),
            ("${E+x}", "x"),
            ("'$A'", "$A"),
            ("\"$A\"", "foobarbaz"),
            ("\\$A", "$A"),
            ("${P}/z", "/x/y/z"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &lookup).as_deref(), Ok(*want), "{input}");
        }
    }

    #[test]
    fn required_message() {
        let lookup = env(&[]);
        let e = expand("${V:?set V please}", &lookup).expect_err("V unset");
        assert_eq!(e.to_string(), "V: set V please");
    }

    #[test]
    fn doubling_chain_is_bounded() {
        // ENV A=x, then A=$A$A again and again, as the planner would apply it.
        let mut value = "x".repeat(64);
        let mut failed = None;
        for step in 0..64 {
            let v = value.clone();
            let lookup = move |n: &str| (n == "A").then(|| v.clone());
            match expand("$A$A", &lookup) {
                Ok(next) => value = next,
                Err(e) => {
                    failed = Some((step, e));
                    break;
                }
            }
        }
        let (step, err) = failed.expect("the chain must end in an error");
        assert_eq!(err, ShellError::TooLong);
        assert!(step < 20, "stopped at step {step}");
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let word = "${a:-".repeat(10_000) + &"}".repeat(10_000);
        assert_eq!(expand(&word, &env(&[])), Err(ShellError::TooDeep));
    }

    #[test]
    fn costly_patterns_are_bounded() {
        let big = "a".repeat(200_000);
        let lookup = move |n: &str| (n == "A").then(|| big.clone());
        assert_eq!(expand("${A//a*b/x}", &lookup), Err(ShellError::TooCostly));
    }
}
