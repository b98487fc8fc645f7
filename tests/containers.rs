//! Working containers through the real binary: docker's `run` → `diff` → `commit`, buildah's
//! `from` → `run` → `copy` → `config` → `commit`, whiteouts, commits that hold only what changed,
//! listing and removal, what `prune` and `check` do with containers, and bad input.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use common::{assert_same, run, show, TestEnv};

fn with_busybox() -> TestEnv {
    let env = TestEnv::new();
    env.import_busybox("busybox");
    env
}

/// Runs `hoist ARGS…` and returns (exit code, stdout, stderr).
fn outcome(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let out = run(&mut env.cmd(args));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn inspect(env: &TestEnv, image: &str) -> serde_json::Value {
    let out = env.ok(["inspect", image]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    v[0].clone()
}

/// The entry names of an image's layers (top last), read from the store's blobs.
fn layer_entries(env: &TestEnv, image: &str) -> Vec<Vec<String>> {
    let manifest_digest = inspect(env, image)["Digest"]
        .as_str()
        .expect("Digest")
        .to_string();
    let blob = |d: &str| {
        env.root
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&manifest_digest)).expect("manifest"))
            .expect("manifest JSON");
    manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let f = std::fs::File::open(blob(l["digest"].as_str().expect("digest")))
                .expect("layer blob");
            let mut peek = std::io::BufReader::new(f);
            let mut data = Vec::new();
            peek.read_to_end(&mut data).expect("read layer");
            let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
                Box::new(flate2::read::GzDecoder::new(&data[..]))
            } else {
                Box::new(&data[..])
            };
            let mut ar = tar::Archive::new(reader);
            ar.entries()
                .expect("tar")
                .map(|e| {
                    let e = e.expect("entry");
                    e.path()
                        .expect("path")
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect()
        })
        .collect()
}

/// Every file of the store below `root/` except scratch space, with its content: what "the store
/// is unchanged" compares.
fn store_snapshot(env: &TestEnv) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(&env.root).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(&env.root)
            .expect("below root")
            .to_path_buf();
        if rel.starts_with("tmp") {
            continue;
        }
        let data = if e.file_type().is_file() {
            std::fs::read(e.path()).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.insert(rel, data);
    }
    out
}

/// The flattened file system of an image: path, type and mode, owner, size and content digest
/// of every entry (not times), as the image's own busybox sees it.
fn flattened(env: &TestEnv, image: &str) -> String {
    let script = "find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -print \
                  | sort | while read -r p; do \
                  if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then s=$(md5sum < \"$p\"); else s=-; fi; \
                  echo \"$(stat -c '%n %f %u:%g %s' \"$p\") $s\"; done";
    env.ok(["run", "--rm", "--hostname", "h", image, "sh", "-c", script])
}

