//! Tests of apply and diff together: round trips keep every attribute, whiteouts and opaque dirs
//! survive, and hostile tars (built with the raw header API) write nothing outside the target.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use super::*;
use crate::image::Digest;

/// Everything a user would notice about a tree: type, mode, owner, mtime, size, content digest,
/// link target, device number, xattrs, and which paths share an inode.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("rel")
            .to_string_lossy()
            .into_owned();
        let md = fs::symlink_metadata(e.path()).expect("lstat");
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!(
                "link->{}",
                fs::read_link(e.path()).expect("readlink").display()
            )
        } else if ft.is_file() {
            let data = fs::read(e.path()).expect("read");
            format!("file {} {}", data.len(), Digest::of_bytes(&data).short())
        } else if ft.is_char_device() {
            format!("char {}:{}", libc::major(md.rdev()), libc::minor(md.rdev()))
        } else if ft.is_block_device() {
            format!(
                "block {}:{}",
                libc::major(md.rdev()),
                libc::minor(md.rdev())
            )
        } else if ft.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let mut xattrs: Vec<String> = xattr::list(e.path())
            .expect("listxattr")
            .map(|n| {
                let v = xattr::get(e.path(), &n)
                    .expect("getxattr")
                    .unwrap_or_default();
                format!("{}={}", n.to_string_lossy(), hex::encode(v))
            })
            .collect();
        xattrs.sort();
        let mode = if ft.is_symlink() {
            0
        } else {
            md.mode() & 0o7777
        };
        let mtime = md.mtime();
        let mut line = format!(
            "{kind} mode={mode:o} {}:{} mtime={mtime} xattrs=[{}]",
            md.uid(),
            md.gid(),
            xattrs.join(",")
        );
        if !ft.is_dir() && md.nlink() > 1 {
            let first = inodes.entry(md.ino()).or_insert_with(|| rel.clone());
            line.push_str(&format!(" linked-with={first}"));
        }
        out.insert(rel, line);
    }
    out
}

fn set_mtime(p: &Path, secs: i64) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("cstring");
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    // SAFETY: a valid C string and two timespecs, as utimensat(2) requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", p.display());
}

fn mknod(p: &Path, kind: libc::mode_t, major: u32, minor: u32) {
    let c = CString::new(p.as_os_str().as_bytes()).expect("cstring");
    // SAFETY: a valid C string; mknod only creates a node.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {}", p.display());
}

fn lchown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("lchown");
}

/// A v2 `security.capability` value granting cap_net_bind_service (bit 10), effective.
fn cap_net_bind() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    v.extend_from_slice(&(1u32 << 10).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v
}

/// An upper dir with one of everything.
fn rich_upper(root: &Path) {
    let long_dir = root.join("d".repeat(90)).join("e".repeat(90));
    fs::create_dir_all(&long_dir).expect("mkdir");
    fs::write(long_dir.join("f".repeat(120)), b"long name").expect("write");
    fs::create_dir_all(root.join("etc")).expect("mkdir");
    fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").expect("write");
    fs::write(root.join("setuid"), b"#!/bin/sh\n").expect("write");
    lchown(&root.join("setuid"), 1000, 1001);
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    fs::write(root.join("ping"), b"ping").expect("write");
    xattr::set(root.join("ping"), "security.capability", &cap_net_bind()).expect("setcap");
    xattr::set(root.join("ping"), "user.note", b"hello").expect("xattr");
    fs::write(root.join("hard1"), b"shared").expect("write");
    fs::hard_link(root.join("hard1"), root.join("etc/hard2")).expect("link");
    symlink("../etc/passwd", root.join("etc/link")).expect("symlink");
    symlink("x".repeat(150), root.join("longlink")).expect("symlink");
    lchown(&root.join("etc/link"), 7, 8);
    let c = CString::new(root.join("fifo").as_os_str().as_bytes()).expect("cstring");
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    mknod(&root.join("null"), libc::S_IFCHR, 1, 3);
    fs::create_dir(root.join("sticky")).expect("mkdir");
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).expect("chmod");
    fs::create_dir(root.join("ro")).expect("mkdir");
    fs::write(root.join("ro/inside"), b"x").expect("write");
    fs::set_permissions(root.join("ro"), fs::Permissions::from_mode(0o555)).expect("chmod");
    // overlay form: a whiteout and an opaque dir
    mknod(&root.join("gone"), libc::S_IFCHR, 0, 0);
    fs::set_permissions(root.join("gone"), fs::Permissions::from_mode(0o0)).expect("chmod");
    fs::create_dir(root.join("opaque")).expect("mkdir");
    xattr::set(root.join("opaque"), OVERLAY_OPAQUE_XATTR, b"y").expect("xattr");
    fs::write(root.join("opaque/kept"), b"k").expect("write");
    // mtimes last, children before parents
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| e.expect("walk").path().to_owned())
        .collect();
    paths.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in paths.iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000);
    }
}

