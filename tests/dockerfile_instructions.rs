//! The typed result of the Dockerfile front end: every instruction, every flag, stages, meta
//! ARGs, spans, heredocs and ONBUILD, as the build engine will read them.

use std::time::Duration;

use hoist::dockerfile::{
    self, BindMount, CacheMount, CacheSharing, Chmod, Dockerfile, Healthcheck, Instruction,
    Network, RunMount, SecretMount, Security, ShellOrExec, Span, SshMount, TmpfsMount,
};

fn parse(text: &str) -> Dockerfile {
    dockerfile::parse(text, "Dockerfile").unwrap_or_else(|e| panic!("{e}"))
}

/// The instructions of the only stage of `FROM scratch\n` + `body`.
fn body(body: &str) -> Vec<Instruction> {
    let df = parse(&format!("FROM scratch\n{body}"));
    assert_eq!(df.stages.len(), 1);
    df.stages[0]
        .instructions
        .iter()
        .map(|i| i.value.clone())
        .collect()
}

fn one(b: &str) -> Instruction {
    let mut v = body(b);
    assert_eq!(v.len(), 1, "{b}");
    v.remove(0)
}

#[test]
fn stages_meta_args_and_from() {
    let df = parse(
        "# syntax=docker/dockerfile:1.7-labs\nARG BASE=alpine VERSION\nARG X\nFROM --platform=$BUILDPLATFORM ${BASE}:${VERSION} AS Build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n",
    );
    assert_eq!(
        df.directives.syntax.as_ref().map(|s| s.value.as_str()),
        Some("docker/dockerfile:1.7-labs")
    );
    let names: Vec<(&str, Option<&str>)> = df
        .meta_args
        .iter()
        .map(|a| (a.name.as_str(), a.default.as_deref()))
        .collect();
    assert_eq!(
        names,
        [("BASE", Some("alpine")), ("VERSION", None), ("X", None)]
    );
    assert_eq!(df.stages.len(), 2);
    let s0 = &df.stages[0];
    assert_eq!((s0.index, s0.name.as_deref()), (0, Some("build")));
    assert_eq!(s0.from.image.value, "${BASE}:${VERSION}");
    assert_eq!(
        s0.from.platform.as_ref().map(|p| p.value.as_str()),
        Some("$BUILDPLATFORM")
    );
    assert_eq!(
        s0.from
            .platform
            .as_ref()
            .map(|p| (p.span.line, p.span.column)),
        Some((4, 6))
    );
    assert_eq!(s0.from.span.line, 4);
    let s1 = &df.stages[1];
    assert_eq!((s1.index, s1.name.as_deref()), (1, None));
    assert_eq!(
        s1.instructions[0].span,
        Span {
            line: 7,
            column: 1,
            end_line: 7,
            end_column: 25
        }
    );
}

#[test]
fn run_forms_and_flags() {
    let Instruction::Run(r) = one("RUN [\"sh\", \"-c\", \"echo $HOME\"]\n") else {
        panic!()
    };
    assert_eq!(
        r.command,
        ShellOrExec::Exec(vec!["sh".into(), "-c".into(), "echo $HOME".into()])
    );
    let Instruction::Run(r) = one(
        "RUN --mount=type=cache,target=/root/.cache,id=go,sharing=locked,mode=0700,uid=1000,gid=100,from=base,source=/c,ro \\\n    --mount=type=bind,source=.,target=/src,rw \\\n    --mount=type=tmpfs,dst=/tmp,size=64m \\\n    --mount=type=secret,id=aws,target=/root/.aws/credentials,required \\\n    --mount=type=secret,id=API_KEY,env=API_KEY \\\n    --mount=type=ssh \\\n    --mount=from=binaries \\\n    --network=none --security=insecure --device=vendor.com/gpu=all,required \\\n    echo $HOME\n",
    ) else {
        panic!()
    };
    assert_eq!(r.command, ShellOrExec::Shell("echo $HOME".into()));
    let mounts: Vec<RunMount> = r.mounts.iter().map(|m| m.value.clone()).collect();
    assert_eq!(
        mounts,
        vec![
            RunMount::Cache(CacheMount {
                target: "/root/.cache".into(),
                id: Some("go".into()),
                readonly: true,
                sharing: CacheSharing::Locked,
                from: Some("base".into()),
                source: Some("/c".into()),
                mode: Some(0o700),
                uid: Some(1000),
                gid: Some(100),
            }),
            RunMount::Bind(BindMount {
                target: Some("/src".into()),
                source: Some(".".into()),
                from: None,
                readwrite: true,
            }),
            RunMount::Tmpfs(TmpfsMount {
                target: "/tmp".into(),
                size: Some(64 << 20)
            }),
            RunMount::Secret(SecretMount {
                id: Some("aws".into()),
                target: Some("/root/.aws/credentials".into()),
                env: None,
                required: true,
                mode: None,
                uid: None,
                gid: None,
            }),
            RunMount::Secret(SecretMount {
                id: Some("API_KEY".into()),
                target: None,
                env: Some("API_KEY".into()),
                required: false,
                mode: None,
                uid: None,
                gid: None,
            }),
            RunMount::Ssh(SshMount {
                id: None,
                target: None,
                required: false,
                mode: None,
                uid: None,
                gid: None
            }),
            RunMount::Bind(BindMount {
                target: None,
                source: None,
                from: Some("binaries".into()),
                readwrite: false
            }),
        ]
    );
    assert_eq!((r.mounts[1].span.line, r.mounts[1].span.column), (3, 5));
    assert_eq!(r.network.map(|n| n.value), Some(Network::None));
    assert_eq!(r.security.map(|s| s.value), Some(Security::Insecure));
    assert_eq!(r.devices[0].value.name, "vendor.com/gpu=all");
    assert!(r.devices[0].value.required);
}

