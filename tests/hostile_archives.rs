//! Hostile archives through the real binary: crafted layer tars (through `import`, and inside
//! docker-archives and oci-archives through `load`) and crafted image archives. Each one must
//! be refused with exit status 1 and one line naming the archive and the problem, quoting none of
//! its content, write nothing outside its target, and leave the store exactly as it was; the few
//! that docker accepts (absolute paths, duplicates, setuid files, device nodes as root) must load
//! and unpack inside the store. An image that import or load accepted must always unpack.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::TestEnv;
use hoist::image::Digest;
use tar::{EntryType, Header};

/// Every file of the store except scratch space and locks, with its content digest.
fn store_state(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !root.exists() {
        return out;
    }
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
        let v = if rel.starts_with("layers/") {
            // unpacked layers are named by their content; a sparse file of 2 GiB is not re-read
            let md = fs::symlink_metadata(e.path()).expect("lstat");
            format!("{:?} {}", md.file_type(), md.len())
        } else if e.file_type().is_file() {
            Digest::of_bytes(&fs::read(e.path()).expect("read")).to_string()
        } else {
            "dir".to_owned()
        };
        out.insert(rel, v);
    }
    out
}

/// What is in the test's directory outside the store (an escape would add or change something).
fn outside_state(env: &TestEnv) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(env.dir.path())
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != "root")
    {
        let e = e.expect("walk");
        let v = if e.file_type().is_file() {
            Digest::of_bytes(&fs::read(e.path()).expect("read")).to_string()
        } else {
            format!("{:?}", e.file_type())
        };
        out.insert(e.path().display().to_string(), v);
    }
    out
}

/// One raw tar entry: name bytes, type, link target, data, mode.
struct Raw<'a> {
    name: &'a str,
    kind: EntryType,
    link: &'a str,
    data: &'a [u8],
    mode: u32,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: EntryType::Regular,
        link: "",
        data,
        mode: 0o644,
    }
}

fn dir(name: &str) -> Raw<'_> {
    Raw {
        name,
        kind: EntryType::Directory,
        link: "",
        data: b"",
        mode: 0o755,
    }
}

fn symlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind: EntryType::Symlink,
        link: target,
        data: b"",
        mode: 0o777,
    }
}

fn hardlink<'a>(name: &'a str, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind: EntryType::Link,
        link: target,
        data: b"",
        mode: 0o644,
    }
}

fn special(name: &str, kind: EntryType) -> Raw<'_> {
    Raw {
        name,
        kind,
        link: "",
        data: b"",
        mode: 0o666,
    }
}

/// A tar written with the raw header API, so that names are stored exactly as given (long
/// names through GNU long-name entries, which the tar crate writes itself).
fn layer(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(e.data.len() as u64);
        if e.kind == EntryType::Char {
            h.set_device_major(1).expect("major");
            h.set_device_minor(3).expect("minor");
        }
        if !e.link.is_empty() {
            h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link.as_bytes());
        }
        if e.name.len() <= 100 {
            h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            h.set_cksum();
            b.append(&h, e.data).expect("append");
        } else {
            b.append_data(&mut h, e.name, e.data).expect("append long");
        }
    }
    b.into_inner().expect("finish")
}

/// A plain tar of named members (an image archive).
fn members(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let raw: Vec<Raw<'_>> = entries.iter().map(|(n, d)| file(n, d)).collect();
    layer(&raw)
}

/// A GNU sparse entry `name` of `size` apparent bytes holding `data` at its very end: a tiny
/// tar that unpacks to a file of `size` bytes, nearly all holes.
fn sparse_layer(name: &str, size: u64, data: &[u8; 512]) -> Vec<u8> {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(512);
    let g = h.as_gnu_mut().expect("gnu header");
    g.set_real_size(size);
    g.sparse[0].set_offset(size - 512);
    g.sparse[0].set_length(512);
    g.sparse[1].set_offset(size);
    g.sparse[1].set_length(0);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &data[..]).expect("append");
    b.into_inner().expect("finish")
}

