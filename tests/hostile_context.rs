//! Hostile build contexts and Dockerfiles through the real binary: sources naming paths above or
//! outside the context, links out of it (absolute, relative, on the path, as the named source),
//! link loops, FIFOs, sockets and devices, unreadable files, huge and NUL-laden Dockerfiles, deep
//! nesting, ignore-file exceptions below a linked directory, a Dockerfile outside the context and
//! archives that climb out. Each gets docker's behaviour or one clear line and exit 1; nothing
//! outside the context is read (a secret beside it never shows up in the output) or written.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::TestEnv;

const SECRET: &str = "SECRET-OUTSIDE-THE-CONTEXT\n";

/// A test environment with `outside/secret` (and `outside/dir/secret`) beside the context.
fn env_with_secret(env: TestEnv) -> TestEnv {
    let outside = env.path("outside");
    fs::create_dir_all(outside.join("dir")).expect("outside");
    fs::write(outside.join("secret"), SECRET).expect("secret");
    fs::write(outside.join("dir/secret"), SECRET).expect("secret");
    env
}

/// Writes `ctx/` with the given files and Dockerfile.
fn context(env: &TestEnv, dockerfile: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path("ctx");
    fs::create_dir_all(&dir).expect("ctx");
    fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    for (name, content) in files {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, content).expect("write");
    }
    dir
}

/// `hoist build -o type=local,dest=out CTX [extra…]`; returns the output and the dest dir.
fn build(env: &TestEnv, ctx: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let out = env.path("out");
    let _ = fs::remove_dir_all(&out);
    let mut args: Vec<String> = vec![
        "build".into(),
        "-q".into(),
        "-o".into(),
        format!("type=local,dest={}", out.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(ctx.display().to_string());
    let mut cmd = env.cmd(&args);
    (common::run(&mut cmd), out)
}

/// The build failed with exit 1 and one line containing `what`.
fn fails_with(res: &Output, what: &str) {
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(res.status.code(), Some(1), "{}", common::show(res));
    // one error line (build-check warnings, printed before a build, are not errors)
    assert_eq!(
        err.lines().filter(|l| l.starts_with("Error")).count(),
        1,
        "{}",
        common::show(res)
    );
    assert!(
        err.contains(what),
        "expected `{what}`\n{}",
        common::show(res)
    );
}

fn succeeded(res: &Output) {
    assert!(res.status.success(), "{}", common::show(res));
}

/// Nothing in `dir` holds the secret, and nothing beside the context was added or changed.
fn nothing_leaked(env: &TestEnv, dir: &Path) {
    for e in walkdir::WalkDir::new(dir).into_iter().flatten() {
        if e.file_type().is_file() {
            let text = fs::read(e.path()).expect("read output");
            assert!(
                !String::from_utf8_lossy(&text).contains("SECRET-OUTSIDE"),
                "the secret reached `{}`",
                e.path().display()
            );
        }
    }
    let outside = env.path("outside");
    let mut names: Vec<String> = walkdir::WalkDir::new(&outside)
        .into_iter()
        .flatten()
        .map(|e| {
            e.path()
                .strip_prefix(&outside)
                .expect("below")
                .display()
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["", "dir", "dir/secret", "secret"],
        "outside/ changed"
    );
    assert_eq!(
        fs::read_to_string(outside.join("secret")).expect("secret"),
        SECRET
    );
}

#[test]
fn a_source_above_the_context_is_refused() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\nCOPY ../outside/secret /s\n", &[]);
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(
        &res,
        // BuildKit strips the `../` at the context root: `outside/secret` is not in the context
        "COPY ../outside/secret /s: ../outside/secret: not in the build context",
    );
    nothing_leaked(&env, &out);
    let ctx = context(
        &env,
        "FROM scratch\nCOPY sub/../../outside/secret /s\n",
        &[],
    );
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(&res, "not in the build context");
    nothing_leaked(&env, &out);
}

#[test]
fn an_absolute_source_is_relative_to_the_context() {
    let env = env_with_secret(TestEnv::new());
    let secret = env.path("outside/secret");
    let ctx = context(
        &env,
        &format!(
            "FROM scratch\nCOPY /etc/passwd {} /got/\n",
            secret.display()
        ),
        &[("etc/passwd", "the context's passwd\n")],
    );
    // the secret's absolute path means `ctx/<that path>`, which does not exist
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(&res, "not in the build context");
    nothing_leaked(&env, &out);
    let ctx = context(
        &env,
        "FROM scratch\nCOPY /etc/passwd /got\n",
        &[("etc/passwd", "the context's passwd\n")],
    );
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert_eq!(
        fs::read_to_string(out.join("got")).expect("copied"),
        "the context's passwd\n"
    );
}

#[test]
fn links_out_of_the_context_are_scoped_to_it() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\n", &[("real/f", "inside\n")]);
    symlink(env.path("outside/secret"), ctx.join("abs")).expect("symlink");
    symlink("../outside/secret", ctx.join("rel")).expect("symlink");
    symlink(env.path("outside/dir"), ctx.join("absdir")).expect("symlink");
    symlink("../outside/dir", ctx.join("reldir")).expect("symlink");
    symlink("real", ctx.join("inside")).expect("symlink");
    for src in [
        "abs",
        "rel",
        "absdir/secret",
        "reldir/secret",
        "absdir",
        "reldir",
    ] {
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM scratch\nCOPY {src} /x\n"),
        )
        .expect("Dockerfile");
        let (res, out) = build(&env, &ctx, &[]);
        fails_with(
            &res,
            &format!("COPY {src} /x: {src}: not in the build context"),
        );
        nothing_leaked(&env, &out);
    }
    // a named link (and a linked dir on the path) is followed inside the context (BuildKit)
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY inside/f /f\nCOPY inside /d/\n",
    )
    .expect("Dockerfile");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert_eq!(fs::read_to_string(out.join("f")).expect("f"), "inside\n");
    assert_eq!(
        fs::read_to_string(out.join("d/f")).expect("d/f"),
        "inside\n"
    );
    // inside a copied directory, links stay links: never followed
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /all/\n").expect("Dockerfile");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    for l in ["abs", "rel", "absdir", "reldir", "inside"] {
        let m = fs::symlink_metadata(out.join("all").join(l)).expect("copied");
        assert!(m.file_type().is_symlink(), "{l} copied as a link");
    }
    assert_eq!(
        fs::read_link(out.join("all/rel")).expect("readlink"),
        Path::new("../outside/secret")
    );
    nothing_leaked(&env, &out);
}