fn tar_of(dir: &Path, kind: DirKind, ts: Option<i64>) -> Vec<u8> {
    write_tar(dir, Vec::new(), kind, ts).expect("write tar")
}

fn apply_bytes(tar: &[u8], target: &Path, mode: WhiteoutMode) -> Result<ApplyReport, LayerError> {
    let opts = ApplyOptions {
        whiteouts: mode,
        ..ApplyOptions::default()
    };
    apply_tar(tar, target, &opts)
}

#[test]
fn round_trip_keeps_every_attribute() {
    let tmp = tempfile::tempdir().expect("tmp");
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).expect("mkdir");
    rich_upper(&upper);
    let (blob, gz) = write_upper_tar(&upper, Vec::new(), &DiffOptions::default()).expect("diff");
    assert_eq!(blob.digest, Digest::of_bytes(&gz));
    let target = tmp.path().join("target");
    fs::create_dir(&target).expect("mkdir");
    let report = apply_blob(&gz[..], &target, &ApplyOptions::default()).expect("apply");
    assert!(report.unmapped_uids.is_empty(), "{report:?}");
    assert!(report.skipped_xattrs.is_empty(), "{report:?}");
    let (mut plain, _) = decompress(&gz[..]).expect("decompress");
    let mut tar = Vec::new();
    plain.read_to_end(&mut tar).expect("read");
    assert_eq!(
        check_tar(&tar[..]).expect("a friendly layer passes the check"),
        report.entries
    );
    let (want, got) = (snapshot(&upper), snapshot(&target));
    assert_eq!(want, got, "\n--- upper\n{want:#?}\n--- applied\n{got:#?}");
    // the opaque mark and the whiteout survived in overlay form
    assert!(
        got["opaque"].contains("user.overlay.opaque=79"),
        "{}",
        got["opaque"]
    );
    assert!(got["gone"].starts_with("char 0:0"), "{}", got["gone"]);
    assert!(
        got["ping"].contains("security.capability="),
        "{}",
        got["ping"]
    );
    assert!(
        got["etc/hard2"].contains("linked-with=etc/hard2") || got["hard1"].contains("linked-with")
    );
}