/// A one-layer image whose layer is `layer_tar` (uncompressed), as a docker-archive and as an
/// oci-archive whose layer is `gz` (the layer compressed; `None` to gzip `layer_tar`).
fn archives_with_layer(layer_tar: &[u8], gz: Option<Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
    let diff_id = Digest::of_bytes(layer_tar);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "c.json", "RepoTags": ["evil:1"], "Layers": ["l.tar"],
    }]))
    .expect("json");
    let docker = members(&[
        ("manifest.json", &manifest),
        ("c.json", &config),
        ("l.tar", layer_tar),
    ]);
    let gz = gz.unwrap_or_else(|| {
        hoist::layer::compress(layer_tar, Vec::new(), hoist::layer::Compression::Gzip)
            .expect("gzip")
            .1
    });
    let oci = oci_archive(&config, &gz);
    (docker, oci)
}

/// An oci-archive of one image: `config` and one gzip layer `gz`.
fn oci_archive(config: &[u8], gz: &[u8]) -> Vec<u8> {
    let cfg = Digest::of_bytes(config);
    let ld = Digest::of_bytes(gz);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld.to_string(), "size": gz.len()}],
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
        format!("blobs/sha256/{}", ld.hex()),
        format!("blobs/sha256/{}", md.hex()),
    ];
    members(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&names[0], config),
        (&names[1], gz),
        (&names[2], &m),
    ])
}

/// Runs `hoist ARGS… FILE` on `data` written to `name`: exit status 1, exactly one line that
/// names the file and holds `expect`, the store and everything outside it unchanged.
fn refuse(env: &TestEnv, verb: &[&str], data: &[u8], name: &str, expect: &str) -> String {
    if !env.root.exists() {
        env.ok(["images"]);
    }
    let file = env.path(name);
    fs::write(&file, data).expect("write");
    let before = store_state(&env.root);
    let outside = outside_state(env);
    let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
    args.push(file.display().to_string());
    if verb == ["import"] {
        args.push("evil:1".into());
    }
    let err = env.fails(1, &args);
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
    assert_eq!(
        outside,
        outside_state(env),
        "{name}: something changed outside"
    );
    err
}

/// Refuses `layer_tar` through import and through load in both archive formats.
fn refuse_layer(env: &TestEnv, what: &str, layer_tar: &[u8], expect: &str) {
    refuse(env, &["import"], layer_tar, &format!("{what}.tar"), expect);
    let (docker, oci) = archives_with_layer(layer_tar, None);
    refuse(
        env,
        &["load", "-i"],
        &docker,
        &format!("{what}-docker.tar"),
        expect,
    );
    refuse(
        env,
        &["load", "-i"],
        &oci,
        &format!("{what}-oci.tar"),
        expect,
    );
}

/// Loads `layer_tar` (as a docker-archive) and unpacks it by running the image: it must load,
/// unpack, and write nothing outside the store.
fn accept_layer(env: &TestEnv, what: &str, layer_tar: &[u8]) {
    let (docker, _) = archives_with_layer(layer_tar, None);
    let file = env.path(&format!("{what}-docker.tar"));
    fs::write(&file, docker).expect("write");
    let outside = outside_state(env);
    env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
    // the image has no program: running it unpacks the layer, then fails to start `/none`
    let err = env.fails(127, ["run", "--rm", "evil:1", "/none"]);
    assert!(
        !err.contains("layer"),
        "{what}: the layer did not unpack: {err}"
    );
    assert_eq!(
        outside,
        outside_state(env),
        "{what}: something changed outside"
    );
    env.ok(["rmi", "evil:1"]);
}