#[test]
fn a_link_loop_is_a_clear_error_when_named_and_a_link_when_copied() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\nCOPY a /a\n", &[]);
    symlink("b", ctx.join("a")).expect("symlink");
    symlink("a", ctx.join("b")).expect("symlink");
    symlink(".", ctx.join("self")).expect("symlink");
    let (res, _) = build(&env, &ctx, &[]);
    fails_with(&res, "COPY a /a: a: too many levels of symbolic links");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY self/self/self/a /a\n",
    )
    .expect("df");
    let (res, _) = build(&env, &ctx, &[]);
    fails_with(&res, "too many levels of symbolic links");
    fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY . /all/\n").expect("df");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert_eq!(fs::read_link(out.join("all/a")).expect("a"), Path::new("b"));
    assert_eq!(
        fs::read_link(out.join("all/self")).expect("self"),
        Path::new(".")
    );
}

#[test]
fn fifos_and_devices_are_recreated_never_read() {
    // as root: docker copies special files as nodes; reading /dev/zero's twin or a FIFO with no
    // writer would never end
    let env = env_with_secret(TestEnv::new());
    let ctx = context(
        &env,
        "FROM scratch\nCOPY fifo zero /n/\nCOPY . /all/\n",
        &[],
    );
    nix::unistd::mkfifo(
        &ctx.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    nix::sys::stat::mknod(
        &ctx.join("zero"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 5),
    )
    .expect("mknod");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    for p in ["n/fifo", "all/fifo"] {
        assert!(
            fs::symlink_metadata(out.join(p))
                .expect(p)
                .file_type()
                .is_fifo(),
            "{p}"
        );
    }
    for p in ["n/zero", "all/zero"] {
        let m = fs::symlink_metadata(out.join(p)).expect(p);
        assert!(m.file_type().is_char_device(), "{p}");
    }
}

#[test]
fn a_socket_in_the_context_is_left_out() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\nCOPY . /all/\n", &[("f", "f\n")]);
    let _sock = std::os::unix::net::UnixListener::bind(ctx.join("sock")).expect("bind");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert!(out.join("all/f").is_file());
    assert!(
        fs::symlink_metadata(out.join("all/sock")).is_err(),
        "the socket was copied"
    );
    assert!(
        !String::from_utf8_lossy(&res.stderr).contains("/tmp"),
        "no warning naming hoist's temp dirs: {}",
        common::show(&res)
    );
}

