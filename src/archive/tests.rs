//! Archive round trips through an in-memory image, and archives that must be refused.

use std::collections::HashMap;
use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;

use oci_spec::image::ImageManifest;
use serde_json::json;

use super::*;
use crate::image::{Digest, ImageError, ImageSource, Reference};
use crate::layer::{write_dir_tar, DiffOptions};

struct MemImage {
    manifest: Vec<u8>,
    config: Vec<u8>,
    blobs: HashMap<Digest, Vec<u8>>,
}

impl ImageSource for MemImage {
    fn manifest(&self) -> Result<(Vec<u8>, ImageManifest), ImageError> {
        let m = serde_json::from_slice(&self.manifest).expect("manifest");
        Ok((self.manifest.clone(), m))
    }
    fn config(&self) -> Result<Vec<u8>, ImageError> {
        Ok(self.config.clone())
    }
    fn open_blob(&self, d: &Digest) -> Result<Box<dyn Read + '_>, ImageError> {
        let b = self
            .blobs
            .get(d)
            .ok_or_else(|| ImageError::MissingBlob(d.clone()))?;
        Ok(Box::new(Cursor::new(b.clone())))
    }
}

/// A two-layer gzip image whose layers hold `tag` so that images differ.
fn mem_image(tag: &str) -> MemImage {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut layers = Vec::new();
    for i in 0..2 {
        let dir = tmp.path().join(format!("l{i}"));
        fs::create_dir_all(dir.join("etc")).expect("mkdir");
        fs::write(dir.join(format!("etc/f{i}")), format!("{tag} {i}")).expect("write");
        let (blob, data) = write_dir_tar(&dir, Vec::new(), &DiffOptions::default()).expect("tar");
        layers.push((blob, data));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(b, _)| b.diff_id.to_string()).collect::<Vec<_>>()},
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::of_bytes(&config).to_string(), "size": config.len()},
        "layers": layers.iter().map(|(b, _)| json!({"mediaType": b.media_type.to_string(), "digest": b.digest.to_string(), "size": b.size})).collect::<Vec<_>>(),
    }))
    .expect("manifest");
    let blobs = layers.into_iter().map(|(b, d)| (b.digest, d)).collect();
    MemImage {
        manifest,
        config,
        blobs,
    }
}

fn diff_ids_of(src: &dyn ImageSource) -> Vec<String> {
    let c: serde_json::Value =
        serde_json::from_slice(&src.config().expect("config")).expect("json");
    c["rootfs"]["diff_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("str").to_owned())
        .collect()
}

fn save(format: ArchiveFormat, images: &[(&MemImage, &[&str])], path: &Path) {
    let items: Vec<SaveImage<'_>> = images
        .iter()
        .map(|(img, names)| SaveImage {
            source: *img,
            names: names
                .iter()
                .map(|n| Reference::parse_local(n).expect("name"))
                .collect(),
            shown: names.first().copied().unwrap_or("image").to_owned(),
        })
        .collect();
    let f = fs::File::create(path).expect("create");
    write_archive(f, path, format, &items).expect("write");
}

/// Copies every blob out of an archive image as a store would, checking digests and diff_ids.
fn check_readable(img: &ArchiveImage) {
    let (mbytes, m) = img.manifest().expect("manifest");
    assert_eq!(Digest::from_oci(m.config().digest()).expect("d"), *img.id());
    assert_eq!(Digest::of_bytes(&img.config().expect("config")), *img.id());
    let ids = diff_ids_of(img);
    for (l, id) in m.layers().iter().zip(ids) {
        let d = Digest::from_oci(l.digest()).expect("d");
        let mut data = Vec::new();
        img.open_blob(&d)
            .expect("open")
            .read_to_end(&mut data)
            .expect("read");
        assert_eq!(Digest::of_bytes(&data), d);
        assert_eq!(data.len() as u64, l.size());
        let (mut r, _) = crate::layer::decompress(&data[..]).expect("decompress");
        let mut tar = Vec::new();
        r.read_to_end(&mut tar).expect("read");
        assert_eq!(Digest::of_bytes(&tar).to_string(), id);
    }
    assert!(!mbytes.is_empty());
}

#[test]
fn both_formats_round_trip_ids_diff_ids_and_names() {
    let a = mem_image("a");
    let b = mem_image("b");
    for format in [ArchiveFormat::OciArchive, ArchiveFormat::DockerArchive] {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("x.tar");
        save(
            format,
            &[
                (&a, &["app:1", "localhost/app:2"]),
                (&b, &["docker.io/library/busybox:latest"]),
            ],
            &path,
        );
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).expect("mkdir");
        let ar = read_archive(&path, &scratch).expect("read");
        assert_eq!(ar.format, format);
        assert_eq!(ar.images.len(), 2);
        let ia = &ar.images[0];
        assert_eq!(*ia.id(), Digest::of_bytes(&a.config), "{format}");
        assert_eq!(diff_ids_of(ia), diff_ids_of(&a));
        let names: Vec<String> = ia.names().iter().map(|n| n.to_string()).collect();
        assert_eq!(names, ["localhost/app:1", "localhost/app:2"], "{format}");
        let nb: Vec<String> = ar.images[1].names().iter().map(|n| n.to_string()).collect();
        assert_eq!(nb, ["docker.io/library/busybox:latest"], "{format}");
        for img in &ar.images {
            check_readable(img);
        }
        // the same archive compressed as a whole, and read from a stream
        let gz = tmp.path().join("x.tar.gz");
        let (_, data) = crate::layer::compress(
            fs::File::open(&path).expect("open"),
            Vec::new(),
            crate::layer::Compression::Gzip,
        )
        .expect("gz");
        fs::write(&gz, data).expect("write");
        let ar = read_archive(&gz, &scratch).expect("read gz");
        assert_eq!(*ar.images[0].id(), Digest::of_bytes(&a.config));
        let ar = read_archive_stream(fs::File::open(&gz).expect("open"), Path::new("-"), &scratch)
            .expect("stream");
        check_readable(&ar.images[1]);
    }
}

