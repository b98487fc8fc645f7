//! `COPY`/`ADD` source resolution against a build context: wildcards, several sources, missing
//! and excluded sources (with the deciding `.dockerignore` line), `--exclude`, `--parents`,
//! escapes, symbolic and hard links, and the cache digest.

use hoist::context::{Context, ContextError, CopyOptions, EntryKind, Source};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

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
