//! BuildKit's build checks through the real binary (`hoist build --check`, `# check=`, warnings
//! printed before a build). Each rule is tested with the good and bad examples of its page in
//! the Build checks reference (docs.docker.com/reference/build-checks/RULE, vendored by
//! moby/buildkit as `frontend/dockerfile/docs/rules/*.md`); where BuildKit's source
//! (`dockerfile2llb/validations.go`, `convert.go`) is more precise than the page, the case says so.

mod common;

use std::fs;

use common::TestEnv;

/// (rule, line) of every warning `hoist build --check` printed, and its exit status.
fn check_in(env: &TestEnv, dockerfile: &str, ignore: Option<&str>) -> (Vec<(String, usize)>, i32) {
    let dir = env.path("ctx");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("ctx");
    fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    if let Some(i) = ignore {
        fs::write(dir.join(".dockerignore"), i).expect(".dockerignore");
    }
    let mut cmd = env.cmd(["build", "--check", "ctx"]);
    let out = common::run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut found = Vec::new();
    for l in stderr.lines() {
        let Some(rest) = l.strip_prefix("WARNING: Dockerfile:") else {
            continue;
        };
        let mut parts = rest.splitn(4, ':');
        let line: usize = parts.next().and_then(|n| n.parse().ok()).expect("line");
        let _col = parts.next();
        let rule = parts.next().expect("rule").trim().to_string();
        found.push((rule, line));
    }
    (found, out.status.code().unwrap_or(-1))
}

fn check(dockerfile: &str) -> Vec<(String, usize)> {
    check_in(&TestEnv::new(), dockerfile, None).0
}

fn rules(found: &[(String, usize)]) -> Vec<&str> {
    found.iter().map(|(r, _)| r.as_str()).collect()
}

/// One reference example: the Dockerfile and the warnings (rule, line) it must give — no
/// more, no fewer.
struct Case {
    page: &'static str,
    dockerfile: &'static str,
    want: &'static [(&'static str, usize)],
}

fn run_table(cases: &[Case]) {
    for c in cases {
        let got = check(c.dockerfile);
        let want: Vec<(String, usize)> = c.want.iter().map(|(r, l)| (r.to_string(), *l)).collect();
        assert_eq!(got, want, "{}:\n{}", c.page, c.dockerfile);
    }
}