#[test]
fn docker_way_run_diff_commit_gives_an_image_with_the_change_and_the_message() {
    let env = with_busybox();
    env.ok([
        "run",
        "--name",
        "x",
        "busybox",
        "sh",
        "-c",
        "mkdir /data && echo hi > /data/f && echo changed >> /etc/passwd",
    ]);
    let diff = env.ok(["diff", "x"]);
    for line in ["A /data", "A /data/f", "C /etc", "C /etc/passwd"] {
        assert!(diff.lines().any(|l| l == line), "no `{line}` in:\n{diff}");
    }
    let id = env.ok(["commit", "-m", "msg", "x", "new:1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let history = inspect(&env, "new:1")["History"].clone();
    let last = history
        .as_array()
        .expect("history")
        .last()
        .expect("entry")
        .clone();
    assert_eq!(last["comment"], "msg", "{history}");
    assert_same(
        "the committed file",
        "hi\n",
        &env.ok(["run", "--rm", "new:1", "cat", "/data/f"]),
    );
    // the container sits on the commit now: nothing left to show
    assert_same("diff after commit", "", &env.ok(["diff", "x"]));
}

#[test]
fn rm_rf_in_a_container_commits_a_whiteout_and_the_image_lacks_the_dir() {
    let env = with_busybox();
    env.ok(["run", "--name", "x", "busybox", "rm", "-rf", "/home"]);
    assert!(env.ok(["diff", "x"]).lines().any(|l| l == "D /home"));
    env.ok(["commit", "x", "gone:1"]);
    let layers = layer_entries(&env, "gone:1");
    let top = layers.last().expect("a layer");
    assert!(top.iter().any(|e| e == ".wh.home"), "top layer: {top:?}");
    let (code, _, _) = outcome(&env, &["run", "--rm", "gone:1", "test", "-e", "/home"]);
    assert_eq!(code, 1, "/home is still there");
}

#[test]
fn two_commits_of_one_container_second_layer_holds_only_the_second_change() {
    let env = with_busybox();
    assert_same("from", "w\n", &env.ok(["from", "--name", "w", "busybox"]));
    env.ok(["run", "w", "--", "sh", "-c", "echo 1 > /one"]);
    env.ok(["commit", "w", "two:1"]);
    env.ok(["run", "w", "--", "sh", "-c", "echo 2 > /two"]);
    env.ok(["commit", "w", "two:2"]);
    let first = layer_entries(&env, "two:1");
    let second = layer_entries(&env, "two:2");
    assert_eq!(second.len(), first.len() + 1, "{second:?}");
    assert_eq!(&second[..first.len()], &first[..]);
    assert_eq!(second.last().expect("layer"), &vec!["two".to_string()]);
    assert_same(
        "both changes",
        "1\n2\n",
        &env.ok(["run", "--rm", "two:2", "cat", "/one", "/two"]),
    );
    // --squash: one layer holding the base and both changes
    env.ok(["run", "w", "--", "sh", "-c", "echo 3 > /three"]);
    env.ok(["commit", "--squash", "w", "two:3"]);
    let squashed = layer_entries(&env, "two:3");
    assert_eq!(squashed.len(), 1, "squashed layers");
    assert!(
        squashed[0].iter().any(|e| e == "bin/busybox"),
        "{:?}",
        squashed[0]
    );
    assert_same(
        "squashed image",
        "1\n2\n3\n",
        &env.ok(["run", "--rm", "two:3", "cat", "/one", "/two", "/three"]),
    );
    assert_eq!(
        inspect(&env, "two:3")["History"]
            .as_array()
            .map(|h| h.len()),
        Some(1)
    );
}

#[test]
fn from_run_copy_config_commit_equals_a_build_of_the_same_dockerfile() {
    let env = with_busybox();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(ctx.join("d/sub")).expect("ctx");
    std::fs::write(ctx.join("a.txt"), "a\n").expect("a.txt");
    std::fs::write(ctx.join("d/sub/b"), "b\n").expect("b");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir -p /app && echo built > /app/built && rm -rf /home\n\
         COPY a.txt /app/a.txt\n\
         COPY d /app/d/\n\
         ENV A=1\n\
         CMD [\"cat\", \"/app/a.txt\"]\n\
         WORKDIR /app\n\
         LABEL k=v\n\
         EXPOSE 8080\n\
         USER 0:0\n",
    )
    .expect("Dockerfile");
    env.ok(["build", "-t", "built:1", ctx.to_str().expect("utf-8")]);

    env.ok(["from", "--name", "w", "busybox"]);
    env.ok([
        "run",
        "w",
        "--",
        "sh",
        "-c",
        "mkdir -p /app && echo built > /app/built && rm -rf /home",
    ]);
    env.ok([
        "copy",
        "w",
        ctx.join("a.txt").to_str().expect("utf-8"),
        "/app/a.txt",
    ]);
    env.ok([
        "copy",
        "w",
        ctx.join("d").to_str().expect("utf-8"),
        "/app/d/",
    ]);
    env.ok([
        "config",
        "--env",
        "A=1",
        "--cmd",
        "[\"cat\", \"/app/a.txt\"]",
        "--workingdir",
        "/app",
        "--label",
        "k=v",
        "--port",
        "8080",
        "--user",
        "0:0",
        "w",
    ]);
    // the container's runs use its config
    assert_same(
        "env and working dir in the container",
        "1\n/app\n",
        &env.ok(["run", "w", "--", "sh", "-c", "echo $A; pwd"]),
    );
    env.ok(["commit", "w", "scripted:1"]);

    assert_same(
        "config",
        &inspect(&env, "built:1")["Config"].to_string(),
        &inspect(&env, "scripted:1")["Config"].to_string(),
    );
    assert_same(
        "flattened file system",
        &flattened(&env, "built:1"),
        &flattened(&env, "scripted:1"),
    );
    assert_same(
        "default command",
        "a\n",
        &env.ok(["run", "--rm", "scripted:1"]),
    );
}

#[test]
fn copy_into_a_deleted_dir_does_not_bring_back_its_old_files() {
    let env = with_busybox();
    env.ok(["from", "--name", "w", "busybox"]);
    env.ok(["run", "w", "--", "rm", "-rf", "/home"]);
    let f = env.path("new");
    std::fs::write(&f, "n\n").expect("file");
    env.ok(["copy", "w", f.to_str().expect("utf-8"), "/home/new"]);
    let before = env.ok(["run", "--rm", "busybox", "ls", "-A", "/home"]);
    assert!(
        !before.trim().is_empty(),
        "busybox's /home is empty: the test shows nothing"
    );
    assert_same(
        "/home in the container",
        "new\n",
        &env.ok(["run", "w", "--", "ls", "-A", "/home"]),
    );
    env.ok(["commit", "w", "h:1"]);
    assert_same(
        "/home in the image",
        "new\n",
        &env.ok(["run", "--rm", "h:1", "ls", "-A", "/home"]),
    );
}

#[test]
fn add_unpacks_a_local_archive_and_copy_from_reads_an_image() {
    let env = with_busybox();
    let dir = env.path("payload");
    std::fs::create_dir_all(dir.join("x")).expect("dir");
    std::fs::write(dir.join("x/y"), "y\n").expect("file");
    let tgz = env.path("p.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&dir)
        .arg("x")
        .status()
        .expect("tar");
    assert!(status.success());
    env.ok(["from", "--name", "w", "scratch"]);
    env.ok(["add", "w", tgz.to_str().expect("utf-8"), "/opt/"]);
    env.ok([
        "copy",
        "--from",
        "busybox",
        "w",
        "/bin/busybox",
        "/bin/busybox",
    ]);
    // a one-shot HTTP server for the URL source
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 1024];
        let _ = std::io::Read::read(&mut s, &mut buf);
        let body = "remote\n";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        std::io::Write::write_all(&mut s, resp.as_bytes()).expect("write");
    });
    let url = format!("http://127.0.0.1:{port}/dl/remote.txt");
    env.ok(["add", "w", &url, "/downloads/"]);
    server.join().expect("server");
    let err = env.fails(1, ["copy", "w", &url, "/downloads/"]);
    assert!(err.contains("use `hoist add`"), "{err}");
    env.ok([
        "commit",
        "--change",
        "CMD [\"/bin/busybox\", \"cat\", \"/opt/x/y\"]",
        "w",
        "added:1",
    ]);
    assert_same("unpacked file", "y\n", &env.ok(["run", "--rm", "added:1"]));
    assert_same(
        "downloaded file",
        "600\nremote\n",
        &env.ok([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/busybox",
            "added:1",
            "sh",
            "-c",
            "/bin/busybox stat -c %a /downloads/remote.txt; /bin/busybox cat /downloads/remote.txt",
        ]),
    );
    let layers = layer_entries(&env, "added:1");
    assert_eq!(layers.len(), 1, "scratch + one commit: one layer");
}

