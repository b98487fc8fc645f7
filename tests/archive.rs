//! `hoist save` and `hoist load` through the real binary: round trips in both formats, archives
//! other tools read and write, and bad archives that must leave the store as it was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{assert_same, require, run, show, TestEnv};

/// `(Id, RootFS.Layers, Names)` of an image, from `hoist inspect`.
fn identity(env: &TestEnv, image: &str) -> (String, Vec<String>, Vec<String>) {
    let out = env.ok(["inspect", image]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    let v = &v[0];
    let strings = |x: &serde_json::Value| -> Vec<String> {
        x.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().expect("string").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        v["Id"].as_str().expect("Id").to_owned(),
        strings(&v["RootFS"]["Layers"]),
        strings(&v["Names"]),
    )
}

/// Every file of the store except scratch space and locks, with its content digest.
fn store_state(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("rel")
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("tmp") || rel.ends_with(".lock") {
            continue;
        }
        let v = if e.file_type().is_file() {
            hoist::image::Digest::of_bytes(&fs::read(e.path()).expect("read")).to_string()
        } else {
            "dir".to_owned()
        };
        out.insert(rel, v);
    }
    out
}

#[test]
fn save_rmi_load_keeps_id_diff_ids_and_names_in_both_formats() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    env.ok(["tag", "bb", "other:2"]);
    let (id, layers, _) = identity(&env, "bb");
    for format in ["docker-archive", "oci-archive"] {
        let file = env.path(&format!("{format}.tar"));
        env.ok([
            "save".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "-o".as_ref(),
            file.as_os_str(),
            "bb".as_ref(),
            "other:2".as_ref(),
        ]);
        env.ok(["rmi", "-f", &id]);
        assert!(env.ok(["images", "-q"]).trim().is_empty());
        let out = env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
        assert_same(
            &format!("{format}: load output"),
            "Loaded image: localhost/bb:latest\nLoaded image: localhost/other:2\n",
            &out,
        );
        let (id2, layers2, names2) = identity(&env, "bb");
        assert_same(&format!("{format}: image ID"), &id, &id2);
        assert_eq!(layers, layers2, "{format}: diff_ids");
        assert_eq!(
            names2,
            ["localhost/bb:latest", "localhost/other:2"],
            "{format}"
        );
        // no half-written file is left beside the archive
        let leftovers: Vec<_> = fs::read_dir(env.dir.path())
            .expect("ls")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".hoist-save-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

#[test]
fn default_format_is_docker_archive_and_load_reads_stdin() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let (id, layers, _) = identity(&env, "bb");
    let file = env.path("default.tar");
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        file.as_os_str(),
        "bb".as_ref(),
    ]);
    let list = run(Command::new("tar").arg("tf").arg(&file));
    assert!(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .any(|l| l == "manifest.json"),
        "{}",
        show(&list)
    );
    // saved by ID: no name, as podman and docker do
    let by_id = env.path("by-id.tar");
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        by_id.as_os_str(),
        id.as_ref(),
    ]);
    env.ok(["rmi", "bb"]);
    // a gzipped archive on standard input
    let gz = env.path("default.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c < '{}' > '{}'",
            file.display(),
            gz.display()
        ))
        .status()
        .expect("gzip");
    assert!(status.success());
    let mut cmd = env.cmd(["load"]);
    cmd.stdin(fs::File::open(&gz).expect("open"));
    let out = run(&mut cmd);
    assert!(out.status.success(), "{}", show(&out));
    assert_same(
        "load from stdin",
        "Loaded image: localhost/bb:latest\n",
        &String::from_utf8_lossy(&out.stdout),
    );
    let (id2, layers2, _) = identity(&env, "bb");
    assert_eq!((id.clone(), layers), (id2, layers2));
    env.ok(["rmi", "bb"]);
    let out = env.ok(["load".as_ref(), "-i".as_ref(), by_id.as_os_str()]);
    assert_same(
        "unnamed load",
        &format!("Loaded image: sha256:{id}\n"),
        &out,
    );
}