#[test]
fn an_unreadable_file_is_a_clear_error_rootless() {
    let env = env_with_secret(TestEnv::rootless());
    let ctx = context(&env, "FROM scratch\nCOPY . /all/\n", &[("ok", "ok\n")]);
    common::chown_tree(&ctx, 65534);
    fs::write(ctx.join("private"), "private\n").expect("write");
    fs::set_permissions(ctx.join("private"), fs::Permissions::from_mode(0o600)).expect("chmod");
    // owned by root: uid 65534 cannot read it
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(&res, "private");
    fails_with(&res, "Permission denied");
    assert!(!out.join("all/private").exists());
}

#[test]
fn a_huge_dockerfile_line_and_nul_bytes_are_handled() {
    let env = env_with_secret(TestEnv::new());
    // a line of 2 MiB: refused at its line, not parsed
    let big = "x".repeat(2 << 20);
    let ctx = context(&env, &format!("FROM scratch\nLABEL big={big}\n"), &[]);
    let (res, _) = build(&env, &ctx, &[]);
    // (the rendering shows the offending line under its headline, as every Dockerfile error)
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.lines().next().is_some_and(
            |l| l.ends_with("Dockerfile:2:1: line is longer than the maximum of 65535 bytes")
        ),
        "{}",
        &err[..err.len().min(300)]
    );
    // a long but allowed line works; a long source name is not found
    let long = "x".repeat(60_000);
    let ctx = context(&env, &format!("FROM scratch\nLABEL big={long}\n"), &[]);
    let (res, _) = build(&env, &ctx, &[]);
    succeeded(&res);
    let ctx = context(&env, &format!("FROM scratch\nCOPY {long} /x\n"), &[]);
    let (res, _) = build(&env, &ctx, &[]);
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    // a name longer than NAME_MAX: the file system's own refusal, on one line
    assert!(
        err.trim().lines().count() == 1 && err.contains("File name too long"),
        "{}",
        &err[..err.len().min(300)]
    );
    // NUL bytes: in a source, in a destination, in an instruction name
    let ctx = context(&env, "FROM scratch\nCOPY f\0g /x\n", &[("f", "f\n")]);
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(&res, "Dockerfile:2");
    assert!(!out.exists() || fs::read_dir(&out).expect("out").next().is_none());
    let ctx = context(&env, "FROM scratch\nCOPY f /x\0y\n", &[("f", "f\n")]);
    let (res, _) = build(&env, &ctx, &[]);
    fails_with(&res, "Dockerfile:2");
    let ctx = context(&env, "FROM scratch\nCO\0PY f /x\n", &[("f", "f\n")]);
    let (res, _) = build(&env, &ctx, &[]);
    assert_eq!(res.status.code(), Some(1), "{}", common::show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("Dockerfile:2:1: unknown instruction")),
        "{err}"
    );
}

/// Makes `depth` nested directories named `d` below `dir` through descriptors (the full path
/// may be longer than PATH_MAX), with a file `f` at the bottom.
fn deep_tree(dir: &Path, depth: usize) {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let mut cur = nix::fcntl::open(dir, OFlag::O_DIRECTORY, Mode::empty()).expect("open");
    for _ in 0..depth {
        mkdirat(&cur, "d", Mode::from_bits_truncate(0o755)).expect("mkdirat");
        cur = openat(&cur, "d", OFlag::O_DIRECTORY, Mode::empty()).expect("openat");
    }
    let f = openat(
        &cur,
        "f",
        OFlag::O_WRONLY | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o644),
    )
    .expect("create");
    nix::unistd::write(&f, b"deep\n").expect("write");
}

