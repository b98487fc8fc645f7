//! The image verbs through the real binary: import, images, tag, inspect, history, rmi, prune,
//! and every bad input leaving the store exactly as it was.

mod common;
mod storecheck;

use std::io::Write;
use std::process::Stdio;

use common::{assert_same, busybox_rootfs, run, show, TestEnv};

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}):\n{s}"))
}

/// The rows of a table printed by hoist, split on runs of 2+ spaces.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

#[test]
fn round_trip_import_images_tag_inspect_history_rmi() {
    let env = TestEnv::new();
    let tar = busybox_rootfs();
    let id = env
        .ok([
            "import".as_ref(),
            tar.as_os_str(),
            "busybox".as_ref(),
            "-c".as_ref(),
            "ENV GREETING=hello".as_ref(),
            "-c".as_ref(),
            "CMD [\"/bin/sh\",\"-c\",\"echo $GREETING\"]".as_ref(),
            "-c".as_ref(),
            "LABEL org.example.k=v".as_ref(),
            "-c".as_ref(),
            "EXPOSE 8080".as_ref(),
            "-c".as_ref(),
            "WORKDIR /tmp".as_ref(),
            "-c".as_ref(),
            "USER app".as_ref(),
            "-m".as_ref(),
            "the base".as_ref(),
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "import prints the full ID: {id}");

    // images: header and one row
    let table = env.ok(["images"]);
    let r = rows(&table);
    assert_eq!(r[0], ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    assert_eq!(r.len(), 2, "{table}");
    assert_eq!(r[1][0], "localhost/busybox");
    assert_eq!(r[1][1], "latest");
    assert_eq!(r[1][2], &id[..12]);
    assert!(r[1][3].ends_with(" ago"), "{table}");
    assert!(
        r[1][4].ends_with("MB") || r[1][4].ends_with("kB"),
        "{table}"
    );

    env.ok(["tag", "busybox", "app:v1", "quay.io/team/app"]);
    let q = env.ok(["images", "-q"]);
    assert_same("images -q", &format!("{}\n", &id[..12]), &q);
    let q = env.ok(["images", "-q", "--no-trunc"]);
    assert_same("images -q --no-trunc", &format!("sha256:{id}\n"), &q);
    let ids = json(&env.ok(["images", "-q", "--format", "json"]));
    assert_eq!(ids, serde_json::json!([&id[..12]]));
    let list = json(&env.ok(["images", "--format", "json"]));
    let names: Vec<&str> = list[0]["Names"]
        .as_array()
        .expect("names")
        .iter()
        .map(|n| n.as_str().expect("str"))
        .collect();
    assert_eq!(
        names,
        [
            "localhost/busybox:latest",
            "localhost/app:v1",
            "quay.io/team/app:latest"
        ]
    );
    let t = env.ok(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_same(
        "images --format TEMPLATE",
        &format!(
            "localhost/busybox:latest {short}\nlocalhost/app:v1 {short}\nquay.io/team/app:latest {short}\n",
            short = &id[..12]
        ),
        &t,
    );
    let r = rows(&env.ok(["images", "--digests"]));
    assert_eq!(r[0][2], "DIGEST");
    assert!(r[1][2].starts_with("sha256:"), "{r:?}");
    // a repository filter
    let r = rows(&env.ok(["images", "app"]));
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[1][0], "localhost/app");

    // inspect by every kind of name
    for typed in [
        "busybox",
        "app:v1",
        "quay.io/team/app",
        &id,
        &id[..8],
        &format!("sha256:{id}"),
    ] {
        let v = json(&env.ok(["inspect", typed]));
        assert_eq!(v[0]["Id"], id.as_str(), "{typed}");
    }
    let v = json(&env.ok(["inspect", "app:v1"]));
    let img = &v[0];
    assert_eq!(img["Os"], "linux");
    assert!(img["Architecture"].is_string());
    assert_eq!(img["Config"]["Env"][0], "GREETING=hello");
    assert_eq!(img["Config"]["Cmd"][2], "echo $GREETING");
    assert_eq!(img["Config"]["Labels"]["org.example.k"], "v");
    assert!(img["Config"]["ExposedPorts"]["8080/tcp"].is_object());
    assert_eq!(img["Config"]["WorkingDir"], "/tmp");
    assert_eq!(img["Config"]["User"], "app");
    assert_eq!(img["RootFS"]["Layers"].as_array().expect("layers").len(), 1);
    assert_eq!(img["History"][0]["comment"], "the base");
    assert!(img["Digest"]
        .as_str()
        .expect("digest")
        .starts_with("sha256:"));
    assert!(img["Size"].as_u64().expect("size") > 100_000);
    assert_eq!(img["RepoTags"].as_array().expect("tags").len(), 3);
    let t = env.ok(["inspect", "--format", "{{.Id}} {{.Config.User}}", "busybox"]);
    assert_same("inspect --format", &format!("{id} app\n"), &t);

    // history: one layer row with the comment
    let h = rows(&env.ok(["history", "busybox"]));
    assert_eq!(h[0], ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]);
    assert_eq!(h.len(), 2);
    assert_eq!(h[1][0], &id[..12]);
    assert_eq!(h[1].last().expect("comment"), "the base");
    let h = env.ok(["history", "--no-trunc", "-q", "busybox"]);
    assert_same("history -q --no-trunc", &format!("{id}\n"), &h);

    // rmi: a name of a multi-name image only untags; by ID needs -f
    let out = env.ok(["rmi", "app:v1"]);
    assert_same("rmi app:v1", "Untagged: localhost/app:v1\n", &out);
    let err = env.fails(1, ["rmi", &id[..12]]);
    assert!(err.contains("has 2 names"), "{err}");
    let out = env.ok(["rmi", "-f", &id[..12]]);
    assert!(out.contains("Untagged: localhost/busybox:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(
        rows(&env.ok(["images"])).len(),
        1,
        "only the header is left"
    );
    let blobs = std::fs::read_dir(env.root.join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 0, "the last image's blobs went with it");
}

#[test]
fn import_reads_gzip_and_stdin_and_is_reproducible() {
    let env = TestEnv::new();
    let tar = std::fs::read(busybox_rootfs()).expect("fixture");
    let gz = env.path("rootfs.tar.gz");
    std::fs::write(&gz, storecheck::gzip(&tar)).expect("write gz");

    let mut plain = env.cmd([
        "import",
        "-m",
        "same",
        busybox_rootfs().to_str().expect("utf8"),
        "a",
    ]);
    plain.env("SOURCE_DATE_EPOCH", "1700000000");
    let out = run(&mut plain);
    assert!(out.status.success(), "{}", show(&out));
    let id_plain = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let mut zipped = env.cmd(["import", "-m", "same", gz.to_str().expect("utf8"), "b"]);
    zipped.env("SOURCE_DATE_EPOCH", "1700000000");
    let out = run(&mut zipped);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        id_plain,
        "gzip input, same image"
    );

    let mut stdin = env.cmd(["import", "-m", "same", "-", "c"]);
    stdin
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = stdin.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&tar)
        .expect("feed");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        id_plain,
        "stdin, same image"
    );

    // zstd too
    let zst = env.path("rootfs.tar.zst");
    std::fs::write(&zst, zstd::encode_all(&tar[..], 3).expect("zstd")).expect("write zst");
    let mut z = env.cmd(["import", "-m", "same", zst.to_str().expect("utf8"), "d"]);
    z.env("SOURCE_DATE_EPOCH", "1700000000");
    let out = run(&mut z);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        id_plain,
        "zstd input, same image"
    );

    let v = json(&env.ok(["inspect", "a"]));
    assert_eq!(v[0]["Created"], "2023-11-14T22:13:20Z");
    assert_eq!(v[0]["Names"].as_array().expect("names").len(), 4);
    storecheck::verify(&env.root);
}

