//! The cases of `fixtures/compat/`: small contexts that together use every instruction and flag
//! of the `hoist build` issue. Each is named after what it checks; generated inputs (hard links,
//! setuid files, archives, the 2,000-file tree) are made here at run time, not committed.

use super::{Case, Difference, Outcome};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compat")
        .join(name)
}

fn case(name: &str) -> Case {
    Case {
        name: name.to_string(),
        fixture: Some(fixture(name)),
        dockerfile: "Dockerfile".to_string(),
        buildah_dockerfile: None,
        bases: Vec::new(),
        args: Vec::new(),
        generate: None,
        differences: Vec::new(),
        outcome: Outcome::Image,
    }
}

const OLD_BUILDAH: &str =
    "Debian's buildah 1.28 cannot read this syntax (heredocs, `COPY --parents`, \
    `--exclude`, `RUN --network` came later); Dockerfile.buildah spells the same steps without it";

/// Why hoist keeps setuid/setgid bits of context files.
pub const SETUID_REASON: &str = "Docker keeps the setuid and setgid bits of a context file on COPY \
    (Buildah's conformance case 43 checks exactly this against Docker); Debian's buildah 1.28 drops \
    them; hoist follows Docker";

const WORKDIR_REASON: &str = "Docker creates a WORKDIR even when no later step uses it (documented: \
    \"it will be created even if it's not used in any subsequent Dockerfile instruction\"); buildah \
    1.28 creates it only when a RUN or COPY needs it; hoist follows Docker";

const SHELL_REASON: &str = "Docker wraps a shell-form CMD/ENTRYPOINT through the stage's SHELL; \
    buildah 1.28 always uses /bin/sh -c; hoist follows Docker as issue 5 asks";

const MOUNT_STUB_REASON: &str = "BuildKit removes the mount points it had to create for \
    RUN --mount once the step is done; buildah 1.28 leaves their parent directories behind; \
    hoist follows Docker";

fn gen_hard_links(ctx: &Path) {
    let d = ctx.join("linked");
    fs::create_dir_all(&d).expect("linked/");
    fs::write(d.join("one"), "shared content\n").expect("one");
    fs::hard_link(d.join("one"), d.join("two")).expect("hard link");
    fs::write(d.join("alone"), "alone\n").expect("alone");
}

fn gen_setuid(ctx: &Path) {
    let p = ctx.join("suid");
    fs::write(&p, "#!/bin/sh\n").expect("suid");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o4755)).expect("chmod u+s");
}

fn gen_tree(ctx: &Path) {
    for d in 0..20 {
        let dir = ctx.join(format!("tree/d{d:02}"));
        fs::create_dir_all(&dir).expect("tree dir");
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:03}")), format!("file {d} {f}\n")).expect("tree file");
        }
    }
}

/// A small tar with a directory, files of several modes and owners, and a symbolic link.
fn archive_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add =
        |path: &str, kind: tar::EntryType, mode: u32, uid: u64, data: &[u8], link: Option<&str>| {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(uid);
            h.set_mtime(1_600_000_000);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).expect("link name");
            }
            h.set_path(path).expect("path");
            h.set_cksum();
            b.append(&h, data).expect("append");
        };
    add("pkg/", tar::EntryType::Directory, 0o750, 1000, b"", None);
    add("pkg/bin/", tar::EntryType::Directory, 0o755, 0, b"", None);
    add(
        "pkg/bin/run",
        tar::EntryType::Regular,
        0o755,
        0,
        b"#!/bin/sh\necho run\n",
        None,
    );
    add(
        "pkg/conf",
        tar::EntryType::Regular,
        0o640,
        1000,
        b"key=value\n",
        None,
    );
    add(
        "pkg/conf.link",
        tar::EntryType::Symlink,
        0o777,
        0,
        b"",
        Some("conf"),
    );
    add("top.txt", tar::EntryType::Regular, 0o644, 0, b"top\n", None);
    b.into_inner().expect("tar")
}

fn gen_archives(ctx: &Path) {
    use std::io::Write;
    let tar = archive_bytes();
    fs::write(ctx.join("plain.tar"), &tar).expect("plain.tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gz");
    fs::write(ctx.join("data.tar.gz"), gz.finish().expect("gz")).expect("data.tar.gz");
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&tar).expect("bz2");
    fs::write(ctx.join("data.tar.bz2"), bz.finish().expect("bz2")).expect("data.tar.bz2");
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&tar).expect("xz");
    fs::write(ctx.join("data.tar.xz"), xz.finish().expect("xz")).expect("data.tar.xz");
}