#[test]
fn diff_writes_oci_whiteouts_sorted_and_deterministic() {
    let tmp = tempfile::tempdir().expect("tmp");
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).expect("mkdir");
    rich_upper(&upper);
    let tar = tar_of(&upper, DirKind::OverlayUpper, Some(1_600_000_500));
    assert_eq!(
        tar,
        tar_of(&upper, DirKind::OverlayUpper, Some(1_600_000_500))
    );
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        assert!(
            e.header().mtime().expect("mtime") <= 1_600_000_500,
            "{name}"
        );
        assert_eq!(e.header().username_bytes(), Some(&b""[..]), "{name}");
        if let Some(x) = e.pax_extensions().expect("pax") {
            for r in x {
                let k = r.expect("rec").key().expect("utf8").to_owned();
                assert!(!k.contains("overlay"), "{name}: {k}");
            }
        }
        names.push(name);
    }
    assert!(names.contains(&".wh.gone".to_string()), "{names:?}");
    assert!(
        names.contains(&"opaque/.wh..wh..opq".to_string()),
        "{names:?}"
    );
    let opq = names
        .iter()
        .position(|n| n == "opaque/.wh..wh..opq")
        .expect("opq");
    assert_eq!(names[opq - 1], "opaque/");
    assert!(names.contains(&"opaque/kept".to_string()));
    // parents precede children, siblings sorted
    // (a whiteout sits where the name it hides sorts, as docker writes it)
    let top: Vec<&str> = names
        .iter()
        .filter(|n| !n.trim_end_matches('/').contains('/'))
        .map(|n| n.strip_prefix(".wh.").unwrap_or(n))
        .collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted);
    // a plain dir keeps 0:0 char devices as devices
    let plain = tar_of(&upper, DirKind::Plain, None);
    let mut ar = tar::Archive::new(&plain[..]);
    let kinds: Vec<(String, EntryType)> = ar
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("gone".to_string(), EntryType::Char)),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|(n, _)| n.contains(".wh.")));
}

#[test]
fn delete_mode_applies_whiteouts_to_lower_layers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("opaque/old")).expect("mkdir");
    fs::write(lower.join("gone"), b"x").expect("write");
    fs::write(lower.join("stays"), b"x").expect("write");
    fs::write(lower.join("opaque/old/f"), b"x").expect("write");
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).expect("mkdir");
    mknod(&upper.join("gone"), libc::S_IFCHR, 0, 0);
    fs::create_dir(upper.join("opaque")).expect("mkdir");
    xattr::set(upper.join("opaque"), OVERLAY_OPAQUE_XATTR, b"y").expect("xattr");
    fs::write(upper.join("opaque/new"), b"n").expect("write");

    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).expect("mkdir");
    apply_bytes(
        &tar_of(&lower, DirKind::Plain, None),
        &flat,
        WhiteoutMode::Delete,
    )
    .expect("lower");
    apply_bytes(
        &tar_of(&upper, DirKind::OverlayUpper, None),
        &flat,
        WhiteoutMode::Delete,
    )
    .expect("upper");
    assert!(!flat.join("gone").exists());
    assert!(flat.join("stays").exists());
    assert!(!flat.join("opaque/old").exists());
    assert_eq!(fs::read(flat.join("opaque/new")).expect("read"), b"n");
    assert!(xattr::get(flat.join("opaque"), OVERLAY_OPAQUE_XATTR)
        .expect("get")
        .is_none());
}

// ---- hostile tars -------------------------------------------------------------------------

enum Raw<'a> {
    File(&'a [u8], &'a [u8]),
    Dir(&'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
}

/// Builds a tar with raw names, bypassing the tar crate's path checks.
fn hostile(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        let (name, link, kind, data): (&[u8], &[u8], EntryType, &[u8]) = match e {
            Raw::File(n, d) => (n, b"", EntryType::Regular, d),
            Raw::Dir(n) => (n, b"", EntryType::Directory, b""),
            Raw::Symlink(n, t) => (n, t, EntryType::Symlink, b""),
            Raw::Hardlink(n, t) => (n, t, EntryType::Link, b""),
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(if kind == EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("finish")
}

struct Jail {
    _tmp: tempfile::TempDir,
    target: PathBuf,
    outside: PathBuf,
}

impl Jail {
    fn new() -> Jail {
        let tmp = tempfile::tempdir().expect("tmp");
        let base = tmp.path().join("a/b");
        let target = base.join("target");
        fs::create_dir_all(&target).expect("mkdir");
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("secret"), b"secret").expect("write");
        Jail {
            _tmp: tmp,
            target,
            outside,
        }
    }

    /// Everything in the temp dir outside the target, with contents.
    fn outside_state(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let top = self._tmp.path();
        walkdir::WalkDir::new(top)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|e| e.path() != self.target)
            .map(|e| {
                let e = e.expect("walk");
                let data = if e.file_type().is_file() {
                    fs::read(e.path()).expect("read")
                } else {
                    Vec::new()
                };
                (e.path().to_owned(), data)
            })
            .collect()
    }

    fn refuse(&self, tar: &[u8], what: &str) -> LayerError {
        let before = self.outside_state();
        // the dry-run check refuses it too, writing nothing at all
        check_tar(tar).expect_err(what);
        let err = apply_bytes(tar, &self.target, WhiteoutMode::Overlay).expect_err(what);
        assert_eq!(
            before,
            self.outside_state(),
            "{what}: something was written outside"
        );
        err
    }
}