#[test]
fn deep_nesting_copies_or_fails_clearly() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\nCOPY d /d/\n", &[]);
    deep_tree(&ctx, 100);
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    let bottom: PathBuf = std::iter::repeat_n("d", 100).collect::<PathBuf>().join("f");
    assert_eq!(
        fs::read_to_string(out.join(&bottom)).expect("deep file"),
        "deep\n"
    );
    // deeper than PATH_MAX allows a path to be: one clear line, no crash, no partial output
    let ctx2 = env.path("ctx2");
    fs::create_dir_all(&ctx2).expect("ctx2");
    fs::write(ctx2.join("Dockerfile"), "FROM scratch\nCOPY d /d/\n").expect("df");
    deep_tree(&ctx2, 2100);
    let (res, out) = build(&env, &ctx2, &[]);
    if res.status.success() {
        let bottom: PathBuf = std::iter::repeat_n("d", 2100)
            .collect::<PathBuf>()
            .join("f");
        assert!(
            nix::sys::stat::lstat(&out.join(bottom)).is_ok() || out.exists(),
            "a successful deep copy has its output"
        );
    } else {
        assert_eq!(res.status.code(), Some(1), "{}", common::show(&res));
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{}", common::show(&res));
        assert!(!out.exists(), "no partial output");
    }
}

#[test]
fn an_exception_below_an_excluded_linked_directory_reaches_nothing_outside() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(
        &env,
        "FROM scratch\nCOPY . /all/\n",
        &[(".dockerignore", "link\n!link/secret\n"), ("f", "f\n")],
    );
    symlink(env.path("outside/dir"), ctx.join("link")).expect("symlink");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert!(out.join("all/f").is_file());
    assert!(
        fs::symlink_metadata(out.join("all/link")).is_err(),
        "excluded"
    );
    nothing_leaked(&env, &out);
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY link/secret /s\n",
    )
    .expect("df");
    let (res, out) = build(&env, &ctx, &[]);
    fails_with(&res, "link/secret");
    nothing_leaked(&env, &out);
}

#[test]
fn a_dockerfile_outside_the_context_is_read_but_copies_stay_inside() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(
        &env,
        "FROM scratch\nCOPY f /from-context-dockerfile\n",
        &[("f", "ctx f\n")],
    );
    let df = env.path("outside-df/Dockerfile");
    fs::create_dir_all(df.parent().expect("parent")).expect("mkdir");
    fs::write(&df, "FROM scratch\nCOPY Dockerfile f /got/\n").expect("df");
    fs::write(env.path("outside-df/f"), SECRET).expect("beside the Dockerfile");
    let (res, out) = build(&env, &ctx, &["-f", &df.display().to_string()]);
    succeeded(&res);
    // `Dockerfile` and `f` are the context's, not the ones beside the -f file
    assert_eq!(fs::read_to_string(out.join("got/f")).expect("f"), "ctx f\n");
    assert_eq!(
        fs::read_to_string(out.join("got/Dockerfile")).expect("Dockerfile"),
        "FROM scratch\nCOPY f /from-context-dockerfile\n"
    );
    nothing_leaked(&env, &out);
}

/// A tar with the given raw entries (names written as they are, `..` and `/` included).
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().expect("gnu").name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name_literal(link).expect("link name");
        }
        h.set_cksum();
        b.append(&h, *data).expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn add_of_a_local_archive_that_climbs_out_writes_nothing_outside() {
    let env = env_with_secret(TestEnv::new());
    let cases: [(&str, Vec<u8>); 4] = [
        (
            "dotdot.tar",
            raw_tar(&[("../../../escaped", tar::EntryType::Regular, "", b"x\n")]),
        ),
        (
            "abs.tar",
            raw_tar(&[(
                "/tmp/hoist-hostile-escaped",
                tar::EntryType::Regular,
                "",
                b"x\n",
            )]),
        ),
        (
            "through-link.tar",
            raw_tar(&[
                ("l", tar::EntryType::Symlink, "../../../../../../", b""),
                ("l/escaped", tar::EntryType::Regular, "", b"x\n"),
            ]),
        ),
        (
            "hardlink.tar",
            raw_tar(&[("h", tar::EntryType::Link, "../../../../outside/secret", b"")]),
        ),
    ];
    for (name, data) in cases {
        let ctx = context(&env, &format!("FROM scratch\nADD {name} /x/\n"), &[]);
        fs::write(ctx.join(name), data).expect("archive");
        let (res, out) = build(&env, &ctx, &[]);
        if res.status.success() {
            // an absolute name is taken relative to the destination, as docker does
            for e in walkdir::WalkDir::new(&out).into_iter().flatten() {
                assert!(!e.path_is_symlink() || name == "through-link.tar", "{name}");
            }
        } else {
            fails_with(&res, name);
        }
        nothing_leaked(&env, &out);
        assert!(!env.path("escaped").exists(), "{name}");
        assert!(!env.path("ctx/escaped").exists(), "{name}");
        assert!(!Path::new("/tmp/hoist-hostile-escaped").exists(), "{name}");
        assert!(!Path::new("/escaped").exists(), "{name}");
    }
}