#[test]
fn reference_examples_of_each_rule() {
    run_table(&[
        // stage-name-casing
        Case {
            page: "stage-name-casing bad",
            dockerfile: "FROM alpine AS BuilderBase\n",
            want: &[("StageNameCasing", 1)],
        },
        Case {
            page: "stage-name-casing good",
            dockerfile: "FROM alpine AS builder-base\n",
            want: &[],
        },
        // from-as-casing
        Case {
            page: "from-as-casing bad",
            dockerfile: "FROM debian:latest as builder\n",
            want: &[("FromAsCasing", 1)],
        },
        Case {
            page: "from-as-casing good (upper)",
            dockerfile: "FROM debian:latest AS deb-builder\n",
            want: &[],
        },
        Case {
            page: "from-as-casing good (lower)",
            dockerfile: "from debian:latest as deb-builder\n",
            want: &[],
        },
        // no-empty-continuation
        Case {
            page: "no-empty-continuation bad",
            dockerfile: "FROM alpine\nEXPOSE \\\n\n80\n",
            want: &[("NoEmptyContinuation", 2)],
        },
        Case {
            page: "no-empty-continuation good",
            dockerfile: "FROM alpine\nEXPOSE \\\n# Port\n80\n",
            want: &[],
        },
        // consistent-instruction-casing
        Case {
            page: "consistent-instruction-casing bad",
            dockerfile: "From alpine\nRun echo hello > /greeting.txt\nEntRYpOiNT [\"cat\", \"/greeting.txt\"]\n",
            want: &[
                ("ConsistentInstructionCasing", 1),
                ("ConsistentInstructionCasing", 2),
                ("ConsistentInstructionCasing", 3),
            ],
        },
        Case {
            page: "consistent-instruction-casing good (upper)",
            dockerfile: "FROM alpine\nRUN echo hello > /greeting.txt\nENTRYPOINT [\"cat\", \"/greeting.txt\"]\n",
            want: &[],
        },
        Case {
            page: "consistent-instruction-casing good (lower)",
            dockerfile: "from alpine\nrun echo hello > /greeting.txt\nentrypoint [\"cat\", \"/greeting.txt\"]\n",
            want: &[],
        },
        // duplicate-stage-name
        Case {
            page: "duplicate-stage-name bad",
            dockerfile: "FROM debian:latest AS builder\nRUN apt-get update; apt-get install -y curl\nFROM golang:latest AS builder\n",
            want: &[("DuplicateStageName", 3)],
        },
        Case {
            page: "duplicate-stage-name good",
            dockerfile: "FROM debian:latest AS deb-builder\nRUN apt-get update; apt-get install -y curl\nFROM golang:latest AS go-builder\n",
            want: &[],
        },
        // reserved-stage-name
        Case {
            page: "reserved-stage-name bad",
            dockerfile: "FROM alpine AS scratch\nFROM alpine AS context\n",
            want: &[("ReservedStageName", 1), ("ReservedStageName", 2)],
        },
        Case {
            page: "reserved-stage-name good",
            dockerfile: "FROM alpine AS builder\n",
            want: &[],
        },
        // json-args-recommended
        Case {
            page: "json-args-recommended bad",
            dockerfile: "FROM alpine\nENTRYPOINT my-program start\n",
            want: &[("JSONArgsRecommended", 2)],
        },
        Case {
            page: "json-args-recommended good",
            dockerfile: "FROM alpine\nENTRYPOINT [\"my-program\", \"start\"]\n",
            want: &[],
        },
        Case {
            page: "json-args-recommended good (wrapper script)",
            dockerfile: "FROM alpine\nRUN apk add bash\nCOPY --chmod=755 <<EOT /entrypoint.sh\n#!/usr/bin/env bash\nset -e\nmy-background-process &\nmy-program start\nEOT\nENTRYPOINT [\"/entrypoint.sh\"]\n",
            want: &[],
        },
        Case {
            page: "json-args-recommended good (explicit SHELL)",
            dockerfile: "FROM alpine\nRUN apk add bash\nSHELL [\"/bin/bash\", \"-c\"]\nENTRYPOINT echo \"hello world\"\n",
            want: &[],
        },
        // maintainer-deprecated
        Case {
            page: "maintainer-deprecated bad",
            dockerfile: "FROM alpine\nMAINTAINER moby@example.com\n",
            want: &[("MaintainerDeprecated", 2)],
        },
        Case {
            page: "maintainer-deprecated good",
            dockerfile: "FROM alpine\nLABEL org.opencontainers.image.authors=\"moby@example.com\"\n",
            want: &[],
        },
        // undefined-arg-in-from
        Case {
            page: "undefined-arg-in-from bad",
            dockerfile: "FROM node:22${VARIANT} AS jsbuilder\n",
            want: &[("UndefinedArgInFrom", 1)],
        },
        Case {
            page: "undefined-arg-in-from good",
            dockerfile: "ARG VARIANT=\"-alpine3.20\"\nFROM node:22${VARIANT} AS jsbuilder\n",
            want: &[],
        },
        // workdir-relative-path
        Case {
            page: "workdir-relative-path bad",
            dockerfile: "FROM nginx AS web\nWORKDIR usr/share/nginx/html\nCOPY public .\n",
            want: &[("WorkdirRelativePath", 2)],
        },
        Case {
            page: "workdir-relative-path good",
            dockerfile: "FROM nginx AS web\nWORKDIR /usr/share/nginx/html\nCOPY public .\n",
            want: &[],
        },
        // multiple-instructions-disallowed: the earlier, ignored one is reported
        Case {
            page: "multiple-instructions-disallowed bad",
            dockerfile: "FROM alpine\nENTRYPOINT [\"echo\", \"Hello, Norway!\"]\nENTRYPOINT [\"echo\", \"Hello, Sweden!\"]\n# Only \"Hello, Sweden!\" will be printed\n",
            want: &[("MultipleInstructionsDisallowed", 2)],
        },
        Case {
            page: "multiple-instructions-disallowed good",
            dockerfile: "FROM alpine\nENTRYPOINT [\"echo\", \"Hello, Norway!\\nHello, Sweden!\"]\n",
            want: &[],
        },
        Case {
            page: "multiple-instructions-disallowed good (HEALTHCHECK CMD)",
            dockerfile: "FROM python:alpine\nRUN apk add curl\nHEALTHCHECK --interval=1s --timeout=3s \\\n  CMD [\"curl\", \"-f\", \"http://localhost:8080\"]\nCMD [\"python\", \"-m\", \"http.server\", \"8080\"]\n",
            want: &[],
        },
        // legacy-key-value-format (BuildKit checks ENV and LABEL; `ARG foo bar` is a
        // parse error there and here)
        Case {
            page: "legacy-key-value-format bad (multi-line ENV)",
            dockerfile: "FROM alpine\nENV DEPS \\\n    curl \\\n    git \\\n    make\n",
            want: &[("LegacyKeyValueFormat", 2)],
        },
        Case {
            page: "legacy-key-value-format good",
            dockerfile: "FROM alpine\nARG foo=bar\nENV DEPS=\"\\\n    curl \\\n    git \\\n    make\"\n",
            want: &[],
        },
        // redundant-target-platform
        Case {
            page: "redundant-target-platform bad",
            dockerfile: "FROM --platform=$TARGETPLATFORM alpine AS builder\nRUN apk add --no-cache git\n",
            want: &[("RedundantTargetPlatform", 1)],
        },
        Case {
            page: "redundant-target-platform good",
            dockerfile: "FROM alpine AS builder\nRUN apk add --no-cache git\n",
            want: &[],
        },
        // secrets-used-in-arg-or-env
        Case {
            page: "secrets-used-in-arg-or-env bad",
            dockerfile: "FROM alpine\nARG AWS_ACCESS_KEY_ID\nARG AWS_SECRET_ACCESS_KEY\nRUN aws s3 cp s3://my-bucket/file .\n",
            want: &[
                ("SecretsUsedInArgOrEnv", 2),
                ("SecretsUsedInArgOrEnv", 3),
            ],
        },
        Case {
            page: "secrets-used-in-arg-or-env good (allow list: public, file, version)",
            dockerfile: "FROM alpine\nARG PUBLIC_KEY\nENV GPG_KEY_FILE=/k NODE_VERSION=1 MONKEY=1\n",
            want: &[],
        },
        // invalid-default-arg-in-from
        Case {
            page: "invalid-default-arg-in-from bad",
            dockerfile: "ARG TAG\nFROM busybox:${TAG}\n",
            want: &[("InvalidDefaultArgInFrom", 2)],
        },
        Case {
            page: "invalid-default-arg-in-from good (default)",
            dockerfile: "ARG TAG=latest\nFROM busybox:${TAG}\n",
            want: &[],
        },
        Case {
            page: "invalid-default-arg-in-from good (empty is valid)",
            dockerfile: "ARG VARIANT\nFROM busybox:stable${VARIANT}\n",
            want: &[],
        },
        Case {
            page: "invalid-default-arg-in-from good (:-)",
            dockerfile: "ARG TAG\nFROM alpine:${TAG:-3.14}\n",
            want: &[],
        },
        // from-platform-flag-const-disallowed
        Case {
            page: "from-platform-flag-const-disallowed bad",
            dockerfile: "FROM --platform=linux/amd64 alpine AS base\nRUN apk add --no-cache git\n",
            want: &[("FromPlatformFlagConstDisallowed", 1)],
        },
        Case {
            page: "from-platform-flag-const-disallowed good (meta variable)",
            dockerfile: "FROM --platform=${BUILDPLATFORM} alpine AS base\nRUN apk add --no-cache git\n",
            want: &[],
        },
        Case {
            page: "from-platform-flag-const-disallowed good (named after the arch)",
            dockerfile: "FROM --platform=linux/amd64 alpine AS build_amd64\nFROM --platform=linux/arm64 alpine AS build_arm64\nFROM build_${TARGETARCH} AS build\n",
            want: &[],
        },
        // expose-proto-casing, expose-invalid-format
        Case {
            page: "expose-proto-casing bad",
            dockerfile: "FROM alpine\nEXPOSE 80/TcP\n",
            want: &[("ExposeProtoCasing", 2)],
        },
        Case {
            page: "expose-proto-casing good",
            dockerfile: "FROM alpine\nEXPOSE 80/tcp\n",
            want: &[],
        },
        Case {
            page: "expose-invalid-format bad (IP and host port)",
            dockerfile: "FROM alpine\nEXPOSE 127.0.0.1:80:80\n",
            want: &[("ExposeInvalidFormat", 2)],
        },
        Case {
            page: "expose-invalid-format bad (host port)",
            dockerfile: "FROM alpine\nEXPOSE 80:80\n",
            want: &[("ExposeInvalidFormat", 2)],
        },
        Case {
            page: "expose-invalid-format good",
            dockerfile: "FROM alpine\nEXPOSE 80\n",
            want: &[],
        },
        // invalid-definition-description is experimental: silent unless enabled
        Case {
            page: "invalid-definition-description (experimental, off)",
            dockerfile: "# a non-descriptive comment\nFROM scratch AS base\n# another non-descriptive comment\nARG VERSION=1\n",
            want: &[],
        },
        Case {
            page: "invalid-definition-description bad (enabled)",
            dockerfile: "# check=experimental=InvalidDefinitionDescription\n\n# a non-descriptive comment\nFROM scratch AS base\n# another non-descriptive comment\nARG VERSION=1\n",
            want: &[
                ("InvalidDefinitionDescription", 4),
                ("InvalidDefinitionDescription", 6),
            ],
        },
        Case {
            page: "invalid-definition-description good (empty line)",
            dockerfile: "# check=experimental=all\n\n# a non-descriptive comment\n\nFROM scratch AS base\n\n# another non-descriptive comment\n\nARG VERSION=1\n",
            want: &[],
        },
        Case {
            page: "invalid-definition-description good (descriptions)",
            dockerfile: "# check=experimental=all\n\n# base is a stage for compiling source\nFROM scratch AS base\n# VERSION This is the version number.\nARG VERSION=1\n",
            want: &[],
        },
    ]);
}

