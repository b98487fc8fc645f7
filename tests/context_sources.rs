//! `COPY`/`ADD` source resolution against a build context: wildcards, several sources, missing
//! and excluded sources (with the deciding `.dockerignore` line), `--exclude`, `--parents`,
//! escapes, symbolic and hard links, and the cache digest; reading entries without following
//! links (`open_entry`), and `hoist build` copying from a context whose files are swapped for
//! links to outside secrets while it runs.

mod common;

use hoist::context::{self, Context, ContextError, CopyOptions, EntryKind, Source};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::TestEnv;
use nix::fcntl::OFlag;

fn tree(root: &Path, files: &[&str]) {
    for f in files {
        let p = root.join(f);
        if let Some(dir) = f.strip_suffix('/') {
            fs::create_dir_all(root.join(dir)).expect("dir");
            continue;
        }
        fs::create_dir_all(p.parent().expect("parent")).expect("dir");
        fs::write(&p, format!("content of {f}\n")).expect("file");
    }
}

fn context(files: &[&str], ignore: Option<&str>) -> (tempfile::TempDir, Context) {
    let tmp = tempfile::tempdir().expect("temp");
    tree(tmp.path(), files);
    if let Some(text) = ignore {
        fs::write(tmp.path().join(".dockerignore"), text).expect("ignore");
    }
    let ctx = Context::open(tmp.path(), None).expect("open");
    (tmp, ctx)
}

fn dests(sources: &[Source]) -> Vec<String> {
    sources
        .iter()
        .flat_map(|s| s.entries.iter().map(|e| e.dest.clone()))
        .collect()
}

fn resolve(ctx: &Context, pats: &[&str], opts: &CopyOptions) -> Vec<String> {
    dests(&ctx.resolve_sources(pats, opts).expect("resolve"))
}

#[test]
fn wildcards_match_like_go_filepath_match() {
    let (_t, ctx) = context(
        &["a.go", "b.go", "c.rs", "sub/d.go", ".hidden.go", "x[1].txt"],
        None,
    );
    assert_eq!(
        resolve(&ctx, &["*.go"], &CopyOptions::default()),
        [".hidden.go", "a.go", "b.go"]
    );
    assert_eq!(
        resolve(&ctx, &["*/*.go"], &CopyOptions::default()),
        ["d.go"]
    );
    assert_eq!(resolve(&ctx, &["?.rs"], &CopyOptions::default()), ["c.rs"]);
    assert_eq!(
        resolve(&ctx, &["[ab].go"], &CopyOptions::default()),
        ["a.go", "b.go"]
    );
    assert_eq!(
        resolve(&ctx, &["x\\[1].txt"], &CopyOptions::default()),
        ["x[1].txt"]
    );
    assert_eq!(
        resolve(&ctx, &["/c.rs", "./sub/../a.go"], &CopyOptions::default()),
        ["c.rs", "a.go"]
    );
}

#[test]
fn a_directory_source_copies_its_contents() {
    let (_t, ctx) = context(&["dir/a", "dir/sub/b", "dir/empty/"], None);
    let s = ctx
        .resolve_sources(&["dir"], &CopyOptions::default())
        .expect("resolve");
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].kind, EntryKind::Dir);
    assert_eq!(dests(&s), ["", "a", "empty", "sub", "sub/b"]);
}

#[test]
fn missing_sources_are_errors_but_a_glob_may_match_nothing_beside_others() {
    let (_t, ctx) = context(&["file-a.txt", "subdir-a/x"], None);
    let e = ctx
        .resolve_sources(&["file-a.txt", "file-z.txt"], &CopyOptions::default())
        .expect_err("missing");
    assert_eq!(e.to_string(), "file-z.txt: not in the build context");
    let e = ctx
        .resolve_sources(&["missing*"], &CopyOptions::default())
        .expect_err("nothing matched");
    assert!(matches!(e, ContextError::NotFound { .. }), "{e}");
    assert_eq!(
        resolve(
            &ctx,
            &["file-a.txt", "missing*", "subdir-*"],
            &CopyOptions::default()
        ),
        ["file-a.txt", "", "x"]
    );
}

