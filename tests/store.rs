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
