//! `hoist info` as a probe: each hostile host is simulated around the real binary — a seccomp
//! filter installed in the child just before it execs (docker's refusal of `unshare` and of
//! `clone` with namespace flags; AppArmor's "namespace created, then every capability denied"
//! as a refused `mount`), a private mount namespace of the child with sysctl files, `/proc`
//! masks, a hidden `newuidmap` or an overlayfs store mounted in it, and a real
//! `user.max_user_namespaces = 0` in a user namespace made by `unshare -Ur` — and each check's
//! message, fix and exit status are asserted. The masked `/proc` and overlayfs cases also build
//! through their fallbacks (bind `/proc`, copy the layers). Nothing is unshared in the test
//! harness itself: namespaces and filters are made in the forked child (`pre_exec`) or by
//! wrapper programs.

mod common;

use std::ffi::CString;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{chown_tree, run, show, TestEnv};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// What the child sets up before it execs (in this order).
#[derive(Default)]
struct Confine {
    /// Files made in a tmpfs mounted over `/proc/sys/kernel` (name, content).
    kernel_sysctls: Vec<(&'static str, &'static str)>,
    /// Paths `/dev/null` is bound over (docker masks `/proc/kcore` this way).
    null_over: Vec<&'static str>,
    /// An overlay (lower, upper, work, merged) to mount.
    overlay: Option<[String; 4]>,
    /// seccomp programs to install last.
    filters: Vec<BpfProgram>,
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn check(rc: libc::c_int) -> std::io::Result<()> {
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Confine {
    /// Makes `cmd` set this up in its child between fork and exec (only syscalls there, on
    /// values prepared here).
    fn apply(self, cmd: &mut Command) {
        let needs_ns =
            !self.kernel_sysctls.is_empty() || !self.null_over.is_empty() || self.overlay.is_some();
        let root = cstr("/");
        let tmpfs = cstr("tmpfs");
        let kernel = cstr("/proc/sys/kernel");
        let files: Vec<(CString, &'static str)> = self
            .kernel_sysctls
            .iter()
            .map(|(n, v)| (cstr(&format!("/proc/sys/kernel/{n}")), *v))
            .collect();
        let null = cstr("/dev/null");
        let nulls: Vec<CString> = self.null_over.iter().map(|p| cstr(p)).collect();
        let overlay = cstr("overlay");
        let ov = self.overlay.as_ref().map(|[l, u, w, m]| {
            (
                cstr(m),
                cstr(&format!("lowerdir={l},upperdir={u},workdir={w}")),
            )
        });
        let filters = self.filters;
        // SAFETY: the closure runs in the forked child and makes only raw syscalls on memory
        // prepared before the fork (apply_filter allocates nothing on success)
        unsafe {
            cmd.pre_exec(move || {
                let null_ptr = std::ptr::null();
                if needs_ns {
                    check(libc::unshare(libc::CLONE_NEWNS))?;
                    check(libc::mount(
                        null_ptr,
                        root.as_ptr(),
                        null_ptr,
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ))?;
                }
                if !files.is_empty() {
                    check(libc::mount(
                        tmpfs.as_ptr(),
                        kernel.as_ptr(),
                        tmpfs.as_ptr(),
                        0,
                        std::ptr::null(),
                    ))?;
                    for (path, value) in &files {
                        let fd = libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
                        check(fd)?;
                        libc::write(fd, value.as_ptr().cast(), value.len());
                        libc::close(fd);
                    }
                }
                for p in &nulls {
                    check(libc::mount(
                        null.as_ptr(),
                        p.as_ptr(),
                        null_ptr,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                if let Some((merged, data)) = &ov {
                    check(libc::mount(
                        overlay.as_ptr(),
                        merged.as_ptr(),
                        overlay.as_ptr(),
                        0,
                        data.as_ptr().cast(),
                    ))?;
                }
                for f in &filters {
                    seccompiler::apply_filter(f)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                }
                Ok(())
            });
        }
    }
}

fn filter(rules: Vec<(i64, Vec<SeccompRule>)>, action: SeccompAction) -> BpfProgram {
    let arch = TargetArch::try_from(std::env::consts::ARCH).expect("arch");
    SeccompFilter::new(
        rules.into_iter().collect(),
        SeccompAction::Allow,
        action,
        arch,
    )
    .expect("filter")
    .try_into()
    .expect("compile")
}

/// docker's default profile as far as namespaces go: `unshare` refused, `clone` with any
/// namespace flag refused, `clone3` answered ENOSYS (so the C library falls back to `clone`).
fn docker_like_seccomp() -> Vec<BpfProgram> {
    let ns_flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWCGROUP,
    ];
    let clone_rules = ns_flags
        .iter()
        .map(|&f| {
            let bit = f as u64;
            SeccompRule::new(vec![SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(bit),
                bit,
            )
            .expect("condition")])
            .expect("rule")
        })
        .collect();
    vec![
        filter(
            vec![(libc::SYS_unshare, vec![]), (libc::SYS_clone, clone_rules)],
            SeccompAction::Errno(libc::EPERM as u32),
        ),
        filter(
            vec![(libc::SYS_clone3, vec![])],
            SeccompAction::Errno(libc::ENOSYS as u32),
        ),
    ]
}

fn output(mut cmd: Command, confine: Confine) -> Output {
    confine.apply(&mut cmd);
    run(&mut cmd)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", show(out));
}

fn assert_has(out: &Output, text: &str) {
    let all = format!("{}{}", stdout(out), stderr(out));
    assert!(all.contains(text), "expected `{text}` in\n{}", show(out));
}

#[test]
fn disabled_by_max_user_namespaces_cannot_build_and_says_the_sysctl() {
    // a real kernel refusal: the limit set to 0 in a user namespace of our own, then hoist as
    // its uid 0 without capabilities (a container's root)
    let env = TestEnv::new();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-Ur",
        "sh",
        "-c",
        "echo 0 > /proc/sys/user/max_user_namespaces && \
         exec setpriv --inh-caps=-all --bounding-set=-all -- \"$0\" info",
    ])
    .arg(common::hoist_bin())
    .env("HOIST_ROOT", &env.root)
    .stdin(Stdio::null());
    let out = run(&mut cmd);
    assert_code(&out, 1);
    assert_has(
        &out,
        "userns     cannot build: no user namespace: unprivileged user namespaces are disabled \
         by sysctl `user.max_user_namespaces` = 0",
    );
    assert_has(
        &out,
        "fix: as root on the host: `sysctl -w user.max_user_namespaces=28633`",
    );
    assert!(
        stderr(&out).starts_with("Error: builds cannot run here: no user namespace"),
        "{}",
        show(&out)
    );
}

#[test]
fn debians_unprivileged_userns_clone_cannot_build_and_says_the_sysctl() {
    let env = TestEnv::rootless();
    let out = output(
        env.cmd(["info"]),
        Confine {
            kernel_sysctls: vec![("unprivileged_userns_clone", "0\n")],
            ..Default::default()
        },
    );
    assert_code(&out, 1);
    assert_has(
        &out,
        "disabled by sysctl `kernel.unprivileged_userns_clone` = 0",
    );
    assert_has(
        &out,
        "fix: as root: `sysctl -w kernel.unprivileged_userns_clone=1`",
    );
}

#[test]
fn apparmor_restriction_cannot_build_and_names_the_profile() {
    // Ubuntu's restriction: the namespace is created, then every capability in it is denied
    // (here: mount refused after unshare succeeded)
    let env = TestEnv::rootless();
    let out = output(
        env.cmd(["info"]),
        Confine {
            kernel_sysctls: vec![("apparmor_restrict_unprivileged_userns", "1\n")],
            filters: vec![filter(
                vec![(libc::SYS_mount, vec![])],
                SeccompAction::Errno(libc::EPERM as u32),
            )],
            ..Default::default()
        },
    );
    assert_code(&out, 1);
    assert_has(
        &out,
        "no user namespace: AppArmor restricts unprivileged user namespaces \
         (sysctl `kernel.apparmor_restrict_unprivileged_userns` = 1)",
    );
    assert_has(
        &out,
        "sudo install -m 644 contrib/apparmor/hoist /etc/apparmor.d/hoist && sudo apparmor_parser -r /etc/apparmor.d/hoist",
    );
    assert!(common::repo().join("contrib/apparmor/hoist").is_file());
}

#[test]
fn seccomp_refusing_unshare_cannot_build_rootless_or_as_root() {
    let env = TestEnv::rootless();
    let out = output(
        env.cmd(["info"]),
        Confine {
            filters: docker_like_seccomp(),
            ..Default::default()
        },
    );
    assert_code(&out, 1);
    assert_has(
        &out,
        "userns     cannot build: no user namespace: a seccomp filter refuses \
         unshare(CLONE_NEWUSER)",
    );
    assert_has(
        &out,
        "fix: run the container with a seccomp profile that allows `unshare`",
    );
    assert_has(&out, "--security-opt seccomp=unconfined");

    let env = TestEnv::new();
    let out = output(
        env.cmd(["info"]),
        Confine {
            filters: docker_like_seccomp(),
            ..Default::default()
        },
    );
    assert_code(&out, 1);
    assert_has(&out, "userns     ok: not needed");
    assert_has(
        &out,
        "namespaces cannot build: a container cannot be made: unshare of the mount, pid, uts \
         and ipc namespaces: Operation not permitted (os error 1) (a seccomp filter is on this \
         process)",
    );
    assert_has(&out, "seccompProfile.type: Unconfined");
}

#[test]
fn masked_proc_is_named_and_builds_bind_proc() {
    let env = TestEnv::rootless();
    // docker binds /dev/null over these (the ones this kernel has)
    let files: Vec<&'static str> = ["/proc/kcore", "/proc/keys", "/proc/timer_list"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(!files.is_empty(), "no maskable /proc file on this kernel");
    let first = files[0];
    let masked = || Confine {
        null_over: files.clone(),
        ..Default::default()
    };
    let out = output(env.cmd(["info"]), masked());
    assert_code(&out, 0);
    assert_has(
        &out,
        "proc       fallback: cannot mount a new /proc (Operation not permitted",
    );
    assert_has(&out, &format!("/proc has masked paths ({first}"));
    assert_has(
        &out,
        "the bind-/proc fallback binds this /proc into each container",
    );
    assert_has(&out, "procMount: Unmasked");

    let tar = common::busybox_rootfs();
    let out = output(
        env.cmd(["import".as_ref(), tar.as_os_str(), "bb".as_ref()]),
        masked(),
    );
    assert_code(&out, 0);
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN grep -q '^Name:' /proc/self/status && echo built > /f\n",
    )
    .expect("Dockerfile");
    chown_tree(&ctx, 65534);
    let out = output(
        env.cmd([
            "build".as_ref(),
            "-t".as_ref(),
            "t".as_ref(),
            ctx.as_os_str(),
        ]),
        masked(),
    );
    assert_code(&out, 0);
    let out = output(env.cmd(["run", "--rm", "t", "cat", "/f"]), masked());
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "built\n");
}