#[test]
fn excluded_sources_name_the_line_of_the_ignore_file() {
    let (_t, ctx) = context(
        &["src/main.rs", "docs/a.md", "keep.md"],
        Some("# c\n*.md\nsrc\n!keep.md\n"),
    );
    let e = ctx
        .resolve_sources(&["src/"], &CopyOptions::default())
        .expect_err("excluded");
    assert_eq!(e.to_string(), "src/: excluded by .dockerignore line 3");
    let e = ctx
        .resolve_sources(&["src/main.rs"], &CopyOptions::default())
        .expect_err("excluded");
    assert!(matches!(e, ContextError::Excluded { line: 3, .. }), "{e}");
    assert_eq!(
        resolve(&ctx, &["keep.md"], &CopyOptions::default()),
        ["keep.md"]
    );
    // wildcards see only what is visible
    assert_eq!(
        resolve(&ctx, &["*.md"], &CopyOptions::default()),
        ["keep.md"]
    );
    assert_eq!(
        resolve(&ctx, &["."], &CopyOptions::default()),
        ["", ".dockerignore", "docs", "docs/a.md", "keep.md"]
    );
}

#[test]
fn a_named_dockerfile_ignore_file_is_preferred() {
    let tmp = tempfile::tempdir().expect("temp");
    tree(tmp.path(), &["a", "b"]);
    fs::write(tmp.path().join(".dockerignore"), "a\n").expect("w");
    fs::write(tmp.path().join("Build.df"), "FROM scratch\n").expect("w");
    fs::write(tmp.path().join("Build.df.dockerignore"), "b\nBuild.df\n").expect("w");
    let ctx = Context::open(tmp.path(), Some(&tmp.path().join("Build.df"))).expect("open");
    let got = resolve(&ctx, &["."], &CopyOptions::default());
    assert!(
        got.contains(&"a".to_string()) && !got.contains(&"b".to_string()),
        "{got:?}"
    );
    assert!(!got.contains(&"Build.df".to_string()));
    assert_eq!(ctx.read_dockerfile().expect("readable"), "FROM scratch\n");
    let e = ctx
        .resolve_sources(&["b"], &CopyOptions::default())
        .expect_err("excluded");
    assert_eq!(e.to_string(), "b: excluded by Build.df.dockerignore line 1");
    // without -f the root's .dockerignore applies
    let ctx = Context::open(tmp.path(), None).expect("open");
    assert!(ctx
        .resolve_sources(&["a"], &CopyOptions::default())
        .is_err());
}

#[test]
fn a_bad_ignore_file_names_itself_and_the_line() {
    let (t, _) = context(&["a"], None);
    fs::write(t.path().join(".dockerignore"), "a\n[\n").expect("w");
    let e = Context::open(t.path(), None).expect_err("bad");
    assert!(
        e.to_string()
            .ends_with(".dockerignore`: line 2: syntax error in pattern `[`"),
        "{e}"
    );
}

#[test]
fn exclude_patterns_apply_below_each_source() {
    let (_t, ctx) = context(
        &[
            "app/storage/cache/cache_file",
            "app/storage/views/exception",
            "app/storage/views/test_file",
            "top.txt",
            "top.c",
        ],
        None,
    );
    let opts = CopyOptions {
        exclude: vec!["storage/views".into()],
        parents: false,
    };
    assert_eq!(
        resolve(&ctx, &["app/"], &opts),
        ["", "storage", "storage/cache", "storage/cache/cache_file"]
    );
    let opts = CopyOptions {
        exclude: vec![
            "storage/views/test_file".into(),
            "!storage/views/exception".into(),
        ],
        parents: false,
    };
    assert_eq!(
        resolve(&ctx, &["app/"], &opts),
        [
            "",
            "storage",
            "storage/cache",
            "storage/cache/cache_file",
            "storage/views",
            "storage/views/exception"
        ]
    );
    let opts = CopyOptions {
        exclude: vec!["*.txt".into()],
        parents: false,
    };
    assert_eq!(resolve(&ctx, &["top.*"], &opts), ["top.c"]);
    let opts = CopyOptions {
        exclude: vec!["[".into()],
        parents: false,
    };
    assert!(matches!(
        ctx.resolve_sources(&["app"], &opts),
        Err(ContextError::BadPattern { .. })
    ));
}

