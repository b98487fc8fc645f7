use super::input::{Command, Instr, Kind, Stage};
use super::*;

fn platform() -> Platform {
    Platform {
        os: "linux".into(),
        arch: "amd64".into(),
        variant: None,
    }
}

fn opts(args: &[(&str, &str)], target: Option<&str>) -> PlanOptions {
    PlanOptions {
        file: "Dockerfile".into(),
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(str::to_string),
        platform: platform(),
        requested_platform: None,
    }
}

fn ins(line: usize, kind: Kind) -> Instr {
    Instr {
        line,
        text: format!("line {line}"),
        kind,
    }
}

fn stage(line: usize, base: &str, name: Option<&str>, instrs: Vec<Instr>) -> Stage {
    Stage {
        line,
        text: format!("FROM {base}"),
        base: base.into(),
        name: name.map(str::to_string),
        platform: None,
        instrs,
    }
}

fn copy_from(line: usize, from: &str) -> Instr {
    ins(
        line,
        Kind::Copy {
            add: false,
            sources: vec!["/out".into()],
            dest: "/in".into(),
            from: Some(from.into()),
            chown: None,
            chmod: None,
            link: false,
            excludes: vec![],
            parents: false,
            checksum: None,
            keep_git_dir: false,
            unpack: None,
            heredocs: vec![],
        },
    )
}

#[test]
fn target_prunes_unneeded_stages() {
    let input = Input {
        meta_args: vec![("BASE".into(), Some("localhost/busybox".into()))],
        stages: vec![
            stage(2, "${BASE}", Some("Build"), vec![]),
            stage(4, "scratch", Some("broken"), vec![]),
            stage(6, "build", Some("final"), vec![copy_from(7, "0")]),
            stage(9, "final", None, vec![]),
        ],
        escape: None,
    };
    let p = plan(&input, &opts(&[], Some("final"))).expect("plan");
    assert_eq!(p.order, vec![0, 2]);
    assert_eq!(p.target, 2);
    assert_eq!(p.stages[0].base, Base::Image("localhost/busybox".into()));
    assert_eq!(p.stages[2].base, Base::Stage(0));
    assert_eq!(p.total_steps, 3);
    assert_eq!(p.stages[2].first_step, 2);
    let all = plan(&input, &opts(&[], None)).expect("plan");
    assert_eq!(all.order, vec![0, 2, 3]);
    assert!(matches!(
        plan(&input, &opts(&[], Some("nope"))),
        Err(PlanError::NoTarget(_))
    ));
}

#[test]
fn unused_build_arg_warns() {
    let input = Input {
        meta_args: vec![],
        stages: vec![stage(
            1,
            "scratch",
            None,
            vec![ins(2, Kind::Arg(vec![("USED".into(), None)]))],
        )],
        escape: None,
    };
    let p = plan(
        &input,
        &opts(&[("USED", "1"), ("EXTRA", "2"), ("HTTP_PROXY", "x")], None),
    )
    .expect("plan");
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("EXTRA"), "{:?}", p.warnings);
    assert!(!p.warnings[0].contains("USED"));
}

#[test]
fn foreign_platform_is_refused() {
    let mut input = Input::default();
    let mut s = stage(1, "scratch", None, vec![]);
    s.platform = Some("linux/s390x".into());
    input.stages.push(s);
    let e = plan(&input, &opts(&[], None)).expect_err("refused");
    assert!(
        e.to_string()
            .starts_with("Dockerfile:1: FROM --platform=linux/s390x"),
        "{e}"
    );
    input.stages[0].platform = Some("$BUILDPLATFORM".into());
    plan(&input, &opts(&[], None)).expect("own platform is fine");
}

