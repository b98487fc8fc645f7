//! The store as other OCI tools and many processes see it: skopeo and umoci read it as it is,
//! concurrent imports and tags lose nothing, and an unprivileged user can use it.

mod common;
mod storecheck;

use std::process::Command;

use common::{assert_success, busybox_rootfs, require, run, show, TestEnv};

#[test]
fn skopeo_inspects_an_imported_image_in_place() {
    require("skopeo");
    let env = TestEnv::new();
    let id = env.import_busybox("busybox");
    env.ok(["tag", "busybox", "quay.io/team/tool:1.0"]);
    for name in ["localhost/busybox:latest", "quay.io/team/tool:1.0"] {
        let mut cmd = Command::new("skopeo");
        cmd.arg("inspect")
            .arg(format!("oci:{}:{name}", env.root.display()));
        let out = run(&mut cmd);
        assert_success(&cmd, &out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("skopeo JSON");
        assert_eq!(v["Os"], "linux", "{name}");
        assert_eq!(v["Layers"].as_array().expect("layers").len(), 1, "{name}");
        // skopeo's config view agrees with hoist's
        let mut cfg = Command::new("skopeo");
        cfg.arg("inspect")
            .arg("--config")
            .arg(format!("oci:{}:{name}", env.root.display()));
        let out = run(&mut cfg);
        assert_success(&cfg, &out);
        let c: serde_json::Value = serde_json::from_slice(&out.stdout).expect("config JSON");
        let hoist: serde_json::Value =
            serde_json::from_str(&env.ok(["inspect", name])).expect("inspect JSON");
        assert_eq!(
            c["rootfs"]["diff_ids"], hoist[0]["RootFS"]["Layers"],
            "{name}"
        );
        assert_eq!(
            v["Digest"], hoist[0]["Digest"],
            "{name}: same manifest digest"
        );
        assert_eq!(hoist[0]["Id"], id.as_str());
    }
}

#[test]
fn umoci_unpacks_an_imported_image_rootless() {
    require("umoci");
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let bundle = env.path("bundle");
    let mut cmd = Command::new("umoci");
    cmd.args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:localhost/busybox:latest", env.root.display()))
        .arg(&bundle);
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    let bb = bundle.join("rootfs/bin/busybox");
    assert!(bb.is_file(), "{} missing\n{}", bb.display(), show(&out));
    assert!(bundle.join("rootfs/etc/passwd").is_file());
    assert!(bundle.join("config.json").is_file());
}

#[test]
fn eight_concurrent_imports_and_tags_lose_nothing() {
    let env = std::sync::Arc::new(TestEnv::new());
    let tar = busybox_rootfs();
    // no store exists yet: the racers also race to create its layout
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let env = env.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                let mut cmd = env.cmd([
                    "import".as_ref(),
                    tar.as_os_str(),
                    format!("racer{i}").as_ref(),
                ]);
                let out = run(&mut cmd);
                assert_success(&cmd, &out);
                let mut cmd = env.cmd([
                    "tag".to_string(),
                    format!("racer{i}"),
                    format!("alias{i}:v{i}"),
                ]);
                let out = run(&mut cmd);
                assert_success(&cmd, &out);
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
        })
        .collect();
    for h in handles {
        h.join().expect("racer thread");
    }
    let names = storecheck::verify(&env.root);
    for i in 0..8 {
        for n in [
            format!("localhost/racer{i}:latest"),
            format!("localhost/alias{i}:v{i}"),
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
    }
    assert_eq!(names.len(), 16, "{names:?}");
    // every racer's tmp dir is gone
    let left: Vec<_> = std::fs::read_dir(env.root.join("tmp"))
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "tmp/ leftovers: {left:?}");
    // and hoist lists them all
    let ids = env.ok(["images", "-q"]);
    assert_eq!(ids.lines().count(), 8, "{ids}");
}

#[test]
fn rootless_user_imports_tags_and_removes() {
    let env = TestEnv::rootless();
    let id = env.import_busybox("busybox");
    env.ok(["tag", "busybox", "again"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", "again"])).expect("json");
    assert_eq!(v[0]["Id"], id.as_str());
    // everything in the store belongs to the user
    for e in walkdir::WalkDir::new(&env.root) {
        let e = e.expect("walk");
        use std::os::unix::fs::MetadataExt;
        let uid = e.metadata().expect("stat").uid();
        assert_eq!(uid, 65534, "{} owned by {uid}", e.path().display());
    }
    storecheck::verify(&env.root);
    // the same user unpacks it with umoci, straight from the store
    require("umoci");
    let bundle = env.path("bundle");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "umoci",
        "unpack",
        "--rootless",
        "--image",
    ])
    .arg(format!("{}:localhost/again:latest", env.root.display()))
    .arg(&bundle)
    .env("HOME", env.dir.path());
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    env.ok(["rmi", "busybox", "again"]);
    assert_eq!(env.ok(["images", "-q"]), "");
}

