//! Corpus-driven tests of the Dockerfile front end against BuildKit's parser and shell-lexer test
//! data and against real-world and Buildah conformance Dockerfiles (`fixtures/dockerfile/`).
//! Every case is checked; a failure lists every failing case, not only the first.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use hoist::dockerfile::{self, lines, shell, Instruction};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/dockerfile")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

fn json(p: &str) -> Value {
    serde_json::from_str(&read(&fixtures().join(p))).expect("fixture JSON parses")
}

fn dirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(p)
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn report(failures: &[String], total: usize, what: &str) {
    if !failures.is_empty() {
        panic!(
            "{} of {total} {what} failed:\n{}\n{}\n{}",
            failures.len(),
            "-".repeat(60),
            failures.join(&format!("\n{}\n", "-".repeat(60))),
            "-".repeat(60)
        );
    }
}

#[test]
fn buildkit_testfiles_dump_exactly_as_result() {
    let cases = dirs(&fixtures().join("buildkit-parser/testfiles"));
    assert_eq!(cases.len(), 33, "the corpus has 33 positive cases");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let text = read(&case.join("Dockerfile"));
        let want = read(&case.join("result"));
        match lines::parse(&text, "Dockerfile") {
            Ok(raw) => {
                let got = raw.dump();
                if got != want {
                    failures.push(format!("{name}\nexpected:\n{want}\nactual:\n{got}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    report(&failures, cases.len(), "buildkit testfiles");
}

#[test]
fn buildkit_negative_testfiles_are_errors() {
    let cases = dirs(&fixtures().join("buildkit-parser/testfiles-negative"));
    assert_eq!(cases.len(), 4);
    let expect: BTreeMap<&str, &str> = [
        ("empty_dockerfile", "file has no instructions"),
        ("only_comments", "file has no instructions"),
        ("env_no_value", "ENV `PATH` has no value"),
        (
            "shykes-nested-json",
            "CMD JSON array must hold only strings",
        ),
    ]
    .into_iter()
    .collect();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        let text = read(&case.join("Dockerfile"));
        match lines::parse(&text, "Dockerfile") {
            Ok(raw) => failures.push(format!("{name}: parsed, dump:\n{}", raw.dump())),
            Err(e) => {
                let want = expect.get(name.as_str()).expect("known negative case");
                if !e.message().contains(want) {
                    failures.push(format!("{name}: expected `{want}`, got `{e}`"));
                }
            }
        }
        // The typed parser refuses them too.
        if dockerfile::parse(&text, "Dockerfile").is_ok() {
            failures.push(format!("{name}: typed parse accepted it"));
        }
    }
    report(&failures, cases.len(), "negative cases");
}

#[test]
fn buildkit_line_numbers() {
    let facts = json("buildkit-parser/extra/parser-extra.json");
    let text = read(&fixtures().join("buildkit-parser/testfile-line/Dockerfile"));
    let raw = lines::parse(&text, "Dockerfile").expect("testfile-line parses");
    let children = facts["line_numbers"]["children"]
        .as_array()
        .expect("children");
    assert_eq!(raw.nodes.len(), children.len());
    for (node, want) in raw.nodes.iter().zip(children) {
        assert_eq!(
            node.span.line as u64,
            want["start_line"].as_u64().expect("start")
        );
        assert_eq!(
            node.span.end_line as u64,
            want["end_line"].as_u64().expect("end")
        );
    }
}

#[test]
fn buildkit_parse_words() {
    let facts = json("buildkit-parser/extra/parser-extra.json");
    for case in facts["parse_words"]["cases"].as_array().expect("cases") {
        let input = case["input"].as_str().expect("input");
        let want: Vec<&str> = case["words"]
            .as_array()
            .expect("words")
            .iter()
            .map(|w| w.as_str().expect("word"))
            .collect();
        let got: Vec<String> = lines::parse_words(input, '\\')
            .into_iter()
            .map(|w| w.0)
            .collect();
        assert_eq!(got, want, "{input}");
    }
}

#[test]
fn buildkit_empty_continuation_warnings() {
    let facts = json("buildkit-parser/extra/parser-extra.json");
    let w = &facts["empty_continuation_warnings"];
    let raw = lines::parse(w["dockerfile"].as_str().expect("text"), "Dockerfile").expect("parses");
    assert_eq!(
        raw.warnings.len() as u64,
        w["warning_count"].as_u64().expect("count")
    );
    for (warning, want) in raw
        .warnings
        .iter()
        .zip(w["warning_contains"].as_array().expect("list"))
    {
        let want = want.as_str().expect("text");
        assert!(
            warning.message.contains(want),
            "{} lacks {want}",
            warning.message
        );
        assert!(warning.message.contains("empty continuation line"));
    }
}

#[test]
fn buildkit_line_too_long() {
    let text = format!("\n\t\tFROM image\n\t\tLABEL test={}\n", "a".repeat(65536));
    let e = lines::parse(&text, "Dockerfile").expect_err("line too long");
    assert_eq!((e.line, e.column), (3, 1));
    assert!(e.message().contains("65535"), "{e}");
}

#[test]
fn buildkit_directives() {
    let facts = json("buildkit-parser/extra/directives.json");
    for case in facts["parse_all"]["cases"].as_array().expect("cases") {
        let raw = lines::parse(
            &format!("{}FROM x\n", case["input"].as_str().expect("input")),
            "D",
        )
        .expect("parses");
        let d = &case["directives"][0];
        assert_eq!(d["name"], "escape");
        let esc = raw
            .directives
            .escape_directive
            .expect("escape directive")
            .value;
        assert_eq!(esc, d["value"].as_str().expect("value"));
        assert!(raw.directives.syntax.is_none() && raw.directives.check.is_none());
    }
    // Only ` and \ are escape tokens.
    let e = lines::parse("# escape=x\nFROM a\n", "Dockerfile").expect_err("bad escape");
    assert_eq!((e.line, e.column), (1, 10));
    // A BOM before a directive is skipped.
    let raw = lines::parse("\u{feff}# syntax = myfrontend\nFROM busybox\n", "D").expect("parses");
    assert_eq!(raw.directives.syntax.expect("syntax").value, "myfrontend");
    // A check directive with an options comment keeps the whole value.
    let raw = lines::parse("#check = skip=all // opts\nFROM busybox\n", "D").expect("parses");
    assert_eq!(
        raw.directives.check.expect("check").value,
        "skip=all // opts"
    );
    // A blank line ends the directive block.
    let raw = lines::parse("#!/bin/sh\n\n# check = skip=all\nFROM a\n", "D").expect("parses");
    assert!(raw.directives.check.is_none());
}

#[test]
fn buildkit_json_arrays() {
    let facts = json("buildkit-parser/extra/json-arrays.json");
    for case in facts["valid"].as_array().expect("valid") {
        let input = case["input"].as_str().expect("input");
        let raw = lines::parse(&format!("CMD {input}"), "D").expect("parses");
        let want: Vec<&str> = case["values"]
            .as_array()
            .expect("values")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect();
        assert!(raw.nodes[0].json, "{input}");
        assert_eq!(raw.nodes[0].args, want, "{input}");
    }
    for input in facts["not_string_array"].as_array().expect("list") {
        let input = input.as_str().expect("input");
        let e = lines::parse(&format!("FROM a\nCMD {input}"), "D").expect_err(input);
        assert_eq!((e.line, e.column), (2, 5), "{input}");
    }
}

#[derive(Debug, PartialEq)]
struct Doc {
    name: String,
    content: String,
    expand: bool,
    chomp: bool,
    fd: u32,
}

fn docs(list: &[dockerfile::Heredoc]) -> Vec<Doc> {
    list.iter()
        .map(|h| Doc {
            name: h.name.clone(),
            content: h.content.clone(),
            expand: h.expand,
            chomp: h.chomp,
            fd: h.fd,
        })
        .collect()
}

#[test]
fn buildkit_heredoc_extract() {
    let facts = json("buildkit-parser/extra/heredoc.json");
    let text = read(&fixtures().join("buildkit-parser/extra/heredoc-extract.Dockerfile"));
    let raw = lines::parse(&text, "Dockerfile").expect("parses");
    let mut checked = 0;
    for exp in facts["extract"]["expected"].as_array().expect("expected") {
        let idx = exp["ast_child_index"].as_u64().expect("index") as usize;
        let want: Vec<Doc> = exp["heredocs"]
            .as_array()
            .expect("heredocs")
            .iter()
            .map(|h| Doc {
                name: h["name"].as_str().expect("name").into(),
                content: h["content"].as_str().expect("content").into(),
                expand: h["expand"].as_bool().expect("expand"),
                chomp: h["chomp"].as_bool().expect("chomp"),
                fd: h["file_descriptor"].as_u64().expect("fd") as u32,
            })
            .collect();
        assert_eq!(docs(&raw.nodes[idx].heredocs), want, "child {idx}");
        checked += 1;
    }
    assert_eq!(checked, 27);
    // JSON form never has heredocs.
    let j = &facts["json_form_never_heredoc"];
    let raw = lines::parse(j["dockerfile"].as_str().expect("text"), "D").expect("parses");
    assert!(raw.nodes.iter().all(|n| n.heredocs.is_empty()));
    assert_eq!(raw.nodes.len(), 4);
}

#[test]
fn buildkit_heredoc_words_and_lines() {
    let facts = json("buildkit-parser/extra/heredoc.json");
    let d = &facts["delimiter_words"];
    for w in d["valid_name_EOF"].as_array().expect("valid") {
        let w = w.as_str().expect("word");
        let doc = lines::parse_heredoc_word(w).expect(w).expect(w);
        assert_eq!(doc.name, "EOF", "{w}");
    }
    for w in d["invalid_error"].as_array().expect("invalid") {
        assert!(
            lines::parse_heredoc_word(w.as_str().expect("word")).is_err(),
            "{w}"
        );
    }
    for w in d["not_heredoc"].as_array().expect("not") {
        let w = w.as_str().expect("word");
        assert!(lines::parse_heredoc_word(w).expect(w).is_none(), "{w}");
    }
    for case in facts["heredocs_from_line"]["cases"]
        .as_array()
        .expect("cases")
    {
        let line = case["line"].as_str().expect("line");
        let want: Vec<String> = match case["names"].as_array() {
            Some(names) => names
                .iter()
                .map(|n| n.as_str().expect("n").to_string())
                .collect(),
            None => Vec::new(),
        };
        // Give every heredoc a terminator line so the parse succeeds.
        let text = format!(
            "{line}\n{}",
            want.iter().map(|n| format!("{n}\n")).collect::<String>()
        );
        let raw = lines::parse(&text, "D").expect(line);
        let got: Vec<String> = raw.nodes[0]
            .heredocs
            .iter()
            .map(|h| h.name.clone())
            .collect();
        assert_eq!(got, want, "{line}");
    }
    let chomp = &facts["chomp"];
    let doc = dockerfile::Heredoc {
        name: "EOF".into(),
        content: chomp["input"].as_str().expect("input").into(),
        expand: true,
        chomp: true,
        fd: 0,
        span: Default::default(),
    };
    assert_eq!(doc.body(), chomp["output"].as_str().expect("output"));
}

#[test]
fn buildkit_heredoc_copy_and_run() {
    let facts = json("buildkit-parser/extra/heredoc.json");
    for case in facts["copy_instruction"]["cases"]
        .as_array()
        .expect("cases")
    {
        let text = format!(
            "FROM scratch\n{}",
            case["dockerfile"].as_str().expect("text")
        );
        let df = dockerfile::parse(&text, "Dockerfile").expect(&text);
        let Instruction::Copy(c) = &df.stages[0].instructions[0].value else {
            panic!("not a COPY: {text}");
        };
        assert_eq!(c.dest.value, case["dest"].as_str().expect("dest"));
        let paths: Vec<&str> = c.sources.iter().map(|s| s.value.as_str()).collect();
        let want: Vec<&str> = case["source_paths"]
            .as_array()
            .expect("paths")
            .iter()
            .map(|p| p.as_str().expect("p"))
            .collect();
        assert_eq!(paths, want, "{text}");
        let contents: Vec<(String, String, bool)> = c
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.body(), h.expand))
            .collect();
        let want: Vec<(String, String, bool)> = case["source_contents"]
            .as_array()
            .expect("contents")
            .iter()
            .map(|s| {
                (
                    s["path"].as_str().expect("path").into(),
                    s["data"].as_str().expect("data").into(),
                    s["expand"].as_bool().expect("expand"),
                )
            })
            .collect();
        assert_eq!(contents, want, "{text}");
    }
    for case in facts["copy_instruction"]["error_cases"]
        .as_array()
        .expect("errors")
    {
        let text = format!(
            "FROM scratch\n{}",
            case["dockerfile"].as_str().expect("text")
        );
        let e = dockerfile::parse(&text, "Dockerfile").expect_err(&text);
        assert!(
            e.message()
                .contains("cannot take a heredoc as its destination"),
            "{e}"
        );
        assert_eq!((e.line, e.column), (2, 11));
    }
    for case in facts["run_instruction"]["cases"].as_array().expect("cases") {
        let text = format!(
            "FROM scratch\n{}",
            case["dockerfile"].as_str().expect("text")
        );
        let df = dockerfile::parse(&text, "Dockerfile").expect(&text);
        let Instruction::Run(r) = &df.stages[0].instructions[0].value else {
            panic!("not a RUN: {text}");
        };
        let want: Vec<String> = case["command"]
            .as_array()
            .expect("command")
            .iter()
            .map(|c| c.as_str().expect("c").to_string())
            .collect();
        match (&r.command, case["shell_form"].as_bool().expect("form")) {
            (dockerfile::ShellOrExec::Shell(s), true) => assert_eq!(vec![s.clone()], want),
            (dockerfile::ShellOrExec::Exec(argv), false) => assert_eq!(argv, &want),
            (other, _) => panic!("{text}: wrong form {other:?}"),
        }
        let files: Vec<(String, String, bool)> = r
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.content.clone(), h.chomp))
            .collect();
        let want: Vec<(String, String, bool)> = case["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| {
                (
                    f["name"].as_str().expect("name").into(),
                    f["data"].as_str().expect("data").into(),
                    f["chomp"].as_bool().expect("chomp"),
                )
            })
            .collect();
        assert_eq!(files, want, "{text}");
    }
}