#[test]
fn arg_env_scopes_and_expansion() {
    let input = Input {
        meta_args: vec![("V".into(), Some("1".into()))],
        stages: vec![stage(
            2,
            "scratch",
            None,
            vec![
                ins(3, Kind::Workdir("app".into())),
                ins(
                    4,
                    Kind::Arg(vec![("V".into(), None), ("W".into(), Some("w-$V".into()))]),
                ),
                ins(5, Kind::Env(vec![("E".into(), "$W/x".into())])),
                ins(
                    6,
                    Kind::Run {
                        command: Command::Shell("echo $E".into()),
                        mounts: vec![],
                        network: None,
                        heredocs: vec![],
                    },
                ),
                ins(7, Kind::Env(vec![("W".into(), "env".into())])),
                ins(8, Kind::Workdir("${W}/sub".into())),
                ins(9, Kind::Cmd(Command::Shell("run".into()))),
                ins(10, Kind::Shell(vec!["/bin/bash".into(), "-ec".into()])),
                ins(11, Kind::Entrypoint(Command::Shell("go".into()))),
                ins(12, Kind::Label(vec![("k".into(), "$TARGETARCH".into())])),
                ins(13, Kind::Arg(vec![("TARGETARCH".into(), None)])),
                ins(14, Kind::Label(vec![("k".into(), "$TARGETARCH".into())])),
            ],
        )],
        escape: None,
    };
    let p = plan(&input, &opts(&[], None)).expect("plan");
    let steps = p
        .resolve_stage(
            0,
            &BaseInfo {
                env: vec!["PATH=/bin".into()],
                ..BaseInfo::default()
            },
        )
        .expect("resolve");
    assert_eq!(steps[0].op, Op::Workdir("/app".into()));
    assert_eq!(steps[2].op, Op::Env(vec![("E".into(), "w-1/x".into())]));
    match &steps[3].op {
        Op::Run(r) => {
            assert_eq!(r.argv, vec!["/bin/sh", "-c", "echo $E"]);
            assert_eq!(
                r.args_in_scope,
                vec![
                    ("V".to_string(), "1".to_string()),
                    ("W".to_string(), "w-1".to_string())
                ]
            );
            assert!(r.env.contains(&("PATH".to_string(), "/bin".to_string())));
        }
        other => panic!("not a run: {other:?}"),
    }
    assert_eq!(steps[5].op, Op::Workdir("/app/env/sub".into()));
    assert_eq!(
        steps[6].op,
        Op::Cmd(vec!["/bin/sh".into(), "-c".into(), "run".into()])
    );
    assert_eq!(
        steps[8].op,
        Op::Entrypoint(vec!["/bin/bash".into(), "-ec".into(), "go".into()])
    );
    assert_eq!(steps[9].op, Op::Label(vec![("k".into(), "".into())]));
    assert_eq!(steps[11].op, Op::Label(vec![("k".into(), "amd64".into())]));
}

