//! Located errors of the Dockerfile front end: for each kind of mistake, the reported
//! `line:column`, the message, and (for a few) the full rendering with source line and carets.

use hoist::dockerfile::{self, DockerfileError};

fn err(text: &str) -> DockerfileError {
    match dockerfile::parse(text, "Dockerfile") {
        Ok(df) => panic!("expected an error, parsed:\n{text}\n{df:#?}"),
        Err(e) => e,
    }
}

/// (Dockerfile, line, column, message substring)
const CASES: &[(&str, usize, usize, &str)] = &[
    // Unknown instructions, with and without a suggestion.
    (
        "FROM a\nRUNN echo hi\n",
        2,
        1,
        "unknown instruction RUNN (did you mean RUN?)",
    ),
    (
        "FROM a\n  cOPy a b\n  COYP a b\n",
        3,
        3,
        "unknown instruction COYP (did you mean COPY?)",
    ),
    ("FROM a\nFOO bar\n", 2, 1, "unknown instruction FOO"),
    // Heredocs.
    (
        "FROM a\nRUN echo\nRUN <<EOF\necho hi\n",
        3,
        5,
        "unterminated heredoc `EOF` started on line 3",
    ),
    (
        "FROM a\nCOPY <<A <<B /x\na\nA\nb\n",
        2,
        10,
        "unterminated heredoc `B` started on line 2",
    ),
    ("FROM a\nRUN <<'EOF\nx\n", 2, 5, "invalid heredoc `<<'EOF`"),
    (
        "FROM a\nCOPY x <<EOF\nEOF\n",
        2,
        8,
        "COPY cannot take a heredoc as its destination",
    ),
    // Flags an instruction does not take, and bad flag values.
    (
        "FROM a\nCOPY --network=host a b\n",
        2,
        6,
        "unknown flag `--network` for COPY",
    ),
    (
        "FROM a\nRUN --chmod=755 true\n",
        2,
        5,
        "unknown flag `--chmod` for RUN",
    ),
    (
        "FROM a\nENV --x=1 A=1\n",
        2,
        5,
        "unknown flag `--x` for ENV (it takes no flags)",
    ),
    (
        "FROM --plat=x a\n",
        1,
        6,
        "unknown flag `--plat` for FROM (it takes --platform)",
    ),
    (
        "FROM a\nCOPY --chmod=9 a b\n",
        2,
        6,
        "invalid value `9` for `--chmod`",
    ),
    (
        "FROM a\nADD --chmod=u+q a b\n",
        2,
        5,
        "invalid value `u+q` for `--chmod`",
    ),
    (
        "FROM a\nCOPY --from a b\n",
        2,
        6,
        "flag `--from` needs a value",
    ),
    (
        "FROM a\nCOPY --from=x --from=y a b\n",
        2,
        15,
        "flag `--from` is given twice for COPY",
    ),
    (
        "FROM a\nCOPY --link=maybe a b\n",
        2,
        6,
        "invalid value `maybe` for `--link`: expected true or false",
    ),
    (
        "FROM a\nADD --checksum=md5:abc http://x/y /z\n",
        2,
        5,
        "invalid value `md5:abc` for `--checksum`",
    ),
    (
        "FROM a\nRUN --network=bridge true\n",
        2,
        5,
        "invalid value `bridge` for `--network`",
    ),
    (
        "FROM a\nRUN --security=root true\n",
        2,
        5,
        "invalid value `root` for `--security`",
    ),
    (
        "FROM a\nRUN --mount=type=nfs,target=/x true\n",
        2,
        5,
        "unknown mount type `nfs`",
    ),
    (
        "FROM a\nRUN --mount=type=cache true\n",
        2,
        5,
        "a cache mount needs a target",
    ),
    (
        "FROM a\nRUN --mount=type=tmpfs,target=/t,from=x true\n",
        2,
        5,
        "`from` is not an option of a tmpfs mount",
    ),
    (
        "FROM a\nRUN --mount=type=cache,target=/c,sharing=all true\n",
        2,
        5,
        "`sharing` must be shared, private or locked",
    ),
    (
        "FROM a\nRUN --mount=type=cache,target=/c,mode=999 true\n",
        2,
        5,
        "`mode` must be an octal mode",
    ),
    (
        "FROM a\nHEALTHCHECK --interval=50ns CMD true\n",
        2,
        13,
        "0 or a duration of at least 1ms",
    ),
    (
        "FROM a\nHEALTHCHECK --timeout=soon CMD true\n",
        2,
        13,
        "a duration such as 30s",
    ),
    (
        "FROM a\nHEALTHCHECK --retries=-1 CMD true\n",
        2,
        13,
        "invalid value `-1` for `--retries`",
    ),
    // Argument counts.
    (
        "FROM a\nCOPY onlyone\n",
        2,
        6,
        "COPY needs at least two arguments",
    ),
    ("FROM a\nADD\n", 2, 1, "ADD needs at least two arguments"),
    ("FROM a\nRUN\n", 2, 1, "RUN needs a command"),
    (
        "FROM a\nWORKDIR\n",
        2,
        1,
        "WORKDIR needs exactly one argument",
    ),
    ("FROM a b\n", 1, 6, "FROM needs an image"),
    ("FROM a AS\n", 1, 6, "FROM needs a stage name after AS"),
    (
        "FROM a FOR b\n",
        1,
        8,
        "expected `AS` before the stage name, found `FOR`",
    ),
    ("FROM a AS 1st\n", 1, 11, "invalid stage name `1st`"),
    // Empty continuation at the end of the file (a continuation straight into EOF is fine).
    (
        "FROM a\nRUN echo \\\n\n\n",
        2,
        10,
        "continues the instruction into nothing but empty lines",
    ),
    (
        "FROM a\nRUN a \\\n  b \\  \n   \n",
        3,
        5,
        "continues the instruction into nothing but empty lines",
    ),
    // Directives.
    (
        "# escape=x\nFROM a\n",
        1,
        10,
        "invalid escape directive `x`",
    ),
    (
        "# syntax=docker/dockerfile:1\n# syntax=docker/dockerfile:1\nFROM a\n",
        2,
        10,
        "parser directive `syntax` is given twice",
    ),
    (
        "# syntax=tonistiigi/dockerfile:runmount\nFROM a\n",
        1,
        10,
        "unsupported syntax `tonistiigi/dockerfile:runmount`",
    ),
    // JSON and forms.
    (
        "FROM a\nCMD [\"a\", 1]\n",
        2,
        5,
        "CMD JSON array must hold only strings",
    ),
    (
        "FROM a\nSHELL /bin/bash -c\n",
        2,
        7,
        "SHELL needs a JSON array of strings",
    ),
    (
        "FROM a\nENV PATH\n",
        2,
        5,
        "ENV `PATH` has no value: write `ENV PATH=value`",
    ),
    (
        "FROM a\nENV A=1 B\n",
        2,
        9,
        "ENV needs name=value pairs but `B` has no `=`",
    ),
    ("FROM a\nLABEL =x\n", 2, 7, "LABEL has an empty name"),
    ("FROM a\nARG =x\n", 2, 5, "ARG has an empty name"),
    ("FROM a\nEXPOSE 80/tpc\n", 2, 8, "invalid port `80/tpc`"),
    ("FROM a\nEXPOSE 70000\n", 2, 8, "invalid port `70000`"),
    (
        "FROM a\nHEALTHCHECK NONE CMD true\n",
        2,
        13,
        "HEALTHCHECK NONE takes no arguments",
    ),
    (
        "FROM a\nHEALTHCHECK CMD\n",
        2,
        13,
        "HEALTHCHECK CMD needs a command",
    ),
    (
        "FROM a\nHEALTHCHECK CONNECT x\n",
        2,
        13,
        "unknown HEALTHCHECK type `CONNECT`",
    ),
    (
        "FROM a\nSTOPSIGNAL SIGNOPE\n",
        2,
        12,
        "invalid stop signal `SIGNOPE`",
    ),
    ("FROM a\nSTOPSIGNAL 65\n", 2, 12, "invalid stop signal `65`"),
    // ONBUILD.
    (
        "FROM a\nONBUILD ONBUILD RUN x\n",
        2,
        9,
        "chaining ONBUILD via `ONBUILD ONBUILD` is not allowed",
    ),
    (
        "FROM a\nONBUILD FROM b\n",
        2,
        9,
        "FROM is not allowed as an ONBUILD trigger",
    ),
    (
        "FROM a\nONBUILD MAINTAINER me\n",
        2,
        9,
        "MAINTAINER is not allowed as an ONBUILD trigger",
    ),
    (
        "FROM a\nONBUILD COPY --nope a b\n",
        2,
        14,
        "unknown flag `--nope` for COPY",
    ),
    // Structure.
    (
        "ARG V=1\nRUN echo\nFROM a\n",
        2,
        1,
        "RUN comes before the first FROM",
    ),
    ("ARG V=1\n", 1, 1, "no FROM instruction"),
    ("", 1, 1, "file has no instructions"),
    ("# only a comment\n\n", 1, 1, "file has no instructions"),
];

