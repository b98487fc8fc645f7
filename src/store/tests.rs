use std::fs;
use std::io::Read;

use super::*;
use crate::image::ImageSource;

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("finish tar")
}

fn import(store: &Store, files: &[(&str, &[u8])], names: &[&str]) -> ImageRecord {
    let tar = tar_of(files);
    let opts = ImportOptions {
        source_name: "test.tar".into(),
        created: Some(parse_time("2024-01-02T03:04:05Z").expect("time")),
        names: names
            .iter()
            .map(|n| Reference::parse_local(n).expect("name"))
            .collect(),
        ..Default::default()
    };
    store.import_rootfs(&mut &tar[..], &opts).expect("import")
}

fn listing(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .flatten()
        .filter(|e| !e.path().starts_with(root.join("tmp")) && !e.path().ends_with("gc.lock"))
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string();
            let data = if e.file_type().is_file() {
                fs::read(e.path()).expect("read")
            } else {
                Vec::new()
            };
            (rel, data)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn open_creates_the_oci_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("store");
    let store = Store::open(&root).expect("open");
    for p in [
        "oci-layout",
        "index.json",
        "blobs/sha256",
        "layers",
        "cache",
        "tmp",
    ] {
        assert!(root.join(p).exists(), "{p}");
    }
    let idx: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).expect("index")).expect("json");
    assert_eq!(idx["schemaVersion"], 2);
    assert!(store.images().expect("images").is_empty());
}

#[test]
fn blobs_are_idempotent_and_verified() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let (d, n) = store.write_blob(&mut &b"hello"[..]).expect("write");
    assert_eq!(d, Digest::of_bytes(b"hello"));
    assert_eq!(n, 5);
    assert_eq!(store.write_blob(&mut &b"hello"[..]).expect("again").0, d);
    assert!(store.has_blob(&d));
    let other = Digest::of_bytes(b"other");
    let before = listing(dir.path());
    let err = store
        .write_blob_expect(&mut &b"not other"[..], &other)
        .expect_err("mismatch");
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(!store.has_blob(&other));
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn import_commit_tag_and_resolve() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("etc/a", b"a")], &["app"]);
    assert_eq!(a.names, vec![Reference::parse_local("app").expect("ref")]);
    // the same input imported again is the same image
    let again = import(&store, &[("etc/a", b"a")], &["app:v1"]);
    assert_eq!(again.id, a.id);
    assert_eq!(again.names.len(), 2);

    for typed in [
        "app",
        "localhost/app:latest",
        "app:v1",
        a.id.hex(),
        &a.id.to_string(),
        &a.id.hex()[..6],
        &format!("app@{}", a.manifest_digest),
    ] {
        assert_eq!(store.resolve(typed).expect(typed).id, a.id, "{typed}");
    }
    assert!(matches!(
        store.resolve("nope"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.resolve("UPPER/case"),
        Err(StoreError::Reference(_))
    ));

    // a name moves from its old image, which stays listed unnamed
    let b = import(&store, &[("etc/b", b"b")], &["app"]);
    let a_now = store.resolve(a.id.hex()).expect("a");
    assert_eq!(
        a_now.names,
        vec![Reference::parse_local("app:v1").expect("ref")]
    );
    assert_eq!(store.resolve("app").expect("app").id, b.id);
    store
        .tag(
            b.id.hex(),
            &[Reference::parse_local("app:v1").expect("ref")],
        )
        .expect("tag");
    let a_now = store.resolve(a.id.hex()).expect("a");
    assert!(a_now.is_dangling());
    assert_eq!(store.images().expect("images").len(), 2);
}

#[test]
fn ambiguous_short_ids_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let mut ids = Vec::new();
    for i in 0..40 {
        let body = format!("{i}");
        ids.push(import(&store, &[("f", body.as_bytes())], &[]).id);
    }
    // some one-hex-digit prefix is shared by two of 40 images
    let shared = ids
        .iter()
        .map(|d| &d.hex()[..1])
        .find(|p| ids.iter().filter(|d| d.hex().starts_with(*p)).count() > 1)
        .expect("pigeonhole: 40 ids, 16 first digits");
    match store.resolve(shared) {
        Err(StoreError::Ambiguous { candidates, .. }) => assert!(candidates.len() > 1),
        other => panic!("{shared}: {other:?}"),
    }
}