#[test]
fn escapes_are_refused_by_import_and_load() {
    let env = TestEnv::new();
    refuse_layer(
        &env,
        "dotdot",
        &layer(&[file("../../escaped", b"x")]),
        "escapes the target directory",
    );
    refuse_layer(
        &env,
        "symlinked-parent",
        &layer(&[symlink("etc", "/etc"), file("etc/evil", b"x")]),
        "escapes the target directory",
    );
    refuse_layer(
        &env,
        "hardlink-out",
        &layer(&[hardlink("passwd", "../../../etc/passwd")]),
        "escapes the target directory",
    );
    refuse_layer(
        &env,
        "hardlink-absolute",
        &layer(&[hardlink("passwd", "/etc/passwd")]),
        "hard link target `etc/passwd` does not exist in the layer",
    );
    // a later entry of the same name turns a directory into a symbolic link; a hard link to
    // what was below the directory then leads through the link
    refuse_layer(
        &env,
        "duplicate-dir-then-symlink",
        &layer(&[
            dir("d"),
            file("d/f", b"x"),
            symlink("d", "/etc"),
            hardlink("x", "d/f"),
        ]),
        "its parent `d` is a symbolic link",
    );
    refuse_layer(
        &env,
        "whiteout-through-symlink",
        &layer(&[symlink("etc", "/etc"), file("etc/.wh.passwd", b"")]),
        "escapes the target directory",
    );
    refuse_layer(
        &env,
        "whiteout-dotdot",
        &layer(&[file("../.wh.etc", b"")]),
        "escapes the target directory",
    );
    refuse_layer(
        &env,
        "whiteout-malformed",
        &layer(&[file(".wh...", b"")]),
        "malformed whiteout name",
    );
}

/// The three kinds of layer that import and load used to accept and unpacking then refused (and
/// the other refusals of the unpacker): the check is now the unpacker's own walk.
#[test]
fn layers_the_unpacker_refuses_are_refused_at_import_and_load() {
    let env = TestEnv::new();
    refuse_layer(
        &env,
        "volume-header",
        &layer(&[special("vol", EntryType::new(b'V'))]),
        "unsupported tar entry type `V` (a GNU volume header)",
    );
    refuse_layer(
        &env,
        "below-a-file",
        &layer(&[file("a", b"x"), file("a/b", b"y")]),
        "its parent `a` is not a directory",
    );
    refuse_layer(
        &env,
        "file-as-root",
        &layer(&[file("./", b"")]),
        "the root of a layer must be a directory",
    );
    refuse_layer(
        &env,
        "empty-symlink",
        &layer(&[symlink("l", "")]),
        "symbolic link without a target",
    );
    let long = "n".repeat(300);
    refuse_layer(
        &env,
        "long-name",
        &layer(&[file(&long, b"x")]),
        "File name too long",
    );
    // a long path of short names is fine
    let deep = ["d"; 120].join("/") + "/f";
    accept_layer(&env, "long-path", &layer(&[file(&deep, b"x")]));
}

#[test]
fn tolerated_oddities_load_and_unpack_inside_the_store() {
    let env = TestEnv::new();
    // docker drops a leading `/`
    let abs = format!("/tmp/hoist-hostile-abs-{}", std::process::id());
    accept_layer(&env, "absolute", &layer(&[file(&abs, b"x")]));
    assert!(!Path::new(&abs).exists(), "an absolute path was written");
    // later entries win
    accept_layer(
        &env,
        "duplicates",
        &layer(&[
            file("a", b"1"),
            file("a", b"2"),
            dir("a"),
            file("a/b", b"3"),
        ]),
    );
    let mut setuid = file("su", b"#!/bin/sh\n");
    setuid.mode = 0o4755;
    accept_layer(&env, "setuid", &layer(&[setuid]));
    // as real root, device nodes are made (inside the store only)
    accept_layer(
        &env,
        "device",
        &layer(&[dir("dev"), special("dev/null2", EntryType::Char)]),
    );
    accept_layer(&env, "opaque-root", &layer(&[file(".wh..wh..opq", b"")]));
}

#[test]
fn rootless_device_nodes_are_skipped_at_load_and_at_unpack() {
    // podman's behaviour: a device node that cannot be made in the user namespace is left out
    // (the container's /dev is provided at run time); the load check and the unpack agree
    let env = TestEnv::rootless();
    let dev = layer(&[dir("dev"), special("dev/sda", EntryType::Block)]);
    let (docker, oci) = archives_with_layer(&dev, None);
    for (name, data) in [("dev-docker.tar", &docker), ("dev-oci.tar", &oci)] {
        let file = env.path(name);
        fs::write(&file, data).expect("write");
        env.ok(["load".as_ref(), "-i".as_ref(), file.as_os_str()]);
    }
    // the container starts (the layer unpacks); the image has no programs
    env.fails(127, ["run", "--rm", "evil:1", "/none"]);
    let mut layers = 0;
    for l in fs::read_dir(env.root.join("layers")).expect("layers") {
        let l = l.expect("entry").path().join("diff");
        assert!(l.join("dev").is_dir(), "{}", l.display());
        assert!(fs::symlink_metadata(l.join("dev/sda")).is_err());
        layers += 1;
    }
    assert_eq!(layers, 1, "docker and OCI archives share the layer");
}