/// undefined-var: "Bad: `$foo` is an undefined build argument" and the good counterparts. The
/// rule needs the base image's ENV, so the examples' bases are imported into the store
/// (`alpine` is busybox here; `python` sets `PYTHON_VERSION`).
#[test]
fn undefined_var_examples() {
    let env = TestEnv::new();
    env.import_busybox("localhost/alpine");
    let tar = common::busybox_rootfs();
    env.ok([
        "import".as_ref(),
        "-c".as_ref(),
        "ENV PYTHON_VERSION=3.12 PATH=/usr/bin:/bin".as_ref(),
        tar.as_os_str(),
        "localhost/python".as_ref(),
    ]);
    let cases: &[(&str, &[(&str, usize)])] = &[
        ("FROM alpine AS base\nCOPY $foo .\n", &[("UndefinedVar", 2)]),
        ("FROM alpine AS base\nARG foo\nCOPY $foo .\n", &[]),
        (
            "FROM alpine AS base\nARG VERSION=$foo\n",
            &[("UndefinedVar", 2)],
        ),
        ("FROM python AS base\nARG VERSION=$PYTHON_VERSION\n", &[]),
        // PATH is always set (BuildKit adds a default) and shell-form RUN is not checked
        (
            "FROM alpine\nENV PATH=$PATH:/app/bin\nRUN echo $nothing\n",
            &[],
        ),
        // an unknown base: its ENV may define the name, so nothing is said
        ("FROM not-in-store\nCOPY $foo .\n", &[]),
    ];
    for (df, want) in cases {
        let (got, _) = check_in(&env, df, None);
        let want: Vec<(String, usize)> = want.iter().map(|(r, l)| (r.to_string(), *l)).collect();
        assert_eq!(got, want, "{df}");
    }
    // the typo suggestion of the page: `$PAHT` (did you mean $PATH?)
    let dir = env.path("ctx");
    fs::write(
        dir.join("Dockerfile"),
        "FROM alpine\nENV PATH=$PAHT:/app/bin\n",
    )
    .expect("write");
    let err = env.fails(1, ["build", "--check", "ctx"]);
    assert!(
        err.contains("UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?)"),
        "{err}"
    );
}