#[test]
fn names_move_and_dangling_images_show_as_none() {
    let env = TestEnv::new();
    let first = env.import_busybox("app");
    let second = env.import_busybox("app");
    assert_ne!(
        first, second,
        "two imports at different times are two images"
    );
    let table = env.ok(["images"]);
    let r = rows(&table);
    assert_eq!(r.len(), 3, "{table}");
    let none = r
        .iter()
        .find(|row| row[0] == "<none>")
        .expect("dangling row");
    assert_eq!(none[1], "<none>");
    assert_eq!(none[2], &first[..12]);
    // filters: the dangling one alone, the named one alone
    let q = env.ok(["images", "-q", "--filter", "dangling=true"]);
    assert_same(
        "images -f dangling=true",
        &format!("{}\n", &first[..12]),
        &q,
    );
    let q = env.ok([
        "images",
        "-q",
        "-f",
        "dangling=false",
        "-f",
        "reference=app*",
    ]);
    assert_same(
        "images -f dangling=false",
        &format!("{}\n", &second[..12]),
        &q,
    );
    let q = env.ok(["images", "-q", "-f", &format!("before={}", &second[..12])]);
    assert_same("images -f before=", &format!("{}\n", &first[..12]), &q);
    // prune removes the dangling one and reports the space
    let out = env.ok(["prune"]);
    assert!(out.contains(&first), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(
        !out.contains("Total reclaimed space: 0B"),
        "the config blob went: {out}"
    );
    let r = rows(&env.ok(["images"]));
    assert_eq!(r.len(), 2);
    assert_eq!(r[1][2], &second[..12]);
    // the layer blob is shared by both imports and stays
    storecheck::verify(&env.root);
    let out = env.ok(["prune", "-a", "-f"]);
    assert!(out.contains(&second), "{out}");
    assert_eq!(rows(&env.ok(["images"])).len(), 1);
    assert_eq!(
        std::fs::read_dir(env.root.join("blobs/sha256"))
            .expect("ls")
            .count(),
        0
    );
}

/// Runs `hoist ARGS` expecting exit status 1, one `Error: …` line naming `needle`, and an
/// unchanged store.
fn refused(env: &TestEnv, args: &[&str], needle: &str) {
    let before = storecheck::listing(&env.root);
    let err = env.fails(1, args);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected:\n{err}");
    assert!(lines[0].starts_with("Error: "), "{args:?}: {err}");
    assert!(
        err.contains(needle),
        "{args:?}: `{needle}` missing from: {err}"
    );
    assert_same(
        &format!("store after {args:?}"),
        &before,
        &storecheck::listing(&env.root),
    );
}

#[test]
fn bad_input_is_refused_and_the_store_is_unchanged() {
    let env = TestEnv::new();
    let id = env.import_busybox("busybox");
    let tar = std::fs::read(busybox_rootfs()).expect("fixture");

    let truncated = env.path("truncated.tar");
    std::fs::write(&truncated, &tar[..tar.len() / 2 + 100]).expect("write");
    let truncated_gz = env.path("truncated.tar.gz");
    let gz = storecheck::gzip(&tar);
    std::fs::write(&truncated_gz, &gz[..gz.len() / 2]).expect("write");
    let not_tar = env.path("notes.txt");
    std::fs::write(&not_tar, "this is not a tarball\n".repeat(100)).expect("write");
    let empty = env.path("empty.tar");
    std::fs::write(&empty, b"").expect("write");
    let escaping = env.path("escape.tar");
    std::fs::write(&escaping, storecheck::escaping_tar()).expect("write");
    let hardlink = env.path("hardlink.tar");
    std::fs::write(&hardlink, storecheck::hardlink_escape_tar()).expect("write");
    let through_link = env.path("through-link.tar");
    std::fs::write(&through_link, storecheck::symlink_parent_tar()).expect("write");
    let p = |p: &std::path::Path| p.to_str().expect("utf8").to_owned();

    refused(&env, &["import", &p(&truncated), "x"], "truncated.tar");
    refused(
        &env,
        &["import", &p(&truncated_gz), "x"],
        "truncated.tar.gz",
    );
    refused(&env, &["import", &p(&not_tar), "x"], "notes.txt");
    refused(&env, &["import", &p(&empty), "x"], "empty.tar");
    refused(
        &env,
        &["import", &p(&escaping), "x"],
        "`..` leads above the root",
    );
    refused(&env, &["import", &p(&hardlink), "x"], "hard link target");
    refused(&env, &["import", &p(&through_link), "x"], "symbolic link");
    refused(
        &env,
        &["import", "/nonexistent.tar", "x"],
        "/nonexistent.tar",
    );
    refused(
        &env,
        &["import", &p(&escaping), "UPPER/case"],
        "must be lowercase",
    );
    refused(&env, &["import", &p(&truncated), "a:b:c"], "a:b:c");
    refused(&env, &["import", &p(&truncated), "x:"], "empty tag");
    refused(
        &env,
        &[
            "import",
            &p(&escaping),
            &format!("x@sha256:{}", "a".repeat(64)),
        ],
        "digest",
    );
    refused(
        &env,
        &["import", &p(&truncated), "x", "-c", "RUN make"],
        "RUN",
    );
    refused(&env, &["tag", "busybox", "UPPER/case"], "must be lowercase");
    refused(&env, &["tag", "busybox", "a:b:c"], "a:b:c");
    refused(&env, &["tag", "busybox", "x:"], "empty tag");
    refused(&env, &["tag", "nosuch", "x"], "`nosuch`");
    refused(&env, &["inspect", "nosuch"], "`nosuch`");
    refused(&env, &["history", "nosuch"], "`nosuch`");
    refused(&env, &["rmi", "busybox", "nosuch"], "`nosuch`");
    refused(&env, &["rmi", "0000000"], "`0000000`");
    refused(&env, &["images", "--format", "yaml"], "`yaml`");
    refused(&env, &["images", "--filter", "color=red"], "`color`");
    refused(&env, &["images", "--filter", "since=nosuch"], "`nosuch`");
    refused(
        &env,
        &["history", "--format", "{{.ID", "busybox"],
        "template",
    );
    refused(
        &env,
        &["inspect", "--format", "{{.Nope}}x{{", "busybox"],
        "template",
    );
    // the image is still there, whole
    assert_eq!(json(&env.ok(["inspect", "busybox"]))[0]["Id"], id.as_str());
    storecheck::verify(&env.root);
}

#[test]
fn read_only_store_root_is_refused_and_unchanged() {
    // the store belongs to root; uid 65534 may read it but not write it
    let mut env = TestEnv::new();
    env.import_busybox("busybox");
    common::chown_tree(env.dir.path(), 0);
    let status = std::process::Command::new("chmod")
        .args(["-R", "a+rX,go-w"])
        .arg(env.dir.path())
        .status()
        .expect("chmod");
    assert!(status.success());
    env.as_user = Some(65534);
    let tar = busybox_rootfs();
    let t = tar.to_str().expect("utf8");
    // reading works
    let r = rows(&env.ok(["images"]));
    assert_eq!(r.len(), 2);
    refused(&env, &["import", t, "other"], "read-only");
    refused(&env, &["tag", "busybox", "other"], "read-only");
    refused(&env, &["rmi", "busybox"], "read-only");
    refused(&env, &["prune", "-a", "-f"], "read-only");
}

#[test]
fn read_only_mount_is_refused_and_unchanged() {
    // a real read-only bind mount, in a private mount namespace of a child process
    let env = TestEnv::new();
    env.import_busybox("busybox");
    let before = storecheck::listing(&env.root);
    let script = format!(
        "mount --bind -o ro '{root}' '{root}' && exec '{bin}' import '{tar}' other",
        root = env.root.display(),
        bin = common::hoist_bin().display(),
        tar = busybox_rootfs().display()
    );
    let out = run(std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env("HOIST_ROOT", &env.root));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("Error: ") && err.contains("read-only"),
        "{err}"
    );
    assert_same("store", &before, &storecheck::listing(&env.root));
}

