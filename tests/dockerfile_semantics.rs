//! What a Dockerfile means, checked against BuildKit's Dockerfile reference
//! (docs.docker.com/reference/dockerfile, vendored by moby/buildkit as
//! `frontend/dockerfile/docs/reference.md`) and, where the reference is silent, BuildKit's
//! `dockerfile2llb` source. Each test names the section it follows. The builds are config-only
//! (`FROM scratch`, no RUN), so they need no sandbox.

mod common;

use std::fs;
use std::path::PathBuf;

use common::TestEnv;

/// Writes `ctx/Dockerfile` with `dockerfile` (and the given files) into a fresh environment.
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

/// Builds `dockerfile` as `localhost/t` and returns the image's config (`.config`).
fn config_of(dockerfile: &str) -> serde_json::Value {
    let env = TestEnv::new();
    context(&env, dockerfile, &[]);
    env.ok(["build", "--progress", "plain", "-t", "localhost/t", "ctx"]);
    let out = env.ok(["inspect", "localhost/t"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0]["Config"].clone()
}

fn env_of(cfg: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(cfg["Env"].clone()).expect("Env is a list")
}

/// Reference, EXPOSE: "EXPOSE <port> [<port>/<protocol>...]"; BuildKit's `parsePort`
/// (dockerfile2llb/convert_expose.go) writes one `ExposedPorts` key per port of a range and
/// accepts (and drops) a host-port mapping such as `8080:80`, with an `ExposeInvalidFormat`
/// warning.
#[test]
fn expose_ranges_give_one_key_per_port() {
    let cfg = config_of("FROM scratch\nEXPOSE 8000-8002 7000-7001/udp 8080:80 53/UDP\n");
    assert_eq!(
        cfg["ExposedPorts"],
        serde_json::json!({
            "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {},
            "7000/udp": {}, "7001/udp": {},
            "80/tcp": {}, "53/udp": {}
        })
    );
}

/// Reference, "escape": the escape directive sets the character used to escape characters in
/// the Dockerfile, so with `` ` `` a backslash is an ordinary character everywhere (its own
/// example is `COPY testfile.txt c:\` / `RUN dir c:\`), and `` `$ `` is a literal dollar.
#[test]
fn escape_directive_drives_word_expansion() {
    let cfg = config_of(
        "# escape=`\nFROM scratch\nENV A=a\\b D=`$HOME Q=\"x`\"y\"\nWORKDIR C:\\work\nLABEL l=c:\\dir\n",
    );
    let env = env_of(&cfg);
    assert!(env.contains(&"A=a\\b".to_string()), "{env:?}");
    assert!(env.contains(&"D=$HOME".to_string()), "{env:?}");
    assert!(env.contains(&"Q=x\"y".to_string()), "{env:?}");
    // on Linux `C:\work` is a relative path: it joins `/` with the backslash kept
    assert_eq!(cfg["WorkingDir"], "/C:\\work");
    assert_eq!(cfg["Labels"]["l"], "c:\\dir");
}

/// Reference, "Environment replacement": "Environment variable substitution use the same value
/// for each variable throughout the entire instruction" — `ENV abc=bye def=$abc` gives
/// `def=hello` when `abc` was `hello` before. BuildKit's `EnvCommand.Expand` also expands the
/// keys (`expandKvp`), as it does for LABEL.
#[test]
fn env_pairs_see_the_values_from_before_the_instruction() {
    let cfg = config_of(
        "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\nARG K=key\nENV $K=v\nLABEL $K=w\n",
    );
    let env = env_of(&cfg);
    assert!(env.contains(&"abc=bye".to_string()), "{env:?}");
    assert!(env.contains(&"def=hello".to_string()), "{env:?}");
    assert!(env.contains(&"ghi=bye".to_string()), "{env:?}");
    assert!(env.contains(&"key=v".to_string()), "{env:?}");
    assert_eq!(cfg["Labels"]["key"], "w");
}

/// `docker import --change 'CMD ["sh"]' --change 'ENTRYPOINT ["/e"]'` keeps both: docker
/// applies the changes like a Dockerfile stage, where an ENTRYPOINT clears only a CMD that
/// was not set in the same stage.
#[test]
fn import_keeps_cmd_given_before_entrypoint() {
    let env = TestEnv::new();
    let tar = common::busybox_rootfs();
    env.ok([
        "import".as_ref(),
        "-c".as_ref(),
        "CMD [\"sh\"]".as_ref(),
        "-c".as_ref(),
        "ENTRYPOINT [\"/bin/env\"]".as_ref(),
        tar.as_os_str(),
        "localhost/imp".as_ref(),
    ]);
    let out = env.ok(["inspect", "localhost/imp"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        v[0]["Config"]["Entrypoint"],
        serde_json::json!(["/bin/env"])
    );
}

/// Builds `dockerfile` with the context `files`, exporting the file system to `out/`; returns
/// the files found there (relative, sorted) or the build's stderr when it fails.
fn export(env: &TestEnv, dockerfile: &str, files: &[(&str, &str)]) -> Result<Vec<String>, String> {
    context(env, dockerfile, files);
    let out_dir = env.path("out");
    let _ = fs::remove_dir_all(&out_dir);
    let mut cmd = env.cmd([
        "build".as_ref(),
        "--progress".as_ref(),
        "plain".as_ref(),
        "-o".as_ref(),
        format!("type=local,dest={}", out_dir.display()).as_ref() as &std::ffi::OsStr,
        "ctx".as_ref(),
    ]);
    let out = common::run(&mut cmd);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut found = Vec::new();
    let mut todo = vec![out_dir.clone()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).expect("read out") {
            let p = e.expect("entry").path();
            if fs::symlink_metadata(&p).expect("lstat").is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(&out_dir).expect("under out");
                found.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Reference, "COPY --parents": its own example `COPY --parents ./src/**/*.txt /parents/`
/// ("The `**` wildcard matches any number of path components, including none").
#[test]
fn copy_parents_with_double_star() {
    let env = TestEnv::new();
    let files = [
        ("src/a.txt", "a"),
        ("src/x/b.txt", "b"),
        ("src/x/y/c.txt", "c"),
        ("src/x/d.md", "d"),
    ];
    let got = export(
        &env,
        "FROM scratch\nCOPY --parents ./src/**/*.txt /parents/\n",
        &files,
    )
    .expect("builds");
    assert_eq!(
        got,
        [
            "parents/src/a.txt",
            "parents/src/x/b.txt",
            "parents/src/x/y/c.txt"
        ]
    );
    let got = export(&env, "FROM scratch\nCOPY src/**/*.txt /flat/\n", &files).expect("builds");
    assert_eq!(got, ["flat/a.txt", "flat/b.txt", "flat/c.txt"]);
}

/// Reference, "Copying from the build context": "a source path … that navigates outside the
/// build context, such as `COPY ../something /something`, automatically removes any parent
/// directory navigation (`../`)".
#[test]
fn copy_strips_parent_navigation() {
    let env = TestEnv::new();
    let got = export(
        &env,
        "FROM scratch\nCOPY ../../a.txt /x\nCOPY sub/../../b.txt /y\n",
        &[("a.txt", "a"), ("b.txt", "b"), ("sub/keep", "")],
    )
    .expect("builds");
    assert_eq!(got, ["x", "y"]);
}

/// BuildKit refuses a variable in `COPY --from` ("variable expansion is not supported for
/// --from", dockerfile_copy_test.go `testDockerfileCopyFromArgs`) and in `RUN --mount from=`
/// ("'from' doesn't support variable expansion", dockerfile_mount_test.go), and a `COPY
/// --from` naming a stage defined later ("needs to be defined before current stage",
/// dockerfile_multistage_test.go).
#[test]
fn from_with_a_variable_or_a_later_stage_is_refused() {
    let env = TestEnv::new();
    let e = export(
        &env,
        "FROM scratch AS x\nFROM scratch\nARG V=x\nCOPY --from=$V a.txt /x\n",
        &[("a.txt", "a")],
    )
    .expect_err("refused");
    assert!(
        e.contains("Dockerfile:4:6: --from=$V: variable expansion is not supported for --from"),
        "{e}"
    );
    let e = export(
        &env,
        "FROM scratch AS x\nFROM scratch\nARG V=x\nRUN --mount=type=bind,from=$V,target=/x true\n",
        &[],
    )
    .expect_err("refused");
    assert!(
        e.contains("'from' doesn't support variable expansion"),
        "{e}"
    );
    let e = export(
        &env,
        "FROM scratch AS a\nCOPY --from=later a.txt /x\nFROM scratch AS later\nFROM a\n",
        &[("a.txt", "a")],
    )
    .expect_err("refused");
    assert!(
        e.contains("stage `later` is not defined before this one"),
        "{e}"
    );
}

/// BuildKit accepts a stage name used twice (its `DuplicateStageName` check warns): a later
/// reference means the latest stage of that name.
#[test]
fn duplicate_stage_names_mean_the_latest() {
    let env = TestEnv::new();
    let got = export(
        &env,
        "FROM scratch AS b\nCOPY a.txt /first\nFROM scratch AS b\nCOPY a.txt /second\nFROM b\n",
        &[("a.txt", "a")],
    )
    .expect("builds");
    assert_eq!(got, ["second"]);
}

/// `FROM --platform=` with this machine's platform and a variant BuildKit runs natively
/// (`linux/amd64/v2` on x86-64; `linux/arm64/v8` on arm64) is accepted.
#[test]
fn platform_with_a_native_variant_is_accepted() {
    let env = TestEnv::new();
    let p = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64/v2",
        "aarch64" => "linux/arm64/v8",
        other => panic!("no native variant known for {other}"),
    };
    let got = export(
        &env,
        &format!("FROM --platform={p} scratch\nCOPY a.txt /a\n"),
        &[("a.txt", "a")],
    )
    .expect("builds");
    assert_eq!(got, ["a"]);
}

/// Reference, "RUN --mount": the value is a CSV record, so a field quoted with `"` keeps its
/// commas (BuildKit's `parseMount` reads it with `csvvalue`); values expand after the split.
#[test]
fn mount_csv_field_with_commas() {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    context(
        &env,
        "FROM busybox\nARG F=a,b.txt\nRUN --mount='type=bind,\"source=a,b.txt\",target=/x' cp /x /one\nRUN --mount=type=bind,source=$F,target=/y cp /y /two\n",
        &[("a,b.txt", "hi")],
    );
    env.ok([
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    assert_eq!(fs::read_to_string(env.path("out/one")).expect("one"), "hi");
    assert_eq!(fs::read_to_string(env.path("out/two")).expect("two"), "hi");
}

/// BuildKit joins a relative `RUN --mount` target with WORKDIR, and mounts a bind mount
/// without `target` at WORKDIR (`dispatchRunMounts`, convert_runmount.go: `filepath.Join("/",
/// dir, mount.Target)`; a target of `/` is refused).
#[test]
fn mount_targets_are_relative_to_workdir() {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    context(
        &env,
        "FROM busybox\nWORKDIR /w\nRUN --mount=type=bind,source=a.txt,target=in.txt cp in.txt /one\nRUN --mount=type=bind cp /w/a.txt /two\n",
        &[("a.txt", "hi")],
    );
    env.ok([
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    assert_eq!(fs::read_to_string(env.path("out/one")).expect("one"), "hi");
    assert_eq!(fs::read_to_string(env.path("out/two")).expect("two"), "hi");
    context(&env, "FROM busybox\nRUN --mount=type=bind true\n", &[]);
    let err = env.fails(1, ["build", "--progress", "plain", "ctx"]);
    assert!(err.contains("the working directory is `/`"), "{err}");
}

/// Reference, "COPY --chmod": symbolic notation such as `g=u` (its own example `COPY
/// --chmod=g=u config/ /config/`) copies the user class's bits to the group, as chmod(1).
#[test]
fn copy_chmod_copies_a_class() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let dir = context(
        &env,
        "FROM scratch\nCOPY --chmod=g=u a.sh /a.sh\nCOPY --chmod=o+g a.sh /b.sh\n",
        &[("a.sh", "x")],
    );
    fs::set_permissions(dir.join("a.sh"), fs::Permissions::from_mode(0o740)).expect("chmod");
    env.ok([
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    let mode = |p: &str| fs::metadata(env.path(p)).expect(p).permissions().mode() & 0o7777;
    assert_eq!(mode("out/a.sh"), 0o770);
    assert_eq!(mode("out/b.sh"), 0o744);
}

/// Reference, VOLUME, "Notes about specifying volumes": "If any build steps change the data
/// within the volume after it has been declared, those changes will be discarded when using
/// the legacy builder. When using Buildkit, the changes will instead be kept." hoist follows
/// BuildKit, for a volume the image already has (its contents and its owner) and for one a
/// later RUN makes.
#[test]
fn run_changes_under_a_volume_are_kept() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    context(
        &env,
        "FROM busybox\nRUN mkdir /data && echo 1 > /data/x\nVOLUME /data /fresh\nRUN echo 2 > /data/x && echo y > /data/y && chown 7:7 /data && mkdir /fresh && echo z > /fresh/z\nCOPY a.txt /data/\n",
        &[("a.txt", "a")],
    );
    env.ok([
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    let read = |p: &str| fs::read_to_string(env.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("out/data/x"), "2\n");
    assert_eq!(read("out/data/y"), "y\n");
    assert_eq!(read("out/fresh/z"), "z\n");
    assert_eq!(read("out/data/a.txt"), "a");
    assert_eq!(fs::metadata(env.path("out/data")).expect("data").uid(), 7);
}

/// BuildKit's copy (tonistiigi/fsutil `copy.go`, which the Dockerfile's COPY and ADD run
/// through) never replaces an existing entry by one of the other kind: a file where a
/// directory is fails with "cannot replace to directory … with file", a directory where a
/// non-directory is (a symbolic link included: moby/buildkit#2626, moby/moby#47367) with
/// "cannot copy to non-directory". The destination itself is resolved through symlinks
/// (`RootPath`), and a file copied to an existing directory goes into it (reference, COPY:
/// "If <dest> doesn't end with a trailing slash, it will be considered a regular file" unless
/// it is a directory already).
#[test]
fn copy_never_replaces_an_entry_of_the_other_kind() {
    let env = TestEnv::new();
    let files = [
        ("d/sub/in", "in"),
        ("d/file", "f"),
        ("f", "top"),
        ("onto-dir/sub", "a file named like the directory"),
        ("onto-file/file/x", "a directory named like the file"),
        (
            "onto-link/link/x",
            "a directory where the image has a symlink",
        ),
    ];
    let base = "FROM scratch\nCOPY d/ /x/\n";
    context(&env, "", &files);
    std::os::unix::fs::symlink("sub", env.path("ctx/d/link")).expect("symlink");
    // what works: a file onto a directory goes into it; a directory onto a symlink to a
    // directory at the destination itself follows it
    let got = export(
        &env,
        &format!("{base}COPY f /x/sub\nCOPY onto-file/file /x/link\n"),
        &files,
    )
    .expect("builds");
    assert_eq!(
        got,
        ["x/file", "x/link", "x/sub/f", "x/sub/in", "x/sub/x"],
        "{got:?}"
    );
    let e = export(&env, &format!("{base}COPY onto-dir/ /x/\n"), &files).expect_err("refused");
    assert!(
        e.contains(
            "Dockerfile:3: COPY onto-dir/ /x/: cannot replace directory `/x/sub` with a file"
        ),
        "{e}"
    );
    let e = export(&env, &format!("{base}COPY onto-file/ /x/\n"), &files).expect_err("refused");
    assert!(e.contains("cannot copy to non-directory `/x/file`"), "{e}");
    let e = export(&env, &format!("{base}COPY onto-link/ /x/\n"), &files).expect_err("refused");
    assert!(e.contains("cannot copy to non-directory `/x/link`"), "{e}");
    // a heredoc file is checked the same way
    let e = export(&env, &format!("{base}COPY <<EOF /x/sub\nhi\nEOF\n"), &files);
    assert_eq!(
        e.expect("into the directory"),
        ["x/file", "x/link", "x/sub/EOF", "x/sub/in"]
    );
}

/// A gzip tar of `(path, uid)` files, each holding its own path.
fn tarball(entries: &[(&str, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, uid) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(path.len() as u64);
        h.set_mode(0o644);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, path, path.as_bytes())
            .expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gzip")
}

/// Reference, "ADD --chown --chmod" (as for COPY: "--chown … specify a given username,
/// groupname, or UID/GID combination to request specific ownership of the copied content"):
/// BuildKit applies it to what a local archive unpacks to (its file op's unpack,
/// `mapArchiveHeaderOwner`: "explicit --chown values override the header ownership"), and to
/// the destination directory it creates. Reference, "ADD --unpack": "--unpack=true" unpacks a
/// remote archive too.
#[test]
fn add_chown_owns_unpacked_archives_and_unpack_fetches_urls() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    let dir = context(&env, "", &[]);
    fs::write(dir.join("a.tar.gz"), tarball(&[("a/one", 7), ("two", 0)])).expect("tar");
    let remote = tarball(&[("r/three", 9)]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 1024];
        let _ = std::io::Read::read(&mut s, &mut buf);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            remote.len()
        );
        std::io::Write::write_all(&mut s, head.as_bytes()).expect("write");
        std::io::Write::write_all(&mut s, &remote).expect("write");
    });
    let got = export(
        &env,
        &format!("FROM scratch\nADD --chown=1234:5678 a.tar.gz /opt/\nADD --unpack=true http://127.0.0.1:{port}/r.tar.gz /web/\n"),
        &[],
    )
    .expect("builds");
    server.join().expect("server");
    assert_eq!(got, ["opt/a/one", "opt/two", "web/r/three"]);
    let owner = |p: &str| {
        let m = fs::symlink_metadata(env.path(p)).expect(p);
        (m.uid(), m.gid())
    };
    // (a parent the archive does not list, `a`, is made as BuildKit's `MkdirAll` makes it)
    for p in ["out/opt", "out/opt/a/one", "out/opt/two"] {
        assert_eq!(owner(p), (1234, 5678), "{p}");
    }
    assert_eq!(owner("out/web/r/three"), (9, 9));
    assert_eq!(
        fs::read_to_string(env.path("out/web/r/three")).expect("three"),
        "r/three"
    );
}

/// Reference, "COPY --link": "your source files are copied into an empty destination
/// directory. That directory is turned into a layer that is linked on top of your previous
/// state", and under "Incompatibilities with --link=false": "if in previous state the
/// destination directory was a path that contained a symlink, COPY/ADD can not follow it. In
/// the final image the destination path created with --link will always be a path containing
/// only directories." So the image's symlink is not followed and the parents are new
/// directories with the default mode, not the image's.
#[test]
fn copy_link_writes_as_into_an_empty_tree() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let files = [("d/sub/in", "in"), ("priv/keep", "k"), ("f", "top")];
    context(&env, "", &files);
    std::os::unix::fs::symlink("sub", env.path("ctx/d/link")).expect("symlink");
    fs::set_permissions(env.path("ctx/priv"), fs::Permissions::from_mode(0o700)).expect("chmod");
    let base = "FROM scratch\nCOPY d/ /x/\nCOPY priv/ /p/\n";
    let mode = |p: &str| {
        fs::symlink_metadata(env.path(p))
            .expect(p)
            .permissions()
            .mode()
            & 0o7777
    };
    // plain COPY follows the image's symlink and keeps the image's directory mode
    let got = export(
        &env,
        &format!("{base}COPY f /x/link/f\nCOPY f /p/g\n"),
        &files,
    )
    .expect("builds");
    assert_eq!(got, ["p/g", "p/keep", "x/link", "x/sub/f", "x/sub/in"]);
    assert_eq!(mode("out/p"), 0o700);
    let got = export(
        &env,
        &format!("{base}COPY --link f /x/link/f\nCOPY --link f /p/g\n"),
        &files,
    )
    .expect("builds");
    assert_eq!(got, ["p/g", "p/keep", "x/link/f", "x/sub/in"]);
    assert!(fs::symlink_metadata(env.path("out/x/link"))
        .expect("link")
        .is_dir());
    assert_eq!(mode("out/p"), 0o755);
}

/// Gives a context file an mtime with a fraction of a second.
fn set_mtime(p: &std::path::Path, secs: u64, nanos: u32) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos);
    fs::File::options()
        .write(true)
        .open(p)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

/// Builds `ctx` with `--timestamp ts` and extra arguments; returns the image ID (`-q`).
fn build_at(env: &TestEnv, ts: &str, extra: &[&str]) -> String {
    let mut args = vec!["build", "-q", "--timestamp", ts];
    args.extend_from_slice(extra);
    args.push("ctx");
    env.ok(args).trim().to_string()
}

/// BuildKit's reproducible builds (docs.docker.com/build/ci/github-actions/reproducible-builds,
/// "SOURCE_DATE_EPOCH … the timestamp of the files in the layers is set to it when later") and
/// the image-spec (a layer is its tar): the layer dir later steps, `COPY --from` and `hoist
/// run` see holds what the blob holds (whole-second, clamped times), so a child built on a
/// base built here is the very image built on the same base loaded from an archive.
#[test]
fn timestamp_child_is_the_same_on_a_built_or_a_loaded_base() {
    let a = TestEnv::new();
    a.import_busybox("localhost/busybox");
    let dir = context(
        &a,
        "FROM localhost/busybox\nCOPY a.txt /a.txt\nRUN touch /b\n",
        &[("a.txt", "a")],
    );
    set_mtime(&dir.join("a.txt"), 1_600_000_000, 500_000_000);
    build_at(&a, "1700000000", &["-t", "localhost/base"]);
    a.ok(["save", "-o", "base.tar", "localhost/base"]);
    let b = TestEnv::new();
    b.ok([
        "load".as_ref(),
        "-i".as_ref(),
        a.path("base.tar").as_os_str(),
    ]);
    let child = "FROM localhost/base\nRUN stat -c '%y %n' /a.txt /b /bin/sh > /times\n";
    context(&a, child, &[]);
    context(&b, child, &[]);
    let built_here = build_at(&a, "1700000000", &["-t", "localhost/child"]);
    let loaded = build_at(&b, "1700000000", &["-t", "localhost/child"]);
    assert_eq!(
        built_here, loaded,
        "the child differs with the base's origin"
    );
    a.ok([
        "build",
        "-o",
        "type=local,dest=out",
        "--timestamp",
        "1700000000",
        "ctx",
    ]);
    let times = fs::read_to_string(a.path("out/times")).expect("times");
    assert!(times.contains("2020-09-13 12:26:40.000000000"), "{times}");
}

/// `--output type=local` applies `--timestamp` as `type=tar` does: no file of the result (the
/// base image's included) is later than it.
#[test]
fn timestamp_applies_to_a_local_output() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    let dir = context(
        &env,
        "FROM localhost/busybox\nCOPY a.txt /a.txt\n",
        &[("a.txt", "a")],
    );
    set_mtime(&dir.join("a.txt"), 1_600_000_000, 0);
    // a base built without a timestamp: its files keep their times
    env.ok(["build", "-q", "-t", "localhost/base", "ctx"]);
    context(&env, "FROM localhost/base\n", &[]);
    env.ok([
        "build",
        "-o",
        "type=local,dest=out",
        "--timestamp",
        "1000",
        "ctx",
    ]);
    env.ok([
        "build",
        "-o",
        "type=tar,dest=out.tar",
        "--timestamp",
        "1000",
        "ctx",
    ]);
    let mut ar = tar::Archive::new(fs::File::open(env.path("out.tar")).expect("tar"));
    let mut n = 0;
    for e in ar.entries().expect("entries") {
        let e = e.expect("entry");
        let path = e.path().expect("path").into_owned();
        let rel = path.to_string_lossy().trim_start_matches("./").to_string();
        if rel.is_empty() {
            continue;
        }
        let m = fs::symlink_metadata(env.path("out").join(&rel)).expect("in the local output");
        assert_eq!(
            m.mtime(),
            e.header().mtime().expect("mtime") as i64,
            "{rel}"
        );
        assert!(m.mtime() <= 1000, "{rel}");
        n += 1;
    }
    assert!(n > 100, "busybox's files are in both outputs");
}

/// What hoist does not do yet is refused with one line naming the instruction, never accepted
/// with other semantics: reference "RUN --mount=type=ssh", "RUN --security", "RUN --device",
/// "Adding files from a Git repository" (and `--keep-git-dir`), a cache mount's `from=` and a
/// secret's `env=`.
#[test]
fn unsupported_features_are_refused_with_one_line() {
    let env = TestEnv::new();
    for (line, says) in [
        (
            "RUN --mount=type=ssh true",
            "RUN --mount=type=ssh is not supported",
        ),
        (
            "RUN --security=insecure true",
            "RUN --security=insecure is not supported",
        ),
        (
            "RUN --device=vendor.com/gpu=all true",
            "RUN --device is not supported",
        ),
        (
            "ADD https://github.com/x/y.git /src",
            "git sources are not supported",
        ),
        (
            "ADD --keep-git-dir=true https://github.com/x/y.git /src",
            "git sources are not supported",
        ),
        (
            "RUN --mount=type=cache,target=/c,from=x true",
            "a cache mount seeded `from=` another stage or image is not supported",
        ),
        (
            "RUN --mount=type=secret,id=k,env=K true",
            "secrets as environment variables (`env=`) are not supported",
        ),
    ] {
        context(
            &env,
            &format!("FROM scratch AS x\nFROM scratch\n{line}\n"),
            &[],
        );
        let err = env.fails(1, ["build", "--progress", "plain", "ctx"]);
        assert!(
            err.contains("Dockerfile:3:") && err.contains(says),
            "{line}: {err}"
        );
    }
}

/// Reference, "RUN --network": "`none`: the command is run with no network access (`lo` is
/// still available, but is isolated to this process)"; `host` uses the host's network.
#[test]
fn run_network_none_has_only_loopback() {
    let env = TestEnv::new();
    env.import_busybox("localhost/busybox");
    context(
        &env,
        "FROM busybox\nRUN --network=none sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" > /none'\nRUN --network=host sh -c 'tail -n +3 /proc/net/dev | wc -l > /host'\n",
        &[],
    );
    env.ok([
        "build",
        "--progress",
        "plain",
        "-o",
        "type=local,dest=out",
        "ctx",
    ]);
    assert_eq!(
        fs::read_to_string(env.path("out/none")).expect("none"),
        "lo\n"
    );
    let host: usize = fs::read_to_string(env.path("out/host"))
        .expect("host")
        .trim()
        .parse()
        .expect("a count");
    let here = fs::read_to_string("/proc/net/dev")
        .expect("/proc/net/dev")
        .lines()
        .count()
        - 2;
    assert_eq!(host, here, "--network=host shows the host's interfaces");
}

/// BuildKit unpacks an `ADD` archive into the image through its symlinks (its file op's
/// `applyRootArchive` resolves each entry's parents, and a directory entry's own name, with
/// `resolveRootPath`): on a merged-/usr image, where `/bin` links to `usr/bin`, an archive's
/// `bin/tool` lands in `/usr/bin` and `/bin` stays a link, so `/bin/sh` is still there.
#[test]
fn add_archive_lands_through_the_image_symlinks() {
    let env = TestEnv::new();
    let base = {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, "usr/bin/", &b""[..]).expect("dir");
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o755);
        h.set_size(2);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, "usr/bin/sh", &b"sh"[..])
            .expect("file");
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, "bin", "usr/bin").expect("link");
        b.into_inner().expect("tar")
    };
    fs::write(env.path("base.tar"), base).expect("base");
    env.ok(["import", "base.tar", "localhost/merged-usr"]);
    let dir = context(&env, "FROM localhost/merged-usr\nADD tools.tar.gz /\n", &[]);
    fs::write(dir.join("tools.tar.gz"), tarball(&[("bin/tool", 0)])).expect("tools");
    let got = export(&env, "FROM localhost/merged-usr\nADD tools.tar.gz /\n", &[]).expect("builds");
    assert_eq!(got, ["bin", "usr/bin/sh", "usr/bin/tool"]);
    assert!(fs::symlink_metadata(env.path("out/bin"))
        .expect("bin")
        .file_type()
        .is_symlink());
}