#[test]
fn dotdot_is_refused() {
    let j = Jail::new();
    let err = j.refuse(&hostile(&[Raw::File(b"../x", b"evil")]), "../x");
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    assert!(err.to_string().contains("`../x`"), "{err}");
    let err = j.refuse(
        &hostile(&[Raw::File(b"a/../../../x", b"evil")]),
        "a/../../../x",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
}

#[test]
fn absolute_paths_are_cleaned_into_the_target() {
    // docker strips the leading `/`; the file lands inside the target, never at the root
    let j = Jail::new();
    let abs = format!("{}/abs", j.outside.display());
    let before = j.outside_state();
    apply_bytes(
        &hostile(&[Raw::File(abs.as_bytes(), b"x")]),
        &j.target,
        WhiteoutMode::Overlay,
    )
    .expect("apply");
    assert_eq!(before, j.outside_state());
    let inside = j.target.join(abs.trim_start_matches('/'));
    assert_eq!(fs::read(inside).expect("inside"), b"x");
}

#[test]
fn symlinked_parent_is_refused() {
    let j = Jail::new();
    let out = j.outside.to_string_lossy().into_owned();
    let err = j.refuse(
        &hostile(&[
            Raw::Symlink(b"a", out.as_bytes()),
            Raw::File(b"a/passwd", b"evil"),
        ]),
        "a -> outside, a/passwd",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    assert!(
        err.to_string().contains("`a/passwd`") && err.to_string().contains("symbolic link"),
        "{err}"
    );
    // the same with /etc as docker's classic example: refused before anything is opened
    let j = Jail::new();
    let err = j.refuse(
        &hostile(&[
            Raw::Symlink(b"etc", b"/etc"),
            Raw::File(b"etc/hoist-must-not-exist", b"x"),
        ]),
        "etc -> /etc",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    assert!(!Path::new("/etc/hoist-must-not-exist").exists());
}

#[test]
fn symlink_chains_are_refused() {
    let j = Jail::new();
    let out = j.outside.to_string_lossy().into_owned();
    let err = j.refuse(
        &hostile(&[
            Raw::Symlink(b"c", out.as_bytes()),
            Raw::Symlink(b"b", b"c"),
            Raw::Symlink(b"a", b"b"),
            Raw::File(b"a/x", b"evil"),
        ]),
        "a -> b -> c -> outside",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    let j = Jail::new();
    let err = j.refuse(
        &hostile(&[
            Raw::Dir(b"d/"),
            Raw::Symlink(b"d/up", b"../../../outside"),
            Raw::Dir(b"d/up/sub/"),
        ]),
        "relative symlink climbing out",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
}

#[test]
fn final_symlink_is_replaced_not_written_through() {
    let j = Jail::new();
    let target = format!("{}/secret", j.outside.display());
    let before = j.outside_state();
    apply_bytes(
        &hostile(&[
            Raw::Symlink(b"f", target.as_bytes()),
            Raw::File(b"f", b"new"),
        ]),
        &j.target,
        WhiteoutMode::Overlay,
    )
    .expect("apply");
    assert_eq!(before, j.outside_state());
    assert_eq!(fs::read(j.target.join("f")).expect("read"), b"new");
    assert!(fs::symlink_metadata(j.target.join("f"))
        .expect("lstat")
        .is_file());
}

#[test]
fn hardlinks_leading_outside_are_refused() {
    let j = Jail::new();
    let err = j.refuse(
        &hostile(&[Raw::Hardlink(b"l", b"../../../outside/secret")]),
        "hardlink ../",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    let out = j.outside.to_string_lossy().into_owned();
    let err = j.refuse(
        &hostile(&[
            Raw::Symlink(b"s", out.as_bytes()),
            Raw::Hardlink(b"l", b"s/secret"),
        ]),
        "hardlink through a symlink",
    );
    assert!(matches!(err, LayerError::Escape { .. }), "{err}");
    let err = j.refuse(
        &hostile(&[Raw::Hardlink(b"l2", b"missing")]),
        "hardlink to a missing file",
    );
    assert!(err.to_string().contains("does not exist"), "{err}");
    // a hard link to a symlink links the symlink itself, never its target
    let j = Jail::new();
    let out = format!("{}/secret", j.outside.display());
    let before = j.outside_state();
    apply_bytes(
        &hostile(&[
            Raw::Symlink(b"s", out.as_bytes()),
            Raw::Hardlink(b"h", b"s"),
            Raw::File(b"h", b"x"),
        ]),
        &j.target,
        WhiteoutMode::Overlay,
    )
    .expect("apply");
    assert_eq!(before, j.outside_state());
}

#[test]
fn truncated_and_garbage_tars_are_errors() {
    let j = Jail::new();
    let tar = hostile(&[Raw::File(b"big", &[7u8; 5000])]);
    let err = apply_bytes(&tar[..1500], &j.target, WhiteoutMode::Overlay).expect_err("truncated");
    assert!(!err.to_string().is_empty());
    let mut garbage = vec![0x41u8; 1024];
    garbage[0] = b'x';
    assert!(apply_bytes(&garbage, &j.target, WhiteoutMode::Overlay).is_err());
}

#[test]
fn zstd_blob_round_trips() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("a"), b"hello").expect("write");
    let opts = DiffOptions {
        timestamp: Some(0),
        compression: Compression::Zstd,
    };
    let (blob, data) = write_dir_tar(&dir, Vec::new(), &opts).expect("diff");
    assert_eq!(blob.media_type, Compression::Zstd.media_type());
    let (mut r, c) = decompress(&data[..]).expect("decompress");
    assert_eq!(c, Compression::Zstd);
    let mut tar = Vec::new();
    r.read_to_end(&mut tar).expect("read");
    assert_eq!(blob.diff_id, Digest::of_bytes(&tar));
    let target = tmp.path().join("t");
    fs::create_dir(&target).expect("mkdir");
    apply_blob(&data[..], &target, &ApplyOptions::default()).expect("apply");
    assert_eq!(fs::read(target.join("a")).expect("read"), b"hello");
    assert_eq!(fs::metadata(target.join("a")).expect("md").mtime(), 0);
}

#[test]
fn metacopy_and_redirect_uppers_are_refused() {
    for attr in ["user.overlay.metacopy", "user.overlay.redirect"] {
        let tmp = tempfile::tempdir().expect("tmp");
        let upper = tmp.path().join("upper");
        fs::create_dir_all(upper.join("d")).expect("mkdir");
        xattr::set(upper.join("d"), attr, b"").expect("xattr");
        let err = write_upper_tar(&upper, Vec::new(), &DiffOptions::default()).expect_err(attr);
        assert!(err.to_string().contains(attr), "{err}");
    }
}

/// Runs `f` in a forked child inside a new user namespace that maps only uid/gid 0 (the
/// single-mapping rootless case) and returns whether it succeeded. Forked so that the threaded
/// test harness never changes namespace.
fn in_single_mapping_userns(f: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child only runs `f` and exits with `_exit`; glibc's allocator is fork-safe.
    match unsafe { nix::unistd::fork() }.expect("fork") {
        nix::unistd::ForkResult::Child => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).expect("unshare");
                fs::write("/proc/self/setgroups", "deny").expect("setgroups");
                fs::write("/proc/self/uid_map", "0 0 1").expect("uid_map");
                fs::write("/proc/self/gid_map", "0 0 1").expect("gid_map");
                f()
            }))
            .unwrap_or(false);
            // SAFETY: leaving the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let status = nix::sys::wait::waitpid(child, None).expect("waitpid");
            matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0))
        }
    }
}