#[test]
fn ambiguous_short_id_names_the_candidates() {
    let env = TestEnv::new();
    let mut ids = Vec::new();
    // 17 small images: two IDs must share their first hex digit
    for i in 0..17 {
        let tar = env.path(&format!("{i}.tar"));
        std::fs::write(
            &tar,
            storecheck::small_tar(&[("file", format!("{i}").as_bytes())]),
        )
        .expect("write tar");
        ids.push(
            env.ok(["import", tar.to_str().expect("utf8")])
                .trim()
                .to_string(),
        );
    }
    let prefix = ids
        .iter()
        .map(|d| &d[..1])
        .find(|p| ids.iter().filter(|d| d.starts_with(*p)).count() > 1)
        .expect("17 ids over 16 first digits share one");
    let err = env.fails(1, ["inspect", prefix]);
    assert!(err.contains("ambiguous"), "{err}");
    let matching: Vec<&String> = ids.iter().filter(|d| d.starts_with(prefix)).collect();
    for m in matching {
        assert!(err.contains(&m[..12]), "{err} lacks {m}");
    }
}

#[test]
fn rmi_all_removes_every_image_and_blob() {
    let env = TestEnv::new();
    let tar = env.path("small.tar");
    std::fs::write(&tar, storecheck::small_tar(&[("f", b"1")])).expect("write");
    let t = tar.to_str().expect("utf8");
    let a = env.ok(["import", t, "a"]).trim().to_string();
    env.ok(["tag", "a", "c"]);
    let b = env.ok(["import", t, "b"]).trim().to_string();
    let out = env.ok(["rmi", "-a"]);
    for line in [
        "Untagged: localhost/a:latest",
        "Untagged: localhost/c:latest",
        "Untagged: localhost/b:latest",
        &format!("Deleted: {a}"),
        &format!("Deleted: {b}"),
    ] {
        assert!(out.lines().any(|l| l == line), "`{line}` missing:\n{out}");
    }
    assert_eq!(env.ok(["images", "-q", "-a"]), "");
    assert_eq!(
        std::fs::read_dir(env.root.join("blobs/sha256"))
            .expect("ls")
            .count(),
        0
    );
    let err = env.fails(2, ["rmi", "-a", "a"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
