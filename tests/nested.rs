//! hoist inside containers, through the real binary: inside `hoist run` (outer hoist as root,
//! as a user without a subordinate range, and as `hoisttest` with one) and inside a rootless
//! `podman run`, the inner hoist — bound in with `-v`, with the host's C library dirs and a
//! store — builds and runs an image. Inside `hoist run` without `--security-opt
//! seccomp=unconfined` (docker's default profile refuses `unshare`), `hoist info` names the
//! cause and the fix and exits 1.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{chown_tree, run, show, TestEnv};

/// What the inner hoist builds.
const DOCKERFILE: &str = "FROM bb\nRUN echo nested > /f\n";

/// The script run in the outer container: probe, import, build, run.
const SCRIPT: &str = "hoist --root /store info > /store-info.txt; echo info-rc=$?; \
     grep -E '^(userns|namespaces|proc|overlay) ' /store-info.txt; \
     hoist --root /store import /bb.tar bb > /dev/null && \
     hoist --root /store build -q -t nested /ctx > /dev/null && \
     hoist --root /store run --rm nested cat /f";

/// The directories of the shared libraries the hoist binary loads (from `ldd`).
fn lib_dirs() -> Vec<PathBuf> {
    let out = run(Command::new("ldd").arg(common::hoist_bin()));
    assert!(out.status.success(), "ldd\n{}", show(&out));
    let mut dirs: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with('/'))
        .filter_map(|w| Path::new(w).parent().map(Path::to_path_buf))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// A context with [`DOCKERFILE`] and an empty inner store dir, both under `dir`, owned by
/// `uid`; the `-v` arguments that bind them, the hoist binary, its libraries and the busybox
/// root file system into the outer container.
fn inner_volumes(dir: &Path, uid: u32) -> Vec<String> {
    let ctx = dir.join("ctx");
    let store = dir.join("inner");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::create_dir_all(&store).expect("store");
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    chown_tree(&ctx, uid);
    chown_tree(&store, uid);
    let mut v = vec![
        format!("{}:/usr/local/bin/hoist:ro", common::hoist_bin().display()),
        format!("{}:/bb.tar:ro", common::busybox_rootfs().display()),
        format!("{}:/store", store.display()),
        format!("{}:/ctx:ro", ctx.display()),
    ];
    for d in lib_dirs() {
        v.push(format!("{}:{}:ro", d.display(), d.display()));
    }
    v
}

fn run_args(vols: &[String], extra: &[&str], image: &str, script: &str) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "--rm".into()];
    a.extend(extra.iter().map(|s| s.to_string()));
    for v in vols {
        a.push("-v".into());
        a.push(v.clone());
    }
    a.extend([image.into(), "sh".into(), "-c".into(), script.into()]);
    a
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_nested_build(out: &Output) {
    assert!(out.status.success(), "{}", show(out));
    let t = text(out);
    assert!(t.contains("info-rc=0\n"), "{}", show(out));
    assert!(
        t.contains("userns     fallback: single-id mode (0 → 0)"),
        "{}",
        show(out)
    );
    assert!(
        t.contains("proc       fallback: cannot mount a new /proc"),
        "{}",
        show(out)
    );
    assert!(t.ends_with("nested\n"), "{}", show(out));
}

#[test]
fn hoist_builds_inside_hoist_run_as_root() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let vols = inner_volumes(env.dir.path(), 0);
    let mut cmd = env.cmd(run_args(
        &vols,
        &["--security-opt", "seccomp=unconfined"],
        "bb",
        SCRIPT,
    ));
    let out = run(&mut cmd);
    assert_nested_build(&out);
    assert!(text(&out).contains("namespaces ok"), "{}", show(&out));
}