#[test]
fn unmappable_owners_and_devices_in_a_user_namespace() {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = tmp.path().join("src");
    fs::create_dir(&src).expect("mkdir");
    fs::write(src.join("owned"), b"x").expect("write");
    lchown(&src.join("owned"), 1000, 1001);
    mknod(&src.join("null"), libc::S_IFCHR, 1, 3);
    mknod(&src.join("gone"), libc::S_IFCHR, 0, 0);
    let tar = tar_of(&src, DirKind::OverlayUpper, None);

    let skip = tmp.path().join("skip");
    fs::create_dir(&skip).expect("mkdir");
    let ok = in_single_mapping_userns(|| {
        let opts = ApplyOptions {
            skip_devices: true,
            layer_name: "test".into(),
            ..ApplyOptions::default()
        };
        let Ok(report) = apply_tar(&tar[..], &skip, &opts) else {
            return false;
        };
        report.unmapped_uids.contains(&1000)
            && report.unmapped_gids.contains(&1001)
            && report.skipped_devices == ["null"]
    });
    assert!(ok, "apply in the user namespace reported the wrong things");
    // the file is there with the owner that exists; the whiteout was made; the device was not
    let md = fs::symlink_metadata(skip.join("owned")).expect("owned");
    assert_eq!((md.uid(), md.gid()), (0, 0));
    let wo = fs::symlink_metadata(skip.join("gone")).expect("whiteout");
    assert!(wo.file_type().is_char_device() && wo.rdev() == 0);
    assert!(!skip.join("null").exists());

    let strict = tmp.path().join("strict");
    fs::create_dir(&strict).expect("mkdir");
    let refused = in_single_mapping_userns(|| {
        matches!(
            apply_tar(&tar[..], &strict, &ApplyOptions::default()),
            Err(LayerError::Device { ref path, .. }) if path == "null"
        )
    });
    assert!(
        refused,
        "a device that cannot be made must be an error naming it"
    );
}