/// copy-ignored-file: the page's example (`COPY ./tmp/helloworld.txt` bad, `./forever/…` good).
/// The page's pattern `*/tmp/*` needs a directory above `tmp` under Docker's ignore rules, so the
/// test ignores `tmp/*`, which matches its `./tmp/…` source. BuildKit matches the cleaned
/// source and skips the rule when the ignore file has `!` exceptions.
#[test]
fn copy_ignored_file_examples() {
    let env = TestEnv::new();
    let (got, _) = check_in(
        &env,
        "FROM scratch\nCOPY ./tmp/helloworld.txt /helloworld.txt\n",
        Some("tmp/*\n"),
    );
    assert_eq!(rules(&got), ["CopyIgnoredFile"]);
    let (got, _) = check_in(
        &env,
        "FROM scratch\nCOPY ./forever/helloworld.txt /helloworld.txt\n",
        Some("tmp/*\n"),
    );
    assert!(got.is_empty(), "{got:?}");
    // with an exception in the ignore file BuildKit does not check
    let (got, _) = check_in(
        &env,
        "FROM scratch\nCOPY ./tmp/helloworld.txt /helloworld.txt\n",
        Some("tmp/*\n!tmp/keep\n"),
    );
    assert!(got.is_empty(), "{got:?}");
    // COPY --from reads a stage, not the context
    let (got, _) = check_in(
        &env,
        "FROM scratch AS a\nFROM scratch\nCOPY --from=a tmp/x /x\n",
        Some("tmp/*\n"),
    );
    assert!(got.is_empty(), "{got:?}");
}