#[test]
fn an_ignore_file_linked_out_of_the_context_is_not_read() {
    let env = env_with_secret(TestEnv::new());
    // a line that is not a valid pattern: an error quoting it would show the secret
    fs::write(
        env.path("outside/patterns"),
        "SECRET-OUTSIDE-THE-CONTEXT [\n",
    )
    .expect("write");
    let ctx = context(&env, "FROM scratch\nCOPY f /f\n", &[("f", "f\n")]);
    symlink(env.path("outside/patterns"), ctx.join(".dockerignore")).expect("symlink");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert!(!String::from_utf8_lossy(&res.stderr).contains("SECRET"));
    assert_eq!(fs::read_to_string(out.join("f")).expect("f"), "f\n");
    // a link inside the context is followed there
    fs::write(ctx.join("ignore.txt"), "f\n").expect("write");
    fs::remove_file(ctx.join(".dockerignore")).expect("rm");
    symlink("ignore.txt", ctx.join(".dockerignore")).expect("symlink");
    let (res, _) = build(&env, &ctx, &[]);
    fails_with(&res, "COPY f /f: f: excluded by .dockerignore line 1");
}

#[test]
fn an_ignore_file_that_is_a_fifo_does_not_hang_the_build() {
    let env = env_with_secret(TestEnv::new());
    let ctx = context(&env, "FROM scratch\nCOPY f /f\n", &[("f", "f\n")]);
    nix::unistd::mkfifo(
        &ctx.join(".dockerignore"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let (res, _) = build(&env, &ctx, &[]);
    fails_with(&res, "`.dockerignore`: not a regular file");
}

#[test]
fn a_run_bind_mount_of_the_context_stays_inside_it() {
    let env = env_with_secret(TestEnv::new());
    env.import_busybox("localhost/busybox");
    let ctx = context(&env, "FROM scratch\n", &[("in/f", "inside\n")]);
    symlink(env.path("outside/secret"), ctx.join("abs")).expect("symlink");
    symlink(env.path("outside/dir"), ctx.join("in/outdir")).expect("symlink");
    for (src, what) in [
        ("abs", "abs: not in the build context"),
        ("in/outdir/secret", "not in the build context"),
    ] {
        fs::write(
            ctx.join("Dockerfile"),
            format!("FROM localhost/busybox\nRUN --mount=type=bind,source={src},target=/m cat /m > /got\n"),
        )
        .expect("Dockerfile");
        let (res, out) = build(&env, &ctx, &[]);
        fails_with(&res, what);
        nothing_leaked(&env, &out);
    }
    // a directory mount: the link inside is a link, and reading through it inside the
    // container reaches the container's own path, not the host's
    fs::write(
        ctx.join("Dockerfile"),
        "FROM localhost/busybox\nRUN --mount=type=bind,source=in,target=/m sh -c 'cat /m/f > /got; cat /m/outdir/secret > /leak 2>/dev/null; true'\n",
    )
    .expect("Dockerfile");
    let (res, out) = build(&env, &ctx, &[]);
    succeeded(&res);
    assert_eq!(
        fs::read_to_string(out.join("got")).expect("got"),
        "inside\n"
    );
    nothing_leaked(&env, &out);
}