#[test]
fn killed_import_leaves_a_readable_store_and_is_swept() {
    let env = TestEnv::new();
    env.import_busybox("first");
    // a process that died mid-write: its tmp dir and unlocked lock file remain
    let dead = env.root.join("tmp/424242-dead-0");
    std::fs::create_dir_all(&dead).expect("mkdir");
    std::fs::write(dead.join("blob-partial"), b"half a blob").expect("write");
    std::fs::write(env.root.join("tmp/424242-dead-0.lock"), b"").expect("lock");
    std::fs::write(env.root.join(".tmp-index"), b"{\"half").expect("index temp");
    let out = env.ok(["images", "-q"]);
    assert_eq!(out.lines().count(), 1);
    assert!(!dead.exists(), "the dead process's tmp dir is swept");
    assert!(
        !env.root.join(".tmp-index").exists(),
        "an interrupted index write is swept"
    );
    storecheck::verify(&env.root);
}

#[test]
fn hoist_reads_a_layout_skopeo_wrote() {
    require("skopeo");
    let env = TestEnv::new();
    let id = env.import_busybox("busybox");
    // skopeo copies the image into a fresh layout under a short name, the way users do
    let other = env.path("other");
    let mut cmd = Command::new("skopeo");
    cmd.arg("copy")
        .arg(format!(
            "oci:{}:localhost/busybox:latest",
            env.root.display()
        ))
        .arg(format!("oci:{}:mine", other.display()));
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    let with_root = |args: &[&str]| {
        let mut full = vec!["--root", other.to_str().expect("utf8")];
        full.extend_from_slice(args);
        env.ok(full)
    };
    // `mine` is an unqualified name: hoist reads it as localhost/mine:latest
    let v: serde_json::Value =
        serde_json::from_str(&with_root(&["inspect", "mine"])).expect("json");
    assert_eq!(v[0]["Id"], id.as_str(), "same config, same ID");
    with_root(&["tag", "mine", "second"]);
    let table = with_root(&["images"]);
    assert!(table.contains("localhost/second"), "{table}");
    with_root(&["rmi", "mine"]);
    // skopeo still reads what hoist left
    let mut cmd = Command::new("skopeo");
    cmd.arg("inspect")
        .arg(format!("oci:{}:localhost/second:latest", other.display()));
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    storecheck::verify(&other);
}