#[test]
fn run_without_rm_keeps_the_container_and_with_rm_keeps_nothing() {
    let env = with_busybox();
    env.ok(["run", "--rm", "busybox", "true"]);
    assert_same("ps -a after --rm", "", &env.ok(["ps", "-a", "-q"]));
    env.ok(["run", "busybox", "true"]);
    env.ok(["run", "--name", "named", "busybox", "true"]);
    let listed = env.ok(["ps", "-a"]);
    assert!(listed.contains("busybox-working-container"), "{listed}");
    assert!(listed.contains("named"), "{listed}");
    // nothing runs in the background: `ps` alone lists nothing
    assert_same("ps", "", &env.ok(["ps", "-q"]));
    assert_eq!(env.ok(["containers", "-q"]).lines().count(), 2);
    assert_eq!(env.ok(["container", "ls", "-a", "-q"]).lines().count(), 2);
    // a second container of the same name is refused, the first stays as it was
    let (code, _, err) = outcome(&env, &["run", "--name", "named", "busybox", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("`named`") && err.lines().count() == 1, "{err}");
    env.ok(["rm", "named"]);
    assert_eq!(env.ok(["ps", "-a", "-q"]).lines().count(), 1);
    let pruned = env.ok(["container", "prune"]);
    assert_eq!(pruned.lines().count(), 1, "{pruned}");
    assert_same("ps -a after prune", "", &env.ok(["ps", "-a", "-q"]));
}

#[test]
fn prune_keeps_what_a_container_needs_and_rmi_refuses_its_image() {
    let env = TestEnv::new();
    let tar = common::busybox_rootfs();
    env.ok(["import".as_ref(), tar.as_os_str(), "base".as_ref()]);
    env.ok(["from", "--name", "w", "base"]);
    env.ok(["run", "w", "--", "touch", "/mark"]);
    let df = env.ok([
        "system",
        "df",
        "--format",
        "{{.Type}}={{.TotalCount}}/{{.Active}}",
    ]);
    assert!(
        df.contains("Images=1/1") && df.contains("Containers=1/0"),
        "{df}"
    );
    let err = env.fails(1, ["rmi", "base"]);
    assert!(err.contains("in use by container `w`"), "{err}");
    env.ok(["prune", "-a", "-f"]);
    assert!(
        env.ok(["images"]).contains("base"),
        "prune -a removed the container's image"
    );
    // the container still works over its image's layers
    env.ok(["run", "w", "--", "test", "-e", "/mark"]);
    env.ok(["check"]);
    env.ok(["rm", "--all"]);
    env.ok(["prune", "-a", "-f"]);
    assert!(!env.ok(["images"]).contains("base"));
    env.ok(["check"]);
}

#[test]
fn check_reports_a_damaged_container_dir_and_repair_removes_it() {
    let env = with_busybox();
    env.ok(["from", "--name", "w", "busybox"]);
    let id = env.ok(["ps", "-a", "-q"]).trim().to_string();
    let dir = std::fs::read_dir(env.root.join("containers"))
        .expect("containers/")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&id))
        })
        .expect("the container's dir");
    std::fs::write(dir.join("container.json"), "{").expect("damage");
    std::fs::create_dir(env.root.join("containers/junk")).expect("junk");
    let out = run(&mut env.cmd(["check"]));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("containers/junk"), "{text}");
    assert!(
        text.contains(&format!(
            "containers/{}",
            dir.file_name().expect("name").to_string_lossy()
        )),
        "{text}"
    );
    env.ok(["check", "--repair"]);
    env.ok(["check"]);
    assert!(!env.root.join("containers/junk").exists());
}