#[test]
fn docker_archive_layout_is_docker_s() {
    let a = mem_image("a");
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("d.tar");
    save(
        ArchiveFormat::DockerArchive,
        &[(&a, &["localhost/app:1", "docker.io/library/busybox"])],
        &path,
    );
    let mut members = HashMap::new();
    let mut ar = tar::Archive::new(fs::File::open(&path).expect("open"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        members.insert(name, data);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&members["manifest.json"]).expect("json");
    let cfg = Digest::of_bytes(&a.config);
    assert_eq!(manifest[0]["Config"], format!("{}.json", cfg.hex()));
    assert_eq!(
        manifest[0]["RepoTags"],
        json!(["localhost/app:1", "busybox:latest"])
    );
    for (layer, id) in manifest[0]["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .zip(diff_ids_of(&a))
    {
        let name = layer.as_str().expect("str");
        assert_eq!(name, format!("{}.tar", id.trim_start_matches("sha256:")));
        // stored uncompressed: the member itself hashes to the diff_id
        assert_eq!(Digest::of_bytes(&members[name]).to_string(), id);
    }
    let repos: serde_json::Value = serde_json::from_slice(&members["repositories"]).expect("json");
    let top = repos["busybox"]["latest"].as_str().expect("top");
    assert!(members.contains_key(&format!("{top}/VERSION")));
}

fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
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

fn read_err(data: &[u8]) -> ArchiveError {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("bad.tar");
    fs::write(&p, data).expect("write");
    match read_archive(&p, tmp.path()) {
        Ok(_) => panic!("archive was accepted"),
        Err(e) => e,
    }
}

#[test]
fn bad_archives_are_refused_with_one_clear_message() {
    let a = mem_image("a");
    let tmp = tempfile::tempdir().expect("tmp");
    for format in [ArchiveFormat::OciArchive, ArchiveFormat::DockerArchive] {
        let path = tmp.path().join(format!("{format}.tar"));
        save(format, &[(&a, &["app:1"])], &path);
        let good = fs::read(&path).expect("read");
        // truncated in the middle of a member
        let err = read_err(&good[..good.len() / 2 + 700]);
        let msg = err.to_string();
        assert!(
            msg.contains("truncated")
                || msg.contains("not in the archive")
                || msg.contains("not a tar"),
            "{format}: {msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }
    let err = read_err(b"this is not a tar file at all, just some text\n");
    assert!(matches!(err, ArchiveError::NotTar { .. }), "{err}");
    let err = read_err(b"");
    assert!(err.to_string().contains("empty"), "{err}");
    let err = read_err(&tar_with(&[("hello.txt", b"hi")]));
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }), "{err}");
    let err = read_err(&tar_with(&[
        ("manifest.json", br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l.tar"]}]"#),
        ("c.json", br#"{"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#),
    ]));
    assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err}");
    assert!(err.to_string().contains("`l.tar`"), "{err}");
    let idx = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}]}"#;
    let err = read_err(&tar_with(&[("oci-layout", b"{}"), ("index.json", idx)]));
    assert!(matches!(err, ArchiveError::MissingBlob { .. }), "{err}");
    let err = read_err(&tar_with(&[("../evil", b"x"), ("manifest.json", b"[]")]));
    assert!(matches!(err, ArchiveError::Escape { .. }), "{err}");
    let err = read_err(&tar_with(&[("/etc/evil", b"x"), ("manifest.json", b"[]")]));
    assert!(matches!(err, ArchiveError::Escape { .. }), "{err}");
}

