//! The build cache through the real binary: hits do not rerun steps, what busts which step,
//! `--no-cache`, same inputs giving the same image, concurrent builds into one store, pruned
//! layers, `--explain-cache`, `prune --cache`, cache mount `sharing=`, reproducibility across
//! stores and users, and stages that run step by step side by side. No test depends on timing:
//! waits are bounded so that a test fails rather than hangs.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::TestEnv;

/// A test environment with the busybox base image imported as `localhost/busybox`.
fn env() -> TestEnv {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    env
}

/// Writes (or rewrites) files of the context dir `ctx`.
fn context(env: &TestEnv, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
    }
    if env.as_user.is_some() {
        common::chown_tree(&dir, 65534);
    }
    dir
}

/// `hoist build --progress plain ARGS… ctx`; returns stdout.
fn build(env: &TestEnv, args: &[&str]) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push("ctx");
    env.ok(all)
}

fn last_line(out: &str) -> String {
    out.lines().last().unwrap_or_default().trim().to_string()
}

/// The step numbers a build's plain output marks `CACHED`.
fn cached_steps(out: &str) -> Vec<usize> {
    out.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("STEP ")?;
            let (n, tail) = rest.split_once('/')?;
            tail.ends_with(": CACHED").then(|| n.parse().ok()).flatten()
        })
        .collect()
}

/// Builds `ctx` as `app` and exports its files to a fresh dir; returns the build's stdout and
/// the dir.
fn build_export(env: &TestEnv, args: &[&str], n: usize) -> (String, PathBuf) {
    let dest = env.path(&format!("out{n}"));
    let spec = format!("type=local,dest={}", dest.display());
    let mut all: Vec<&str> = vec!["-t", "app", "-o", &spec];
    all.extend_from_slice(args);
    (build(env, &all), dest)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Image lines of `hoist images -a` (header left out).
fn image_lines(env: &TestEnv) -> Vec<String> {
    env.ok(["images", "-a"])
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every file under the store except the per-process scratch dir, with its size and mtime.
fn store_listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e.path().strip_prefix(root).expect("below root");
        if rel.starts_with("tmp") || e.file_type().is_dir() {
            continue;
        }
        let m = e.metadata().expect("stat");
        out.push(format!(
            "{} {} {:?}",
            rel.display(),
            m.len(),
            m.modified().ok()
        ));
    }
    out
}

const STAMPS: &str = "FROM localhost/busybox
RUN cat /proc/sys/kernel/random/uuid > /s1
COPY a.txt /a.txt
RUN cat /proc/sys/kernel/random/uuid > /s2
COPY b.txt /b.txt
RUN cat /proc/sys/kernel/random/uuid > /s3
";

#[test]
fn a_hit_does_not_rerun_a_run_step() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", STAMPS), ("a.txt", "a"), ("b.txt", "b")],
    );
    let (first, o1) = build_export(&env, &[], 1);
    assert!(cached_steps(&first).is_empty(), "{first}");
    let (second, o2) = build_export(&env, &[], 2);
    assert_eq!(cached_steps(&second), vec![2, 3, 4, 5, 6], "{second}");
    for f in ["s1", "s2", "s3"] {
        assert_eq!(
            read(&o1.join(f)),
            read(&o2.join(f)),
            "{f} was written again"
        );
    }
}

#[test]
fn a_changed_file_busts_exactly_the_steps_from_its_copy_and_is_explained() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", STAMPS), ("a.txt", "a"), ("b.txt", "b")],
    );
    let (_, o1) = build_export(&env, &[], 1);
    context(&env, &[("b.txt", "changed")]);
    let (out, o2) = build_export(&env, &["--explain-cache"], 2);
    assert_eq!(cached_steps(&out), vec![2, 3, 4], "{out}");
    assert_eq!(read(&o1.join("s1")), read(&o2.join("s1")));
    assert_eq!(read(&o1.join("s2")), read(&o2.join("s2")));
    assert_ne!(read(&o1.join("s3")), read(&o2.join("s3")));
    assert_eq!(read(&o2.join("b.txt")), "changed");
    assert!(
        out.contains("Dockerfile:5: COPY b.txt /b.txt: cache miss: file `b.txt` changed"),
        "{out}"
    );
    assert!(
        out.contains("Dockerfile:6: RUN cat /proc/sys/kernel/random/uuid > /s3: cache miss: the earlier step `Dockerfile:5: COPY b.txt /b.txt` missed"),
        "{out}"
    );
    // a new base image under the same name: the first step says so
    let tar = common::busybox_rootfs();
    let mut c = env.cmd([
        "import".as_ref(),
        tar.as_os_str(),
        "localhost/busybox".as_ref(),
    ]);
    c.env("SOURCE_DATE_EPOCH", "5");
    let o = common::run(&mut c);
    common::assert_success(&c, &o);
    let (out, _) = build_export(&env, &["--explain-cache"], 3);
    assert!(cached_steps(&out).is_empty(), "{out}");
    assert!(
        out.contains("Dockerfile:2: RUN cat /proc/sys/kernel/random/uuid > /s1: cache miss: the stage's base changed (`FROM localhost/busybox`)"),
        "{out}"
    );
}