/// BuildKit's instruction-level errors, each with hoist's wording and position.
#[test]
fn buildkit_instruction_errors() {
    let facts = json("buildkit-parser/extra/instruction-errors.json");
    let ours: BTreeMap<&str, (&str, usize, usize)> = [
        (
            "MAINTAINER",
            ("MAINTAINER needs exactly one argument", 2, 1),
        ),
        ("WORKDIR", ("WORKDIR needs exactly one argument", 2, 1)),
        ("USER", ("USER needs exactly one argument", 2, 1)),
        (
            "STOPSIGNAL",
            ("STOPSIGNAL needs exactly one argument", 2, 1),
        ),
        ("ENV", ("ENV needs at least one argument", 2, 1)),
        ("LABEL", ("LABEL needs at least one argument", 2, 1)),
        ("ONBUILD", ("ONBUILD needs an instruction", 2, 1)),
        (
            "HEALTHCHECK",
            ("HEALTHCHECK needs at least one argument", 2, 1),
        ),
        ("EXPOSE", ("EXPOSE needs at least one argument", 2, 1)),
        ("VOLUME", ("VOLUME needs at least one argument", 2, 1)),
        ("ADD arg1", ("ADD needs at least two arguments", 2, 5)),
        ("COPY arg1", ("COPY needs at least two arguments", 2, 6)),
        (
            "COPY\t\n\t\tquux \\\n      bar",
            ("COPY needs at least two arguments", 2, 1),
        ),
        (
            "ONBUILD FROM scratch",
            ("FROM is not allowed as an ONBUILD trigger", 2, 9),
        ),
        (
            "MAINTAINER --boo joe@example.com",
            ("unknown flag `--boo` for MAINTAINER", 2, 12),
        ),
        (
            "ONBUILD ONBUILD RUN touch foobar",
            (
                "chaining ONBUILD via `ONBUILD ONBUILD` is not allowed",
                2,
                9,
            ),
        ),
        ("FOO bar", ("unknown instruction FOO", 2, 1)),
        ("foo bar", ("unknown instruction foo", 2, 1)),
        (
            "COPY /foo <<EOF\nEOF",
            ("COPY cannot take a heredoc as its destination", 2, 11),
        ),
    ]
    .into_iter()
    .collect();
    let cases = facts["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), ours.len());
    let mut failures = Vec::new();
    for case in cases {
        let body = case["dockerfile"].as_str().expect("text");
        let (msg, line, col) = ours
            .get(body)
            .unwrap_or_else(|| panic!("no expectation for {body:?}"));
        match dockerfile::parse(&format!("FROM scratch\n{body}"), "Dockerfile") {
            Ok(_) => failures.push(format!("{body:?}: parsed")),
            Err(e) => {
                if !e.message().contains(msg) || (e.line, e.column) != (*line, *col) {
                    failures.push(format!("{body:?}: expected {line}:{col} `{msg}`, got {e}"));
                }
            }
        }
    }
    report(&failures, cases.len(), "instruction error cases");
}

fn shell_env() -> impl Fn(&str) -> Option<String> {
    |name: &str| match name {
        "PWD" => Some("/home".into()),
        "SHELL" => Some("bash".into()),
        "KOREAN" => Some("한국어".into()),
        "NULL" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn shell_lex_env_var_test() {
    let text = read(&fixtures().join("shell-lex/envVarTest"));
    let env = shell_env();
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(fields.len(), 3, "{line}");
        if fields[0] == "W" {
            continue;
        }
        total += 1;
        let got = shell::expand(fields[1], &env);
        let ok = match (&got, fields[2]) {
            (Err(_), "error") => true,
            (Ok(v), want) => want != "error" && v == want,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected `{}`, got {got:?}",
                fields[1], fields[2]
            ));
        }
    }
    assert_eq!(total, 228, "226 A lines and 2 U lines");
    report(&failures, total, "envVarTest vectors");
}