#[test]
fn bad_input_is_one_line_exit_1_and_the_store_is_unchanged() {
    let env = with_busybox();
    env.ok(["run", "--name", "x", "busybox", "touch", "/f"]);
    let before = store_snapshot(&env);
    let missing = env.path("no-such-file");
    let missing = missing.to_str().expect("utf-8");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["diff", "nope"], "no such container: `nope`"),
        (vec!["commit", "nope", "img:1"], "no such container: `nope`"),
        (
            vec!["copy", "nope", "/etc/hostname", "/x"],
            "no such container: `nope`",
        ),
        (
            vec!["config", "--env", "A=1", "nope"],
            "no such container: `nope`",
        ),
        (vec!["rm", "x", "nope"], "no such container: `nope`"),
        (
            vec!["copy", "x", missing, "/x"],
            "no such file or directory on the host",
        ),
        (vec!["commit", "x", "Not A Name"], "`Not A Name`"),
        (vec!["config", "--env", "=1", "x"], "`--env =1`"),
        (
            vec!["commit", "--change", "RUN true", "x", "img:1"],
            "`RUN` cannot be applied",
        ),
        (
            vec!["from", "--name", "bad name", "busybox"],
            "container name `bad name`",
        ),
    ];
    for (args, want) in cases {
        let err = env.fails(1, &args);
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(store_snapshot(&env) == before, "{args:?} changed the store");
    }
}

#[test]
fn rootless_from_run_copy_commit_and_run_the_result() {
    let env = TestEnv::rootless();
    env.import_busybox("busybox");
    let f = env.path("hello.txt");
    std::fs::write(&f, "hello\n").expect("file");
    common::chown_tree(&f, 65534);
    env.ok(["from", "--name", "w", "busybox"]);
    env.ok([
        "run",
        "w",
        "--",
        "sh",
        "-c",
        "rm -rf /home && echo ran > /ran",
    ]);
    env.ok(["copy", "w", "hello.txt", "/srv/"]);
    env.ok(["config", "--cmd", "cat /ran /srv/hello.txt", "w"]);
    env.ok(["commit", "-m", "rootless", "w", "rl:1"]);
    assert_same(
        "the image's command",
        "ran\nhello\n",
        &env.ok(["run", "--rm", "rl:1"]),
    );
    let (code, _, _) = outcome(&env, &["run", "--rm", "rl:1", "test", "-e", "/home"]);
    assert_eq!(code, 1, "/home came back");
    env.ok(["rm", "w"]);
    env.ok(["check"]);
}