/// Reference "Parser directives → check": `skip=` by name or `all`, `error=true`; `docker build
/// --check` exits 1 when warnings remain (BuildKit's lint subrequest status code).
#[test]
fn check_directive_skip_and_error() {
    let env = TestEnv::new();
    let (got, code) = check_in(&env, "FROM alpine\nMAINTAINER me\nCMD echo\n", None);
    assert_eq!(rules(&got), ["MaintainerDeprecated", "JSONArgsRecommended"]);
    assert_eq!(code, 1);
    let (got, _) = check_in(
        &env,
        "# check=skip=JSONArgsRecommended\nFROM alpine\nMAINTAINER me\nCMD echo\n",
        None,
    );
    assert_eq!(rules(&got), ["MaintainerDeprecated"]);
    let (got, code) = check_in(
        &env,
        "# check=skip=all\nFROM alpine\nMAINTAINER me\nCMD echo\n",
        None,
    );
    assert!(got.is_empty());
    assert_eq!(code, 0);
    let (_, code) = check_in(&env, "FROM alpine\nCMD [\"x\"]\n", None);
    assert_eq!(code, 0);
    // `--build-arg BUILDKIT_DOCKERFILE_CHECK=` replaces the directive (BuildKit's dockerui)
    let dir = env.path("ctx");
    fs::write(
        dir.join("Dockerfile"),
        "# check=skip=all\nFROM alpine\nMAINTAINER me\nCMD echo\n",
    )
    .expect("write");
    let err = env.fails(
        1,
        [
            "build",
            "--check",
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=skip=MaintainerDeprecated",
            "ctx",
        ],
    );
    assert!(err.contains("JSONArgsRecommended"), "{err}");
    assert!(!err.contains("MaintainerDeprecated"), "{err}");
    // and a build does not call it an unused build arg
    fs::write(dir.join("Dockerfile"), "FROM scratch\nLABEL a=b\n").expect("write");
    let mut cmd = env.cmd([
        "build",
        "--progress",
        "plain",
        "--build-arg",
        "BUILDKIT_DOCKERFILE_CHECK=skip=all",
        "ctx",
    ]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("not consumed"), "{err}");
    // a malformed directive is an error naming it
    fs::write(dir.join("Dockerfile"), "# check=skip\nFROM alpine\n").expect("write");
    let err = env.fails(1, ["build", "--check", "ctx"]);
    assert!(
        err.contains("Dockerfile:1: # check=skip: invalid check option"),
        "{err}"
    );
}