#[test]
fn missing_subuid_range_is_single_id_with_what_it_implies() {
    let env = TestEnv::rootless();
    let out = output(env.cmd(["info"]), Confine::default());
    assert_code(&out, 0);
    assert_has(
        &out,
        "userns     fallback: single-id mode (0 → 65534) because no subordinate id range for \
         user `nobody` in `/etc/subuid`: only uid/gid 0 exists inside",
    );
    assert_has(&out, "a non-root USER runs as uid 0 without capabilities");
    assert_has(
        &out,
        "fix: as root: `usermod --add-subuids 100000-165535 --add-subgids 100000-165535 nobody`",
    );
}

#[test]
fn missing_newuidmap_is_single_id_and_says_the_package() {
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--init-groups",
        "--inh-caps=-all",
        "--",
    ])
    .arg(common::hoist_bin())
    .arg("info")
    .env("HOIST_ROOT", &env.root)
    .env("HOME", env.dir.path())
    .env("PATH", "/usr/bin:/bin")
    .stdin(Stdio::null());
    let hidden: Vec<&'static str> = ["/usr/bin/newuidmap", "/usr/bin/newgidmap"]
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect();
    assert_eq!(
        hidden.len(),
        2,
        "uidmap is installed here (scripts/test.sh)"
    );
    let out = output(
        cmd,
        Confine {
            null_over: hidden,
            ..Default::default()
        },
    );
    assert_code(&out, 0);
    assert_has(
        &out,
        "userns     fallback: single-id mode (0 → 1001) because `newuidmap` is not installed",
    );
    assert_has(
        &out,
        "fix: install the id mapping helpers: `apt-get install uidmap`",
    );
}

