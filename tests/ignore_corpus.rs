//! The `.dockerignore` corpus (`fixtures/dockerignore`, facts from moby/patternmatcher, balena's
//! docker-verified cases and Docker's documentation) run against `hoist::ignore`. Every failing
//! row is named; a run fails when any row does.

use hoist::ignore::{read_lines, MatchKind, Matcher};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/dockerignore")
        .join(name)
}

fn load_json(name: &str) -> Value {
    let text = std::fs::read_to_string(corpus(name)).expect("corpus file");
    serde_json::from_str(&text).expect("corpus json")
}

fn report(what: &str, total: usize, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} of {total} {what} failed\n{}\n{}\n{}",
            failures.len(),
            "-".repeat(72),
            failures.join("\n"),
            "-".repeat(72)
        );
    }
}

/// The decision for one row: "excluded", "included" or "error".
fn decide(patterns: &[String], path: &str) -> String {
    let text = patterns.join("\n");
    match Matcher::parse(&text) {
        Err(_) => "error".to_string(),
        Ok(m) => {
            if m.is_excluded(path) {
                "excluded".to_string()
            } else {
                "included".to_string()
            }
        }
    }
}

#[test]
fn every_row_of_cases_json() {
    let rows = load_json("cases.json");
    let rows = rows.as_array().expect("cases.json is a list");
    assert_eq!(rows.len(), 521, "the corpus README counts 521 rows");
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let patterns: Vec<String> = row["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .map(|p| p.as_str().expect("pattern").to_string())
            .collect();
        let path = row["path"].as_str().expect("path");
        let expected = row["expected"].as_str().expect("expected");
        let got = decide(&patterns, path);
        if got != expected {
            failures.push(format!(
                "row {} ({}): patterns {:?} path {:?}: expected {expected}, got {got}",
                i + 2,
                row["source"].as_str().unwrap_or(""),
                patterns,
                path
            ));
        }
    }
    report("cases.json rows", rows.len(), failures);
}

#[test]
fn cases_tsv_holds_the_same_rows_and_they_pass() {
    let text = std::fs::read_to_string(corpus("cases.tsv")).expect("cases.tsv");
    let json = load_json("cases.json");
    let json = json.as_array().expect("list");
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 3, "cases.tsv line {}: too few columns", i + 1);
        let patterns: Vec<String> = if cols[0].is_empty() {
            Vec::new()
        } else {
            cols[0].split(" ; ").map(str::to_string).collect()
        };
        let (path, expected) = (cols[1], cols[2]);
        let got = decide(&patterns, path);
        if got != expected {
            failures.push(format!(
                "cases.tsv line {}: patterns {patterns:?} path {path:?}: expected {expected}, got {got}",
                i + 1
            ));
        }
        let jp: Vec<String> = json[n]["patterns"]
            .as_array()
            .expect("patterns")
            .iter()
            .map(|p| p.as_str().expect("pattern").to_string())
            .collect();
        // an empty TSV field and the JSON list `[""]` are both a file without patterns
        let blank = |v: &[String]| v.iter().all(|p| p.is_empty());
        let same = jp == patterns || (blank(&jp) && blank(&patterns));
        if !same || json[n]["path"] != path {
            failures.push(format!(
                "cases.tsv line {}: differs from cases.json row",
                i + 1
            ));
        }
        n += 1;
    }
    assert_eq!(n, 521);
    report("cases.tsv rows", n, failures);
}

#[test]
fn every_row_of_compile_tsv_classifies_like_moby() {
    let text = std::fs::read_to_string(corpus("compile.tsv")).expect("compile.tsv");
    let mut failures = Vec::new();
    let mut n = 0;
    for (i, line) in text.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (pattern, kind) = (cols[0], cols[1]);
        n += 1;
        let m = match Matcher::from_patterns(&[pattern]) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("compile.tsv line {} `{pattern}`: {e}", i + 1));
                continue;
            }
        };
        let got = match m.patterns()[0].match_kind() {
            MatchKind::Exact => "exact",
            MatchKind::Prefix => "prefix",
            MatchKind::Suffix => "suffix",
            MatchKind::General => "regexp",
        };
        if got != kind {
            failures.push(format!(
                "compile.tsv line {} `{pattern}`: expected {kind}, got {got}",
                i + 1
            ));
        }
    }
    assert!(n >= 20);
    report("compile.tsv rows", n, failures);
}