/// A build prints the warnings (file:line:col, caret, rule, fix) and goes on; with
/// `# check=error=true` it fails after printing them all, before any step runs. Also the
/// parser's own warning (an empty continuation line) is printed, as NoEmptyContinuation.
#[test]
fn build_prints_warnings_and_error_true_fails() {
    let env = TestEnv::new();
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nMAINTAINER me\nLABEL a=\\\n\nb\n",
    )
    .expect("write");
    let mut cmd = env.cmd(["build", "--progress", "plain", "-t", "localhost/w", "ctx"]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WARNING: Dockerfile:2:1: MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label\n 2 | MAINTAINER me\n   | ^^^^^^^^^^^^^\n   fix: "),
        "{err}"
    );
    assert!(err.contains("Dockerfile:3:1: NoEmptyContinuation"), "{err}");

    fs::write(
        dir.join("Dockerfile"),
        "# check=error=true\nFROM scratch\nMAINTAINER me\nCMD echo\nLABEL a=b\n",
    )
    .expect("write");
    let err = env.fails(
        1,
        ["build", "--progress", "plain", "-t", "localhost/e", "ctx"],
    );
    assert!(err.contains("MaintainerDeprecated"), "{err}");
    assert!(err.contains("JSONArgsRecommended"), "{err}");
    assert!(
        err.contains("lint violation found for rules: JSONArgsRecommended, MaintainerDeprecated"),
        "{err}"
    );
    assert!(!err.contains("STEP"), "{err}");
    let images = env.ok(["images"]);
    assert!(!images.contains("localhost/e"), "{images}");
}

/// A build runs the per-instruction rules only over the stages it builds (BuildKit dispatches
/// only those; the parse-time rules such as MaintainerDeprecated see every stage); `--check`
/// without `--target` checks every stage.
#[test]
fn build_checks_only_built_stages() {
    let env = TestEnv::new();
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    fs::write(
        dir.join("Dockerfile"),
        "FROM scratch AS unused\nCMD echo\nFROM scratch\nLABEL a=b\n",
    )
    .expect("write");
    let mut cmd = env.cmd(["build", "--progress", "plain", "ctx"]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("JSONArgsRecommended"), "{err}");
    let (got, _) = check_in(
        &env,
        "FROM scratch AS unused\nCMD echo\nFROM scratch\n",
        None,
    );
    assert_eq!(rules(&got), ["JSONArgsRecommended"]);
}