#[test]
fn shell_lex_words_test() {
    let text = read(&fixtures().join("shell-lex/wordsTest"));
    let mut env: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut total = 0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            let (k, v) = rest.trim_start().split_once('=').expect("NAME=VALUE");
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v.to_string()));
            continue;
        }
        let (input, expected) = line.split_once('|').expect("INPUT | EXPECTED");
        let input = input.trim();
        let expected = expected.trim_start();
        total += 1;
        let snapshot = env.clone();
        let lookup = move |n: &str| {
            snapshot
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let got = shell::expand_words(input, &lookup);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(words), want) => {
                want != "error" && words.iter().map(String::as_str).eq(want.split(','))
            }
            _ => false,
        };
        if !ok {
            failures.push(format!("{input}: expected {expected:?}, got {got:?}"));
        }
    }
    assert_eq!(total, 24);
    report(&failures, total, "wordsTest vectors");
}

fn env_of(v: &Value) -> impl Fn(&str) -> Option<String> {
    let map: BTreeMap<String, String> = v
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_string()))
                .collect()
        })
        .unwrap_or_default();
    move |n: &str| map.get(n).cloned()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|s| s.as_str().expect("name").to_string())
        .collect()
}

#[test]
fn shell_lex_process_with_matches() {
    let facts = json("shell-lex/process-with-matches.json");
    let lexer = shell::Lexer::new('\\');
    let mut failures = Vec::new();
    let cases = facts["process_word_with_matches"]
        .as_array()
        .expect("cases");
    for case in cases {
        let input = case["input"].as_str().expect("input");
        let env = env_of(&case["env"]);
        let got = lexer.expand_with_matches(input, &env);
        if case["error"].as_bool() == Some(true) {
            if got.is_ok() {
                failures.push(format!("{input}: expected an error, got {got:?}"));
            }
            continue;
        }
        match got {
            Ok(e) => {
                let m: Vec<String> = e.matched.into_iter().collect();
                let u: Vec<String> = e.unmatched.into_iter().collect();
                if e.value != case["expected"].as_str().expect("expected")
                    || m != names(&case["matched"])
                    || u != names(&case["unmatched"])
                {
                    failures.push(format!(
                        "{input}: got {:?} {m:?} {u:?}, want {case}",
                        e.value
                    ));
                }
            }
            Err(e) => failures.push(format!("{input}: unexpected error {e}")),
        }
    }
    for case in facts["required_variables"]["cases"]
        .as_array()
        .expect("cases")
    {
        let input = case["input"].as_str().expect("input");
        let got = shell::expand(input, &env_of(&case["env"]));
        match (
            got,
            case["expected"].as_str(),
            case["error_contains"].as_str(),
        ) {
            (Ok(v), Some(want), _) if v == want => {}
            (Err(e), _, Some(want)) if e.to_string().contains(want) => {}
            (got, _, _) => failures.push(format!("{input}: got {got:?}, want {case}")),
        }
    }
    let p = &facts["platform_filename_example"];
    for case in p["cases"].as_array().expect("cases") {
        let got = shell::expand(p["input"].as_str().expect("input"), &env_of(&case["env"]));
        assert_eq!(
            got.as_deref(),
            Ok(case["expected"].as_str().expect("expected"))
        );
    }
    report(&failures, cases.len(), "ProcessWordWithMatches vectors");
}