#[test]
fn copy_and_add_flags() {
    let Instruction::Copy(c) = one(
        "COPY --from=build --chown=1000:1000 --chmod=0755 --link --parents --exclude=*.md --exclude=tmp/ a \"b c\" /dest/\n",
    ) else {
        panic!()
    };
    let srcs: Vec<&str> = c.sources.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(srcs, ["a", "\"b", "c\""]);
    assert_eq!(c.dest.value, "/dest/");
    assert_eq!(c.from.as_ref().map(|f| f.value.as_str()), Some("build"));
    assert_eq!(
        c.chown.as_ref().map(|f| f.value.as_str()),
        Some("1000:1000")
    );
    assert_eq!(
        c.chmod.as_ref().map(|f| f.value.clone()),
        Some(Chmod::Octal(0o755))
    );
    assert!(c.link && c.parents && !c.json);
    let ex: Vec<&str> = c.exclude.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(ex, ["*.md", "tmp/"]);
    assert_eq!((c.dest.span.line, c.dest.span.column), (2, 105));

    let Instruction::Copy(c) = one("COPY --link=false --chmod=u=rwX,go=rX [\"a b\", \"/x y/\"]\n")
    else {
        panic!()
    };
    assert!(c.json && !c.link);
    assert_eq!(c.sources[0].value, "a b");
    assert_eq!(c.dest.value, "/x y/");
    assert_eq!(
        c.chmod.map(|m| m.value),
        Some(Chmod::Symbolic("u=rwX,go=rX".into()))
    );

    let Instruction::Copy(c) = one("ARG MODE=440\nCOPY --chmod=$MODE . .\n"
        .split_once('\n')
        .map(|x| x.1)
        .unwrap_or_default())
    else {
        panic!()
    };
    assert_eq!(
        c.chmod.map(|m| m.value),
        Some(Chmod::Unexpanded("$MODE".into()))
    );

    let sum = "sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d";
    let Instruction::Add(a) = one(&format!(
        "ADD --checksum={sum} --keep-git-dir=true --unpack=false --link --chown=bin --exclude=x https://example.com/a.tar.gz /\n"
    )) else {
        panic!()
    };
    assert_eq!(a.checksum.map(|c| c.value), Some(sum.to_string()));
    assert_eq!(
        (a.keep_git_dir, a.unpack, a.link),
        (Some(true), Some(false), true)
    );
    assert_eq!(a.chown.map(|c| c.value), Some("bin".into()));
    assert_eq!(a.sources[0].value, "https://example.com/a.tar.gz");
    let Instruction::Add(a) =
        one("ADD --checksum=be1f38e https://github.com/moby/buildkit.git#v0.26.2 /\n")
    else {
        panic!()
    };
    assert_eq!(a.checksum.map(|c| c.value), Some("be1f38e".into()));
}