#[test]
fn flatten_dirs_matches_the_merged_view() {
    let tmp = tempfile::tempdir().expect("tmp");
    let l1 = tmp.path().join("l1");
    fs::create_dir_all(l1.join("etc/old")).expect("mkdir");
    fs::write(l1.join("etc/old/conf"), b"1").expect("write");
    fs::write(l1.join("etc/passwd"), b"root").expect("write");
    fs::write(l1.join("gone"), b"x").expect("write");
    let l2 = tmp.path().join("l2");
    fs::create_dir_all(l2.join("etc/old")).expect("mkdir");
    xattr::set(l2.join("etc/old"), OVERLAY_OPAQUE_XATTR, b"y").expect("xattr");
    fs::write(l2.join("etc/old/new"), b"2").expect("write");
    mknod(&l2.join("gone"), libc::S_IFCHR, 0, 0);
    fs::write(l2.join("etc/passwd"), b"root2").expect("write");
    let out = tmp.path().join("out");
    fs::create_dir(&out).expect("mkdir");
    flatten_dirs(&[l1, l2.clone()], &out, &ApplyOptions::default()).expect("flatten");
    let got: Vec<String> = snapshot(&out)
        .into_iter()
        .map(|(k, v)| format!("{k} {}", v.split(" mode").next().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [
            "etc dir",
            "etc/old dir",
            &format!("etc/old/new file 1 {}", Digest::of_bytes(b"2").short()),
            &format!("etc/passwd file 5 {}", Digest::of_bytes(b"root2").short()),
        ]
    );
    // a layer that cannot be turned into a tar is an error naming it, not a hang
    xattr::set(l2.join("etc"), "user.overlay.metacopy", b"").expect("xattr");
    let out2 = tmp.path().join("out2");
    fs::create_dir(&out2).expect("mkdir");
    let err = flatten_dirs(&[l2], &out2, &ApplyOptions::default()).expect_err("metacopy");
    assert!(err.to_string().contains("metacopy"), "{err}");
}

/// Writes an OCI layout at `dir` holding one image (tag `t`) made of `layers` (gzip blobs).
fn write_layout(dir: &Path, layers: &[(LayerBlob, Vec<u8>)]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).expect("mkdir");
    let put = |data: &[u8]| {
        let d = Digest::of_bytes(data);
        fs::write(blobs.join(d.hex()), data).expect("blob");
        d
    };
    for (_, data) in layers {
        put(data);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(b, _)| b.diff_id.to_string()).collect::<Vec<_>>()},
    }))
    .expect("json");
    let cd = put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd.to_string(), "size": config.len()},
        "layers": layers.iter().map(|(b, _)| serde_json::json!({"mediaType": b.media_type.to_string(), "digest": b.digest.to_string(), "size": b.size})).collect::<Vec<_>>(),
    }))
    .expect("json");
    let md = put(&manifest);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md.to_string(), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
}