/// The regular expressions of compile.tsv, checked by meaning: a few paths each must (not) match.
#[test]
fn compile_tsv_patterns_match_like_their_regexps() {
    let table: &[(&str, &[&str], &[&str])] = &[
        ("*", &["a", "file"], &["a/b"]),
        ("a*/b", &["a/b", "abc/b"], &["a/c/b", "b"]),
        ("**/**", &["a", "a/b/c"], &[]),
        (
            "**/dir2/*",
            &["dir2/x", "a/dir2/x"],
            &["dir2/x/y", "adir2/x"],
        ),
        ("**/dir2/**", &["dir2/x", "a/dir2/x/y"], &["dir2"]),
        (
            "**/file*txt",
            &["filetxt", "a/b/file1.txt"],
            &["a/file/txt"],
        ),
        ("**/**/*.txt", &["a.txt", "x/y/a.txt"], &["a.txt/b"]),
        ("a[b-d]e", &["abe", "ade"], &["aee", "a/e"]),
        (".*", &[".git", ".a"], &["a.b", ".a/b"]),
        ("abc?def", &["abcxdef"], &["abc/def", "abcdef"]),
        ("a.|)$(}+{bc", &["a.|)$(}+{bc"], &["a"]),
    ];
    let mut failures = Vec::new();
    for (pattern, yes, no) in table {
        let m = Matcher::from_patterns(&[*pattern]).expect("valid");
        let p = &m.patterns()[0];
        for path in *yes {
            if !p.matches(path) {
                failures.push(format!("`{pattern}` should match {path:?}"));
            }
        }
        for path in *no {
            if p.matches(path) {
                failures.push(format!("`{pattern}` should not match {path:?}"));
            }
        }
    }
    report("pattern checks", table.len(), failures);
}

#[test]
fn every_case_of_readall_cases_json() {
    let doc = load_json("readall-cases.json");
    let cases = doc["cases"].as_array().expect("cases");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let expected: Vec<String> = case["expected_patterns"]
            .as_array()
            .expect("expected_patterns")
            .iter()
            .map(|p| p.as_str().expect("pattern").to_string())
            .collect();
        let got: Vec<String> = match case["input"].as_str() {
            None => Vec::new(),
            Some(text) => read_lines(text).into_iter().map(|(_, p)| p).collect(),
        };
        if got != expected {
            failures.push(format!(
                "readall case {i} ({}): expected {expected:?}, got {got:?}",
                case["note"].as_str().unwrap_or("")
            ));
        }
    }
    report("readall cases", cases.len(), failures);
}

#[test]
fn the_deciding_line_is_reported() {
    let m = Matcher::parse("# comment\n\nsrc\n!src/keep\n*.md\n").expect("valid");
    assert_eq!(m.excluded_by("src/a.rs").map(|p| p.line), Some(3));
    assert_eq!(m.excluded_by("src").map(|p| p.line), Some(3));
    assert!(m.excluded_by("src/keep").is_none());
    assert_eq!(m.verdict("src/keep").map(|v| v.pattern.line), Some(4));
    assert_eq!(m.excluded_by("README.md").map(|p| p.line), Some(5));
    assert!(m.excluded_by("docs/README.md").is_none());
}

#[test]
fn errors_name_their_line() {
    let e = Matcher::parse("a\n\n!\n").expect_err("lone !");
    assert_eq!(e.to_string(), "line 3: illegal exclusion pattern: \"!\"");
    let e = Matcher::parse("ok\n[\n").expect_err("unclosed class");
    assert_eq!(e.to_string(), "line 2: syntax error in pattern `[`");
    for bad in ["a\\", "[a-b-c]", "[]", "[^]", "[a-]", "x[", "[\\"] {
        assert!(Matcher::parse(bad).is_err(), "{bad:?} must be rejected");
    }
    for good in ["[]a]x", "\\[", "[\\]]", "[^a]", "a]"] {
        let r = Matcher::parse(good);
        if good == "[]a]x" {
            assert!(r.is_err(), "Go rejects a class opening with `]`");
        } else {
            assert!(r.is_ok(), "{good:?} must be accepted: {r:?}");
        }
    }
}

#[test]
fn skipping_excluded_directories_is_safe() {
    let m = Matcher::parse("dir\n!dir/e*\n").expect("valid");
    assert!(m.may_include_below("dir"));
    assert!(!m.may_include_below("other"));
    let m = Matcher::parse("dir\n!**/*.cc\n").expect("valid");
    assert!(m.may_include_below("dir"));
    let m = Matcher::parse("**/bar\n!foo/bar/baz\n").expect("valid");
    assert!(m.may_include_below("foo/bar"));
    assert!(!m.may_include_below("x/bar"));
    let m = Matcher::parse("a\n!b/[xy]*\n").expect("valid");
    assert!(!m.may_include_below("a"));
    assert!(m.may_include_below("b"));
}