#[test]
fn docker_layer_that_does_not_match_its_diff_id_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let layer = tar_with(&[("f", b"x")]);
    let wrong = Digest::of_bytes(b"other");
    let cfg = format!(r#"{{"rootfs":{{"type":"layers","diff_ids":["{wrong}"]}}}}"#);
    let data = tar_with(&[
        (
            "manifest.json",
            br#"[{"Config":"c.json","RepoTags":["a:1"],"Layers":["l.tar"]}]"#,
        ),
        ("c.json", cfg.as_bytes()),
        ("l.tar", &layer),
    ]);
    let p = tmp.path().join("d.tar");
    fs::write(&p, data).expect("write");
    let err = read_archive(&p, tmp.path()).err().expect("refused");
    assert!(err.to_string().contains("diff_id"), "{err}");
}

#[test]
fn skopeo_reads_both_formats() {
    let a = mem_image("a");
    let tmp = tempfile::tempdir().expect("tmp");
    for (format, transport) in [
        (ArchiveFormat::OciArchive, "oci-archive"),
        (ArchiveFormat::DockerArchive, "docker-archive"),
    ] {
        let path = tmp.path().join(format!("{transport}.tar"));
        save(format, &[(&a, &["localhost/app:1"])], &path);
        let out = std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--config",
                &format!("{transport}:{}", path.display()),
            ])
            .output()
            .expect("skopeo is installed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            cfg["rootfs"]["diff_ids"],
            json!(diff_ids_of(&a)),
            "{transport}"
        );
        let out = std::process::Command::new("skopeo")
            .args(["inspect", &format!("{transport}:{}", path.display())])
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "{transport}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

enum Ent<'a> {
    File(&'a str, Vec<u8>),
    Link(&'a str, &'a str),
}

fn tar_entries(entries: &[Ent<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match e {
            Ent::File(name, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                h.set_cksum();
                b.append(&h, &data[..]).expect("append");
            }
            Ent::Link(name, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).expect("append");
            }
        }
    }
    b.into_inner().expect("finish")
}

/// The image's layers as uncompressed tars (docker-archive style) and gzip (as stored).
fn plain_layers(img: &MemImage) -> Vec<Vec<u8>> {
    let (_, m) = img.manifest().expect("manifest");
    m.layers()
        .iter()
        .map(|l| {
            let blob = &img.blobs[&Digest::from_oci(l.digest()).expect("d")];
            let (mut r, _) = crate::layer::decompress(&blob[..]).expect("decompress");
            let mut tar = Vec::new();
            r.read_to_end(&mut tar).expect("read");
            tar
        })
        .collect()
}

/// Reads an archive from bytes; the temp dir (scratch space of the images) comes back too.
fn read_bytes(data: &[u8]) -> (tempfile::TempDir, Result<Archive, ArchiveError>) {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("a.tar");
    fs::write(&p, data).expect("write");
    let r = read_archive(&p, tmp.path());
    (tmp, r)
}