/// `hoist build --check` over the 48 real-world Dockerfiles of `fixtures/dockerfile/real-world`
/// (copied from the shared corpus, provenance in its README): every warning is checked against
/// the rule's definition on the source line it names, and the counts per rule are pinned.
/// No base image is in the store, so `UndefinedVar` stays silent (see `plan/checks.rs`).
#[test]
fn real_world_corpus_warns_only_where_the_rules_say() {
    let env = TestEnv::new();
    fs::create_dir_all(env.path("ctx")).expect("ctx");
    let dir = common::repo().join("fixtures/dockerfile/real-world/files");
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 48);
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for f in &files {
        let name = f.file_name().expect("name").to_string_lossy().into_owned();
        let text = fs::read_to_string(f).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        let mut cmd = env.cmd([
            "build".as_ref(),
            "--check".as_ref(),
            "-f".as_ref(),
            f.as_os_str(),
            "ctx".as_ref(),
        ]);
        let out = common::run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut n = 0;
        for l in stderr.lines() {
            let Some(rest) = l.strip_prefix(&format!("WARNING: {name}:")) else {
                continue;
            };
            n += 1;
            let mut parts = rest.splitn(4, ':');
            let line: usize = parts.next().and_then(|x| x.parse().ok()).expect("line");
            let _col = parts.next();
            let rule = parts.next().expect("rule").trim().to_string();
            let src = lines[line - 1].trim();
            let words: Vec<&str> = src.split_whitespace().collect();
            // the definition of each rule that fires here, applied to the line itself
            let holds = match rule.as_str() {
                "LegacyKeyValueFormat" => {
                    matches!(words[0], "ENV" | "LABEL") && !words[1].contains('=')
                }
                "WorkdirRelativePath" => words[0] == "WORKDIR" && !words[1].starts_with('/'),
                other => panic!("{name}:{line}: unexpected rule {other}"),
            };
            assert!(holds, "{name}:{line}: {rule} does not hold for `{src}`");
            *counts.entry(rule).or_default() += 1;
        }
        let want_status = if n == 0 { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want_status), "{name}\n{stderr}");
    }
    let want: std::collections::BTreeMap<String, usize> =
        [("LegacyKeyValueFormat".to_string(), 111)]
            .into_iter()
            .collect();
    assert_eq!(counts, want);
}

/// A `# check=` comment right above an instruction applies to it, and one above a `FROM` to
/// its stage (BuildKit's `WithMergedConfigFromComments` over the instruction's comments).
#[test]
fn check_comment_above_an_instruction_or_stage() {
    let env = TestEnv::new();
    let (got, _) = check_in(
        &env,
        "FROM alpine\n# check=skip=JSONArgsRecommended\nCMD echo\nENTRYPOINT echo\n",
        None,
    );
    assert_eq!(got, [("JSONArgsRecommended".to_string(), 4)]);
    let (got, _) = check_in(
        &env,
        "FROM alpine AS a\nCMD echo\n\n# check=skip=JSONArgsRecommended\nFROM alpine AS b\nCMD echo\nENTRYPOINT x\n",
        None,
    );
    assert_eq!(got, [("JSONArgsRecommended".to_string(), 2)]);
}

/// The checks are total: over every Dockerfile of `fixtures/dockerfile` (BuildKit's parser test
/// files, buildah's conformance files, the real-world corpus) that parses, with and without an
/// ignore matcher and with every base's ENV known or unknown, they return without panicking,
/// and each finding points at a line of the file.
#[test]
fn checks_are_total_over_the_fixtures() {
    use hoist::plan::checks::{self, CheckInput};
    let platform = hoist::exec::host_platform();
    let args = std::collections::BTreeMap::new();
    let mut todo = vec![common::repo().join("fixtures/dockerfile")];
    let mut n = 0;
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
                continue;
            }
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            let Ok(df) = hoist::dockerfile::parse(&text, "Dockerfile") else {
                continue;
            };
            n += 1;
            let lines = text.lines().count();
            let ignored = |p: &str| p.contains('a');
            let known = |_: &str| Some(vec!["HOME".to_string()]);
            let unknown = |_: &str| None;
            for (ig, env) in [
                (None, &known as &dyn Fn(&str) -> Option<Vec<String>>),
                (Some(&ignored as &dyn Fn(&str) -> bool), &unknown),
            ] {
                let input = CheckInput {
                    df: &df,
                    text: &text,
                    build_args: &args,
                    platform: &platform,
                    stages: None,
                    ignored: ig,
                    base_env: env,
                };
                for f in checks::run(&input) {
                    assert!(
                        f.span.line >= 1 && f.span.line <= lines,
                        "{}: {f:?}",
                        p.display()
                    );
                    let _ = f.render("Dockerfile", &text);
                }
            }
        }
    }
    assert!(n >= 160, "only {n} Dockerfiles parsed");
}