#[test]
fn skopeo_accepts_hoist_archives() {
    require("skopeo");
    let env = TestEnv::new();
    env.import_busybox("bb");
    let (id, layers, _) = identity(&env, "bb");
    for format in ["docker-archive", "oci-archive"] {
        let file = env.path(&format!("{format}.tar"));
        env.ok([
            "save".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "-o".as_ref(),
            file.as_os_str(),
            "bb".as_ref(),
        ]);
        let target = format!("{format}:{}", file.display());
        let out = run(Command::new("skopeo").args(["inspect", "--raw", "--config", &target]));
        assert!(
            out.status.success(),
            "skopeo inspect {target}\n{}",
            show(&out)
        );
        assert_same(
            &format!("{format}: config digest seen by skopeo"),
            &id,
            hoist::image::Digest::of_bytes(&out.stdout).hex(),
        );
        let out = run(Command::new("skopeo").args(["inspect", &target]));
        assert!(
            out.status.success(),
            "skopeo inspect {target}\n{}",
            show(&out)
        );
        if format == "docker-archive" {
            // layers are stored uncompressed: their digests are the diff_ids
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
            let got: Vec<String> = v["Layers"]
                .as_array()
                .expect("Layers")
                .iter()
                .map(|s| s.as_str().expect("str").to_owned())
                .collect();
            assert_eq!(got, layers);
        }
    }
}

#[test]
fn load_accepts_archives_skopeo_wrote() {
    require("skopeo");
    let src = TestEnv::new();
    src.import_busybox("bb");
    let (id, layers, _) = identity(&src, "bb");
    let store = format!("oci:{}:localhost/bb:latest", src.root.display());
    for (transport, name, expect) in [
        ("oci-archive", "localhost/bb:latest", "localhost/bb:latest"),
        ("oci-archive", "app:v1", "localhost/app:v1"),
        (
            "docker-archive",
            "localhost/bb:latest",
            "localhost/bb:latest",
        ),
        ("docker-archive", "app:v1", "docker.io/library/app:v1"),
    ] {
        let file = src.path(&format!(
            "skopeo-{transport}-{}.tar",
            name.replace(['/', ':'], "_")
        ));
        let dest = format!("{transport}:{}:{name}", file.display());
        let out = run(Command::new("skopeo").args(["copy", "-q", &store, &dest]));
        assert!(
            out.status.success(),
            "skopeo copy {store} {dest}\n{}",
            show(&out)
        );
        let env = TestEnv::new();
        let out = env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
        assert_same(
            &format!("{dest}: load output"),
            &format!("Loaded image: {expect}\n"),
            &out,
        );
        let (id2, layers2, names) = identity(&env, expect);
        assert_same(&format!("{dest}: image ID"), &id, &id2);
        assert_eq!(layers, layers2, "{dest}: diff_ids");
        assert_eq!(names, [expect]);
    }
}

/// Runs `hoist load -i FILE` on a bad archive: exit status 1, one line naming the problem, the
/// store exactly as before.
fn refuse(env: &TestEnv, data: &[u8], name: &str, expect: &str) {
    let file = env.path(name);
    fs::write(&file, data).expect("write");
    let before = store_state(&env.root);
    let err = env.fails(1, ["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{name}: one line expected:\n{err}"
    );
    assert!(err.contains(expect), "{name}: `{expect}` not in: {err}");
    assert!(
        err.contains(name),
        "{name}: the message names the file: {err}"
    );
    assert_eq!(before, store_state(&env.root), "{name}: the store changed");
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("finish")
}

#[test]
fn bad_archives_exit_1_with_one_line_and_leave_the_store_alone() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let good = env.path("good.tar");
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        good.as_os_str(),
        "bb".as_ref(),
    ]);
    let good = fs::read(&good).expect("read");
    env.ok(["tag", "bb", "keep:1"]);

    refuse(&env, &good[..good.len() / 2], "truncated.tar", "truncated");
    refuse(
        &env,
        b"hello, this is not a tar\n",
        "text.tar",
        "not a tar archive",
    );
    refuse(
        &env,
        &tar_of(&[("hello", b"hi")]),
        "neither.tar",
        "neither an oci-archive nor a docker-archive",
    );
    let manifest = br#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["missing.tar"]}]"#;
    let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    refuse(
        &env,
        &tar_of(&[("manifest.json", manifest), ("c.json", config)]),
        "missing-blob.tar",
        "`missing.tar`, which is not in the archive",
    );
    refuse(
        &env,
        &tar_of(&[("../escape", b"x"), ("manifest.json", manifest)]),
        "escape.tar",
        "escapes the archive",
    );
    // a layer of an OCI archive that is not the blob its manifest names
    let mut ar = tar::Archive::new(&good[..]);
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        entries.push((name, data));
    }
    let layer = entries
        .iter_mut()
        .find(|(n, _)| n.ends_with(".tar") && !n.contains('/'))
        .expect("a layer tar");
    let mid = layer.1.len() / 2;
    layer.1[mid] ^= 0xff;
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    refuse(&env, &tar_of(&refs), "altered-layer.tar", "diff_id");
    assert_eq!(
        identity(&env, "keep:1").2,
        ["localhost/bb:latest", "localhost/keep:1"]
    );
}