#[test]
fn every_error_kind_is_located() {
    let mut failures = Vec::new();
    for (text, line, column, message) in CASES {
        match dockerfile::parse(text, "Dockerfile") {
            Ok(_) => failures.push(format!("{text:?}: parsed")),
            Err(e) => {
                if (e.line, e.column) != (*line, *column) || !e.message().contains(message) {
                    failures.push(format!(
                        "{text:?}\n  expected {line}:{column} `{message}`\n  actual   {}:{} `{}`",
                        e.line,
                        e.column,
                        e.message()
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn unknown_instruction_renders_with_caret() {
    let text = "FROM busybox\nRUN echo 1\nCOPY a b\n\n# c\nENV A=1\nRUNN echo hi\n";
    let e = err(text);
    assert_eq!((e.line, e.column, e.width), (7, 1, 4));
    assert_eq!(
        e.to_string(),
        "Dockerfile:7:1: unknown instruction RUNN (did you mean RUN?)\n 7 | RUNN echo hi\n   | ^^^^"
    );
    assert_eq!(
        e.headline(),
        "Dockerfile:7:1: unknown instruction RUNN (did you mean RUN?)"
    );
}

#[test]
fn caret_follows_tabs_and_file_name() {
    let e = match dockerfile::parse("FROM a\n\tCOPY --chmod=9 a b\n", "app/Containerfile") {
        Err(e) => e,
        Ok(_) => panic!("parsed"),
    };
    assert_eq!(
        e.to_string(),
        "app/Containerfile:2:7: invalid value `9` for `--chmod`: expected an octal mode such as 755 or a symbolic mode such as u+x or u=rwX,go=rX\n 2 | \tCOPY --chmod=9 a b\n   | \t     ^^^^^^^^^"
    );
}

#[test]
fn unterminated_heredoc_names_its_start_line() {
    let e = err("FROM a\nRUN true\nCOPY <<EOF /x\nhello\n");
    assert_eq!(e.headline(), "Dockerfile:3:6: unterminated heredoc `EOF` started on line 3: end it with a line holding only `EOF`");
}

#[test]
fn columns_count_characters_and_survive_crlf_and_bom() {
    let e = err("\u{feff}FROM a\r\nLABEL é=1 ü\r\n");
    assert_eq!((e.line, e.column), (2, 11));
    assert_eq!(e.source_line, "LABEL é=1 ü");
    let e = err("FROM a\nRUN --mount=type=cache,target=/c \\\n    --network=bogus true\n");
    assert_eq!((e.line, e.column), (3, 5));
    assert_eq!(e.source_line, "    --network=bogus true");
}

#[test]
fn continuation_straight_into_end_of_file_is_accepted() {
    // BuildKit's `continue-at-eof`: the last line ends in the escape character, nothing follows.
    let df = dockerfile::parse("FROM a\nRUN something \\", "Dockerfile").expect("parses");
    assert_eq!(df.stages[0].instructions.len(), 1);
}

#[test]
fn empty_continuation_in_the_middle_is_a_warning() {
    let df = dockerfile::parse("FROM a\nRUN a \\\n\n  b\n", "Dockerfile").expect("parses");
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].span.line, 2);
    assert!(df.warnings[0].message.contains("empty continuation line"));
}
