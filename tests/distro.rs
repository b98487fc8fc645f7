//! Real root file systems in every mode: a rootfs tarball with device nodes (as mmdebstrap and
//! `docker export` make them) imports and runs as root (nodes kept), in single-id mode and with
//! a subuid range (nodes skipped, `/dev` provided at run time); a Debian bookworm base made by
//! scripts/make-debian-rootfs.sh builds a realistic Dockerfile (apt, useradd, USER) as root and
//! as the `hoisttest` user with the same owners; hoist as uid 0 without `CAP_SYS_ADMIN` (a
//! container's root) takes a user namespace. A realistic multi-stage Dockerfile (apt-get
//! install gcc, compile C, `COPY --from` into a slim stage with a user) builds as root, with a
//! subuid range and in single-id mode, each compared with `buildah build --layers` (built once
//! per run; apt's logs and caches masked), with the differences of each mode stated.

mod common;
mod compat_support;

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
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(env.dir.path())
        .stdin(Stdio::null()))
}

/// Panics with what the command printed unless it succeeded.
fn checked(out: Output) {
    assert!(out.status.success(), "hoist build failed\n{}", show(&out));
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
    let mut build = root.cmd([
        "build".as_ref(),
        "-t".as_ref(),
        "app".as_ref(),
        ctx.as_os_str(),
    ]);
    checked(common::with_transient_retries("hoist build", || {
        run(&mut build)
    }));
    let as_root = root.ok(DEBIAN_CHECK);
    assert_eq!(as_root, DEBIAN_EXPECT);

    let uid = hoisttest_uid();
    let env = TestEnv::new();
    fs::create_dir(env.path("ctx")).expect("ctx");
    fs::write(env.path("ctx/Dockerfile"), DEBIAN_DOCKERFILE).expect("Dockerfile");
    chown_tree(env.dir.path(), uid);
    hoisttest_ok(&env, uid, &["import", deb.to_str().expect("utf-8"), "deb"]);
    let ctx = env.path("ctx");
    checked(common::with_transient_retries("hoist build", || {
        as_hoisttest(
            &env,
            uid,
            &["build", "-t", "app", ctx.to_str().expect("utf-8")],
        )
    }));
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
USER appuser
RUN id -un > ~/who && touch ~/y
",
    )
    .expect("Dockerfile");
    chown_tree(&ctx, 65534);
    let mut build = env.cmd([
        "build".as_ref(),
        "-t".as_ref(),
        "app".as_ref(),
        ctx.as_os_str(),
    ]);
    checked(common::with_transient_retries("hoist build", || {
        run(&mut build)
    }));
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
    // the non-root USER ran as uid 0 with its HOME (single-id mode has no other id), and so
    // does `hoist run` of the image
    assert_eq!(
        env.ok([
            "run",
            "--rm",
            "app",
            "sh",
            "-c",
            "cat ~/who; id -un; echo $HOME; ls ~/y"
        ]),
        "root\nroot\n/home/appuser\n/home/appuser/y\n"
    );
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

const MULTI_STAGE: &str = "FROM localhost/deb AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev
COPY hello.c /src/hello.c
RUN gcc -O2 -o /src/hello /src/hello.c

FROM localhost/deb
COPY --from=build /src/hello /usr/local/bin/hello
RUN useradd -m app
USER app
CMD [\"/usr/local/bin/hello\"]
";

const HELLO_C: &str =
    "#include <stdio.h>\nint main(void) { puts(\"hello from a multi-stage build\"); return 0; }\n";

/// A context with [`MULTI_STAGE`] and its C source under `dir`.
fn multi_stage_context(dir: &Path) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("Dockerfile"), MULTI_STAGE).expect("Dockerfile");
    fs::write(ctx.join("hello.c"), HELLO_C).expect("hello.c");
    ctx
}