#[test]
fn sparse_files_stay_sparse_and_huge_ones_are_refused() {
    let env = TestEnv::new();
    let mut tail = [0u8; 512];
    tail[511] = b'!';
    // 2 GiB of holes in a 2.5 KB tar
    let two_gib = sparse_layer("big", 2 << 30, &tail);
    assert!(two_gib.len() < 10_000);
    let file = env.path("sparse.tar");
    fs::write(&file, &two_gib).expect("write");
    env.ok(["import".as_ref(), file.as_os_str(), "sparse:1".as_ref()]);
    let (docker, _) = archives_with_layer(&two_gib, None);
    let archive = env.path("sparse-docker.tar");
    fs::write(&archive, docker).expect("write");
    env.ok(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    env.fails(127, ["run", "--rm", "sparse:1", "/none"]);
    env.fails(127, ["run", "--rm", "evil:1", "/none"]);
    let mut seen = 0;
    for l in fs::read_dir(env.root.join("layers")).expect("layers") {
        let big = l.expect("entry").path().join("diff").join("big");
        let md = fs::metadata(&big).expect("the sparse file is unpacked");
        assert_eq!(md.len(), 2 << 30);
        assert!(
            md.blocks() * 512 < 1 << 20,
            "{}: {} bytes on disk",
            big.display(),
            md.blocks() * 512
        );
        let mut f = fs::File::open(&big).expect("open");
        let mut buf = vec![0u8; 4096];
        for at in [0u64, 1 << 30, (2 << 30) - 4096] {
            f.seek(SeekFrom::Start(at)).expect("seek");
            f.read_exact(&mut buf).expect("read");
            let want_last = if at == (2 << 30) - 4096 { b'!' } else { 0 };
            assert_eq!(buf[4095], want_last, "byte {} of big", at + 4095);
            assert!(buf[..4095].iter().all(|&b| b == 0));
        }
        seen += 1;
    }
    assert_eq!(seen, 1, "import and load share the layer");

    // a tiny archive claiming 1 TiB is refused by the default bound (256 GiB)
    let huge = sparse_layer("huge", 1 << 40, &tail);
    refuse_layer(&env, "huge-sparse", &huge, "the layer expands to more than");
    // the bound is configurable
    let mut cmd = env.cmd(["import".as_ref(), file.as_os_str(), "small:1".as_ref()]);
    cmd.env("HOIST_MAX_LAYER_SIZE", "1G");
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    common::assert_same(
        "error",
        &format!(
            "Error: invalid tarball `{}`: layer entry `big`: the layer expands to more than \
             1073741824 bytes (the bound set by HOIST_MAX_LAYER_SIZE)\n",
            file.display()
        ),
        &err,
    );
}

#[test]
fn gzip_bomb_is_bounded() {
    let env = TestEnv::new();
    env.ok(["images"]);
    let zeros = vec![0u8; 64 << 20];
    let bomb = layer(&[file("zeros", &zeros)]);
    // the gzip command is much faster than a debug build of the compressor
    let mut gz = std::process::Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip");
    let mut stdin = gz.stdin.take().expect("stdin");
    let writer = std::thread::spawn({
        let bomb = bomb.clone();
        move || std::io::Write::write_all(&mut stdin, &bomb).expect("feed gzip")
    });
    let out = gz.wait_with_output().expect("gzip");
    writer.join().expect("writer");
    let (docker, oci) = archives_with_layer(&bomb, Some(out.stdout));
    assert!(oci.len() < 1 << 20, "{} bytes", oci.len());
    for (name, data) in [("bomb-docker.tar", docker), ("bomb-oci.tar", oci)] {
        let path = env.path(name);
        fs::write(&path, data).expect("write");
        let before = store_state(&env.root);
        let mut cmd = env.cmd(["load".as_ref(), "-i".as_ref(), path.as_os_str()]);
        cmd.env("HOIST_MAX_LAYER_SIZE", "16M");
        let out = cmd.output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("the layer expands to more than 16777216 bytes"),
            "{err}"
        );
        assert_eq!(before, store_state(&env.root));
    }
}