#[test]
fn a_changed_build_arg_busts_only_the_steps_that_see_it() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox
RUN cat /proc/sys/kernel/random/uuid > /s1
ARG V=1
COPY a.txt /a.txt
LABEL plain=yes
RUN echo $V > /v
",
            ),
            ("a.txt", "a"),
        ],
    );
    build(&env, &["-t", "app"]);
    let out = build(
        &env,
        &["-t", "app", "--build-arg", "V=2", "--explain-cache"],
    );
    // RUN s1, ARG, COPY and LABEL cannot see V's value; the RUN after them can
    assert_eq!(cached_steps(&out), vec![2, 3, 4, 5], "{out}");
    assert!(out.contains("`V` changed from `1` to `2`"), "{out}");
}

#[test]
fn no_cache_reruns_everything() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", STAMPS), ("a.txt", "a"), ("b.txt", "b")],
    );
    let (_, o1) = build_export(&env, &[], 1);
    let (out, o2) = build_export(&env, &["--no-cache"], 2);
    assert!(cached_steps(&out).is_empty(), "{out}");
    for f in ["s1", "s2", "s3"] {
        assert_ne!(
            read(&o1.join(f)),
            read(&o2.join(f)),
            "{f} came from the cache"
        );
    }
    // --layers=false neither reads nor writes the cache
    let (out, _) = build_export(&env, &["--layers=false"], 3);
    assert!(cached_steps(&out).is_empty(), "{out}");
    // --no-cache-filter names the stages that rerun
    let out = build(&env, &["-t", "app", "--no-cache-filter", "0"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
    let out = build(&env, &["-t", "app"]);
    assert_eq!(cached_steps(&out), vec![2, 3, 4, 5, 6], "{out}");
    let err = env.fails(1, ["build", "--no-cache-filter", "nope", "ctx"]);
    assert!(err.contains("no stage `nope`"), "{err}");
}

#[test]
fn an_unchanged_rebuild_gives_the_same_image_writes_nothing_and_leaves_no_dangling_image() {
    let env = env();
    context(
        &env,
        &[("Dockerfile", STAMPS), ("a.txt", "a"), ("b.txt", "b")],
    );
    let first = last_line(&build(&env, &["-t", "app"]));
    let before = store_listing(&env.root);
    let second = last_line(&build(&env, &["-t", "app"]));
    assert_eq!(first, second);
    assert_eq!(
        before,
        store_listing(&env.root),
        "the rebuild wrote to the store"
    );
    // a changed rebuild moves the name; the old image does not stay as <none>
    context(&env, &[("b.txt", "changed")]);
    for n in 0..3 {
        context(&env, &[("a.txt", &format!("a{n}"))]);
        build(&env, &["-t", "app"]);
    }
    let lines = image_lines(&env);
    assert!(!lines.iter().any(|l| l.contains("<none>")), "{lines:?}");
    assert_eq!(lines.len(), 2, "{lines:?}");
}

#[test]
fn concurrent_identical_builds_into_one_store_both_succeed() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox\nCOPY a.txt /a.txt\nRUN echo hi > /hi\n",
            ),
            ("a.txt", "a"),
        ],
    );
    let spawn = |tag: &str| {
        env.cmd(["build", "--timestamp", "0", "-t", tag, "ctx"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn("one"), spawn("two"));
    let (a, b) = (
        a.wait_with_output().expect("wait"),
        b.wait_with_output().expect("wait"),
    );
    assert!(a.status.success(), "{}", common::show(&a));
    assert!(b.status.success(), "{}", common::show(&b));
    assert_eq!(
        last_line(&String::from_utf8_lossy(&a.stdout)),
        last_line(&String::from_utf8_lossy(&b.stdout))
    );
    let id = |n: &str| {
        let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", n])).expect("json");
        v[0]["Id"].clone()
    };
    assert_eq!(id("one"), id("two"));
}

#[test]
fn an_entry_whose_layer_blob_was_pruned_is_a_miss() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN cat /proc/sys/kernel/random/uuid > /s1\n",
        )],
    );
    build(&env, &["-t", "app"]);
    env.ok(["rmi", "app"]);
    // remove the blobs and layer dirs the cache entries name, as a collection would
    let keys = env.root.join("cache/keys");
    let mut removed = 0;
    for e in fs::read_dir(&keys).expect("cache/keys") {
        let entry: serde_json::Value =
            serde_json::from_slice(&fs::read(e.expect("entry").path()).expect("read"))
                .expect("json");
        if let Some(l) = entry["layer"].as_object() {
            let hex = |k: &str| {
                l[k].as_str()
                    .expect(k)
                    .trim_start_matches("sha256:")
                    .to_string()
            };
            // `rmi` may have collected it already
            let _ = fs::remove_file(env.root.join("blobs/sha256").join(hex("digest")));
            let _ = fs::remove_dir_all(env.root.join("layers").join(hex("diff_id")));
            removed += 1;
        }
    }
    assert_eq!(removed, 1);
    let out = build(&env, &["-t", "app"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
    let out = build(&env, &["-t", "app"]);
    assert_eq!(cached_steps(&out), vec![2], "{out}");
    // `prune` collects the layers no image uses and drops the entries that named them
    env.ok(["rmi", "app"]);
    env.ok(["prune"]);
    let with_layer = fs::read_dir(&keys)
        .expect("cache/keys")
        .filter(|e| {
            let p = e.as_ref().expect("entry").path();
            let v: serde_json::Value =
                serde_json::from_slice(&fs::read(p).expect("read")).expect("json");
            v["layer"].is_object()
        })
        .count();
    assert_eq!(with_layer, 0);
    let out = build(&env, &["-t", "app"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
}

#[test]
fn prune_cache_and_builder_prune_empty_the_build_cache() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN --mount=type=cache,target=/c touch /c/kept && cat /proc/sys/kernel/random/uuid > /s\n",
        )],
    );
    build(&env, &["-t", "app"]);
    let mounts = env.root.join("cache/run-mounts");
    assert!(fs::read_dir(&mounts).expect("run-mounts").count() > 0);
    env.ok(["prune", "--cache"]);
    assert!(!mounts.exists());
    assert!(!env.root.join("cache/keys").exists());
    let out = build(&env, &["-t", "app"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
    env.ok(["builder", "prune", "-f"]);
    let out = build(&env, &["-t", "app"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
    // the images are still there
    env.ok(["inspect", "app"]);
}

#[test]
fn sharing_locked_serializes_two_concurrent_builds() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox
ARG N
RUN --mount=type=cache,id=shared,target=/c,sharing=locked \\
    if [ -e /c/busy ]; then touch /c/overlap; fi; touch /c/busy; sleep 2; rm /c/busy; echo $N >> /c/done
",
        )],
    );
    let spawn = |n: &str| {
        env.cmd(["build", "--build-arg", &format!("N={n}"), "ctx"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn("1"), spawn("2"));
    for c in [a, b] {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", common::show(&o));
    }
    let mut found = false;
    for d in fs::read_dir(env.root.join("cache/run-mounts")).expect("run-mounts") {
        let d = d.expect("entry").path();
        if d.is_dir() {
            found = true;
            assert!(!d.join("overlap").exists(), "the two steps overlapped");
            let done = read(&d.join("done"));
            assert_eq!(done.lines().count(), 2, "{done}");
        }
    }
    assert!(found);
}

#[test]
fn same_inputs_give_the_same_digest_in_another_store_directory_and_user() {
    let dockerfile = "FROM localhost/busybox
COPY a.txt /a.txt
RUN touch /t && mkdir -p /d && echo x > /d/f
RUN stat -c %Y /t /d /d/f /a.txt > /times
";
    let digest = |env: &TestEnv, ctx_name: &str| {
        let tar = common::busybox_rootfs();
        let mut c = env.cmd([
            "import".as_ref(),
            tar.as_os_str(),
            "localhost/busybox".as_ref(),
        ]);
        c.env("SOURCE_DATE_EPOCH", "1000");
        let o = common::run(&mut c);
        assert!(o.status.success(), "{}", common::show(&o));
        let dir = env.path(ctx_name);
        fs::create_dir_all(&dir).expect("ctx");
        fs::write(dir.join("Dockerfile"), dockerfile).expect("write");
        fs::write(dir.join("a.txt"), "a").expect("write");
        if env.as_user.is_some() {
            common::chown_tree(&dir, 65534);
        }
        let out = env.ok([
            "build",
            "--timestamp",
            "1000",
            "-t",
            "app",
            dir.to_str().expect("utf-8"),
        ]);
        let id = last_line(&out);
        let inspect: serde_json::Value =
            serde_json::from_str(&env.ok(["inspect", "app"])).expect("json");
        (id, inspect[0]["Digest"].clone())
    };
    let a = TestEnv::new();
    let b = TestEnv::rootless();
    let (id_a, digest_a) = digest(&a, "one");
    let (id_b, digest_b) = digest(&b, "some/other/dir");
    assert_eq!(id_a, id_b);
    assert_eq!(digest_a, digest_b);
    // a later step saw the times the earlier layer's blob holds, not the times of the run
    let dest = a.path("exported");
    let spec = format!("type=local,dest={}", dest.display());
    a.ok([
        "build",
        "--timestamp",
        "1000",
        "--no-cache",
        "-o",
        &spec,
        a.path("one").to_str().expect("utf-8"),
    ]);
    let times = read(&dest.join("times"));
    assert!(times.lines().all(|l| l == "1000"), "{times}");
    // a cached rebuild agrees with the uncached one
    let out = a.ok([
        "build",
        "--timestamp",
        "1000",
        "-t",
        "app",
        "--progress",
        "plain",
    ]
    .into_iter()
    .chain([a.path("one").to_str().expect("utf-8")]));
    assert!(out.contains("CACHED"), "{out}");
    assert_eq!(last_line(&out), id_a);
}

#[test]
fn a_stage_runs_its_early_steps_while_the_stage_it_copies_from_still_runs() {
    let env = env();
    // stage `a` can only finish once stage `b`'s first RUN has run; `b` needs `a` only at its
    // COPY --from: only a step-by-step schedule finishes (a bounded wait fails otherwise)
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS a
RUN --mount=type=cache,id=meet,target=/m \\
    i=0; while [ ! -e /m/b-was-here ]; do i=$((i+1)); [ $i -gt 600 ] && exit 7; sleep 0.1; done; echo a > /a
FROM localhost/busybox AS b
RUN --mount=type=cache,id=meet,target=/m touch /m/b-was-here
COPY --from=a /a /a
",
        )],
    );
    let mut c = env.cmd(["build", "--progress", "plain", "-t", "app", "ctx"]);
    let out = common::run(&mut c);
    assert!(out.status.success(), "{}", common::show(&out));
}