#[test]
fn parents_keep_the_path_up_to_a_pivot() {
    let files = [
        "x/a.txt",
        "x/y/a.txt",
        "x/y/b.txt",
        "x/z/a.txt",
        "x/z/b.txt",
        "y/a.txt",
        "y/b.txt",
    ];
    let (_t, ctx) = context(&files, None);
    let p = CopyOptions {
        exclude: vec![],
        parents: true,
    };
    assert_eq!(
        resolve(&ctx, &["./x/a.txt", "./y/a.txt"], &p),
        ["x/a.txt", "y/a.txt"]
    );
    assert_eq!(
        resolve(&ctx, &["./x/a.txt", "./y/a.txt"], &CopyOptions::default()),
        ["a.txt", "a.txt"]
    );
    assert_eq!(
        resolve(&ctx, &["./x/y/"], &p),
        ["x/y", "x/y/a.txt", "x/y/b.txt"]
    );
    assert_eq!(
        resolve(&ctx, &["./x/*/a.txt", "./*/b.txt"], &p),
        ["x/y/a.txt", "x/z/a.txt", "y/b.txt"]
    );
    assert_eq!(
        resolve(&ctx, &["./x/./y/*.txt"], &p),
        ["y/a.txt", "y/b.txt"]
    );
    assert_eq!(resolve(&ctx, &["./x/y/./*.txt"], &p), ["a.txt", "b.txt"]);
    assert_eq!(
        resolve(&ctx, &["./x/./"], &p),
        ["", "a.txt", "y", "y/a.txt", "y/b.txt", "z", "z/a.txt", "z/b.txt"]
    );
}

#[test]
fn nothing_outside_the_context_is_reachable() {
    let outer = tempfile::tempdir().expect("temp");
    fs::write(outer.path().join("secret"), "s").expect("w");
    let root = outer.path().join("ctx");
    tree(&root, &["in/file", "etc/passwd"]);
    symlink("../secret", root.join("up")).expect("link");
    symlink("/etc", root.join("abs")).expect("link");
    symlink("in", root.join("indir")).expect("link");
    let ctx = Context::open(&root, None).expect("open");
    // `..` above the root is removed (reference, "Copying from the build context"): the name
    // is looked up at the root, where `secret` is not
    let e = ctx
        .resolve_sources(&["../secret"], &CopyOptions::default())
        .expect_err("escape");
    assert!(matches!(e, ContextError::NotFound { .. }), "{e}");
    assert!(matches!(
        ctx.resolve_sources(&["in/../../secret"], &CopyOptions::default()),
        Err(ContextError::NotFound { .. })
    ));
    let s = ctx
        .resolve_sources(&["../../in/file"], &CopyOptions::default())
        .expect("stripped");
    assert_eq!(s[0].path, "in/file");
    // `up` -> ../secret resolves inside the root: `secret` is not in the context
    assert!(matches!(
        ctx.resolve_sources(&["up"], &CopyOptions::default()),
        Err(ContextError::NotFound { .. })
    ));
    // an absolute link is taken relative to the context root
    let s = ctx
        .resolve_sources(&["abs/passwd"], &CopyOptions::default())
        .expect("scoped");
    assert_eq!(s[0].path, "etc/passwd");
    // a named link is followed; links inside a copied directory stay links
    let s = ctx
        .resolve_sources(&["indir"], &CopyOptions::default())
        .expect("dir link");
    assert_eq!(s[0].path, "in");
    let s = ctx
        .resolve_sources(&["."], &CopyOptions::default())
        .expect("all");
    let up = s[0]
        .entries
        .iter()
        .find(|e| e.dest == "up")
        .expect("up listed");
    assert_eq!(up.kind, EntryKind::Symlink);
    assert_eq!(up.link_target.as_deref(), Some(Path::new("../secret")));
    assert!(ctx.open_file("../secret").is_err());
}

