//! Real root file systems in every mode: a rootfs tarball with device nodes (as mmdebstrap and
//! `docker export` make them) imports and runs as root (nodes kept), in single-id mode and with
//! a subuid range (nodes skipped, `/dev` provided at run time); a Debian bookworm base made by
//! scripts/make-debian-rootfs.sh builds a realistic Dockerfile (apt, useradd, USER) as root and
//! as the `hoisttest` user with the same owners; hoist as uid 0 without `CAP_SYS_ADMIN` (a
//! container's root) takes a user namespace.

mod common;

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{assert_success, chown_tree, run, show, TestEnv};
use tar::{EntryType, Header};

/// The `hoisttest` user and its subordinate range, made by scripts/test.sh.
fn hoisttest_uid() -> u32 {
    let out = run(Command::new("id").args(["-u", "hoisttest"]));
    assert!(
        out.status.success(),
        "user `hoisttest` is missing: run scripts/test.sh (as root), which creates it with a subuid range"
    );
    let subuid = fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(
        subuid.lines().any(|l| l.starts_with("hoisttest:")),
        "`hoisttest` has no range in /etc/subuid: run scripts/test.sh"
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("uid")
}

/// `hoist ARGS…` as `hoisttest` (no capabilities, full bounding set so `newuidmap` works).
fn as_hoisttest(env: &TestEnv, uid: u32, args: &[&str]) -> Output {
    run(Command::new("setpriv")
        .args([
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
        .stdin(Stdio::null()))
}

fn hoisttest_ok(env: &TestEnv, uid: u32, args: &[&str]) -> String {
    let out = as_hoisttest(env, uid, args);
    assert!(out.status.success(), "hoist {args:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The busybox root file system with device nodes added under `dev/`, as a root-made export has.
fn rootfs_with_devices(out: &Path) {
    let base = fs::File::open(common::busybox_rootfs()).expect("busybox rootfs");
    let mut b = tar::Builder::new(fs::File::create(out).expect("create"));
    let mut archive = tar::Archive::new(base);
    for e in archive.entries().expect("entries") {
        let mut e = e.expect("entry");
        let h = e.header().clone();
        b.append(&h, &mut e).expect("append");
    }
    for (name, kind, major, minor) in [
        ("./dev/null", EntryType::Char, 1, 3),
        ("./dev/zero", EntryType::Char, 1, 5),
        ("./dev/console", EntryType::Char, 5, 1),
        ("./dev/sda", EntryType::Block, 8, 0),
        ("./dev/initctl", EntryType::Fifo, 0, 0),
    ] {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o666);
        h.set_size(0);
        h.set_mtime(0);
        h.set_device_major(major).expect("major");
        h.set_device_minor(minor).expect("minor");
        b.append_data(&mut h, name, &[][..]).expect("device entry");
    }
    b.into_inner().expect("finish");
}

/// Where `rel` is in the store's unpacked layers (`layers/HEX/diff/REL`), by file type.
fn layer_entry(env: &TestEnv, rel: &str) -> Vec<fs::FileType> {
    let mut found = Vec::new();
    for l in fs::read_dir(env.root.join("layers")).expect("layers") {
        let p = l.expect("entry").path().join("diff").join(rel);
        if let Ok(md) = fs::symlink_metadata(&p) {
            found.push(md.file_type());
        }
    }
    found
}

const DEV_SCRIPT: &str = "echo x > /dev/null && test -c /dev/null && test -c /dev/zero \
                          && test ! -e /dev/sda && echo fine";

#[test]
fn device_nodes_are_kept_as_root() {
    let env = TestEnv::new();
    let tar = env.path("devs.tar");
    rootfs_with_devices(&tar);
    env.ok(["import".as_ref(), tar.as_os_str(), "devs".as_ref()]);
    assert_eq!(
        env.ok(["run", "--rm", "devs", "sh", "-c", DEV_SCRIPT]),
        "fine\n"
    );
    let sda = layer_entry(&env, "dev/sda");
    assert!(
        sda.len() == 1 && sda[0].is_block_device(),
        "the block device is in the layer: {sda:?}"
    );
    let null = layer_entry(&env, "dev/null");
    assert!(null.len() == 1 && null[0].is_char_device(), "{null:?}");
}

#[test]
fn device_nodes_are_skipped_in_single_id_mode_and_the_image_runs_and_builds() {
    let env = TestEnv::rootless();
    let tar = env.path("devs.tar");
    rootfs_with_devices(&tar);
    env.ok(["import".as_ref(), tar.as_os_str(), "devs".as_ref()]);
    assert_eq!(
        env.ok(["run", "--rm", "devs", "sh", "-c", DEV_SCRIPT]),
        "fine\n"
    );
    assert!(layer_entry(&env, "dev/sda").is_empty());
    assert!(layer_entry(&env, "dev/null").is_empty());
    let fifo = layer_entry(&env, "dev/initctl");
    assert!(
        fifo.len() == 1 && fifo[0].is_fifo(),
        "a FIFO can be made: {fifo:?}"
    );
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        format!("FROM devs\nRUN {DEV_SCRIPT} > /ok\n"),
    )
    .expect("Dockerfile");
    chown_tree(&ctx, 65534);
    env.ok([
        "build".as_ref(),
        "-t".as_ref(),
        "built".as_ref(),
        ctx.as_os_str(),
    ]);
    assert_eq!(env.ok(["run", "--rm", "built", "cat", "/ok"]), "fine\n");
}

#[test]
fn device_nodes_are_skipped_with_a_subuid_range_and_the_image_runs() {
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    let tar = env.path("devs.tar");
    rootfs_with_devices(&tar);
    chown_tree(&tar, uid);
    hoisttest_ok(&env, uid, &["import", tar.to_str().expect("utf-8"), "devs"]);
    assert_eq!(
        hoisttest_ok(&env, uid, &["run", "--rm", "devs", "sh", "-c", DEV_SCRIPT]),
        "fine\n"
    );
    assert!(layer_entry(&env, "dev/sda").is_empty());
}

/// hoist as uid 0 without `CAP_SYS_ADMIN`, the shape of a CI job inside a container.
fn as_root_without_sys_admin(env: &TestEnv, args: &[&str]) -> Output {
    run(Command::new("setpriv")
        .args(["--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"])
        .arg(common::hoist_bin())
        .args(args)
        .env("HOIST_ROOT", &env.root)
        .current_dir(env.dir.path())
        .stdin(Stdio::null()))
}

#[test]
fn uid_0_without_cap_sys_admin_builds_in_a_user_namespace() {
    let env = TestEnv::new();
    let tar = common::busybox_rootfs();
    let ok = |args: &[&str]| {
        let out = as_root_without_sys_admin(&env, args);
        assert!(out.status.success(), "hoist {args:?}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let info = ok(&["info", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&info).expect("json");
    assert_eq!(json["mode"], "rootless-single-id", "{info}");
    ok(&["import", tar.to_str().expect("utf-8"), "bb"]);
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nRUN echo built > /f && cat /proc/self/uid_map\n",
    )
    .expect("Dockerfile");
    ok(&["build", "-t", "t", ctx.to_str().expect("utf-8")]);
    assert_eq!(ok(&["run", "--rm", "t", "cat", "/f"]), "built\n");
}

/// The Debian bookworm minbase tarball, made once (scripts/make-debian-rootfs.sh reuses
/// `target/test-cache/debian-bookworm.tar`, shared with the build benchmark).
fn debian_rootfs() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        common::require("mmdebstrap");
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.parent().unwrap_or(tmp).join("test-cache");
        fs::create_dir_all(&dir).expect("test cache dir");
        let tar = dir.join("debian-bookworm.tar");
        let lock =
            hoist::util::FileLock::exclusive(&dir.join("debian-bookworm.lock")).expect("lock");
        let mut cmd = Command::new(common::repo().join("scripts/make-debian-rootfs.sh"));
        cmd.arg(&tar);
        let out = run(&mut cmd);
        assert_success(&cmd, &out);
        drop(lock);
        tar
    })
    .clone()
}

const DEBIAN_DOCKERFILE: &str = "FROM deb
RUN apt-get update && apt-get install -y --no-install-recommends file && rm -rf /var/lib/apt/lists/*
RUN useradd -m appuser
USER appuser
RUN id -un && touch ~/x
";

/// Owner of the user's file, `file`'s answer, and the user the image runs as.
const DEBIAN_CHECK: &[&str] = &[
    "run",
    "--rm",
    "app",
    "sh",
    "-c",
    "stat -c %U:%G /home/appuser/x; file -b /bin/dash | cut -d, -f1; id -un",
];
const DEBIAN_EXPECT: &str = "appuser:appuser\nELF 64-bit LSB pie executable\nappuser\n";

#[test]
fn debian_dockerfile_builds_the_same_as_root_and_with_a_subuid_range() {
    let deb = debian_rootfs();
    let root = TestEnv::new();
    root.ok(["import".as_ref(), deb.as_os_str(), "deb".as_ref()]);
    let ctx = root.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(ctx.join("Dockerfile"), DEBIAN_DOCKERFILE).expect("Dockerfile");
    root.ok([
        "build".as_ref(),
        "-t".as_ref(),
        "app".as_ref(),
        ctx.as_os_str(),
    ]);
    let as_root = root.ok(DEBIAN_CHECK);
    assert_eq!(as_root, DEBIAN_EXPECT);

    let uid = hoisttest_uid();
    let env = TestEnv::new();
    fs::create_dir(env.path("ctx")).expect("ctx");
    fs::write(env.path("ctx/Dockerfile"), DEBIAN_DOCKERFILE).expect("Dockerfile");
    chown_tree(env.dir.path(), uid);
    hoisttest_ok(&env, uid, &["import", deb.to_str().expect("utf-8"), "deb"]);
    let ctx = env.path("ctx");
    hoisttest_ok(
        &env,
        uid,
        &["build", "-t", "app", ctx.to_str().expect("utf-8")],
    );
    let out = as_hoisttest(&env, uid, DEBIAN_CHECK);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), as_root);
}

#[test]
fn debian_apt_works_in_single_id_mode_without_changing_the_image() {
    let deb = debian_rootfs();
    let env = TestEnv::rootless();
    env.ok(["import".as_ref(), deb.as_os_str(), "deb".as_ref()]);
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("ctx");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM deb
RUN apt-get update && apt-get install -y --no-install-recommends file && rm -rf /var/lib/apt/lists/*
RUN useradd -m appuser && touch /home/appuser/x
",
    )
    .expect("Dockerfile");
    chown_tree(&ctx, 65534);
    env.ok([
        "build".as_ref(),
        "-t".as_ref(),
        "app".as_ref(),
        ctx.as_os_str(),
    ]);
    assert_eq!(
        env.ok(["run", "--rm", "app", "file", "-b", "/bin/dash"])
            .split(',')
            .next(),
        Some("ELF 64-bit LSB pie executable")
    );
    // the apt setting was there only while RUN steps ran
    let config = env.ok(["inspect", "app"]);
    assert!(!config.contains("APT_CONFIG"), "{config}");
    for l in fs::read_dir(env.root.join("layers")).expect("layers") {
        let l = l.expect("entry").path().join("diff");
        for e in walkdir::WalkDir::new(&l) {
            let e = e.expect("walk");
            let name = e.file_name().to_string_lossy();
            assert!(
                !name.contains("apt-single-id") && e.path() != l.join("run/hoist"),
                "{} is in a layer",
                e.path().display()
            );
        }
    }
    let out = env.ok([
        "run",
        "--rm",
        "app",
        "sh",
        "-c",
        "echo ${APT_CONFIG:-unset}; apt-config dump APT::Sandbox::User",
    ]);
    assert_eq!(
        out, "unset\nAPT::Sandbox::User \"_apt\";\n",
        "nothing of the workaround is in the image"
    );
}