/// `hoist ARGS…` as the `hoisttest` user, which has a subordinate id range (scripts/test.sh).
fn as_hoisttest(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let out = run(std::process::Command::new("id").args(["-u", "hoisttest"]));
    assert!(
        out.status.success(),
        "user `hoisttest` is missing: run scripts/test.sh (as root), which creates it with a subuid range"
    );
    let uid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    run(std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--init-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(common::hoist_bin())
        .args(args)
        .env("HOIST_ROOT", &env.root)
        .env("HOME", env.dir.path())
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(env.dir.path())
        .stdin(std::process::Stdio::null()))
}

fn hoisttest_ok(env: &TestEnv, args: &[&str]) -> String {
    let out = as_hoisttest(env, args);
    assert!(out.status.success(), "hoist {args:?}\n{}", show(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn with_a_subuid_range_a_commit_keeps_owners_and_rm_and_prune_clean_up() {
    let env = TestEnv::new();
    let uid = run(std::process::Command::new("id").args(["-u", "hoisttest"]));
    let uid: u32 = String::from_utf8_lossy(&uid.stdout)
        .trim()
        .parse()
        .expect("hoisttest uid");
    common::chown_tree(env.dir.path(), uid);
    let tar = common::busybox_rootfs();
    hoisttest_ok(&env, &["import", tar.to_str().expect("utf-8"), "busybox"]);
    let f = env.path("owned.txt");
    std::fs::write(&f, "o\n").expect("file");
    common::chown_tree(&f, uid);
    hoisttest_ok(&env, &["from", "--name", "w", "busybox"]);
    hoisttest_ok(
        &env,
        &[
            "run",
            "w",
            "--",
            "sh",
            "-c",
            "echo x > /byrun && chown 1000:1001 /byrun",
        ],
    );
    hoisttest_ok(
        &env,
        &["copy", "--chown", "2000:2001", "w", "owned.txt", "/bycopy"],
    );
    hoisttest_ok(&env, &["commit", "w", "owned:1"]);
    assert_same(
        "owners in the image",
        "1000:1001 /byrun\n2000:2001 /bycopy\n",
        &hoisttest_ok(
            &env,
            &[
                "run", "--rm", "owned:1", "stat", "-c", "%u:%g %n", "/byrun", "/bycopy",
            ],
        ),
    );
    hoisttest_ok(&env, &["rm", "w"]);
    hoisttest_ok(&env, &["prune", "-a", "-f"]);
    hoisttest_ok(&env, &["check"]);
    let left: Vec<_> = std::fs::read_dir(env.root.join("containers"))
        .expect("containers/")
        .collect();
    assert!(left.is_empty(), "containers/ keeps {left:?}");
}

#[test]
fn a_container_in_use_is_up_in_ps_and_refused_to_a_second_process() {
    let env = with_busybox();
    env.ok(["from", "--name", "w", "busybox"]);
    let sync = env.path("sync");
    std::fs::create_dir(&sync).expect("sync dir");
    let fifo = sync.join("go");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let volume = format!("{}:/sync", sync.display());
    let mut child = env
        .cmd([
            "run",
            "-v",
            &volume,
            "w",
            "--",
            "sh",
            "-c",
            "touch /sync/ready; read x < /sync/go; echo done > /after",
        ])
        .spawn()
        .expect("start the first run");
    // the first run holds the container once its command has started
    let mut waited = 0;
    while !sync.join("ready").exists() {
        assert!(waited < 6000, "the first run never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    let ps = env.ok(["ps"]);
    assert!(ps.contains(" w") && ps.contains("Up"), "{ps}");
    let err = env.fails(
        1,
        [
            "copy",
            "w",
            sync.join("ready").to_str().expect("utf-8"),
            "/x",
        ],
    );
    assert!(
        err.contains("container `w` is in use by another hoist process"),
        "{err}"
    );
    let err = env.fails(1, ["rm", "w"]);
    assert!(err.contains("in use"), "{err}");
    std::fs::write(&fifo, "go\n").expect("release the first run");
    let status = child.wait().expect("first run");
    assert!(status.success());
    assert_same(
        "after",
        "done\n",
        &env.ok(["run", "w", "--", "cat", "/after"]),
    );
    assert!(!env.ok(["diff", "w"]).contains("/x"));
}

#[test]
fn as_root_mount_writes_land_in_the_upper_dir_and_the_commit() {
    let env = with_busybox();
    // a failing assertion must not leave the mounts in the host's namespace
    struct Unmount<'a>(&'a TestEnv);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = run(&mut self.0.cmd(["umount", "--all"]));
        }
    }
    let _unmount = Unmount(&env);
    env.ok(["from", "--name", "w", "busybox"]);
    let path = env.ok(["mount", "w"]).trim().to_string();
    let merged = PathBuf::from(&path);
    assert!(
        merged.starts_with(env.root.canonicalize().expect("root").join("containers"))
            && merged.ends_with("merged"),
        "{path}"
    );
    assert!(
        merged.join("bin/busybox").exists(),
        "the image is not under {path}"
    );
    std::fs::write(merged.join("via-mount"), "m\n").expect("write through the mount");
    assert_same("hoist mount", &format!("w {path}\n"), &env.ok(["mount"]));
    // the upper dir must not move or change under the mount
    // (`run` fails with 125 when hoist itself cannot start the command, as docker's)
    for (code, args) in [
        (1, vec!["commit", "w", "no:1"]),
        (125, vec!["run", "w", "true"]),
        (1, vec!["copy", "w", "/etc/hostname", "/x"]),
    ] {
        let err = env.fails(code, &args);
        assert!(err.contains("is mounted at"), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    assert_same("umount", "w\n", &env.ok(["umount", "w"]));
    assert_same("mount after umount", "", &env.ok(["mount"]));
    assert!(!merged.join("bin").exists(), "still mounted");
    assert_same("diff", "A /via-mount\n", &env.ok(["diff", "w"]));
    env.ok(["commit", "w", "mounted:1"]);
    assert_same(
        "the committed file",
        "m\n",
        &env.ok(["run", "--rm", "mounted:1", "cat", "/via-mount"]),
    );
    // `umount` of what is not mounted, `rm` of a mounted container (unmounted first)
    let err = env.fails(1, ["umount", "w"]);
    assert!(err.contains("container `w` is not mounted"), "{err}");
    env.ok(["from", "--name", "v", "busybox"]);
    let two = env.ok(["mount", "w", "v"]);
    let names: Vec<&str> = two.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(names, ["w", "v"], "{two}");
    let mut all: Vec<String> = env
        .ok(["umount", "--all"])
        .lines()
        .map(String::from)
        .collect();
    all.sort();
    assert_eq!(all, ["v", "w"]);
    assert_same("mounted after umount --all", "", &env.ok(["mount"]));
    env.ok(["mount", "w"]);
    env.ok(["rm", "w"]);
    assert!(!merged.exists(), "rm left the mount point");
    env.ok(["check"]);
}

#[test]
fn rootless_mount_needs_unshare_and_works_inside_it() {
    let env = TestEnv::rootless();
    env.ok(["from", "--name", "c", "scratch"]);
    let err = env.fails(1, ["mount", "c"]);
    assert!(
        err.contains("run the commands that use the mount inside `hoist unshare`"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let script = "p=$($H mount c) && echo x > \"$p/f\" && $H umount c";
    let mut cmd = env.cmd(["unshare", "sh", "-c", script]);
    cmd.env("H", common::hoist_bin());
    let out = run(&mut cmd);
    common::assert_success(&cmd, &out);
    assert_same(
        "umount's output",
        "c\n",
        &String::from_utf8_lossy(&out.stdout),
    );
    assert_same("diff", "A /f\n", &env.ok(["diff", "c"]));
    // buildah's `unshare --mount [VAR=]CONTAINER`
    assert_same(
        "unshare --mount",
        "x\nx\n",
        &env.ok([
            "unshare",
            "-m",
            "R=c",
            "--mount",
            "c",
            "sh",
            "-c",
            "cat $R/f $c/f",
        ]),
    );
    // the mounts ended with the sessions
    assert_same("mounted after the session", "", &env.ok(["mount"]));
    assert_same("uid inside", "0\n", &env.ok(["unshare", "id", "-u"]));
    // inside, hoist knows it is the rootless namespace, not real root
    let mut cmd = env.cmd(["unshare", "sh", "-c", "$H info"]);
    cmd.env("H", common::hoist_bin());
    let out = run(&mut cmd);
    common::assert_success(&cmd, &out);
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(
        info.lines()
            .any(|l| l.starts_with("mode") && l.contains("rootless-single-id")),
        "{info}"
    );
    let (code, _, _) = outcome(&env, &["unshare", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "exit code not passed through");
    let mut cmd = env.cmd(["unshare", "sh", "-c", "$H mount nope"]);
    cmd.env("H", common::hoist_bin());
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no such container: `nope`"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, _, err) = outcome(&env, &["unshare", "no-such-program"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("cannot run `no-such-program`"), "{err}");
}

#[test]
fn with_a_subuid_range_unshare_maps_the_range_and_hoist_runs_inside() {
    let env = TestEnv::new();
    let uid = run(std::process::Command::new("id").args(["-u", "hoisttest"]));
    let uid: u32 = String::from_utf8_lossy(&uid.stdout)
        .trim()
        .parse()
        .expect("hoisttest uid");
    common::chown_tree(env.dir.path(), uid);
    let tar = common::busybox_rootfs();
    hoisttest_ok(&env, &["import", tar.to_str().expect("utf-8"), "busybox"]);
    hoisttest_ok(&env, &["from", "--name", "w", "busybox"]);
    // podman's layout: 0 → the user, 1… → the range; a hoist inside uses this namespace (a
    // second one could not map the range) for a run and for a mount with chown to mapped ids
    let script = format!(
        "cat /proc/self/uid_map | wc -l; \
         {h} run w -- sh -c 'echo r > /r && chown 7:8 /r' && \
         p=$({h} mount w) && echo o > $p/o && chown 1000:1001 $p/o && {h} umount w >/dev/null",
        h = common::hoist_bin().display()
    );
    assert_same(
        "uid_map lines",
        "2\n",
        &hoisttest_ok(&env, &["unshare", "sh", "-c", &script]),
    );
    hoisttest_ok(&env, &["commit", "w", "m:1"]);
    assert_same(
        "owners in the image",
        "7:8 /r\n1000:1001 /o\n",
        &hoisttest_ok(
            &env,
            &["run", "--rm", "m:1", "stat", "-c", "%u:%g %n", "/r", "/o"],
        ),
    );
}

#[test]
fn rootless_a_container_mounted_in_another_session_is_refused_until_it_ends() {
    let env = TestEnv::rootless();
    env.ok(["from", "--name", "c", "scratch"]);
    let sync = env.path("sync");
    std::fs::create_dir(&sync).expect("sync dir");
    let (ready, go) = (sync.join("ready"), sync.join("go"));
    let status = std::process::Command::new("mkfifo")
        .arg(&go)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    common::chown_tree(&sync, 65534);
    let script = "p=$($H mount c) && echo x > \"$p/f\" && touch $S/ready && read x < $S/go";
    let mut session = env.cmd(["unshare", "sh", "-c", script]);
    session.env("H", common::hoist_bin()).env("S", &sync);
    // (setpriv and hoist exec: the child is the session's shell, killed if the test fails)
    struct Session(std::process::Child);
    impl Drop for Session {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Session(session.spawn().expect("start the session"));
    let mut waited = 0;
    while !ready.exists() {
        assert!(
            child.0.try_wait().expect("session").is_none(),
            "the session ended early"
        );
        assert!(waited < 6000, "the session never mounted the container");
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 1;
    }
    // outside the session the mount is not in this namespace's mountinfo, but is refused
    for args in [
        vec!["commit", "c", "no:1"],
        vec!["copy", "c", "sync", "/x"],
        vec!["rm", "c"],
    ] {
        let err = env.fails(1, &args);
        assert!(
            err.contains("is mounted in another mount namespace"),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
    let mut second = env.cmd(["unshare", "sh", "-c", "$H mount c"]);
    second.env("H", common::hoist_bin());
    let out = run(&mut second);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        show(&out).contains("mounted in another mount namespace"),
        "{}",
        show(&out)
    );
    std::fs::write(&go, "go\n").expect("end the session");
    assert!(child.0.wait().expect("session").success());
    // the session's end ended the mount: its record is stale and ignored
    assert_same("diff", "A /f\n", &env.ok(["diff", "c"]));
    env.ok(["commit", "c", "after:1"]);
    env.ok(["rm", "c"]);
}