#[test]
fn bind_mounts_are_keyed_by_what_they_bind_and_secrets_and_cache_mounts_never() {
    let env = env();
    context(
        &env,
        &[
            (
                "Dockerfile",
                "FROM localhost/busybox
RUN --mount=type=secret,id=tok --mount=type=cache,target=/c cat /proc/sys/kernel/random/uuid > /s1; date >> /c/log
RUN --mount=type=bind,source=data,target=/d cat /d/x > /y
",
            ),
            ("data/x", "one"),
        ],
    );
    let secret = env.path("secret");
    fs::write(&secret, "first").expect("write");
    let spec = format!("id=tok,src={}", secret.display());
    build(&env, &["-t", "app", "--secret", &spec]);
    fs::write(&secret, "second").expect("write");
    let out = build(&env, &["-t", "app", "--secret", &spec]);
    assert_eq!(cached_steps(&out), vec![2, 3], "{out}");
    context(&env, &[("data/x", "two")]);
    let out = build(&env, &["-t", "app", "--secret", &spec, "--explain-cache"]);
    assert_eq!(cached_steps(&out), vec![2], "{out}");
    assert!(
        out.contains("what the bind mount at `/d` reads changed"),
        "{out}"
    );
}

#[test]
fn sharing_private_gives_a_concurrent_user_a_fresh_directory() {
    let env = env();
    // `a` holds the private mount until `b` is done; `b` starts its step only once `a` is in
    // its own, and records whether it sees `a`'s file (a shared mount `sync` carries the
    // markers; every wait is bounded)
    context(
        &env,
        &[(
            "Dockerfile",
            r#"FROM localhost/busybox
ARG ROLE
RUN --mount=type=cache,id=p,target=/c,sharing=private --mount=type=cache,id=sync,target=/s \
    i=0; \
    if [ "$ROLE" = a ]; then \
      echo a > /c/owner; touch /s/a-started; \
      while [ ! -e /s/b-done ]; do i=$((i+1)); [ $i -gt 600 ] && exit 7; sleep 0.1; done; \
    else \
      while [ ! -e /s/a-started ]; do i=$((i+1)); [ $i -gt 600 ] && exit 7; sleep 0.1; done; \
      if [ -e /c/owner ]; then echo same > /s/result; else echo fresh > /s/result; fi; \
      touch /s/b-done; \
    fi
"#,
        )],
    );
    let spawn = |role: &str| {
        env.cmd(["build", "--build-arg", &format!("ROLE={role}"), "ctx"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn("a"), spawn("b"));
    for c in [a, b] {
        let o = c.wait_with_output().expect("wait");
        assert!(o.status.success(), "{}", common::show(&o));
    }
    let results: Vec<String> = fs::read_dir(env.root.join("cache/run-mounts"))
        .expect("run-mounts")
        .filter_map(|d| fs::read_to_string(d.expect("entry").path().join("result")).ok())
        .collect();
    assert_eq!(results, vec!["fresh\n".to_string()]);
}

#[test]
fn output_of_stages_running_side_by_side_never_mixes_within_a_line() {
    let env = env();
    // `a` prints half a line, lets `b` print a whole one, then ends its line
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS a
RUN --mount=type=cache,id=sync,target=/m \\
    printf XXXX; touch /m/a-half; \\
    i=0; while [ ! -e /m/b-printed ]; do i=$((i+1)); [ $i -gt 600 ] && exit 7; sleep 0.1; done; echo XXXX
FROM localhost/busybox AS b
RUN --mount=type=cache,id=sync,target=/m \\
    i=0; while [ ! -e /m/a-half ]; do i=$((i+1)); [ $i -gt 600 ] && exit 7; sleep 0.1; done; \\
    sleep 0.5; echo YYYY; touch /m/b-printed
COPY --from=a /etc/passwd /x
",
        )],
    );
    let out = build(&env, &[]);
    assert!(out.lines().any(|l| l == "XXXXXXXX"), "{out}");
    assert!(out.lines().any(|l| l == "YYYY"), "{out}");
}