#[test]
fn source_reads_back_what_was_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("x", b"data")], &["x"]);
    let src = store.source(&a);
    let (bytes, m) = src.manifest().expect("manifest");
    assert_eq!(Digest::of_bytes(&bytes), a.manifest_digest);
    assert_eq!(Digest::of_bytes(&src.config().expect("config")), a.id);
    let layer = Digest::from_oci(m.layers()[0].digest()).expect("digest");
    let mut data = Vec::new();
    src.open_blob(&layer)
        .expect("blob")
        .read_to_end(&mut data)
        .expect("read");
    assert_eq!(Digest::of_bytes(&data), layer);

    // copying into another store gives the same image
    let dir2 = tempfile::tempdir().expect("tmp");
    let other = Store::open(dir2.path()).expect("open");
    let copied = other
        .copy_from(&src, &[Reference::parse_local("copy").expect("ref")])
        .expect("copy");
    assert_eq!(copied.id, a.id);
    assert_eq!(copied.manifest_digest, a.manifest_digest);
}

#[test]
fn layer_dirs_unpack_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("etc/hello", b"hi")], &["x"]);
    let dirs = store.layer_dirs(&a).expect("unpack");
    assert_eq!(dirs.len(), 1);
    assert_eq!(fs::read(dirs[0].join("etc/hello")).expect("file"), b"hi");
    assert_eq!(store.layer_dirs(&a).expect("again"), dirs);
    let diff_id = &a.diff_ids().expect("diff ids")[0];
    assert_eq!(dirs[0], store.layer_path(diff_id));
}

#[test]
fn an_old_or_half_made_layer_dir_is_replaced_by_a_fresh_unpack() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("etc/hello", b"hi")], &["x"]);
    let diff_id = &a.diff_ids().expect("diff ids")[0];
    // an older hoist's layout: the layer's files right in layers/HEX, no marker
    let entry = dir.path().join("layers").join(diff_id.hex());
    fs::create_dir_all(entry.join("etc")).expect("mkdir");
    fs::write(entry.join("etc/hello"), b"torn").expect("write");
    let dirs = store.layer_dirs(&a).expect("unpack");
    assert_eq!(dirs[0], entry.join("diff"));
    assert_eq!(fs::read(dirs[0].join("etc/hello")).expect("file"), b"hi");
    assert!(!entry.join("etc").exists(), "the old content is gone");
    let marker = fs::read_to_string(entry.join("diff_id")).expect("marker");
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot id");
    assert_eq!(marker, format!("{diff_id}\nboot {}\n", boot.trim()));
    // a marker of an earlier boot (the dir was never flushed to disk): unpacked again
    fs::write(
        entry.join("diff_id"),
        format!("{diff_id}\nboot 00000000-0000-0000-0000-000000000000\n"),
    )
    .expect("write");
    fs::write(dirs[0].join("etc/hello"), b"torn").expect("write");
    store.layer_dirs(&a).expect("unpack after a restart");
    assert_eq!(fs::read(dirs[0].join("etc/hello")).expect("file"), b"hi");
    // a marker naming another layer is no marker
    fs::write(entry.join("diff_id"), "sha256:0000\n").expect("write");
    fs::write(dirs[0].join("etc/hello"), b"changed").expect("write");
    store.layer_dirs(&a).expect("unpack again");
    assert_eq!(fs::read(dirs[0].join("etc/hello")).expect("file"), b"hi");
    // the private dirs are closed to other users
    use std::os::unix::fs::PermissionsExt;
    for d in ["layers", "tmp", "cache", "containers"] {
        let mode = fs::metadata(dir.path().join(d))
            .expect("dir")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{d}");
    }
    let mode = fs::metadata(dir.path().join("index.json"))
        .expect("index")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[test]
fn remove_and_prune_keep_shared_blobs() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("a", b"a")], &["a", "a:two"]);
    let b = import(&store, &[("b", b"b")], &["b"]);
    store.layer_dirs(&b).expect("unpack");
    drop(store);
    let store = Store::open(dir.path()).expect("open");
    // by ID with two names: refused without force
    assert!(matches!(
        store.remove(a.id.hex(), false),
        Err(StoreError::MultipleNames { .. })
    ));
    // by name with two names: untag only
    let r = store.remove("a:two", false).expect("untag");
    assert_eq!(r.deleted, None);
    assert!(store.resolve("a").is_ok());
    let r = store.remove("b", false).expect("delete b");
    assert_eq!(r.deleted, Some(b.id.clone()));
    assert!(r.reclaimed > 0);
    assert!(!store.has_blob(&b.id));
    assert!(!store.layer_path(&b.diff_ids().expect("ids")[0]).exists());
    assert!(store.has_blob(&a.id));
    let before = listing(dir.path());
    let p = store.prune(PruneMode::Dangling).expect("prune");
    assert!(p.removed_images.is_empty());
    assert_eq!(listing(dir.path()), before);
    let p = store.prune(PruneMode::All).expect("prune all");
    assert_eq!(p.removed_images, vec![a.id.clone()]);
    assert_eq!(
        fs::read_dir(dir.path().join("blobs/sha256"))
            .expect("ls")
            .count(),
        0
    );
}