#[test]
fn copy_and_add_with_heredocs() {
    let Instruction::Copy(c) =
        one("COPY --chmod=755 <<EOF <<-'RAW' file /dest/\n#!/bin/sh\necho $HOME\nEOF\n\tkeep $X\n\tRAW\n")
    else {
        panic!()
    };
    let srcs: Vec<&str> = c.sources.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(srcs, ["file"]);
    assert_eq!(c.heredocs.len(), 2);
    assert_eq!(
        (
            c.heredocs[0].name.as_str(),
            c.heredocs[0].body().as_str(),
            c.heredocs[0].expand
        ),
        ("EOF", "#!/bin/sh\necho $HOME\n", true)
    );
    assert_eq!(
        (
            c.heredocs[1].name.as_str(),
            c.heredocs[1].body().as_str(),
            c.heredocs[1].expand
        ),
        ("RAW", "keep $X\n", false)
    );
    let Instruction::Add(a) = one("ADD <<EOF /a.txt\nhi\nEOF\n") else {
        panic!()
    };
    assert_eq!(a.heredocs[0].content, "hi\n");
    assert!(a.sources.is_empty());
    // Several heredocs on one RUN line.
    let Instruction::Run(r) = one(
        "RUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n",
    ) else {
        panic!()
    };
    assert_eq!(
        r.command,
        ShellOrExec::Shell("<<FILE1 cat > file1 && <<FILE2 cat > file2".into())
    );
    let names: Vec<(&str, &str)> = r
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.content.as_str()))
        .collect();
    assert_eq!(
        names,
        [("FILE1", "I am\nfirst\n"), ("FILE2", "I am\nsecond\n")]
    );
    // The instruction after the heredoc body is parsed normally, with its own line.
    let df = parse("FROM a\nRUN <<EOF\nx\nEOF\nUSER me\n");
    assert_eq!(df.stages[0].instructions[0].span.end_line, 4);
    assert_eq!(df.stages[0].instructions[1].span.line, 5);
}

#[test]
fn env_label_arg_forms() {
    let Instruction::Env(kv) = one("ENV A=1 B=\"two words\" C=with\\ space\n") else {
        panic!()
    };
    let got: Vec<(&str, &str, bool)> = kv
        .iter()
        .map(|k| (k.key.as_str(), k.value.as_str(), k.legacy))
        .collect();
    assert_eq!(
        got,
        [
            ("A", "1", false),
            ("B", "\"two words\"", false),
            ("C", "with\\ space", false)
        ]
    );
    let Instruction::Env(kv) = one("ENV ONE TWO= THREE=world\n") else {
        panic!()
    };
    assert_eq!(
        (kv[0].key.as_str(), kv[0].value.as_str(), kv[0].legacy),
        ("ONE", "TWO= THREE=world", true)
    );
    let Instruction::Label(kv) =
        one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 \\\n  other=x\n")
    else {
        panic!()
    };
    assert_eq!(kv.len(), 3);
    assert_eq!(
        (kv[0].key.as_str(), kv[0].value.as_str()),
        ("\"com.example.vendor\"", "\"ACME Inc\"")
    );
    assert_eq!((kv[2].span.line, kv[2].span.column), (3, 3));
    let Instruction::Label(kv) = one("LABEL maintainer James Turnbull\n") else {
        panic!()
    };
    assert!(kv[0].legacy);
    let Instruction::Arg(a) = one("ARG user1=someuser buildno\n") else {
        panic!()
    };
    assert_eq!(
        (a[0].name.as_str(), a[0].default.as_deref()),
        ("user1", Some("someuser"))
    );
    assert_eq!(
        (a[1].name.as_str(), a[1].default.as_deref()),
        ("buildno", None)
    );
}

#[test]
fn cmd_entrypoint_shell_and_simple_ones() {
    assert_eq!(
        one("CMD [\"-c\"]\n"),
        Instruction::Cmd(ShellOrExec::Exec(vec!["-c".into()]))
    );
    assert_eq!(
        one("CMD echo 'test' | wc -\n"),
        Instruction::Cmd(ShellOrExec::Shell("echo 'test' | wc -".into()))
    );
    assert_eq!(
        one("ENTRYPOINT ['single', 'quotes']\n"),
        Instruction::Entrypoint(ShellOrExec::Shell("['single', 'quotes']".into()))
    );
    assert_eq!(
        one("SHELL [\"powershell\", \"-command\"]\n"),
        Instruction::Shell(vec!["powershell".into(), "-command".into()])
    );
    assert_eq!(
        one("USER docker:root\n"),
        Instruction::User("docker:root".into())
    );
    assert_eq!(
        one("WORKDIR $DIRPATH/$DIRNAME\n"),
        Instruction::Workdir("$DIRPATH/$DIRNAME".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGKILL\n"),
        Instruction::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        one("MAINTAINER docker <docker@docker.io>\n"),
        Instruction::Maintainer("docker <docker@docker.io>".into())
    );
    let Instruction::Volume(v) = one("VOLUME [\"/var/log\", \"/var/db\"]\n") else {
        panic!()
    };
    assert_eq!(v.len(), 2);
    let Instruction::Volume(v) = one("VOLUME /a /b\n") else {
        panic!()
    };
    assert_eq!(v[1].value, "/b");
    let Instruction::Expose(p) = one("EXPOSE 80/tcp 53/udp 8000-8010 $PORT\n") else {
        panic!()
    };
    let ports: Vec<&str> = p.iter().map(|p| p.value.as_str()).collect();
    assert_eq!(ports, ["80/tcp", "53/udp", "8000-8010", "$PORT"]);
    let p = dockerfile::PortSpec::parse("8000-8010").expect("range");
    assert_eq!(
        (p.start, p.end, p.protocol),
        (8000, 8010, dockerfile::Protocol::Tcp)
    );
}

#[test]
fn healthcheck_forms() {
    assert_eq!(
        one("HEALTHCHECK NONE\n"),
        Instruction::Healthcheck(Healthcheck::None)
    );
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) = one(
        "HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --start-interval=500ms --retries=4 \\\n  CMD curl -f http://localhost/ || exit 1\n",
    ) else {
        panic!()
    };
    assert_eq!(
        h.test,
        ShellOrExec::Shell("curl -f http://localhost/ || exit 1".into())
    );
    assert_eq!(h.interval, Some(Duration::from_secs(300)));
    assert_eq!(h.timeout, Some(Duration::from_secs(3)));
    assert_eq!(h.start_period, Some(Duration::from_secs(90)));
    assert_eq!(h.start_interval, Some(Duration::from_millis(500)));
    assert_eq!(h.retries, Some(4));
    let Instruction::Healthcheck(Healthcheck::Cmd(h)) =
        one("HEALTHCHECK --timeout=0s CMD [\"foo\", \"bar\"]\n")
    else {
        panic!()
    };
    assert_eq!(h.test, ShellOrExec::Exec(vec!["foo".into(), "bar".into()]));
    assert_eq!(h.timeout, Some(Duration::ZERO));
}

