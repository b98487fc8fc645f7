//! Oracles over a store directory shared by the store and verb tests: a listing with content
//! hashes (to prove a failed command changed nothing) and a full re-hash of every blob.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use hoist::image::Digest;

/// One line per file or directory under `root`: path, kind, mode, size, sha256 of the content.
pub fn listing(root: &Path) -> String {
    let mut lines = Vec::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.expect("walk store");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("inside")
            .display()
            .to_string();
        let md = e.path().symlink_metadata().expect("stat");
        let kind = if md.is_dir() {
            "dir".to_string()
        } else if md.is_file() {
            Digest::of_bytes(&fs::read(e.path()).expect("read")).to_string()
        } else {
            "other".to_string()
        };
        lines.push(format!(
            "{rel} {:o} {} {kind}",
            md.mode(),
            if md.is_dir() { 0 } else { md.len() }
        ));
    }
    lines.join("\n")
}

/// Checks the store as an OCI layout: `index.json` parses, every name is unique, and every blob
/// hashes to its name. Returns the names in `index.json`.
pub fn verify(root: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).expect("index.json"))
            .expect("index.json parses");
    assert_eq!(index["schemaVersion"], 2);
    let mut names = Vec::new();
    for m in index["manifests"].as_array().expect("manifests") {
        let d = Digest::parse(m["digest"].as_str().expect("digest")).expect("valid digest");
        assert!(
            root.join("blobs/sha256").join(d.hex()).is_file(),
            "manifest {d} present"
        );
        if let Some(n) = m["annotations"]["org.opencontainers.image.ref.name"].as_str() {
            assert!(!names.contains(&n.to_string()), "name {n} listed twice");
            names.push(n.to_string());
        }
    }
    for e in fs::read_dir(root.join("blobs/sha256")).expect("blobs") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let actual = Digest::of_bytes(&fs::read(e.path()).expect("read blob"));
        assert_eq!(actual.hex(), name, "blob re-hashes to its name");
    }
    names
}

/// A tar whose one entry is `../evil` (tar::Builder refuses to write it, so the header is made
/// by hand).
pub fn escaping_tar() -> Vec<u8> {
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
}

/// A tar whose hard link `link` points at `../../etc/passwd`.
pub fn hardlink_escape_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Link);
    h.as_old_mut().name[..4].copy_from_slice(b"link");
    let target = b"../../etc/passwd";
    h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
    h.set_cksum();
    b.append(&h, std::io::empty()).expect("append");
    b.into_inner().expect("tar")
}

/// Gzip-compresses bytes.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A small tar of regular files.
pub fn small_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// A tar that makes `etc` a symbolic link to `/etc` and then writes `etc/passwd` through it.
pub fn symlink_parent_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(tar::EntryType::Symlink);
    b.append_link(&mut h, "etc", "/etc").expect("symlink");
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "etc/passwd", &b"evil"[..])
        .expect("file");
    b.into_inner().expect("tar")
}