fn typed_parse_all(paths: &[PathBuf], failures: &mut Vec<String>) {
    for p in paths {
        let text = read(p);
        let name = p.file_name().expect("name").to_string_lossy().to_string();
        if let Err(e) = dockerfile::parse(&text, &name) {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
}

#[test]
fn real_world_dockerfiles_parse() {
    let mut paths: Vec<PathBuf> = fs::read_dir(fixtures().join("real-world/files"))
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 48);
    let mut failures = Vec::new();
    typed_parse_all(&paths, &mut failures);
    report(&failures, paths.len(), "real-world Dockerfiles");
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn buildah_conformance_dockerfiles_parse() {
    let mut paths = Vec::new();
    walk(&fixtures().join("buildah-conformance/testdata"), &mut paths);
    paths.sort();
    assert_eq!(paths.len(), 91);
    let mut failures = Vec::new();
    typed_parse_all(&paths, &mut failures);
    let cases = json("buildah-conformance/cases.json");
    let mut inline = 0;
    for case in cases["cases"].as_array().expect("cases") {
        if let Some(text) = case["dockerfile_contents"].as_str() {
            inline += 1;
            if let Err(e) = dockerfile::parse(text, "Dockerfile") {
                failures.push(format!("inline case {}: {e}", case["name"]));
            }
        }
    }
    assert_eq!(inline, 90);
    report(
        &failures,
        paths.len() + inline,
        "buildah conformance Dockerfiles",
    );
}

/// Cases Buildah expects to fail at a given line because an expansion fails there: hoist
/// parses them (as Docker does) and the failure comes from the expander at that line.
#[test]
fn buildah_expansion_failures_come_from_the_expander() {
    let text = read(&fixtures().join("buildah-conformance/testdata/Dockerfile.env"));
    let df = dockerfile::parse(&text, "Dockerfile.env").expect("parses");
    let env = |_: &str| None;
    let mut failing_lines = Vec::new();
    for ins in &df.stages[0].instructions {
        if let Instruction::Env(kvs) = &ins.value {
            for kv in kvs {
                if shell::expand(&kv.value, &env).is_err() {
                    failing_lines.push(ins.span.line);
                }
            }
        }
    }
    // Line 12 (`ENV name='a\'b'`) is the first failure Buildah expects.
    assert_eq!(failing_lines.first(), Some(&12));
}