#[test]
fn store_on_overlayfs_is_named_and_builds_by_copying() {
    let env = TestEnv::new();
    let dirs: Vec<String> = ["lower", "upper", "work", "merged"]
        .iter()
        .map(|d| {
            let p = env.path(d);
            fs::create_dir(&p).expect("dir");
            p.display().to_string()
        })
        .collect();
    let on_overlay = || Confine {
        overlay: Some([
            dirs[0].clone(),
            dirs[1].clone(),
            dirs[2].clone(),
            dirs[3].clone(),
        ]),
        ..Default::default()
    };
    let store = env.path("merged/store");
    let cmd = |args: &[&std::ffi::OsStr]| {
        let mut c = Command::new(common::hoist_bin());
        c.args(args)
            .env("HOIST_ROOT", &store)
            .current_dir(env.dir.path())
            .stdin(Stdio::null());
        c
    };
    let out = output(cmd(&["info".as_ref()]), on_overlay());
    assert_code(&out, 0);
    assert_has(&out, "overlay    fallback: overlay cannot be mounted over");
    assert_has(
        &out,
        "(the store is on overlayfs, which overlay cannot use as an upper dir); the copying \
         fallback copies the layers into each container instead",
    );
    assert_has(
        &out,
        "fix: put the store on a file system overlay can write to",
    );

    let tar = common::busybox_rootfs();
    let out = output(
        cmd(&["import".as_ref(), tar.as_os_str(), "bb".as_ref()]),
        on_overlay(),
    );
    assert_code(&out, 0);
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(ctx.join("Dockerfile"), "FROM bb\nRUN echo copied > /f\n").expect("Dockerfile");
    let out = output(
        cmd(&[
            "build".as_ref(),
            "-t".as_ref(),
            "t".as_ref(),
            ctx.as_os_str(),
        ]),
        on_overlay(),
    );
    assert_code(&out, 0);
    assert_has(&out, "copying the layers instead");
    let out = output(
        cmd(&[
            "run".as_ref(),
            "--rm".as_ref(),
            "t".as_ref(),
            "cat".as_ref(),
            "/f".as_ref(),
        ]),
        on_overlay(),
    );
    assert_code(&out, 0);
    assert_eq!(stdout(&out), "copied\n");
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
