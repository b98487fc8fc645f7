//! `hoist build --compression none|gzip|zstd` (and `--compression-level`): the media type other
//! tools see, what the blobs hold, that the choice never changes the image ID, that a zstd image
//! survives save/load and that bad values are refused.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{assert_same, require, run, show, TestEnv};

const DOCKERFILE: &str = "FROM localhost/busybox\n\
RUN mkdir /data && seq 1 20000 > /data/numbers && echo ran > /data/ran\n\
COPY a.txt /data/a.txt\n";

/// A store with the busybox base and a context `ctx` holding `DOCKERFILE` and `a.txt`.
fn env() -> TestEnv {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    fs::write(ctx.join("a.txt"), "hello\n").expect("a.txt");
    env
}

/// `hoist build -q --timestamp 0 ARGS… -t NAME ctx`; returns the image ID.
fn build(env: &TestEnv, name: &str, args: &[&str]) -> String {
    let mut all = vec!["build", "-q", "--timestamp", "0", "-t", name];
    all.extend_from_slice(args);
    all.push("ctx");
    env.ok(all).trim().to_string()
}

/// The manifest of `name` in the store as skopeo reads it (`oci:ROOT:NAME`).
fn skopeo_manifest(env: &TestEnv, name: &str) -> serde_json::Value {
    let target = format!("oci:{}:{name}", env.root.display());
    let out = run(Command::new("skopeo").args(["inspect", "--raw", &target]));
    assert!(
        out.status.success(),
        "skopeo inspect {target}\n{}",
        show(&out)
    );
    serde_json::from_slice(&out.stdout).expect("manifest json")
}

fn blob(root: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    fs::read(root.join("blobs/sha256").join(hex)).expect("blob")
}

/// The bytes of the manifest named `NAME:latest` in the store's `index.json`.
fn manifest(env: &TestEnv, name: &str) -> Vec<u8> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(env.root.join("index.json")).expect("index"))
            .expect("index json");
    let want = format!("{name}:latest");
    let d = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == want.as_str())
        .expect("named manifest")["digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    blob(&env.root, &d)
}

/// The `RootFS.Layers` (diff_ids) of `name`.
fn diff_ids(env: &TestEnv, name: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(["inspect", name])).expect("json");
    v[0]["RootFS"]["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .map(|s| s.as_str().expect("str").to_owned())
        .collect()
}

#[test]
fn each_compression_gives_its_media_type_and_blob_and_one_image_id() {
    require("skopeo");
    let cases = [
        (
            "none",
            "application/vnd.oci.image.layer.v1.tar",
            &b"data/"[..],
        ),
        (
            "gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &[0x1f, 0x8b][..],
        ),
        (
            "zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            &[0x28, 0xb5, 0x2f, 0xfd][..],
        ),
    ];
    let mut ids = Vec::new();
    for (format, media_type, magic) in cases {
        // a store of its own: a store keeps one manifest per image ID, the first one committed
        let env = env();
        let name = format!("localhost/c-{format}");
        let id = build(&env, &name, &["--compression", format]);
        ids.push(id);
        let m = skopeo_manifest(&env, &format!("{name}:latest"));
        let layers = m["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 3, "{m}");
        let diffs = diff_ids(&env, &name);
        // the base keeps the blob `import` wrote; the RUN and COPY layers are the build's
        for (layer, diff_id) in layers[1..].iter().zip(&diffs[1..]) {
            assert_eq!(layer["mediaType"], media_type, "{format}: {m}");
            let digest = layer["digest"].as_str().expect("digest");
            let data = blob(&env.root, digest);
            assert!(
                data.starts_with(magic),
                "{format}: blob {digest} starts wrong"
            );
            if format == "none" {
                assert_eq!(digest, diff_id, "a plain layer's digest is its diff_id");
            } else {
                assert_ne!(digest, diff_id);
            }
        }
        let shown = env.ok(["run", "--rm", &name, "cat", "/data/ran", "/data/a.txt"]);
        assert_same(&format!("{format}: files"), "ran\nhello\n", &shown);
    }
    // the config lists diff_ids, never blob digests: compression does not change the image ID
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
}

#[test]
fn the_same_build_in_two_stores_gives_the_same_blobs() {
    for format in ["none", "gzip", "zstd"] {
        let manifests: Vec<String> = (0..2)
            .map(|_| {
                let env = env();
                build(&env, "localhost/same", &["--compression", format]);
                String::from_utf8(manifest(&env, "localhost/same")).expect("manifest text")
            })
            .collect();
        assert_same(
            &format!("{format}: manifest of two builds"),
            &manifests[0],
            &manifests[1],
        );
    }
}

#[test]
fn a_zstd_image_round_trips_save_and_load() {
    let env = env();
    let id = build(&env, "localhost/z", &["--compression", "zstd"]);
    let want = diff_ids(&env, "localhost/z");
    for format in ["oci-archive", "docker-archive"] {
        let file = env.path(&format!("z-{format}.tar"));
        env.ok([
            "save".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "-o".as_ref(),
            file.as_os_str(),
            "localhost/z".as_ref(),
        ]);
        let other = TestEnv::new();
        let out = other.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
        assert!(out.contains("localhost/z"), "{format}: {out}");
        assert_eq!(diff_ids(&other, "localhost/z"), want, "{format}");
        let v: serde_json::Value =
            serde_json::from_str(&other.ok(["inspect", "localhost/z"])).expect("json");
        assert_eq!(v[0]["Id"].as_str().expect("Id"), id, "{format}: image ID");
        let shown = other.ok([
            "run",
            "--rm",
            "localhost/z",
            "cat",
            "/data/ran",
            "/data/a.txt",
        ]);
        assert_same(&format!("{format}: files"), "ran\nhello\n", &shown);
    }
}

#[test]
fn levels_change_the_blob_but_not_the_image() {
    let (env, other) = (env(), env());
    let fast = build(
        &env,
        "localhost/g1",
        &["--compression", "gzip", "--compression-level", "1"],
    );
    let best = build(
        &other,
        "localhost/g9",
        &["--compression-format", "gzip", "--compression-level", "9"],
    );
    assert_eq!(fast, best);
    let layer = |env: &TestEnv, name: &str| {
        let m: serde_json::Value =
            serde_json::from_slice(&manifest(env, name)).expect("manifest json");
        m["layers"][1]["digest"]
            .as_str()
            .expect("digest")
            .to_owned()
    };
    assert_ne!(layer(&env, "localhost/g1"), layer(&other, "localhost/g9"));
}

#[test]
fn bad_compression_flags_are_refused() {
    let env = env();
    for (args, says) in [
        (
            vec!["--compression", "lz4"],
            "unknown `--compression` format `lz4`",
        ),
        (
            vec!["--compression", "gzip", "--compression-level", "10"],
            "`--compression-level 10`: gzip levels go from 0 to 9",
        ),
        (
            vec!["--compression", "zstd", "--compression-level", "0"],
            "`--compression-level 0`: zstd levels go from 1 to 19",
        ),
        (
            vec!["--compression-level", "3"],
            "`--compression none` takes no level",
        ),
    ] {
        let mut all = vec!["build", "-t", "localhost/bad"];
        all.extend(args.iter().copied());
        all.push("ctx");
        let err = env.fails(1, all);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!env.ok(["images"]).contains("localhost/bad"));
}