#[test]
fn failed_save_leaves_no_file() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let out = env.path("out.tar");
    let err = env.fails(
        1,
        [
            "save".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            "bb".as_ref(),
            "nosuch".as_ref(),
        ],
    );
    assert!(err.contains("nosuch"), "{err}");
    assert!(!out.exists());
    let names: Vec<_> = fs::read_dir(env.dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hoist-save-"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // writing an archive to a terminal-less stdout works, and to a file in a missing dir fails
    let mut cmd = env.cmd(["save", "bb"]);
    cmd.stdout(Stdio::piped());
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", show(&o));
    assert!(o.stdout.len() > 1_000_000);
    let err = env.fails(1, ["save", "-o", "/nonexistent-dir/x.tar", "bb"]);
    assert!(err.contains("/nonexistent-dir/x.tar"), "{err}");
    let _ = std::io::stdout().flush();
}

#[test]
fn rootless_save_and_load() {
    let env = TestEnv::rootless();
    env.import_busybox("bb");
    let (id, layers, _) = identity(&env, "bb");
    for format in ["docker-archive", "oci-archive"] {
        let file = env.path(&format!("{format}.tar"));
        env.ok([
            "save".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "-o".as_ref(),
            file.as_os_str(),
            "bb".as_ref(),
        ]);
        env.ok(["rmi", "bb"]);
        let out = env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
        assert_same(format, "Loaded image: localhost/bb:latest\n", &out);
        assert_eq!(
            identity(&env, "bb"),
            (
                id.clone(),
                layers.clone(),
                vec!["localhost/bb:latest".to_owned()]
            )
        );
    }
}

/// A one-layer image whose layer is `layer` (an uncompressed tar), as a docker-archive and as an
/// oci-archive (gzip layer).
fn archives_with_layer(layer: &[u8]) -> (Vec<u8>, Vec<u8>) {
    use hoist::image::Digest;
    let diff_id = Digest::of_bytes(layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .expect("json");
    let cfg = Digest::of_bytes(&config);
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l.tar"],
    }]))
    .expect("json");
    let docker = tar_of(&[
        ("manifest.json", &manifest),
        ("c.json", &config),
        ("l.tar", layer),
    ]);
    let (blob, gz) =
        hoist::layer::compress(layer, Vec::new(), hoist::layer::Compression::Gzip).expect("gzip");
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob.digest.to_string(), "size": blob.size}],
    }))
    .expect("json");
    let md = Digest::of_bytes(&m);
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": m.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "evil:1"}}],
    }))
    .expect("json");
    let names = [
        format!("blobs/sha256/{}", cfg.hex()),
        format!("blobs/sha256/{}", blob.digest.hex()),
        format!("blobs/sha256/{}", md.hex()),
    ];
    let oci = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&names[0], &config),
        (&names[1], &gz),
        (&names[2], &m),
    ]);
    (docker, oci)
}

fn tar_with_links(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        match link {
            Some(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..t.len()].copy_from_slice(t.as_bytes());
            }
            None => h.set_entry_type(tar::EntryType::Regular),
        }
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("finish")
}

#[test]
fn archives_with_a_layer_that_escapes_are_refused() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let dotdot = tar_with_links(&[("../../evil", None, b"x")]);
    let via_link = tar_with_links(&[("etc", Some("/etc"), b""), ("etc/evil", None, b"x")]);
    for (what, layer) in [("dotdot", dotdot), ("symlink", via_link)] {
        let (docker, oci) = archives_with_layer(&layer);
        refuse(
            &env,
            &docker,
            &format!("{what}-docker.tar"),
            "escapes the target directory",
        );
        refuse(
            &env,
            &oci,
            &format!("{what}-oci.tar"),
            "escapes the target directory",
        );
    }
    // the same builders make a loadable archive from a friendly layer (so the refusals above
    // are about the layer, not the archive)
    let (docker, oci) = archives_with_layer(&tar_with_links(&[("etc/ok", None, b"x")]));
    for (name, data) in [("fine-docker.tar", docker), ("fine-oci.tar", oci)] {
        let file = env.path(name);
        fs::write(&file, data).expect("write");
        let out = env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
        assert_same(name, "Loaded image: ", &out[..14]);
    }
}