#[test]
fn reads_docker_save_layouts_old_and_new_and_symlinked() {
    let img = mem_image("d");
    let id = Digest::of_bytes(&img.config);
    let layers = plain_layers(&img);
    let ids = diff_ids_of(&img);
    let hex = |s: &str| s.trim_start_matches("sha256:").to_owned();

    // docker < 25: <v1 id>/layer.tar, <config hex>.json
    let mut old = vec![
        Ent::File("c0ffee/layer.tar", layers[0].clone()),
        Ent::File("beef/layer.tar", layers[1].clone()),
    ];
    let cfg_name = format!("{}.json", id.hex());
    old.push(Ent::File(&cfg_name, img.config.clone()));
    let m = json!([{"Config": cfg_name, "RepoTags": ["busybox:latest"], "Layers": ["c0ffee/layer.tar", "beef/layer.tar"]}]);
    old.push(Ent::File(
        "manifest.json",
        serde_json::to_vec(&m).expect("json"),
    ));
    old.push(Ent::File(
        "repositories",
        br#"{"busybox":{"latest":"beef"}}"#.to_vec(),
    ));

    // docker >= 25: blobs/sha256/<hex> beside an OCI index; manifest.json wins
    let l0 = format!("blobs/sha256/{}", hex(&ids[0]));
    let l1 = format!("blobs/sha256/{}", hex(&ids[1]));
    let cb = format!("blobs/sha256/{}", id.hex());
    let m25 = json!([{"Config": cb, "RepoTags": ["localhost/app:1"], "Layers": [l0, l1]}]);
    let new = vec![
        Ent::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        Ent::File(
            "index.json",
            br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
        ),
        Ent::File(&l0, layers[0].clone()),
        Ent::File(&l1, layers[1].clone()),
        Ent::File(&cb, img.config.clone()),
        Ent::File("manifest.json", serde_json::to_vec(&m25).expect("json")),
    ];

    // layers reached through symbolic links, one of them gzip-compressed
    let gz = img.blobs
        [&Digest::from_oci(img.manifest().expect("m").1.layers()[1].digest()).expect("d")]
        .clone();
    let ml =
        json!([{"Config": "c.json", "RepoTags": [], "Layers": ["a/layer.tar", "b/layer.tar"]}]);
    let linked = vec![
        Ent::File("x.tar", layers[0].clone()),
        Ent::File("y.tar.gz", gz),
        Ent::Link("a/layer.tar", "../x.tar"),
        Ent::Link("b/layer.tar", "../y.tar.gz"),
        Ent::File("c.json", img.config.clone()),
        Ent::File("manifest.json", serde_json::to_vec(&ml).expect("json")),
    ];

    for (what, entries, names) in [
        ("docker < 25", old, vec!["docker.io/library/busybox:latest"]),
        ("docker >= 25", new, vec!["localhost/app:1"]),
        ("symlinked", linked, vec![]),
    ] {
        let (_tmp, ar) = read_bytes(&tar_entries(&entries));
        let ar = ar.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(ar.format, ArchiveFormat::DockerArchive, "{what}");
        assert_eq!(ar.images.len(), 1);
        let i = &ar.images[0];
        assert_eq!(*i.id(), id, "{what}");
        let got: Vec<String> = i.names().iter().map(|n| n.to_string()).collect();
        assert_eq!(got, names, "{what}");
        check_readable(i);
    }
}

#[test]
fn links_leading_out_of_the_archive_are_refused() {
    for target in ["../../etc/passwd", "/etc/passwd"] {
        let data = tar_entries(&[
            Ent::Link("a/layer.tar", target),
            Ent::File("manifest.json", b"[]".to_vec()),
        ]);
        let err = read_bytes(&data).1.err().expect("refused");
        assert!(
            matches!(err, ArchiveError::Escape { .. }),
            "{target}: {err}"
        );
        assert!(err.to_string().contains(target), "{err}");
    }
}

#[test]
fn a_damaged_oci_blob_refuses_the_whole_archive() {
    let a = mem_image("a");
    let b = mem_image("b");
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("o.tar");
    save(
        ArchiveFormat::OciArchive,
        &[(&a, &["a:1"]), (&b, &["b:1"])],
        &path,
    );
    let (_, m) = b.manifest().expect("manifest");
    let victim = format!(
        "blobs/sha256/{}",
        Digest::from_oci(m.layers()[1].digest()).expect("d").hex()
    );
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut ar = tar::Archive::new(fs::File::open(&path).expect("open"));
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        if name == victim {
            // flip a byte in the gzip trailer's CRC: the stream still inflates, only the
            // digest (and the CRC) give it away
            let n = data.len();
            data[n - 6] ^= 0x55;
        }
        members.push((name, data));
    }
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let err = read_err(&tar_with(&refs));
    let msg = err.to_string();
    assert!(
        msg.contains(&victim)
            && (msg.contains("digest") || msg.contains("crc") || msg.contains("corrupt")),
        "{msg}"
    );
}