#[test]
fn dead_process_tmp_is_swept_live_one_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let live = Store::open(dir.path()).expect("open");
    let live_dir = live.tmp.as_ref().expect("writable").dir.clone();
    fs::write(live_dir.join("partial"), b"x").expect("write");
    // a dead process: a dir whose lock file nobody holds, and an orphan dir
    fs::create_dir(dir.path().join("tmp/999-dead")).expect("mkdir");
    fs::write(dir.path().join("tmp/999-dead.lock"), b"").expect("lock file");
    fs::create_dir(dir.path().join("tmp/orphan")).expect("mkdir");
    let other = Store::open(dir.path()).expect("open again");
    assert!(!dir.path().join("tmp/999-dead").exists());
    assert!(!dir.path().join("tmp/999-dead.lock").exists());
    assert!(!dir.path().join("tmp/orphan").exists());
    assert!(live_dir.join("partial").exists());
    drop(other);
    drop(live);
    assert!(!live_dir.exists());
}

#[test]
fn bad_imports_leave_the_store_unchanged() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    import(&store, &[("a", b"a")], &["a"]);
    let before = listing(dir.path());
    let good = tar_of(&[("f", &[7u8; 3000])]);
    // `tar::Builder` refuses `..`, so the header is written by hand
    let escaping = {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = b"../evil";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &b"x"[..]).expect("append");
        b.into_inner().expect("tar")
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..1500].to_vec()),
        (
            "not a tar",
            b"hello, this is not a tar file at all".repeat(20),
        ),
        ("empty", Vec::new()),
        ("escaping", escaping),
    ];
    for (what, data) in cases {
        let opts = ImportOptions {
            source_name: what.into(),
            names: vec![Reference::parse_local("bad").expect("ref")],
            ..Default::default()
        };
        let err = store.import_rootfs(&mut &data[..], &opts).expect_err(what);
        assert!(
            err.to_string().contains(&format!("`{what}`")),
            "{what}: {err}"
        );
        assert_eq!(listing(dir.path()), before, "{what} changed the store");
    }
}

#[test]
fn validate_catches_a_corrupted_blob() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("x", b"data")], &["x"]);
    store.validate(&a).expect("valid after import");
    let layer = a.layer_digests().expect("layers")[0].clone();
    let p = store.blob_path(&layer);
    let mut data = fs::read(&p).expect("read");
    let last = data.len() - 1;
    data[last] ^= 1;
    fs::write(&p, data).expect("corrupt");
    assert!(matches!(
        store.validate(&a),
        Err(StoreError::DigestMismatch { .. })
    ));
}

#[test]
fn copying_an_image_already_here_only_adds_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("x", b"data")], &["x"]);
    let before = fs::read_dir(dir.path().join("blobs/sha256"))
        .expect("ls")
        .count();
    let again = store
        .copy_from(
            &store.source(&a),
            &[Reference::parse_local("y").expect("ref")],
        )
        .expect("copy");
    assert_eq!(again.id, a.id);
    assert_eq!(again.names.len(), 2);
    let after = fs::read_dir(dir.path().join("blobs/sha256"))
        .expect("ls")
        .count();
    assert_eq!(before, after);
}

#[test]
fn a_damaged_image_does_not_hide_the_others_and_prune_drops_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("a", b"a")], &["a"]);
    let b = import(&store, &[("b", b"b")], &["b"]);
    fs::remove_file(store.blob_path(&a.manifest_digest)).expect("damage");
    let left = store.images().expect("images");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, b.id);
    store.prune(PruneMode::Dangling).expect("prune");
    let index = fs::read_to_string(dir.path().join("index.json")).expect("index");
    assert!(!index.contains(a.manifest_digest.hex()), "{index}");
    assert!(store.resolve("b").is_ok());
}

#[test]
fn collection_waits_for_other_writers() {
    let dir = tempfile::tempdir().expect("tmp");
    let writer = Store::open(dir.path()).expect("open");
    let a = import(&writer, &[("a", b"a")], &["a"]);
    // a blob written but not yet referenced, as a build has in flight
    let (pending, _) = writer.write_blob(&mut &b"in flight"[..]).expect("blob");
    let other = Store::open(dir.path()).expect("open");
    let r = other.remove("a", false).expect("rmi");
    assert_eq!(r.deleted, Some(a.id.clone()));
    assert!(r.collection_skipped);
    assert!(other.has_blob(&pending), "a writer's blob survives");
    let p = other.prune(PruneMode::All).expect("prune");
    assert!(p.collection_skipped);
    assert!(other.has_blob(&pending));
    drop(writer);
    let p = other.prune(PruneMode::All).expect("prune");
    assert!(!p.collection_skipped);
    assert!(
        !other.has_blob(&pending),
        "collected once the writer is gone"
    );
    assert!(!other.has_blob(&a.id));
}