/// Issue 9: with `--layers=false`, an earlier stage's layer the image does not use was deleted
/// at the end of the build (seconds for an apt layer); it is moved into `layers/` and the next
/// `prune` deletes it.
#[test]
fn layers_false_leaves_an_earlier_stages_layer_for_prune() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox AS a\nRUN echo built > /x && echo more > /unused\n\
             FROM localhost/busybox\nCOPY --from=a /x /x\n",
        )],
    );
    let layers = |env: &TestEnv| -> usize {
        fs::read_dir(env.root.join("layers"))
            .expect("layers")
            .count()
    };
    build(&env, &["--layers=false", "-t", "app"]);
    // the base (unpacked by the build), the COPY layer of the image and stage a's RUN layer
    assert_eq!(layers(&env), 3);
    let out = env.ok(["run", "--rm", "app", "cat", "/x"]);
    assert_eq!(out, "built\n");
    env.ok(["prune"]);
    assert_eq!(layers(&env), 2, "prune deletes stage a's layer");
    env.ok(["check"]);
}

/// Issue 9: `builder prune --filter until=DURATION` keeps what is newer; `--keep-storage SIZE`
/// keeps the cache under SIZE; other filters are refused, never ignored.
#[test]
fn builder_prune_until_and_keep_storage() {
    let env = env();
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nRUN --mount=type=cache,target=/c touch /c/kept && cat /proc/sys/kernel/random/uuid > /s\n",
        )],
    );
    build(&env, &["-t", "app"]);
    // everything is younger than a day: nothing goes, the next build is cached
    let out = env.ok(["builder", "prune", "--filter", "until=24h"]);
    assert!(out.starts_with("Removed 0 cached steps"), "{out}");
    let out = build(&env, &["-t", "app"]);
    assert_eq!(cached_steps(&out), vec![2], "{out}");
    // a cache of at most 0 bytes: entries and cache mounts go
    let out = env.ok(["builder", "prune", "--keep-storage", "0"]);
    assert!(!out.starts_with("Removed 0 cached steps"), "{out}");
    assert_eq!(
        fs::read_dir(env.root.join("cache/run-mounts"))
            .expect("run-mounts")
            .filter(|e| e.as_ref().expect("entry").path().is_dir())
            .count(),
        0
    );
    let out = build(&env, &["-t", "app"]);
    assert!(cached_steps(&out).is_empty(), "{out}");
    let err = env.fails(1, ["builder", "prune", "--filter", "label=x"]);
    assert!(
        err.contains("`--filter label=x`: unsupported filter"),
        "{err}"
    );
    let err = env.fails(1, ["builder", "prune", "--keep-storage", "lots"]);
    assert!(err.contains("`--keep-storage lots`"), "{err}");
}