/// Paths left out on both sides: apt's and dpkg's logs and caches, the shadow tools' backups
/// (`/etc/group-` and friends: useradd's copy of the file before its change; buildah's `vfs`
/// driver finds a layer's changes by size and mtime, and useradd's new `/etc/group-` has the
/// size and mtime of the old one, so buildah's layer leaves it out and its image keeps the base's
/// stale backup, while hoist's overlay upper has the new one), and the mount
/// points buildah leaves in a RUN step's layer (the bind-mounted `/etc` files and `/dev`, which
/// this base lacks; docker leaves neither).
fn masked(path: &str) -> bool {
    ["/var/log/", "/var/cache/", "/var/lib/apt/"]
        .iter()
        .any(|p| path.starts_with(p))
        || path.ends_with("-old")
        || (path.starts_with("/etc/") && path.ends_with('-'))
        || ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev"].contains(&path)
}

type Listing = std::collections::BTreeMap<String, String>;

/// Files whose content holds the day the step ran: `useradd` writes the days since 1970 of the
/// password's last change into `/etc/shadow`, so two builds on either side of midnight (UTC)
/// differ there. Their kind, mode, owner and size are compared, not their digest.
const DATED: &[&str] = &["/etc/shadow"];

fn view(flat: &compat_support::flatten::Flat) -> Listing {
    flat.listing()
        .into_iter()
        .map(|l| {
            let path = l.split(' ').next().unwrap_or("").to_string();
            let line = if DATED.contains(&path.as_str()) {
                // path kind mode owner size [sha256 …]: keep the first five fields
                l.split(' ').take(5).collect::<Vec<_>>().join(" ")
            } else {
                l
            };
            (path, line)
        })
        .filter(|(p, _)| !masked(p))
        .collect()
}

/// buildah's image of [`MULTI_STAGE`] (as root, `--layers`), built once per test run; the
/// Debian base is committed into the suite's buildah storage once (fixed timestamp, so the
/// layer cache holds across runs).
fn buildah_multi_stage() -> &'static (Listing, ConfigView) {
    // a failure is kept too: the tests that wait for it fail with it instead of each trying again
    static B: OnceLock<Result<(Listing, ConfigView), String>> = OnceLock::new();
    let made = B.get_or_init(|| {
        std::panic::catch_unwind(buildah_multi_stage_uncached).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".into())
        })
    });
    match made {
        Ok(made) => made,
        Err(e) => panic!("buildah's side of the comparison failed:\n{e}"),
    }
}

type ConfigView = std::collections::BTreeMap<String, serde_json::Value>;

fn buildah_multi_stage_uncached() -> (Listing, ConfigView) {
    {
        let b = compat_support::buildah::Buildah::get();
        let tmp = tempfile::tempdir().expect("tmp");
        let lock_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat-buildah");
        let lock = hoist::util::FileLock::exclusive(&lock_dir.join("deb.lock")).expect("lock");
        let has_base = b
            .cmd(["inspect", "--type", "image", "localhost/deb"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has_base {
            let deb = debian_rootfs();
            let ok = |mut c: Command| {
                let out = run(&mut c);
                assert_success(&c, &out);
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            };
            let ctr = ok(b.cmd(["from", "--pull=never", "scratch"]));
            let mut add = b.cmd(["add", &ctr]);
            add.arg(&deb).arg("/");
            ok(add);
            ok(b.cmd([
                "commit",
                "--quiet",
                "--timestamp",
                "0",
                "--format",
                "docker",
                "--rm",
                &ctr,
                "localhost/deb",
            ]));
        }
        drop(lock);
        let ctx = multi_stage_context(tmp.path());
        let tag = "localhost/distro-multi-stage:latest";
        b.build(&ctx, "Dockerfile", tag, &[])
            .unwrap_or_else(|e| panic!("buildah side: {e}"));
        let oci = tmp.path().join("oci");
        b.export(tag, &oci).expect("export");
        let flat = compat_support::flatten::flatten(&oci, None).expect("flatten");
        let config = b.config(tag).expect("config");
        b.rmi(tag);
        (
            view(&flat),
            compat_support::config_view(&config, &[], false),
        )
    }
}

/// The differences (`- buildah`, `+ hoist`); when `single_id`, buildah's owner of an entry hoist
/// has as `0:0` counts as `0:0` (a single-id step can make nothing else); device nodes are
/// left out on both sides when `no_devices`.
fn compare(hoist: &Listing, single_id: bool, no_devices: bool) -> Vec<String> {
    let (reference, _) = buildah_multi_stage();
    let mut out = Vec::new();
    let owners = |l: &str| -> String {
        let mut parts: Vec<String> = l.split(' ').map(str::to_string).collect();
        if parts.len() > 3 {
            parts[3] = "0:0".into();
        }
        parts.join(" ")
    };
    let paths: std::collections::BTreeSet<&String> = reference.keys().chain(hoist.keys()).collect();
    for p in paths {
        // single-id: a file of the base that a step changed is root's in the step's layer (the
        // unpacked base cannot hold its other owners); what the steps chowned is recorded, and
        // the base layer's blob keeps its owners
        let a = reference.get(p).map(|l| match hoist.get(p) {
            Some(h) if single_id && h.split(' ').nth(3) == Some("0:0") => owners(l),
            _ => l.clone(),
        });
        // rootless, device nodes are compared on neither side: the imported base's blob keeps
        // the nodes its tarball has (whether the base has any depends on how mmdebstrap made
        // it), while nothing a rootless step makes can be one
        let device = |l: &String| no_devices && l.contains(" dev=") && !l.contains(" fifo ");
        let a = a.filter(|l| !device(l));
        match (a, hoist.get(p).filter(|l| !device(l))) {
            (Some(a), Some(b)) if &a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push(format!("- {a}"));
                }
                if let Some(b) = b {
                    out.push(format!("+ {b}"));
                }
            }
        }
    }
    out
}