/// Every case of `fixtures/compat`.
pub fn all() -> Vec<Case> {
    let mut v = Vec::new();

    let mut c = case("multi-stage-target");
    c.args = vec![
        "--target".into(),
        "final".into(),
        "--build-arg".into(),
        "VERSION=2.5".into(),
    ];
    v.push(c);

    v.push(case("whiteout-file"));
    v.push(case("opaque-dir"));

    let mut c = case("hard-links");
    c.generate = Some(Box::new(gen_hard_links));
    v.push(c);

    let mut c = case("setuid-file");
    c.generate = Some(Box::new(gen_setuid));
    c.differences = vec![Difference::Path(
        "/opt/suid",
        Some("/opt/suid file 4755 0:0 10 a8076d3d28d21e02"),
        SETUID_REASON,
    )];
    v.push(c);

    v.push(case("copy-chown-chmod"));
    v.push(case("copy-from-stage"));

    let mut c = case("copy-exclude");
    c.buildah_dockerfile = Some(("Dockerfile.buildah".into(), OLD_BUILDAH));
    v.push(c);

    let mut c = case("copy-parents");
    c.buildah_dockerfile = Some(("Dockerfile.buildah".into(), OLD_BUILDAH));
    v.push(c);

    let mut c = case("add-archives");
    c.generate = Some(Box::new(gen_archives));
    v.push(c);

    let mut c = case("heredocs");
    c.buildah_dockerfile = Some(("Dockerfile.buildah".into(), OLD_BUILDAH));
    v.push(c);

    let mut c = case("config-instructions");
    c.args = vec![
        "--label".into(),
        "org.example.cli=from-the-command-line".into(),
    ];
    c.differences = vec![
        Difference::Path("/srv", Some("/srv dir 0755 0:0"), WORKDIR_REASON),
        Difference::Path("/srv/app", Some("/srv/app dir 0755 0:0"), WORKDIR_REASON),
        Difference::Path(
            "/srv/app/sub",
            Some("/srv/app/sub dir 0755 0:0"),
            WORKDIR_REASON,
        ),
    ];
    v.push(c);

    let mut c = case("entrypoint-resets-cmd");
    c.differences = vec![Difference::Config(
        "Entrypoint",
        Some(r#"["/bin/sh", "-xc", "exec top -b"]"#),
        SHELL_REASON,
    )];
    v.push(c);

    let mut c = case("cmd-shell-form");
    c.differences = vec![Difference::Config(
        "Cmd",
        Some(r#"["/bin/ash", "-c", "echo \"$HOME\""]"#),
        SHELL_REASON,
    )];
    v.push(c);
    v.push(case("dockerignore"));
    let mut c = case("run-mounts");
    c.differences = vec![
        Difference::Path("/mnt", None, MOUNT_STUB_REASON),
        Difference::Path("/var/cache", None, MOUNT_STUB_REASON),
    ];
    v.push(c);

    let mut c = case("copy-2000-files");
    c.generate = Some(Box::new(gen_tree));
    v.push(c);

    v.push(case("copy-dest-rules"));
    v.push(case("symlinks"));
    let mut c = case("workdir-user");
    c.differences = vec![
        Difference::Path("/srv", Some("/srv dir 0755 0:0"), WORKDIR_REASON),
        Difference::Path(
            "/srv/created",
            Some("/srv/created dir 0755 0:0"),
            WORKDIR_REASON,
        ),
    ];
    v.push(c);

    let mut c = case("run-forms");
    c.buildah_dockerfile = Some(("Dockerfile.buildah".into(), OLD_BUILDAH));
    c.args = vec!["--secret".into(), "id=tok,src={ctx}/token.txt".into()];
    c.differences = vec![Difference::Path("/run/secrets", None, MOUNT_STUB_REASON)];
    v.push(c);

    let mut c = case("onbuild-triggers");
    c.bases = vec![("Dockerfile.base".into(), "localhost/onbuild-base".into())];
    v.push(c);

    let mut c = case("args-env-expansion");
    c.args = vec!["--build-arg".into(), "GREETING=hi".into()];
    v.push(c);

    v
}

/// The case named `name`.
pub fn get(name: &str) -> Case {
    all()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no compat case `{name}`"))
}