/// The diff_ids of image `name`, bottom first (`hoist inspect`).
fn diff_ids(env: &TestEnv, name: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", name])).expect("json");
    v[0]["RootFS"]["Layers"]
        .as_array()
        .expect("RootFS.Layers")
        .iter()
        .map(|l| l.as_str().expect("diff_id").to_string())
        .collect()
}

#[test]
fn a_layer_no_later_step_reads_is_made_in_memory_the_same_and_unpacked_when_read() {
    // rootless: hoist has a mount namespace of its own, where the last COPY of the target is
    // written into a tmpfs and only its blob stored
    let env = TestEnv::rootless();
    env.import_busybox("localhost/busybox");
    let last_copy = "FROM localhost/busybox\nCOPY . /app/\nCMD [\"sh\"]\n";
    let dir = context(
        &env,
        &[
            ("Dockerfile", last_copy),
            (".dockerignore", "Dockerfile\n.dockerignore\n"),
            ("run.sh", "#!/bin/sh\necho hi\n"),
            ("sub/deep/b.txt", "b\n"),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("run.sh"), fs::Permissions::from_mode(0o750)).expect("chmod");
    std::os::unix::fs::symlink("sub/deep/b.txt", dir.join("link")).expect("symlink");
    common::chown_tree(&dir, 65534);
    let mut cmd = env.cmd(["--log-level", "debug", "build", "-t", "mem", "ctx"]);
    let out = common::run(&mut cmd);
    common::assert_success(&cmd, &out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("from memory"), "{err}");
    let mem_layers = diff_ids(&env, "mem");
    let copy_layer = mem_layers.last().expect("the COPY layer").clone();
    let hex = copy_layer.trim_start_matches("sha256:");
    // only the blob was stored: no dir in layers/ until something reads the files
    assert!(!env.root.join("layers").join(hex).exists());
    // an unchanged rebuild hits the cache and still unpacks nothing
    let again = last_line(&build(&env, &["-t", "mem"]));
    assert!(!env.root.join("layers").join(hex).exists());
    // a step after the COPY reads the files: the same COPY made on disk is the same layer
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nCOPY . /app/\nRUN cat /app/link /app/sub/deep/b.txt > /both\n",
        )],
    );
    build(&env, &["--no-cache", "-t", "disk"]);
    let disk_layers = diff_ids(&env, "disk");
    assert_eq!(disk_layers[..disk_layers.len() - 1], mem_layers[..]);
    // the cached COPY of the first build, read by a new RUN: unpacked from its blob first
    context(
        &env,
        &[(
            "Dockerfile",
            "FROM localhost/busybox\nCOPY . /app/\nCMD [\"sh\"]\nRUN /app/run.sh > /said\n",
        )],
    );
    let out = build(&env, &["-t", "later"]);
    assert_eq!(cached_steps(&out), vec![2, 3], "{out}");
    assert!(env.root.join("layers").join(hex).is_dir());
    assert_eq!(env.ok(["run", "--rm", "later", "cat", "/said"]), "hi\n");
    // and the image itself runs with the files, modes and link the context has
    let listing = env.ok([
        "run",
        "--rm",
        &again,
        "sh",
        "-c",
        "stat -c '%a %n' /app/run.sh && readlink /app/link && cat /app/link",
    ]);
    assert_eq!(listing, "750 /app/run.sh\nsub/deep/b.txt\nb\n");
}