#[test]
fn umoci_unpacks_diffs_like_flatten_dirs() {
    let umoci = std::process::Command::new("umoci")
        .arg("--version")
        .output();
    assert!(
        umoci.is_ok_and(|o| o.status.success()),
        "umoci is not installed: run scripts/test.sh, which installs it"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("etc/old")).expect("mkdir");
    fs::write(lower.join("etc/old/conf"), b"1").expect("write");
    fs::write(lower.join("gone"), b"x").expect("write");
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).expect("mkdir");
    rich_upper(&upper);
    fs::create_dir_all(upper.join("etc/old")).expect("mkdir");
    xattr::set(upper.join("etc/old"), OVERLAY_OPAQUE_XATTR, b"y").expect("xattr");
    fs::write(upper.join("etc/old/new"), b"2").expect("write");
    let opts = DiffOptions::default();
    let l1 = write_dir_tar(&lower, Vec::new(), &opts).expect("lower");
    let l2 = write_upper_tar(&upper, Vec::new(), &opts).expect("upper");
    let layout = tmp.path().join("layout");
    write_layout(&layout, &[l1, l2]);
    let bundle = tmp.path().join("bundle");
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).expect("mkdir");
    flatten_dirs(&[lower, upper], &flat, &ApplyOptions::default()).expect("flatten");
    // compare what both tools agree to represent: names, types, sizes, contents, link targets,
    // modes (umoci --rootless drops owners and security xattrs, and makes the device `null`
    // an empty regular file, by design)
    let view = |root: &Path| -> Vec<String> {
        snapshot(root)
            .into_iter()
            .filter(|(k, _)| k != "null")
            .map(|(k, v)| {
                let kind = v.split(" mode=").next().unwrap_or_default().to_owned();
                let mode = v
                    .split(" mode=")
                    .nth(1)
                    .and_then(|m| m.split(' ').next())
                    .unwrap_or_default()
                    .to_owned();
                format!("{k} {kind} {mode}")
            })
            .collect()
    };
    let (ours, theirs) = (view(&flat), view(&bundle.join("rootfs")));
    assert_eq!(
        ours, theirs,
        "\n--- flatten_dirs\n{ours:#?}\n--- umoci\n{theirs:#?}"
    );
    assert!(!flat.join("gone").exists() && !flat.join("etc/old/conf").exists());
}