#[test]
fn podman_loads_hoist_archives_and_hoist_loads_podman_s() {
    require("podman");
    let env = TestEnv::new();
    env.import_busybox("bb");
    let (id, _, _) = identity(&env, "bb");
    let podman = |args: &[&str]| {
        let out = run(Command::new("podman")
            .arg("--root")
            .arg(env.path("podman/root"))
            .arg("--runroot")
            .arg(env.path("podman/run"))
            .args(["--storage-driver", "vfs"])
            .args(args));
        assert!(out.status.success(), "podman {args:?}\n{}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for format in ["docker-archive", "oci-archive"] {
        let file = env.path(&format!("for-podman-{format}.tar"));
        env.ok([
            "save".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            "-o".as_ref(),
            file.as_os_str(),
            "bb".as_ref(),
        ]);
        let out = podman(&["load", "-q", "-i", &file.display().to_string()]);
        assert!(out.contains("localhost/bb:latest"), "{format}: {out}");
        let pid = podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/bb:latest",
        ]);
        assert_same(&format!("{format}: image ID in podman"), &id, pid.trim());
        podman(&["rmi", "-f", "localhost/bb:latest"]);
    }
    // and back: podman's oci-archive keeps the config, so the ID is the same in hoist
    podman(&[
        "load",
        "-q",
        "-i",
        &env.path("for-podman-oci-archive.tar").display().to_string(),
    ]);
    let back = env.path("from-podman.tar");
    podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        &back.display().to_string(),
        "localhost/bb:latest",
    ]);
    env.ok(["rmi", "bb"]);
    let out = env.ok(["load".as_ref(), "-i".as_ref(), back.as_os_str()]);
    assert_same(
        "load of podman's archive",
        "Loaded image: localhost/bb:latest\n",
        &out,
    );
    assert_eq!(identity(&env, "bb").0, id);
}

/// `(file type, rdev)` of a path, not following a final symbolic link.
fn kind_of(p: &Path) -> (String, u64) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = fs::symlink_metadata(p).expect("lstat");
    let ft = md.file_type();
    let k = if ft.is_char_device() {
        "char"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    };
    (k.to_owned(), md.rdev())
}

fn mknod_null(p: &Path) {
    let status = Command::new("mknod")
        .arg(p)
        .args(["c", "1", "3"])
        .status()
        .expect("mknod");
    assert!(status.success());
}

/// Issue 8, item 0: `save -o /dev/null` as root replaced the system's `/dev/null` with a
/// regular file. Devices and FIFOs are written into; only regular files are replaced.
#[test]
fn save_writes_into_devices_and_fifos_and_replaces_only_regular_files() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let reference = env.path("ref.tar");
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        reference.as_os_str(),
        "bb".as_ref(),
    ]);
    let want = fs::read(&reference).expect("read");

    // a character device of our own (a copy of 1:3), directly and through a symbolic link
    let null = env.path("null");
    mknod_null(&null);
    let link = env.path("null-link");
    std::os::unix::fs::symlink(&null, &link).expect("symlink");
    for dest in [&null, &link] {
        env.ok([
            "save".as_ref(),
            "-o".as_ref(),
            dest.as_os_str(),
            "bb".as_ref(),
        ]);
    }
    assert_eq!(kind_of(&null), ("char".to_owned(), libc::makedev(1, 3)));
    assert_eq!(kind_of(&link).0, "symlink");

    // a FIFO with a reader gets the whole archive and stays a FIFO
    let fifo = env.path("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).expect("read the fifo"))
    };
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        fifo.as_os_str(),
        "bb".as_ref(),
    ]);
    let got = reader.join().expect("reader");
    assert!(
        got == want,
        "the FIFO got {} bytes, not the archive",
        got.len()
    );
    assert_eq!(kind_of(&fifo).0, "fifo");

    // a regular file is replaced whole (a new inode), keeping its mode, with no leftovers
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let reg = env.path("reg.tar");
    fs::write(&reg, b"old").expect("write");
    fs::set_permissions(&reg, fs::Permissions::from_mode(0o600)).expect("chmod");
    let before = fs::metadata(&reg).expect("stat").ino();
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        reg.as_os_str(),
        "bb".as_ref(),
    ]);
    let md = fs::metadata(&reg).expect("stat");
    assert_ne!(
        md.ino(),
        before,
        "replaced by rename, not rewritten in place"
    );
    assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    assert!(fs::read(&reg).expect("read") == want);
    let left: Vec<_> = fs::read_dir(env.dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hoist-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // a directory is a clear error
    let d = env.path("adir");
    fs::create_dir(&d).expect("mkdir");
    let err = env.fails(
        1,
        ["save".as_ref(), "-o".as_ref(), d.as_os_str(), "bb".as_ref()],
    );
    assert_same(
        "error",
        &format!("Error: cannot write `{}`: it is a directory\n", d.display()),
        &err,
    );
}