#[test]
fn bad_image_archives_are_refused() {
    let env = TestEnv::new();
    let ok_layer = layer(&[file("etc/ok", b"x")]);
    let (good_docker, _) = archives_with_layer(&ok_layer, None);
    // a truncated archive and a truncated layer
    refuse(
        &env,
        &["load", "-i"],
        &good_docker[..good_docker.len() - 1536],
        "cut.tar",
        "truncated",
    );
    let (_, cut_oci) = archives_with_layer(
        &ok_layer,
        Some({
            let gz =
                hoist::layer::compress(&ok_layer[..], Vec::new(), hoist::layer::Compression::Gzip)
                    .expect("gzip")
                    .1;
            gz[..gz.len() / 2].to_vec()
        }),
    );
    refuse(
        &env,
        &["load", "-i"],
        &cut_oci,
        "cut-layer-oci.tar",
        "layer",
    );
    refuse(
        &env,
        &["import"],
        &ok_layer[..700],
        "cut-layer.tar",
        "truncated",
    );
    // members that leave the archive
    let config = br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#;
    for (what, m) in [
        (
            "manifest-dotdot",
            r#"[{"Config":"c.json","RepoTags":["x:1"],"Layers":["../../etc/passwd"]}]"#,
        ),
        (
            "config-dotdot",
            r#"[{"Config":"../c.json","RepoTags":["x:1"],"Layers":[]}]"#,
        ),
    ] {
        refuse(
            &env,
            &["load", "-i"],
            &members(&[("manifest.json", m.as_bytes()), ("c.json", config)]),
            &format!("{what}.tar"),
            "which is not in the archive",
        );
    }
    refuse(
        &env,
        &["load", "-i"],
        &members(&[("/abs/manifest.json", b"[]")]),
        "absolute-member.tar",
        "escapes the archive",
    );
    // an OCI config whose content is not its digest
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let gz = hoist::layer::compress(&ok_layer[..], Vec::new(), hoist::layer::Compression::Gzip)
        .expect("gzip")
        .1;
    let mut oci = oci_archive(cfg, &gz);
    let at = oci
        .windows(cfg.len())
        .position(|w| w == cfg)
        .expect("config member");
    oci[at + 2] = b'A';
    refuse(
        &env,
        &["load", "-i"],
        &oci,
        "config-mismatch.tar",
        "its content does not match the digest and size in the manifest",
    );
}

/// Item 10 of issue 8: one line, the object named, nothing of the input quoted, no cause twice.
#[test]
fn errors_are_one_line_without_the_input() {
    let env = TestEnv::new();
    let secret = env.path("secret.txt");
    // a password file longer than one tar block, as /etc/passwd is
    fs::write(
        &secret,
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
         bin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\n"
            .repeat(8),
    )
    .expect("write");
    let shown = secret.display();
    let err = env.fails(1, ["load".as_ref(), "-i".as_ref(), secret.as_os_str()]);
    common::assert_same(
        "load",
        &format!(
            "Error: `{shown}` is not a tar archive: an entry header is unreadable (not a tar, or \
             damaged)\n"
        ),
        &err,
    );
    let err = env.fails(1, ["import".as_ref(), secret.as_os_str(), "x:1".as_ref()]);
    common::assert_same(
        "import",
        &format!(
            "Error: invalid tarball `{shown}`: not a valid tar archive: an entry header is \
             unreadable (not a tar, or damaged)\n"
        ),
        &err,
    );
    let d = env.dir.path().display();
    let err = env.fails(1, ["load", "-i", &d.to_string()]);
    common::assert_same(
        "load a dir",
        &format!("Error: `{d}`: Is a directory (os error 21)\n"),
        &err,
    );
    let mut cmd = env.cmd(["images"]);
    cmd.env("HOIST_ROOT", secret.join("x"));
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");
    let err = refuse(
        &env,
        &["import"],
        &layer(&[special("vol", EntryType::new(b'V'))]),
        "vol.tar",
        "unsupported tar entry type `V`",
    );
    assert!(!err.contains("Nonexhaustive"), "{err}");
}