#[test]
fn committing_another_manifest_of_a_known_config_only_adds_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("x", b"data")], &["x"]);
    let mut m: serde_json::Value =
        serde_json::from_slice(&store.read_blob(&a.manifest_digest).expect("manifest"))
            .expect("json");
    m["annotations"] = serde_json::json!({"org.example": "other manifest"});
    let bytes = serde_json::to_vec(&m).expect("json");
    let blobs = fs::read_dir(dir.path().join("blobs/sha256"))
        .expect("ls")
        .count();
    let r = store
        .commit_image(&bytes, &[Reference::parse_local("y").expect("ref")])
        .expect("commit");
    assert_eq!(r.id, a.id);
    assert_eq!(
        r.manifest_digest, a.manifest_digest,
        "the first manifest stays"
    );
    assert_eq!(r.names.len(), 2);
    assert_eq!(
        fs::read_dir(dir.path().join("blobs/sha256"))
            .expect("ls")
            .count(),
        blobs
    );
    // a manifest naming a missing layer is refused
    m["layers"][0]["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    let bytes = serde_json::to_vec(&m).expect("json");
    assert!(matches!(
        store.commit_image(&bytes, &[]),
        Err(StoreError::MissingBlob(_))
    ));
}

#[test]
fn an_unnamed_parent_is_intermediate_and_survives_prune() {
    use crate::image::config;
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let parent = import(&store, &[("x", b"data")], &[]);
    // a child: the parent's layer again on top, one more history entry
    let mut cfg = parent.config.clone();
    let diff_id = parent.diff_ids().expect("ids")[0].clone();
    config::add_layer(
        &mut cfg,
        &diff_id,
        config::history_entry("2024-01-02T03:04:06Z", "RUN true", None, false),
    );
    let cfg_bytes = config::canonical_json(&cfg).expect("json");
    let (cfg_digest, cfg_size) = store.write_blob(&mut &cfg_bytes[..]).expect("config");
    let layer = &parent.manifest.layers()[0];
    let l = (
        Digest::from_oci(layer.digest()).expect("digest"),
        layer.size(),
        layer.media_type().clone(),
    );
    let manifest = config::manifest_for(&cfg_digest, cfg_size, &[l.clone(), l]);
    let child = store
        .commit_image(
            &config::canonical_json(&manifest).expect("json"),
            &[Reference::parse_local("child").expect("ref")],
        )
        .expect("commit child");
    let all = store.images().expect("images");
    let p = all.iter().find(|r| r.id == parent.id).expect("parent");
    let c = all.iter().find(|r| r.id == child.id).expect("child");
    assert!(is_parent(p, c));
    assert!(!is_parent(c, p));
    assert!(has_children(&all, p));
    let r = store.prune(PruneMode::Dangling).expect("prune");
    assert!(r.removed_images.is_empty(), "an intermediate image is kept");
    store.remove("child", false).expect("rmi child");
    let r = store.prune(PruneMode::Dangling).expect("prune");
    assert_eq!(r.removed_images, vec![parent.id.clone()]);
}

#[test]
fn an_artifact_in_the_index_is_skipped_and_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(dir.path()).expect("open");
    let a = import(&store, &[("x", b"data")], &["x"]);
    let (cfg, cfg_size) = store.write_blob(&mut &b"{}"[..]).expect("empty config");
    let (layer, layer_size) = store.write_blob(&mut &b"payload"[..]).expect("payload");
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example+type",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cfg.to_string(), "size": cfg_size},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer.to_string(), "size": layer_size}]
    });
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let (m, m_size) = store.write_blob(&mut &bytes[..]).expect("manifest");
    let index_path = dir.path().join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).expect("index")).expect("json");
    index["manifests"]
        .as_array_mut()
        .expect("list")
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m.to_string(),
            "size": m_size,
            "annotations": {"org.opencontainers.image.ref.name": "localhost/art:1"}
        }));
    fs::write(&index_path, serde_json::to_vec(&index).expect("json")).expect("write index");
    let images = store.images().expect("images");
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, a.id);
    let refused = store.commit_image(&bytes, &[]).expect_err("not an image");
    assert!(
        refused.to_string().contains("not an image config"),
        "{refused}"
    );
    drop(store);
    let store = Store::open(dir.path()).expect("open");
    store.prune(PruneMode::All).expect("prune");
    for d in [&cfg, &layer, &m] {
        assert!(store.has_blob(d), "artifact blob {d} kept");
    }
    assert!(!store.has_blob(&a.id));
}