#[test]
fn prune_running_beside_imports_never_breaks_an_image() {
    let env = std::sync::Arc::new(TestEnv::new());
    let tar = busybox_rootfs();
    env.import_busybox("seed");
    let importers: Vec<_> = (0..4)
        .map(|i| {
            let env = env.clone();
            let tar = tar.clone();
            std::thread::spawn(move || {
                // importing twice under one name leaves the first image dangling, for prune
                for _ in 0..2 {
                    let mut cmd = env.cmd([
                        "import".as_ref(),
                        tar.as_os_str(),
                        format!("racer{i}").as_ref(),
                    ]);
                    let out = run(&mut cmd);
                    assert_success(&cmd, &out);
                }
            })
        })
        .collect();
    let pruner = {
        let env = env.clone();
        std::thread::spawn(move || {
            for _ in 0..6 {
                let mut cmd = env.cmd(["prune"]);
                let out = run(&mut cmd);
                assert_success(&cmd, &out);
            }
        })
    };
    for h in importers {
        h.join().expect("importer");
    }
    pruner.join().expect("pruner");
    let names = storecheck::verify(&env.root);
    for i in 0..4 {
        let n = format!("localhost/racer{i}:latest");
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    // a last prune, alone, leaves exactly the named images and their blobs
    env.ok(["prune"]);
    let ids = env.ok(["images", "-q", "-a"]);
    assert_eq!(ids.lines().count(), 5, "{ids}");
    storecheck::verify(&env.root);
    // every blob left belongs to an image: nothing more to reclaim
    let out = env.ok(["prune"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
}

/// `setpriv` as uid/gid 65534 with no capabilities: another user on the machine.
fn as_nobody(program: &std::path::Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
    ])
    .arg(program);
    cmd
}

/// `hoist ARGS…` with umask 000, as a careless user runs it.
fn with_umask_0(env: &TestEnv, args: &[&str]) -> String {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(common::hoist_bin())
        .args(args)
        .env("HOIST_ROOT", &env.root)
        .current_dir(env.dir.path());
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_setuid_file_in_a_layer_is_not_reachable_by_another_user() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    // a store under a dir every user may enter, made with a umask that opens everything
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let tar = busybox_rootfs();
    with_umask_0(
        &env,
        &["import", tar.to_str().expect("utf8"), "localhost/busybox"],
    );
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox\nRUN cp /bin/busybox /suid && chmod 4755 /suid\n",
    )
    .expect("Dockerfile");
    with_umask_0(&env, &["build", "-q", "-t", "suid", "ctx"]);
    // the setuid file is in some unpacked layer, as root made it
    let suid: Vec<_> = walkdir::WalkDir::new(env.root.join("layers"))
        .max_depth(3)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "suid")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(suid.len(), 1, "{suid:?}");
    let md = std::fs::metadata(&suid[0]).expect("stat");
    assert_eq!(md.permissions().mode() & 0o4000, 0o4000, "setuid kept");
    // another user can neither stat nor run it
    for program in ["stat", "test"] {
        let mut cmd = as_nobody(std::path::Path::new(program));
        if program == "test" {
            cmd.arg("-x");
        }
        cmd.arg(&suid[0]);
        let out = run(&mut cmd);
        assert!(
            !out.status.success(),
            "{cmd:?} reached the setuid file\n{}",
            show(&out)
        );
    }
    let mut cmd = as_nobody(&suid[0]);
    cmd.arg("true");
    let err = cmd.output().map(|o| o.status.success());
    assert!(
        !matches!(err, Ok(true)),
        "another user ran the setuid file: {err:?}"
    );
    let mut cmd = as_nobody(std::path::Path::new("stat"));
    cmd.arg(&suid[0]);
    let out = run(&mut cmd);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        show(&out)
    );
    // every private dir is closed, whatever the umask; the layout is readable
    for d in ["layers", "tmp", "cache", "containers"] {
        let mode = std::fs::metadata(env.root.join(d))
            .expect("private dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{d}: {mode:o}");
    }
    // no other user can open (and flock) the lock files
    for f in ["index.lock", "gc.lock"] {
        let mode = std::fs::metadata(env.root.join(f))
            .expect("lock file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}: {mode:o}");
    }
    for f in ["index.json", "oci-layout"] {
        let mode = std::fs::metadata(env.root.join(f))
            .expect("layout file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{f}: {mode:o}");
    }
    // and the same other user still reads the images: hoist, skopeo
    let mut cmd = as_nobody(common::hoist_bin());
    cmd.args(["images", "--format", "json"])
        .env("HOIST_ROOT", &env.root)
        .env("HOME", "/");
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("localhost/suid"),
        "{}",
        show(&out)
    );
    require("skopeo");
    let mut cmd = as_nobody(std::path::Path::new("skopeo"));
    cmd.arg("inspect")
        .arg(format!("oci:{}:localhost/suid:latest", env.root.display()))
        .env("HOME", "/tmp");
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
}

