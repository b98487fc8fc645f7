//! The build cache's keys, as exec computes them: a step's key is the sha256 of named parts —
//! the parent's key, the step's own parts ([`crate::plan::Step::cache_parts`]: expanded
//! instruction, the env and build args a RUN sees), the platform, the `--timestamp`, and for
//! COPY/ADD and `RUN --mount=type=bind` the digests of what they read (per file, then the whole
//! listing with owners and xattrs). Keeping the parts lets a miss name the first one that differs
//! from the closest earlier entry.
//!
//! Entries are stored by `store::cache`; this module does no I/O on the store. It must never put
//! an mtime, a secret's content or a cache mount's content into a key.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::context::{Context, Entry};

/// Named key parts, in order.
pub(super) type Parts = Vec<(String, String)>;

/// The key of `parts`: sha256 over length-prefixed names and values (so no two lists collide).
pub(super) fn key_of(parts: &Parts) -> String {
    let mut h = Sha256::new();
    for (k, v) in parts {
        h.update(format!("{}:{k}{}:", k.len(), v.len()).as_bytes());
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// The pointer name under which the last entry for (parent, instruction kind) is kept.
pub(super) fn pointer(parent: &str, kind: &str) -> String {
    key_of(&vec![
        ("parent".to_string(), parent.to_string()),
        ("kind".to_string(), kind.to_string()),
    ])
}

/// What [`explain`] says when the parent key differs.
pub(super) const PARENT_CHANGED: &str = "the step before it changed";

/// Why `ours` missed, compared with `theirs` (the closest entry): the first part that differs.
pub(super) fn explain(ours: &Parts, theirs: Option<&Parts>) -> String {
    let Some(theirs) = theirs else {
        return "no earlier build of this step on the same parent".to_string();
    };
    for (k, v) in ours {
        match theirs.iter().find(|(tk, _)| tk == k) {
            Some((_, tv)) if tv == v => {}
            Some((_, tv)) => return changed(k, tv, v),
            None => return added(k),
        }
    }
    for (k, _) in theirs {
        if !ours.iter().any(|(ok, _)| ok == k) {
            return removed(k);
        }
    }
    "the entry differs in a part not recorded".to_string()
}

fn changed(name: &str, old: &str, new: &str) -> String {
    if let Some(f) = name.strip_prefix("file ") {
        return format!("file `{f}` changed");
    }
    if let Some(v) = name.strip_prefix("env ") {
        return format!("`{v}` changed from `{old}` to `{new}`");
    }
    if let Some(t) = name.strip_prefix("bind ") {
        return format!("what the bind mount at `{t}` reads changed");
    }
    match name {
        "parent" => PARENT_CHANGED.to_string(),
        "instruction" => "the instruction changed".to_string(),
        "sources" => "the sources' metadata changed (type, mode, size, link target or hard links)"
            .to_string(),
        "owners and xattrs" => "the sources' owners or extended attributes changed".to_string(),
        "from" => "the stage or image it reads from changed".to_string(),
        "platform" => format!("the platform changed from `{old}` to `{new}`"),
        "timestamp" => format!("`--timestamp` changed from `{old}` to `{new}`"),
        "network" => format!("`--network` changed from `{old}` to `{new}`"),
        other => format!("`{other}` changed"),
    }
}

fn added(name: &str) -> String {
    if let Some(f) = name.strip_prefix("file ") {
        return format!("file `{f}` is new");
    }
    if let Some(v) = name.strip_prefix("env ") {
        return format!("`{v}` is new");
    }
    format!("`{name}` is new")
}

fn removed(name: &str) -> String {
    if let Some(f) = name.strip_prefix("file ") {
        return format!("file `{f}` was removed");
    }
    if let Some(v) = name.strip_prefix("env ") {
        return format!("`{v}` is no longer set");
    }
    format!("`{name}` was removed")
}

/// A digest of the owners and the `security.capability` and `user.*` extended attributes of
/// context entries (the context's own digest covers path, type, mode, size, link target and
/// content).
pub(super) fn owners_and_xattrs(ctx: &Context, entries: &[&Entry]) -> io::Result<String> {
    let keep = |n: &OsString| {
        let s = n.to_string_lossy();
        s == "security.capability" || s.starts_with("user.")
    };
    let mut h = Sha256::new();
    for e in entries {
        h.update(format!("{}\0{}:{}\0", e.dest, e.uid, e.gid).as_bytes());
        let mut kept: Vec<(OsString, Vec<u8>)> = match ctx.held(e) {
            // read through the descriptor by the content digest: no second look-up by path
            Some(held) => held
                .xattrs
                .iter()
                .filter(|(n, _)| keep(n))
                .cloned()
                .collect(),
            None => {
                let p = ctx.root().join(&e.path);
                let names: Vec<OsString> = match xattr::list(&p) {
                    Ok(l) => l.filter(keep).collect(),
                    Err(err) if err.raw_os_error() == Some(libc::ENOTSUP) => Vec::new(),
                    Err(err) => return Err(err),
                };
                let mut kept = Vec::new();
                for n in names {
                    if let Some(v) = xattr::get(&p, &n)? {
                        kept.push((n, v));
                    }
                }
                kept
            }
        };
        kept.sort();
        for (n, v) in kept {
            h.update(n.to_string_lossy().as_bytes());
            h.update(b"=");
            h.update(&v);
            h.update(b"\0");
        }
        h.update(b"\n");
    }
    Ok(hex::encode(h.finalize()))
}

/// Makes the mtimes in `dir` what the layer's tar records: whole seconds (the tar has no
/// fractions), and with a timestamp (`--timestamp`, `SOURCE_DATE_EPOCH`) none later than it.
/// Later steps, `COPY --from`, `--output` and `hoist run` read the layer dir, so they see what
/// the blob holds, as they do where the same image was loaded instead of built (the root dir
/// itself is not in the tar).
pub(super) fn clamp_mtimes(dir: &Path, ts: Option<i64>) -> io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    for entry in walkdir::WalkDir::new(dir).min_depth(1) {
        let entry = entry.map_err(io::Error::other)?;
        let meta = fs::symlink_metadata(entry.path())?;
        let secs = match ts {
            Some(t) if meta.mtime() > t => t,
            _ => meta.mtime(),
        };
        if secs != meta.mtime() || meta.mtime_nsec() != 0 {
            utimensat(
                nix::fcntl::AT_FDCWD,
                entry.path(),
                &TimeSpec::UTIME_OMIT,
                &TimeSpec::new(secs, 0),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(io::Error::from)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Parts {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_differ_when_any_part_differs() {
        let a = p(&[("parent", "x"), ("instruction", "RUN a")]);
        let b = p(&[("parent", "x"), ("instruction", "RUN b")]);
        let c = p(&[("parentx", ""), ("instruction", "RUN a")]);
        assert_ne!(key_of(&a), key_of(&b));
        assert_ne!(key_of(&a), key_of(&c));
        assert_eq!(key_of(&a), key_of(&a.clone()));
    }

    #[test]
    fn explain_names_the_first_difference() {
        let old = p(&[("parent", "x"), ("file a.txt", "1"), ("file b.txt", "2")]);
        let new = p(&[("parent", "x"), ("file a.txt", "1"), ("file b.txt", "3")]);
        assert_eq!(explain(&new, Some(&old)), "file `b.txt` changed");
        let new = p(&[("parent", "x"), ("file a.txt", "1")]);
        assert_eq!(explain(&new, Some(&old)), "file `b.txt` was removed");
        let old = p(&[("env V", "1")]);
        let new = p(&[("env V", "2")]);
        assert_eq!(explain(&new, Some(&old)), "`V` changed from `1` to `2`");
        assert!(explain(&new, None).contains("no earlier build"));
    }

    #[test]
    fn clamping_mtimes_leaves_older_files() {
        let d = tempfile::tempdir().expect("tmp");
        fs::write(d.path().join("new"), "x").expect("write");
        let old = d.path().join("old");
        fs::write(&old, "y").expect("write");
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &old,
            &nix::sys::time::TimeSpec::new(100, 0),
            &nix::sys::time::TimeSpec::new(100, 0),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .expect("utimensat");
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &d.path().join("new"),
            &nix::sys::time::TimeSpec::new(2000, 5),
            &nix::sys::time::TimeSpec::new(2000, 5),
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .expect("utimensat");
        let m = |n: &str| {
            let m = fs::symlink_metadata(d.path().join(n)).expect("stat");
            (m.mtime(), m.mtime_nsec())
        };
        clamp_mtimes(d.path(), None).expect("truncate");
        assert_eq!(m("new"), (2000, 0), "whole seconds, as the tar has them");
        clamp_mtimes(d.path(), Some(1000)).expect("clamp");
        assert_eq!(m("new"), (1000, 0));
        assert_eq!(m("old"), (100, 0));
    }
}