#[test]
fn inside_hoist_run_with_its_seccomp_profile_info_names_the_cause() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let vols = inner_volumes(env.dir.path(), 0);
    let mut cmd = env.cmd(run_args(
        &vols,
        &[],
        "bb",
        "hoist --root /store info; echo info-rc=$?",
    ));
    let out = run(&mut cmd);
    let t = text(&out);
    assert!(t.ends_with("info-rc=1\n"), "{}", show(&out));
    assert!(
        t.contains(
            "userns     cannot build: no user namespace: a seccomp filter refuses \
             unshare(CLONE_NEWUSER)"
        ),
        "{}",
        show(&out)
    );
    assert!(
        t.contains("`--security-opt seccomp=unconfined` (docker, podman, `hoist run`)"),
        "{}",
        show(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error: builds cannot run here"),
        "{}",
        show(&out)
    );
}

#[test]
fn hoist_builds_inside_hoist_run_rootless() {
    // single id outside
    let env = TestEnv::rootless();
    env.import_busybox("bb");
    let vols = inner_volumes(env.dir.path(), 65534);
    let mut cmd = env.cmd(run_args(
        &vols,
        &["--security-opt", "seccomp=unconfined"],
        "bb",
        SCRIPT,
    ));
    assert_nested_build(&run(&mut cmd));

    // a subordinate range outside
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    let vols = inner_volumes(env.dir.path(), uid);
    let hoisttest = |args: &[String]| {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--init-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(common::hoist_bin())
        .args(args)
        .env("HOIST_ROOT", &env.root)
        .env("HOME", env.dir.path())
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
        run(&mut c)
    };
    let tar = common::busybox_rootfs().display().to_string();
    let out = hoisttest(&["import".into(), tar, "bb".into()]);
    assert!(out.status.success(), "{}", show(&out));
    let out = hoisttest(&run_args(
        &vols,
        &["--security-opt", "seccomp=unconfined"],
        "bb",
        SCRIPT,
    ));
    assert_nested_build(&out);
}

#[test]
fn hoist_builds_inside_rootless_podman() {
    let podman = common::require("podman");
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    let rt = env.path("xdg-run");
    fs::create_dir(&rt).expect("runtime dir");
    chown_tree(env.dir.path(), uid);
    fs::set_permissions(&rt, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let vols = inner_volumes(env.dir.path(), uid);
    let podman_as_hoisttest = |args: &[String]| {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--init-groups",
            "--",
        ])
        .arg(&podman)
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(["--events-backend", "file", "--root"])
        .arg(env.path("podman-root"))
        .arg("--runroot")
        .arg(rt.join("runroot"))
        .args(args)
        .env("HOME", env.dir.path())
        .env("XDG_RUNTIME_DIR", &rt)
        .env_remove("CONTAINERS_CONF")
        .current_dir(env.dir.path())
        .stdin(Stdio::null());
        run(&mut c)
    };
    let tar = common::busybox_rootfs().display().to_string();
    let imported = podman_as_hoisttest(&["import".into(), tar, "localhost/bb".into()]);
    let out = if imported.status.success() {
        // rootless podman cannot open /dev/net/tun here: the host's network
        podman_as_hoisttest(&run_args(
            &vols,
            &["--network", "host"],
            "localhost/bb",
            SCRIPT,
        ))
    } else {
        imported
    };
    // the pause process rootless podman leaves to hold its namespaces
    if let Ok(pid) = fs::read_to_string(rt.join("libpod/tmp/pause.pid")) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    assert_nested_build(&out);
    // podman's default seccomp profile refuses sethostname without CAP_SYS_ADMIN
    assert!(
        text(&out).contains("namespaces fallback: new mount, pid, uts and ipc namespaces per run, but the hostname cannot be set"),
        "{}",
        show(&out)
    );
}

/// The `hoisttest` user with a subordinate range (made by scripts/test.sh).
fn hoisttest_uid() -> u32 {
    let out = run(Command::new("id").args(["-u", "hoisttest"]));
    assert!(
        out.status.success(),
        "user `hoisttest` is missing: run scripts/test.sh (as root)"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}