#[test]
fn an_old_store_is_made_private_and_readable_on_open() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    env.import_busybox("busybox");
    // what earlier versions left: layers open to all, index.json private
    std::fs::set_permissions(
        env.root.join("layers"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::set_permissions(
        env.root.join("index.json"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    // another user cannot read it yet
    let mut cmd = as_nobody(common::hoist_bin());
    cmd.args(["images", "-q"])
        .env("HOIST_ROOT", &env.root)
        .env("HOME", "/");
    assert!(!run(&mut cmd).status.success(), "index.json is private");
    // the owner's next command fixes the modes
    env.ok(["images"]);
    let mode = |p: &str| {
        std::fs::metadata(env.root.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("layers"), 0o700);
    assert_eq!(mode("index.json"), 0o644);
    let mut cmd = as_nobody(common::hoist_bin());
    cmd.args(["images", "-q"])
        .env("HOIST_ROOT", &env.root)
        .env("HOME", "/");
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // and checks it read-only
    let mut cmd = as_nobody(common::hoist_bin());
    cmd.args(["check"])
        .env("HOIST_ROOT", &env.root)
        .env("HOME", "/");
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no problems"),
        "{}",
        show(&out)
    );
}

#[test]
fn tag_racing_rmi_never_loses_a_name() {
    let env = std::sync::Arc::new(TestEnv::new());
    env.import_busybox("keep");
    let tar = env.path("tiny.tar");
    std::fs::write(&tar, storecheck::small_tar(&[("hello", b"hi")])).expect("tar");
    let mut tagged = 0;
    for i in 0..26 {
        let a = format!("a{i}");
        let b = format!("localhost/b{i}:latest");
        env.ok(["import".as_ref(), tar.as_os_str(), a.as_ref()]);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let tag = {
            let (env, barrier, a, b) = (env.clone(), barrier.clone(), a.clone(), b.clone());
            std::thread::spawn(move || {
                let mut cmd = env.cmd(["tag", &a, &b]);
                barrier.wait();
                run(&mut cmd)
            })
        };
        let rmi = {
            let (env, barrier, a) = (env.clone(), barrier.clone(), a.clone());
            std::thread::spawn(move || {
                let mut cmd = env.cmd(["rmi", &a]);
                barrier.wait();
                run(&mut cmd)
            })
        };
        let tag = tag.join().expect("tag thread");
        let rmi = rmi.join().expect("rmi thread");
        assert!(rmi.status.success(), "rmi {a}\n{}", show(&rmi));
        let names = storecheck::verify(&env.root);
        assert!(
            names.contains(&"localhost/keep:latest".to_string()),
            "{names:?}"
        );
        assert!(
            !names.contains(&format!("localhost/{a}:latest")),
            "{a} was removed: {names:?}"
        );
        if tag.status.success() {
            tagged += 1;
            assert!(
                names.contains(&b),
                "`tag {a} {b}` exited 0 but {b} is gone: {names:?}\n{}",
                show(&tag)
            );
            env.ok(["rmi", &b]);
        } else {
            let err = String::from_utf8_lossy(&tag.stderr);
            assert!(err.contains("is not known"), "{}", show(&tag));
        }
    }
    // the race went both ways at least once in 26 tries is likely but not certain: no assertion
    // on `tagged`, only on what every outcome must keep
    eprintln!("tag won {tagged} of 26 races");
    let out = env.ok(["check"]);
    assert!(out.contains("no problems"), "{out}");
}

#[test]
fn sweeping_dead_processes_prints_no_warning() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    // several dead processes: the listing order of a dir and its lock file varies by name
    for i in 0..12 {
        let stem = format!("{}-dead{i:02}-0", 400000 + i);
        let dir = env.root.join("tmp").join(&stem);
        std::fs::create_dir_all(dir.join("work-x")).expect("mkdir");
        std::fs::write(dir.join("work-x/blob"), b"half").expect("write");
        std::fs::write(env.root.join("tmp").join(format!("{stem}.lock")), b"").expect("lock");
    }
    let mut cmd = env.cmd(["images", "-q"]);
    let out = run(&mut cmd);
    assert_success(&cmd, &out);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "recovery warned about leftovers it removed"
    );
    let left: Vec<_> = std::fs::read_dir(env.root.join("tmp"))
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// The unpacked dir (`layers/HEX/diff`) that holds `file`, and its layer dir.
fn layer_holding(env: &TestEnv, file: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    for e in std::fs::read_dir(env.root.join("layers"))
        .expect("layers")
        .flatten()
    {
        if e.path().join("diff").join(file).exists() {
            return (e.path(), e.path().join("diff"));
        }
    }
    panic!("no unpacked layer holds `{file}`");
}

#[test]
fn a_layer_without_its_completion_marker_is_unpacked_again_not_trusted() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    env.ok(["run", "--rm", "busybox", "true"]);
    let (layer, diff) = layer_holding(&env, "etc/passwd");
    // what a power loss in the middle of an unpack by a careless writer leaves: the dir is there,
    // its content is not what the blob says, and no marker vouches for it
    std::fs::remove_file(layer.join("diff_id")).expect("marker");
    std::fs::write(diff.join("etc/passwd"), "torn\n").expect("tear");
    let out = env.fails(1, ["check"]);
    assert!(out.contains("1 problem"), "{out}");
    let out = env.ok(["run", "--rm", "busybox", "head", "-n1", "/etc/passwd"]);
    assert!(out.starts_with("root:"), "the torn layer was used: {out}");
    assert!(
        layer.join("diff_id").is_file(),
        "unpacked again, with its marker"
    );
    let out = env.ok(["check"]);
    assert!(out.contains("no problems"), "{out}");
}

#[test]
fn check_lists_damage_one_line_each_and_repair_makes_the_store_clean() {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let tar = env.path("tiny.tar");
    std::fs::write(&tar, storecheck::small_tar(&[("hello", b"hi")])).expect("tar");
    env.ok(["import".as_ref(), tar.as_os_str(), "tiny".as_ref()]);
    env.ok(["run", "--rm", "busybox", "true"]);
    let out = env.ok(["check", "--verify-layers"]);
    assert!(
        out.starts_with("store `") && out.contains("2 images") && out.contains("no problems"),
        "{out}"
    );
    // damage of every kind
    let tiny: serde_json::Value =
        serde_json::from_str(&env.ok(["inspect", "tiny"])).expect("inspect");
    let manifest = tiny[0]["Digest"].as_str().expect("digest").to_string();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.root.join("blobs/sha256").join(&manifest[7..])).expect("manifest"),
    )
    .expect("manifest json");
    let layer_blob = m["layers"][0]["digest"].as_str().expect("layer")[7..].to_string();
    std::fs::write(env.root.join("blobs/sha256").join(&layer_blob), b"bit rot").expect("rot");
    let (_, diff) = layer_holding(&env, "etc/passwd");
    std::fs::write(diff.join("etc/passwd"), "changed after it was made\n").expect("edit");
    let dead = env.root.join("tmp/77777-dead-0");
    std::fs::create_dir_all(&dead).expect("dead");
    std::fs::write(env.root.join("tmp/77777-dead-0.lock"), b"").expect("lock");
    std::fs::write(env.root.join(".tmp-index"), b"{\"half").expect("index temp");
    std::fs::write(env.root.join("blobs/sha256/.tmp-blob"), b"half").expect("blob temp");
    let mut cmd = env.cmd(["check", "--verify-layers"]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "leftover `tmp/77777-dead-0`",
        "leftover `.tmp-index`",
        "leftover `blobs/sha256/.tmp-blob`",
        &format!("blob `sha256:{layer_blob}`: its content hashes to"),
        "image `localhost/tiny:latest`: layer",
        "differs from its blob",
    ] {
        assert!(stdout.contains(want), "`{want}` missing from\n{stdout}");
    }
    assert_eq!(stdout.lines().count(), 6, "one line per problem:\n{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // repair: the damaged image goes, the rest is clean and works
    let out = env.ok(["check", "--repair", "--verify-layers"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("repaired: ")).count(),
        6,
        "{out}"
    );
    assert!(
        out.lines().last().unwrap_or("").contains("no problems"),
        "{out}"
    );
    let out = env.ok(["check", "--verify-layers"]);
    assert!(
        out.contains("1 image") && out.contains("no problems"),
        "{out}"
    );
    let out = env.ok(["run", "--rm", "busybox", "head", "-n1", "/etc/passwd"]);
    assert!(out.starts_with("root:"), "{out}");
    env.fails(1, ["inspect", "tiny"]);
    storecheck::verify(&env.root);
}