/// `--iidfile` and `--output type=tar,dest=` write into devices too; `/dev/stdout` works.
#[test]
fn build_outputs_write_into_devices() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("mkdir");
    fs::write(ctx.join("Dockerfile"), "FROM bb\nLABEL a=b\n").expect("write");
    let null = env.path("null");
    mknod_null(&null);
    env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        "x".as_ref(),
        "--iidfile".as_ref(),
        null.as_os_str(),
        "--output".as_ref(),
        format!("type=tar,dest={}", null.display()).as_ref(),
        ctx.as_os_str(),
    ]);
    assert_eq!(kind_of(&null), ("char".to_owned(), libc::makedev(1, 3)));
    let out = env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        "x".as_ref(),
        "--iidfile".as_ref(),
        "/dev/stdout".as_ref(),
        ctx.as_os_str(),
    ]);
    let (id, _, _) = identity(&env, "x");
    assert_same("stdout", &format!("sha256:{id}{id}\n"), &out);
    // --output to a FIFO with a reader
    let fifo = env.path("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).expect("read the fifo"))
    };
    env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "--output".as_ref(),
        format!("type=tar,dest={}", fifo.display()).as_ref(),
        ctx.as_os_str(),
    ]);
    let tar = reader.join().expect("reader");
    let mut names = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries().expect("tar") {
        names.push(String::from_utf8_lossy(&e.expect("entry").path_bytes()).into_owned());
    }
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert_eq!(kind_of(&fifo).0, "fifo");
}

/// Issue 8, item 7: a RUN that leaves a hard-linked socket committed a layer whose tar had a
/// hard link to an entry it did not hold, so the image's own archive did not load. Sockets are
/// left out with all their names, from the tar and from the layer dir later steps see.
#[test]
fn hard_linked_sockets_are_left_out_of_the_layer_and_its_dir() {
    let gcc = require("gcc");
    let env = TestEnv::new();
    env.import_busybox("bb");
    let ctx = env.path("ctx");
    fs::create_dir(&ctx).expect("mkdir");
    let src = env.path("mksock.c");
    fs::write(
        &src,
        r#"#include <sys/socket.h>
#include <sys/un.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) return 1;
    return link(argv[1], argv[2]) != 0;
}
"#,
    )
    .expect("write");
    let out = run(Command::new(gcc)
        .args(["-static", "-O", "-o"])
        .arg(ctx.join("mksock"))
        .arg(&src));
    assert!(out.status.success(), "{}", show(&out));
    fs::write(
        ctx.join("Dockerfile"),
        "FROM bb\nCOPY mksock /mksock\n\
         RUN /mksock /s1 /s2 && test -S /s1 && test -S /s2 && echo kept > /kept\n\
         RUN test ! -e /s1 && test ! -e /s2 && test -f /kept\n",
    )
    .expect("write");
    env.ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        "sock".as_ref(),
        ctx.as_os_str(),
    ]);
    // `hoist run` over the layer dirs the build left shows what the blobs hold: no sockets
    env.ok([
        "run",
        "--rm",
        "sock",
        "sh",
        "-c",
        "test ! -e /s1 && test ! -e /s2 && test -f /kept",
    ]);
    let archive = env.path("sock.tar");
    env.ok([
        "save".as_ref(),
        "-o".as_ref(),
        archive.as_os_str(),
        "sock".as_ref(),
    ]);
    // no layer of the archive names the sockets
    let data = fs::read(&archive).expect("read");
    let mut outer = tar::Archive::new(&data[..]);
    for e in outer.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if !name.ends_with(".tar") || name.contains('/') {
            continue;
        }
        let mut layer = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut layer).expect("read");
        for le in tar::Archive::new(&layer[..]).entries().expect("layer") {
            let le = le.expect("layer entry");
            let p = String::from_utf8_lossy(&le.path_bytes()).into_owned();
            assert!(p != "s1" && p != "s2", "{name} holds `{p}`");
        }
    }
    // the image's own archive loads into a fresh store and runs
    let fresh = TestEnv::new();
    let out = fresh.ok(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    assert_same("load", "Loaded image: localhost/sock:latest\n", &out);
    let out = fresh.ok([
        "run",
        "--rm",
        "sock",
        "sh",
        "-c",
        "ls /s1 /s2 2>&1; cat /kept",
    ]);
    assert!(out.contains("kept"), "{out}");
    assert!(
        !out.contains("/s1\n") || out.contains("No such file"),
        "{out}"
    );
}

