//! Word expansion tables (`input | expected`), as BuildKit keeps them: one environment, one
//! line per case. `!` in the expected column means an error whose message contains the rest.

use hoist::dockerfile::shell::{self, Lexer, ShellError};

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("foobarbaz".into()),
        "EMPTY" => Some(String::new()),
        "PATHV" => Some("/usr/local/bin:/usr/bin".into()),
        "SPACED" => Some("  a  b ".into()),
        "FILE" => Some("archive.tar.gz".into()),
        "URL" => Some("http://example.com/x".into()),
        "STAR" => Some("*".into()),
        _ => None,
    }
}

const WORD: &str = r#"
$A                     | foobarbaz
${A}x                  | foobarbazx
$Ax                    |
${UNSET}               |
${UNSET:-def}          | def
${EMPTY:-def}          | def
${EMPTY-def}           |
${UNSET-def}           | def
${A:+set}              | set
${EMPTY:+set}          |
${EMPTY+set}           | set
${UNSET+set}           |
${A:?}                 | foobarbaz
${UNSET:?needs value}  | !UNSET: needs value
${EMPTY:?}             | !EMPTY: is not allowed to be empty
${UNSET?}              | !UNSET: is not allowed to be unset
${A#foo}               | barbaz
${A#*a}                | rbaz
${A##*a}               | z
${A%baz}               | foobar
${A%a*}                | foobarb
${A%%a*}               | foob
${FILE%.*}             | archive.tar
${FILE%%.*}            | archive
${FILE#*.}             | tar.gz
${FILE##*.}            | gz
${A/o/0}               | f0obarbaz
${A//o/0}              | f00barbaz
${A/#/x}               | foobarbaz
${URL/http:\/\//https://} | https://example.com/x
${PATHV//:/ }          | /usr/local/bin /usr/bin
${A/?a/_}              | foo_rbaz
${A//b??/-}            | foo--
${STAR/\*/s}           | s
${A/z/}                | foobarba
'$A'                   | $A
"$A"                 | foobarbaz
"'$A'"               | 'foobarbaz'
\$A                   | $A
a\ b                  | a b
"a\"b"             | a"b
${A:-${UNSET:-deep}}   | foobarbaz
${UNSET:-${A%baz}}     | foobar
$1$@$#x                | x
$                      | $
${A                    | !missing '}'
${}                    | !bad substitution
${A:=x}                | !unsupported modifier
${A:#x}                | !unsupported modifier
${A/[/x}               | foobarbaz
${A#\q}               | !invalid escape
'open                  | !single-quote
"open                 | !double-quote
"#;

#[test]
fn single_word_table() {
    let mut failures = Vec::new();
    let mut n = 0;
    for line in WORD.lines().filter(|l| !l.trim().is_empty()) {
        let (input, want) = line.rsplit_once('|').expect("INPUT | EXPECTED");
        let input = input.trim().to_string();
        let want = want.trim().to_string();
        n += 1;
        let got = shell::expand(&input, &env);
        let ok = match (&got, want.strip_prefix('!')) {
            (Err(e), Some(part)) => e.to_string().contains(part),
            (Ok(v), None) => *v == want,
            _ => false,
        };
        if !ok {
            failures.push(format!("{input}: expected `{want}`, got {got:?}"));
        }
    }
    assert!(n > 50);
    assert!(
        failures.is_empty(),
        "{} of {n} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn word_splitting_table() {
    let cases: &[(&str, &[&str])] = &[
        ("a b  c", &["a", "b", "c"]),
        ("$SPACED", &["a", "b"]),
        ("x${SPACED}y", &["x", "a", "b", "y"]),
        ("\"$SPACED\"", &["  a  b "]),
        ("'a b' c", &["a b", "c"]),
        ("a\\ b", &["a b"]),
        ("$UNSET", &[]),
        ("--chown=$A:$A", &["--chown=foobarbaz:foobarbaz"]),
    ];
    for (input, want) in cases {
        let got = shell::expand_words(input, &env).expect(input);
        assert_eq!(&got, want, "{input}");
    }
}

#[test]
fn backtick_escape() {
    let lexer = Lexer::new('`');
    assert_eq!(lexer.expand("c:\\dir`$A", &env).as_deref(), Ok("c:\\dir$A"));
    assert_eq!(lexer.expand("\"a`\"b\"", &env).as_deref(), Ok("a\"b"));
    assert_eq!(lexer.expand("x\\$A", &env).as_deref(), Ok("x\\foobarbaz"));
}

#[test]
fn matches_are_reported() {
    let e = Lexer::new('\\')
        .expand_with_matches("${A}-${NOPE:-x}-$EMPTY", &env)
        .expect("expands");
    assert_eq!(e.value, "foobarbaz-x-");
    assert_eq!(e.matched.into_iter().collect::<Vec<_>>(), ["A", "EMPTY"]);
    assert_eq!(e.unmatched.into_iter().collect::<Vec<_>>(), ["NOPE"]);
}

#[test]
fn blow_ups_end_in_errors() {
    // A value past the size bound.
    let big = "x".repeat(shell::MAX_EXPANSION / 2 + 1);
    let lookup = move |n: &str| (n == "B").then(|| big.clone());
    assert_eq!(shell::expand("$B$B", &lookup), Err(ShellError::TooLong));
    assert_eq!(
        shell::expand("${B//x/xx}", &lookup),
        Err(ShellError::TooLong)
    );
    // Nesting past the depth bound.
    let deep = "${X:-".repeat(shell::MAX_DEPTH + 1) + &"}".repeat(shell::MAX_DEPTH + 1);
    assert_eq!(shell::expand(&deep, &env), Err(ShellError::TooDeep));
    let fine = "${X:-".repeat(10) + "ok" + &"}".repeat(10);
    assert_eq!(shell::expand(&fine, &env).as_deref(), Ok("ok"));
}