#[test]
fn a_whiteout_never_hides_what_its_own_layer_wrote() {
    // image-spec layer.md: whiteouts apply to lower layers only, whatever the entry order
    for mode in [WhiteoutMode::Overlay, WhiteoutMode::Delete] {
        let j = Jail::new();
        apply_bytes(
            &hostile(&[Raw::File(b"a", b"kept"), Raw::File(b".wh.a", b"")]),
            &j.target,
            mode,
        )
        .expect("apply");
        assert_eq!(
            fs::read(j.target.join("a")).expect("a"),
            b"kept",
            "{mode:?}"
        );
        let j = Jail::new();
        apply_bytes(
            &hostile(&[Raw::File(b".wh.b", b""), Raw::File(b"b", b"kept")]),
            &j.target,
            mode,
        )
        .expect("apply");
        assert_eq!(
            fs::read(j.target.join("b")).expect("b"),
            b"kept",
            "{mode:?}"
        );
    }
}

/// The import/load check and the unpacker give the same verdict with the same message: the
/// kinds the old, separate check let through (issue 8, item 8) and friendly layers alike.
#[test]
fn check_and_unpack_agree() {
    let long = vec![b'n'; 100];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "below a file",
            hostile(&[Raw::File(b"a", b"x"), Raw::File(b"a/b", b"y")]),
        ),
        ("file as root", hostile(&[Raw::File(b"./", b"")])),
        ("empty symlink", hostile(&[Raw::Symlink(b"l", b"")])),
        (
            "stale hard link",
            hostile(&[
                Raw::Dir(b"d"),
                Raw::File(b"d/f", b"x"),
                Raw::Symlink(b"d", b"/etc"),
                Raw::Hardlink(b"x", b"d/f"),
            ]),
        ),
        ("100-byte name", hostile(&[Raw::File(&long, b"x")])),
        (
            "friendly",
            hostile(&[
                Raw::Dir(b"d"),
                Raw::File(b"d/f", b"x"),
                Raw::Hardlink(b"d/g", b"d/f"),
                Raw::Symlink(b"d/l", b"../etc"),
                Raw::File(b".wh..wh..opq", b""),
                Raw::File(b"d/.wh.gone", b""),
            ]),
        ),
    ];
    for (what, tar) in cases {
        let target = tempfile::tempdir().expect("tmp");
        let scratch = tempfile::tempdir().expect("tmp");
        let checked = check_tar_in(&tar[..], scratch.path()).map_err(|e| e.to_string());
        let applied = apply_bytes(&tar, target.path(), WhiteoutMode::Overlay)
            .map(|r| r.entries)
            .map_err(|e| e.to_string());
        assert_eq!(checked, applied, "{what}");
        assert_eq!(
            fs::read_dir(scratch.path()).expect("ls").count(),
            0,
            "{what}: the dry run leaves nothing behind"
        );
    }
    // a GNU volume header, an entry type the unpacker does not know, is named by its flag
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..3].copy_from_slice(b"vol");
    h.set_entry_type(EntryType::new(b'V'));
    h.set_size(0);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[][..]).expect("append");
    let tar = b.into_inner().expect("finish");
    let err = check_tar(&tar[..]).expect_err("volume header").to_string();
    assert_eq!(
        err,
        "layer entry `vol` is invalid: unsupported tar entry type `V` (a GNU volume header)"
    );
}

/// Zero blocks become holes: a file of zeros with a little data takes a few blocks on disk.
#[test]
fn zero_runs_are_unpacked_as_holes() {
    let mut data = vec![0u8; 8 << 20];
    data[5 << 20] = 1;
    let tar = hostile(&[Raw::File(b"z", &data)]);
    let target = tempfile::tempdir().expect("tmp");
    apply_bytes(&tar, target.path(), WhiteoutMode::Overlay).expect("apply");
    let p = target.path().join("z");
    let md = fs::metadata(&p).expect("stat");
    assert_eq!(md.len(), 8 << 20);
    assert!(
        md.blocks() * 512 <= 64 * 1024,
        "{} bytes",
        md.blocks() * 512
    );
    assert!(fs::read(&p).expect("read") == data);
}