/// Builds [`MULTI_STAGE`] with `hoist` (`as_user` runs each command), runs it, and compares
/// the image with buildah's.
fn multi_stage_case(env: &TestEnv, uid: Option<u32>, hoist: impl Fn(&[&str]) -> Output) {
    let ok = |args: &[&str]| {
        let out = hoist(args);
        assert!(out.status.success(), "hoist {args:?}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let deb = debian_rootfs();
    let ctx = multi_stage_context(env.dir.path());
    if let Some(uid) = uid {
        chown_tree(&ctx, uid);
    }
    ok(&["import", deb.to_str().expect("utf-8"), "localhost/deb"]);
    let tag = "localhost/distro-multi-stage:latest";
    let build = ["build", "-q", "-t", tag, ctx.to_str().expect("utf-8")];
    checked(common::with_transient_retries("hoist build", || {
        hoist(&build)
    }));
    // as the image's USER `app` (in single-id mode: uid 0 without capabilities)
    assert_eq!(
        ok(&["run", "--rm", tag]),
        "hello from a multi-stage build\n"
    );
    let flat = compat_support::flatten::flatten(&env.root, Some(tag)).expect("flatten");
    let ours = view(&flat);
    let config = compat_support::config_view(&flat.config["config"], &[], false);
    let (_, reference_config) = buildah_multi_stage();
    assert_eq!(&config, reference_config, "configs");
    let single_id = uid == Some(65534);
    let d = compare(&ours, single_id, uid.is_some());
    assert!(
        d.is_empty(),
        "hoist's image differs from buildah's (- buildah, + hoist)\n{}",
        d.join("\n")
    );
    // useradd's chown of the home directory: made real, or (single-id) recorded in the layer
    assert!(
        ours["/home/app"].contains(" 1000:1000"),
        "{}",
        ours["/home/app"]
    );
    if single_id {
        // the imported base keeps its owners (its blob is stored as given)
        assert!(
            ours["/usr/bin/chage"].contains(" 0:42"),
            "{}",
            ours["/usr/bin/chage"]
        );
    }
}

#[test]
fn multi_stage_c_build_matches_buildah_as_root() {
    let env = TestEnv::new();
    multi_stage_case(&env, None, |args| run(&mut env.cmd(args)));
}

#[test]
fn multi_stage_c_build_matches_buildah_with_a_subuid_range_except_device_nodes() {
    let uid = hoisttest_uid();
    let env = TestEnv::new();
    chown_tree(env.dir.path(), uid);
    multi_stage_case(&env, Some(uid), |args| as_hoisttest(&env, uid, args));
}

#[test]
fn multi_stage_c_build_in_single_id_mode_matches_buildah_but_for_the_owners_steps_made() {
    let env = TestEnv::rootless();
    multi_stage_case(&env, Some(65534), |args| run(&mut env.cmd(args)));
}