#[test]
fn hard_links_are_marked_and_setuid_kept() {
    let (t, ctx) = context(&["d/a"], None);
    fs::hard_link(t.path().join("d/a"), t.path().join("d/b")).expect("link");
    fs::set_permissions(t.path().join("d/a"), fs::Permissions::from_mode(0o4755)).expect("chmod");
    let s = ctx
        .resolve_sources(&["d"], &CopyOptions::default())
        .expect("resolve");
    let b = s[0].entries.iter().find(|e| e.dest == "b").expect("b");
    assert_eq!(b.hardlink_to.as_deref(), Some("a"));
    assert_eq!(b.mode, 0o4755);
    let a = s[0].entries.iter().find(|e| e.dest == "a").expect("a");
    assert_eq!(a.hardlink_to, None);
}

#[test]
fn the_digest_follows_content_and_mode_but_not_times() {
    let (t, ctx) = context(&["d/a", "d/b"], None);
    let digest = |ctx: &Context| {
        let s = ctx
            .resolve_sources(&["d"], &CopyOptions::default())
            .expect("resolve");
        ctx.digest(&s).expect("digest")
    };
    let first = digest(&ctx);
    assert_eq!(first.files.len(), 2);
    assert_eq!(first.files[0].0, "a");
    let f = fs::File::options()
        .write(true)
        .open(t.path().join("d/a"))
        .expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH)
        .expect("mtime");
    assert_eq!(digest(&ctx), first, "mtime must not matter");
    fs::set_permissions(t.path().join("d/a"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let moded = digest(&ctx);
    assert_ne!(moded.digest, first.digest);
    fs::write(t.path().join("d/b"), "other").expect("w");
    let changed = digest(&ctx);
    assert_ne!(changed.digest, moded.digest);
    assert_ne!(changed.files[1].1, moded.files[1].1);
}

#[test]
fn a_context_that_is_not_a_directory_is_refused() {
    let t = tempfile::tempdir().expect("temp");
    fs::write(t.path().join("f"), "x").expect("w");
    let e = Context::open(&t.path().join("f"), None).expect_err("file");
    assert!(e.to_string().contains("is not a directory"), "{e}");
    assert!(Context::open(&t.path().join("missing"), None).is_err());
}

#[test]
fn an_excluded_directory_with_a_re_included_file_can_be_copied() {
    let (_t, ctx) = context(
        &["dir/keep", "dir/drop", "dir/sub/x"],
        Some("dir\n!dir/keep\n"),
    );
    assert_eq!(
        resolve(&ctx, &["dir"], &CopyOptions::default()),
        ["", "keep"]
    );
    assert_eq!(
        resolve(&ctx, &["dir/keep"], &CopyOptions::default()),
        ["keep"]
    );
    assert_eq!(
        resolve(&ctx, &["d*"], &CopyOptions::default()),
        ["", "keep"]
    );
    let e = ctx
        .resolve_sources(&["dir/drop"], &CopyOptions::default())
        .expect_err("excluded");
    assert_eq!(e.to_string(), "dir/drop: excluded by .dockerignore line 1");
    assert!(ctx
        .resolve_sources(&["dir/sub"], &CopyOptions::default())
        .is_err());
}

fn entry_of(ctx: &Context, src: &str) -> hoist::context::Entry {
    let s = ctx
        .resolve_sources(&[src], &CopyOptions::default())
        .expect("resolve");
    s[0].entries[0].clone()
}

#[test]
fn open_entry_reads_what_the_walk_saw() {
    let (t, ctx) = context(&["d/a"], None);
    symlink("a", t.path().join("d/ln")).expect("symlink");
    let mut f = ctx.open_entry(&entry_of(&ctx, "d/a")).expect("open");
    let mut text = String::new();
    f.reader()
        .expect("a file")
        .read_to_string(&mut text)
        .expect("read");
    assert_eq!(text, "content of d/a\n");
    // a link inside a copied directory is opened as itself, never followed
    let s = ctx
        .resolve_sources(&["d"], &CopyOptions::default())
        .expect("resolve");
    let ln = s[0].entries.iter().find(|e| e.dest == "ln").expect("ln");
    let o = ctx.open_entry(ln).expect("open link");
    assert!(o.metadata().file_type().is_symlink());
    assert_eq!(o.read_link().expect("readlink"), Path::new("a"));
}

#[test]
fn a_file_swapped_for_a_link_after_the_walk_is_changed_not_followed() {
    let outside = tempfile::tempdir().expect("tmp");
    fs::write(outside.path().join("secret"), "SECRET\n").expect("secret");
    let (t, ctx) = context(&["f", "d/g"], None);
    let f = entry_of(&ctx, "f");
    let g = entry_of(&ctx, "d/g");
    let dir = ctx
        .resolve_sources(&["d"], &CopyOptions::default())
        .expect("d")[0]
        .entries[0]
        .clone();
    // (a second name keeps the inode from being reused for the new `f` below)
    fs::hard_link(t.path().join("f"), t.path().join("f.keep")).expect("link");
    // the file becomes a link to the secret
    fs::remove_file(t.path().join("f")).expect("rm");
    symlink(outside.path().join("secret"), t.path().join("f")).expect("symlink");
    let e = ctx.open_entry(&f).expect_err("swapped file");
    assert!(matches!(e, ContextError::Changed { .. }), "{e:?}");
    assert_eq!(e.to_string(), "`f`: changed during the build");
    // a directory on the path becomes a link to a directory holding a `g`
    fs::write(outside.path().join("g"), "SECRET\n").expect("g");
    fs::rename(t.path().join("d"), t.path().join("d.old")).expect("mv");
    symlink(outside.path(), t.path().join("d")).expect("symlink");
    let e = ctx.open_entry(&g).expect_err("swapped dir");
    assert_eq!(e.to_string(), "`d/g`: changed during the build");
    let e = ctx.open_entry(&dir).expect_err("swapped dir itself");
    assert_eq!(e.to_string(), "`d`: changed during the build");
    // the digest reads through the same check
    let e = ctx
        .digest(&[Source {
            pattern: "d/g".into(),
            path: "d/g".into(),
            kind: EntryKind::File,
            parents: String::new(),
            entries: vec![g.clone()],
        }])
        .expect_err("digest of a swapped file");
    assert_eq!(e.to_string(), "`d/g`: changed during the build");
    // the same name back, but another file (new inode) or another size: changed as well
    fs::remove_file(t.path().join("d")).expect("rm link");
    fs::rename(t.path().join("d.old"), t.path().join("d")).expect("mv back");
    fs::write(t.path().join("d/g"), "content of d/g, longer\n").expect("grow");
    let e = ctx.open_entry(&g).expect_err("resized");
    assert_eq!(e.to_string(), "`d/g`: changed during the build");
    fs::remove_file(t.path().join("f")).expect("rm link");
    fs::write(t.path().join("f"), "content of f\n").expect("same content, new inode");
    assert!(matches!(
        ctx.open_entry(&f),
        Err(ContextError::Changed { .. })
    ));
}

#[test]
fn a_fifo_swapped_in_for_a_file_does_not_block_the_open() {
    let (t, ctx) = context(&["f"], None);
    let f = entry_of(&ctx, "f");
    fs::remove_file(t.path().join("f")).expect("rm");
    nix::unistd::mkfifo(
        &t.path().join("f"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let e = ctx.open_entry(&f).expect_err("fifo");
    assert_eq!(e.to_string(), "`f`: changed during the build");
}

fn root_fd(p: &Path) -> OwnedFd {
    nix::fcntl::open(
        p,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .expect("open root")
}

#[test]
fn both_ways_of_opening_beneath_refuse_every_link_and_escape() {
    let outside = tempfile::tempdir().expect("tmp");
    fs::write(outside.path().join("secret"), "SECRET").expect("secret");
    let (t, _ctx) = context(&["d/f"], None);
    symlink(outside.path().join("secret"), t.path().join("abs")).expect("symlink");
    symlink("../secret", t.path().join("rel")).expect("symlink");
    symlink("d", t.path().join("dl")).expect("symlink");
    let root = root_fd(t.path());
    type Open = fn(&OwnedFd, &str, OFlag) -> std::io::Result<OwnedFd>;
    let ways: [(&str, Open); 2] = [
        ("openat2", context::open_beneath),
        ("walk", context::open_beneath_walk),
    ];
    for (name, open) in ways {
        let mut text = String::new();
        fs::File::from(open(&root, "d/f", OFlag::O_RDONLY).expect("plain file"))
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "content of d/f\n", "{name}");
        for bad in ["abs", "rel", "dl/f", "../x", "d/../../x"] {
            let e = open(&root, bad, OFlag::O_RDONLY).expect_err(bad);
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::ELOOP) | Some(libc::EXDEV) | Some(libc::ENOTDIR)
                ),
                "{name}: {bad}: {e}"
            );
        }
        // O_PATH opens a final link as itself
        let fd = open(&root, "abs", OFlag::O_PATH).expect("link itself");
        let m = fs::File::from(fd).metadata().expect("fstat");
        assert!(m.file_type().is_symlink(), "{name}");
        assert!(
            open(&root, "", OFlag::O_PATH | OFlag::O_DIRECTORY).is_ok(),
            "{name}"
        );
    }
}