#[test]
fn copy_dest_and_from_resolve() {
    let input = Input {
        meta_args: vec![],
        stages: vec![
            stage(1, "scratch", Some("a"), vec![]),
            stage(
                2,
                "scratch",
                None,
                vec![
                    ins(3, Kind::Workdir("/w".into())),
                    copy_from(4, "A"),
                    copy_from(5, "localhost/other"),
                ],
            ),
        ],
        escape: None,
    };
    let p = plan(&input, &opts(&[], None)).expect("plan");
    assert_eq!(p.order, vec![0, 1]);
    let steps = p.resolve_stage(1, &BaseInfo::default()).expect("resolve");
    match (&steps[1].op, &steps[2].op) {
        (Op::Copy(a), Op::Copy(b)) => {
            assert_eq!(a.from, Some(FromRef::Stage(0)));
            assert_eq!(a.dest, "/in");
            assert_eq!(b.from, Some(FromRef::Image("localhost/other".into())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn mounts_parse() {
    let input = Input {
        meta_args: vec![],
        stages: vec![stage(
            1,
            "scratch",
            None,
            vec![ins(
                2,
                Kind::Run {
                    command: Command::Exec(vec!["true".into()]),
                    mounts: vec![
                        "type=cache,target=/root/.cache,mode=0700".into(),
                        "type=secret,id=tok".into(),
                        "type=tmpfs,target=/t,size=1m".into(),
                        "target=/src".into(),
                    ],
                    network: Some("none".into()),
                    heredocs: vec![],
                },
            )],
        )],
        escape: None,
    };
    let p = plan(&input, &opts(&[], None)).expect("plan");
    let steps = p.resolve_stage(0, &BaseInfo::default()).expect("resolve");
    let Op::Run(r) = &steps[0].op else {
        panic!("run")
    };
    assert_eq!(r.network, Network::None);
    assert_eq!(
        r.mounts,
        vec![
            RunMount::Cache {
                target: "/root/.cache".into(),
                id: "/root/.cache".into(),
                mode: 0o700,
                uid: 0,
                gid: 0,
                read_only: false,
                sharing: Sharing::Shared
            },
            RunMount::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false,
                mode: 0o400,
                uid: 0,
                gid: 0
            },
            RunMount::Tmpfs {
                target: "/t".into(),
                size: Some(1 << 20)
            },
            RunMount::Bind {
                target: "/src".into(),
                source: ".".into(),
                from: None,
                rw: false
            },
        ]
    );
}

fn parse_input(text: &str) -> Input {
    let df = crate::dockerfile::parse(text, "Dockerfile").expect("parses");
    from_dockerfile::from_dockerfile(&df, text, "Dockerfile").expect("converts")
}

#[test]
fn typed_dockerfile_converts_with_lines_and_texts() {
    let text = "ARG V=1\nFROM localhost/busybox AS one\nRUN --mount=type=cache,target=/c,id=x \\\n    echo hi\nCOPY --from=one --chown=1:2 --chmod=644 a b /d/\nHEALTHCHECK --interval=5s CMD true\nONBUILD RUN echo later\n";
    let input = parse_input(text);
    assert_eq!(
        input.meta_args,
        vec![("V".to_string(), Some("1".to_string()))]
    );
    let s = &input.stages[0];
    assert_eq!(
        (s.line, s.base.as_str(), s.name.as_deref()),
        (2, "localhost/busybox", Some("one"))
    );
    assert_eq!(s.instrs[0].line, 3);
    assert_eq!(
        s.instrs[0].text,
        "RUN --mount=type=cache,target=/c,id=x echo hi"
    );
    match &s.instrs[0].kind {
        Kind::Run { mounts, .. } => assert!(mounts[0].contains("target=/c"), "{mounts:?}"),
        other => panic!("{other:?}"),
    }
    match &s.instrs[1].kind {
        Kind::Copy {
            from,
            chown,
            chmod,
            sources,
            dest,
            ..
        } => {
            assert_eq!(from.as_deref(), Some("one"));
            assert_eq!(chown.as_deref(), Some("1:2"));
            assert_eq!(chmod.as_deref(), Some("644"));
            assert_eq!(sources, &vec!["a".to_string(), "b".to_string()]);
            assert_eq!(dest, "/d/");
        }
        other => panic!("{other:?}"),
    }
    match &s.instrs[2].kind {
        Kind::Healthcheck { interval, .. } => assert_eq!(*interval, 5_000_000_000),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.instrs[3].kind,
        Kind::OnBuild("RUN echo later".to_string())
    );
    let t = from_dockerfile::parse_trigger("COPY a /b").expect("trigger");
    assert!(matches!(t.kind, Kind::Copy { .. }));
}

#[test]
fn run_heredocs_become_scripts() {
    let input = parse_input("FROM scratch\nRUN <<EOF\necho one\nEOF\nRUN <<EOF\n#!/bin/sh\necho two\nEOF\nRUN cat <<EOF > /f\nbody\nEOF\n");
    let p = plan(&input, &opts(&[], None)).expect("plan");
    let steps = p.resolve_stage(0, &BaseInfo::default()).expect("resolve");
    let runs: Vec<&RunOp> = steps
        .iter()
        .map(|s| match &s.op {
            Op::Run(r) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(runs[0].argv, vec!["/bin/sh", "-c", "echo one\n"]);
    assert!(runs[0].script.is_none());
    assert_eq!(runs[1].argv, vec!["/run/hoist/heredoc/EOF"]);
    assert_eq!(
        runs[1].script.as_ref().map(|s| s.content.as_str()),
        Some("#!/bin/sh\necho two\n")
    );
    assert_eq!(
        runs[2].argv,
        vec!["/bin/sh", "-c", "cat <<EOF > /f\nbody\nEOF"]
    );
}

#[test]
fn absolute_workdir_is_kept_as_written() {
    let input = parse_input("FROM scratch\nWORKDIR /tmp/\nWORKDIR a/../b\n");
    let p = plan(&input, &opts(&[], None)).expect("plan");
    let steps = p.resolve_stage(0, &BaseInfo::default()).expect("resolve");
    assert_eq!(steps[0].op, Op::Workdir("/tmp/".into()));
    assert_eq!(steps[1].op, Op::Workdir("/tmp/b".into()));
}

#[test]
fn cache_mount_sharing_reaches_the_step() {
    let input = parse_input(
        "FROM a\nRUN --mount=type=cache,target=/l,sharing=locked --mount=type=cache,target=/p,sharing=private --mount=type=cache,target=/s true\n",
    );
    let p = plan(&input, &opts(&[], None)).expect("plan");
    let steps = p.resolve_stage(0, &BaseInfo::default()).expect("resolve");
    let Op::Run(r) = &steps[0].op else {
        panic!("run")
    };
    let sharing: Vec<Sharing> = r
        .mounts
        .iter()
        .map(|m| match m {
            RunMount::Cache { sharing, .. } => *sharing,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sharing,
        vec![Sharing::Locked, Sharing::Private, Sharing::Shared]
    );
}

#[test]
fn cache_parts_name_each_variable_a_run_sees_and_an_arg_only_by_its_text() {
    let input = parse_input("FROM a\nARG V=1\nENV E=x\nRUN echo hi\n");
    let p = plan(&input, &opts(&[("V", "2")], None)).expect("plan");
    let steps = p.resolve_stage(0, &BaseInfo::default()).expect("resolve");
    assert_eq!(
        steps[0].cache_parts(),
        vec![("instruction".to_string(), steps[0].text.clone())]
    );
    let names: Vec<String> = steps[2].cache_parts().into_iter().map(|(k, _)| k).collect();
    assert!(names.contains(&"env V".to_string()), "{names:?}");
    assert!(names.contains(&"env E".to_string()), "{names:?}");
    assert_eq!(steps[2].kind(), "RUN");
}

#[test]
fn arm64_builtin_args_leave_out_the_default_variant() {
    let arm64 = Platform {
        os: "linux".into(),
        arch: "arm64".into(),
        variant: Some("v8".into()),
    };
    let args = arm64.builtin_args();
    let get = |k: &str| {
        args.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .expect(k)
    };
    assert_eq!(get("TARGETPLATFORM"), "linux/arm64");
    assert_eq!(get("TARGETVARIANT"), "");
    assert_eq!(get("BUILDPLATFORM"), "linux/arm64");
    assert!(arm64.matches("linux/arm64") && arm64.matches("linux/arm64/v8"));
    let arm = Platform {
        os: "linux".into(),
        arch: "arm".into(),
        variant: Some("v7".into()),
    };
    let args = arm.builtin_args();
    assert!(args.contains(&("TARGETPLATFORM".into(), "linux/arm/v7".into())));
    assert!(args.contains(&("TARGETVARIANT".into(), "v7".into())));
}