/// The manifest of the first image of an oci-archive: (its digest, its JSON).
fn oci_archive_manifest(file: &Path) -> (String, serde_json::Value) {
    let mut members = BTreeMap::new();
    let mut ar = tar::Archive::new(fs::File::open(file).expect("archive"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").display().to_string();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        members.insert(path.trim_start_matches("./").to_string(), data);
    }
    let index: serde_json::Value =
        serde_json::from_slice(&members["index.json"]).expect("index.json");
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let blob = &members[&format!("blobs/sha256/{}", &digest[7..])];
    (digest, serde_json::from_slice(blob).expect("manifest"))
}

#[test]
fn oci_archive_gzips_plain_layers_the_same_way_each_time_and_podman_loads_it() {
    let env = TestEnv::new();
    env.import_busybox("bb");
    let ctx = env.path("ctx");
    fs::create_dir_all(&ctx).expect("ctx");
    fs::write(ctx.join("a.txt"), "hello\n".repeat(1000)).expect("a.txt");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/bb\nCOPY a.txt /a.txt\n",
    )
    .expect("Dockerfile");
    env.ok(["build", "-q", "-t", "app", ctx.to_str().expect("utf-8")]);
    let (id, layers, _) = identity(&env, "app");
    let save = |name: &str, extra: &[&str]| {
        let file = env.path(name);
        let mut args = vec![
            "save",
            "--format",
            "oci-archive",
            "-o",
            file.to_str().expect("utf-8"),
        ];
        args.extend_from_slice(extra);
        args.push("app");
        env.ok(&args);
        file
    };
    let (d1, m) = oci_archive_manifest(&save("a.tar", &[]));
    let types: Vec<&str> = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["mediaType"].as_str().expect("mediaType"))
        .collect();
    assert_eq!(
        types, ["application/vnd.oci.image.layer.v1.tar+gzip"; 2],
        "the COPY layer, a plain tar in the store, is gzipped"
    );
    let (d2, _) = oci_archive_manifest(&save("b.tar", &[]));
    assert_eq!(d1, d2, "the same image gives the same manifest");
    let (_, plain) = oci_archive_manifest(&save("plain.tar", &["--uncompressed"]));
    assert_eq!(
        plain["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );

    // hoist and podman load it with the same ID and layers
    let other = TestEnv::new();
    other.ok([
        "load".as_ref(),
        "-i".as_ref(),
        env.path("a.tar").as_os_str(),
    ]);
    let (id2, layers2, _) = identity(&other, "app");
    assert_eq!((id2, layers2), (id.clone(), layers));
    require("podman");
    let out = run(Command::new("podman")
        .arg("--root")
        .arg(env.path("podman/root"))
        .arg("--runroot")
        .arg(env.path("podman/run"))
        .args(["--storage-driver", "vfs", "load", "-q", "-i"])
        .arg(env.path("a.tar")));
    assert!(out.status.success(), "podman load\n{}", show(&out));
    let out = run(Command::new("podman")
        .arg("--root")
        .arg(env.path("podman/root"))
        .arg("--runroot")
        .arg(env.path("podman/run"))
        .args([
            "--storage-driver",
            "vfs",
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            "localhost/app:latest",
        ]));
    assert!(out.status.success(), "podman inspect\n{}", show(&out));
    assert_same(
        "image ID in podman",
        &id,
        String::from_utf8_lossy(&out.stdout).trim(),
    );
}
