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
                read_only: false
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