/// The audit's race: while `hoist build` copies `data` and `dir/` from the context, a thread
/// swaps them (atomically, `renameat2(RENAME_EXCHANGE)`) with links to an outside secret file and
/// an outside directory holding a secret `f`. Each build must either copy the real content or
/// fail naming the changed source; the secret never reaches the output.
#[test]
fn copy_never_reads_through_a_link_swapped_in_during_the_build() {
    let env = TestEnv::new();
    let outside = env.path("outside");
    fs::create_dir_all(outside.join("dir")).expect("outside");
    fs::write(outside.join("secret"), "SECRET\n").expect("secret");
    fs::write(outside.join("dir/f"), "SECRET\n").expect("secret");
    let ctx = env.path("ctx");
    fs::create_dir_all(ctx.join("dir")).expect("ctx");
    fs::write(ctx.join("data"), "real\n").expect("data");
    fs::write(ctx.join("dir/f"), "realdir\n").expect("dir/f");
    symlink(outside.join("secret"), ctx.join("data.swap")).expect("symlink");
    symlink(outside.join("dir"), ctx.join("dir.swap")).expect("symlink");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY data /data\nCOPY dir /dir\n",
    )
    .expect("Dockerfile");
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let ctx = ctx.clone();
        std::thread::spawn(move || {
            let exchange = |a: &str, b: &str| {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &ctx.join(a),
                    nix::fcntl::AT_FDCWD,
                    &ctx.join(b),
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .expect("exchange");
            };
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                exchange("data", "data.swap");
                exchange("dir", "dir.swap");
                swaps += 1;
            }
            // leave the context as it was
            if swaps % 2 == 1 {
                exchange("data", "data.swap");
                exchange("dir", "dir.swap");
            }
            swaps
        })
    };
    let (mut ok, mut changed, mut missing) = (0, 0, 0);
    for i in 0..60 {
        let out = env.path(&format!("out{i}"));
        let mut cmd = env.cmd([
            "build".as_ref(),
            "-q".as_ref(),
            "-o".as_ref(),
            format!("type=local,dest={}", out.display()).as_ref(),
            ctx.as_os_str(),
        ]);
        let res = common::run(&mut cmd);
        let stderr = String::from_utf8_lossy(&res.stderr);
        // nothing of the secret anywhere in what the build wrote, and no link to it
        for e in walkdir::WalkDir::new(&out).into_iter().flatten() {
            assert!(
                !e.path_is_symlink(),
                "build {i}: a link in the output: `{}`",
                e.path().display()
            );
            if e.file_type().is_file() {
                let text = fs::read_to_string(e.path()).expect("read output");
                assert!(
                    !text.contains("SECRET"),
                    "build {i}: {}",
                    e.path().display()
                );
            }
        }
        if res.status.success() {
            let data = fs::read_to_string(out.join("data")).expect("data copied");
            let f = fs::read_to_string(out.join("dir/f")).expect("dir/f copied");
            assert_eq!(
                (data.as_str(), f.as_str()),
                ("real\n", "realdir\n"),
                "build {i}"
            );
            ok += 1;
        } else {
            assert_eq!(res.status.code(), Some(1), "build {i}: {stderr}");
            assert_eq!(stderr.trim().lines().count(), 1, "build {i}: {stderr}");
            if stderr.contains("changed during the build") {
                changed += 1;
            } else if stderr.contains("not in the build context") {
                // the walk met the link itself: followed inside the context, where the
                // target does not exist
                missing += 1;
            } else {
                panic!("build {i}: unexpected error: {stderr}");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    eprintln!("60 builds: {ok} copied the real content, {changed} changed, {missing} not found; {swaps} swaps");
    assert!(swaps > 0);
}

/// A build resolves each COPY's sources once: the copy gets the listing its cache key hashed,
/// even when the context changes between the two (a plain resolution sees the change).
#[test]
fn a_resolution_made_once_stays_what_the_key_saw() {
    let (t, ctx) = context(&["d/a"], None);
    let once = |ctx: &Context| {
        ctx.resolve_sources_once(&["d"], &CopyOptions::default())
            .expect("resolve")
    };
    let first = once(&ctx);
    fs::set_permissions(t.path().join("d/a"), fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(t.path().join("d/new"), "x").expect("w");
    assert_eq!(once(&ctx), first, "the same listing, not a second walk");
    let fresh = ctx
        .resolve_sources(&["d"], &CopyOptions::default())
        .expect("resolve");
    assert_ne!(fresh, first);
    assert!(fresh[0].entries.iter().any(|e| e.dest == "new"));
}

/// The digest keeps the small files it read: what a COPY of the same listing then writes is what
/// the key hashed, even when the file changes in between; an entry of a later walk that found
/// another file there (another inode) gets nothing held.
#[test]
fn the_digest_holds_what_it_read_for_the_copy() {
    let (t, ctx) = context(&["d/a"], None);
    let s = ctx
        .resolve_sources_once(&["d"], &CopyOptions::default())
        .expect("resolve");
    let before = fs::read(t.path().join("d/a")).expect("read");
    ctx.digest(&s).expect("digest");
    let a = s[0].entries.iter().find(|e| e.dest == "a").expect("a");
    let dir = s[0]
        .entries
        .iter()
        .find(|e| e.dest.is_empty())
        .expect("dir");
    assert!(ctx.held(dir).is_none(), "only regular files are held");
    let same_size: Vec<u8> = before.iter().map(|b| b ^ 1).collect();
    fs::write(t.path().join("d/a"), &same_size).expect("rewrite in place");
    assert_eq!(ctx.held(a).expect("held").content, before);
    // a later walk that finds another file there (another inode: the old one is kept aside,
    // so that its number cannot be reused) gets nothing held
    fs::rename(t.path().join("d/a"), t.path().join("old-a")).expect("mv");
    fs::write(t.path().join("d/a"), &same_size).expect("new file");
    let again = ctx
        .resolve_sources(&["d"], &CopyOptions::default())
        .expect("resolve");
    let a2 = again[0].entries.iter().find(|e| e.dest == "a").expect("a");
    assert!(ctx.held(a2).is_none(), "another inode is another file");
}