#[test]
fn onbuild_wraps_a_typed_trigger() {
    let v = body("ONBUILD ADD . /app/src\nONBUILD RUN --mount=from=config,target=/opt/appconfig make\nonbuild copy --from=build /usr/bin/app /app\n");
    let Instruction::OnBuild(o) = &v[0] else {
        panic!()
    };
    assert_eq!(o.text, "ADD . /app/src");
    assert!(matches!(o.trigger.value, Instruction::Add(_)));
    assert_eq!((o.trigger.span.line, o.trigger.span.column), (2, 9));
    let Instruction::OnBuild(o) = &v[1] else {
        panic!()
    };
    let Instruction::Run(r) = &o.trigger.value else {
        panic!()
    };
    assert_eq!(r.mounts.len(), 1);
    let Instruction::OnBuild(o) = &v[2] else {
        panic!()
    };
    assert_eq!(o.text, "copy --from=build /usr/bin/app /app");
    let Instruction::OnBuild(o) = one("ONBUILD RUN <<EOF\necho hi\nEOF\n") else {
        panic!()
    };
    let Instruction::Run(r) = &o.trigger.value else {
        panic!()
    };
    assert_eq!(r.heredocs[0].content, "echo hi\n");
}

#[test]
fn which_instructions_expand() {
    let v = body(
        "ENV A=1\nRUN echo $A\nCMD echo $A\nCOPY $A /\nWORKDIR $A\nONBUILD RUN x\nLABEL a=$A\n",
    );
    let expands: Vec<(&str, bool)> = v.iter().map(|i| (i.keyword(), i.expands_words())).collect();
    assert_eq!(
        expands,
        [
            ("ENV", true),
            ("RUN", false),
            ("CMD", false),
            ("COPY", true),
            ("WORKDIR", true),
            ("ONBUILD", false),
            ("LABEL", true)
        ]
    );
}

#[test]
fn escape_directive_backtick() {
    let df = parse("# escape=`\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\nRUN dir c:\\\nENV P=a`\nb\n");
    let v: Vec<&Instruction> = df.stages[0].instructions.iter().map(|i| &i.value).collect();
    let Instruction::Copy(c) = v[0] else { panic!() };
    assert_eq!(c.dest.value, "c:\\");
    assert_eq!(
        v[1],
        &Instruction::Run(dockerfile::Run {
            command: ShellOrExec::Shell("dir c:\\".into()),
            mounts: vec![],
            network: None,
            security: None,
            devices: vec![],
            heredocs: vec![],
        })
    );
    let Instruction::Env(kv) = v[2] else { panic!() };
    assert_eq!(kv[0].value, "ab");
    assert_eq!(df.directives.escape, '`');
}

#[test]
fn crlf_bom_comments_and_continuations() {
    let df = parse("\u{feff}FROM a\r\n# comment\r\nRUN echo hello \\\r\n  # inner comment\r\n  world\r\n  \r\nCMD x\r\n");
    let v: Vec<&Instruction> = df.stages[0].instructions.iter().map(|i| &i.value).collect();
    let Instruction::Run(r) = v[0] else { panic!() };
    assert_eq!(r.command, ShellOrExec::Shell("echo hello   world".into()));
    assert_eq!(df.stages[0].instructions[0].span.end_line, 5);
    assert_eq!(v[1], &Instruction::Cmd(ShellOrExec::Shell("x".into())));
}