#[test]
fn load_racing_prune_all_always_succeeds_and_leaves_a_clean_store() {
    let env = std::sync::Arc::new(TestEnv::new());
    env.import_busybox("busybox");
    let archive = env.path("busybox.tar");
    env.ok([
        "save".as_ref(),
        "--format".as_ref(),
        "oci-archive".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        "busybox".as_ref(),
    ]);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruner = {
        let (env, done) = (env.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                env.ok(["prune", "-a", "-f"]);
            }
        })
    };
    // a load finds the image present (only names are added) or gone (it is copied): both succeed
    for _ in 0..12 {
        let mut cmd = env.cmd(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
        let out = run(&mut cmd);
        assert_success(&cmd, &out);
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    pruner.join().expect("pruner");
    storecheck::verify(&env.root);
    let out = env.ok(["check"]);
    assert!(out.contains("no problems"), "{out}");
}

#[test]
fn a_rootless_store_keeps_its_setuid_files_from_other_users() {
    // single-id mode: a setuid file in an image belongs to the store's owner on the host, so
    // reaching it would give another user the owner's uid
    let env = TestEnv::rootless();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    env.import_busybox("localhost/busybox");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox\nRUN cp /bin/busybox /suid && chmod 4755 /suid\n",
    )
    .expect("Dockerfile");
    common::chown_tree(&ctx, 65534);
    env.ok(["build", "-q", "-t", "suid", "ctx"]);
    let suid: Vec<_> = walkdir::WalkDir::new(env.root.join("layers"))
        .max_depth(3)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name() == "suid")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert_eq!(suid.len(), 1, "{suid:?}");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=4321",
        "--regid=4321",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--",
        "stat",
    ])
    .arg(&suid[0]);
    let out = run(&mut cmd);
    assert!(
        !out.status.success(),
        "another user reached {}",
        suid[0].display()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        show(&out)
    );
}
